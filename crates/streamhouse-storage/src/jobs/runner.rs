//! Runs each background job periodically on whichever agent holds its
//! lease. A runner renews its lease while it works; if it dies, the lease
//! expires and another agent's runner takes the job over. Losing the lease
//! mid-run stops the run at the next partition; every job is safe to run
//! twice at once anyway (the compaction swap is a compare-and-swap, and
//! retention and garbage collection re-check what they delete).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    CompactionConfig, DEFAULT_GC_GRACE, DEFAULT_JOB_INTERVAL, JobContext, MIN_ORPHAN_AGE,
    compaction, gc, retention,
};
use crate::error::Result;

/// Settings of the background jobs.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// This agent's name in the leases.
    pub holder: String,
    pub lease_ttl: Duration,
    pub compaction: CompactionConfig,
    pub compaction_interval: Duration,
    pub retention_interval: Duration,
    pub gc_interval: Duration,
    /// How long an object stays after it lost its last reference (or,
    /// never committed, after it was written).
    pub gc_grace: Duration,
}

impl JobsConfig {
    pub fn new(holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            lease_ttl: Duration::from_secs(30),
            compaction: CompactionConfig::default(),
            compaction_interval: DEFAULT_JOB_INTERVAL,
            retention_interval: DEFAULT_JOB_INTERVAL,
            gc_interval: DEFAULT_JOB_INTERVAL,
            gc_grace: DEFAULT_GC_GRACE,
        }
    }
}

/// The job names, as leases and metric labels know them.
pub(crate) const COMPACTION: &str = "compaction";
pub(crate) const RETENTION: &str = "retention";
pub(crate) const GC: &str = "gc";

/// Spawns one loop per job; they stop when `cancel` fires.
pub(crate) fn spawn(
    ctx: JobContext,
    config: JobsConfig,
    cancel: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let compaction_config = config.compaction.clone();
    let grace = config.gc_grace;
    let schedule = std::sync::Arc::new(tokio::sync::Mutex::new(gc::OrphanScanSchedule::default()));
    vec![
        tokio::spawn(job_loop(
            COMPACTION,
            config.compaction_interval,
            ctx.clone(),
            config.clone(),
            cancel.clone(),
            move |ctx, run_cancel| {
                let compaction_config = compaction_config.clone();
                async move {
                    let report =
                        compaction::compact_all(&ctx, &compaction_config, &run_cancel).await?;
                    metrics::gauge!("streamhouse_compaction_lag_seconds")
                        .set(report.lag_ms as f64 / 1000.0);
                    if report.runs > 0 {
                        tracing::info!(
                            runs = report.runs,
                            rows_replaced = report.rows_replaced,
                            bytes_written = report.bytes_written,
                            conflicts = report.conflicts,
                            "compaction pass done"
                        );
                    }
                    Ok(())
                }
            },
        )),
        tokio::spawn(job_loop(
            RETENTION,
            config.retention_interval,
            ctx.clone(),
            config.clone(),
            cancel.clone(),
            |ctx, run_cancel| async move {
                retention::enforce_all(&ctx, &run_cancel).await?;
                Ok(())
            },
        )),
        tokio::spawn(job_loop(
            GC,
            config.gc_interval,
            ctx,
            config,
            cancel,
            move |ctx, run_cancel| {
                let schedule = schedule.clone();
                async move {
                    let mut schedule = schedule.lock().await;
                    gc::collect(
                        &ctx,
                        grace,
                        grace.max(MIN_ORPHAN_AGE),
                        &run_cancel,
                        Some(&mut schedule),
                    )
                    .await?;
                    Ok(())
                }
            },
        )),
    ]
}

/// Every `interval`: take or renew the job's lease and, holding it, run the
/// job, renewing the lease while it runs.
async fn job_loop<F, Fut>(
    job: &'static str,
    interval: Duration,
    ctx: JobContext,
    config: JobsConfig,
    cancel: CancellationToken,
    run: F,
) where
    F: Fn(JobContext, CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let ttl_ms = i64::try_from(config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let mut held = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(interval) => {}
        }
        let now = ctx.clock.now_ms();
        held = match ctx
            .metadata
            .acquire_lease(job, &config.holder, now, now.saturating_add(ttl_ms))
            .await
        {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(job, %error, "cannot take the job lease; will retry");
                false
            }
        };
        metrics::gauge!("streamhouse_job_lease_held", "job" => job).set(f64::from(u8::from(held)));
        if !held {
            continue;
        }
        let run_cancel = cancel.child_token();
        let renewer = tokio::spawn(renew(
            job,
            ctx.clone(),
            config.holder.clone(),
            config.lease_ttl,
            run_cancel.clone(),
        ));
        let started = Instant::now();
        let outcome = run(ctx.clone(), run_cancel.clone()).await;
        run_cancel.cancel();
        let _ = renewer.await;
        metrics::histogram!("streamhouse_job_run_seconds", "job" => job)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                metrics::counter!("streamhouse_job_runs_total", "job" => job, "outcome" => "ok")
                    .increment(1);
                metrics::gauge!("streamhouse_job_last_success_timestamp_seconds", "job" => job)
                    .set(ctx.clock.now_ms() as f64 / 1000.0);
            }
            Err(error) => {
                metrics::counter!("streamhouse_job_runs_total", "job" => job, "outcome" => "error")
                    .increment(1);
                tracing::warn!(job, %error, "job run failed; will retry");
            }
        }
        publish_storage_stats(&ctx).await;
    }
    if held && let Err(error) = ctx.metadata.release_lease(job, &config.holder).await {
        tracing::debug!(job, %error, "could not release the job lease");
    }
}

/// Renews the lease every third of its lifetime until the run ends; if the
/// lease is lost, cancels the run.
async fn renew(
    job: &'static str,
    ctx: JobContext,
    holder: String,
    ttl: Duration,
    run_cancel: CancellationToken,
) {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = run_cancel.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        let now = ctx.clock.now_ms();
        match ctx
            .metadata
            .acquire_lease(job, &holder, now, now.saturating_add(ttl_ms))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job, "lost the job lease; stopping the run");
                run_cancel.cancel();
                return;
            }
            // Keep working: the lease is still ours until it expires, and
            // the jobs are safe to overlap.
            Err(error) => tracing::warn!(job, %error, "cannot renew the job lease"),
        }
    }
}

/// Segment and object counts as gauges.
async fn publish_storage_stats(ctx: &JobContext) {
    match ctx.metadata.storage_stats().await {
        Ok(stats) => {
            metrics::gauge!("streamhouse_segment_rows").set(stats.segment_rows as f64);
            metrics::gauge!("streamhouse_segment_objects").set(stats.objects as f64);
            metrics::gauge!("streamhouse_segment_bytes").set(stats.bytes as f64);
            metrics::gauge!("streamhouse_segment_rows_max_per_partition")
                .set(stats.max_rows_per_partition as f64);
            metrics::gauge!("streamhouse_object_tombstones").set(stats.tombstones as f64);
        }
        Err(error) => tracing::debug!(%error, "cannot read storage stats"),
    }
}
