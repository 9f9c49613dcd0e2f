//! The principal of a TLS client: its certificate's subject, mapped by
//! Kafka's `ssl.principal.mapping.rules`.
//!
//! Rules are comma- or newline-separated, each `RULE:pattern/replacement/`
//! with an optional `L` or `U` after the last slash (lower or upper case),
//! or `DEFAULT`; the first rule whose pattern matches the whole subject
//! (RFC 2253 form, `CN=alice,OU=eng,O=corp`) gives the user name. Unlike
//! Kafka, whose `DEFAULT` is the whole subject, `DEFAULT` here is the
//! subject's common name (CN), or the whole subject if it has none.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why mapping rules cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ssl.principal.mapping.rules at {at:?}: {reason}")]
pub struct PrincipalMappingError {
    pub at: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        whole: Regex,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

/// Parsed mapping rules.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for SslPrincipalMapper {
    fn default() -> Self {
        Self {
            rules: vec![Rule::Default],
        }
    }
}

impl SslPrincipalMapper {
    /// Parses Kafka's syntax.
    pub fn parse(text: &str) -> Result<Self, PrincipalMappingError> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        while !rest.is_empty() {
            let fail = |reason: &str| PrincipalMappingError {
                at: rest.chars().take(40).collect(),
                reason: reason.into(),
            };
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or_else(|| fail("expected RULE:pattern/replacement/"))?;
                let (replacement, after) =
                    until_slash(after).ok_or_else(|| fail("expected RULE:pattern/replacement/"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Some(Case::Lower), &after[1..]),
                    Some('U') => (Some(Case::Upper), &after[1..]),
                    _ => (None, after),
                };
                let regex = |source: &str| {
                    Regex::new(source).map_err(|e| fail(&format!("invalid pattern: {e}")))
                };
                rules.push(Rule::Replace {
                    pattern: regex(&pattern)?,
                    whole: regex(&format!("^(?:{pattern})$"))?,
                    replacement,
                    case,
                });
                rest = after;
            } else {
                return Err(fail("expected DEFAULT or RULE:"));
            }
            let trimmed = rest.trim_start_matches([' ', '\t']);
            rest = match trimmed.chars().next() {
                None => trimmed,
                Some(',' | '\n' | '\r') => {
                    trimmed.trim_start_matches(|c: char| c.is_whitespace() || c == ',')
                }
                Some(_) => return Err(fail("expected a comma between rules")),
            };
        }
        if rules.is_empty() {
            return Err(PrincipalMappingError {
                at: text.into(),
                reason: "no rules".into(),
            });
        }
        Ok(Self { rules })
    }

    /// The user name for a subject, or `None` when no rule matches (the
    /// connection is then refused, as Kafka does).
    pub fn map(&self, subject: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(common_name(subject).unwrap_or(subject).to_string()),
                Rule::Replace {
                    pattern,
                    whole,
                    replacement,
                    case,
                } => {
                    if !whole.is_match(subject) {
                        continue;
                    }
                    let name = pattern.replace_all(subject, replacement.as_str());
                    return Some(match case {
                        Some(Case::Lower) => name.to_lowercase(),
                        Some(Case::Upper) => name.to_uppercase(),
                        None => name.into_owned(),
                    });
                }
            }
        }
        None
    }
}

/// Text up to the first unescaped `/`, with `\/` unescaped, and the rest
/// after that slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '/' => return Some((out, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

/// The first `CN=` value of an RFC 2253 subject.
fn common_name(subject: &str) -> Option<&str> {
    let mut start = 0;
    let bytes = subject.as_bytes();
    let mut i = 0;
    while i <= bytes.len() {
        let end = i == bytes.len();
        if end || (bytes[i] == b',' || bytes[i] == b'+') && (i == 0 || bytes[i - 1] != b'\\') {
            let part = subject[start..i].trim();
            if let Some(value) = part.strip_prefix("CN=") {
                return Some(value);
            }
            start = i + 1;
        }
        i += 1;
    }
    None
}

/// The subject of a DER certificate in RFC 2253 form: most specific RDN
/// first, `CN=alice,OU=eng,O=corp`.
pub(crate) fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map(str::to_string)
                .unwrap_or_else(|_| oid.to_id_string());
            let value = attribute.as_str().ok()?;
            parts.push(format!("{name}={}", escape(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253 escapes.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_common_name() {
        let mapper = SslPrincipalMapper::parse("DEFAULT").expect("rules");
        assert_eq!(
            mapper.map("CN=alice,OU=eng,O=corp").as_deref(),
            Some("alice")
        );
        assert_eq!(
            mapper.map("OU=eng,O=corp").as_deref(),
            Some("OU=eng,O=corp")
        );
        assert_eq!(
            SslPrincipalMapper::default().map("CN=bob").as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn rules_apply_in_order_with_case() {
        let mapper = SslPrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),O=(.*)$/$1@$2/U,\nDEFAULT",
        )
        .expect("rules");
        assert_eq!(
            mapper
                .map("CN=Kafka-Client,OU=ServiceUsers,O=corp")
                .as_deref(),
            Some("kafka-client")
        );
        assert_eq!(mapper.map("CN=ann,O=corp").as_deref(), Some("ANN@CORP"));
        assert_eq!(mapper.map("CN=zed,OU=x,O=y").as_deref(), Some("zed"));
    }

    #[test]
    fn no_matching_rule_is_none() {
        let mapper = SslPrincipalMapper::parse("RULE:^CN=(.*),O=corp$/$1/").expect("rules");
        assert_eq!(mapper.map("CN=a,O=corp").as_deref(), Some("a"));
        assert_eq!(mapper.map("CN=a,O=other"), None);
    }

    #[test]
    fn escaped_slashes_belong_to_the_pattern() {
        let mapper = SslPrincipalMapper::parse(r"RULE:^CN=(.*)\/x$/$1/").expect("rules");
        assert_eq!(mapper.map("CN=a/x").as_deref(), Some("a"));
    }

    #[test]
    fn bad_rules_are_errors() {
        for text in [
            "",
            "RULE:abc",
            "RULE:abc/def",
            "RULE:(/x/",
            "DEFAULTS",
            "RULE:a/b/X",
            "NOPE",
        ] {
            assert!(SslPrincipalMapper::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_certificate_subject_reads_most_specific_first() {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CountryName, "NZ");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Corp, Inc");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let cert = params.self_signed(&key).expect("cert");
        let subject = subject_dn(cert.der()).expect("subject");
        // Most specific first is the reverse of the certificate's order.
        let (_, parsed) = X509Certificate::from_der(cert.der()).expect("parse");
        let mut in_certificate: Vec<String> = parsed
            .subject()
            .iter_attributes()
            .map(|a| a.as_str().expect("text").to_string())
            .collect();
        in_certificate.reverse();
        let shown: Vec<String> = subject
            .replace(r"\,", "\u{0}")
            .split(',')
            .map(|part| part.split_once('=').expect("attr").1.replace('\u{0}', ","))
            .collect();
        assert_eq!(shown, in_certificate);
        assert!(subject.contains(r"O=Corp\, Inc"), "{subject}");
        assert!(
            subject.contains("C=NZ") && subject.contains("CN=alice"),
            "{subject}"
        );
        assert_eq!(
            SslPrincipalMapper::default().map(&subject).as_deref(),
            Some("alice")
        );
        assert_eq!(subject_dn(b"not a certificate"), None);
    }

    #[test]
    fn common_name_skips_escaped_commas() {
        assert_eq!(common_name(r"OU=a\,b,CN=c"), Some("c"));
        assert_eq!(common_name(r"CN=a\,b,O=x"), Some(r"a\,b"));
    }
}
