-- Small, stable Kafka broker ids. Each agent id holds the smallest node id
-- free when it first started, and keeps it across restarts; an id goes to
-- another agent only once its holder has no row in `agents` (it shut down
-- cleanly) and has not started for a week.

CREATE TABLE node_ids (
    node_id   INTEGER PRIMARY KEY CHECK (node_id >= 0),
    agent_id  TEXT NOT NULL UNIQUE,
    last_seen BIGINT NOT NULL
);
