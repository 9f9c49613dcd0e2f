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

ALTER TABLE segments ADD COLUMN cleaned_at BIGINT;
ALTER TABLE segments ADD COLUMN tombstones BIGINT NOT NULL DEFAULT 0;
ALTER TABLE segments DROP CONSTRAINT segments_record_count_check;
ALTER TABLE segments ADD CONSTRAINT segments_record_count_check
    CHECK (record_count >= 0 AND (record_count > 0 OR cleaned_at IS NOT NULL));
