//! Latency summaries and the broker's request counters, for the report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, up to an hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn latency_ms(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| v as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": h.mean() / 1000.0,
    })
}

/// Counters read from a StreamHouse /metrics page.
#[derive(Debug, Default, Clone)]
pub struct BrokerCounters {
    values: BTreeMap<String, f64>,
}

/// The series this report cares about, by a short name.
const SERIES: &[(&str, &str)] = &[
    (
        "object_puts",
        "streamhouse_object_store_requests_total{operation=\"put\"}",
    ),
    (
        "object_gets",
        "streamhouse_object_store_requests_total{operation=\"get\"}",
    ),
    (
        "object_lists",
        "streamhouse_object_store_requests_total{operation=\"list\"}",
    ),
    (
        "object_deletes",
        "streamhouse_object_store_requests_total{operation=\"delete\"}",
    ),
    (
        "object_bytes_written",
        "streamhouse_object_store_bytes_total{direction=\"written\"}",
    ),
    (
        "object_bytes_read",
        "streamhouse_object_store_bytes_total{direction=\"read\"}",
    ),
    ("flushes", "streamhouse_flushes_total"),
    (
        "metadata_commits",
        "streamhouse_metadata_commit_seconds_count",
    ),
];

impl BrokerCounters {
    /// Reads the counters, summed over a comma-separated list of URLs (one
    /// per agent of a cluster); `None` when no URL was given or one cannot
    /// be read (the report then says so instead of inventing zeros).
    pub fn scrape(urls: Option<&str>) -> Option<Self> {
        let mut values = BTreeMap::new();
        for url in urls?.split(',').filter(|u| !u.is_empty()) {
            let body = match reqwest::blocking::get(url).and_then(|r| r.error_for_status()) {
                Ok(response) => response.text().ok()?,
                Err(error) => {
                    eprintln!("warning: cannot read {url}: {error}");
                    return None;
                }
            };
            for line in body.lines().filter(|l| !l.starts_with('#')) {
                let Some((series, value)) = line.rsplit_once(' ') else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                for (name, wanted) in SERIES {
                    if series == *wanted {
                        *values.entry(name.to_string()).or_insert(0.0) += value;
                    }
                }
            }
        }
        Some(Self { values })
    }

    /// What happened between `self` and `after`, plus rates over `seconds`.
    pub fn delta(&self, after: &Self, seconds: f64) -> Value {
        let mut out = serde_json::Map::new();
        for (name, _) in SERIES {
            let before = self.values.get(*name).copied().unwrap_or(0.0);
            let now = after.values.get(*name).copied().unwrap_or(0.0);
            out.insert(name.to_string(), json!(now - before));
        }
        let puts = after.values.get("object_puts").copied().unwrap_or(0.0)
            - self.values.get("object_puts").copied().unwrap_or(0.0);
        let flushes = after.values.get("flushes").copied().unwrap_or(0.0)
            - self.values.get("flushes").copied().unwrap_or(0.0);
        let commits = after.values.get("metadata_commits").copied().unwrap_or(0.0)
            - self.values.get("metadata_commits").copied().unwrap_or(0.0);
        out.insert("object_puts_per_s".into(), json!(puts / seconds.max(1e-9)));
        if flushes > 0.0 {
            out.insert(
                "metadata_commits_per_flush".into(),
                json!(commits / flushes),
            );
        }
        Value::Object(out)
    }
}
