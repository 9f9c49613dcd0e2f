//! Who calls the HTTP API and what they may do: HTTP Basic credentials of a
//! StreamHouse user, verified by the engine as SASL PLAIN is, and the ACL
//! check each route makes for the Kafka operation it amounts to.
//!
//! The invariant that matters: with security on, no request reaches a
//! handler other than `/health` (and `/ready` and `/metrics` while
//! `--http-open-probes` is true) without an authenticated principal, and
//! every handler gets its [`ApiCaller`] from this layer only, so a route
//! cannot forget to authenticate; it can only forget to authorize, which
//! the REST tests check route by route. Passwords are never logged or
//! echoed; a failed login is logged with the user and peer address and
//! answered after a delay, as Kafka delays a failed SASL authentication.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use streamhouse_storage::StorageEngine;
use streamhouse_storage::security::{AclOperation, Caller, Principal, ResourceType};

use super::{ApiError, SharedState};

/// Longest `Authorization` header read: a user name and password of a few
/// hundred bytes each, base64-encoded, fit many times over.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// How the HTTP API authenticates.
#[derive(Debug, Clone)]
pub(crate) struct HttpSecurity {
    /// Whether requests need credentials (any SASL listener or the ACL
    /// authorizer is configured).
    pub(crate) enabled: bool,
    /// Whether `/ready` and `/metrics` are served without credentials.
    pub(crate) open_probes: bool,
    /// How long a failed login waits before it is answered.
    pub(crate) failed_login_delay: Duration,
}

impl Default for HttpSecurity {
    fn default() -> Self {
        Self {
            enabled: false,
            open_probes: true,
            failed_login_delay: Duration::from_millis(100),
        }
    }
}

impl HttpSecurity {
    /// Whether `path` is served to anyone, with credentials or not.
    fn is_open(&self, path: &str) -> bool {
        !self.enabled
            || path == "/health"
            || (self.open_probes && matches!(path, "/ready" | "/metrics"))
    }
}

/// The caller of one request, as the authentication layer established it:
/// `User:ANONYMOUS` when security is off or the path is open.
#[derive(Debug, Clone)]
pub(crate) struct ApiCaller(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Absent only if a route were served without the layer: refuse
        // rather than act for nobody.
        parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request was not authenticated"))
    }
}

impl ApiCaller {
    pub(crate) fn principal(&self) -> &Principal {
        &self.0.principal
    }

    /// Whether the caller may do `operation` on the resource.
    pub(crate) fn may(
        &self,
        engine: &StorageEngine,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        engine.authorize(&self.0, operation, resource_type, name)
    }

    /// `Ok` if the caller may do `operation` on the resource, else 403.
    pub(crate) fn require(
        &self,
        engine: &StorageEngine,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), ApiError> {
        if self.may(engine, operation, resource_type, name) {
            Ok(())
        } else {
            Err(self.denied(operation, resource_type, name))
        }
    }

    /// The 403 for `operation` on the resource, logged.
    pub(crate) fn denied(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> ApiError {
        tracing::info!(
            principal = %self.0.principal,
            host = %self.0.host,
            %operation,
            %resource_type,
            resource = ?name,
            "http request denied"
        );
        ApiError::forbidden(format!(
            "{} is not authorized to {operation} {resource_type} {name:?}",
            self.0.principal
        ))
    }
}

/// The authentication layer: finds the caller of every request and puts an
/// [`ApiCaller`] in its extensions, or answers 401.
pub(crate) async fn authenticate(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let host = peer.map_or_else(
        || "unknown".to_owned(),
        |p| p.ip().to_canonical().to_string(),
    );
    let principal = if state.security.is_open(request.uri().path()) {
        Principal::anonymous()
    } else {
        match login(&state, request.headers(), peer).await {
            Ok(principal) => principal,
            Err(error) => return error.into_response(),
        }
    };
    request
        .extensions_mut()
        .insert(ApiCaller(Caller::new(principal, host)));
    next.run(request).await
}

/// Why a request's credentials are unusable, as the client is told.
#[derive(Debug, PartialEq, Eq)]
enum Malformed {
    TooLong,
    NotText,
    NotBasic,
    NotBase64,
    NoColon,
    EmptyUser,
    Repeated,
}

impl Malformed {
    fn message(&self) -> &'static str {
        match self {
            Malformed::TooLong => "the Authorization header is too long",
            Malformed::NotText => "the Authorization header is not text",
            Malformed::NotBasic => "only HTTP Basic authentication is supported",
            Malformed::NotBase64 => "the Basic credentials are not base64",
            Malformed::NoColon => "the Basic credentials are not USER:PASSWORD",
            Malformed::EmptyUser => "the Basic credentials have an empty user name",
            Malformed::Repeated => "more than one Authorization header",
        }
    }
}

/// A user name and password from a Basic `Authorization` header; the
/// password is kept out of `Debug`.
struct BasicCredentials {
    user: String,
    password: String,
}

/// `None` when the request has no `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, Malformed> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Malformed::Repeated);
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Malformed::TooLong);
    }
    let text = value.to_str().map_err(|_| Malformed::NotText)?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or(Malformed::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Malformed::NotBasic);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| Malformed::NotBase64)?;
    // RFC 7617 leaves the charset to the server; StreamHouse user names and
    // passwords are UTF-8, as in SASL.
    let decoded = String::from_utf8(decoded).map_err(|_| Malformed::NotText)?;
    let (user, password) = decoded.split_once(':').ok_or(Malformed::NoColon)?;
    if user.is_empty() {
        return Err(Malformed::EmptyUser);
    }
    Ok(Some(BasicCredentials {
        user: user.to_owned(),
        password: password.to_owned(),
    }))
}

async fn login(
    state: &SharedState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Principal, ApiError> {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    let credentials = match basic_credentials(headers) {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            return Err(ApiError::unauthenticated(
                "this endpoint needs the HTTP Basic credentials of a StreamHouse user",
            ));
        }
        Err(malformed) => {
            tracing::warn!(%peer, reason = malformed.message(), "http authentication failed");
            tokio::time::sleep(state.security.failed_login_delay).await;
            return Err(ApiError::unauthenticated(malformed.message()));
        }
    };
    match state
        .engine
        .authenticate_password(&credentials.user, &credentials.password)
        .await
    {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => {
            tracing::warn!(user = ?credentials.user, %peer, "http authentication failed: invalid user name or password");
            tokio::time::sleep(state.security.failed_login_delay).await;
            Err(ApiError::unauthenticated(
                "authentication failed: invalid user name or password",
            ))
        }
        Err(error) => {
            tracing::warn!(user = ?credentials.user, %peer, %error, "cannot check http credentials");
            Err(ApiError::from(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers
    }

    fn parse(values: &[&[u8]]) -> Result<Option<(String, String)>, Malformed> {
        basic_credentials(&headers(values)).map(|c| c.map(|c| (c.user, c.password)))
    }

    #[test]
    fn basic_credentials_are_user_colon_password_in_base64() {
        let encoded = format!("Basic {}", STANDARD.encode("alice:pa:ss word"));
        assert_eq!(
            parse(&[encoded.as_bytes()]),
            Ok(Some(("alice".into(), "pa:ss word".into())))
        );
        let lower = format!("basic  {}", STANDARD.encode("bob:"));
        assert_eq!(
            parse(&[lower.as_bytes()]),
            Ok(Some(("bob".into(), String::new())))
        );
        assert_eq!(parse(&[]), Ok(None));
    }

    #[test]
    fn malformed_authorization_headers_are_refused_not_panicked_on() {
        let no_colon = format!("Basic {}", STANDARD.encode("alice"));
        let empty_user = format!("Basic {}", STANDARD.encode(":pw"));
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x']));
        let huge = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_BYTES));
        let cases: [(&[u8], Malformed); 8] = [
            (b"Basic", Malformed::NotBasic),
            (b"Bearer abc", Malformed::NotBasic),
            (b"Basic !!!not-base64!!!", Malformed::NotBase64),
            (no_colon.as_bytes(), Malformed::NoColon),
            (empty_user.as_bytes(), Malformed::EmptyUser),
            (not_utf8.as_bytes(), Malformed::NotText),
            (huge.as_bytes(), Malformed::TooLong),
            (b"Basic \xe9\xe9", Malformed::NotText),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse(&[value]).err(),
                Some(expected),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let good = format!("Basic {}", STANDARD.encode("a:b"));
        assert_eq!(
            parse(&[good.as_bytes(), good.as_bytes()]).err(),
            Some(Malformed::Repeated)
        );
    }

    #[test]
    fn only_health_is_always_open() {
        let on = HttpSecurity {
            enabled: true,
            ..HttpSecurity::default()
        };
        assert!(on.is_open("/health"));
        assert!(on.is_open("/ready") && on.is_open("/metrics"));
        for path in ["/api/v1/topics", "/api/v1/users", "/nowhere", "/health/"] {
            assert!(!on.is_open(path), "{path}");
        }
        let closed = HttpSecurity {
            open_probes: false,
            ..on
        };
        assert!(closed.is_open("/health"));
        assert!(!closed.is_open("/ready") && !closed.is_open("/metrics"));
        assert!(HttpSecurity::default().is_open("/api/v1/topics"));
    }
}
