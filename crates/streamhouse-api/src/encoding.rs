//! How record bytes (keys, values, header values) are written as JSON
//! strings.

use serde::{Deserialize, Serialize};

/// How a request's or a record's byte fields are encoded as JSON strings:
/// `"utf8"` (also accepted as `"utf-8"`) or `"base64"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text.
    #[default]
    #[serde(alias = "utf-8")]
    Utf8,
    /// Standard base64, for binary data.
    Base64,
}

impl Encoding {
    /// The name used in JSON and in query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Base64 => "base64",
        }
    }
}
