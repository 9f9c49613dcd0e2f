//! `streamctl user` and `streamctl acl` against a real `streamhouse serve`,
//! and `--user` with `STREAMCTL_PASSWORD` against one that requires
//! credentials (`--authorizer acl`): what a user sees, and the exit codes.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Stdio;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

use common::{Run, Server, streamctl};

/// Runs `streamctl --server URL ARGS` as `user` (password in the
/// environment) with `stdin`.
fn run_as(server: &Server, user: Option<(&str, &str)>, args: &[&str], stdin: &[u8]) -> Result<Run> {
    let mut command = streamctl();
    command.args(["--server", server.http.as_str()]).args(args);
    if let Some((name, password)) = user {
        command
            .env("STREAMCTL_USER", name)
            .env("STREAMCTL_PASSWORD", password);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting streamctl")?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin)?;
    drop(input);
    let output = child.wait_with_output()?;
    Ok(Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn names(users: &Value) -> Vec<String> {
    users
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|u| u["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn user_set_list_and_delete() -> Result<()> {
    let server = Server::start()?;
    let set = server
        .run_with_stdin(
            &["user", "set", "alice", "--password-stdin"],
            b"alice-secret\n",
        )?
        .ok()?;
    assert_eq!(
        set.stdout.trim(),
        "Set the credentials of user \"alice\" (SCRAM-SHA-256 with 8192 iterations, \
         SCRAM-SHA-512 with 8192 iterations)."
    );
    assert!(!set.stdout.contains("alice-secret") && !set.stderr.contains("alice-secret"));
    let bob = server
        .run_with_stdin(
            &[
                "--output",
                "json",
                "user",
                "set",
                "bob",
                "--password-stdin",
                "--mechanism",
                "scram-sha-512",
                "--iterations",
                "4096",
            ],
            b"bob-secret",
        )?
        .json()?;
    assert_eq!(
        bob,
        json!({"name": "bob", "credentials": [{"mechanism": "SCRAM-SHA-512", "iterations": 4096}]})
    );

    let table = server.run(&["user", "list"])?.ok()?.stdout;
    for expected in [
        "USER",
        "MECHANISM",
        "ITERATIONS",
        "alice",
        "bob",
        "SCRAM-SHA-256",
        "4096",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from\n{table}"
        );
    }
    let listed = server.json(&["user", "list"])?;
    assert_eq!(names(&listed), ["alice", "bob"]);
    assert!(!listed.to_string().contains("secret"), "{listed}");

    let error = server
        .run_with_stdin(
            &[
                "user",
                "set",
                "carol",
                "--password-stdin",
                "--iterations",
                "10",
            ],
            b"pw\n",
        )?
        .one_line_error()?;
    assert!(
        error.contains("iterations") && error.contains("HTTP 400"),
        "{error}"
    );
    let error = server
        .run_with_stdin(&["user", "set", "carol", "--password-stdin"], b"")?
        .one_line_error()?;
    assert!(error.contains("--password-stdin"), "{error}");
    let usage = server.run(&["user", "set", "carol"])?;
    assert_eq!(
        usage.code,
        Some(2),
        "--password-stdin is required: {usage:?}"
    );

    let deleted = server
        .run(&["user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"])?
        .ok()?;
    assert_eq!(
        deleted.stdout.trim(),
        "Deleted the SCRAM-SHA-256 credential of user \"alice\"."
    );
    assert_eq!(
        server.json(&["user", "delete", "alice"])?,
        json!({"deleted": "alice", "mechanism": null})
    );
    assert_eq!(names(&server.json(&["user", "list"])?), ["bob"]);
    let gone = server.run(&["user", "delete", "alice"])?.one_line_error()?;
    assert!(gone.contains("HTTP 404"), "{gone}");
    Ok(())
}

#[test]
fn acl_add_list_and_remove() -> Result<()> {
    let server = Server::start()?;
    let added = server
        .run(&[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            "orders",
            "--group",
            "billing",
        ])?
        .ok()?;
    assert!(
        added.stdout.starts_with("Added 4 ACL bindings:"),
        "{}",
        added.stdout
    );
    let prefixed = server.json(&[
        "acl",
        "add",
        "--deny-principal",
        "User:bob",
        "--operation",
        "write",
        "--topic",
        "pay",
        "--resource-pattern-type",
        "prefixed",
        "--host",
        "10.0.0.1",
    ])?;
    assert_eq!(
        prefixed,
        json!([{"resource_type": "Topic", "resource_name": "pay", "pattern_type": "Prefixed",
                "principal": "User:bob", "host": "10.0.0.1", "operation": "Write",
                "permission": "Deny"}])
    );

    let all = server.json(&["acl", "list"])?;
    assert_eq!(all.as_array().map(Vec::len), Some(5), "{all}");
    let table = server
        .run(&["acl", "list", "--topic", "orders"])?
        .ok()?
        .stdout;
    for expected in [
        "PRINCIPAL",
        "User:alice",
        "Read",
        "Describe",
        "orders",
        "Literal",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from\n{table}"
        );
    }
    assert!(!table.contains("billing"), "{table}");
    let matching = server.json(&[
        "acl",
        "list",
        "--topic",
        "payments",
        "--resource-pattern-type",
        "match",
    ])?;
    assert_eq!(
        matching, prefixed,
        "the prefixed binding applies to payments"
    );
    let bob = server.json(&["acl", "list", "--principal", "User:bob"])?;
    assert_eq!(bob, prefixed);

    let error = server
        .run(&[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
        ])?
        .one_line_error()?;
    assert!(error.contains("--topic"), "{error}");
    let usage = server.run(&["acl", "add", "--allow-principal", "alice", "--topic", "t"])?;
    assert_eq!(usage.code, Some(2), "{usage:?}");

    let removed = server
        .run(&["acl", "remove", "--topic", "orders", "--operation", "Read"])?
        .ok()?;
    assert!(
        removed.stdout.starts_with("Removed 1 ACL binding:"),
        "{}",
        removed.stdout
    );
    let removed = server.json(&["acl", "remove", "--group", "billing"])?;
    assert_eq!(removed.as_array().map(Vec::len), Some(2), "{removed}");
    let none = server.run(&["acl", "remove", "--group", "billing"])?.ok()?;
    assert_eq!(none.stdout.trim(), "No ACL bindings matched.");
    let left = server.json(&["acl", "list"])?;
    assert_eq!(left.as_array().map(Vec::len), Some(2), "{left}");
    Ok(())
}

#[test]
fn a_secured_server_needs_a_user_and_says_so_in_one_line() -> Result<()> {
    // Users and ACLs are made while the server is open, then it restarts
    // with the authorizer on the same data.
    let open = Server::start()?;
    for (name, password) in [("admin", "admin-secret"), ("alice", "alice-secret")] {
        open.run_with_stdin(
            &["user", "set", name, "--password-stdin"],
            password.as_bytes(),
        )?
        .ok()?;
    }
    open.run(&["topic", "create", "orders"])?.ok()?;
    let dir = open.stop()?;
    let server = Server::start_in(dir, &["--authorizer", "acl", "--super-users", "User:admin"])?;

    let anonymous = run_as(&server, None, &["topic", "list"], b"")?.one_line_error()?;
    assert!(
        anonymous.contains("HTTP 401") && anonymous.contains("--user"),
        "{anonymous}"
    );
    let wrong =
        run_as(&server, Some(("alice", "nope")), &["topic", "list"], b"")?.one_line_error()?;
    assert!(wrong.contains("HTTP 401"), "{wrong}");
    assert!(!wrong.contains("nope"), "{wrong}");

    let denied = run_as(
        &server,
        Some(("alice", "alice-secret")),
        &["topic", "describe", "orders"],
        b"",
    )?
    .one_line_error()?;
    assert!(
        denied.contains("HTTP 403") && denied.contains("User:alice"),
        "{denied}"
    );
    let listed = run_as(
        &server,
        Some(("alice", "alice-secret")),
        &["--output", "json", "topic", "list"],
        b"",
    )?
    .json()?;
    assert_eq!(listed, json!([]), "alice may describe no topic");

    let admin = Some(("admin", "admin-secret"));
    run_as(
        &server,
        admin,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
            "--topic",
            "orders",
        ],
        b"",
    )?
    .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let run = run_as(
            &server,
            Some(("alice", "alice-secret")),
            &["--output", "json", "topic", "describe", "orders"],
            b"",
        )?;
        if run.code == Some(0) {
            let detail: Value = serde_json::from_str(&run.stdout)?;
            assert_eq!(detail["name"], "orders");
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!("the ACL did not take effect: {run:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let missing = streamctl()
        .args([
            "--server",
            server.http.as_str(),
            "--user",
            "alice",
            "topic",
            "list",
        ])
        .output()?;
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("STREAMCTL_PASSWORD"), "{stderr}");
    Ok(())
}

#[test]
fn an_unreadable_or_empty_ca_cert_is_one_line_naming_the_flag() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    for path in [dir.path().join("missing.pem"), empty] {
        let path = path.to_string_lossy().into_owned();
        let run = common::run_streamctl(
            &[
                "--server",
                "https://127.0.0.1:1",
                "--ca-cert",
                &path,
                "topic",
                "list",
            ],
            b"",
        )?;
        let error = run.one_line_error()?;
        assert!(
            error.contains("--ca-cert") && error.contains(&path),
            "{error}"
        );
    }
    Ok(())
}
