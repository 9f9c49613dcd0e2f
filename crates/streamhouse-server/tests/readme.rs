//! The README's crate table lists exactly the crates under `crates/`, each
//! with the `description` its `Cargo.toml` declares.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Name to description of every crate under `crates/`.
fn workspace_crates(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut crates = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).context("listing crates/")? {
        let manifest = entry?.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let parsed: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        let package = parsed
            .get("package")
            .and_then(toml::Value::as_table)
            .with_context(|| format!("{} has no [package]", manifest.display()))?;
        let name = package
            .get("name")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{} has no package name", manifest.display()))?;
        let description = package
            .get("description")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{name} has no description in its Cargo.toml"))?;
        crates.insert(name.to_owned(), description.to_owned());
    }
    Ok(crates)
}

/// Rows of the README table headed `| crate | what it holds |`, name to
/// description. Rows naming a path (`tools/...`) are not workspace crates
/// and are left out.
fn readme_crates(readme: &str) -> Result<BTreeMap<String, String>> {
    let table = readme
        .lines()
        .skip_while(|line| line.trim() != "| crate | what it holds |")
        .skip(2)
        .take_while(|line| line.starts_with('|'));
    let mut rows = BTreeMap::new();
    for line in table {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [name, description] = cells[..] else {
            bail!("README crate table row without two cells: {line}");
        };
        let name = name.trim_matches('`');
        if name.contains('/') {
            continue;
        }
        if rows
            .insert(name.to_owned(), description.to_owned())
            .is_some()
        {
            bail!("README crate table lists {name} twice");
        }
    }
    if rows.is_empty() {
        bail!("README has no `| crate | what it holds |` table");
    }
    Ok(rows)
}

#[test]
fn readme_crate_table_matches_the_workspace() -> Result<()> {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    let table = readme_crates(&readme)?;
    let crates = workspace_crates(&root)?;
    assert!(crates.contains_key("streamhouse-segment"), "{crates:?}");
    for (name, description) in &crates {
        match table.get(name) {
            None => panic!(
                "README crate table has no row for {name}; add:\n| `{name}` | {description} |"
            ),
            Some(row) => assert_eq!(
                row, description,
                "README row for {name} differs from the description in crates/{name}/Cargo.toml"
            ),
        }
    }
    for name in table.keys() {
        assert!(
            crates.contains_key(name),
            "README crate table lists {name}, which is not a crate under crates/"
        );
    }
    Ok(())
}

#[test]
fn the_table_parser_sees_rows_and_ignores_paths() -> Result<()> {
    let readme = "intro\n\n| crate | what it holds |\n|---|---|\n| `a` | the a crate |\n\
                  | `tools/b` | elsewhere |\n\nafter\n| `c` | not in the table |\n";
    let rows = readme_crates(readme)?;
    assert_eq!(
        rows,
        BTreeMap::from([("a".to_owned(), "the a crate".to_owned())])
    );
    assert!(readme_crates("no table here").is_err());
    Ok(())
}
