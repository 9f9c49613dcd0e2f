//! `/api/v1/acls`: Kafka ACL bindings, as CreateAcls, DescribeAcls and
//! DeleteAcls manage them (Alter, Describe and Alter on the cluster), with
//! the same filters.
//!
//! `DELETE` without any filter parameter is refused: the filter that
//! matches everything must be asked for (`resource_type=Any`), not reached
//! by forgetting the query.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use streamhouse_api::{Acl, AclFilter};
use streamhouse_storage::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, CLUSTER_NAME, PatternType,
    ResourceType,
};

use super::auth::ApiCaller;
use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, SharedState};

/// Most bindings one `POST` creates.
const MAX_BINDINGS_PER_REQUEST: usize = 1000;

fn acl_body(binding: AclBinding) -> Acl {
    Acl {
        resource_type: binding.resource_type.name().to_owned(),
        resource_name: binding.resource_name,
        pattern_type: binding.pattern_type.name().to_owned(),
        principal: binding.principal,
        host: binding.host,
        operation: binding.operation.name().to_owned(),
        permission: binding.permission.name().to_owned(),
    }
}

fn parse<T: FromStr<Err = streamhouse_core::ValidationError>>(
    field: &str,
    text: &str,
) -> Result<T, ApiError> {
    T::from_str(text).map_err(|e| ApiError::invalid_input(format!("{field}: {e}")))
}

/// A binding from its JSON form, checked as CreateAcls checks it.
fn binding(index: usize, acl: Acl) -> Result<AclBinding, ApiError> {
    let at = |field: &str| format!("[{index}].{field}");
    let binding = AclBinding {
        resource_type: parse(&at("resource_type"), &acl.resource_type)?,
        resource_name: acl.resource_name,
        pattern_type: parse(&at("pattern_type"), &acl.pattern_type)?,
        principal: acl.principal,
        host: acl.host,
        operation: parse(&at("operation"), &acl.operation)?,
        permission: parse(&at("permission"), &acl.permission)?,
    };
    binding
        .validate()
        .map_err(|e| ApiError::invalid_input(format!("[{index}]: {e}")))?;
    Ok(binding)
}

fn filter(query: AclFilter) -> Result<AclBindingFilter, ApiError> {
    fn or_any<T: FromStr<Err = streamhouse_core::ValidationError>>(
        field: &str,
        text: Option<String>,
        any: T,
    ) -> Result<T, ApiError> {
        text.map_or(Ok(any), |text| parse(field, &text))
    }
    Ok(AclBindingFilter {
        resource_type: or_any("resource_type", query.resource_type, ResourceType::Any)?,
        resource_name: query.resource_name,
        pattern_type: or_any("pattern_type", query.pattern_type, PatternType::Any)?,
        principal: query.principal,
        host: query.host,
        operation: or_any("operation", query.operation, AclOperation::Any)?,
        permission: or_any("permission", query.permission, AclPermission::Any)?,
    })
}

pub(crate) async fn list(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiQuery(query): ApiQuery<AclFilter>,
) -> Result<Json<Vec<Acl>>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let filter = filter(query)?;
    let mut bindings = state.engine.acls(&filter).await?;
    bindings.sort();
    Ok(Json(bindings.into_iter().map(acl_body).collect()))
}

/// `POST /acls` with a list of bindings: all are checked before any is
/// stored. Answers 201 with the bindings as stored.
pub(crate) async fn create(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiJson(acls): ApiJson<Vec<Acl>>,
) -> Result<Response, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    if acls.is_empty() {
        return Err(ApiError::invalid_input("the list of ACL bindings is empty"));
    }
    if acls.len() > MAX_BINDINGS_PER_REQUEST {
        return Err(ApiError::invalid_input(format!(
            "at most {MAX_BINDINGS_PER_REQUEST} ACL bindings per request"
        )));
    }
    let bindings = acls
        .into_iter()
        .enumerate()
        .map(|(index, acl)| binding(index, acl))
        .collect::<Result<Vec<_>, _>>()?;
    state.engine.create_acls(&bindings).await?;
    for binding in &bindings {
        tracing::info!(acl = ?binding, by = %caller.principal(), "acl created over http");
    }
    let created: Vec<Acl> = bindings.into_iter().map(acl_body).collect();
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /acls?FILTER`: answers the bindings deleted.
pub(crate) async fn delete(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiQuery(query): ApiQuery<AclFilter>,
) -> Result<Json<Vec<Acl>>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    if query.is_empty() {
        return Err(ApiError::invalid_input(
            "give at least one filter parameter (resource_type=Any deletes every ACL)",
        ));
    }
    let filter = filter(query)?;
    let mut deleted: Vec<AclBinding> = state
        .engine
        .delete_acls(std::slice::from_ref(&filter))
        .await?
        .into_iter()
        .flatten()
        .collect();
    deleted.sort();
    for binding in &deleted {
        tracing::info!(acl = ?binding, by = %caller.principal(), "acl deleted over http");
    }
    Ok(Json(deleted.into_iter().map(acl_body).collect()))
}
