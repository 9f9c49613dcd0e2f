//! Access to object storage: choosing a backend from a URL, and the
//! instrumentation wrapper every request goes through.
//!
//! Wrapper order, outermost first: [`InstrumentedStore`] (counts what the
//! engine asks for, failures included) → optional test wrappers such as
//! [`crate::testing::FaultInjectingStore`] → the backend (`LocalFileSystem`,
//! `InMemory` or `AmazonS3`). Retrying is not a wrapper: the flusher retries
//! uploads itself so that it can fail the waiting appends after a bounded
//! number of attempts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig,
};
use rand::RngExt;

use crate::error::{Result, StorageError};
use crate::health::OutcomeTracker;

/// An object store together with the bucket name recorded in segment rows
/// and the key prefix under which StreamHouse writes.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<InstrumentedStore>,
    bucket: String,
    prefix: String,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("store", &self.store.inner.to_string())
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ObjectStorage {
    /// Wraps any object store. `prefix` may be empty; otherwise every key
    /// StreamHouse writes starts with `prefix/`.
    pub fn new(store: Arc<dyn ObjectStore>, bucket: impl Into<String>, prefix: &str) -> Self {
        Self {
            store: Arc::new(InstrumentedStore::new(store)),
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// An in-memory store, for unit tests only: nothing survives the process.
    pub fn memory() -> Self {
        Self::new(Arc::new(InMemory::new()), "memory", "")
    }

    /// A local directory (created if missing). Files are fsynced before a
    /// write returns, so an acknowledged flush survives a power loss.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| StorageError::InvalidObjectStoreUrl {
            url: dir.display().to_string(),
            reason: format!("cannot create directory: {e}"),
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StorageError::InvalidObjectStoreUrl {
                url: dir.display().to_string(),
                reason: e.to_string(),
            })?
            .with_fsync(true);
        Ok(Self::new(Arc::new(store), "local", ""))
    }

    /// Opens `file://PATH`, `memory://` or `s3://BUCKET[/PREFIX]`.
    ///
    /// For S3 the endpoint and credentials come from the standard variables
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` and `AWS_REGION` (default `us-east-1`). Requests
    /// use path-style addressing, which every S3-compatible server accepts,
    /// and plain HTTP is allowed when the endpoint is `http://`.
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: &str| StorageError::InvalidObjectStoreUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(invalid("the path is empty"));
            }
            return Self::local(path);
        }
        if url == "memory://" {
            return Ok(Self::memory());
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(invalid("expected file://PATH or s3://BUCKET[/PREFIX]"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is empty"));
        }
        let store = s3_from_env(bucket).map_err(|e| invalid(&e.to_string()))?;
        Ok(Self::new(Arc::new(store), bucket, prefix))
    }

    /// The same location with the backend wrapped, for example in a
    /// fault injector; request counters start again from zero.
    pub fn wrap_backend(
        &self,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            store: Arc::new(InstrumentedStore::new(wrap(self.store.inner.clone()))),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
    }

    /// The instrumented store all engine requests go through.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key of `relative` under the prefix.
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// Requests made so far, by kind.
    pub fn stats(&self) -> ObjectStoreStats {
        self.store.stats()
    }

    /// The streak of failed PUTs, for readiness.
    pub(crate) fn upload_outcomes(&self) -> &OutcomeTracker {
        &self.store.uploads
    }
}

fn s3_from_env(bucket: &str) -> object_store::Result<object_store::aws::AmazonS3> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(
            env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
        )
        .with_virtual_hosted_style_request(false)
        // Signing the payload means hashing every byte uploaded (SHA-256),
        // which costs more CPU than everything else on the write path;
        // requests are still signed, and TLS protects the body in transit.
        .with_unsigned_payload(true)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(30))
                .with_connect_timeout(Duration::from_secs(5)),
        );
    if let Some(endpoint) = env("AWS_ENDPOINT_URL").or_else(|| env("AWS_ENDPOINT")) {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    if let Some(key) = env("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = env("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    builder.build()
}

/// Counts of object-store requests as the engine issued them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectStoreStats {
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub lists: u64,
    pub copies: u64,
    pub errors: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

#[derive(Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
    copies: AtomicU64,
    errors: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
}

/// Counts and times every request, and exports them as metrics
/// (`streamhouse_object_store_*`).
#[derive(Debug)]
pub(crate) struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
    uploads: OutcomeTracker,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counters")
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

impl InstrumentedStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            counters: Arc::new(Counters::default()),
            uploads: OutcomeTracker::default(),
        }
    }

    pub(crate) fn stats(&self) -> ObjectStoreStats {
        let c = &self.counters;
        ObjectStoreStats {
            puts: c.puts.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            copies: c.copies.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
        }
    }

    fn finish<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        metrics::counter!("streamhouse_object_store_requests_total", "operation" => operation)
            .increment(1);
        metrics::histogram!("streamhouse_object_store_request_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            record_error(&self.counters, operation, error);
        }
        result
    }
}

fn record_error(counters: &Counters, operation: &'static str, error: &object_store::Error) {
    counters.errors.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(
        "streamhouse_object_store_errors_total",
        "operation" => operation,
        "kind" => error_kind(error)
    )
    .increment(1);
}

fn error_kind(error: &object_store::Error) -> &'static str {
    match error {
        object_store::Error::NotFound { .. } => "not_found",
        object_store::Error::AlreadyExists { .. } => "already_exists",
        object_store::Error::Precondition { .. } => "precondition",
        object_store::Error::PermissionDenied { .. } => "permission_denied",
        object_store::Error::Unauthenticated { .. } => "unauthenticated",
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            "not_supported"
        }
        _ => "other",
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let started = Instant::now();
        let len = payload.content_length() as u64;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.put_opts(location, payload, opts).await;
        self.uploads.record(&result);
        if result.is_ok() {
            self.counters
                .bytes_written
                .fetch_add(len, Ordering::Relaxed);
            metrics::counter!("streamhouse_object_store_bytes_total", "direction" => "written")
                .increment(len);
        }
        self.finish("put", started, result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let started = Instant::now();
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.finish("put_multipart", started, result)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let started = Instant::now();
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.get_opts(location, options).await;
        if let Ok(found) = &result {
            let len = found.range.end.saturating_sub(found.range.start);
            self.counters.bytes_read.fetch_add(len, Ordering::Relaxed);
            metrics::counter!("streamhouse_object_store_bytes_total", "direction" => "read")
                .increment(len);
        }
        self.finish("get", started, result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counters = self.counters.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |result| {
                counters.deletes.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("streamhouse_object_store_requests_total", "operation" => "delete")
                    .increment(1);
                if let Err(error) = result {
                    record_error(&counters, "delete", error);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streamhouse_object_store_requests_total", "operation" => "list")
            .increment(1);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let started = Instant::now();
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.list_with_delimiter(prefix).await;
        self.finish("list", started, result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let started = Instant::now();
        self.counters.copies.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.copy_opts(from, to, options).await;
        self.finish("copy", started, result)
    }
}

/// PUTs `payload` at `key`, retrying failures with exponential backoff
/// up to `attempts` times in all.
pub(crate) async fn put_with_retry(
    store: Arc<dyn ObjectStore>,
    key: String,
    payload: PutPayload,
    attempts: u32,
    backoff: Duration,
) -> Result<(), StorageError> {
    let path = Path::parse(&key)
        .map_err(|e| StorageError::object_store("put", &key, object_store::Error::from(e)))?;
    let mut attempt = 1;
    loop {
        match object_store::ObjectStoreExt::put(store.as_ref(), &path, payload.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt >= attempts => {
                tracing::error!(%key, attempt, %error, "upload failed; giving up");
                return Err(StorageError::UploadFailed {
                    key,
                    attempts: attempt,
                    source: Arc::new(error),
                });
            }
            Err(error) => {
                tracing::warn!(%key, attempt, %error, "upload failed; retrying");
                tokio::time::sleep(backoff_delay(backoff, attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// `base * 2^(attempt-1)`, with ±25% jitter so that agents that failed
/// together do not retry together.
pub(crate) fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let jitter = rand::rng().random_range(0.75..1.25);
    exp.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    #[test]
    fn parses_urls() {
        let local = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", local.path().join("objects").display());
        let storage = ObjectStorage::from_url(&url).expect("file url");
        assert_eq!(storage.bucket(), "local");
        assert!(local.path().join("objects").is_dir());

        assert!(matches!(
            ObjectStorage::from_url("ftp://x"),
            Err(StorageError::InvalidObjectStoreUrl { .. })
        ));
        assert!(matches!(
            ObjectStorage::from_url("s3://"),
            Err(StorageError::InvalidObjectStoreUrl { .. })
        ));
        assert!(matches!(
            ObjectStorage::from_url("file://"),
            Err(StorageError::InvalidObjectStoreUrl { .. })
        ));
    }

    #[test]
    fn s3_url_keeps_bucket_and_prefix() {
        let storage = ObjectStorage::from_url("s3://my-bucket/some/prefix/").expect("s3 url");
        assert_eq!(storage.bucket(), "my-bucket");
        assert_eq!(storage.prefix(), "some/prefix");
        assert_eq!(storage.key("batches/x.bin"), "some/prefix/batches/x.bin");
        let bare = ObjectStorage::from_url("s3://my-bucket").expect("s3 url");
        assert_eq!(bare.key("batches/x.bin"), "batches/x.bin");
    }

    #[tokio::test]
    async fn counts_requests() {
        let storage = ObjectStorage::memory();
        let store = storage.store();
        let path = Path::from("a/b");
        store
            .put(&path, PutPayload::from_static(b"hello"))
            .await
            .expect("put");
        let bytes = store.get_range(&path, 1..3).await.expect("get");
        assert_eq!(&bytes[..], b"el");
        assert!(store.get(&Path::from("missing")).await.is_err());
        store.delete(&path).await.expect("delete");
        let stats = storage.stats();
        assert_eq!(stats.puts, 1);
        assert_eq!(stats.gets, 2);
        assert_eq!(stats.deletes, 1);
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.bytes_written, 5);
        assert_eq!(stats.bytes_read, 2);
    }
}
