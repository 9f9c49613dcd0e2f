//! How results reach stdout: comfy-table tables for people, JSON for
//! scripts, and the text renderings shared by the commands (timestamps,
//! record bytes).
//!
//! The invariant that matters: every rendering of record bytes for people
//! is one line and never passes control characters to the terminal, so a
//! value holding `\n` or an escape sequence cannot break a table row or
//! the terminal; exact bytes are only ever available through JSON (or
//! base64 in text).

use std::io::Write;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressState, ProgressStyle};
use serde::Serialize;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// Machine-readable JSON.
    Json,
}

/// A table with a header row, wrapped to the terminal width when stdout is
/// a terminal.
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.into_iter().map(Into::into).collect::<Vec<_>>());
    // A pseudo-terminal that reports no real size (`script`, some CI
    // runners) would squeeze every column to a character or two.
    if table.width().is_some_and(|width| width < 40) {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    table
}

/// A progress bar style from `template`, which may use `{rate}` (records
/// per second, whole). `None` only if the template is invalid, in which
/// case indicatif's default style is kept.
pub(crate) fn progress_style(template: &str) -> Option<ProgressStyle> {
    let style = ProgressStyle::with_template(template).ok()?;
    Some(style.with_key(
        "rate",
        |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0}/s", state.per_sec());
        },
    ))
}

/// Writes `text` and a newline to stdout.
pub(crate) fn print_line(text: impl std::fmt::Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// Writes one pretty-printed JSON document to stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    // Serialized first: serde_json hides a writer's io::Error from the
    // error chain, and main needs to see a closed pipe as one.
    let text = serde_json::to_string_pretty(value)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// A Kafka-style millisecond timestamp as UTC ISO 8601
/// (`2026-01-31T12:00:00.000Z`); negative values (Kafka's "no timestamp",
/// the format's "empty") are shown as the number.
pub(crate) fn format_timestamp(millis: i64) -> String {
    if millis < 0 {
        return millis.to_string();
    }
    let seconds = millis.div_euclid(1000);
    let fraction = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`); avoids a date-time dependency for one rendering.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Text for people on one line: control characters (newline, tab, escape,
/// …) are written as Rust escapes (`\n`, `\u{1b}`), backslashes doubled so
/// the escapes stay unambiguous.
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Binary values up to this many bytes are shown in hex, longer ones in
/// base64 (hex doubles the length; base64 is what the API uses).
const HEX_LIMIT: usize = 32;

/// Raw record bytes for people: escaped text when they are UTF-8, else
/// `hex:…` (short) or `base64:…`.
pub(crate) fn display_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => escape_text(text),
        Err(_) if bytes.len() <= HEX_LIMIT => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
        Err(_) => format!("base64:{}", STANDARD.encode(bytes)),
    }
}

/// A key or value for people: `(null)` when absent.
pub(crate) fn display_optional_bytes(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "(null)".to_string(), display_bytes)
}

/// Cuts `text` to at most `max` characters for a table cell, saying how
/// much was left out.
pub(crate) fn truncate(text: String, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text;
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… (+{} chars)", total - max)
}

/// `a=1, b=2` for a map shown in one cell; `-` when empty.
pub(crate) fn join_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if joined.is_empty() {
        "-".into()
    } else {
        joined.join(", ")
    }
}

/// Parses `KEY=VALUE` (split at the first `=`), for `--config` and
/// `--header`.
pub(crate) fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(951_825_600_123),
            "2000-02-29T12:00:00.123Z"
        );
        assert_eq!(
            format_timestamp(1_767_225_599_999),
            "2025-12-31T23:59:59.999Z"
        );
        assert_eq!(format_timestamp(-1), "-1");
        // Far-future values do not overflow.
        assert!(format_timestamp(i64::MAX).starts_with("292278994-"));
    }

    #[test]
    fn bytes_render_on_one_line() {
        assert_eq!(display_bytes(b"plain text"), "plain text");
        assert_eq!(display_bytes(b"a\nb\tc\\d\x1b"), "a\\nb\\tc\\\\d\\u{1b}");
        assert_eq!(display_bytes(&[0, 0xff, 0x10]), "hex:00ff10");
        assert_eq!(
            display_bytes(&[0xff; 33]),
            format!("base64:{}", STANDARD.encode([0xff; 33]))
        );
        assert_eq!(display_optional_bytes(None), "(null)");
        assert_eq!(display_optional_bytes(Some(b"")), "");
    }

    #[test]
    fn truncation_says_what_was_cut() {
        assert_eq!(truncate("abc".into(), 3), "abc");
        assert_eq!(truncate("abcdef".into(), 2), "ab… (+4 chars)");
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("a="), Ok(("a".into(), String::new())));
        assert!(parse_key_value("a").is_err());
        assert!(parse_key_value("=b").is_err());
    }
}
