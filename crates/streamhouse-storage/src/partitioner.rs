//! Where a record goes when its producer does not say: keyed records by
//! Kafka's default partitioner (murmur2 of the key), so a key lands on the
//! same partition whether it was produced through Kafka's Java client, the
//! HTTP API or StreamHouse's own producer; unkeyed records in turn.

use std::sync::atomic::{AtomicU32, Ordering};

use streamhouse_metadata::Topic;

use crate::error::{Result, StorageError};

/// Chooses partitions for the records of every front-end of an engine.
#[derive(Debug)]
pub(crate) struct Partitioner {
    next: AtomicU32,
}

impl Partitioner {
    pub(crate) fn new() -> Self {
        Self {
            next: AtomicU32::new(rand::random()),
        }
    }

    /// `requested` when it is one of the topic's partitions; otherwise the
    /// key's partition, or the next one in turn for a record without key.
    pub(crate) fn choose(
        &self,
        topic: &Topic,
        requested: Option<i32>,
        key: Option<&[u8]>,
    ) -> Result<i32> {
        match (requested, key) {
            (Some(partition), _) if (0..topic.partition_count).contains(&partition) => {
                Ok(partition)
            }
            (Some(partition), _) => Err(StorageError::UnknownPartition {
                topic: topic.name.clone(),
                partition,
            }),
            (None, Some(key)) => Ok(partition_for_key(key, topic.partition_count)),
            (None, None) => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let count = u32::try_from(topic.partition_count.max(1)).unwrap_or(1);
                Ok((n % count) as i32)
            }
        }
    }
}

/// Kafka's murmur2 (the variant in `org.apache.kafka.common.utils.Utils`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_reference_values() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for key in [&b""[..], b"a", b"order-17", b"\xff\xfe"] {
            let p = partition_for_key(key, 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, partition_for_key(key, 7));
        }
    }
}
