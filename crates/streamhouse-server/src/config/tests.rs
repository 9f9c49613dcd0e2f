use super::*;

fn file_origin() -> Origin {
    Origin::File(PathBuf::from("/etc/streamhouse.toml"))
}

#[test]
fn host_port_accepts_names_ipv4_and_bracketed_ipv6() {
    assert_eq!(
        "127.0.0.1:9092".parse(),
        Ok(HostPort::new("127.0.0.1", 9092))
    );
    assert_eq!("localhost:0".parse(), Ok(HostPort::new("localhost", 0)));
    assert_eq!("[::1]:8080".parse(), Ok(HostPort::new("::1", 8080)));
    assert_eq!(HostPort::new("::", 9092).to_string(), "[::]:9092");
    assert_eq!(HostPort::new("0.0.0.0", 1).to_string(), "0.0.0.0:1");
    assert!(HostPort::new("0.0.0.0", 1).is_unspecified());
    assert!(HostPort::new("::", 1).is_unspecified());
    assert!(!HostPort::new("localhost", 1).is_unspecified());
}

#[test]
fn host_port_rejects_malformed_values() {
    assert_eq!(
        "abc".parse::<HostPort>(),
        Err("\"abc\" is not HOST:PORT".to_string())
    );
    for bad in [
        ":9092",
        "host:",
        "host:99999",
        "host:-1",
        "::1:9092",
        "[::1:9092",
        "a b:1",
    ] {
        assert!(
            bad.parse::<HostPort>().is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn metadata_urls_are_checked_by_form() {
    assert!(check_metadata_url("sqlite://./data/metadata.db").is_ok());
    assert!(check_metadata_url("sqlite:///tmp/x.db").is_ok());
    assert!(check_metadata_url("postgres://postgres@127.0.0.1:5432/db").is_ok());
    assert!(check_metadata_url("postgresql://u:p@db.internal/streamhouse").is_ok());
    assert_eq!(
        check_metadata_url("mysql://x"),
        Err("unsupported URL \"mysql://x\" (expected sqlite://PATH or postgres://…)".to_string())
    );
    assert!(check_metadata_url("sqlite://").is_err());
    assert!(check_metadata_url("postgres://").is_err());
}

#[test]
fn object_store_urls_are_checked_by_form() {
    assert!(check_object_store_url("file://./data/objects").is_ok());
    assert!(check_object_store_url("s3://my-bucket").is_ok());
    assert!(check_object_store_url("s3://my-bucket/some/prefix").is_ok());
    for bad in [
        "s3://",
        "s3://Upper",
        "s3://ab",
        "s3://-bucket",
        "file://",
        "gs://bucket",
        "x",
    ] {
        assert!(
            check_object_store_url(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn defaults_live_under_the_data_dir() {
    let config = ServerConfig::default();
    assert_eq!(config.metadata_url(), "sqlite://./data/metadata.db");
    assert_eq!(config.object_store_url(), "file://./data/objects");
    assert_eq!(
        config.kafka_listen,
        vec![KafkaListenAddress::plaintext(
            DEFAULT_KAFKA_LISTEN.parse().expect("host:port")
        )]
    );
    assert_eq!(config.http_listen.to_string(), DEFAULT_HTTP_LISTEN);
    let config = ServerConfig::with_data_dir("/var/lib/sh");
    assert_eq!(config.metadata_url(), "sqlite:///var/lib/sh/metadata.db");
    assert_eq!(config.object_store_url(), "file:///var/lib/sh/objects");
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn flags_win_over_env_over_file() {
    let mut flags = RawSettings::default();
    flags.set(Setting::KafkaListen, "127.0.0.1:1001", Origin::Flag);
    let mut env = RawSettings::default();
    env.set(
        Setting::KafkaListen,
        "127.0.0.1:2001",
        Origin::Env("STREAMHOUSE_KAFKA_LISTEN"),
    );
    env.set(
        Setting::HttpListen,
        "127.0.0.1:2002",
        Origin::Env("STREAMHOUSE_HTTP_LISTEN"),
    );
    let mut file = RawSettings::default();
    file.set(Setting::KafkaListen, "127.0.0.1:3001", file_origin());
    file.set(Setting::HttpListen, "127.0.0.1:3002", file_origin());
    file.set(Setting::AgentId, "from-file", file_origin());

    let config = flags.or(env).or(file).resolve().map_err(|e| e.to_string());
    let config = config.as_ref().map_err(String::as_str);
    assert_eq!(config.map(|c| c.kafka_listen[0].addr.port), Ok(1001));
    assert_eq!(config.map(|c| c.http_listen.port), Ok(2002));
    assert_eq!(config.map(|c| c.agent_id.as_deref()), Ok(Some("from-file")));
    assert_eq!(
        config.map(|c| c.data_dir.clone()),
        Ok(PathBuf::from("./data"))
    );
}

#[test]
fn errors_name_the_flag_and_where_the_value_came_from() {
    let resolve = |setting, value: &str, origin| {
        let mut raw = RawSettings::default();
        raw.set(setting, value, origin);
        raw.resolve().err().map(|e| e.to_string())
    };
    assert_eq!(
        resolve(Setting::KafkaListen, "abc", Origin::Flag).as_deref(),
        Some("--kafka-listen: \"abc\" is not HOST:PORT")
    );
    assert_eq!(
        resolve(
            Setting::KafkaListen,
            "abc",
            Origin::Env(Setting::KafkaListen.env())
        )
        .as_deref(),
        Some("--kafka-listen: \"abc\" is not HOST:PORT (from STREAMHOUSE_KAFKA_LISTEN)")
    );
    assert_eq!(
        resolve(Setting::FlushIntervalMs, "0", Origin::Flag).as_deref(),
        Some("--flush-interval-ms: must be between 1 and 10000")
    );
    assert_eq!(
        resolve(Setting::FlushIntervalMs, "10001", file_origin()).as_deref(),
        Some("--flush-interval-ms: must be between 1 and 10000 (from /etc/streamhouse.toml)")
    );
    assert_eq!(
        resolve(Setting::CacheBytes, "lots", Origin::Flag).as_deref(),
        Some("--cache-bytes: \"lots\" is not a non-negative integer")
    );
    assert!(resolve(Setting::MaxBodyBytes, "10", Origin::Flag).is_some());
    assert_eq!(
        resolve(Setting::JobIntervalMs, "5", Origin::Flag).as_deref(),
        Some("--job-interval-ms: must be at least 10 milliseconds")
    );
    assert!(resolve(Setting::CompactionTargetBytes, "100", Origin::Flag).is_some());
    assert!(resolve(Setting::GcGraceMs, "-1", Origin::Flag).is_some());
    assert!(resolve(Setting::AgentId, "", Origin::Flag).is_some());
    assert!(resolve(Setting::AdvertisedHost, "a b", Origin::Flag).is_some());
    assert!(resolve(Setting::DataDir, "", Origin::Flag).is_some());
}

#[test]
fn config_file_sets_every_key() {
    let text = r#"
        data_dir = "/srv/sh"
        metadata = "postgres://sh@db/sh"
        object_store = "s3://bucket/prefix"
        kafka_listen = "0.0.0.0:19092"
        advertised_host = "broker-1.internal"
        http_listen = "0.0.0.0:18080"
        agent_id = "agent-1"
        zone = "eu-west-1a"
        flush_interval_ms = 20
        cache_bytes = 1048576
        max_body_bytes = 4096
        compaction_target_bytes = 8388608
        compaction_span_ms = 5000
        job_interval_ms = 1000
        gc_grace_ms = 120000
        fetch_max_bytes = 1048576
        auto_create_topics_enable = false
    "#;
    let layer = parse_config_file(text, Path::new("sh.toml")).map_err(|e| e.to_string());
    let config = layer.and_then(|l| l.resolve().map_err(|e| e.to_string()));
    let expected = ServerConfig {
        data_dir: PathBuf::from("/srv/sh"),
        metadata_url: Some("postgres://sh@db/sh".into()),
        object_store_url: Some("s3://bucket/prefix".into()),
        kafka_listen: vec![KafkaListenAddress::plaintext(HostPort::new(
            "0.0.0.0", 19092,
        ))],
        advertised_host: Some("broker-1.internal".into()),
        http_listen: HostPort::new("0.0.0.0", 18080),
        agent_id: Some("agent-1".into()),
        zone: Some("eu-west-1a".into()),
        flush_interval: Duration::from_millis(20),
        cache_bytes: 1 << 20,
        max_body_bytes: 4096,
        compaction_target_bytes: 8 << 20,
        compaction_span: Duration::from_secs(5),
        job_interval: Duration::from_secs(1),
        gc_grace: Duration::from_secs(120),
        fetch_max_bytes: 1 << 20,
        auto_create_topics_enable: false,
        ..ServerConfig::default()
    };
    assert_eq!(config, Ok(expected));
}

#[test]
fn config_file_errors_are_one_line_with_file_and_position() {
    let unknown = parse_config_file(
        "kafka_listen = \"a:1\"\nkafak_port = 3\n",
        Path::new("x.toml"),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(unknown.starts_with("--config: x.toml:2:1: "), "{unknown}");
    assert!(unknown.contains("kafak_port"), "{unknown}");
    assert!(!unknown.contains('\n'), "{unknown}");

    let wrong_type = parse_config_file("flush_interval_ms = \"100\"\n", Path::new("x.toml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        wrong_type.starts_with("--config: x.toml:1:"),
        "{wrong_type}"
    );
    assert!(!wrong_type.contains('\n'), "{wrong_type}");

    let syntax = parse_config_file("this is not toml", Path::new("x.toml"));
    assert!(syntax.is_err());

    let missing = load_config_file(Path::new("/definitely/missing.toml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        missing.starts_with("--config: cannot read /definitely/missing.toml: "),
        "{missing}"
    );
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://user:s3cret@db:5432/sh"),
        "postgres://user:***@db:5432/sh"
    );
    let redacted = redact_url("postgres://db/sh?user=u&password=s3cret&sslmode=require");
    assert!(!redacted.contains("s3cret"), "{redacted}");
    assert!(redacted.contains("sslmode=require"), "{redacted}");
    assert_eq!(
        redact_url("sqlite://./data/metadata.db"),
        "sqlite://./data/metadata.db"
    );
    assert_eq!(redact_url("postgres://u@db/sh"), "postgres://u@db/sh");
    assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
}

#[test]
fn every_documented_default_is_the_default() {
    // Numbers and booleans document their literal default: resolving it
    // must give exactly the built-in default.
    for &setting in Setting::ALL {
        if setting.kind() == Kind::Text {
            continue;
        }
        let mut raw = RawSettings::default();
        raw.set(setting, setting.default_text(), Origin::Flag);
        assert_eq!(
            raw.resolve(),
            Ok(ServerConfig::default()),
            "{} documents {:?}",
            setting.flag(),
            setting.default_text()
        );
    }
}

#[test]
fn flags_variables_and_keys_follow_one_pattern() {
    for &setting in Setting::ALL {
        let key = setting.key();
        assert_eq!(setting.flag(), format!("--{}", key.replace('_', "-")));
        assert_eq!(setting.env(), format!("STREAMHOUSE_{}", key.to_uppercase()));
    }
}

#[test]
fn the_readme_lists_every_setting_with_its_default() {
    let readme = include_str!("../../../../README.md");
    for &setting in Setting::ALL {
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `{} ", setting.flag())))
            .unwrap_or_else(|| panic!("README has no row for {}", setting.flag()));
        if setting.kind() == Kind::Text {
            // Derived defaults are described in words.
            continue;
        }
        assert!(
            row.contains(&format!("`{}`", setting.default_text())),
            "README row for {} does not show the default {:?}: {row}",
            setting.flag(),
            setting.default_text()
        );
    }
}

#[test]
fn booleans_and_limits_are_checked() {
    let resolve = |setting, value: &str| {
        let mut raw = RawSettings::default();
        raw.set(setting, value, Origin::Flag);
        raw.resolve().map_err(|e| e.to_string())
    };
    assert_eq!(
        resolve(Setting::AutoCreateTopicsEnable, "yes")
            .err()
            .as_deref(),
        Some("--auto-create-topics-enable: \"yes\" is not true or false")
    );
    assert_eq!(
        resolve(Setting::AutoCreateTopicsEnable, "false").map(|c| c.auto_create_topics_enable),
        Ok(false)
    );
    assert!(resolve(Setting::MaxUncompressedBatchFactor, "0").is_err());
    assert!(resolve(Setting::FetchMaxBytes, "10").is_err());
    assert!(resolve(Setting::QueuedMaxRequestBytes, "1000").is_err());
    assert!(resolve(Setting::MaxConnections, "0").is_err());
    assert!(resolve(Setting::NumPartitions, "0").is_err());
    assert_eq!(
        resolve(Setting::ConnectionsMaxIdleMs, "2000").map(|c| c.connections_max_idle),
        Ok(Duration::from_secs(2))
    );
}

#[test]
fn kafka_listeners_take_a_protocol_each() {
    let resolve = |value: &str| {
        let mut raw = RawSettings::default();
        raw.set(Setting::KafkaListen, value, Origin::Flag);
        raw.resolve().map_err(|e| e.to_string())
    };
    let config = resolve("127.0.0.1:9092,SASL_PLAINTEXT://0.0.0.0:9093, sasl_ssl://[::1]:0")
        .err()
        .unwrap_or_default();
    assert_eq!(
        config,
        "--kafka-listen: the SASL_SSL listener [::1]:0 needs --tls-cert and --tls-key"
    );
    let mut raw = RawSettings::default();
    raw.set(
        Setting::KafkaListen,
        "127.0.0.1:9092,SASL_PLAINTEXT://0.0.0.0:9093,sasl_ssl://[::1]:0",
        Origin::Flag,
    );
    raw.set(Setting::TlsCert, "cert.pem", Origin::Flag);
    raw.set(Setting::TlsKey, "key.pem", Origin::Flag);
    let config = raw.resolve().expect("valid");
    assert_eq!(
        config.kafka_listen,
        vec![
            KafkaListenAddress::plaintext(HostPort::new("127.0.0.1", 9092)),
            KafkaListenAddress::new(
                SecurityProtocol::SaslPlaintext,
                HostPort::new("0.0.0.0", 9093)
            ),
            KafkaListenAddress::new(SecurityProtocol::SaslSsl, HostPort::new("::1", 0)),
        ]
    );
    assert_eq!(
        resolve("PLAINTEXT://a:1,PLAINTEXT://a:2").err().as_deref(),
        Some("--kafka-listen: PLAINTEXT is given twice")
    );
    assert_eq!(
        resolve("a:1,SASL_PLAINTEXT://b:1").err().as_deref(),
        Some("--kafka-listen: port 1 is given twice")
    );
    assert_eq!(
        resolve("TLS://a:1").err().as_deref(),
        Some(
            "--kafka-listen: unknown security protocol \"TLS\" (expected PLAINTEXT, SSL, \
             SASL_PLAINTEXT or SASL_SSL)"
        )
    );
    assert!(resolve("SSL://a").is_err());
    assert!(resolve("").is_err());
    // Port 0 twice is two free ports.
    assert!(resolve("a:0,SASL_PLAINTEXT://a:0").is_ok());
}

#[test]
fn list_settings_come_from_a_string_or_an_array_in_the_file() {
    let text = r#"
        kafka_listen = ["127.0.0.1:9092", "SASL_PLAINTEXT://127.0.0.1:9093"]
        sasl_mechanisms = "SCRAM-SHA-512"
    "#;
    let config = parse_config_file(text, Path::new("sh.toml"))
        .and_then(|l| l.resolve())
        .expect("valid");
    assert_eq!(config.kafka_listen.len(), 2);
    assert_eq!(
        config.sasl_mechanisms,
        vec![SaslMechanism::Scram(
            streamhouse_storage::security::ScramMechanism::Sha512
        )]
    );
    let error = parse_config_file("kafka_listen = [1]", Path::new("sh.toml"))
        .err()
        .map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("a string or a non-empty array")),
        "{error:?}"
    );
}

#[test]
fn tls_and_sasl_settings_are_checked() {
    let resolve = |pairs: &[(Setting, &str)]| {
        let mut raw = RawSettings::default();
        for &(setting, value) in pairs {
            raw.set(setting, value, Origin::Flag);
        }
        raw.resolve().map_err(|e| e.to_string())
    };
    assert_eq!(
        resolve(&[(Setting::HttpTls, "true")]).err().as_deref(),
        Some("--http-tls: needs --tls-cert and --tls-key")
    );
    assert_eq!(
        resolve(&[(Setting::TlsCert, "c.pem")]).err().as_deref(),
        Some("--tls-key: --tls-cert is set but not --tls-key")
    );
    assert!(resolve(&[(Setting::SaslMechanisms, "GSSAPI")]).is_err());
    assert!(resolve(&[(Setting::SaslMechanisms, "PLAIN,PLAIN")]).is_err());
    assert!(resolve(&[(Setting::SslPrincipalMappingRules, "RULE:x")]).is_err());
    let config = resolve(&[
        (
            Setting::SslPrincipalMappingRules,
            "RULE:^CN=(.*)$/$1/L,DEFAULT",
        ),
        (Setting::ConnectionFailedAuthenticationDelayMs, "0"),
    ])
    .expect("valid");
    assert_eq!(
        config.connection_failed_authentication_delay,
        Duration::ZERO
    );
}

#[test]
fn the_authorizer_and_super_users_are_checked() {
    use streamhouse_core::security::Principal;
    let resolve = |setting, value: &str| {
        let mut raw = RawSettings::default();
        raw.set(setting, value, Origin::Flag);
        raw.resolve().map_err(|e| e.to_string())
    };
    assert!(!ServerConfig::default().authorizer);
    assert!(ServerConfig::default().super_users.is_empty());
    assert_eq!(
        resolve(Setting::Authorizer, "acl").map(|c| c.authorizer),
        Ok(true)
    );
    assert_eq!(
        resolve(Setting::Authorizer, "none").map(|c| c.authorizer),
        Ok(false)
    );
    assert_eq!(
        resolve(Setting::Authorizer, "simple").err().as_deref(),
        Some("--authorizer: \"simple\" is not none or acl")
    );
    assert_eq!(
        resolve(Setting::SuperUsers, "User:admin; User:ops;").map(|c| c.super_users),
        Ok(vec![Principal::user("admin"), Principal::user("ops")])
    );
    assert_eq!(
        resolve(Setting::SuperUsers, "").map(|c| c.super_users),
        Ok(Vec::new())
    );
    let error = resolve(Setting::SuperUsers, "User:admin;ops").unwrap_err();
    assert!(
        error.starts_with("--super-users: invalid principal \"ops\""),
        "{error}"
    );
}
