//! The layering the code keeps: the front-ends reach topics, offsets, reads
//! and waits through the storage engine alone; Kafka's request handlers
//! never see the server loop; the background jobs never reach into the
//! write path. Each check reads the sources, so a change that breaks a rule
//! fails here with the file that broke it.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {}", dir.display());
    found.sort();
    found
}

/// Files under `dir` whose text contains any of `needles`, with the line.
fn offenders(dir: &str, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for file in sources(&workspace().join(dir)) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                hits.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    hits
}

/// The `[dependencies]` table of a crate's manifest, as text.
fn dependencies(krate: &str) -> String {
    let manifest = workspace().join("crates").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    let start = text
        .find("[dependencies]")
        .unwrap_or_else(|| panic!("{} has no [dependencies]", manifest.display()));
    let rest = &text[start + "[dependencies]".len()..];
    rest[..rest.find("\n[").unwrap_or(rest.len())].to_string()
}

#[test]
fn kafka_handlers_do_not_import_the_server_loop() {
    let hits = offenders("crates/streamhouse-kafka/src/handlers", &["crate::server"]);
    assert!(
        hits.is_empty(),
        "handlers importing server.rs:\n{}",
        hits.join("\n")
    );
}

#[test]
fn background_jobs_do_not_import_the_write_path() {
    let hits = offenders("crates/streamhouse-storage/src/jobs", &["flusher"]);
    assert!(
        hits.is_empty(),
        "jobs reaching into flusher.rs:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_front_ends_depend_on_the_storage_engine_alone() {
    let kafka = dependencies("streamhouse-kafka");
    assert!(
        kafka.contains("streamhouse-storage") && !kafka.contains("streamhouse-metadata"),
        "streamhouse-kafka's dependencies must name the storage crate and not the metadata \
         store:\n{kafka}"
    );
    let hits = offenders(
        "crates/streamhouse-server/src/http",
        &["streamhouse_metadata", ".metadata()"],
    );
    assert!(
        hits.is_empty(),
        "the HTTP API reaching past the engine:\n{}",
        hits.join("\n")
    );
}
