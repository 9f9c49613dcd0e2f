//! The real `streamhouse` binary: how it reports bad configuration, how
//! flags, environment and the TOML file combine, and that SIGTERM flushes
//! buffered appends before the process exits.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::agent::{Agent, Backend, streamhouse};
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::json;

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

/// Reads every record of a partition through the REST API: (offset, value).
async fn read_all(
    client: &reqwest::Client,
    http: &str,
    topic: &str,
    partition: i32,
) -> Result<Vec<(i64, String)>> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let (status, read) = common::into_json(
            client
                .get(format!(
                    "{http}/api/v1/topics/{topic}/partitions/{partition}/records?offset={offset}"
                ))
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{read}");
        let batch = read["records"].as_array().context("records")?;
        if batch.is_empty() {
            return Ok(records);
        }
        for record in batch {
            let at = record["offset"].as_i64().context("offset")?;
            let value = record["value"].as_str().context("value")?.to_string();
            records.push((at, value));
            offset = at + 1;
        }
    }
}

/// Sends produce requests of one record per partition until the agent
/// stops answering. Returns the values acknowledged, per partition, and
/// those of the request in flight when it stopped (which may or may not
/// have been committed).
async fn produce_until_killed(
    client: reqwest::Client,
    http: String,
    partitions: i32,
    first: usize,
) -> (Vec<Vec<String>>, Vec<String>, usize) {
    let mut acked = vec![Vec::new(); partitions as usize];
    let mut n = first;
    loop {
        let values: Vec<String> = (0..partitions).map(|p| format!("p{p}-{n}")).collect();
        let records: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(p, v)| json!({"partition": p, "value": v}))
            .collect();
        let response = client
            .post(format!("{http}/api/v1/topics/killed/records"))
            .json(&json!({ "records": records }))
            .send()
            .await;
        match response {
            Ok(response) if response.status() == StatusCode::OK => {
                for (p, value) in values.into_iter().enumerate() {
                    acked[p].push(value);
                }
                n += 1;
            }
            _ => return (acked, values, n + 1),
        }
    }
}

/// Compaction and garbage collection killed with SIGKILL at random points,
/// again and again, while producers write: no acknowledged record is lost
/// or duplicated, and afterwards the consistency checker finds every
/// segment row's bytes intact. On the embedded default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_compaction_and_gc_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let backend = Backend::embedded(&dir.path().join("data"))?;
    sigkill_during_jobs(dir.path(), &backend).await
}

/// The same on PostgreSQL and the S3 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_compaction_and_gc_loses_nothing_on_postgres_and_s3() -> Result<()> {
    let Some(backend) = Backend::postgres_s3("sigkill_jobs").await? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    sigkill_during_jobs(dir.path(), &backend).await
}

async fn sigkill_during_jobs(dir: &Path, backend: &Backend) -> Result<()> {
    const PARTITIONS: i32 = 4;
    let data = dir.join("data");
    let serve = || {
        let mut command = streamhouse(dir);
        command
            .args([
                "serve",
                "--kafka-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args(["--metadata", &backend.metadata_url])
            .args(["--object-store", &backend.object_url])
            .args(["--flush-interval-ms", "2", "--job-interval-ms", "10"])
            .args(["--compaction-span-ms", "0", "--gc-grace-ms", "0"])
            .args(["--compaction-target-bytes", "16384"]);
        command
    };
    let client = reqwest::Client::new();
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); PARTITIONS as usize];
    let mut maybe: Vec<String> = Vec::new();
    let mut next = 0;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut most_rows = 0;
    for round in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut agent = Agent::start(&mut serve()).await?;
        if round == 0 {
            let (status, body) = common::into_json(
                client
                    .post(format!("{}/api/v1/topics", agent.http))
                    .json(&json!({"name": "killed", "partitions": PARTITIONS}))
                    .send()
                    .await?,
            )
            .await?;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let producer = tokio::spawn(produce_until_killed(
            client.clone(),
            agent.http.clone(),
            PARTITIONS,
            next,
        ));
        // Past the previous runner's lease (1 s), into the jobs.
        let lifetime = Duration::from_millis(1_100 + seed % 700);
        tokio::time::sleep(lifetime).await;
        agent.signal(Signal::SIGKILL)?;
        agent.wait(Duration::from_secs(10)).await?;
        let (round_acked, in_flight, after) = producer.await?;
        for (p, values) in round_acked.into_iter().enumerate() {
            acked[p].extend(values);
        }
        maybe.extend(in_flight);
        next = after;
        let rows = segment_rows(backend).await?;
        most_rows = most_rows.max(rows);
        eprintln!(
            "round {round}: killed after {lifetime:?}; {rows} segment rows, next request {next}"
        );
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 200, "only {total} records were acknowledged");

    // A last agent finishes the jobs; every acknowledged record is there
    // exactly once, in order.
    let agent = Agent::start(&mut serve()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while flushed_rows(backend, PARTITIONS).await? > 0 {
        if Instant::now() > deadline {
            bail!(
                "compaction did not finish: {} rows",
                segment_rows(backend).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stored_records = 0;
    for p in 0..PARTITIONS {
        let read = read_all(&client, &agent.http, "killed", p).await?;
        let offsets: Vec<i64> = read.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..read.len() as i64).collect::<Vec<_>>(),
            "partition {p}"
        );
        let values: Vec<String> = read.into_iter().map(|(_, v)| v).collect();
        stored_records += values.len();
        let unique: std::collections::HashSet<&String> = values.iter().collect();
        assert_eq!(unique.len(), values.len(), "partition {p} has duplicates");
        // Acknowledged values in order; anything else was in flight at a kill.
        let kept: Vec<&String> = values.iter().filter(|v| !maybe.contains(v)).collect();
        assert_eq!(
            kept,
            acked[p as usize].iter().collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    assert_eq!(agent.stop().await?.code(), Some(0));
    eprintln!(
        "{total} acknowledged, {stored_records} stored, at most {most_rows} rows between kills"
    );

    let metadata = backend.metadata().await?;
    let report =
        streamhouse_storage::jobs::check_consistency(metadata.as_ref(), &backend.storage).await?;
    assert!(report.is_ok(), "{}", report.problems.join("\n"));
    assert_eq!(report.records, stored_records as u64);
    Ok(())
}

/// Rows of flushed (not yet compacted) segments of topic "killed".
async fn flushed_rows(backend: &Backend, partitions: i32) -> Result<usize> {
    let metadata = backend.metadata().await?;
    let mut flushed = 0;
    for p in 0..partitions {
        flushed += metadata
            .list_segments("killed", p, 0, 1_000_000)
            .await?
            .iter()
            .filter(|row| !streamhouse_storage::jobs::is_compacted_key(&row.key))
            .count();
    }
    Ok(flushed)
}

/// Segment rows in the agent's metadata store, read while it runs.
async fn segment_rows(backend: &Backend) -> Result<i64> {
    let metadata = backend.metadata().await?;
    Ok(metadata.storage_stats().await?.segment_rows)
}

#[test]
fn listener_and_tls_mistakes_exit_2_with_one_line() {
    assert_config_error(
        &["serve", "--kafka-listen", "SSL://127.0.0.1:0"],
        &[],
        "error: --kafka-listen: the SSL listener 127.0.0.1:0 needs --tls-cert and --tls-key",
    );
    assert_config_error(
        &[
            "serve",
            "--kafka-listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "PLAINTEXT://127.0.0.1:0",
        ],
        &[],
        "error: --kafka-listen: PLAINTEXT is given twice",
    );
    assert_config_error(
        &["serve"],
        &[("STREAMHOUSE_KAFKA_LISTEN", "127.0.0.1:0,QUIC://127.0.0.1:0")],
        "error: --kafka-listen: unknown security protocol \"QUIC\"",
    );
    assert_config_error(
        &[
            "serve",
            "--kafka-listen",
            "SASL_SSL://127.0.0.1:0",
            "--tls-cert",
            "/no/such/cert.pem",
            "--tls-key",
            "/no/such/key.pem",
        ],
        &[],
        "error: --tls-cert: cannot read /no/such/cert.pem",
    );
    assert_config_error(
        &["serve", "--sasl-mechanisms", "PLAIN,GSSAPI"],
        &[],
        "error: --sasl-mechanisms: unknown SASL mechanism \"GSSAPI\"",
    );
}

/// A CA and a server certificate for localhost and 127.0.0.1, as PEM:
/// (CA certificate, server certificate, server key).
fn certificates(cn: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{cn} CA"));
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

fn trusting(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type KafkaTls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn kafka_tls(addr: &str, ca_pem: &str) -> std::io::Result<KafkaTls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(trusting(ca_pem))
        .connect(name, tcp)
        .await
}

/// ApiVersions v0 by hand; whether an answer with our correlation id came.
async fn api_versions(stream: &mut KafkaTls) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // length 10, api key 18, version 0, correlation id 77, no client id
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 77, 0xff, 0xff];
    if stream.write_all(&request).await.is_err() {
        return false;
    }
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await?;
        let mut frame = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
        stream.read_exact(&mut frame).await?;
        Ok::<_, std::io::Error>(frame)
    })
    .await;
    matches!(read, Ok(Ok(frame)) if frame.get(..4) == Some(&77i32.to_be_bytes()[..]))
}

async fn https_health(base: &str, ca_pem: &str) -> Result<StatusCode> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .build()?;
    Ok(client.get(format!("{base}/health")).send().await?.status())
}

#[tokio::test]
async fn sighup_reloads_certificates_without_dropping_connections() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (first_ca, cert, key) = certificates("first");
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key)?;
    let mut command = streamhouse(dir.path());
    command
        .args([
            "serve",
            "--kafka-listen",
            "SSL://127.0.0.1:0",
            "--kafka-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--http-tls",
            "--tls-cert",
        ])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path);
    let mut agent = Agent::start(&mut command).await?;
    let https = agent.http.replacen("http://", "https://", 1);
    assert_eq!(https_health(&https, &first_ca).await?, StatusCode::OK);
    let mut old = kafka_tls(&agent.kafka, &first_ca).await?;
    assert!(api_versions(&mut old).await);

    let (second_ca, cert, key) = certificates("second");
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key)?;
    agent.signal(Signal::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent
        .lines()
        .iter()
        .any(|l| l.contains("TLS certificates reloaded"))
    {
        assert!(Instant::now() < deadline, "no reload: {:?}", agent.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut new = kafka_tls(&agent.kafka, &second_ca).await?;
    assert!(api_versions(&mut new).await);
    assert!(kafka_tls(&agent.kafka, &first_ca).await.is_err());
    assert_eq!(https_health(&https, &second_ca).await?, StatusCode::OK);
    assert!(
        api_versions(&mut old).await,
        "an open connection is not dropped"
    );

    // A broken key keeps the certificates in force, and the agent running.
    std::fs::write(&key_path, "garbage")?;
    agent.signal(Signal::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent
        .lines()
        .iter()
        .any(|l| l.contains("cannot reload TLS certificates"))
    {
        assert!(Instant::now() < deadline, "no error: {:?}", agent.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        agent.child.try_wait()?.is_none(),
        "SIGHUP does not stop the agent"
    );
    let mut after = kafka_tls(&agent.kafka, &second_ca).await?;
    assert!(api_versions(&mut after).await);
    assert!(
        !agent.lines().iter().any(|l| l.contains("PRIVATE KEY")),
        "no key material in the log"
    );

    let status = agent.stop().await?;
    assert_eq!(status.code(), Some(0));
    Ok(())
}
