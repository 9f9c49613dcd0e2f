//! The HTTP transport to a `streamhouse serve` agent: URL building, timeouts
//! and the translation of every failure into one sentence a user can act
//! on.
//!
//! The invariant that matters: a caller gets either the decoded success
//! body or an error that says what went wrong from the user's side — the
//! server could not be reached (naming the URL and suggesting
//! `streamhouse serve`), the server refused the request (its own message,
//! as an [`HttpError`] so callers can react to a status), or it answered
//! something that is not the API's JSON. Every request carries the user's
//! HTTP Basic credentials when `--user` is given; an `https://` server is
//! verified against the system's roots plus `--ca-cert`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long to wait for a TCP connection before calling the server
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any one request may take besides an explicit long-poll wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The server refused a request: its status and its `{"error":{…}}` body.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}", self.message, self.status.as_u16())?;
        if !self.code.is_empty() {
            write!(f, ", {}", self.code)?;
        }
        f.write_str(")")?;
        match self.status {
            StatusCode::UNAUTHORIZED => f.write_str(
                "; give a StreamHouse user with --user NAME (or STREAMCTL_USER) and its \
                 password in STREAMCTL_PASSWORD",
            ),
            StatusCode::FORBIDDEN => {
                f.write_str("; an administrator can grant it with `streamctl acl add`")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for HttpError {}

/// True if `error` is the server answering `status`.
pub(crate) fn is_status(error: &anyhow::Error, status: StatusCode) -> bool {
    error
        .downcast_ref::<HttpError>()
        .is_some_and(|e| e.status == status)
}

/// A user name and password for HTTP Basic authentication; the password
/// is kept out of `Debug`.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How to reach the server besides its URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientOptions {
    pub(crate) credentials: Option<Credentials>,
    /// PEM file of CA certificates trusted for `https://` servers, in
    /// addition to the system's.
    pub(crate) ca_cert: Option<std::path::PathBuf>,
}

/// A client for one server's `/api/v1`; cheap to clone (the connection
/// pool is shared).
#[derive(Clone)]
pub(crate) struct ApiClient {
    base: Url,
    http: reqwest::Client,
    credentials: Option<Credentials>,
}

impl ApiClient {
    /// `server` is the base URL (`http://host:port`, optionally with a path
    /// prefix when the API sits behind a proxy).
    #[cfg(test)]
    pub(crate) fn new(server: &str) -> Result<Self> {
        Self::with_options(server, ClientOptions::default())
    }

    pub(crate) fn with_options(server: &str, options: ClientOptions) -> Result<Self> {
        let base = Url::parse(server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                let hint = if server.contains("://") {
                    String::new()
                } else {
                    format!(" (did you mean http://{server}?)")
                };
                anyhow!("--server: {server:?} is not an http:// or https:// URL{hint}")
            })?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("streamctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_cert {
            for certificate in read_ca_certificates(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Self {
            base,
            http,
            credentials: options.credentials,
        })
    }

    /// The server's base URL as the user gave it, for messages.
    pub(crate) fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base` + the path `segments` (each percent-encoded, so a group named
    /// `a/b` stays one segment) + `query`.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// GET and decode a JSON body.
    pub(crate) async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        self.get_waiting(url, Duration::ZERO).await
    }

    /// GET for a long poll that may legitimately take `wait` on the server
    /// before answering.
    pub(crate) async fn get_waiting<T: DeserializeOwned>(
        &self,
        url: Url,
        wait: Duration,
    ) -> Result<T> {
        let response = self
            .send(self.http.get(url.clone()), &url, REQUEST_TIMEOUT + wait)
            .await?;
        decode(response, &url).await
    }

    /// POST a JSON body and decode the JSON answer.
    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<T> {
        let request = self.http.request(Method::POST, url.clone()).json(body);
        let response = self.send(request, &url, REQUEST_TIMEOUT).await?;
        decode(response, &url).await
    }

    /// PUT a JSON body and decode the JSON answer.
    pub(crate) async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<T> {
        let request = self.http.request(Method::PUT, url.clone()).json(body);
        let response = self.send(request, &url, REQUEST_TIMEOUT).await?;
        decode(response, &url).await
    }

    /// DELETE; the API answers 204 with no body.
    pub(crate) async fn delete(&self, url: Url) -> Result<()> {
        let request = self.http.request(Method::DELETE, url.clone());
        self.send(request, &url, REQUEST_TIMEOUT).await?;
        Ok(())
    }

    /// DELETE where the API answers with a JSON body.
    pub(crate) async fn delete_json<T: DeserializeOwned>(&self, url: Url) -> Result<T> {
        let request = self.http.request(Method::DELETE, url.clone());
        let response = self.send(request, &url, REQUEST_TIMEOUT).await?;
        decode(response, &url).await
    }

    /// Sends, and turns transport failures and error statuses into errors.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        timeout: Duration,
    ) -> Result<Response> {
        let request = match &self.credentials {
            Some(credentials) => request.basic_auth(&credentials.user, Some(&credentials.password)),
            None => request,
        };
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(error_from_body(status, &body, url).into())
    }

    fn transport_error(&self, error: &reqwest::Error, timeout: Duration) -> anyhow::Error {
        let server = self.server();
        if error.is_timeout() {
            return anyhow!(
                "the StreamHouse server at {server} did not answer within {}s",
                timeout.as_secs()
            );
        }
        // reqwest's own message is "error sending request for url (…)"; the
        // innermost cause is the one that says why ("Connection refused").
        let root = std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .last()
        .map(ToString::to_string)
        .unwrap_or_default();
        if error.is_connect() {
            anyhow!(
                "cannot reach the StreamHouse server at {server} ({root}); is `streamhouse serve` \
                 running there? Point streamctl at it with --server URL or STREAMCTL_SERVER"
            )
        } else {
            anyhow!("request to the StreamHouse server at {server} failed: {root}")
        }
    }
}

/// The certificates of a PEM file, at least one.
fn read_ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        anyhow!(
            "--ca-cert: {} is not a PEM certificate file: {e}",
            path.display()
        )
    })?;
    if certificates.is_empty() {
        bail!("--ca-cert: {} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

/// The API's `{"error":{"code","message"}}`, or a readable stand-in when a
/// proxy or something else answered with another body.
fn error_from_body(status: StatusCode, body: &[u8], url: &Url) -> HttpError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(default)]
        code: String,
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => HttpError {
            status,
            code: error.code,
            message: error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().take(200).collect();
            HttpError {
                status,
                code: String::new(),
                message: if text.is_empty() {
                    format!("{url} answered without an error message")
                } else {
                    format!("{url} answered: {text}")
                },
            }
        }
    }
}

async fn decode<T: DeserializeOwned>(response: Response, url: &Url) -> Result<T> {
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer from {url}"))?;
    match serde_json::from_slice(&body) {
        Ok(value) => Ok(value),
        Err(error) => bail!(
            "unexpected answer from {url} (is that a StreamHouse server of a matching version?): {error}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> ApiClient {
        ApiClient::new(server).unwrap_or_else(|e| panic!("{server}: {e}"))
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let c = client("http://h:1");
        assert_eq!(
            c.url(&["api", "v1", "groups", "a/b c"], &[]).as_str(),
            "http://h:1/api/v1/groups/a%2Fb%20c"
        );
        let c = client("http://h:1/prefix/");
        assert_eq!(
            c.url(&["api", "v1", "topics"], &[("offset", "5".into())])
                .as_str(),
            "http://h:1/prefix/api/v1/topics?offset=5"
        );
        assert_eq!(c.server(), "http://h:1/prefix");
    }

    #[test]
    fn rejects_servers_that_are_not_http_urls() {
        for bad in ["127.0.0.1:8080", "ftp://h/", "not a url"] {
            let error = ApiClient::new(bad).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("--server")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn error_bodies_become_the_servers_message() {
        let url = Url::parse("http://h/x").unwrap_or_else(|e| panic!("{e}"));
        let error = error_from_body(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"topic \"t\" does not exist"}}"#,
            &url,
        );
        assert_eq!(
            error.to_string(),
            "topic \"t\" does not exist (HTTP 404, not_found)"
        );
        let error = error_from_body(StatusCode::BAD_GATEWAY, b"<html>\n bad\n</html>", &url);
        assert_eq!(
            error.to_string(),
            "http://h/x answered: <html> bad </html> (HTTP 502)"
        );
    }
}
