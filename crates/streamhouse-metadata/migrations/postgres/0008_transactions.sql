-- Transactions (KIP-98). One row per transactional.id holds what Kafka's
-- transaction coordinator keeps in __transaction_state: the producer id and
-- epoch it issued, the state, the timeout and when the open transaction
-- started, with the partitions and consumer groups added to it. Any agent
-- can take a coordinator over from this state.
-- `state` is Kafka's TransactionState: 0 Empty, 1 Ongoing, 2 PrepareCommit,
-- 3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort.

CREATE TABLE transactions (
    transactional_id TEXT PRIMARY KEY,
    producer_id      BIGINT NOT NULL UNIQUE,
    producer_epoch   SMALLINT NOT NULL CHECK (producer_epoch >= 0),
    state            SMALLINT NOT NULL CHECK (state BETWEEN 0 AND 5),
    timeout_ms       INTEGER NOT NULL CHECK (timeout_ms > 0),
    -- When the open transaction started; -1 when none is open.
    started_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE transaction_partitions (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    topic            TEXT NOT NULL,
    partition_id     INTEGER NOT NULL,
    PRIMARY KEY (transactional_id, topic, partition_id)
);

CREATE TABLE transaction_groups (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id         TEXT NOT NULL,
    PRIMARY KEY (transactional_id, group_id)
);

-- Offsets sent with TxnOffsetCommit: they reach consumer_offsets when the
-- transaction commits and are dropped when it aborts.
CREATE TABLE transaction_offsets (
    transactional_id TEXT NOT NULL REFERENCES transactions (transactional_id) ON DELETE CASCADE,
    group_id         TEXT NOT NULL,
    topic            TEXT NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset BIGINT NOT NULL,
    metadata         TEXT,
    PRIMARY KEY (transactional_id, group_id, topic, partition_id)
);

-- Each partition's transactions (Kafka's producer state and aborted
-- transaction index): a row from the first batch a transaction wrote to
-- the partition to the offset of its COMMIT or ABORT marker, NULL while the
-- transaction is open. `first_open_txn` on the partition is the first
-- offset of its oldest open transaction: the last stable offset, NULL when
-- none is open (the last stable offset is then the high watermark).
CREATE TABLE partition_transactions (
    topic         TEXT NOT NULL,
    partition_id  INTEGER NOT NULL,
    producer_id   BIGINT NOT NULL,
    first_offset  BIGINT NOT NULL,
    marker_offset BIGINT,
    aborted       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (topic, partition_id, first_offset),
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX partition_transactions_open
    ON partition_transactions (topic, partition_id, producer_id) WHERE marker_offset IS NULL;

ALTER TABLE partitions ADD COLUMN first_open_txn BIGINT;

-- A transactional batch or a marker is a segment of its own: its producer
-- id and epoch, and for a marker its type (0 ABORT, 1 COMMIT, Kafka's
-- control record types). NULL for every other row.
ALTER TABLE segments ADD COLUMN producer_id BIGINT;
ALTER TABLE segments ADD COLUMN producer_epoch SMALLINT;
ALTER TABLE segments ADD COLUMN control SMALLINT;
