-- Idempotent producers: the last batches of each producer per partition,
-- checked by every flush commit; and the agents of a cluster.

CREATE TABLE producer_batches (
    producer_id    BIGINT NOT NULL,
    topic          TEXT NOT NULL,
    partition_id   INTEGER NOT NULL,
    producer_epoch SMALLINT NOT NULL,
    first_sequence INTEGER NOT NULL,
    last_sequence  INTEGER NOT NULL,
    base_offset    BIGINT NOT NULL,
    end_offset     BIGINT NOT NULL,
    PRIMARY KEY (producer_id, topic, partition_id, base_offset),
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE
);

CREATE TABLE agents (
    agent_id       TEXT PRIMARY KEY,
    node_id        INTEGER NOT NULL,
    host           TEXT NOT NULL,
    port           INTEGER NOT NULL,
    zone           TEXT,
    started_at     BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL
);
