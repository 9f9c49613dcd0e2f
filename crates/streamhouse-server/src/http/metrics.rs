//! `GET /metrics`: everything recorded through the `metrics` facade (by
//! the storage engine, the Kafka server and the HTTP layer), rendered by
//! the Prometheus exporter, plus the segment cache's state read at scrape
//! time.
//!
//! The recorder is process-global: it is installed once, by the first
//! server started in the process, and shared by any later ones.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use streamhouse_storage::CacheStats;

use super::SharedState;

/// Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of every `*_seconds` histogram: 0.5 ms (a cache hit) to 30 s
/// (an upload retried to its limit).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of every `*_bytes` histogram (flush sizes): 1 KiB to 64 MiB.
const BYTES_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// How often histogram samples are folded into their buckets between
/// scrapes, which bounds the memory they hold.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder, once
/// per process. `None` if it cannot be installed (another recorder was
/// installed first); `/metrics` then shows only the cache gauges.
pub(crate) fn install_recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    start_upkeep(handle.clone());
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot install the Prometheus recorder; /metrics will be incomplete");
                    None
                }
            }
        })
        .clone()
}

/// A plain thread rather than a task: the recorder outlives any one Tokio
/// runtime (tests start several).
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread");
    }
}

fn describe() {
    metrics::describe_counter!(
        "streamhouse_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    metrics::describe_histogram!(
        "streamhouse_http_request_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by method and route template"
    );
}

pub(crate) async fn scrape(State(state): State<SharedState>) -> Response {
    let mut body = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    append_cache_gauges(&mut body, state.engine.cache_stats());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Gauges of this server's segment cache, read now.
fn append_cache_gauges(body: &mut String, stats: CacheStats) {
    let gauges: [(&str, &str, f64); 5] = [
        (
            "streamhouse_segment_cache_hits",
            "Segment cache lookups served from memory since the engine started.",
            stats.hits as f64,
        ),
        (
            "streamhouse_segment_cache_misses",
            "Segment cache lookups that loaded from object storage since the engine started.",
            stats.misses as f64,
        ),
        (
            "streamhouse_segment_cache_hit_ratio",
            "Hits divided by lookups since the engine started (0 before any lookup).",
            stats.hit_ratio(),
        ),
        (
            "streamhouse_segment_cache_bytes",
            "Bytes of segment data held in the cache.",
            stats.bytes as f64,
        ),
        (
            "streamhouse_segment_cache_entries",
            "Segments held in the cache.",
            stats.entries as f64,
        ),
    ];
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    for (name, help, value) in gauges {
        // Writing to a String cannot fail.
        let _ = write!(
            body,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_gauges_are_valid_exposition_lines() {
        let mut body = String::from("# TYPE x counter\nx 1");
        append_cache_gauges(
            &mut body,
            CacheStats {
                hits: 3,
                misses: 1,
                entries: 2,
                bytes: 4096,
            },
        );
        assert!(
            body.contains("\nstreamhouse_segment_cache_hits 3\n"),
            "{body}"
        );
        assert!(
            body.contains("\nstreamhouse_segment_cache_hit_ratio 0.75\n"),
            "{body}"
        );
        assert!(
            body.contains("\nstreamhouse_segment_cache_bytes 4096\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE streamhouse_segment_cache_entries gauge\n"),
            "{body}"
        );
        assert!(body.starts_with("# TYPE x counter\nx 1\n"), "{body}");
    }
}
