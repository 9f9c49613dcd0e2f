use bytes::Bytes;

/// One header of a record: a name and an optional value.
///
/// Kafka header names are strings and values are nullable byte arrays; a
/// `None` value is distinct from an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

impl Header {
    pub fn new(key: impl Into<String>, value: Option<Bytes>) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

/// One event in a partition.
///
/// `key: None` (no key) and `key: Some(empty)` are different records and are
/// stored and returned as such; the same holds for the value, where `None`
/// is Kafka's null value (a tombstone in a compacted topic). `timestamp` is milliseconds since the Unix
/// epoch, as set by the producer (Kafka's CreateTime).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with no key and no headers; the offset is assigned on commit.
    pub fn new(timestamp: i64, value: impl Into<Bytes>) -> Self {
        Self {
            offset: 0,
            timestamp,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }

    /// A record with a null value: a tombstone for its key.
    pub fn tombstone(timestamp: i64) -> Self {
        Self {
            offset: 0,
            timestamp,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    pub fn with_offset(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }

    /// Payload size used for size limits and byte budgets: key, value and
    /// header names and values. Framing overhead is not counted.
    pub fn payload_size(&self) -> usize {
        let key = self.key.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
            .sum();
        key + self.value.as_ref().map_or(0, Bytes::len) + headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_size_counts_key_value_and_headers() {
        let record = Record::new(1, Bytes::from_static(b"value"))
            .with_key(Bytes::from_static(b"k"))
            .with_header("h1", Some(Bytes::from_static(b"abc")))
            .with_header("h2", None);
        assert_eq!(record.payload_size(), 5 + 1 + 2 + 3 + 2);
    }

    #[test]
    fn null_and_empty_values_differ() {
        let null = Record::tombstone(1);
        let empty = Record::new(1, Bytes::new());
        assert_ne!(null, empty);
        assert_eq!(null.payload_size(), 0);
    }

    #[test]
    fn absent_and_empty_keys_differ() {
        let absent = Record::new(1, Bytes::new());
        let empty = Record::new(1, Bytes::new()).with_key(Bytes::new());
        assert_ne!(absent, empty);
    }
}
