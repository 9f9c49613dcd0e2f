//! ApiVersions: the versions of every API this server speaks.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseKind};

use crate::versions::SUPPORTED;

pub(crate) fn handle(_version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

/// The answer to an ApiVersions request of a version newer than this server
/// knows: error UNSUPPORTED_VERSION plus the supported ranges, encoded as
/// version 0 by the caller.
pub(crate) fn unsupported_version() -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys()),
    )
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}
