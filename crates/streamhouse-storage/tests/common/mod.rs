//! Backends for the storage integration tests: every test body runs on the
//! embedded default (SQLite + a local directory) and on PostgreSQL + the S3
//! server (when the test script provides them).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use streamhouse_core::Record;
use streamhouse_metadata::MetadataStore;
use streamhouse_metadata::testing::{isolated_postgres, temp_sqlite};
use streamhouse_storage::testing::isolated_s3;
use streamhouse_storage::{FlushConfig, ObjectStorage, StorageConfig};

/// A metadata store and an object storage location for one test.
pub(crate) struct Backend {
    pub name: &'static str,
    pub metadata: Arc<dyn MetadataStore>,
    pub storage: ObjectStorage,
    _dirs: Vec<tempfile::TempDir>,
}

pub(crate) async fn sqlite_local() -> Backend {
    let sqlite = temp_sqlite().await.expect("sqlite");
    let objects = tempfile::tempdir().expect("tempdir");
    let storage = ObjectStorage::local(objects.path()).expect("local storage");
    Backend {
        name: "sqlite+local",
        metadata: Arc::new(sqlite.store.clone()),
        storage,
        _dirs: vec![sqlite.dir, objects],
    }
}

pub(crate) async fn postgres_s3(test_name: &str) -> Option<Backend> {
    let metadata = isolated_postgres(test_name).await?;
    let storage = isolated_s3(test_name)?;
    Some(Backend {
        name: "postgres+s3",
        metadata: Arc::new(metadata),
        storage,
        _dirs: Vec::new(),
    })
}

/// Runs `$body(backend)` as two tests: `sqlite_local` and `postgres_s3`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_local() {
                    super::$name($crate::common::sqlite_local().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres_s3() {
                    if let Some(backend) =
                        $crate::common::postgres_s3(concat!("storage_", stringify!($name))).await
                    {
                        super::$name(backend).await;
                    }
                }
            }
        )*
    };
}

/// Engine settings for tests: short flush interval, fast retries.
pub(crate) fn test_config() -> StorageConfig {
    StorageConfig {
        flush: FlushConfig {
            flush_interval: Duration::from_millis(20),
            upload_backoff: Duration::from_millis(10),
            ..FlushConfig::default()
        },
        ..StorageConfig::default()
    }
}

/// A record whose contents encode `(partition, n)`, with a key, headers
/// and a distinct timestamp, or no key every seventh record.
pub(crate) fn numbered_record(partition: i32, n: u64) -> Record {
    let mut record = Record::new(
        1_700_000_000_000 + n as i64,
        Bytes::from(format!(
            "value-{partition}-{n}-{}",
            "x".repeat((n % 50) as usize)
        )),
    )
    .with_header("n", Some(Bytes::from(n.to_string())))
    .with_header("null", None);
    record = match n % 7 {
        0 => record,
        1 => record.with_key(Bytes::new()),
        _ => record.with_key(Bytes::from(format!("key-{n}"))),
    };
    record
}

/// `record` as it should be read back at `offset`.
pub(crate) fn at_offset(record: &Record, offset: i64) -> Record {
    record.clone().with_offset(offset)
}
