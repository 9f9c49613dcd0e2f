//! InitProducerId: a new producer id for an idempotent producer.
//! Transactions are not supported.

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
    match broker.engine.metadata().allocate_producer_id().await {
        Ok(producer_id) => response
            .with_error_code(0)
            .with_producer_id(producer_id.into())
            .with_producer_epoch(0),
        Err(error) => response.with_error_code(metadata_error_code(&error)),
    }
}
