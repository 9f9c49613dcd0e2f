//! TLS for the listeners (rustls, TLS 1.2 and 1.3 only): the certificate,
//! key and client CA read from PEM files, re-read on demand (SIGHUP), and
//! the principal of a client certificate by Kafka's
//! `ssl.principal.mapping.rules`.
//!
//! The invariant that matters: a reload that fails keeps the configuration
//! in force, and a reload that succeeds is used by the next handshake
//! while established connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

mod principal;

pub(crate) use principal::subject_dn;
pub use principal::{PrincipalMappingError, SslPrincipalMapper};

/// Why TLS files cannot be used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; when set a
    /// client certificate is required (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The TLS server configuration in force, replaceable by
/// [`TlsConfig::reload`]. Clones share it.
#[derive(Clone)]
pub struct TlsConfig {
    files: Arc<TlsFiles>,
    current: Arc<RwLock<ServerConfigs>>,
}

/// The two forms of one configuration: `SSL` listeners verify client
/// certificates when a client CA is set; `SASL_SSL` listeners and the HTTP
/// API authenticate with SASL or HTTP Basic and ask for none (as Kafka
/// applies `ssl.client.auth` to SSL listeners only).
struct ServerConfigs {
    client_auth: Arc<rustls::ServerConfig>,
    no_client_auth: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the files; any problem is an error naming the file.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let configs = build_both(&files)?;
        Ok(Self {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(configs)),
        })
    }

    /// Re-reads the files; on error the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = build_both(&self.files)?;
        *self.current.write() = configs;
        Ok(())
    }

    /// The configuration for the next handshake of an `SSL` listener: with
    /// client certificates required when a client CA is set.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().client_auth.clone()
    }

    /// The configuration for the next handshake of a `SASL_SSL` listener or
    /// the HTTP API: no client certificate asked for.
    pub fn server_config_without_client_auth(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().no_client_auth.clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The crypto provider of every TLS configuration, named explicitly so
/// that no process-wide default has to be installed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn build_both(files: &TlsFiles) -> Result<ServerConfigs, TlsError> {
    let client_auth = Arc::new(build(files)?);
    let no_client_auth = if files.client_ca.is_some() {
        let without = TlsFiles {
            client_ca: None,
            ..files.clone()
        };
        Arc::new(build(&without)?)
    } else {
        client_auth.clone()
    };
    Ok(ServerConfigs {
        client_auth,
        no_client_auth,
    })
}

fn build(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certificates(&files.cert)?;
    let key_pem = read(&files.key)?;
    // The parser's error is about PEM structure, never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        other => TlsError::Invalid {
            path: files.key.clone(),
            reason: other.to_string(),
        },
    })?;
    let invalid = |path: &Path, e: rustls::Error| TlsError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(&files.cert, e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| invalid(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Invalid {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid(&files.key, e))
}
