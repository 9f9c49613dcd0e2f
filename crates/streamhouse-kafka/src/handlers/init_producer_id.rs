//! InitProducerId: a new producer id (epoch 0) for an idempotent
//! producer, or a new epoch for an existing one. Transactions are not
//! supported.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::error::metadata_error_code;
use crate::server::Broker;

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
    let store = broker.engine.metadata();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    if producer_id >= 0 && epoch >= 0 {
        // KIP-360: an existing producer asks for a new epoch after an error,
        // which fences its own older epoch.
        return match store.bump_producer_epoch(producer_id, epoch).await {
            Ok(Some(new_epoch)) => response
                .with_error_code(0)
                .with_producer_id(producer_id.into())
                .with_producer_epoch(new_epoch),
            Ok(None) => response.with_error_code(ResponseError::InvalidProducerEpoch.code()),
            Err(error) => response.with_error_code(metadata_error_code(&error)),
        };
    }
    match store.allocate_producer_id().await {
        Ok(producer_id) => response
            .with_error_code(0)
            .with_producer_id(producer_id.into())
            .with_producer_epoch(0),
        Err(error) => response.with_error_code(metadata_error_code(&error)),
    }
}
