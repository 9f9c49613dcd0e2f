//! The HTTP API: `/health`, `/ready`, `/metrics` and the JSON REST API
//! under `/api/v1` (topics, records, consumer groups, users, ACLs), with
//! HTTP Basic authentication and Kafka's ACL checks when security is on
//! (see `auth.rs`).
//!
//! The invariant that matters: every response that is not a success is a
//! JSON `{"error":{"code","message"}}` body — including malformed bodies,
//! bad query strings, oversized bodies, unknown routes and wrong methods —
//! so clients never have to parse axum's plain-text rejections. (The one
//! exception: a request head past hyper's hard bound, several times the
//! checked limits, gets hyper's bare 431; see `limits.rs`.)
//!
//! Metric labels come from fixed sets — the standard methods or `other`,
//! route templates or `unmatched`, the statuses the API answers with — so
//! no client can grow `/metrics`.

mod acls;
mod auth;
mod encoding;
mod error;
mod extract;
mod groups;
mod health;
mod limits;
pub(crate) mod metrics;
mod records;
mod serve;
mod topics;
mod users;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use streamhouse_kafka::GroupCoordinator;
use streamhouse_storage::StorageEngine;
use tokio_util::sync::CancellationToken;

pub(crate) use auth::HttpSecurity;
pub(crate) use error::ApiError;
pub use limits::DEFAULT_MAX_BODY_BYTES;
pub(crate) use limits::HttpLimits;
pub(crate) use serve::serve;

use crate::readiness::{Readiness, ReadinessConfig};

/// What every handler can reach.
pub(crate) struct AppState {
    pub(crate) engine: StorageEngine,
    pub(crate) groups: GroupCoordinator,
    /// Cancelled when the server shuts down; long-poll reads return early.
    pub(crate) shutdown: CancellationToken,
    /// `None` if another Prometheus recorder was installed in this process.
    pub(crate) metrics: Option<PrometheusHandle>,
    pub(crate) security: HttpSecurity,
}

pub(crate) type SharedState = Arc<AppState>;

impl AppState {
    pub(crate) fn new(
        engine: StorageEngine,
        groups: GroupCoordinator,
        shutdown: CancellationToken,
        metrics: Option<PrometheusHandle>,
        security: HttpSecurity,
    ) -> SharedState {
        Arc::new(Self {
            engine,
            groups,
            shutdown,
            metrics,
            security,
        })
    }
}

/// The whole HTTP API. Serve it with [`serve`] and the same `limits`, so
/// that hyper's own bounds on the request head sit above the checked ones.
pub(crate) fn router_with(
    state: SharedState,
    limits: &HttpLimits,
    readiness: ReadinessConfig,
) -> Router {
    let api = Router::new()
        .route("/topics", get(topics::list).post(topics::create))
        .route(
            "/topics/{name}",
            get(topics::describe).delete(topics::delete),
        )
        .route(
            "/topics/{name}/config",
            axum::routing::patch(topics::update_config),
        )
        .route(
            "/topics/{name}/records",
            axum::routing::post(records::produce),
        )
        .route(
            "/topics/{name}/partitions/{partition}/records",
            get(records::consume),
        )
        .route(
            "/topics/{name}/partitions/{partition}/segments",
            get(topics::segments),
        )
        .route("/groups", get(groups::list))
        .route(
            "/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route("/users", get(users::list))
        .route(
            "/users/{name}",
            axum::routing::put(users::set).delete(users::delete),
        )
        .route(
            "/acls",
            get(acls::list).post(acls::create).delete(acls::delete),
        );
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::scrape))
        .nest("/api/v1", api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            limits::RequestGuard::new(limits.clone()),
            limits::check_request,
        ))
        .layer(middleware::from_fn(record_request))
        .layer(Extension(Arc::new(Readiness::new(readiness))))
        .with_state(state)
}

/// Counts and times requests by method, route template and status, each
/// from a fixed set: never by raw path (one series per topic name) or raw
/// method (one series per made-up method).
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = limits::method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!(
        "streamhouse_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    ::metrics::histogram!(
        "streamhouse_http_request_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}
