//! `GET /health` (liveness: the process answers, and nothing else is
//! checked, so that an outage of a dependency never gets the agent
//! restarted) and `GET /ready` (it can serve: see `readiness.rs`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use super::SharedState;
use crate::readiness::Readiness;

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The body of `/ready`.
#[derive(Serialize)]
struct ReadyBody {
    status: &'static str,
    /// `ok` or the check's error message.
    metadata: String,
    object_store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ReadinessError>,
}

#[derive(Serialize)]
struct ReadinessError {
    code: &'static str,
    message: String,
}

pub(crate) async fn ready(
    State(state): State<SharedState>,
    Extension(readiness): Extension<Arc<Readiness>>,
) -> Response {
    if state.shutdown.is_cancelled() {
        let body = ReadyBody {
            status: "shutting_down",
            metadata: "skipped".into(),
            object_store: "skipped".into(),
            error: Some(ReadinessError {
                code: "unavailable",
                message: "the server is shutting down".into(),
            }),
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let report = readiness.check(&state.engine).await;
    let mut failures = Vec::new();
    if let Err(message) = &report.metadata {
        failures.push(format!("metadata store: {message}"));
    }
    if let Err(message) = &report.object_store {
        failures.push(format!("object store: {message}"));
    }
    let describe = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(message) => message.clone(),
    };
    let ready = failures.is_empty();
    let body = ReadyBody {
        status: if ready { "ready" } else { "not_ready" },
        metadata: describe(&report.metadata),
        object_store: describe(&report.object_store),
        error: (!ready).then(|| ReadinessError {
            code: "unavailable",
            message: failures.join("; "),
        }),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
