//! The real `streamhouse` binary as a child process: the command with no
//! inherited settings, a running agent whose log lines a test can read,
//! and the backends (`serve` flags) it runs on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary with no inherited `STREAMHOUSE_*` settings, in `dir`.
pub(crate) fn streamhouse(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamhouse"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STREAMHOUSE_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "info").current_dir(dir);
    command
}

/// A `streamhouse serve` process, killed if the test ends without
/// stopping it.
pub(crate) struct Agent {
    pub(crate) child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub(crate) http: String,
    pub(crate) kafka: String,
}

impl Agent {
    pub(crate) async fn start(command: &mut Command) -> Result<Self> {
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

    pub(crate) fn lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The word after `marker` in the first log line containing it.
    pub(crate) fn logged_after(&self, marker: &str) -> Option<String> {
        self.lines().iter().find_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            rest.split_whitespace().next().map(str::to_string)
        })
    }

    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        let pid = i32::try_from(self.child.id())?;
        kill(Pid::from_raw(pid), signal)?;
        Ok(())
    }

    pub(crate) async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
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

    pub(crate) async fn stop(mut self) -> Result<ExitStatus> {
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

/// Where an agent keeps its metadata and objects, as `serve` flags, and
/// how a test reads them while agents come and go.
pub(crate) struct Backend {
    pub(crate) metadata_url: String,
    pub(crate) object_url: String,
    pub(crate) storage: streamhouse_storage::ObjectStorage,
}

impl Backend {
    pub(crate) fn embedded(data: &Path) -> Result<Self> {
        Ok(Self {
            metadata_url: format!("sqlite://{}", data.join("metadata.db").display()),
            object_url: format!("file://{}", data.join("objects").display()),
            storage: streamhouse_storage::ObjectStorage::local(data.join("objects"))?,
        })
    }

    /// A schema of its own on the test PostgreSQL server (named in the
    /// URL's `options`) and a prefix of its own in the test bucket. `None`
    /// after a loud SKIPPED line when the servers are not configured.
    pub(crate) async fn postgres_s3(test_name: &str) -> Result<Option<Self>> {
        use streamhouse_metadata::testing::{
            POSTGRES_URL_ENV, create_schema, server_url, unique_schema,
        };
        let Some(pg_url) = server_url(POSTGRES_URL_ENV, test_name) else {
            return Ok(None);
        };
        let Some(s3_url) = server_url(streamhouse_storage::testing::S3_URL_ENV, test_name) else {
            return Ok(None);
        };
        let schema = unique_schema(test_name);
        create_schema(&pg_url, &schema).await?;
        let separator = if pg_url.contains('?') { '&' } else { '?' };
        let object_url = format!("{}/{schema}", s3_url.trim_end_matches('/'));
        Ok(Some(Self {
            metadata_url: format!("{pg_url}{separator}options=-c%20search_path%3D{schema}"),
            storage: streamhouse_storage::ObjectStorage::from_url(&object_url)?,
            object_url,
        }))
    }

    pub(crate) async fn metadata(&self) -> Result<Arc<dyn streamhouse_metadata::MetadataStore>> {
        Ok(streamhouse_metadata::open(&self.metadata_url).await?)
    }
}
