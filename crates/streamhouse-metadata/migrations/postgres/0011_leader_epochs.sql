-- Leader epochs (Kafka's KIP-320). Each partition has a leader epoch that
-- grows by one whenever the agent it is placed on (its advisory leader)
-- changes; `leader` is the agent id the epoch was bumped for, so that every
-- agent noticing the same membership change bumps it once. A flush commit
-- reads the epoch with the high watermark under the partition's lock, so
-- every offset below a high watermark belongs to an epoch no newer than
-- the one read with it.

ALTER TABLE partitions ADD COLUMN leader_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN leader TEXT;

-- Kafka's leader epoch cache: the offset at which each epoch started (the
-- high watermark when it was bumped). An epoch in which nothing was
-- written is replaced by the next one starting at the same offset, and
-- epochs wholly below the log start offset are dropped, so a partition
-- keeps one row per epoch that still holds records, plus its current one.
-- Offsets below the first row belong to epoch 0.
CREATE TABLE partition_epochs (
    topic        TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    epoch        INTEGER NOT NULL CHECK (epoch > 0),
    start_offset BIGINT NOT NULL CHECK (start_offset >= 0),
    PRIMARY KEY (topic, partition_id, epoch),
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE
);

-- Grows with every change of some partition's leader epoch (and with every
-- topic deletion), so agents notice with one cheap query when to re-read
-- the epochs.
CREATE TABLE leader_epochs_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO leader_epochs_version (id, version) VALUES (1, 0);

-- The leader epoch of the record a committed offset follows (OffsetCommit
-- v6+, TxnOffsetCommit v2+), -1 when the client sent none.
ALTER TABLE consumer_offsets ADD COLUMN leader_epoch INTEGER NOT NULL DEFAULT -1;
ALTER TABLE transaction_offsets ADD COLUMN leader_epoch INTEGER NOT NULL DEFAULT -1;
