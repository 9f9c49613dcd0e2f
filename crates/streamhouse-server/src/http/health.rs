//! `GET /health` (the process answers) and `GET /ready` (it can serve:
//! the metadata store and the object store both answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::SharedState;
use crate::readiness::{check_metadata, check_object_store};

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Readiness {
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

pub(crate) async fn ready(State(state): State<SharedState>) -> Response {
    if state.shutdown.is_cancelled() {
        let body = Readiness {
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
    let engine = &state.engine;
    let (metadata, object_store) = tokio::join!(
        check_metadata(engine.metadata().as_ref()),
        check_object_store(engine.storage())
    );
    let mut failures = Vec::new();
    if let Err(message) = &metadata {
        failures.push(format!("metadata store: {message}"));
    }
    if let Err(message) = &object_store {
        failures.push(format!("object store: {message}"));
    }
    let describe = |result: Result<(), String>| result.err().unwrap_or_else(|| "ok".into());
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        tracing::warn!(failures = ?failures, "readiness check failed");
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if failures.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        metadata: describe(metadata),
        object_store: describe(object_store),
        error: (!failures.is_empty()).then(|| ReadinessError {
            code: "unavailable",
            message: failures.join("; "),
        }),
    };
    (status, Json(body)).into_response()
}
