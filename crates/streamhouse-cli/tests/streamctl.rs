//! The real `streamctl` binary against a real `streamhouse serve`: what a
//! user sees on stdout and stderr, and the exit codes, for every command.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use common::{Server, json_lines, run_streamctl, streamctl};

#[test]
fn topic_create_list_describe_delete_in_table_and_json() -> Result<()> {
    let server = Server::start()?;

    let created = server.run(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
    ])?;
    let created = created.ok()?;
    assert_eq!(
        created.stdout.trim(),
        "Created topic \"orders\" with 3 partitions (config: retention.ms=60000)."
    );
    let summary = server.json(&["topic", "create", "payments"])?;
    assert_eq!(summary["name"], "payments");
    assert_eq!(summary["partitions"], 1);
    assert_eq!(summary["config"], json!({}));

    let again = server
        .run(&["topic", "create", "orders"])?
        .one_line_error()?;
    assert!(again.contains("already exists"), "{again}");

    let table = server.run(&["topic", "list"])?.ok()?.stdout;
    for expected in ["TOPIC", "orders", "payments", "retention.ms=60000"] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from\n{table}"
        );
    }
    let listed = server.json(&["topic", "list"])?;
    let names: Vec<&str> = listed
        .as_array()
        .context("list is an array")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["orders", "payments"]);

    let detail = server.json(&["topic", "describe", "orders"])?;
    assert_eq!(detail["name"], "orders");
    assert_eq!(detail["config"]["retention.ms"], "60000");
    assert_eq!(
        detail["config"]["cleanup.policy"], "delete",
        "effective defaults shown"
    );
    let partitions = detail["partitions"].as_array().context("partitions")?;
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["high_watermark"], 0);
        assert_eq!(p["log_start_offset"], 0);
    }
    let described = server.run(&["topic", "describe", "orders"])?.ok()?.stdout;
    for expected in [
        "Topic:      orders",
        "HIGH WATERMARK",
        "LOG START",
        "retention.ms",
        "60000",
    ] {
        assert!(
            described.contains(expected),
            "{expected:?} missing from\n{described}"
        );
    }

    let deleted = server.run(&["topic", "delete", "orders"])?.ok()?;
    assert_eq!(deleted.stdout.trim(), "Deleted topic \"orders\".");
    assert_eq!(
        server.json(&["topic", "delete", "payments"])?,
        json!({ "deleted": "payments" })
    );
    assert_eq!(server.json(&["topic", "list"])?, json!([]));
    assert_eq!(
        server.run(&["topic", "list"])?.ok()?.stdout.trim(),
        "No topics."
    );
    let gone = server
        .run(&["topic", "describe", "orders"])?
        .one_line_error()?;
    assert!(
        gone.contains("orders") && gone.contains("HTTP 404"),
        "{gone}"
    );
    Ok(())
}

#[test]
fn one_record_with_key_and_headers_round_trips_field_by_field() -> Result<()> {
    let server = Server::start()?;
    server
        .run(&["topic", "create", "events", "--partitions", "2"])?
        .ok()?;

    let produced = server.json(&[
        "produce",
        "events",
        "--key",
        "user-7",
        "--value",
        "hello world",
        "--header",
        "trace=abc",
        "--header",
        "source=cli=1",
        "--partition",
        "1",
        "--timestamp",
        "1700000000123",
    ])?;
    assert_eq!(
        produced,
        json!({
            "topic": "events",
            "records": 1,
            "requests": 1,
            "partitions": [{"partition": 1, "records": 1, "first_offset": 0, "last_offset": 0}],
        })
    );

    let consumed = server
        .run(&["--output", "json", "consume", "events"])?
        .ok()?;
    let records = json_lines(&consumed.stdout)?;
    assert_eq!(records.len(), 1, "{consumed:?}");
    let record = &records[0];
    assert_eq!(record["topic"], "events");
    assert_eq!(record["partition"], 1);
    assert_eq!(record["offset"], 0);
    assert_eq!(record["timestamp"], 1_700_000_000_123_i64);
    assert_eq!(record["key"], "user-7");
    assert_eq!(record["value"], "hello world");
    assert_eq!(
        record["headers"],
        json!([{"key": "trace", "value": "abc"}, {"key": "source", "value": "cli=1"}])
    );
    assert_eq!(record["encoding"], "utf8");

    // The same record in table mode: one tab-separated line.
    let line = server.run(&["consume", "events"])?.ok()?.stdout;
    assert_eq!(
        line,
        "1\t0\t2023-11-14T22:13:20.123Z\tuser-7\thello world\ttrace=abc,source=cli=1\n"
    );
    let single = server.run(&["produce", "events", "--null-value", "--key", "user-7"])?;
    assert!(
        single
            .ok()?
            .stdout
            .starts_with("Produced 1 record to topic \"events\": partition "),
        "a one-record summary is one sentence"
    );
    Ok(())
}

#[test]
fn stdin_lines_are_produced_in_batches_and_consumed_in_order() -> Result<()> {
    let server = Server::start()?;
    server.run(&["topic", "create", "lines"])?.ok()?;
    let input: String = (0..1000).map(|i| format!("line-{i}\n")).collect();

    let summary =
        server.run_with_stdin(&["--output", "json", "produce", "lines"], input.as_bytes())?;
    assert_eq!(
        summary.json()?,
        json!({
            "topic": "lines",
            "records": 1000,
            "requests": 2,
            "partitions": [{"partition": 0, "records": 1000, "first_offset": 0, "last_offset": 999}],
        })
    );

    let consumed = server
        .run(&["--output", "json", "consume", "lines"])?
        .ok()?;
    let records = json_lines(&consumed.stdout)?;
    assert_eq!(records.len(), 1000);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["offset"], i, "record {i}");
        assert_eq!(record["value"], format!("line-{i}"), "record {i}");
        assert_eq!(record["key"], Value::Null);
    }
    let table = server
        .run(&["consume", "lines", "--offset", "990"])?
        .ok()?
        .stdout;
    let values: Vec<&str> = table
        .lines()
        .filter_map(|line| line.split('\t').nth(4))
        .collect();
    let expected: Vec<String> = (990..1000).map(|i| format!("line-{i}")).collect();
    assert_eq!(values, expected);
    let limited = server.run(&["--output", "json", "consume", "lines", "--max-records", "7"])?;
    assert_eq!(json_lines(&limited.ok()?.stdout)?.len(), 7);
    Ok(())
}

#[test]
fn key_separator_and_base64_keep_keys_and_binary_values() -> Result<()> {
    let server = Server::start()?;
    server.run(&["topic", "create", "kv"])?.ok()?;
    let produced =
        server.run_with_stdin(&["produce", "kv", "--key-separator", ":"], b"a:1\nb:x:y\n")?;
    produced.ok()?;
    let binary = [0u8, 0xff, 0x10, b'\n'];
    let encoded = STANDARD.encode(binary);
    server
        .run(&["produce", "kv", "--encoding", "base64", "--value", &encoded])?
        .ok()?;

    let records = json_lines(
        &server
            .run(&["--output", "json", "consume", "kv"])?
            .ok()?
            .stdout,
    )?;
    let pairs: Vec<(Value, Value, Value)> = records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone(), r["encoding"].clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (json!("a"), json!("1"), json!("utf8")),
            (json!("b"), json!("x:y"), json!("utf8")),
            (Value::Null, json!(encoded), json!("base64")),
        ]
    );

    let missing = server.run_with_stdin(
        &["produce", "kv", "--key-separator", "="],
        b"no separator\n",
    )?;
    let error = missing.one_line_error()?;
    assert!(
        error.contains("stdin line 1 has no key separator"),
        "{error}"
    );
    Ok(())
}

#[test]
fn follow_prints_a_record_produced_after_it_started() -> Result<()> {
    let server = Server::start()?;
    server
        .run(&["topic", "create", "live", "--partitions", "2"])?
        .ok()?;
    server
        .run(&["produce", "live", "--value", "before", "--partition", "0"])?
        .ok()?;

    let mut follower = streamctl()
        .args([
            "--server",
            &server.http,
            "--output",
            "json",
            "consume",
            "live",
            "--follow",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = follower.stdout.take().context("follower stdout")?;
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |value: &str| -> Result<Value> {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .with_context(|| format!("no line for {value:?}"))?;
        let record: Value = serde_json::from_str(&line)?;
        ensure!(record["value"] == value, "expected {value:?}, got {line}");
        Ok(record)
    };
    let result = (|| -> Result<()> {
        wait_for("before")?;
        // The follower is now polling; this record did not exist when it
        // started.
        server
            .run(&["produce", "live", "--value", "after", "--partition", "1"])?
            .ok()?;
        let after = wait_for("after")?;
        ensure!(after["partition"] == 1 && after["offset"] == 0, "{after}");
        Ok(())
    })();
    let _ = follower.kill();
    let _ = follower.wait();
    result
}

#[test]
fn segments_lists_the_rows_written_by_produce() -> Result<()> {
    let server = Server::start()?;
    server
        .run(&["topic", "create", "seg", "--partitions", "2"])?
        .ok()?;
    assert_eq!(
        server.run(&["segments", "seg"])?.ok()?.stdout.trim(),
        "No segments for topic \"seg\" yet."
    );
    server
        .run_with_stdin(&["produce", "seg", "--partition", "1"], b"a\nb\nc\n")?
        .ok()?;
    server
        .run(&["produce", "seg", "--partition", "1", "--value", "d"])?
        .ok()?;

    let rows = server.json(&["segments", "seg"])?;
    let rows = rows.as_array().context("rows")?;
    let spans: Vec<(Value, Value, Value, Value)> = rows
        .iter()
        .map(|r| {
            (
                r["partition"].clone(),
                r["base_offset"].clone(),
                r["end_offset"].clone(),
                r["record_count"].clone(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            (json!(1), json!(0), json!(2), json!(3)),
            (json!(1), json!(3), json!(3), json!(1))
        ]
    );
    for row in rows {
        let key = row["key"].as_str().unwrap_or_default();
        assert!(
            key.starts_with("batches/") && key.ends_with(".bin"),
            "{row}"
        );
        assert!(row["byte_length"].as_i64().unwrap_or_default() > 0, "{row}");
        assert_eq!(row["kind"], "flushed", "{row}");
    }
    let table = server
        .run(&["segments", "seg", "--partition", "1"])?
        .ok()?
        .stdout;
    for expected in [
        "OBJECT",
        "BYTE RANGE",
        "CREATED",
        "KIND",
        "flushed",
        "batches/",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from\n{table}"
        );
    }
    let bad = server
        .run(&["segments", "seg", "--partition", "5"])?
        .one_line_error()?;
    assert!(bad.contains("partition 5"), "{bad}");
    Ok(())
}

#[test]
fn groups_show_offsets_committed_by_kcat_and_consume_starts_there() -> Result<()> {
    if Command::new("kcat").arg("-V").output().is_err() {
        eprintln!("!!! SKIPPED: kcat is not installed; group list/describe are NOT tested");
        return Ok(());
    }
    let server = Server::start()?;
    server
        .run(&["topic", "create", "jobs", "--partitions", "2"])?
        .ok()?;
    let input: String = (0..10).map(|i| format!("job-{i}\n")).collect();
    server
        .run_with_stdin(&["produce", "jobs"], input.as_bytes())?
        .ok()?;

    let kcat = Command::new("timeout")
        .args([
            "60",
            "kcat",
            "-b",
            &server.kafka,
            "-G",
            "workers",
            "jobs",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running kcat")?;
    ensure!(kcat.status.success(), "kcat failed: {kcat:?}");
    assert_eq!(String::from_utf8_lossy(&kcat.stdout).lines().count(), 10);

    let groups = server.json(&["group", "list"])?;
    assert_eq!(
        groups,
        json!([{"group": "workers", "state": "Empty", "members": 0}])
    );
    let listed = server.run(&["group", "list"])?.ok()?.stdout;
    assert!(listed.contains("workers"), "{listed}");

    server
        .run(&["produce", "jobs", "--partition", "0", "--value", "new"])?
        .ok()?;
    let detail = server.json(&["group", "describe", "workers"])?;
    assert_eq!(detail["group"], "workers");
    assert_eq!(detail["total_lag"], 1);
    let offsets = detail["offsets"].as_array().context("offsets")?;
    assert_eq!(offsets.len(), 2);
    for offset in offsets {
        assert_eq!(offset["topic"], "jobs");
        let lag = if offset["partition"] == 0 { 1 } else { 0 };
        assert_eq!(offset["lag"], lag, "{offset}");
        let committed = offset["committed_offset"].as_i64().unwrap_or(-1);
        assert_eq!(offset["high_watermark"], committed + lag, "{offset}");
    }
    let described = server.run(&["group", "describe", "workers"])?.ok()?.stdout;
    for expected in ["Group:     workers", "Total lag: 1", "COMMITTED", "LAG"] {
        assert!(
            described.contains(expected),
            "{expected:?} missing from\n{described}"
        );
    }

    // Only the record produced after the commit is past the group's offsets.
    let from_group = server.run(&["--output", "json", "consume", "jobs", "--group", "workers"])?;
    let from_group = from_group.ok()?;
    let records = json_lines(&from_group.stdout)?;
    assert_eq!(records.len(), 1, "{from_group:?}");
    assert_eq!(records[0]["value"], "new");
    assert!(
        from_group
            .stderr
            .contains("Starting from group \"workers\"'s committed offsets"),
        "{from_group:?}"
    );
    let unknown = server
        .run(&["group", "describe", "nobody"])?
        .one_line_error()?;
    assert!(unknown.contains("HTTP 404"), "{unknown}");

    // A consumer that stays: describe shows it as a member with both
    // partitions assigned.
    let mut live = Command::new("kcat")
        .args(["-b", &server.kafka, "-G", "workers", "jobs", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting kcat")?;
    let result = wait_for_member(&server);
    let _ = live.kill();
    let _ = live.wait();
    let detail = result?;
    let member = &detail["members"][0];
    assert_eq!(
        member["assignment"],
        json!([{"topic": "jobs", "partitions": [0, 1]}])
    );
    Ok(())
}

/// Polls `group describe workers` until a member with an assignment shows
/// up; returns that description.
fn wait_for_member(server: &Server) -> Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let detail = server.json(&["group", "describe", "workers"])?;
        let assigned = detail["members"]
            .as_array()
            .is_some_and(|members| members.iter().any(|m| m["assignment"] != json!([])));
        if assigned {
            let table = server.run(&["group", "describe", "workers"])?.ok()?.stdout;
            ensure!(
                table.contains("MEMBER") && table.contains("jobs: 0,1"),
                "members missing from\n{table}"
            );
            return Ok(detail);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no member with an assignment: {detail}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every flushed batch object under `dir`.
fn batch_objects(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(batch_objects(&path)?);
        } else if path.extension().is_some_and(|e| e == "bin") {
            found.push(path);
        }
    }
    Ok(found)
}

#[test]
fn inspect_decodes_a_flushed_object_and_rejects_a_damaged_copy() -> Result<()> {
    let server = Server::start()?;
    server.run(&["topic", "create", "audit"])?.ok()?;
    server
        .run_with_stdin(
            &["produce", "audit", "--header", "h=1"],
            b"first\nsecond\nthird\n",
        )?
        .ok()?;
    let objects = batch_objects(&server.data_dir().join("objects").join("batches"))?;
    assert_eq!(
        objects.len(),
        1,
        "one produce request, one flush: {objects:?}"
    );
    let object = objects[0].to_string_lossy().into_owned();

    let table = run_streamctl(&["inspect", &object], b"")?.ok()?.stdout;
    for expected in [
        "batch object",
        "# ┆ TOPIC",
        "audit",
        "compression",
        "FIRST OFFSET",
        "first",
        "second",
        "third",
        "h=1",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from\n{table}"
        );
    }
    let report = run_streamctl(&["--output", "json", "inspect", &object], b"")?.json()?;
    assert_eq!(report["kind"], "batch_object");
    assert_eq!(report["toc"][0]["topic"], "audit");
    assert_eq!(report["toc"][0]["record_count"], 3);
    let segment = &report["segments"][0];
    assert_eq!(segment["header"]["record_count"], 3);
    let values: Vec<&str> = segment["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(values, ["first", "second", "third"]);
    let limited = run_streamctl(
        &["--output", "json", "inspect", &object, "--records", "1"],
        b"",
    )?;
    let limited = limited.json()?;
    assert_eq!(
        limited["segments"][0]["records"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(limited["segments"][0]["records_decoded"], 3);

    // Flip one bit in the middle of the segment: its CRC no longer matches.
    let mut bytes = std::fs::read(&objects[0])?;
    let start = report["toc"][0]["byte_offset"]
        .as_u64()
        .context("byte_offset")?;
    let length = report["toc"][0]["byte_length"]
        .as_u64()
        .context("byte_length")?;
    let middle = usize::try_from(start + length / 2)?;
    bytes[middle] ^= 0x01;
    let damaged = server.dir.path().join("damaged.bin");
    std::fs::write(&damaged, &bytes)?;
    let damaged = damaged.to_string_lossy().into_owned();
    let error = run_streamctl(&["inspect", &damaged], b"")?.one_line_error()?;
    assert!(error.contains("crc mismatch"), "{error}");
    assert!(error.contains("topic \"audit\" partition 0"), "{error}");
    Ok(())
}

#[test]
fn an_unreachable_server_is_one_line_naming_the_url() -> Result<()> {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let error = run_streamctl(&["--server", &url, "topic", "list"], b"")?.one_line_error()?;
    assert!(error.contains(&url), "{error}");
    assert!(error.contains("streamhouse serve"), "{error}");

    let run = streamctl()
        .env("STREAMCTL_SERVER", &url)
        .args(["group", "list"])
        .output()?;
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(&url),
        "the variable is used"
    );
    Ok(())
}

#[test]
fn usage_errors_exit_2_and_inspect_of_a_non_segment_exits_1() -> Result<()> {
    let missing_topic = run_streamctl(&["produce"], b"")?;
    assert_eq!(missing_topic.code, Some(2), "{missing_topic:?}");
    let bad_offset = run_streamctl(&["consume", "t", "--offset", "soon"], b"")?;
    assert_eq!(bad_offset.code, Some(2), "{bad_offset:?}");
    let conflicting = run_streamctl(
        &["produce", "t", "--value", "v", "--key-separator", ":"],
        b"",
    )?;
    assert_eq!(conflicting.code, Some(2), "{conflicting:?}");

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "just text, no segment")?;
    let error = run_streamctl(&["inspect", &file.to_string_lossy()], b"")?.one_line_error()?;
    assert!(error.contains("neither a segment"), "{error}");
    Ok(())
}
