//! The one error shape of the HTTP API and how every failure maps onto it.
//!
//! `{"error":{"code":"…","message":"…"}}` with a status chosen from the
//! storage error's [`ErrorKind`]: invalid input 400, unknown 404, exists
//! 409, offset out of range 416 (with the readable range in the body),
//! retriable or shutting down 503, anything else 500; missing or wrong
//! credentials 401 (with the `WWW-Authenticate` challenge), a denied
//! operation 403. Axum's extractor
//! rejections are mapped here too, so none of them reaches a client as
//! plain text.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streamhouse_core::{ErrorKind, ValidationError};
use streamhouse_storage::MetadataError;
use streamhouse_storage::StorageError;

/// The challenge of every 401.
pub(crate) const BASIC_CHALLENGE: &str = r#"Basic realm="streamhouse""#;

/// A failed request, ready to be rendered.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The readable range, for `offset_out_of_range`.
    range: Option<ReadableRange>,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct ReadableRange {
    log_start_offset: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    range: Option<ReadableRange>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            range: None,
        }
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_exists", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 401: the request carries no valid credentials of a user.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", message)
    }

    /// 403: the caller is known but may not do what it asked.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "authorization_failed", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error with another message.
    pub(crate) fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// Maps an axum rejection (bad JSON, bad query, bad path segment,
    /// oversized body) onto the API's shape. Axum answers a body that is
    /// valid JSON of the wrong shape with 422; the API uses 400 for every
    /// input it cannot use, and keeps 413 and 415, which tell the client
    /// something different.
    pub(crate) fn rejection(status: StatusCode, text: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                "invalid_input",
                "the request body is larger than the configured limit (--max-body-bytes)",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(status, "invalid_input", text),
            s if s.is_server_error() => Self::new(status, "internal", text),
            _ => Self::invalid_input(text),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        let message = error.to_string();
        let mut api = match error.kind() {
            ErrorKind::InvalidInput => Self::invalid_input(message),
            ErrorKind::NotFound => Self::not_found(message),
            ErrorKind::AlreadyExists => Self::conflict(message),
            ErrorKind::OffsetOutOfRange => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
                message,
            ),
            ErrorKind::Retriable | ErrorKind::ShuttingDown => Self::unavailable(message),
            ErrorKind::Corrupt | ErrorKind::Internal => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        };
        if let StorageError::OffsetOutOfRange {
            log_start_offset,
            high_watermark,
            ..
        } = error
        {
            api.range = Some(ReadableRange {
                log_start_offset,
                high_watermark,
            });
        }
        api
    }
}

impl From<MetadataError> for ApiError {
    fn from(error: MetadataError) -> Self {
        StorageError::from(error).into()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self::invalid_input(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
                range: self.range,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 7235: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        response
    }
}

/// Fallback for paths no route matches.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

/// Fallback for a known path with a method it does not serve.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_input",
        format!("{method} is not supported on {}", uri.path()),
    )
}
