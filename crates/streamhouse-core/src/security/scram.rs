//! SCRAM credentials and the arithmetic of RFC 5802 (SCRAM-SHA-256 and
//! SCRAM-SHA-512 per RFC 7677 and Kafka's KIP-84).
//!
//! A server stores, per user and mechanism, only what RFC 5802 calls the
//! salt, the iteration count, `StoredKey = H(ClientKey)` and `ServerKey`:
//! never the password. From these it can check a client's proof (and a
//! PLAIN password) and prove itself to the client; nobody can log in with
//! what is stored.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// A SCRAM hash function, by Kafka's names and codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];
    /// Kafka's lower bound on iterations (`ScramMechanism.minIterations`).
    pub const MIN_ITERATIONS: u32 = 4096;
    /// Kafka's upper bound on iterations (`ScramMechanism.maxIterations`).
    pub const MAX_ITERATIONS: u32 = 16384;

    /// The SASL mechanism name: `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(name))
    }

    /// The code AlterUserScramCredentials and DescribeUserScramCredentials
    /// use (0 is UNKNOWN).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.code() == code)
    }

    /// Bytes of the hash's output.
    pub fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        match self {
            ScramMechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramMechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps for one user and mechanism. Its `Debug` output
/// shows the mechanism and iterations only.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// The credential for `password` (normalised by the caller; Kafka uses
    /// the password's UTF-8 bytes as they are).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from `SaltedPassword`, which is what Kafka's
    /// AlterUserScramCredentials carries.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Self {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from
    /// (how PLAIN and HTTP Basic logins are checked). Costs `iterations`
    /// HMACs.
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let candidate = Self::from_password(self.mechanism, password, &self.salt, self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }

    /// Whether `client_proof` proves knowledge of the password for
    /// `auth_message` (RFC 5802 §3: `ClientKey = ClientProof XOR
    /// HMAC(StoredKey, AuthMessage)` and `H(ClientKey) == StoredKey`).
    pub fn verify_client_proof(&self, auth_message: &[u8], client_proof: &[u8]) -> bool {
        let signature = self.mechanism.hmac(&self.stored_key, auth_message);
        if client_proof.len() != signature.len() {
            return false;
        }
        let client_key: Vec<u8> = client_proof
            .iter()
            .zip(&signature)
            .map(|(proof, sign)| proof ^ sign)
            .collect();
        bool::from(self.mechanism.hash(&client_key).ct_eq(&self.stored_key))
    }

    /// `ServerSignature = HMAC(ServerKey, AuthMessage)`, sent to the client
    /// in the server-final-message (`v=`).
    pub fn server_signature(&self, auth_message: &[u8]) -> Vec<u8> {
        self.mechanism.hmac(&self.server_key, auth_message)
    }
}

/// The client side of the proof, for tests and tools that log in.
pub fn client_proof(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    auth_message: &[u8],
) -> Vec<u8> {
    let client_key = mechanism.hmac(salted_password, b"Client Key");
    let stored_key = mechanism.hash(&client_key);
    let signature = mechanism.hmac(&stored_key, auth_message);
    client_key
        .iter()
        .zip(&signature)
        .map(|(key, sign)| key ^ sign)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn b64(text: &str) -> Vec<u8> {
        STANDARD.decode(text).unwrap()
    }

    /// RFC 7677 §3: user "user", password "pencil", 4096 iterations.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let mechanism = ScramMechanism::Sha256;
        let salt = b64("W22ZaJ0SNY7soEsUEjb6gQ==");
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_without_proof =
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message =
            format!("{client_first_bare},{server_first},{client_final_without_proof}");
        let credential = ScramCredential::from_password(mechanism, b"pencil", &salt, 4096);
        let salted = mechanism.salted_password(b"pencil", &salt, 4096);
        let proof = client_proof(mechanism, &salted, auth_message.as_bytes());
        assert_eq!(proof, b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
        assert!(credential.verify_client_proof(auth_message.as_bytes(), &proof));
        assert_eq!(
            credential.server_signature(auth_message.as_bytes()),
            b64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        );
        assert!(credential.verify_password(b"pencil"));
        assert!(!credential.verify_password(b"pencil2"));
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        assert!(!credential.verify_client_proof(auth_message.as_bytes(), &wrong));
        assert!(!credential.verify_client_proof(auth_message.as_bytes(), &proof[..31]));
    }

    /// RFC 5802 §5 gives only SHA-1; for SHA-512 the same exchange is
    /// checked against itself: a proof made from the password verifies,
    /// one made from another password does not.
    #[test]
    fn scram_sha_512_round_trips() {
        let mechanism = ScramMechanism::Sha512;
        let credential = ScramCredential::from_password(mechanism, b"secret", b"salt", 4096);
        assert_eq!(credential.stored_key.len(), 64);
        let auth = b"n=u,r=a,r=ab,s=c2FsdA==,i=4096,c=biws,r=ab";
        let good = client_proof(
            mechanism,
            &mechanism.salted_password(b"secret", b"salt", 4096),
            auth,
        );
        let bad = client_proof(
            mechanism,
            &mechanism.salted_password(b"secreT", b"salt", 4096),
            auth,
        );
        assert!(credential.verify_client_proof(auth, &good));
        assert!(!credential.verify_client_proof(auth, &bad));
    }

    #[test]
    fn debug_output_hides_keys() {
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", b"salt", 4096);
        let shown = format!("{credential:?}");
        assert!(shown.contains("iterations: 4096"), "{shown}");
        assert!(
            !shown.contains("stored_key") && !shown.contains("salt"),
            "{shown}"
        );
    }

    #[test]
    fn mechanisms_have_kafkas_names_and_codes() {
        assert_eq!(
            ScramMechanism::from_name("scram-sha-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_code(1), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::from_code(0), None);
    }
}
