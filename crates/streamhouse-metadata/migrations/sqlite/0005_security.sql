-- Users and ACLs. A user is a SCRAM credential per mechanism (RFC 5802:
-- salt, iteration count, StoredKey and ServerKey; never the password).
-- An ACL binding is Kafka's (resource type, name, pattern type, principal,
-- host, operation, permission), stored once. Every change to either bumps
-- the one row of security_version in the same transaction, so agents
-- notice changes with one cheap query.

CREATE TABLE scram_credentials (
    user_name  TEXT NOT NULL,
    -- Kafka's code: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    mechanism  SMALLINT NOT NULL,
    salt       BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);

CREATE TABLE acl_bindings (
    -- Kafka's wire codes for resource type, pattern type, operation and
    -- permission.
    resource_type SMALLINT NOT NULL,
    resource_name TEXT NOT NULL,
    pattern_type  SMALLINT NOT NULL,
    principal     TEXT NOT NULL,
    host          TEXT NOT NULL,
    operation     SMALLINT NOT NULL,
    permission    SMALLINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (resource_type, resource_name, pattern_type, principal, host, operation,
                 permission)
);

CREATE TABLE security_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO security_version (id, version) VALUES (1, 0);
