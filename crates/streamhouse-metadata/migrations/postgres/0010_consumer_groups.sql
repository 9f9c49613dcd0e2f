-- Consumer groups of Kafka's consumer protocol (KIP-848, ConsumerGroupHeartbeat):
-- the group's epochs and the topics its members subscribe to, and per member
-- its subscription, epoch and assignments (as JSON), so that whichever agent
-- coordinates a group next carries on where the last one stopped. `version`
-- moves with every save; a save names the version it read, so two agents that
-- both believe they coordinate a group never interleave their changes.

CREATE TABLE consumer_groups (
    group_id          TEXT PRIMARY KEY,
    version           BIGINT NOT NULL,
    group_epoch       INTEGER NOT NULL,
    assignment_epoch  INTEGER NOT NULL,
    state             TEXT NOT NULL,
    subscribed_topics TEXT NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE consumer_group_members (
    group_id  TEXT NOT NULL REFERENCES consumer_groups (group_id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    member    TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
