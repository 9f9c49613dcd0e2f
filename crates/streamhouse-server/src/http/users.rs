//! `/api/v1/users`: SCRAM users, as Kafka's DescribeUserScramCredentials
//! and AlterUserScramCredentials manage them (Describe and Alter on the
//! cluster).
//!
//! The engine makes the salt and derives the credential; the password is
//! dropped once the credential exists, and is never logged or answered.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use streamhouse_api::{DeleteUserQuery, SetUser, User, UserCredential};
use streamhouse_storage::security::{AclOperation, CLUSTER_NAME, ResourceType, ScramMechanism};
use streamhouse_storage::{DEFAULT_SCRAM_ITERATIONS, ScramUser, validate_user_name};

use super::auth::ApiCaller;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, SharedState};

/// Longest password accepted; PBKDF2 runs over it once per iteration.
const MAX_PASSWORD_BYTES: usize = 1024;

fn user_body(user: ScramUser) -> User {
    User {
        name: user.name,
        credentials: user
            .credentials
            .into_iter()
            .map(|(mechanism, iterations)| UserCredential {
                mechanism: mechanism.name().to_owned(),
                iterations,
            })
            .collect(),
    }
}

pub(crate) async fn list(
    State(state): State<SharedState>,
    caller: ApiCaller,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let users = state.engine.scram_users().await?;
    Ok(Json(users.into_iter().map(user_body).collect()))
}

/// `PUT /users/{name}`: creates the user or replaces its credentials for
/// the mechanisms named (both by default). Answers the user as stored.
pub(crate) async fn set(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<SetUser>,
) -> Result<Json<User>, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    validate_user_name(&name)?;
    let mechanisms = match request.mechanism.as_deref() {
        Some(text) => vec![mechanism(text)?],
        None => ScramMechanism::ALL.to_vec(),
    };
    let iterations = request.iterations.unwrap_or(DEFAULT_SCRAM_ITERATIONS);
    if !(ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS).contains(&iterations) {
        return Err(ApiError::invalid_input(format!(
            "iterations must be between {} and {}",
            ScramMechanism::MIN_ITERATIONS,
            ScramMechanism::MAX_ITERATIONS
        )));
    }
    if request.password.is_empty() {
        return Err(ApiError::invalid_input("the password is empty"));
    }
    if request.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid_input(format!(
            "the password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    for mechanism in mechanisms {
        state
            .engine
            .set_password(&name, &request.password, mechanism, iterations)
            .await?;
        tracing::info!(user = ?name, %mechanism, iterations, by = %caller.principal(), "scram credential set over http");
    }
    let stored = state
        .engine
        .scram_users()
        .await?
        .into_iter()
        .find(|user| user.name == name)
        .map(user_body)
        .unwrap_or(User {
            name,
            credentials: Vec::new(),
        });
    Ok(Json(stored))
}

/// `DELETE /users/{name}[?mechanism=M]`: deletes one credential, or all
/// of them; 404 if there was none to delete.
pub(crate) async fn delete(
    State(state): State<SharedState>,
    caller: ApiCaller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteUserQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require(
        &state.engine,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )?;
    let mechanisms = match query.mechanism.as_deref() {
        Some(text) => vec![mechanism(text)?],
        None => ScramMechanism::ALL.to_vec(),
    };
    let mut deleted = false;
    for mechanism in mechanisms {
        if state
            .engine
            .delete_scram_credential(&name, mechanism)
            .await?
        {
            deleted = true;
            tracing::info!(user = ?name, %mechanism, by = %caller.principal(), "scram credential deleted over http");
        }
    }
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(match query.mechanism {
            Some(mechanism) => format!("user {name:?} has no {mechanism} credential"),
            None => format!("user {name:?} does not exist"),
        }))
    }
}

fn mechanism(text: &str) -> Result<ScramMechanism, ApiError> {
    ScramMechanism::from_name(text).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "unknown mechanism {text:?}: expected SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
    })
}
