-- Background jobs: one runner per job through a lease, and the objects
-- that lost their last segment row, which garbage collection deletes once
-- a grace period has passed since then.

CREATE TABLE job_leases (
    job        TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE object_tombstones (
    s3_bucket       TEXT NOT NULL,
    s3_key          TEXT NOT NULL,
    unreferenced_at BIGINT NOT NULL,
    PRIMARY KEY (s3_bucket, s3_key)
);

CREATE INDEX object_tombstones_unreferenced_at ON object_tombstones (unreferenced_at);
