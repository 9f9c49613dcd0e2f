//! `streamhouse check`: the engine's consistency check run against the
//! configured metadata store and object store, with no agent running —
//! what an operator runs after a crash or a restore to know the data is
//! whole.
//!
//! The stores are opened as `serve` opens them (the same settings, the
//! object store probed first), but nothing is created: a SQLite database
//! that does not exist is an error, not an empty store found consistent.
//! The check reads while agents may write; run it on stopped agents, since
//! a row swapped by a running job between the listing and the read can be
//! reported as a problem.

use std::path::Path;

use streamhouse_storage::jobs::CheckReport;
use streamhouse_storage::{ObjectStorage, StorageConfig, StorageEngine};

use crate::config::{ServerConfig, redact_url};
use crate::error::ServerError;
use crate::server::probe_object_store;

/// Why the check could not run (as opposed to finding problems).
#[derive(Debug, thiserror::Error)]
pub enum CheckCommandError {
    #[error("--metadata: no metadata database at {path}")]
    NoDatabase { path: String },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Storage(#[from] streamhouse_storage::StorageError),
}

/// Runs the consistency check on the stores `config` names.
pub async fn run_check(config: &ServerConfig) -> Result<CheckReport, CheckCommandError> {
    config.validate().map_err(ServerError::Config)?;
    // Before anything is opened: opening creates what is missing.
    let metadata_url = config.metadata_url();
    if let Some(path) = sqlite_path(&metadata_url)
        && !Path::new(path).is_file()
    {
        return Err(CheckCommandError::NoDatabase {
            path: path.to_owned(),
        });
    }
    let object_store_url = config.object_store_url();
    let storage =
        ObjectStorage::from_url(&object_store_url).map_err(|e| ServerError::ObjectStore {
            location: redact_url(&object_store_url),
            reason: e.to_string(),
        })?;
    probe_object_store(&storage, &redact_url(&object_store_url)).await?;
    let metadata = streamhouse_metadata::open(&metadata_url)
        .await
        .map_err(|source| ServerError::Metadata {
            url: redact_url(&metadata_url),
            source,
        })?;
    let engine = StorageEngine::start(metadata, storage, StorageConfig::default());
    let report = engine.check_consistency().await;
    engine.shutdown().await;
    Ok(report?)
}

/// The file of a `sqlite://PATH[?options]` URL.
fn sqlite_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://")?;
    path.split('?').next()
}

/// The report as printed: one summary line, then one line per problem.
pub fn report_lines(report: &CheckReport) -> Vec<String> {
    let verdict = match report.problems.len() {
        0 => "consistent".to_owned(),
        n => count(n as u64, "problem"),
    };
    let mut lines = vec![format!(
        "checked {}, {}, {}: {verdict}",
        count(report.partitions, "partition"),
        count(report.segment_rows, "segment row"),
        count(report.records, "record"),
    )];
    lines.extend(report.problems.iter().cloned());
    lines
}

fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_and_lists_every_problem() {
        let mut report = CheckReport {
            partitions: 3,
            segment_rows: 7,
            records: 120,
            problems: Vec::new(),
        };
        assert_eq!(
            report_lines(&report),
            ["checked 3 partitions, 7 segment rows, 120 records: consistent"]
        );
        report.problems = vec!["t-0: a".into()];
        report.partitions = 1;
        report.segment_rows = 1;
        report.records = 1;
        assert_eq!(
            report_lines(&report),
            [
                "checked 1 partition, 1 segment row, 1 record: 1 problem",
                "t-0: a"
            ]
        );
        report.problems.push("t-1: b".into());
        report.partitions = 3;
        assert_eq!(
            report_lines(&report),
            [
                "checked 3 partitions, 1 segment row, 1 record: 2 problems",
                "t-0: a",
                "t-1: b"
            ]
        );
    }

    #[test]
    fn the_sqlite_path_leaves_out_options() {
        assert_eq!(sqlite_path("sqlite://d/metadata.db"), Some("d/metadata.db"));
        assert_eq!(sqlite_path("sqlite:///abs.db?mode=rwc"), Some("/abs.db"));
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
