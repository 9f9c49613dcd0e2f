//! InitProducerId: a new producer id (epoch 0) for an idempotent
//! producer, or a new epoch for an existing one; with a transactional id,
//! the id's producer id at a new epoch, after aborting a transaction the
//! previous epoch left open (the engine's transaction coordinator).
//!
//! Without a transactional id the caller needs IdempotentWrite on the
//! cluster or Write on some topic (KIP-679); with one, Write on it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use streamhouse_storage::security::{AclOperation, ResourceType};

use super::access::{Access, CLUSTER_AUTHORIZATION_FAILED};
use crate::broker::{Broker, RequestContext};
use crate::error::{refusal_code, storage_error_code};
use streamhouse_storage::StorageError;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let access = Access::of(broker, context);
    let response = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if let Some(transactional_id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        if let Err(code) = access.transactional_id(AclOperation::Write, transactional_id) {
            return response.with_error_code(code);
        }
        let max = broker.config.transaction_max_timeout.as_millis();
        let timeout_ms = request.transaction_timeout_ms;
        if timeout_ms <= 0 || u128::from(timeout_ms.unsigned_abs()) > max {
            return response.with_error_code(ResponseError::InvalidTransactionTimeout.code());
        }
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let expected = (producer_id >= 0 && epoch >= 0).then_some((producer_id, epoch));
        return match broker
            .engine
            .init_transaction(transactional_id, timeout_ms, expected)
            .await
        {
            Ok(Ok((producer_id, epoch))) => response
                .with_error_code(0)
                .with_producer_id(producer_id.into())
                .with_producer_epoch(epoch),
            Ok(Err(refusal)) => response.with_error_code(refusal_code(refusal, false)),
            Err(StorageError::Metadata(error)) if error.is_retriable() => {
                response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
            }
            Err(error) => response.with_error_code(storage_error_code(&error)),
        };
    }
    let idempotent = access.cluster(AclOperation::IdempotentWrite).is_ok()
        || access.allows_any(AclOperation::Write, ResourceType::Topic);
    if !idempotent {
        return response.with_error_code(CLUSTER_AUTHORIZATION_FAILED);
    }
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    if producer_id >= 0 && epoch >= 0 {
        // KIP-360: an existing producer asks for a new epoch after an error,
        // which fences its own older epoch.
        return match broker.engine.bump_producer_epoch(producer_id, epoch).await {
            Ok(Some(new_epoch)) => response
                .with_error_code(0)
                .with_producer_id(producer_id.into())
                .with_producer_epoch(new_epoch),
            Ok(None) => response.with_error_code(ResponseError::InvalidProducerEpoch.code()),
            Err(error) => response.with_error_code(storage_error_code(&error)),
        };
    }
    match broker.engine.allocate_producer_id().await {
        Ok(producer_id) => response
            .with_error_code(0)
            .with_producer_id(producer_id.into())
            .with_producer_epoch(0),
        Err(error) => response.with_error_code(storage_error_code(&error)),
    }
}
