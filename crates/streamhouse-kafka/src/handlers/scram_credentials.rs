//! DescribeUserScramCredentials and AlterUserScramCredentials: users'
//! SCRAM credentials, kept by the engine.
//!
//! Describing needs Describe on the cluster, altering Alter
//! (CLUSTER_AUTHORIZATION_FAILED). A client sends the salted password,
//! never the password; the answer shows mechanisms and iteration counts,
//! never keys. As in Kafka, one request alters each user at most once.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use streamhouse_storage::security::{AclOperation, ScramCredential, ScramMechanism};
use streamhouse_storage::validate_user_name;

use super::access::Access;
use super::common::str_bytes;
use crate::broker::{Broker, RequestContext};
use crate::error::storage_error_code;

/// An error code and its message.
type Failure = (i16, String);

const RESOURCE_NOT_FOUND: i16 = ResponseError::ResourceNotFound.code();
const DUPLICATE_RESOURCE: i16 = ResponseError::DuplicateResource.code();
const UNACCEPTABLE_CREDENTIAL: i16 = ResponseError::UnacceptableCredential.code();
const UNSUPPORTED_SASL_MECHANISM: i16 = ResponseError::UnsupportedSaslMechanism.code();

pub(crate) async fn describe(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let failed = |(code, message): Failure| {
        DescribeUserScramCredentialsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
    };
    if let Err(code) = Access::of(broker, context).cluster(AclOperation::Describe) {
        return failed((code, "not authorized to describe users".into()));
    }
    let users = match broker.engine.scram_users().await {
        Ok(users) => users,
        Err(error) => return failed((storage_error_code(&error), error.to_string())),
    };
    let credentials = |user: &streamhouse_storage::ScramUser| {
        user.credentials
            .iter()
            .map(|(mechanism, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism.code())
                    .with_iterations(i32::try_from(*iterations).unwrap_or(i32::MAX))
            })
            .collect::<Vec<_>>()
    };
    let wanted: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|user| user.name.to_string())
        .collect();
    let results = if wanted.is_empty() {
        users
            .iter()
            .map(|user| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.name.clone()))
                    .with_error_code(0)
                    .with_credential_infos(credentials(user))
            })
            .collect()
    } else {
        let mut seen = BTreeSet::new();
        let duplicated: BTreeSet<&String> = wanted.iter().filter(|u| !seen.insert(*u)).collect();
        let mut answered = BTreeSet::new();
        wanted
            .iter()
            .filter(|name| answered.insert(*name))
            .map(|name| {
                let result = DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(name.clone()));
                let failure = |(code, message): Failure| {
                    result
                        .clone()
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message)))
                };
                if duplicated.contains(name) {
                    return failure((
                        DUPLICATE_RESOURCE,
                        format!("cannot describe user {name:?} twice in one request"),
                    ));
                }
                match users.iter().find(|user| &user.name == name) {
                    Some(user) => result
                        .clone()
                        .with_error_code(0)
                        .with_credential_infos(credentials(user)),
                    None => failure((
                        RESOURCE_NOT_FOUND,
                        format!("user {name:?} has no SCRAM credential"),
                    )),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(0)
        .with_results(results)
}

/// One alteration a request asks for.
enum Alteration {
    Delete(ScramMechanism),
    Upsert(ScramCredential),
}

pub(crate) async fn alter(
    broker: &Broker,
    context: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Per user, in the order first named: its alterations, or why they
    // are refused.
    let mut order: Vec<String> = Vec::new();
    let mut users: BTreeMap<String, Result<Alteration, Failure>> = BTreeMap::new();
    // As Kafka's controller: a user is altered once per request; a second
    // alteration refuses the user, and the first refusal is the one kept.
    let mut add = |name: String, alteration: Result<Alteration, Failure>| match users.get_mut(&name)
    {
        None => {
            order.push(name.clone());
            users.insert(name, alteration);
        }
        Some(Err(_)) => {}
        Some(entry) => {
            *entry = Err((
                DUPLICATE_RESOURCE,
                format!("user {name:?} is altered twice in one request"),
            ));
        }
    };
    for deletion in request.deletions {
        let name = deletion.name.to_string();
        let outcome = checked(&name, deletion.mechanism).map(Alteration::Delete);
        add(name, outcome);
    }
    for upsertion in request.upsertions {
        let name = upsertion.name.to_string();
        let outcome = checked(&name, upsertion.mechanism).and_then(|mechanism| {
            let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
            if iterations < ScramMechanism::MIN_ITERATIONS {
                return Err((
                    UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "too few iterations: {} (at least {})",
                        upsertion.iterations,
                        ScramMechanism::MIN_ITERATIONS
                    ),
                ));
            }
            if iterations > ScramMechanism::MAX_ITERATIONS {
                return Err((
                    UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "too many iterations: {} (at most {})",
                        upsertion.iterations,
                        ScramMechanism::MAX_ITERATIONS
                    ),
                ));
            }
            if upsertion.salt.is_empty() {
                return Err((UNACCEPTABLE_CREDENTIAL, "the salt is empty".into()));
            }
            if upsertion.salted_password.len() != mechanism.output_len() {
                return Err((
                    UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "a {} salted password is {} bytes long, not {}",
                        mechanism.name(),
                        mechanism.output_len(),
                        upsertion.salted_password.len()
                    ),
                ));
            }
            Ok(Alteration::Upsert(ScramCredential::from_salted_password(
                mechanism,
                &upsertion.salted_password,
                &upsertion.salt,
                iterations,
            )))
        });
        add(name, outcome);
    }
    let admitted = Access::of(broker, context)
        .cluster(AclOperation::Alter)
        .map_err(|code| (code, "not authorized to alter users".to_string()));
    let mut results = Vec::with_capacity(order.len());
    for name in order {
        let Some(checked) = users.remove(&name) else {
            continue;
        };
        // Kafka refuses an unauthorized request whole, before validating.
        let planned = admitted.clone().and(checked);
        let outcome = match planned {
            Ok(alteration) => apply(broker, &name, alteration).await,
            Err(failure) => Err(failure),
        };
        let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(name.clone()));
        results.push(match outcome {
            Ok(()) => {
                tracing::info!(user = %name, principal = %context.caller.principal,
                    "altered SCRAM credentials");
                result.with_error_code(0)
            }
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// The mechanism of one alteration of `user`, or why it is refused.
fn checked(user: &str, mechanism: i8) -> Result<ScramMechanism, Failure> {
    if let Err(error) = validate_user_name(user) {
        return Err((UNACCEPTABLE_CREDENTIAL, error.to_string()));
    }
    ScramMechanism::from_code(mechanism).ok_or_else(|| {
        (
            UNSUPPORTED_SASL_MECHANISM,
            format!("unknown SCRAM mechanism {mechanism}"),
        )
    })
}

/// Applies one user's alteration.
async fn apply(broker: &Broker, user: &str, alteration: Alteration) -> Result<(), Failure> {
    let storage =
        |error: streamhouse_storage::StorageError| (storage_error_code(&error), error.to_string());
    match alteration {
        Alteration::Delete(mechanism) => {
            let deleted = broker
                .engine
                .delete_scram_credential(user, mechanism)
                .await
                .map_err(storage)?;
            if deleted {
                Ok(())
            } else {
                Err((
                    RESOURCE_NOT_FOUND,
                    format!("user {user:?} has no {} credential", mechanism.name()),
                ))
            }
        }
        Alteration::Upsert(credential) => broker
            .engine
            .set_scram_credential(user, credential)
            .await
            .map_err(storage),
    }
}
