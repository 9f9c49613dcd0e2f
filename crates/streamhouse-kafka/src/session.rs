//! The authentication state of one connection: its principal, and on a
//! SASL listener the SaslHandshake / SaslAuthenticate exchange that must
//! come before any other request but ApiVersions.
//!
//! The invariant that matters: until the exchange succeeds, a request of
//! any other API closes the connection, and a failed exchange is answered
//! (after `--connection-failed-authentication-delay-ms`) and closes it too,
//! so a connection never serves a request with a principal it did not
//! prove. Passwords and proofs are never logged.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use streamhouse_storage::security::Principal;

use crate::broker::Broker;
use crate::frame::Request;
use crate::handlers::sasl as answers;
use crate::listener::SecurityProtocol;
use crate::sasl::scram::ScramServer;
use crate::sasl::{SaslError, SaslMechanism, plain};

/// Largest request accepted before authentication (Kafka's
/// `sasl.server.max.receive.size`).
pub(crate) const MAX_UNAUTHENTICATED_FRAME: usize = 512 << 10;

/// What the connection does with a request, as decided by the session.
pub(crate) enum Gate {
    /// An ordinary request: dispatch it.
    Dispatch,
    /// The session answered (these are the response bytes, with length
    /// prefix and header).
    Answer(Bytes),
    /// Write this answer, then close the connection.
    AnswerAndClose(Bytes),
    /// Close the connection without an answer.
    Close,
}

enum State {
    /// Authenticated, or a listener without SASL.
    Done,
    /// A SASL listener before SaslHandshake.
    AwaitHandshake,
    /// After SaslHandshake: tokens of `mechanism` follow, inside
    /// SaslAuthenticate requests or (`raw`, after a v0 handshake) as bare
    /// length-prefixed frames.
    Exchange {
        mechanism: SaslMechanism,
        raw: bool,
        scram: Option<Box<ScramServer>>,
    },
}

/// One connection's principal and SASL state.
pub(crate) struct Session {
    principal: Principal,
    state: State,
    peer: SocketAddr,
    /// The user the exchange in progress names, for the log.
    user: Option<String>,
}

/// How one token of an exchange went.
enum Step {
    /// Send this token; more are expected.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send this last token.
    Done { user: String, token: Vec<u8> },
}

impl Session {
    /// A connection through `listener`, with the principal the transport
    /// gave it (a TLS client certificate's, or `User:ANONYMOUS`).
    pub(crate) fn new(listener: SecurityProtocol, principal: Principal, peer: SocketAddr) -> Self {
        let state = if listener.uses_sasl() {
            State::AwaitHandshake
        } else {
            State::Done
        };
        Self {
            principal,
            state,
            peer,
            user: None,
        }
    }

    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }

    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the next frame is a bare SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchange { raw: true, .. })
    }

    /// A bare token after a v0 SaslHandshake; the answer is a bare token
    /// too, and a failure closes the connection (v0 has no error field).
    pub(crate) async fn raw_token(&mut self, broker: &Broker, token: &[u8]) -> Gate {
        let mechanism = match &self.state {
            State::Exchange { mechanism, .. } => *mechanism,
            _ => return Gate::Close,
        };
        match self.step(broker, token).await {
            Ok(Step::Continue(token)) => Gate::Answer(raw_frame(&token)),
            Ok(Step::Done { user, token }) => {
                self.succeed(mechanism, user);
                Gate::Answer(raw_frame(&token))
            }
            Err(error) => {
                self.fail(broker, mechanism, &error).await;
                Gate::Close
            }
        }
    }

    /// Decides about a decoded request; SASL requests before
    /// authentication are answered here.
    pub(crate) async fn gate(&mut self, broker: &Broker, request: &Request) -> Gate {
        if self.authenticated() {
            return Gate::Dispatch;
        }
        let version = request.version;
        let correlation_id = request.header.correlation_id;
        let encode = |api_key: ApiKey, response: ResponseKind| {
            crate::frame::encode_response(api_key, version, correlation_id, &response).ok()
        };
        match (&request.body, &mut self.state) {
            (RequestKind::ApiVersions(_), _) => Gate::Dispatch,
            (RequestKind::SaslHandshake(handshake), State::AwaitHandshake) => {
                let enabled = &broker.config.sasl_mechanisms;
                let asked = handshake.mechanism.as_str();
                let chosen = asked
                    .parse::<SaslMechanism>()
                    .ok()
                    .filter(|m| enabled.contains(m));
                let response =
                    ResponseKind::SaslHandshake(answers::handshake(enabled, chosen.is_some()));
                let Some(bytes) = encode(ApiKey::SaslHandshake, response) else {
                    return Gate::Close;
                };
                match chosen {
                    Some(mechanism) => {
                        self.state = State::Exchange {
                            mechanism,
                            raw: version == 0,
                            scram: match mechanism {
                                SaslMechanism::Scram(scram) => {
                                    Some(Box::new(ScramServer::new(scram)))
                                }
                                SaslMechanism::Plain => None,
                            },
                        };
                        Gate::Answer(bytes)
                    }
                    None => {
                        tracing::info!(
                            peer = %self.peer,
                            mechanism = asked,
                            "SASL handshake with a mechanism not enabled"
                        );
                        count(asked_label(asked), "unsupported_mechanism");
                        Gate::AnswerAndClose(bytes)
                    }
                }
            }
            (RequestKind::SaslAuthenticate(authenticate), State::Exchange { mechanism, .. }) => {
                let mechanism = *mechanism;
                let token = authenticate.auth_bytes.clone();
                match self.step(broker, &token).await {
                    Ok(step) => {
                        let token = match step {
                            Step::Continue(token) => token,
                            Step::Done { user, token } => {
                                self.succeed(mechanism, user);
                                token
                            }
                        };
                        let response =
                            ResponseKind::SaslAuthenticate(answers::authenticate_ok(token));
                        match encode(ApiKey::SaslAuthenticate, response) {
                            Some(bytes) => Gate::Answer(bytes),
                            None => Gate::Close,
                        }
                    }
                    Err(error) => {
                        self.fail(broker, mechanism, &error).await;
                        let message = match &error {
                            SaslError::Failed { message } => message.clone(),
                            SaslError::Malformed { reason } => {
                                format!("Authentication failed: {reason}")
                            }
                        };
                        let response = ResponseKind::SaslAuthenticate(answers::authenticate_error(
                            ResponseError::SaslAuthenticationFailed.code(),
                            &message,
                        ));
                        match encode(ApiKey::SaslAuthenticate, response) {
                            Some(bytes) => Gate::AnswerAndClose(bytes),
                            None => Gate::Close,
                        }
                    }
                }
            }
            (RequestKind::SaslAuthenticate(_), _) => {
                tracing::info!(peer = %self.peer, "SaslAuthenticate before SaslHandshake; closing");
                let response = ResponseKind::SaslAuthenticate(answers::authenticate_error(
                    ResponseError::IllegalSaslState.code(),
                    "Unexpected SaslAuthenticate request before SaslHandshake",
                ));
                match encode(ApiKey::SaslAuthenticate, response) {
                    Some(bytes) => Gate::AnswerAndClose(bytes),
                    None => Gate::Close,
                }
            }
            (RequestKind::SaslHandshake(_), _) => {
                let response = ResponseKind::SaslHandshake(answers::handshake_not_allowed());
                match encode(ApiKey::SaslHandshake, response) {
                    Some(bytes) => Gate::AnswerAndClose(bytes),
                    None => Gate::Close,
                }
            }
            _ => {
                tracing::info!(
                    peer = %self.peer,
                    api = ?request.api_key,
                    "request before SASL authentication; closing the connection"
                );
                metrics::counter!("streamhouse_kafka_request_errors_total", "kind" => "unauthenticated")
                    .increment(1);
                Gate::Close
            }
        }
    }

    /// One token of the exchange in progress.
    async fn step(&mut self, broker: &Broker, token: &[u8]) -> Result<Step, SaslError> {
        let State::Exchange {
            mechanism, scram, ..
        } = &mut self.state
        else {
            return Err(SaslError::malformed("no SASL exchange in progress"));
        };
        match (*mechanism, scram) {
            (SaslMechanism::Plain, _) => {
                let parsed = plain::parse(token)?;
                self.user = Some(parsed.user.clone());
                match broker
                    .engine
                    .authenticate_password(&parsed.user, &parsed.password)
                    .await
                {
                    Ok(Some(principal)) => Ok(Step::Done {
                        user: principal.name,
                        token: Vec::new(),
                    }),
                    Ok(None) => Err(SaslError::invalid_credentials(SaslMechanism::Plain)),
                    Err(error) => {
                        tracing::warn!(peer = %self.peer, %error, "cannot check a PLAIN login");
                        Err(unavailable())
                    }
                }
            }
            (SaslMechanism::Scram(scram_mechanism), Some(server)) => {
                if server.awaits_client_final() {
                    let (token, user) = server.receive_client_final(token)?;
                    return Ok(Step::Done { user, token });
                }
                let user = server.receive_client_first(token)?.to_string();
                self.user = Some(user.clone());
                let credential = match broker.engine.scram_credential(&user, scram_mechanism).await
                {
                    Ok(credential) => credential,
                    Err(error) => {
                        tracing::warn!(peer = %self.peer, %error, "cannot read a SCRAM credential");
                        return Err(unavailable());
                    }
                };
                let token =
                    server.server_first(credential, &server_nonce(), &broker.sasl_secret)?;
                Ok(Step::Continue(token))
            }
            (SaslMechanism::Scram(_), None) => Err(SaslError::malformed("SCRAM state lost")),
        }
    }

    fn succeed(&mut self, mechanism: SaslMechanism, user: String) {
        // Debug, as in Kafka: a busy agent logs in clients all the time.
        tracing::debug!(peer = %self.peer, user = %user, %mechanism, "authenticated");
        count(mechanism.name(), "success");
        self.principal = Principal::user(user);
        self.state = State::Done;
    }

    async fn fail(&mut self, broker: &Broker, mechanism: SaslMechanism, error: &SaslError) {
        tracing::info!(
            peer = %self.peer,
            user = self.user.as_deref().unwrap_or(""),
            %mechanism,
            %error,
            "SASL authentication failed"
        );
        count(mechanism.name(), "failure");
        // Nothing more of this exchange is accepted.
        self.state = State::AwaitHandshake;
        tokio::time::sleep(broker.config.failed_authentication_delay).await;
    }
}

fn unavailable() -> SaslError {
    SaslError::Failed {
        message: "Authentication failed: credentials cannot be checked now".into(),
    }
}

fn count(mechanism: &'static str, result: &'static str) {
    metrics::counter!(
        "streamhouse_kafka_authentications_total",
        "mechanism" => mechanism,
        "result" => result
    )
    .increment(1);
}

/// A metrics label for a mechanism a client asked for: only known names,
/// so that clients cannot create label values.
fn asked_label(asked: &str) -> &'static str {
    asked
        .parse::<SaslMechanism>()
        .map(SaslMechanism::name)
        .unwrap_or("other")
}

/// A random server nonce: 24 bytes, base64 (printable, no commas).
/// 32 random letters and digits (190 bits), like Kafka's: librdkafka 2.0
/// refuses a server nonce holding base64's `+` or `/`.
fn server_nonce() -> String {
    use rand::distr::{Alphanumeric, SampleString as _};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

fn raw_frame(token: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.put_u32(token.len() as u32);
    out.put_slice(token);
    out.freeze()
}
