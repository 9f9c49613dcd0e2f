//! Users and ACLs through the engine: Kafka's authorization decisions,
//! super users, the authorizer switched off, failing closed, a change on
//! one agent enforced by another within 2 s, and password logins.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use streamhouse_metadata::testing::{
    POSTGRES_URL_ENV, create_schema, server_url, temp_sqlite, unique_schema,
};
use streamhouse_metadata::{
    AclStore, LayeredStore, MetadataError, MetadataStore, PostgresStore, SqliteStore,
};
use streamhouse_storage::security::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, Caller, PatternType, Principal,
    ResourceType, ScramCredential, ScramMechanism,
};
use streamhouse_storage::{ObjectStorage, SecurityConfig, StorageConfig, StorageEngine};

use AclOperation::{All, Alter, AlterConfigs, Delete, Describe, DescribeConfigs, Read, Write};
use AclPermission::{Allow, Deny};
use ResourceType::{Group, Topic};

struct Agent {
    engine: StorageEngine,
    _objects: tempfile::TempDir,
}

fn acl_config(super_users: &[&str]) -> StorageConfig {
    StorageConfig {
        security: SecurityConfig {
            authorizer: true,
            super_users: super_users
                .iter()
                .map(|p| Principal::parse(p).unwrap())
                .collect(),
            refresh_interval: Duration::from_secs(1),
        },
        ..StorageConfig::default()
    }
}

fn agent(metadata: Arc<dyn MetadataStore>, config: StorageConfig) -> Agent {
    let objects = tempfile::tempdir().unwrap();
    let storage = ObjectStorage::local(objects.path()).unwrap();
    Agent {
        engine: StorageEngine::start(metadata, storage, config),
        _objects: objects,
    }
}

fn caller(principal: &str, host: &str) -> Caller {
    Caller::new(Principal::parse(principal).unwrap(), host)
}

fn binding(
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

/// Waits up to `within` for `check`, returning how long it took.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_rules_decide() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), acl_config(&["User:admin"]));
    let engine = &agent.engine;
    assert!(engine.authorizer_enabled());
    let alice = caller("User:alice", "10.0.0.1");
    let bob = caller("User:bob", "10.0.0.2");
    let admin = caller("User:admin", "10.0.0.9");
    // Nothing stored: only the super user.
    assert!(!engine.authorize(&alice, Read, Topic, "orders"));
    assert!(engine.authorize(&admin, Delete, Topic, "orders"));
    assert!(engine.authorize_any(&admin, Write, Topic));

    engine
        .create_acls(&[
            binding(
                Topic,
                "orders",
                PatternType::Literal,
                "User:alice",
                "*",
                All,
                Allow,
            ),
            binding(
                Topic,
                "orders",
                PatternType::Literal,
                "User:alice",
                "*",
                Write,
                Deny,
            ),
            binding(
                Topic,
                "logs-",
                PatternType::Prefixed,
                "User:*",
                "*",
                Read,
                Allow,
            ),
            binding(
                Topic,
                "pinned",
                PatternType::Literal,
                "User:bob",
                "10.0.0.2",
                Write,
                Allow,
            ),
            binding(
                Group,
                "*",
                PatternType::Literal,
                "User:bob",
                "*",
                Read,
                Allow,
            ),
            binding(
                Topic,
                "*",
                PatternType::Literal,
                "User:admin",
                "*",
                All,
                Deny,
            ),
        ])
        .await
        .unwrap();
    // Enforced by this agent as soon as the call returns.
    assert!(engine.authorize(&alice, Read, Topic, "orders"));
    assert!(
        !engine.authorize(&alice, Write, Topic, "orders"),
        "Deny beats Allow"
    );
    assert!(!engine.authorize(&alice, Read, Topic, "orders-eu"));
    // PREFIXED and the wildcard principal.
    assert!(engine.authorize(&bob, Read, Topic, "logs-app"));
    assert!(engine.authorize(&alice, Read, Topic, "logs-"));
    assert!(!engine.authorize(&bob, Read, Topic, "logs"));
    // Hosts.
    assert!(engine.authorize(&bob, Write, Topic, "pinned"));
    assert!(!engine.authorize(&caller("User:bob", "10.0.0.3"), Write, Topic, "pinned"));
    // Wildcard resource, and resource types kept apart.
    assert!(engine.authorize(&bob, Read, Group, "any-group"));
    assert!(!engine.authorize(&bob, Read, Topic, "any-group"));
    // Implied operations.
    assert!(
        engine.authorize(&bob, Describe, Topic, "logs-app"),
        "Read implies Describe"
    );
    assert!(
        engine.authorize(&bob, Describe, Topic, "pinned"),
        "Write implies Describe"
    );
    assert!(!engine.authorize(&bob, DescribeConfigs, Topic, "pinned"));
    // Super users bypass even a Deny naming them.
    assert!(engine.authorize(&admin, Write, Topic, "orders"));
    // authorize_any: some topic allows Write to bob, from his host only.
    assert!(engine.authorize_any(&bob, Write, Topic));
    assert!(!engine.authorize_any(&caller("User:bob", "10.0.0.3"), Write, Topic));
    assert!(!engine.authorize_any(&caller("User:carol", "10.0.0.1"), Write, Topic));

    let deleted = engine
        .delete_acls(&[AclBindingFilter {
            principal: Some("User:alice".into()),
            permission: Deny,
            ..AclBindingFilter::any()
        }])
        .await
        .unwrap();
    assert_eq!(deleted[0].len(), 1);
    assert!(
        engine.authorize(&alice, Write, Topic, "orders"),
        "the Deny is gone"
    );
    assert_eq!(
        engine.acls(&AclBindingFilter::any()).await.unwrap().len(),
        5
    );
    agent.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implied_operations() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), acl_config(&[]));
    let engine = &agent.engine;
    let alice = caller("User:alice", "::1");
    for (i, op) in [Read, Write, Delete, Alter, AlterConfigs]
        .into_iter()
        .enumerate()
    {
        let name = format!("t{i}");
        engine
            .create_acls(&[binding(
                Topic,
                &name,
                PatternType::Literal,
                "User:alice",
                "*",
                op,
                Allow,
            )])
            .await
            .unwrap();
        assert!(engine.authorize(&alice, op, Topic, &name), "{op}");
        let describe = op != AlterConfigs;
        assert_eq!(
            engine.authorize(&alice, Describe, Topic, &name),
            describe,
            "{op} ⇒ Describe"
        );
        assert_eq!(
            engine.authorize(&alice, DescribeConfigs, Topic, &name),
            !describe,
            "{op} ⇒ DescribeConfigs"
        );
    }
    agent.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_authorizer_everything_is_allowed() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), StorageConfig::default());
    let engine = &agent.engine;
    assert!(!engine.authorizer_enabled());
    engine
        .create_acls(&[binding(
            Topic,
            "*",
            PatternType::Literal,
            "User:*",
            "*",
            All,
            Deny,
        )])
        .await
        .unwrap();
    let anonymous = Caller::new(Principal::anonymous(), "1.2.3.4");
    assert!(engine.authorize(&anonymous, Delete, Topic, "orders"));
    assert!(engine.authorize_any(&anonymous, Write, Topic));
    // The bindings are still stored, for when the authorizer is turned on.
    assert_eq!(
        engine.acls(&AclBindingFilter::any()).await.unwrap().len(),
        1
    );
    agent.engine.shutdown().await;
}

/// ACLs that cannot be read: nobody but a super user is allowed.
#[derive(Debug)]
struct UnreadableAcls;

#[async_trait]
impl AclStore for UnreadableAcls {
    async fn create_acls(&self, _: &[AclBinding]) -> Result<u64, MetadataError> {
        Err(MetadataError::unavailable("create ACLs", "down"))
    }
    async fn list_acls(&self, _: &AclBindingFilter) -> Result<Vec<AclBinding>, MetadataError> {
        Err(MetadataError::unavailable("list ACLs", "down"))
    }
    async fn delete_acls(
        &self,
        _: &[AclBindingFilter],
    ) -> Result<Vec<Vec<AclBinding>>, MetadataError> {
        Err(MetadataError::unavailable("delete ACLs", "down"))
    }
    async fn security_version(&self) -> Result<i64, MetadataError> {
        Err(MetadataError::unavailable("read security version", "down"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_acls_deny_all_but_super_users() {
    let sqlite = temp_sqlite().await.unwrap();
    sqlite
        .store
        .create_acls(&[binding(
            Topic,
            "*",
            PatternType::Literal,
            "User:*",
            "*",
            All,
            Allow,
        )])
        .await
        .unwrap();
    let store =
        LayeredStore::new(Arc::new(sqlite.store.clone())).with_acls(Arc::new(UnreadableAcls));
    let agent = agent(Arc::new(store), acl_config(&["User:admin"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let engine = &agent.engine;
    assert!(!engine.authorize(&caller("User:alice", "h"), Read, Topic, "t"));
    assert!(!engine.authorize_any(&caller("User:alice", "h"), Read, Topic));
    assert!(engine.authorize(&caller("User:admin", "h"), Read, Topic, "t"));
    agent.engine.shutdown().await;
}

/// What agent B enforces after agent A grants, then revokes.
async fn change_on_one_agent_reaches_the_other(a: &StorageEngine, b: &StorageEngine) {
    let alice = caller("User:alice", "10.1.1.1");
    // B has loaded its first snapshot.
    assert!(
        eventually(Duration::from_secs(5), || !b
            .authorize(&alice, Read, Topic, "shared")
            && b.authorize(&caller("User:admin", "h"), Read, Topic, "shared"))
        .await
        .is_some()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grant = binding(
        Topic,
        "shared",
        PatternType::Literal,
        "User:alice",
        "*",
        Read,
        Allow,
    );
    a.create_acls(&[grant]).await.unwrap();
    assert!(a.authorize(&alice, Read, Topic, "shared"));
    let took = eventually(Duration::from_secs(2), || {
        b.authorize(&alice, Read, Topic, "shared")
    })
    .await
    .expect("the grant reaches agent B within 2 s");
    eprintln!("grant reached agent B after {took:?}");
    a.create_acls(&[binding(
        Topic,
        "shared",
        PatternType::Literal,
        "User:alice",
        "*",
        Read,
        Deny,
    )])
    .await
    .unwrap();
    eventually(Duration::from_secs(2), || {
        !b.authorize(&alice, Read, Topic, "shared")
    })
    .await
    .expect("the deny reaches agent B within 2 s");

    // Users too: a password set on A logs in on B, and a new one replaces it.
    a.set_password("alice", "first", ScramMechanism::Sha256, 4096)
        .await
        .unwrap();
    assert_eq!(
        b.authenticate_password("alice", "first").await.unwrap(),
        Some(Principal::user("alice"))
    );
    a.set_password("alice", "second", ScramMechanism::Sha256, 4096)
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        if b.authenticate_password("alice", "first")
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the old password still works on B"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        b.authenticate_password("alice", "second")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_change_on_one_agent_is_enforced_by_another() {
    let sqlite = temp_sqlite().await.unwrap();
    let other = SqliteStore::open(sqlite.dir.path().join("metadata.db"))
        .await
        .unwrap();
    let a = agent(Arc::new(sqlite.store.clone()), acl_config(&["User:admin"]));
    let b = agent(Arc::new(other), acl_config(&["User:admin"]));
    change_on_one_agent_reaches_the_other(&a.engine, &b.engine).await;
    a.engine.shutdown().await;
    b.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_on_one_agent_is_enforced_by_another() {
    let Some(url) = server_url(
        POSTGRES_URL_ENV,
        "postgres_change_on_one_agent_is_enforced_by_another",
    ) else {
        return;
    };
    let options = create_schema(&url, &unique_schema("security_agents"))
        .await
        .unwrap();
    let store_a = PostgresStore::connect_with(options.clone()).await.unwrap();
    let store_b = PostgresStore::connect_with(options).await.unwrap();
    let a = agent(Arc::new(store_a), acl_config(&["User:admin"]));
    let b = agent(Arc::new(store_b), acl_config(&["User:admin"]));
    change_on_one_agent_reaches_the_other(&a.engine, &b.engine).await;
    a.engine.shutdown().await;
    b.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_log_in_and_wrong_ones_do_not() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), StorageConfig::default());
    let engine = &agent.engine;
    engine
        .set_password("alice", "s3cret", ScramMechanism::Sha512, 4096)
        .await
        .unwrap();
    engine
        .set_password("alice", "other", ScramMechanism::Sha256, 4096)
        .await
        .unwrap();
    let alice = Some(Principal::user("alice"));
    // SCRAM-SHA-512 is preferred when a user has both.
    assert_eq!(
        engine
            .authenticate_password("alice", "s3cret")
            .await
            .unwrap(),
        alice
    );
    assert_eq!(
        engine
            .authenticate_password("alice", "s3cret")
            .await
            .unwrap(),
        alice
    );
    assert_eq!(
        engine
            .authenticate_password("alice", "other")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        engine
            .authenticate_password("alice", "S3cret")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        engine.authenticate_password("alice", "").await.unwrap(),
        None
    );
    assert_eq!(
        engine
            .authenticate_password("mallory", "s3cret")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        engine.authenticate_password("", "s3cret").await.unwrap(),
        None
    );
    assert_eq!(
        engine.authenticate_password("a\u{0}b", "x").await.unwrap(),
        None
    );

    // An unknown user costs about as much as a wrong password.
    let time = |user: &'static str| {
        let engine = engine.clone();
        async move {
            let start = Instant::now();
            for _ in 0..3 {
                engine.authenticate_password(user, "wrong").await.unwrap();
            }
            start.elapsed()
        }
    };
    let known = time("alice").await;
    let unknown = time("nobody").await;
    assert!(
        unknown * 4 > known,
        "unknown user answered in {unknown:?}, a wrong password in {known:?}"
    );

    // With only SCRAM-SHA-256 left, that password is the one.
    assert!(
        engine
            .delete_scram_credential("alice", ScramMechanism::Sha512)
            .await
            .unwrap()
    );
    assert_eq!(
        engine
            .authenticate_password("alice", "s3cret")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        engine
            .authenticate_password("alice", "other")
            .await
            .unwrap(),
        alice
    );
    let users = engine.scram_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].credentials, [(ScramMechanism::Sha256, 4096)]);
    assert!(
        !engine
            .delete_scram_credential("alice", ScramMechanism::Sha512)
            .await
            .unwrap()
    );
    agent.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_before_they_are_stored() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), StorageConfig::default());
    let engine = &agent.engine;
    let long = "x".repeat(256);
    for name in ["", long.as_str(), "tab\there"] {
        let error = engine
            .set_password(name, "pw", ScramMechanism::Sha256, 4096)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                streamhouse_storage::StorageError::Validation(
                    streamhouse_core::ValidationError::InvalidUserName { .. }
                )
            ),
            "{name:?}: {error}"
        );
    }
    engine
        .set_password(&"x".repeat(255), "pw", ScramMechanism::Sha256, 4096)
        .await
        .unwrap();
    for iterations in [4095, 16385, 0] {
        assert!(
            engine
                .set_password("bob", "pw", ScramMechanism::Sha256, iterations)
                .await
                .is_err(),
            "{iterations}"
        );
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha512, b"pw", b"salt", iterations);
        assert!(
            engine
                .set_scram_credential("bob", credential)
                .await
                .is_err()
        );
    }
    let credential = ScramCredential::from_password(ScramMechanism::Sha512, b"pw", b"salt", 16384);
    engine
        .set_scram_credential("bob", credential.clone())
        .await
        .unwrap();
    assert_eq!(
        engine
            .scram_credential("bob", ScramMechanism::Sha512)
            .await
            .unwrap(),
        Some(credential)
    );
    assert_eq!(
        engine
            .scram_credential("bob", ScramMechanism::Sha256)
            .await
            .unwrap(),
        None
    );
    // Never a password or a key in what is printed.
    let shown = format!("{:?}", engine.scram_users().await.unwrap());
    assert!(!shown.contains("pw"), "{shown}");
    agent.engine.shutdown().await;
}

/// A flood of bad logins (anyone who reaches a SASL listener or the HTTP
/// API can send one) is answered, each with a refusal, and a good login
/// sent during it still succeeds: checks wait for their turn instead of
/// taking every blocking thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_is_answered_and_good_ones_still_pass() {
    let sqlite = temp_sqlite().await.unwrap();
    let agent = agent(Arc::new(sqlite.store.clone()), StorageConfig::default());
    let engine = agent.engine.clone();
    engine
        .set_password("alice", "s3cret", ScramMechanism::Sha512, 4096)
        .await
        .unwrap();
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let engine = engine.clone();
            let user = if i % 2 == 0 { "alice" } else { "nobody" };
            tokio::spawn(async move { engine.authenticate_password(user, "wrong").await })
        })
        .collect();
    let good = tokio::time::timeout(
        Duration::from_secs(60),
        engine.authenticate_password("alice", "s3cret"),
    )
    .await
    .expect("a good login during the flood was answered")
    .unwrap();
    assert_eq!(good, Some(Principal::user("alice")));
    for attempt in flood {
        assert_eq!(attempt.await.unwrap().unwrap(), None);
    }
}
