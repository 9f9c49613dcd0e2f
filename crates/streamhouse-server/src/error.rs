//! Why a server could not start or stopped with an error.

use std::io;

use streamhouse_metadata::MetadataError;
use thiserror::Error;

use crate::config::ConfigError;

/// Errors of [`crate::Server`]. Each displays as one line that names the
/// setting to look at, because the binary prints it as its last word.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metadata store could not be opened (unreachable, bad
    /// credentials, migrations failed). The URL is already redacted.
    #[error("--metadata: cannot open {url}: {source}")]
    Metadata {
        url: String,
        #[source]
        source: MetadataError,
    },
    /// The object store could not be opened or did not answer a listing.
    #[error("--object-store: cannot use {location}: {reason}")]
    ObjectStore { location: String, reason: String },
    #[error("{flag}: cannot listen on {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: String,
        #[source]
        source: io::Error,
    },
    /// A listener stopped with an error while serving.
    #[error("{what} server failed: {source}")]
    Serve {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl ServerError {
    /// Whether the configuration itself is wrong (the binary exits with 2)
    /// rather than something it points at being unavailable.
    pub fn is_config(&self) -> bool {
        matches!(self, ServerError::Config(_))
    }
}
