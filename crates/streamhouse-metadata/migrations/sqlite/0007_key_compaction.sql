-- Key compaction (cleanup.policy=compact). A segment row written by key
-- compaction holds, for each key, only records no later record of the same
-- key superseded when it was written. `cleaned_at` is when the tombstones
-- it holds were first compacted (milliseconds since the Unix epoch), from
-- which their `delete.retention.ms` counts; for a row without tombstones,
-- when its newest records were first compacted. NULL for every other row.
-- `tombstones` counts the row's records with a null value.
-- Key-compacted rows keep their offset range but may hold fewer records
-- than it spans (gaps), and none when every record of the range was
-- removed.
--
-- SQLite cannot change a CHECK constraint, so the table is rebuilt with
-- the same columns, ids and indexes (no table references it).

CREATE TABLE segments_0007 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    topic         TEXT NOT NULL,
    partition_id  INTEGER NOT NULL,
    base_offset   BIGINT NOT NULL,
    end_offset    BIGINT NOT NULL,
    record_count  BIGINT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    s3_bucket     TEXT NOT NULL,
    s3_key        TEXT NOT NULL,
    byte_offset   BIGINT NOT NULL,
    byte_length   BIGINT NOT NULL,
    min_timestamp BIGINT NOT NULL,
    max_timestamp BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    cleaned_at    BIGINT,
    tombstones    BIGINT NOT NULL DEFAULT 0,
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE,
    CHECK (end_offset >= base_offset),
    CHECK (record_count >= 0 AND (record_count > 0 OR cleaned_at IS NOT NULL))
);

INSERT INTO segments_0007 (id, topic, partition_id, base_offset, end_offset, record_count,
    size_bytes, s3_bucket, s3_key, byte_offset, byte_length, min_timestamp, max_timestamp,
    created_at)
SELECT id, topic, partition_id, base_offset, end_offset, record_count, size_bytes, s3_bucket,
    s3_key, byte_offset, byte_length, min_timestamp, max_timestamp, created_at
FROM segments;

DROP TABLE segments;
ALTER TABLE segments_0007 RENAME TO segments;

CREATE UNIQUE INDEX segments_partition_base ON segments (topic, partition_id, base_offset);
CREATE INDEX segments_partition_range ON segments (topic, partition_id, base_offset, end_offset);
CREATE INDEX segments_object ON segments (s3_bucket, s3_key);
CREATE INDEX segments_created_at ON segments (created_at);
