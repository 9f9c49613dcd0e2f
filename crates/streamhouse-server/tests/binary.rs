//! The real `streamhouse` binary: how it reports bad configuration, how
//! flags, environment and the TOML file combine, and that SIGTERM flushes
//! buffered appends before the process exits.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::json;

/// The binary with no inherited `STREAMHOUSE_*` settings, in `dir`.
fn streamhouse(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamhouse"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STREAMHOUSE_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "info").current_dir(dir);
    command
}

/// Runs the binary to completion; returns its exit code and stderr lines.
fn run_to_exit(command: &mut Command) -> Result<(Option<i32>, Vec<String>)> {
    let output = command.stdin(Stdio::null()).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    Ok((
        output.status.code(),
        stderr.lines().map(str::to_string).collect(),
    ))
}

#[track_caller]
fn assert_config_error(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = streamhouse(dir.path());
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let (code, lines) = run_to_exit(&mut command).expect("run streamhouse");
    assert_eq!(
        code,
        Some(2),
        "exit code for {args:?} {env:?}; stderr {lines:?}"
    );
    assert_eq!(
        lines.len(),
        1,
        "exactly one stderr line for {args:?}: {lines:?}"
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(expected),
        "{:?} should contain {expected:?}",
        lines[0]
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created when the configuration is bad"
    );
}

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_flag() {
    assert_config_error(
        &["serve", "--kafka-listen", "abc"],
        &[],
        "error: --kafka-listen: \"abc\" is not HOST:PORT",
    );
    assert_config_error(
        &["serve", "--metadata", "mysql://x"],
        &[],
        "error: --metadata: unsupported URL \"mysql://x\" (expected sqlite://PATH or postgres://…)",
    );
    assert_config_error(
        &["serve", "--object-store", "ftp://host/x"],
        &[],
        "error: --object-store: unsupported URL \"ftp://host/x\"",
    );
    assert_config_error(
        &["serve", "--flush-interval-ms", "0"],
        &[],
        "error: --flush-interval-ms: must be between 1 and 10000",
    );
    assert_config_error(
        &["serve", "--flush-interval-ms", "10001"],
        &[],
        "error: --flush-interval-ms: must be between 1 and 10000",
    );
    assert_config_error(
        &["serve", "--http-listen", "localhost:99999"],
        &[],
        "--http-listen:",
    );
    assert_config_error(&["serve", "--cache-bytes", "-1"], &[], "--cache-bytes:");
    assert_config_error(
        &["serve", "--config", "/no/such/streamhouse.toml"],
        &[],
        "error: --config: cannot read /no/such/streamhouse.toml",
    );
    assert_config_error(&["serve", "--no-such-flag"], &[], "--no-such-flag");
    // From the environment: the flag and the variable are both named.
    assert_config_error(
        &["serve"],
        &[("STREAMHOUSE_KAFKA_LISTEN", "nope")],
        "error: --kafka-listen: \"nope\" is not HOST:PORT (from STREAMHOUSE_KAFKA_LISTEN)",
    );
}

#[test]
fn invalid_config_file_names_config_and_the_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "kafka_listen = \"127.0.0.1:0\"\nflush_interval_ms = \"fast\"\n",
    )?;
    let file = file.display().to_string();
    assert_config_error(
        &["serve", "--config", &file],
        &[],
        &format!("--config: {file}:2:"),
    );

    std::fs::write(&file, "kafka_port = 9092\n")?;
    assert_config_error(
        &["serve", "--config", &file],
        &[],
        &format!("--config: {file}:1:"),
    );

    // A valid file with a bad value names the flag and the file.
    std::fs::write(&file, "flush_interval_ms = 0\n")?;
    assert_config_error(
        &["serve", "--config", &file],
        &[],
        &format!("--flush-interval-ms: must be between 1 and 10000 (from {file})"),
    );
    Ok(())
}

#[test]
fn unreachable_postgres_fails_with_one_clear_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Port 1 on loopback: connection refused at once.
    let (code, lines) = run_to_exit(streamhouse(dir.path()).args([
        "serve",
        "--metadata",
        "postgres://streamhouse:secret@127.0.0.1:1/none",
        "--kafka-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]))?;
    assert_eq!(code, Some(1), "{lines:?}");
    let last = lines.last().context("stderr is empty")?;
    assert!(
        last.starts_with(
            "error: --metadata: cannot open postgres://streamhouse:***@127.0.0.1:1/none"
        ),
        "{last}"
    );
    assert!(!lines.iter().any(|l| l.contains("secret")), "{lines:?}");
    Ok(())
}

/// A `streamhouse serve` process, killed if the test ends without
/// stopping it.
struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    http: String,
    kafka: String,
}

impl Agent {
    async fn start(command: &mut Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        // Drains stderr continuously so the agent never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        let mut agent = Self {
            child,
            log,
            http: String::new(),
            kafka: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let (Some(http), Some(kafka)) = (
                agent.logged_after("http listening on "),
                agent.logged_after("kafka listening on "),
            ) {
                agent.http = format!("http://{http}");
                agent.kafka = kafka;
                return Ok(agent);
            }
            if let Some(status) = agent.child.try_wait()? {
                bail!(
                    "agent exited with {status} before listening: {:?}",
                    agent.lines()
                );
            }
            if Instant::now() > deadline {
                bail!("agent did not start listening: {:?}", agent.lines());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The word after `marker` in the first log line containing it.
    fn logged_after(&self, marker: &str) -> Option<String> {
        self.lines().iter().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.split_whitespace().next().map(str::to_string)
        })
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = i32::try_from(self.child.id())?;
        kill(Pid::from_raw(pid), signal)?;
        Ok(())
    }

    async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("agent still running after {timeout:?}: {:?}", self.lines());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait(Duration::from_secs(20)).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test]
async fn flags_win_over_environment_over_config_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (file_dir, env_dir, flag_dir) = (
        dir.path().join("from-file"),
        dir.path().join("from-env"),
        dir.path().join("from-flag"),
    );
    let config = dir.path().join("streamhouse.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nagent_id = \"file-agent\"\nflush_interval_ms = 7\n\
             kafka_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
            file_dir.display().to_string()
        ),
    )?;
    let mut command = streamhouse(dir.path());
    command
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&flag_dir)
        .env("STREAMHOUSE_DATA_DIR", &env_dir)
        .env("STREAMHOUSE_AGENT_ID", "env-agent");
    let agent = Agent::start(&mut command).await?;

    // Ports from the file (0), not the defaults 9092/8080.
    assert!(!agent.kafka.ends_with(":9092"), "{}", agent.kafka);
    assert!(!agent.http.ends_with(":8080"), "{}", agent.http);
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/health", agent.http)).send().await?;
    assert_eq!(health.status(), StatusCode::OK);
    // The data dir from the flag beats the environment and the file.
    assert!(flag_dir.join("metadata.db").exists());
    assert!(!env_dir.exists() && !file_dir.exists());
    // The agent id from the environment beats the file; the flush
    // interval from the file beats the default.
    let startup = agent
        .lines()
        .into_iter()
        .find(|l| l.contains("starting streamhouse"))
        .context("startup line")?;
    assert!(startup.contains("agent_id=env-agent"), "{startup}");
    assert!(startup.contains("flush_interval_ms=7"), "{startup}");

    let status = agent.stop().await?;
    assert_eq!(status.code(), Some(0));
    Ok(())
}

#[tokio::test]
async fn sigterm_flushes_buffered_appends_and_a_restart_reads_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let serve = |flush_ms: &str| {
        let mut command = streamhouse(dir.path());
        command.args([
            "serve",
            "--kafka-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ]);
        command
            .arg("--data-dir")
            .arg(&data)
            .args(["--flush-interval-ms", flush_ms]);
        command
    };
    let spawned = Instant::now();
    // The longest flush interval allowed: the engine's first timed flush
    // after startup is 10 s away, so only the shutdown can flush sooner.
    let agent = Agent::start(&mut serve("10000")).await?;
    let client = reqwest::Client::new();
    let (status, _) = common::into_json(
        client
            .post(format!("{}/api/v1/topics", agent.http))
            .json(&json!({"name": "durable", "partitions": 1}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED);

    let produce = tokio::spawn(
        client
            .post(format!("{}/api/v1/topics/durable/records", agent.http))
            .json(&json!({"records": [{"value": "a"}, {"value": "b"}, {"key": "k", "value": "c"}]}))
            .send(),
    );
    // The append counter moves once the records are buffered; they are
    // not committed before the next flush.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(format!("{}/metrics", agent.http))
            .send()
            .await?
            .text()
            .await?;
        if metrics
            .lines()
            .any(|l| l == "streamhouse_append_records_total 3")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the records were never buffered: {metrics}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !produce.is_finished(),
        "the produce must still wait for its flush"
    );

    let mut agent = agent;
    agent.signal(Signal::SIGTERM)?;
    let response = common::into_json(produce.await??).await?;
    assert!(
        spawned.elapsed() < Duration::from_secs(10),
        "answered by the shutdown flush, not by the 10 s timer ({:?})",
        spawned.elapsed()
    );
    assert_eq!(response.0, StatusCode::OK, "{}", response.1);
    assert_eq!(
        response.1,
        json!({"offsets": [
            {"partition": 0, "offset": 0},
            {"partition": 0, "offset": 1},
            {"partition": 0, "offset": 2}
        ]})
    );
    let status = agent.wait(Duration::from_secs(20)).await?;
    assert_eq!(status.code(), Some(0), "{:?}", agent.lines());

    // A new process on the same data directory reads them back.
    let restarted = Agent::start(&mut serve("10")).await?;
    let (status, read) = common::into_json(
        client
            .get(format!(
                "{}/api/v1/topics/durable/partitions/0/records?offset=0",
                restarted.http
            ))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    let values: Vec<&str> = read["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(values, ["a", "b", "c"]);
    assert_eq!(read["records"][2]["key"], "k");
    assert_eq!(restarted.stop().await?.code(), Some(0));
    Ok(())
}
