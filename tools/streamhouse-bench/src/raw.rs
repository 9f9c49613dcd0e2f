//! The raw object store as a baseline: PUTs and GETs of a given size with a
//! given concurrency, straight to the store, nothing else in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rand::RngExt;
use serde_json::{Value, json};

use crate::report::{histogram, latency_ms};

fn store(bucket: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()))
        .with_virtual_hosted_style_request(false);
    if let Some(endpoint) = env("AWS_ENDPOINT_URL") {
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
    Ok(Arc::new(builder.build().context("S3 store")?))
}

/// PUTs `count` objects of `size` bytes with `concurrency` in flight, then
/// GETs them back the same way, and deletes them.
pub async fn put_get(
    bucket: &str,
    prefix: &str,
    size: usize,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let store = store(bucket)?;
    let mut rng = rand::rng();
    let body = Bytes::from((0..size).map(|_| rng.random::<u8>()).collect::<Vec<u8>>());
    let paths: Vec<Path> = (0..count)
        .map(|i| Path::from(format!("{prefix}/raw-{}-{i}.bin", std::process::id())))
        .collect();

    let timed = |paths: Vec<Path>, put: bool| {
        let store = store.clone();
        let body = body.clone();
        async move {
            let started = Instant::now();
            let latencies: Vec<anyhow::Result<Duration>> = futures::stream::iter(paths)
                .map(|path| {
                    let store = store.clone();
                    let body = body.clone();
                    async move {
                        let sent = Instant::now();
                        if put {
                            store.put(&path, PutPayload::from(body)).await?;
                        } else {
                            store.get(&path).await?.bytes().await?;
                        }
                        anyhow::Ok(sent.elapsed())
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
            let mut h = histogram();
            for latency in latencies {
                let _ = h.record((latency?.as_micros() as u64).max(1));
            }
            anyhow::Ok((started.elapsed(), h))
        }
    };
    let (put_time, put_latency) = timed(paths.clone(), true).await?;
    let (get_time, get_latency) = timed(paths.clone(), false).await?;
    for path in &paths {
        let _ = store.delete(path).await;
    }
    let mib = (size * count) as f64 / 1048576.0;
    Ok(json!({
        "workload": "raw object store",
        "parameters": { "bucket": bucket, "object_bytes": size, "objects": count, "concurrency": concurrency },
        "put": {
            "mib_per_s": mib / put_time.as_secs_f64(),
            "objects_per_s": count as f64 / put_time.as_secs_f64(),
            "latency_ms": latency_ms(&put_latency),
        },
        "get": {
            "mib_per_s": mib / get_time.as_secs_f64(),
            "objects_per_s": count as f64 / get_time.as_secs_f64(),
            "latency_ms": latency_ms(&get_latency),
        },
    }))
}
