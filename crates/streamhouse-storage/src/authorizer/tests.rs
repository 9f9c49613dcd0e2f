// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

use AclOperation::*;
use AclPermission::{Allow, Deny};
use ResourceType::{Cluster, Group, Topic};

fn bind(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    host: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.into(),
        pattern_type,
        principal: principal.into(),
        host: host.into(),
        operation,
        permission,
    }
}

fn allow_topic(name: &str, pattern: PatternType, principal: &str, op: AclOperation) -> AclBinding {
    bind(Topic, name, pattern, principal, "*", op, Allow)
}

const ALICE: &str = "User:alice";
const HOST: &str = "10.0.0.1";

#[test]
fn nothing_stored_denies() {
    let acls = AclSnapshot::new(Vec::new());
    assert!(!acls.authorize(ALICE, HOST, Read, Topic, "orders"));
    assert!(!acls.authorize_any(ALICE, HOST, Write, Topic));
}

#[test]
fn a_literal_allow_covers_its_name_only() {
    let acls = AclSnapshot::new(vec![allow_topic(
        "orders",
        PatternType::Literal,
        ALICE,
        Read,
    )]);
    assert!(acls.authorize(ALICE, HOST, Read, Topic, "orders"));
    assert!(!acls.authorize(ALICE, HOST, Read, Topic, "orders-eu"));
    assert!(!acls.authorize(ALICE, HOST, Write, Topic, "orders"));
    assert!(!acls.authorize("User:bob", HOST, Read, Topic, "orders"));
    assert!(!acls.authorize(ALICE, HOST, Read, Group, "orders"));
}

#[test]
fn deny_beats_allow() {
    let acls = AclSnapshot::new(vec![
        allow_topic("*", PatternType::Literal, ALICE, All),
        bind(
            Topic,
            "secret",
            PatternType::Literal,
            ALICE,
            "*",
            Read,
            Deny,
        ),
    ]);
    assert!(acls.authorize(ALICE, HOST, Read, Topic, "orders"));
    assert!(!acls.authorize(ALICE, HOST, Read, Topic, "secret"));
    // A Deny of Read does not deny Describe (Kafka denies only the
    // operation named, or All).
    assert!(acls.authorize(ALICE, HOST, Describe, Topic, "secret"));
    let deny_all = AclSnapshot::new(vec![
        allow_topic("orders", PatternType::Literal, ALICE, Read),
        bind(
            Topic,
            "ord",
            PatternType::Prefixed,
            "User:*",
            "*",
            All,
            Deny,
        ),
    ]);
    assert!(!deny_all.authorize(ALICE, HOST, Read, Topic, "orders"));
}

#[test]
fn prefixed_patterns_cover_names_that_start_with_them() {
    let acls = AclSnapshot::new(vec![allow_topic(
        "ord",
        PatternType::Prefixed,
        ALICE,
        Write,
    )]);
    assert!(acls.authorize(ALICE, HOST, Write, Topic, "orders"));
    assert!(acls.authorize(ALICE, HOST, Write, Topic, "ord"));
    assert!(!acls.authorize(ALICE, HOST, Write, Topic, "or"));
    assert!(!acls.authorize(ALICE, HOST, Write, Topic, "payments"));
    // Multi-byte names: prefixes are compared on character boundaries.
    let unicode = AclSnapshot::new(vec![allow_topic("é", PatternType::Prefixed, ALICE, Read)]);
    assert!(unicode.authorize(ALICE, HOST, Read, Topic, "éa"));
    assert!(!unicode.authorize(ALICE, HOST, Read, Topic, "e"));
}

#[test]
fn wildcard_principal_and_host() {
    let acls = AclSnapshot::new(vec![
        allow_topic("public", PatternType::Literal, "User:*", Read),
        bind(
            Topic,
            "internal",
            PatternType::Literal,
            ALICE,
            HOST,
            Read,
            Allow,
        ),
    ]);
    assert!(acls.authorize("User:anyone", "1.2.3.4", Read, Topic, "public"));
    assert!(acls.authorize(ALICE, HOST, Read, Topic, "internal"));
    assert!(!acls.authorize(ALICE, "10.0.0.2", Read, Topic, "internal"));
    // As in Kafka's StandardAuthorizer, `User:*` matches every principal.
    assert!(acls.authorize("Group:x", HOST, Read, Topic, "public"));
    assert!(!acls.authorize(ALICE, HOST, Write, Topic, "public"));
}

#[test]
fn operations_imply_describe_and_describe_configs() {
    for op in [Read, Write, Delete, Alter] {
        let acls = AclSnapshot::new(vec![allow_topic("t", PatternType::Literal, ALICE, op)]);
        assert!(acls.authorize(ALICE, HOST, Describe, Topic, "t"), "{op}");
        assert!(
            !acls.authorize(ALICE, HOST, DescribeConfigs, Topic, "t"),
            "{op}"
        );
    }
    for op in [Create, ClusterAction, IdempotentWrite, DescribeConfigs] {
        let acls = AclSnapshot::new(vec![allow_topic("t", PatternType::Literal, ALICE, op)]);
        assert!(!acls.authorize(ALICE, HOST, Describe, Topic, "t"), "{op}");
    }
    let configs = AclSnapshot::new(vec![allow_topic(
        "t",
        PatternType::Literal,
        ALICE,
        AlterConfigs,
    )]);
    assert!(configs.authorize(ALICE, HOST, DescribeConfigs, Topic, "t"));
    assert!(!configs.authorize(ALICE, HOST, Describe, Topic, "t"));
    let describe = AclSnapshot::new(vec![allow_topic(
        "t",
        PatternType::Literal,
        ALICE,
        Describe,
    )]);
    assert!(
        !describe.authorize(ALICE, HOST, Read, Topic, "t"),
        "no implication upwards"
    );
    let all = AclSnapshot::new(vec![allow_topic("t", PatternType::Literal, ALICE, All)]);
    for op in [
        Read,
        Write,
        Create,
        Delete,
        Alter,
        Describe,
        DescribeConfigs,
        AlterConfigs,
    ] {
        assert!(all.authorize(ALICE, HOST, op, Topic, "t"), "{op}");
    }
}

#[test]
fn authorize_any_follows_kafkas_authorize_by_resource_type() {
    // An Allow on one topic is enough for "Write on some topic".
    let one = AclSnapshot::new(vec![allow_topic(
        "orders",
        PatternType::Literal,
        ALICE,
        Write,
    )]);
    assert!(one.authorize_any(ALICE, HOST, Write, Topic));
    assert!(!one.authorize_any(ALICE, HOST, Read, Topic));
    assert!(!one.authorize_any("User:bob", HOST, Write, Topic));
    // ...unless a Deny of that literal or a covering prefix dominates it.
    let dominated = AclSnapshot::new(vec![
        allow_topic("orders", PatternType::Literal, ALICE, Write),
        bind(Topic, "ord", PatternType::Prefixed, ALICE, "*", Write, Deny),
    ]);
    assert!(!dominated.authorize_any(ALICE, HOST, Write, Topic));
    let prefixes = AclSnapshot::new(vec![
        allow_topic("orders", PatternType::Prefixed, ALICE, Write),
        bind(Topic, "ord", PatternType::Prefixed, ALICE, "*", Write, Deny),
    ]);
    assert!(!prefixes.authorize_any(ALICE, HOST, Write, Topic));
    let other_deny = AclSnapshot::new(vec![
        allow_topic("orders", PatternType::Literal, ALICE, Write),
        bind(Topic, "pay", PatternType::Prefixed, ALICE, "*", Write, Deny),
    ]);
    assert!(other_deny.authorize_any(ALICE, HOST, Write, Topic));
    // A Deny on every topic wins over everything.
    let deny_everything = AclSnapshot::new(vec![
        allow_topic("orders", PatternType::Literal, ALICE, Write),
        bind(Topic, "*", PatternType::Literal, "User:*", "*", All, Deny),
    ]);
    assert!(!deny_everything.authorize_any(ALICE, HOST, Write, Topic));
    let wildcard = AclSnapshot::new(vec![allow_topic("*", PatternType::Literal, "User:*", All)]);
    assert!(wildcard.authorize_any(ALICE, HOST, Write, Topic));
    assert!(!wildcard.authorize_any(ALICE, HOST, Write, Cluster));
}
