//! InitProducerId: a new producer id (epoch 0) for an idempotent
//! producer, or a new epoch for an existing one. Transactions are not
//! supported.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::Broker;
use crate::error::storage_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
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
