-- Topics, partitions, the segment index and consumer offsets.
-- Times are milliseconds since the Unix epoch (BIGINT) in every backend.

CREATE TABLE topics (
    name            TEXT PRIMARY KEY,
    topic_id        TEXT NOT NULL UNIQUE,
    partition_count INTEGER NOT NULL CHECK (partition_count > 0),
    config          TEXT NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL
);

CREATE TABLE partitions (
    topic            TEXT NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    partition_id     INTEGER NOT NULL CHECK (partition_id >= 0),
    high_watermark   BIGINT NOT NULL DEFAULT 0 CHECK (high_watermark >= 0),
    log_start_offset BIGINT NOT NULL DEFAULT 0 CHECK (log_start_offset >= 0),
    PRIMARY KEY (topic, partition_id),
    CHECK (log_start_offset <= high_watermark)
);

CREATE TABLE segments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    topic         TEXT NOT NULL,
    partition_id  INTEGER NOT NULL,
    base_offset   BIGINT NOT NULL,
    end_offset    BIGINT NOT NULL,
    record_count  BIGINT NOT NULL CHECK (record_count > 0),
    size_bytes    BIGINT NOT NULL,
    s3_bucket     TEXT NOT NULL,
    s3_key        TEXT NOT NULL,
    byte_offset   BIGINT NOT NULL,
    byte_length   BIGINT NOT NULL,
    min_timestamp BIGINT NOT NULL,
    max_timestamp BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE,
    CHECK (end_offset >= base_offset)
);

CREATE UNIQUE INDEX segments_partition_base ON segments (topic, partition_id, base_offset);
CREATE INDEX segments_partition_range ON segments (topic, partition_id, base_offset, end_offset);
CREATE INDEX segments_object ON segments (s3_bucket, s3_key);
CREATE INDEX segments_created_at ON segments (created_at);

CREATE TABLE consumer_offsets (
    group_id         TEXT NOT NULL,
    topic            TEXT NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset BIGINT NOT NULL,
    metadata         TEXT,
    committed_at     BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id),
    FOREIGN KEY (topic, partition_id) REFERENCES partitions (topic, partition_id) ON DELETE CASCADE
);

CREATE INDEX consumer_offsets_partition ON consumer_offsets (topic, partition_id);
