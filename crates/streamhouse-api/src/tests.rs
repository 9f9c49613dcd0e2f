//! The exact JSON of each body: these strings are what clients see.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| panic!("serialize: {e}"))
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn encoding_is_lowercase_and_accepts_utf_dash_8() {
    assert_eq!(json(&Encoding::Utf8), r#""utf8""#);
    assert_eq!(json(&Encoding::Base64), r#""base64""#);
    assert_eq!(parse::<Encoding>(r#""utf-8""#), Ok(Encoding::Utf8));
    assert_eq!(parse::<Encoding>(r#""base64""#), Ok(Encoding::Base64));
    assert!(parse::<Encoding>(r#""Base64""#).is_err());
    for encoding in [Encoding::Utf8, Encoding::Base64] {
        assert_eq!(json(&encoding), format!("\"{}\"", encoding.as_str()));
    }
    assert_eq!(Encoding::default(), Encoding::Utf8);
}

#[test]
fn produce_record_sends_only_what_is_set() {
    let bare = ProduceRecord {
        key: None,
        value: Some("v".into()),
        headers: Vec::new(),
        partition: None,
        timestamp: None,
    };
    assert_eq!(json(&bare), r#"{"value":"v"}"#);
    let tombstone = ProduceRecord {
        value: None,
        ..bare
    };
    assert_eq!(json(&tombstone), r#"{"value":null}"#);
    let full = ProduceRecord {
        key: Some("k".into()),
        value: Some("v".into()),
        headers: vec![ProduceHeader {
            key: "h".into(),
            value: None,
        }],
        partition: Some(2),
        timestamp: Some(1_700_000_000_000),
    };
    let text = json(&ProduceRequest {
        records: vec![full.clone()],
        encoding: Encoding::Base64,
    });
    assert_eq!(
        text,
        r#"{"records":[{"key":"k","value":"v","headers":[{"key":"h","value":null}],"partition":2,"timestamp":1700000000000}],"encoding":"base64"}"#
    );
    let back: ProduceRequest = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.records, vec![full]);
}

#[test]
fn produce_request_value_is_required_and_unknown_fields_are_refused() {
    let request: ProduceRequest = parse(r#"{"records":[{"value":null,"headers":[{"key":"h"}]}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request.encoding, Encoding::Utf8);
    assert_eq!(request.records[0].value, None);
    assert_eq!(request.records[0].headers[0].value, None);

    let missing = parse::<ProduceRequest>(r#"{"records":[{"key":"k"}]}"#);
    assert!(missing.is_err_and(|e| e.contains("value")));
    let misspelt = parse::<ProduceRequest>(r#"{"records":[{"value":"v","partiton":1}]}"#);
    assert!(misspelt.is_err_and(|e| e.contains("partiton")));
    assert!(parse::<ProduceRequest>(r#"{"records":[],"compression":"lz4"}"#).is_err());
}

#[test]
fn produce_response_lists_offsets_in_order() {
    let response = ProduceResponse {
        offsets: vec![
            StoredOffset {
                partition: 1,
                offset: 7,
            },
            StoredOffset {
                partition: 0,
                offset: 3,
            },
        ],
    };
    assert_eq!(
        json(&response),
        r#"{"offsets":[{"partition":1,"offset":7},{"partition":0,"offset":3}]}"#
    );
}

#[test]
fn consume_response_always_carries_every_field() {
    let response = ConsumeResponse {
        records: vec![ConsumedRecord {
            offset: 5,
            timestamp: 10,
            key: None,
            value: None,
            headers: vec![ConsumedHeader {
                key: "h".into(),
                value: Some("AP8=".into()),
            }],
            encoding: Encoding::Base64,
        }],
        high_watermark: 6,
        log_start_offset: 0,
        last_stable_offset: 6,
        next_offset: 6,
    };
    let text = json(&response);
    assert_eq!(
        text,
        r#"{"records":[{"offset":5,"timestamp":10,"key":null,"value":null,"headers":[{"key":"h","value":"AP8="}],"encoding":"base64"}],"high_watermark":6,"log_start_offset":0,"last_stable_offset":6,"next_offset":6}"#
    );
    assert_eq!(parse::<ConsumeResponse>(&text), Ok(response));
    // A reader tolerates fields it does not know and defaults the optional ones.
    let record: ConsumedRecord =
        parse(r#"{"offset":1,"timestamp":2,"key":"k","value":"v","partition":0}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((record.headers.len(), record.encoding), (0, Encoding::Utf8));
}

#[test]
fn queries_default_and_refuse_unknown_parameters() {
    assert_eq!(parse::<ConsumeQuery>("{}"), Ok(ConsumeQuery::default()));
    let query: ConsumeQuery = parse(r#"{"offset":3,"encoding":"base64","wait_ms":100}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (query.offset, query.encoding, query.wait_ms),
        (Some(3), Encoding::Base64, Some(100))
    );
    assert!(parse::<ConsumeQuery>(r#"{"max_record":1}"#).is_err());
    assert_eq!(
        ConsumeQuery::default().isolation_level,
        IsolationLevel::ReadUncommitted
    );
    let query: ConsumeQuery =
        parse(r#"{"isolation_level":"read_committed"}"#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(query.isolation_level, IsolationLevel::ReadCommitted);
    assert!(parse::<ConsumeQuery>(r#"{"isolation_level":"committed"}"#).is_err());
    assert_eq!(parse::<SegmentQuery>("{}"), Ok(SegmentQuery::default()));
    assert!(parse::<SegmentQuery>(r#"{"from":1}"#).is_err());
}

#[test]
fn create_topic_defaults_to_one_partition_and_takes_scalar_configs() {
    let request: CreateTopic = parse(r#"{"name":"orders"}"#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((request.partitions, request.config.len()), (1, 0));
    let request: CreateTopic =
        parse(r#"{"name":"orders","partitions":3,"config":{"retention.ms":60000}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(request.config["retention.ms"], serde_json::json!(60000));
    assert!(parse::<CreateTopic>(r#"{"name":"orders","partition":3}"#).is_err());
    let sent = CreateTopic {
        name: "orders".into(),
        partitions: 2,
        config: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    };
    assert_eq!(
        json(&sent),
        r#"{"name":"orders","partitions":2,"config":{"cleanup.policy":"compact"}}"#
    );
}

#[test]
fn topic_bodies_keep_their_field_order() {
    let summary = TopicSummary {
        name: "t".into(),
        topic_id: "id".into(),
        partitions: 2,
        config: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        created_at: 9,
    };
    assert_eq!(
        json(&summary),
        r#"{"name":"t","topic_id":"id","partitions":2,"config":{"retention.ms":"1000"},"created_at":9}"#
    );
    let detail = TopicDetail {
        name: "t".into(),
        topic_id: "id".into(),
        created_at: 9,
        config: BTreeMap::new(),
        partitions: vec![PartitionDetail {
            partition: 0,
            high_watermark: 4,
            log_start_offset: 1,
            last_stable_offset: 4,
        }],
    };
    assert_eq!(
        json(&detail),
        r#"{"name":"t","topic_id":"id","created_at":9,"config":{},"partitions":[{"partition":0,"high_watermark":4,"log_start_offset":1,"last_stable_offset":4}]}"#
    );
}

#[test]
fn segment_row_names_its_kind() {
    let row = SegmentRow {
        id: 1,
        topic: "t".into(),
        partition: 0,
        base_offset: 0,
        end_offset: 9,
        record_count: 10,
        size_bytes: 100,
        bucket: "b".into(),
        key: "k".into(),
        byte_offset: 0,
        byte_length: 80,
        min_timestamp: 1,
        max_timestamp: 2,
        created_at: 3,
        kind: Some("flushed".into()),
        cleaned_at: None,
        tombstones: None,
    };
    let text = json(&row);
    assert_eq!(
        text,
        r#"{"id":1,"topic":"t","partition":0,"base_offset":0,"end_offset":9,"record_count":10,"size_bytes":100,"bucket":"b","key":"k","byte_offset":0,"byte_length":80,"min_timestamp":1,"max_timestamp":2,"created_at":3,"kind":"flushed"}"#
    );
    let without_kind = text.replace(r#","kind":"flushed""#, "");
    assert_eq!(
        parse::<SegmentRow>(&without_kind),
        Ok(SegmentRow {
            kind: None,
            ..row.clone()
        })
    );
    let keyed = SegmentRow {
        kind: Some("key-compacted".into()),
        cleaned_at: Some(4),
        tombstones: Some(2),
        record_count: 3,
        ..row
    };
    let text = json(&keyed);
    assert!(
        text.ends_with(r#""kind":"key-compacted","cleaned_at":4,"tombstones":2}"#),
        "{text}"
    );
    assert_eq!(parse::<SegmentRow>(&text), Ok(keyed));
}

#[test]
fn group_detail_keeps_its_field_order() {
    let detail = GroupDetail {
        group: "g".into(),
        state: "Stable".into(),
        protocol_type: "consumer".into(),
        protocol: "range".into(),
        members: vec![GroupMember {
            member_id: "m".into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            assignment: vec![Assignment {
                topic: "t".into(),
                partitions: vec![0, 1],
            }],
        }],
        offsets: vec![GroupOffset {
            topic: "t".into(),
            partition: 0,
            committed_offset: 3,
            high_watermark: None,
            lag: None,
            metadata: Some(String::new()),
        }],
        total_lag: 0,
    };
    let text = json(&detail);
    assert_eq!(
        text,
        r#"{"group":"g","state":"Stable","protocol_type":"consumer","protocol":"range","members":[{"member_id":"m","client_id":"c","client_host":"/127.0.0.1","assignment":[{"topic":"t","partitions":[0,1]}]}],"offsets":[{"topic":"t","partition":0,"committed_offset":3,"high_watermark":null,"lag":null,"metadata":""}],"total_lag":0}"#
    );
    assert_eq!(parse::<GroupDetail>(&text), Ok(detail));
    let listing = GroupListing {
        group: "g".into(),
        state: "Empty".into(),
        members: 0,
    };
    assert_eq!(
        json(&listing),
        r#"{"group":"g","state":"Empty","members":0}"#
    );
}

#[test]
fn set_user_is_strict_and_never_shows_its_password() {
    let set: SetUser = parse(r#"{"password":"s3cret"}"#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.mechanism, None);
    assert_eq!(set.iterations, None);
    let debug = format!("{set:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    let full: SetUser = parse(r#"{"password":"p","mechanism":"SCRAM-SHA-512","iterations":8192}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(full.mechanism.as_deref(), Some("SCRAM-SHA-512"));
    assert_eq!(full.iterations, Some(8192));
    assert!(parse::<SetUser>(r#"{"pasword":"p"}"#).is_err());
    assert!(parse::<SetUser>(r#"{"mechanism":"SCRAM-SHA-256"}"#).is_err());
    let user = User {
        name: "alice".into(),
        credentials: vec![UserCredential {
            mechanism: "SCRAM-SHA-256".into(),
            iterations: 4096,
        }],
    };
    assert_eq!(
        json(&user),
        r#"{"name":"alice","credentials":[{"mechanism":"SCRAM-SHA-256","iterations":4096}]}"#
    );
}

#[test]
fn acl_bindings_use_kafkas_fields_and_default_host_and_pattern() {
    let acl: Acl = parse(
        r#"{"resource_type":"Topic","resource_name":"orders","principal":"User:alice","operation":"Read","permission":"Allow"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acl.pattern_type, "Literal");
    assert_eq!(acl.host, "*");
    assert_eq!(
        json(&acl),
        r#"{"resource_type":"Topic","resource_name":"orders","pattern_type":"Literal","principal":"User:alice","host":"*","operation":"Read","permission":"Allow"}"#
    );
    assert!(
        parse::<Acl>(r#"{"resource_type":"Topic","resource_name":"o","principal":"User:a","operation":"Read","permission":"Allow","extra":1}"#)
            .is_err()
    );
    let filter = AclFilter {
        resource_type: Some("Topic".into()),
        ..AclFilter::default()
    };
    assert!(!filter.is_empty());
    assert!(AclFilter::default().is_empty());
    assert_eq!(json(&filter), r#"{"resource_type":"Topic"}"#);
}
