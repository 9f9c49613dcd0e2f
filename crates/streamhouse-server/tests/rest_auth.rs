//! The REST API with security on (`--authorizer acl`), against an
//! in-process server: HTTP Basic credentials of StreamHouse users (401 with
//! the challenge and the JSON body without them), Kafka's ACL check of each
//! route (403 with the JSON body), the open probes, and the users and ACL
//! endpoints.

// Tests: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{TestServer, assert_error, into_json};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use streamhouse_metadata::OffsetCommit;
use streamhouse_server::{Origin, RawSettings, Server, ServerConfig, Setting};
use streamhouse_storage::security::{ScramCredential, ScramMechanism};

const ADMIN: (&str, &str) = ("admin", "admin-secret");
const ALICE: (&str, &str) = ("alice", "alice-secret");
/// How long an ACL change may take to apply (the issue's bound, with room).
const ACL_PROPAGATION: Duration = Duration::from_secs(5);

/// A setting by its flag, so these tests name settings as users do.
fn setting(flag: &str) -> Setting {
    Setting::ALL
        .iter()
        .copied()
        .find(|s| s.flag() == flag)
        .unwrap_or_else(|| panic!("no setting {flag}"))
}

/// A secured server: `--authorizer acl`, `User:admin` a super user with a
/// password, plus the settings in `extra`.
async fn secured(extra: &[(&str, &str)]) -> Result<TestServer> {
    let dir = tempfile::tempdir()?;
    let mut raw = RawSettings::default();
    let data_dir = dir.path().to_string_lossy().into_owned();
    for (flag, value) in [
        ("--data-dir", data_dir.as_str()),
        ("--kafka-listen", "127.0.0.1:0"),
        ("--http-listen", "127.0.0.1:0"),
        ("--flush-interval-ms", "5"),
        ("--authorizer", "acl"),
        ("--super-users", "User:admin"),
    ]
    .iter()
    .chain(extra)
    {
        raw.set(setting(flag), *value, Origin::Flag);
    }
    let config: ServerConfig = raw.resolve()?;
    let server = Server::start(config).await?;
    let t = TestServer {
        base: format!("http://{}", server.http_addr()),
        server,
        client: reqwest::Client::new(),
        dir,
    };
    add_user(&t, ADMIN).await?;
    Ok(t)
}

/// Creates a user directly in the engine (as `streamhouse user set` does
/// before any server runs).
async fn add_user(t: &TestServer, (name, password): (&str, &str)) -> Result<()> {
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha256, password.as_bytes(), b"salt", 4096);
    t.server
        .engine()
        .set_scram_credential(name, credential)
        .await?;
    Ok(())
}

async fn call(
    t: &TestServer,
    method: Method,
    path: impl AsRef<str>,
    user: Option<(&str, &str)>,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut request = t.client.request(method, t.url(path.as_ref()));
    if let Some((name, password)) = user {
        request = request.basic_auth(name, Some(password));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    into_json(request.send().await?).await
}

async fn get_as(t: &TestServer, user: (&str, &str), path: &str) -> Result<(StatusCode, Value)> {
    call(t, Method::GET, path, Some(user), None).await
}

async fn post_as(
    t: &TestServer,
    user: (&str, &str),
    path: &str,
    body: Value,
) -> Result<(StatusCode, Value)> {
    call(t, Method::POST, path, Some(user), Some(body)).await
}

/// Grants `operation` on a resource to `User:alice` through the REST API,
/// as the admin.
async fn grant(t: &TestServer, resource_type: &str, name: &str, operation: &str) -> Result<()> {
    grant_pattern(t, resource_type, name, "Literal", operation).await
}

async fn grant_pattern(
    t: &TestServer,
    resource_type: &str,
    name: &str,
    pattern_type: &str,
    operation: &str,
) -> Result<()> {
    let (status, body) = post_as(
        t,
        ADMIN,
        "/api/v1/acls",
        json!([{
            "resource_type": resource_type, "resource_name": name, "pattern_type": pattern_type,
            "principal": "User:alice", "host": "*", "operation": operation, "permission": "Allow"
        }]),
    )
    .await?;
    ensure!(status == StatusCode::CREATED, "grant: {status} {body}");
    Ok(())
}

/// Repeats `request` until it answers `want` (ACL changes reach the cache
/// within a bound, not at once); returns the last answer.
async fn eventually<F, Fut>(want: StatusCode, mut request: F) -> Result<(StatusCode, Value)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value)>>,
{
    let deadline = Instant::now() + ACL_PROPAGATION;
    loop {
        let answer = request().await?;
        if answer.0 == want {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            bail!("still {} {} after {ACL_PROPAGATION:?}", answer.0, answer.1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_unauthenticated(response: &reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Basic realm="streamhouse""#)
    );
}

#[tokio::test]
async fn without_credentials_the_api_answers_401_with_the_challenge_and_a_json_body() -> Result<()>
{
    let t = secured(&[]).await?;
    for (method, path) in [
        (Method::GET, "/api/v1/topics"),
        (Method::POST, "/api/v1/topics"),
        (Method::DELETE, "/api/v1/topics/orders"),
        (Method::GET, "/api/v1/users"),
        (Method::GET, "/api/v1/acls"),
        (Method::GET, "/api/v1/no-such-endpoint"),
    ] {
        let response = t
            .client
            .request(method.clone(), t.url(path))
            .json(&json!({"name": "orders", "partitions": 1}))
            .send()
            .await?;
        assert_unauthenticated(&response);
        let answer = into_json(response).await?;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "authentication_failed");
    }
    // The refused create created nothing.
    let (status, topics) = get_as(&t, ADMIN, "/api/v1/topics").await?;
    assert_eq!(status, StatusCode::OK, "{topics}");
    assert_eq!(topics, json!([]));
    t.shutdown().await
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_gets_401_after_a_delay() -> Result<()> {
    let t = secured(&[]).await?;
    add_user(&t, ALICE).await?;
    let mut messages = Vec::new();
    for user in [
        ("alice", "wrong"),
        ("mallory", "alice-secret"),
        ("alice", ""),
    ] {
        let started = Instant::now();
        let response = t
            .client
            .get(t.url("/api/v1/topics"))
            .basic_auth(user.0, Some(user.1))
            .send()
            .await?;
        let elapsed = started.elapsed();
        assert_unauthenticated(&response);
        let answer = into_json(response).await?;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "authentication_failed");
        let message = answer.1["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("alice-secret"), "{message}");
        messages.push(message.to_owned());
        assert!(
            elapsed >= Duration::from_millis(100),
            "a failed login was answered after {elapsed:?}"
        );
    }
    assert!(
        messages.iter().all(|m| m == &messages[0]),
        "an unknown user must not be told apart from a wrong password: {messages:?}"
    );
    let (status, body) = get_as(&t, ALICE, "/api/v1/topics").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.shutdown().await
}

#[tokio::test]
async fn malformed_authorization_headers_get_401_and_the_server_keeps_serving() -> Result<()> {
    let t = secured(&[]).await?;
    let huge = format!("Basic {}", "QUFB".repeat(2000));
    let no_colon = format!("Basic {}", common::b64(b"alice"));
    let bad_utf8 = format!("Basic {}", common::b64(&[0xff, 0xfe, b':', b'p']));
    let values: Vec<reqwest::header::HeaderValue> = [
        "Basic",
        "Basic !!!",
        "Bearer abc.def.ghi",
        "Digest username=\"alice\"",
        no_colon.as_str(),
        bad_utf8.as_str(),
        huge.as_str(),
        "",
    ]
    .iter()
    .map(|v| reqwest::header::HeaderValue::from_str(v).unwrap())
    .chain([reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap()])
    .collect();
    for value in values {
        let response = t
            .client
            .get(t.url("/api/v1/topics"))
            .header(reqwest::header::AUTHORIZATION, value.clone())
            .send()
            .await?;
        assert_unauthenticated(&response);
        let answer = into_json(response).await?;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "authentication_failed");
    }
    let (status, body) = get_as(&t, ADMIN, "/api/v1/topics").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.shutdown().await
}

#[tokio::test]
async fn each_route_needs_the_acl_of_its_kafka_operation() -> Result<()> {
    let t = secured(&[]).await?;
    add_user(&t, ALICE).await?;
    let (status, body) = post_as(
        &t,
        ADMIN,
        "/api/v1/topics",
        json!({"name": "orders", "partitions": 1}),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Authenticated, but no ACL: 403 with the JSON body naming what is missing.
    let denied = get_as(&t, ALICE, "/api/v1/topics/orders").await?;
    assert_error(&denied, StatusCode::FORBIDDEN, "authorization_failed");
    let message = denied.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("User:alice")
            && message.contains("Describe")
            && message.contains("orders"),
        "{message}"
    );
    // A topic that does not exist is denied the same way: no existence leak.
    assert_error(
        &get_as(&t, ALICE, "/api/v1/topics/secret").await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );

    grant(&t, "Topic", "orders", "Describe").await?;
    let (_, detail) = eventually(StatusCode::OK, || {
        get_as(&t, ALICE, "/api/v1/topics/orders")
    })
    .await?;
    assert_eq!(detail["name"], "orders");

    let produce = || {
        post_as(
            &t,
            ALICE,
            "/api/v1/topics/orders/records",
            json!({"records": [{"value": "v"}]}),
        )
    };
    assert_error(
        &produce().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Topic", "orders", "Write").await?;
    eventually(StatusCode::OK, produce).await?;

    let consume = || get_as(&t, ALICE, "/api/v1/topics/orders/partitions/0/records");
    assert_error(
        &consume().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Topic", "orders", "Read").await?;
    let (_, read) = eventually(StatusCode::OK, consume).await?;
    assert_eq!(read["records"][0]["value"], "v");

    let patch = || {
        call(
            &t,
            Method::PATCH,
            "/api/v1/topics/orders/config",
            Some(ALICE),
            Some(json!({"retention.ms": "60000"})),
        )
    };
    assert_error(
        &patch().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Topic", "orders", "AlterConfigs").await?;
    eventually(StatusCode::OK, patch).await?;

    let create = || {
        post_as(
            &t,
            ALICE,
            "/api/v1/topics",
            json!({"name": "alice-topic", "partitions": 1}),
        )
    };
    assert_error(
        &create().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Topic", "alice-topic", "Create").await?;
    eventually(StatusCode::CREATED, create).await?;

    let delete = || {
        call(
            &t,
            Method::DELETE,
            "/api/v1/topics/orders",
            Some(ALICE),
            None,
        )
    };
    assert_error(
        &delete().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Topic", "orders", "Delete").await?;
    eventually(StatusCode::NO_CONTENT, delete).await?;
    t.shutdown().await
}

#[tokio::test]
async fn create_on_the_cluster_allows_creating_any_topic() -> Result<()> {
    let t = secured(&[]).await?;
    add_user(&t, ALICE).await?;
    grant(&t, "Cluster", "kafka-cluster", "Create").await?;
    let (status, body) = eventually(StatusCode::CREATED, || {
        post_as(
            &t,
            ALICE,
            "/api/v1/topics",
            json!({"name": "anything", "partitions": 2}),
        )
    })
    .await?;
    assert_eq!(body["partitions"], 2, "{status}");
    t.shutdown().await
}

#[tokio::test]
async fn topic_and_group_lists_show_only_what_the_caller_may_describe() -> Result<()> {
    let t = secured(&[]).await?;
    add_user(&t, ALICE).await?;
    for name in ["orders", "payments-eu", "payments-us", "audit"] {
        let (status, body) = post_as(
            &t,
            ADMIN,
            "/api/v1/topics",
            json!({"name": name, "partitions": 1}),
        )
        .await?;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for group in ["billing", "fraud"] {
        t.server
            .engine()
            .commit_offsets(
                group,
                &[OffsetCommit {
                    topic: "orders".into(),
                    partition: 0,
                    offset: 0,
                    metadata: None,
                    leader_epoch: -1,
                }],
            )
            .await?;
    }
    let names = |topics: &Value| -> Vec<String> {
        topics
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, topics) = get_as(&t, ALICE, "/api/v1/topics").await?;
    assert_eq!(status, StatusCode::OK, "{topics}");
    assert_eq!(topics, json!([]));
    grant(&t, "Topic", "orders", "Describe").await?;
    grant_pattern(&t, "Topic", "payments-", "Prefixed", "Read").await?;
    let deadline = Instant::now() + ACL_PROPAGATION;
    loop {
        let (_, topics) = get_as(&t, ALICE, "/api/v1/topics").await?;
        if names(&topics) == ["orders", "payments-eu", "payments-us"] {
            break;
        }
        ensure!(Instant::now() < deadline, "listed {topics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, all) = get_as(&t, ADMIN, "/api/v1/topics").await?;
    assert_eq!(names(&all).len(), 4, "a super user sees everything");

    let (status, groups) = get_as(&t, ALICE, "/api/v1/groups").await?;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert_eq!(groups, json!([]));
    assert_error(
        &get_as(&t, ALICE, "/api/v1/groups/billing").await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Group", "billing", "Describe").await?;
    let (_, detail) = eventually(StatusCode::OK, || {
        get_as(&t, ALICE, "/api/v1/groups/billing")
    })
    .await?;
    assert_eq!(detail["group"], "billing");
    let (_, groups) = get_as(&t, ALICE, "/api/v1/groups").await?;
    assert_eq!(
        groups,
        json!([{"group": "billing", "state": "Empty", "members": 0}])
    );
    let delete = || {
        call(
            &t,
            Method::DELETE,
            "/api/v1/groups/billing",
            Some(ALICE),
            None,
        )
    };
    assert_error(
        &delete().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Group", "billing", "Delete").await?;
    eventually(StatusCode::NO_CONTENT, delete).await?;
    t.shutdown().await
}

#[tokio::test]
async fn health_is_always_open_and_the_probes_follow_the_setting() -> Result<()> {
    let open = secured(&[]).await?;
    for path in ["/health", "/ready", "/metrics"] {
        let response = open.client.get(open.url(path)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    open.shutdown().await?;

    let closed = secured(&[("--http-open-probes", "false")]).await?;
    let response = closed.client.get(closed.url("/health")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/ready", "/metrics"] {
        let response = closed.client.get(closed.url(path)).send().await?;
        assert_unauthenticated(&response);
        let with_credentials = closed
            .client
            .get(closed.url(path))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .send()
            .await?;
        assert_eq!(with_credentials.status(), StatusCode::OK, "{path}");
    }
    closed.shutdown().await
}

#[tokio::test]
async fn users_round_trip_over_rest_and_passwords_are_never_answered() -> Result<()> {
    let t = secured(&[]).await?;
    let put = |name: &str, body: Value| {
        call(
            &t,
            Method::PUT,
            format!("/api/v1/users/{name}"),
            Some(ADMIN),
            Some(body),
        )
    };
    let (status, user) = put("alice", json!({"password": "alice-secret"})).await?;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user,
        json!({"name": "alice", "credentials": [
            {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
            {"mechanism": "SCRAM-SHA-512", "iterations": 8192}
        ]})
    );
    let (status, topics) = get_as(&t, ALICE, "/api/v1/topics").await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "alice logs in with her new password: {topics}"
    );

    let (status, user) = put(
        "alice",
        json!({"password": "changed", "mechanism": "SCRAM-SHA-512", "iterations": 4096}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user["credentials"][1],
        json!({"mechanism": "SCRAM-SHA-512", "iterations": 4096})
    );

    let (status, users) = get_as(&t, ADMIN, "/api/v1/users").await?;
    assert_eq!(status, StatusCode::OK);
    let text = users.to_string();
    assert!(
        text.contains("\"alice\"") && text.contains("\"admin\""),
        "{text}"
    );
    for secret in ["alice-secret", "changed", "admin-secret", "salt", "key"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    for (body, what) in [
        (json!({"password": "p", "iterations": 100}), "iterations"),
        (
            json!({"password": "p", "iterations": 100_000}),
            "iterations",
        ),
        (json!({"password": "p", "mechanism": "MD5"}), "mechanism"),
        (json!({"password": ""}), "password"),
        (json!({"password": "p", "extra": true}), "extra"),
        (json!({}), "password"),
    ] {
        let answer = put("bob", body).await?;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
        let message = answer.1["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{what}: {message}");
        assert!(!message.contains("\"p\""), "a password echoed: {message}");
    }

    let delete = |path: &str| call(&t, Method::DELETE, path.to_owned(), Some(ADMIN), None);
    let (status, _) = delete("/api/v1/users/alice?mechanism=SCRAM-SHA-256").await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, users) = get_as(&t, ADMIN, "/api/v1/users").await?;
    let alice = users
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == "alice"))
        .context("alice listed")?;
    assert_eq!(
        alice["credentials"],
        json!([{"mechanism": "SCRAM-SHA-512", "iterations": 4096}])
    );
    let (status, _) = delete("/api/v1/users/alice").await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &delete("/api/v1/users/alice").await?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &delete("/api/v1/users/alice?mechanism=SHA-1").await?,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    let (status, _) = get_as(&t, ("alice", "changed"), "/api/v1/topics").await?;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted user cannot log in"
    );
    t.shutdown().await
}

#[tokio::test]
async fn acls_round_trip_over_rest_with_kafkas_filters() -> Result<()> {
    let t = secured(&[]).await?;
    let binding = |principal: &str, name: &str, pattern: &str, operation: &str| {
        json!({
            "resource_type": "Topic", "resource_name": name, "pattern_type": pattern,
            "principal": principal, "host": "*", "operation": operation, "permission": "Allow"
        })
    };
    let created = post_as(
        &t,
        ADMIN,
        "/api/v1/acls",
        json!([
            binding("User:alice", "orders", "Literal", "Read"),
            binding("User:bob", "ord", "Prefixed", "Write"),
            {"resource_type": "GROUP", "resource_name": "billing", "principal": "User:alice",
             "operation": "read", "permission": "ALLOW"}
        ]),
    )
    .await?;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(
        created.1[2],
        json!({"resource_type": "Group", "resource_name": "billing", "pattern_type": "Literal",
               "principal": "User:alice", "host": "*", "operation": "Read", "permission": "Allow"}),
        "names are answered as Kafka spells them, defaults filled in"
    );

    let list = |query: &str| {
        call(
            &t,
            Method::GET,
            format!("/api/v1/acls{query}"),
            Some(ADMIN),
            None,
        )
    };
    let (status, all) = list("").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");
    let (_, alice) = list("?principal=User:alice").await?;
    assert_eq!(alice.as_array().map(Vec::len), Some(2), "{alice}");
    let (_, groups) = list("?resource_type=Group").await?;
    assert_eq!(groups, json!([created.1[2]]));
    let (_, matching) =
        list("?resource_type=Topic&resource_name=orders&pattern_type=Match").await?;
    assert_eq!(
        matching.as_array().map(Vec::len),
        Some(2),
        "literal and prefixed bindings apply to orders: {matching}"
    );
    let (_, literal) =
        list("?resource_type=Topic&resource_name=orders&pattern_type=Literal").await?;
    assert_eq!(literal.as_array().map(Vec::len), Some(1), "{literal}");
    assert_error(
        &list("?operation=Frobnicate").await?,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_error(
        &list("?colour=red").await?,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );

    for bad in [
        json!([binding("User:alice", "orders", "Match", "Read")]),
        json!([binding("alice", "orders", "Literal", "Read")]),
        json!([binding("User:alice", "orders", "Literal", "Frobnicate")]),
        json!([binding("User:alice", "", "Literal", "Read")]),
        json!([{"resource_type": "Cluster", "resource_name": "other", "principal": "User:a",
                "operation": "Alter", "permission": "Allow"}]),
        json!([]),
        json!({"not": "a list"}),
    ] {
        let answer = post_as(&t, ADMIN, "/api/v1/acls", bad.clone()).await?;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (_, unchanged) = list("").await?;
    assert_eq!(
        unchanged.as_array().map(Vec::len),
        Some(3),
        "a bad request stored nothing"
    );

    let delete = |query: &str| {
        call(
            &t,
            Method::DELETE,
            format!("/api/v1/acls{query}"),
            Some(ADMIN),
            None,
        )
    };
    assert_error(&delete("").await?, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, deleted) = delete("?principal=User:alice").await?;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted.as_array().map(Vec::len), Some(2), "{deleted}");
    let (_, left) = list("").await?;
    assert_eq!(
        left,
        json!([binding("User:bob", "ord", "Prefixed", "Write")])
    );
    let (_, deleted) = delete("?resource_type=Any").await?;
    assert_eq!(deleted.as_array().map(Vec::len), Some(1));
    assert_eq!(list("").await?.1, json!([]));
    t.shutdown().await
}

#[tokio::test]
async fn the_users_and_acl_endpoints_need_describe_or_alter_on_the_cluster() -> Result<()> {
    let t = secured(&[]).await?;
    add_user(&t, ALICE).await?;
    let put_bob = || {
        call(
            &t,
            Method::PUT,
            "/api/v1/users/bob",
            Some(ALICE),
            Some(json!({"password": "bob-secret"})),
        )
    };
    let add_acl = || {
        post_as(
            &t,
            ALICE,
            "/api/v1/acls",
            json!([{"resource_type": "Topic", "resource_name": "*", "principal": "User:alice",
                    "operation": "All", "permission": "Allow"}]),
        )
    };
    for answer in [
        get_as(&t, ALICE, "/api/v1/users").await?,
        get_as(&t, ALICE, "/api/v1/acls").await?,
        put_bob().await?,
        add_acl().await?,
        call(&t, Method::DELETE, "/api/v1/users/admin", Some(ALICE), None).await?,
        call(
            &t,
            Method::DELETE,
            "/api/v1/acls?resource_type=Any",
            Some(ALICE),
            None,
        )
        .await?,
    ] {
        assert_error(&answer, StatusCode::FORBIDDEN, "authorization_failed");
    }
    grant(&t, "Cluster", "kafka-cluster", "Describe").await?;
    eventually(StatusCode::OK, || get_as(&t, ALICE, "/api/v1/users")).await?;
    eventually(StatusCode::OK, || get_as(&t, ALICE, "/api/v1/acls")).await?;
    assert_error(
        &put_bob().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    assert_error(
        &add_acl().await?,
        StatusCode::FORBIDDEN,
        "authorization_failed",
    );
    grant(&t, "Cluster", "kafka-cluster", "Alter").await?;
    eventually(StatusCode::OK, put_bob).await?;
    eventually(StatusCode::CREATED, add_acl).await?;
    t.shutdown().await
}
