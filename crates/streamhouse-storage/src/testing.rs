//! Test support: fault injection for object stores and access to the real
//! servers the test script starts.
//!
//! Tests that need S3 read `STREAMHOUSE_TEST_S3_URL` (`s3://BUCKET`) plus
//! the standard `AWS_*` variables. Like the PostgreSQL helpers in
//! `streamhouse_metadata::testing`, they print SKIPPED when unset, or fail
//! when `STREAMHOUSE_TEST_REQUIRE_SERVERS=1`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::Mutex;
use streamhouse_metadata::testing::server_url;

use crate::object_storage::ObjectStorage;

pub const S3_URL_ENV: &str = "STREAMHOUSE_TEST_S3_URL";

/// An S3 location unique to one test (a fresh prefix in the test bucket),
/// or `None` after a SKIPPED line when no S3 server is configured.
pub fn isolated_s3(test_name: &str) -> Option<ObjectStorage> {
    let url = server_url(S3_URL_ENV, test_name)?;
    let prefix = streamhouse_metadata::testing::unique_schema(test_name);
    let url = format!("{}/{prefix}", url.trim_end_matches('/'));
    Some(
        ObjectStorage::from_url(&url)
            .unwrap_or_else(|e| panic!("{test_name}: cannot open {url}: {e}")),
    )
}

/// Wraps a store and fails or delays chosen calls.
///
/// Failures are counted down: `fail_next_puts(2)` fails the next two puts
/// and lets later ones through; `fail_all_puts(true)` fails every put until
/// switched off. The same for gets. A failing call never reaches the inner
/// store, so a failed put leaves no object behind. `blackhole(true)` makes
/// every put, get, listing and copy wait, unanswered, until switched off
/// (a server that accepts connections and never answers).
pub struct FaultInjectingStore {
    blackholed: tokio::sync::watch::Sender<bool>,
    inner: Arc<dyn ObjectStore>,
    put_failures: AtomicU64,
    all_puts_fail: AtomicBool,
    get_failures: AtomicU64,
    all_gets_fail: AtomicBool,
    put_delay: Mutex<Option<Duration>>,
    put_attempts: AtomicU64,
    get_attempts: AtomicU64,
}

impl fmt::Debug for FaultInjectingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjectingStore({})", self.inner)
    }
}

impl fmt::Display for FaultInjectingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjecting({})", self.inner)
    }
}

impl FaultInjectingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            blackholed: tokio::sync::watch::Sender::new(false),
            inner,
            put_failures: AtomicU64::new(0),
            all_puts_fail: AtomicBool::new(false),
            get_failures: AtomicU64::new(0),
            all_gets_fail: AtomicBool::new(false),
            put_delay: Mutex::new(None),
            put_attempts: AtomicU64::new(0),
            get_attempts: AtomicU64::new(0),
        }
    }

    pub fn fail_next_puts(&self, count: u64) {
        self.put_failures.store(count, Ordering::SeqCst);
    }

    pub fn fail_all_puts(&self, fail: bool) {
        self.all_puts_fail.store(fail, Ordering::SeqCst);
    }

    pub fn fail_next_gets(&self, count: u64) {
        self.get_failures.store(count, Ordering::SeqCst);
    }

    pub fn fail_all_gets(&self, fail: bool) {
        self.all_gets_fail.store(fail, Ordering::SeqCst);
    }

    pub fn blackhole(&self, on: bool) {
        self.blackholed.send_replace(on);
    }

    /// Returns once the store is not blackholed.
    async fn answer(&self) {
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = self.blackholed.subscribe().wait_for(|on| !on).await;
    }

    pub fn delay_puts(&self, delay: Option<Duration>) {
        *self.put_delay.lock() = delay;
    }

    /// Puts attempted, including the ones made to fail.
    pub fn put_attempts(&self) -> u64 {
        self.put_attempts.load(Ordering::SeqCst)
    }

    pub fn get_attempts(&self) -> u64 {
        self.get_attempts.load(Ordering::SeqCst)
    }

    fn injected(operation: &str, location: &Path) -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultInjectingStore",
            source: format!("injected {operation} failure for {location}").into(),
        }
    }

    fn should_fail(all: &AtomicBool, remaining: &AtomicU64) -> bool {
        all.load(Ordering::SeqCst)
            || remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

#[async_trait]
impl ObjectStore for FaultInjectingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.put_attempts.fetch_add(1, Ordering::SeqCst);
        self.answer().await;
        let delay = *self.put_delay.lock();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if Self::should_fail(&self.all_puts_fail, &self.put_failures) {
            return Err(Self::injected("put", location));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.get_attempts.fetch_add(1, Ordering::SeqCst);
        self.answer().await;
        if Self::should_fail(&self.all_gets_fail, &self.get_failures) {
            return Err(Self::injected("get", location));
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.answer().await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.answer().await;
        self.inner.copy_opts(from, to, options).await
    }
}
