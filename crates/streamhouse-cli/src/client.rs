//! The HTTP transport to a `streamhouse serve` agent: URL building, timeouts
//! and the translation of every failure into one sentence a user can act
//! on.
//!
//! The invariant that matters: a caller gets either the decoded success
//! body or an error that says what went wrong from the user's side — the
//! server could not be reached (naming the URL and suggesting
//! `streamhouse serve`), the server refused the request (its own message,
//! as an [`HttpError`] so callers can react to a status), or it answered
//! something that is not the API's JSON.

use std::fmt;
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
        f.write_str(")")
    }
}

impl std::error::Error for HttpError {}

/// True if `error` is the server answering `status`.
pub(crate) fn is_status(error: &anyhow::Error, status: StatusCode) -> bool {
    error
        .downcast_ref::<HttpError>()
        .is_some_and(|e| e.status == status)
}

/// A client for one server's `/api/v1`; cheap to clone (the connection
/// pool is shared).
#[derive(Clone)]
pub(crate) struct ApiClient {
    base: Url,
    http: reqwest::Client,
}

impl ApiClient {
    /// `server` is the base URL (`http://host:port`, optionally with a path
    /// prefix when the API sits behind a proxy).
    pub(crate) fn new(server: &str) -> Result<Self> {
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
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("streamctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { base, http })
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

    /// DELETE; the API answers 204 with no body.
    pub(crate) async fn delete(&self, url: Url) -> Result<()> {
        let request = self.http.request(Method::DELETE, url.clone());
        self.send(request, &url, REQUEST_TIMEOUT).await?;
        Ok(())
    }

    /// Sends, and turns transport failures and error statuses into errors.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        timeout: Duration,
    ) -> Result<Response> {
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
