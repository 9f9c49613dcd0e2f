//! The real `streamhouse check` on what an agent left behind: consistent
//! data exits 0 with its counts, a lost object exits 1 naming it, and a
//! data directory with no database exits 2 without creating one.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `streamhouse check ARGS` in `dir`, with no inherited `STREAMHOUSE_*`
/// settings: exit code, stdout lines, stderr lines.
fn check(dir: &Path, args: &[&str]) -> Result<(Option<i32>, Vec<String>, Vec<String>)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamhouse"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STREAMHOUSE_") {
            command.env_remove(key);
        }
    }
    let output = command
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()?;
    let lines = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    Ok((
        output.status.code(),
        lines(&output.stdout),
        lines(&output.stderr),
    ))
}

/// An agent's data directory after it produced `batches` requests of
/// three records to a two-partition topic and shut down, with the object
/// keys of its segment rows.
async fn data_left_by_an_agent(batches: usize) -> Result<(tempfile::TempDir, Vec<String>)> {
    let t = TestServer::start().await?;
    t.create_topic("checked", 2).await?;
    for batch in 0..batches {
        let records: Vec<Value> = (0..3)
            .map(|n| json!({"key": format!("k{batch}-{n}"), "value": "v"}))
            .collect();
        let (status, body) = t
            .post(
                "/api/v1/topics/checked/records",
                json!({"records": records}),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut keys = Vec::new();
    for partition in 0..2 {
        let (status, rows) = t
            .get(&format!(
                "/api/v1/topics/checked/partitions/{partition}/segments"
            ))
            .await?;
        assert_eq!(status, StatusCode::OK, "{rows}");
        for row in rows.as_array().context("segment rows")? {
            keys.push(row["key"].as_str().context("row key")?.to_owned());
        }
    }
    let TestServer { server, dir, .. } = t;
    server.shutdown().await?;
    Ok((dir, keys))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_data_exits_0_with_its_counts() -> Result<()> {
    let (dir, keys) = data_left_by_an_agent(4).await?;
    let (code, stdout, stderr) = check(dir.path(), &["--data-dir", "."])?;
    assert_eq!(code, Some(0), "stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(
        stdout,
        [format!(
            "checked 2 partitions, {} segment rows, 12 records: consistent",
            keys.len()
        )]
    );
    // The same stores named by URL, as for PostgreSQL and S3.
    let root = dir.path().display();
    let (code, stdout, _) = check(
        Path::new("/"),
        &[
            "--metadata",
            &format!("sqlite://{root}/metadata.db"),
            "--object-store",
            &format!("file://{root}/objects"),
        ],
    )?;
    assert_eq!(code, Some(0), "{stdout:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_object_exits_1_naming_it() -> Result<()> {
    let (dir, keys) = data_left_by_an_agent(2).await?;
    let lost = keys.first().context("no segment rows")?;
    std::fs::remove_file(dir.path().join("objects").join(lost))?;

    let (code, stdout, stderr) = check(dir.path(), &["--data-dir", "."])?;
    assert_eq!(code, Some(1), "stdout {stdout:?} stderr {stderr:?}");
    let referencing = keys.iter().filter(|key| *key == lost).count();
    let summary = stdout.first().context("no summary line")?;
    assert!(
        summary.starts_with("checked 2 partitions, ")
            && summary.ends_with(&format!(
                ": {referencing} problem{}",
                if referencing == 1 { "" } else { "s" }
            )),
        "{stdout:?}"
    );
    // One line per row whose object is gone, each naming it.
    assert_eq!(stdout.len(), 1 + referencing, "{stdout:?}");
    for line in &stdout[1..] {
        assert!(
            line.starts_with("checked-") && line.contains(lost.as_str()),
            "{line:?} should name {lost}"
        );
    }
    Ok(())
}

#[test]
fn no_database_exits_2_and_creates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (code, stdout, stderr) = check(dir.path(), &["--data-dir", "missing"])?;
    assert_eq!(code, Some(2), "stdout {stdout:?} stderr {stderr:?}");
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_eq!(
        stderr,
        ["error: --metadata: no metadata database at missing/metadata.db"]
    );
    assert!(!dir.path().join("missing").exists());

    // A bad value is a usage error like serve's.
    let (code, _, stderr) = check(dir.path(), &["--object-store", "ftp://x"])?;
    assert_eq!(code, Some(2), "{stderr:?}");
    assert!(
        stderr.len() == 1 && stderr[0].starts_with("error: --object-store: "),
        "{stderr:?}"
    );
    Ok(())
}
