//! CreateAcls, DescribeAcls and DeleteAcls: Kafka's ACL administration,
//! stored and matched by the engine.
//!
//! Creating and deleting need Alter on the cluster, describing Describe
//! (CLUSTER_AUTHORIZATION_FAILED otherwise). Without an authorizer Kafka
//! answers SECURITY_DISABLED, and so does this. A binding or filter with
//! an unknown code, a filter-only value in a binding, or a malformed
//! principal is INVALID_REQUEST with a message saying which.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_storage::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, Principal, ResourceType,
};

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// An error code and its message.
type Failure = (i16, String);

const SECURITY_DISABLED: i16 = ResponseError::SecurityDisabled.code();
const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();

/// Whether ACLs may be administered with `operation` on the cluster.
fn admitted(
    broker: &Broker,
    context: &RequestContext,
    operation: AclOperation,
) -> Result<(), Failure> {
    Access::of(broker, context)
        .cluster(operation)
        .map_err(|code| {
            (
                code,
                format!("not authorized to {operation} the cluster's ACLs"),
            )
        })?;
    if !broker.engine.authorizer_enabled() {
        return Err((
            SECURITY_DISABLED,
            "no authorizer is configured (start the server with --authorizer acl)".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn create(
    broker: &Broker,
    context: &RequestContext,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let count = request.creations.len();
    if let Err(failure) = admitted(broker, context, AclOperation::Alter) {
        let results = (0..count).map(|_| creation_result(Err(failure.clone())));
        return CreateAclsResponse::default().with_results(results.collect());
    }
    let bindings: Vec<Result<AclBinding, Failure>> =
        request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = bindings.iter().filter_map(|b| b.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        broker
            .engine
            .create_acls(&valid)
            .await
            .map_err(|e| (storage_error_code(&e), e.to_string()))
    };
    if stored.is_ok() {
        for binding in &valid {
            tracing::info!(principal = %context.caller.principal, acl = %describe_binding(binding),
                "created ACL");
        }
    }
    let results = bindings
        .into_iter()
        .map(|binding| creation_result(binding.and(stored.clone())))
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn creation_result(outcome: Result<(), Failure>) -> AclCreationResult {
    match outcome {
        Ok(()) => AclCreationResult::default().with_error_code(0),
        Err((code, message)) => AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message))),
    }
}

pub(crate) async fn describe(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |(code, message): Failure| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if let Err(failure) = admitted(broker, context, AclOperation::Describe) {
        return failed(failure);
    }
    let filter = match filter(FilterFields {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_ref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_ref(),
        host: request.host_filter.as_ref(),
        operation: request.operation,
        permission: request.permission_type,
    }) {
        Ok(filter) => filter,
        Err(failure) => return failed(failure),
    };
    let bindings = match broker.engine.acls(&filter).await {
        Ok(bindings) => bindings,
        Err(error) => return failed((storage_error_code(&error), error.to_string())),
    };
    // Kafka groups the answer by resource pattern.
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for binding in bindings {
        by_resource
            .entry((
                binding.resource_type.code(),
                binding.resource_name.clone(),
                binding.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(binding.principal))
                    .with_host(str_bytes(binding.host))
                    .with_operation(binding.operation.code())
                    .with_permission_type(binding.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default()
        .with_error_code(0)
        .with_resources(resources)
}

pub(crate) async fn delete(
    broker: &Broker,
    context: &RequestContext,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |(code, message): Failure| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if let Err(failure) = admitted(broker, context, AclOperation::Alter) {
        let results = request.filters.iter().map(|_| failed(failure.clone()));
        return DeleteAclsResponse::default().with_filter_results(results.collect());
    }
    let filters: Vec<Result<AclBindingFilter, Failure>> =
        request.filters.iter().map(delete_filter).collect();
    let valid: Vec<AclBindingFilter> = filters.iter().filter_map(|f| f.clone().ok()).collect();
    let deleted = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        broker
            .engine
            .delete_acls(&valid)
            .await
            .map_err(|e| (storage_error_code(&e), e.to_string()))
    };
    let mut deleted_per_filter = match &deleted {
        Ok(deleted) => deleted.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = filters
        .into_iter()
        .map(|filter| match (filter, &deleted) {
            (Err(failure), _) => failed(failure),
            (Ok(_), Err(failure)) => failed(failure.clone()),
            (Ok(_), Ok(_)) => {
                let bindings = deleted_per_filter.next().unwrap_or_default();
                for binding in &bindings {
                    tracing::info!(principal = %context.caller.principal,
                        acl = %describe_binding(binding), "deleted ACL");
                }
                DeleteAclsFilterResult::default()
                    .with_error_code(0)
                    .with_matching_acls(bindings.into_iter().map(matching_acl).collect())
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn matching_acl(binding: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_code(0)
        .with_resource_type(binding.resource_type.code())
        .with_resource_name(str_bytes(binding.resource_name))
        .with_pattern_type(binding.pattern_type.code())
        .with_principal(str_bytes(binding.principal))
        .with_host(str_bytes(binding.host))
        .with_operation(binding.operation.code())
        .with_permission_type(binding.permission.code())
}

fn describe_binding(binding: &AclBinding) -> String {
    format!(
        "{} {} on {}:{}:{} for {} from {}",
        binding.permission,
        binding.operation,
        binding.resource_type,
        binding.pattern_type,
        binding.resource_name,
        binding.principal,
        binding.host
    )
}

/// A wire code as one of Kafka's values, or INVALID_REQUEST naming it.
fn code<T>(field: &str, code: i8, from_code: fn(i8) -> Option<T>) -> Result<T, Failure> {
    from_code(code).ok_or_else(|| (INVALID_REQUEST, format!("unknown {field} code {code}")))
}

/// The binding a CreateAcls creation asks for, checked as Kafka checks it.
fn binding(creation: &AclCreation) -> Result<AclBinding, Failure> {
    let binding = AclBinding {
        resource_type: code(
            "resource type",
            creation.resource_type,
            ResourceType::from_code,
        )?,
        resource_name: creation.resource_name.to_string(),
        pattern_type: code(
            "pattern type",
            creation.resource_pattern_type,
            PatternType::from_code,
        )?,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: code("operation", creation.operation, AclOperation::from_code)?,
        permission: code(
            "permission type",
            creation.permission_type,
            AclPermission::from_code,
        )?,
    };
    binding
        .validate()
        .map_err(|error| (INVALID_REQUEST, error.to_string()))?;
    Ok(binding)
}

/// The fields DescribeAcls and DeleteAcls filters share.
struct FilterFields<'a> {
    resource_type: i8,
    resource_name: Option<&'a StrBytes>,
    pattern_type: i8,
    principal: Option<&'a StrBytes>,
    host: Option<&'a StrBytes>,
    operation: i8,
    permission: i8,
}

fn delete_filter(filter_fields: &DeleteAclsFilter) -> Result<AclBindingFilter, Failure> {
    filter(FilterFields {
        resource_type: filter_fields.resource_type_filter,
        resource_name: filter_fields.resource_name_filter.as_ref(),
        pattern_type: filter_fields.pattern_type_filter,
        principal: filter_fields.principal_filter.as_ref(),
        host: filter_fields.host_filter.as_ref(),
        operation: filter_fields.operation,
        permission: filter_fields.permission_type,
    })
}

fn filter(fields: FilterFields<'_>) -> Result<AclBindingFilter, Failure> {
    let principal = fields.principal.map(ToString::to_string);
    if let Some(principal) = &principal {
        Principal::parse(principal).map_err(|error| (INVALID_REQUEST, error.to_string()))?;
    }
    Ok(AclBindingFilter {
        resource_type: code(
            "resource type",
            fields.resource_type,
            ResourceType::from_code,
        )?,
        resource_name: fields.resource_name.map(ToString::to_string),
        pattern_type: code("pattern type", fields.pattern_type, PatternType::from_code)?,
        principal,
        host: fields.host.map(ToString::to_string),
        operation: code("operation", fields.operation, AclOperation::from_code)?,
        permission: code(
            "permission type",
            fields.permission,
            AclPermission::from_code,
        )?,
    })
}
