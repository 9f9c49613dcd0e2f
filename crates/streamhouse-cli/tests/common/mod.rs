//! A real `streamhouse serve` process on free loopback ports with a
//! temporary data directory, and helpers to run the real `streamctl`
//! binary against it.
//!
//! The server binary belongs to another package, so cargo does not build
//! it for these tests: the first test to need it runs
//! `cargo build -p streamhouse-server` once, and the binary is taken from
//! the same target directory as `streamctl`.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;

/// How long the server may take to print its listen addresses.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn streamctl_binary() -> &'static str {
    env!("CARGO_BIN_EXE_streamctl")
}

/// The `streamhouse` binary, built once per test process.
fn server_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_server().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_server() -> Result<PathBuf> {
    let streamctl = Path::new(streamctl_binary());
    let profile_dir = streamctl
        .parent()
        .context("streamctl binary has no parent directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--quiet",
            "-p",
            "streamhouse-server",
            "--bin",
            "streamhouse",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let status = build
        .status()
        .context("running cargo build -p streamhouse-server")?;
    ensure!(
        status.success(),
        "cargo build -p streamhouse-server failed: {status}"
    );
    let binary = profile_dir.join(format!("streamhouse{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        binary.exists(),
        "{} does not exist after building streamhouse-server",
        binary.display()
    );
    Ok(binary)
}

/// What one `streamctl` run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails unless the run exited 0.
    pub(crate) fn ok(self) -> Result<Self> {
        ensure!(self.code == Some(0), "streamctl failed: {self:?}");
        Ok(self)
    }

    /// The stdout as one JSON document.
    pub(crate) fn json(self) -> Result<Value> {
        let run = self.ok()?;
        serde_json::from_str(&run.stdout).with_context(|| format!("stdout is not JSON: {run:?}"))
    }

    /// Fails unless the run exited 1 with exactly one `error: …` line on
    /// stderr; returns that line.
    pub(crate) fn one_line_error(self) -> Result<String> {
        ensure!(self.code == Some(1), "expected exit code 1: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "expected one `error:` line on stderr: {self:?}"
        );
        Ok(lines[0].to_string())
    }
}

/// `streamctl` with none of its variables inherited.
pub(crate) fn streamctl() -> Command {
    let mut command = Command::new(streamctl_binary());
    for variable in [
        "STREAMCTL_SERVER",
        "STREAMCTL_USER",
        "STREAMCTL_PASSWORD",
        "STREAMCTL_CA_CERT",
    ] {
        command.env_remove(variable);
    }
    command
}

/// Runs `streamctl ARGS` with `stdin` as its input.
pub(crate) fn run_streamctl(args: &[&str], stdin: &[u8]) -> Result<Run> {
    let mut child = streamctl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting streamctl")?;
    // Written from a thread: a large input would otherwise deadlock against
    // a child blocked on writing its own output.
    let mut input = child.stdin.take().context("streamctl stdin")?;
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let output = child.wait_with_output().context("waiting for streamctl")?;
    writer
        .join()
        .map_err(|_| anyhow!("stdin writer panicked"))?
        .context("writing streamctl stdin")?;
    Ok(Run::from(output))
}

/// A running `streamhouse serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// `127.0.0.1:PORT` of the Kafka listener.
    pub kafka: String,
    /// Holds `data/` (metadata.db and objects/).
    pub dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Result<Self> {
        Self::start_in(tempfile::tempdir()?, &[])
    }

    /// `streamhouse serve` on the data under `dir`, with `extra` flags.
    pub(crate) fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Result<Self> {
        let binary = server_binary()?;
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STREAMHOUSE_") {
                command.env_remove(key);
            }
        }
        let data_dir = dir.path().join("data");
        let mut child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--kafka-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--flush-interval-ms", "5"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting streamhouse serve")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let (sender, receiver) = mpsc::channel();
        // Keeps draining the log after startup so the server never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for (name, marker) in [
                    ("http", "http listening on "),
                    ("kafka", "kafka listening on "),
                ] {
                    if let Some((_, address)) = line.split_once(marker) {
                        let _ = sender.send((name, address.trim().to_string()));
                    }
                }
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let (mut http, mut kafka) = (None, None);
        while http.is_none() || kafka.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(("http", address)) => http = Some(address),
                Ok((_, address)) => kafka = Some(address),
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait();
                    bail!("streamhouse serve did not report its addresses (exit: {status:?})");
                }
            }
        }
        Ok(Self {
            child,
            http: format!("http://{}", http.unwrap_or_default()),
            kafka: kafka.unwrap_or_default(),
            dir,
        })
    }

    /// Runs `streamctl --server URL ARGS` with empty stdin.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Run> {
        self.run_with_stdin(args, b"")
    }

    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Result<Run> {
        let mut full = vec!["--server", self.http.as_str()];
        full.extend_from_slice(args);
        run_streamctl(&full, stdin)
    }

    /// Runs with `--output json` and parses the one document printed.
    pub(crate) fn json(&self, args: &[&str]) -> Result<Value> {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        self.run(&full)?.json()
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the server and hands back its data, to start another on it.
    pub(crate) fn stop(mut self) -> Result<tempfile::TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(std::mem::replace(&mut self.dir, tempfile::tempdir()?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses JSON lines (one document per line).
pub(crate) fn json_lines(text: &str) -> Result<Vec<Value>> {
    text.lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line:?}")))
        .collect()
}
