-- Producer ids for idempotent producers (Kafka's InitProducerId).

CREATE TABLE producer_ids (
    producer_id    BIGSERIAL PRIMARY KEY,
    producer_epoch SMALLINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
