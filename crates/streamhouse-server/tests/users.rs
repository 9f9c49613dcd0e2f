//! The real `streamhouse user` command: a user created offline, before any
//! agent runs, can log in; the password is read from stdin only and never
//! printed.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use streamhouse_metadata::SqliteStore;
use streamhouse_storage::security::{Principal, ScramMechanism};
use streamhouse_storage::{ObjectStorage, StorageConfig, StorageEngine};

/// Runs `streamhouse ARGS` in `dir` with `stdin`, and no inherited
/// `STREAMHOUSE_*` settings.
fn streamhouse(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamhouse"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STREAMHOUSE_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start streamhouse");
    // A command refused before it reads stdin closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn engine_on(db: &Path) -> StorageEngine {
    let store = SqliteStore::open(db).await.unwrap();
    StorageEngine::start(
        Arc::new(store),
        ObjectStorage::memory(),
        StorageConfig::default(),
    )
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_set_offline_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let set = streamhouse(
        dir.path(),
        &[
            "user",
            "set",
            "admin",
            "--password-stdin",
            "--data-dir",
            "d",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    for output in [&set.stdout, &set.stderr] {
        assert!(!text(output).contains(PASSWORD), "the password was printed");
    }

    let list = streamhouse(dir.path(), &["user", "list", "--data-dir", "d"], "");
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(
        text(&list.stdout),
        "admin SCRAM-SHA-256:8192 SCRAM-SHA-512:8192\n"
    );

    let engine = engine_on(&dir.path().join("d/metadata.db")).await;
    assert_eq!(
        engine
            .authenticate_password("admin", PASSWORD)
            .await
            .unwrap(),
        Some(Principal::user("admin")),
        "the trailing newline is not part of the password"
    );
    assert_eq!(
        engine
            .authenticate_password("admin", &format!("{PASSWORD}\n"))
            .await
            .unwrap(),
        None
    );
    for mechanism in ScramMechanism::ALL {
        let credential = engine
            .scram_credential("admin", mechanism)
            .await
            .unwrap()
            .expect("both mechanisms by default");
        assert_eq!(credential.iterations, 8192);
        assert_eq!(credential.salt.len(), 32);
        assert!(credential.verify_password(PASSWORD.as_bytes()));
    }
    engine.shutdown().await;

    // Replacing one mechanism, from the `--config` file's data_dir.
    std::fs::write(dir.path().join("sh.toml"), "data_dir = \"d\"\n").unwrap();
    let replace = streamhouse(
        dir.path(),
        &[
            "user",
            "set",
            "admin",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-512",
            "--iterations",
            "4096",
            "--config",
            "sh.toml",
        ],
        "new password\r\n",
    );
    assert!(replace.status.success(), "{}", text(&replace.stderr));
    let list = streamhouse(dir.path(), &["user", "list", "--config", "sh.toml"], "");
    assert_eq!(
        text(&list.stdout),
        "admin SCRAM-SHA-256:8192 SCRAM-SHA-512:4096\n"
    );
    let engine = engine_on(&dir.path().join("d/metadata.db")).await;
    assert!(
        engine
            .authenticate_password("admin", "new password")
            .await
            .unwrap()
            .is_some(),
        "SCRAM-SHA-512 is checked first"
    );
    engine.shutdown().await;

    let delete = streamhouse(
        dir.path(),
        &["user", "delete", "admin", "--data-dir", "d"],
        "",
    );
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    let list = streamhouse(dir.path(), &["user", "list", "--data-dir", "d"], "");
    assert_eq!(text(&list.stdout), "");
    let again = streamhouse(
        dir.path(),
        &["user", "delete", "admin", "--data-dir", "d"],
        "",
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("no SCRAM credential"));
}

#[test]
fn bad_input_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str, i32, &str)] = &[
        (&["user", "set", "a", "--password-stdin"], "\n", 1, "empty"),
        (&["user", "set", "a"], "pw\n", 2, "--password-stdin"),
        (
            &[
                "user",
                "set",
                "a",
                "--password-stdin",
                "--iterations",
                "100",
            ],
            "pw\n",
            2,
            "--iterations",
        ),
        (
            &["user", "set", "a", "--password-stdin", "--mechanism", "MD5"],
            "pw\n",
            2,
            "MD5",
        ),
        (
            &["user", "set", "", "--password-stdin"],
            "pw\n",
            1,
            "user name",
        ),
    ];
    for (args, stdin, code, expected) in cases {
        let output = streamhouse(dir.path(), args, stdin);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("pw"),
            "{args:?} printed the password: {stderr}"
        );
    }
}

/// The administrator created offline is a super user of an agent started
/// afterwards with `--authorizer acl --super-users User:admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_later_authenticates_and_authorizes_the_offline_user() {
    use streamhouse_server::{HostPort, KafkaListenAddress, Server, ServerConfig};
    use streamhouse_storage::security::{AclOperation, Caller, ResourceType};
    let dir = tempfile::tempdir().unwrap();
    let set = streamhouse(
        dir.path(),
        &[
            "user",
            "set",
            "admin",
            "--password-stdin",
            "--data-dir",
            "d",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let config = ServerConfig {
        kafka_listen: vec![KafkaListenAddress::plaintext(HostPort::new("127.0.0.1", 0))],
        http_listen: HostPort::new("127.0.0.1", 0),
        authorizer: true,
        super_users: vec![Principal::user("admin")],
        ..ServerConfig::with_data_dir(dir.path().join("d"))
    };
    let server = Server::start(config).await.unwrap();
    let engine = server.engine();
    assert!(engine.authorizer_enabled());
    let admin = engine
        .authenticate_password("admin", PASSWORD)
        .await
        .unwrap()
        .expect("the offline user logs in");
    let from = |principal: Principal| Caller::new(principal, "127.0.0.1");
    assert!(engine.authorize(
        &from(admin),
        AclOperation::Delete,
        ResourceType::Topic,
        "orders"
    ));
    assert!(!engine.authorize(
        &from(Principal::anonymous()),
        AclOperation::Describe,
        ResourceType::Topic,
        "orders"
    ));
    server.shutdown().await.unwrap();
}
