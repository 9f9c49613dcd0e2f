use std::collections::HashMap;

use streamhouse_storage::security::scram::client_proof;

use super::*;

const SECRET: &[u8] = b"test secret";

/// The credentials a test server knows.
fn users(mechanism: ScramMechanism) -> HashMap<String, ScramCredential> {
    let mut users = HashMap::new();
    for (name, password) in [("alice", "alice-secret"), ("a,b=c", "odd")] {
        users.insert(
            name.to_string(),
            ScramCredential::from_password(mechanism, password.as_bytes(), b"salt-of-alice", 4096),
        );
    }
    users
}

/// Runs client-first and server-first; returns the server, its first
/// message and the combined nonce.
fn challenge(
    mechanism: ScramMechanism,
    client_first: &str,
    lookup: &HashMap<String, ScramCredential>,
) -> (ScramServer, String) {
    let mut server = ScramServer::new(mechanism);
    let user = server
        .receive_client_first(client_first.as_bytes())
        .expect("client-first")
        .to_string();
    let first = server
        .server_first(lookup.get(&user).cloned(), "SERVERNONCE", SECRET)
        .expect("server-first");
    (server, String::from_utf8(first).expect("utf-8"))
}

fn attribute<'a>(message: &'a str, key: &str) -> &'a str {
    message
        .split(',')
        .find_map(|a| a.strip_prefix(key))
        .expect("attribute")
}

/// A correct client-final for `password`.
fn client_final(
    mechanism: ScramMechanism,
    client_first_bare: &str,
    server_first: &str,
    password: &str,
    binding: &str,
) -> String {
    let salt = BASE64.decode(attribute(server_first, "s=")).expect("salt");
    let iterations: u32 = attribute(server_first, "i=").parse().expect("i");
    let nonce = attribute(server_first, "r=");
    let without_proof = format!("c={},r={nonce}", BASE64.encode(binding));
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let proof = client_proof(mechanism, &salted, auth_message.as_bytes());
    format!("{without_proof},p={}", BASE64.encode(proof))
}

#[test]
fn a_correct_proof_authenticates_and_the_server_proves_itself() {
    for mechanism in ScramMechanism::ALL {
        let lookup = users(mechanism);
        let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CLIENTNONCE", &lookup);
        assert!(first.starts_with("r=CLIENTNONCESERVERNONCE,s="), "{first}");
        assert_eq!(attribute(&first, "i="), "4096");
        let last = client_final(
            mechanism,
            "n=alice,r=CLIENTNONCE",
            &first,
            "alice-secret",
            "n,,",
        );
        let (server_final, user) = server
            .receive_client_final(last.as_bytes())
            .expect("authenticated");
        assert_eq!(user, "alice");
        // The client checks v= against its own ServerSignature.
        let credential = &lookup["alice"];
        let auth_message = format!(
            "n=alice,r=CLIENTNONCE,{first},{}",
            last.rsplit_once(",p=").expect("proof").0
        );
        let expected = BASE64.encode(credential.server_signature(auth_message.as_bytes()));
        assert_eq!(
            String::from_utf8(server_final).expect("utf-8"),
            format!("v={expected}")
        );
        // Nothing more is accepted.
        assert!(server.receive_client_final(last.as_bytes()).is_err());
    }
}

#[test]
fn escaped_names_and_a_matching_authzid_are_accepted() {
    let mechanism = ScramMechanism::Sha256;
    let lookup = users(mechanism);
    let bare = "n=a=2Cb=3Dc,r=NONCE";
    let client_first = format!("n,a=a=2Cb=3Dc,{bare}");
    let (mut server, first) = challenge(mechanism, &client_first, &lookup);
    let last = client_final(mechanism, bare, &first, "odd", "n,a=a=2Cb=3Dc,");
    let (_, user) = server
        .receive_client_final(last.as_bytes())
        .expect("authenticated");
    assert_eq!(user, "a,b=c");
}

#[test]
fn a_wrong_password_fails_with_kafkas_message() {
    let mechanism = ScramMechanism::Sha512;
    let lookup = users(mechanism);
    let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CN", &lookup);
    let last = client_final(mechanism, "n=alice,r=CN", &first, "wrong", "n,,");
    assert_eq!(
        server.receive_client_final(last.as_bytes()),
        Err(SaslError::Failed {
            message: "Authentication failed during authentication due to invalid credentials \
                      with SASL mechanism SCRAM-SHA-512"
                .into()
        })
    );
}

/// librdkafka before 2.1 repeats its own nonce in front of the server's;
/// Kafka accepts a final nonce that ends with the one it sent, and so does
/// StreamHouse (kcat 1.7 on Debian 12 logs in this way).
#[test]
fn a_final_nonce_ending_with_the_servers_is_accepted_as_kafka_does() {
    let mechanism = ScramMechanism::Sha512;
    let lookup = users(mechanism);
    let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CN", &lookup);
    let salt = BASE64.decode(attribute(&first, "s=")).expect("salt");
    let iterations: u32 = attribute(&first, "i=").parse().expect("i");
    let nonce = attribute(&first, "r=");
    // The proof covers the message as sent, with the nonce repeated.
    let without_proof = format!("c={},r=CN{nonce}", BASE64.encode("n,,"));
    let salted = mechanism.salted_password(b"alice-secret", &salt, iterations);
    let auth_message = format!("n=alice,r=CN,{first},{without_proof}");
    let proof = client_proof(mechanism, &salted, auth_message.as_bytes());
    let last = format!("{without_proof},p={}", BASE64.encode(proof));
    assert!(server.receive_client_final(last.as_bytes()).is_ok());
}

#[test]
fn a_wrong_nonce_or_binding_is_refused() {
    let mechanism = ScramMechanism::Sha256;
    let lookup = users(mechanism);
    let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CN", &lookup);
    let forged = first.replace("r=CNSERVERNONCE", "r=CNOTHERNONCE");
    let last = client_final(mechanism, "n=alice,r=CN", &forged, "alice-secret", "n,,");
    assert!(matches!(
        server.receive_client_final(last.as_bytes()),
        Err(SaslError::Malformed { .. })
    ));

    let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CN", &lookup);
    let last = client_final(mechanism, "n=alice,r=CN", &first, "alice-secret", "y,,");
    assert!(matches!(
        server.receive_client_final(last.as_bytes()),
        Err(SaslError::Malformed { .. })
    ));
}

#[test]
fn an_unknown_user_is_indistinguishable_from_a_wrong_password() {
    let mechanism = ScramMechanism::Sha256;
    let lookup = users(mechanism);
    let (mut server, first) = challenge(mechanism, "n,,n=mallory,r=CN", &lookup);
    let (_, again) = challenge(mechanism, "n,,n=mallory,r=CN", &lookup);
    assert_eq!(first, again, "the same salt and iterations every time");
    let (_, other) = challenge(mechanism, "n,,n=eve,r=CN", &lookup);
    assert_ne!(attribute(&first, "s="), attribute(&other, "s="));
    assert_eq!(
        attribute(&first, "i="),
        streamhouse_storage::DEFAULT_SCRAM_ITERATIONS.to_string(),
        "the iterations of a user made with the default"
    );
    let salt = BASE64.decode(attribute(&first, "s=")).expect("salt");
    assert_eq!(salt.len(), 32);
    let last = client_final(mechanism, "n=mallory,r=CN", &first, "guess", "n,,");
    let unknown = server.receive_client_final(last.as_bytes());
    let (mut server, first) = challenge(mechanism, "n,,n=alice,r=CN", &lookup);
    let last = client_final(mechanism, "n=alice,r=CN", &first, "guess", "n,,");
    assert_eq!(unknown, server.receive_client_final(last.as_bytes()));
}

#[test]
fn garbage_never_panics_and_is_refused() {
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"n,,n=",
        b"n,,n=alice",
        b"n,,n=alice,r=",
        b"n,,r=abc,n=alice",
        b"y,,n=alice,r=abc",
        b"p=tls-unique,,n=alice,r=abc",
        b"x,,n=alice,r=abc",
        b"n,b=alice,n=alice,r=abc",
        b"n,,m=ext,n=alice,r=abc",
        b"n,,n=al=2Xice,r=abc",
        b"n,,n=alice=,r=abc",
        b"n,,n=alice,r=a\x01b",
        b"n,,n=al\0ice,r=abc",
        b"n,,n=alice,r=abc,tokenauth=true",
        b"\xff\xfe",
    ];
    for case in cases {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.receive_client_first(case).is_err(), "{case:?}");
        assert!(server.server_first(None, "N", SECRET).is_err());
    }
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(server.receive_client_first(&vec![b'a'; 10_000]).is_err());

    let lookup = users(ScramMechanism::Sha256);
    for last in [
        &b""[..],
        b"c=biws",
        b"c=biws,r=CNSERVERNONCE",
        b"c=biws,r=CNSERVERNONCE,p=",
        b"c=biws,r=CNSERVERNONCE,p=!!!",
        b"c=!!,r=CNSERVERNONCE,p=AAAA",
        b"r=CNSERVERNONCE,c=biws,p=AAAA",
        b"c=biws,p=AAAA",
    ] {
        let (mut server, _) = challenge(ScramMechanism::Sha256, "n,,n=alice,r=CN", &lookup);
        assert!(server.receive_client_final(last).is_err(), "{last:?}");
    }
}

#[test]
fn an_authzid_other_than_the_user_fails() {
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(matches!(
        server.receive_client_first(b"n,a=admin,n=alice,r=abc"),
        Err(SaslError::Failed { .. })
    ));
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(server.server_first(None, "N", SECRET).is_err());
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert!(server.receive_client_final(b"c=biws,r=x,p=AAAA").is_err());
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    server
        .receive_client_first(b"n,,n=alice,r=abc")
        .expect("first");
    assert!(server.receive_client_first(b"n,,n=alice,r=abc").is_err());
}
