//! The server side of SCRAM (RFC 5802) for SCRAM-SHA-256 and SCRAM-SHA-512
//! (RFC 7677), as Kafka speaks it (KIP-84): no channel binding, the
//! authorization id if any equal to the user, the iteration count of the
//! stored credential.
//!
//! The exchange: client-first (`n,,n=USER,r=CNONCE`) → server-first
//! (`r=CNONCE SNONCE,s=SALT,i=ITERATIONS`) → client-final
//! (`c=biws,r=NONCE,p=PROOF`) → server-final (`v=SIGNATURE`). A user
//! without a credential gets a fake one derived from a secret of this
//! process, so the answers look the same for the same name every time and
//! the proof simply never verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use streamhouse_storage::security::{ScramCredential, ScramMechanism};

use super::{SaslError, SaslMechanism};

/// Largest SCRAM message accepted; real ones are a few hundred bytes.
const MAX_MESSAGE: usize = 8 << 10;
/// Longest user name accepted.
const MAX_USER: usize = 255;
/// Iterations of the fake credential of an unknown user: what a user made
/// without an explicit count gets, so it does not stand out.
const FAKE_ITERATIONS: u32 = streamhouse_storage::DEFAULT_SCRAM_ITERATIONS;

/// What the client sent first, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientFirst {
    /// The user, with `=2C` and `=3D` unescaped.
    pub(crate) user: String,
    /// `n,,` or `n,a=USER,`, as the client wrote it (the `c=` of the final
    /// message must be its base64).
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
}

/// One SCRAM exchange on the server.
pub(crate) struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    /// Waiting for client-first.
    Initial,
    /// client-first read; waiting for the credential.
    Received(ClientFirst),
    /// server-first sent; waiting for client-final.
    Challenged {
        first: ClientFirst,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
    },
    /// Finished, one way or the other: no further token is valid.
    Done,
}

impl ScramServer {
    pub(crate) fn new(mechanism: ScramMechanism) -> Self {
        Self {
            mechanism,
            state: State::Initial,
        }
    }

    /// Whether server-first was sent and client-final is next.
    pub(crate) fn awaits_client_final(&self) -> bool {
        matches!(self.state, State::Challenged { .. })
    }

    /// Reads client-first; returns the user whose credential
    /// [`ScramServer::server_first`] needs.
    pub(crate) fn receive_client_first(&mut self, token: &[u8]) -> Result<&str, SaslError> {
        if !matches!(self.state, State::Initial) {
            self.state = State::Done;
            return Err(SaslError::malformed(
                "unexpected SCRAM client-first message",
            ));
        }
        let first = match parse_client_first(token) {
            Ok(first) => first,
            Err(error) => {
                self.state = State::Done;
                return Err(error);
            }
        };
        self.state = State::Received(first);
        match &self.state {
            State::Received(first) => Ok(&first.user),
            _ => Err(SaslError::malformed("SCRAM state lost")),
        }
    }

    /// The server-first message for the user's credential (`None` for an
    /// unknown user or another mechanism's credential: a fake one from
    /// `fake_secret` takes its place). `server_nonce` must be random and
    /// printable without commas.
    pub(crate) fn server_first(
        &mut self,
        credential: Option<ScramCredential>,
        server_nonce: &str,
        fake_secret: &[u8],
    ) -> Result<Vec<u8>, SaslError> {
        let State::Received(first) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(SaslError::malformed("unexpected SCRAM server-first step"));
        };
        let credential = credential
            .filter(|c| c.mechanism == self.mechanism)
            .unwrap_or_else(|| fake_credential(self.mechanism, fake_secret, &first.user));
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let message = server_first.clone().into_bytes();
        self.state = State::Challenged {
            first,
            server_first,
            nonce,
            credential,
        };
        Ok(message)
    }

    /// Checks client-final; on success returns server-final and the user.
    pub(crate) fn receive_client_final(
        &mut self,
        token: &[u8],
    ) -> Result<(Vec<u8>, String), SaslError> {
        let State::Challenged {
            first,
            server_first,
            nonce,
            credential,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(SaslError::malformed(
                "unexpected SCRAM client-final message",
            ));
        };
        let text = message_text(token)?;
        // client-final-message-without-proof "," proof
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| SaslError::malformed("SCRAM client-final without a proof"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| SaslError::malformed("SCRAM client-final without c="))?;
        let client_nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| SaslError::malformed("SCRAM client-final without r="))?;
        // Further attributes are extensions, which Kafka ignores here.
        let binding = BASE64
            .decode(binding)
            .map_err(|_| SaslError::malformed("SCRAM channel binding is not base64"))?;
        if binding != first.gs2_header.as_bytes() {
            return Err(SaslError::malformed(
                "SCRAM channel binding does not match the client-first header",
            ));
        }
        // Kafka's rule (ScramSaslServer): the final nonce must end with the
        // one the server sent. librdkafka before 2.1 sends its own nonce
        // again in front of it; the server's random part is still there.
        if !client_nonce.ends_with(nonce.as_str()) {
            return Err(SaslError::malformed("SCRAM nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| SaslError::malformed("SCRAM proof is not base64"))?;
        let auth_message = format!("{},{server_first},{without_proof}", first.client_first_bare);
        if !credential.verify_client_proof(auth_message.as_bytes(), &proof) {
            return Err(SaslError::invalid_credentials(SaslMechanism::Scram(
                self.mechanism,
            )));
        }
        let signature = credential.server_signature(auth_message.as_bytes());
        let server_final = format!("v={}", BASE64.encode(signature)).into_bytes();
        Ok((server_final, first.user))
    }
}

fn message_text(token: &[u8]) -> Result<&str, SaslError> {
    if token.len() > MAX_MESSAGE {
        return Err(SaslError::malformed("SCRAM message too long"));
    }
    let text = std::str::from_utf8(token)
        .map_err(|_| SaslError::malformed("SCRAM message is not UTF-8"))?;
    if text.contains('\0') {
        return Err(SaslError::malformed("SCRAM message contains NUL"));
    }
    Ok(text)
}

/// Parses `gs2-header client-first-message-bare`.
pub(crate) fn parse_client_first(token: &[u8]) -> Result<ClientFirst, SaslError> {
    let text = message_text(token)?;
    let (flag, rest) = text
        .split_once(',')
        .ok_or_else(|| SaslError::malformed("SCRAM client-first without a gs2 header"))?;
    match flag {
        "n" => {}
        "y" => {
            return Err(SaslError::malformed(
                "SCRAM channel binding is not supported (gs2 flag y)",
            ));
        }
        flag if flag.starts_with("p=") => {
            return Err(SaslError::malformed(
                "SCRAM channel binding is not supported",
            ));
        }
        _ => return Err(SaslError::malformed("invalid SCRAM gs2 header")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or_else(|| SaslError::malformed("SCRAM client-first without a gs2 header"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_name(a.strip_prefix("a=").ok_or_else(|| {
            SaslError::malformed("invalid SCRAM authorization id")
        })?)?),
    };
    let gs2_header = format!("{flag},{},", &rest[..rest.len() - bare.len() - 1]);
    let mut attributes = bare.split(',');
    let user = match attributes.next() {
        Some(a) if a.starts_with("m=") => {
            return Err(SaslError::malformed(
                "SCRAM mandatory extensions are not supported",
            ));
        }
        Some(a) => unescape_name(
            a.strip_prefix("n=")
                .ok_or_else(|| SaslError::malformed("SCRAM client-first without n="))?,
        )?,
        None => return Err(SaslError::malformed("SCRAM client-first without n=")),
    };
    let client_nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| SaslError::malformed("SCRAM client-first without r="))?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SaslError::malformed("invalid SCRAM client nonce"));
    }
    for extension in attributes {
        let (key, _) = extension
            .split_once('=')
            .ok_or_else(|| SaslError::malformed("invalid SCRAM extension"))?;
        if key == "tokenauth" {
            // Delegation tokens are not supported: no such credential.
            return Err(SaslError::invalid_credentials(SaslMechanism::Scram(
                ScramMechanism::Sha256,
            )));
        }
    }
    if let Some(authzid) = authzid
        && authzid != user
    {
        return Err(SaslError::Failed {
            message: "Authentication failed: Client requested an authorization id that is \
                      different from username"
                .into(),
        });
    }
    Ok(ClientFirst {
        user,
        gs2_header,
        client_first_bare: bare.to_string(),
        client_nonce: client_nonce.to_string(),
    })
}

/// RFC 5802's `saslname`: `=2C` is a comma, `=3D` an equals sign, and any
/// other `=` is invalid.
fn unescape_name(name: &str) -> Result<String, SaslError> {
    let invalid = || SaslError::malformed("invalid SCRAM user name");
    if name.is_empty() || name.len() > MAX_USER * 3 {
        return Err(invalid());
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).ok_or_else(invalid)?;
        match escape {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err(invalid()),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.len() > MAX_USER {
        return Err(invalid());
    }
    Ok(out)
}

/// The same fake credential for the same user every time (in this
/// process), so that probing a name twice does not tell it is unknown.
fn fake_credential(mechanism: ScramMechanism, secret: &[u8], user: &str) -> ScramCredential {
    let derive = |label: &str| {
        let mut data = label.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(user.as_bytes());
        mechanism.hmac(secret, &data)
    };
    let mut salt = derive("salt");
    salt.truncate(32);
    ScramCredential {
        mechanism,
        salt,
        iterations: FAKE_ITERATIONS,
        stored_key: derive("stored key"),
        server_key: derive("server key"),
    }
}

#[cfg(test)]
mod tests;
