//! Converting between Kafka record batches and StreamHouse records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use streamhouse_core::{Header, Record};
use streamhouse_metadata::ProducerBatch;

/// One record batch of a produce request.
#[derive(Debug, Default)]
pub struct ProducedBatch {
    pub records: Vec<Record>,
    /// Set when the batch comes from an idempotent producer.
    pub producer: Option<ProducerBatch>,
}

/// Records decoded from a produce request's batches.
#[derive(Debug, Default)]
pub struct ProducedRecords {
    /// Batches of idempotent producers stay apart, so each is checked on
    /// its own; everything else is merged into one batch.
    pub batches: Vec<ProducedBatch>,
    /// Bytes of the batches as received, for metrics.
    pub wire_bytes: usize,
}

impl ProducedRecords {
    pub fn record_count(&self) -> usize {
        self.batches.iter().map(|b| b.records.len()).sum()
    }
}

/// Decodes every record batch in `data` (any of the four codecs), checking
/// each batch's CRC. Control records are not data and are skipped.
pub fn decode_produced(data: Bytes) -> anyhow::Result<ProducedRecords> {
    let wire_bytes = data.len();
    let mut buf = data;
    let sets = RecordBatchDecoder::decode_all(&mut buf)?;
    let mut batches: Vec<ProducedBatch> = Vec::new();
    for set in sets {
        let producer = set
            .records
            .iter()
            .find(|r| !r.control)
            .filter(|r| r.producer_id >= 0)
            .map(|r| ProducerBatch {
                producer_id: r.producer_id,
                producer_epoch: r.producer_epoch,
                base_sequence: r.sequence,
            });
        let mut records = Vec::with_capacity(set.records.len());
        for record in set.records {
            if record.control {
                continue;
            }
            records.push(Record {
                offset: 0,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header::new(key.to_string(), value))
                    .collect(),
            });
        }
        if records.is_empty() {
            continue;
        }
        match (producer, batches.last_mut()) {
            (None, Some(last)) if last.producer.is_none() => last.records.extend(records),
            _ => batches.push(ProducedBatch { records, producer }),
        }
    }
    Ok(ProducedRecords {
        batches,
        wire_bytes,
    })
}

/// Encodes records as one uncompressed record batch (magic 2), marked as
/// carrying append times when the topic stamps records on append.
pub fn encode_batch(records: &[Record], log_append_time: bool) -> anyhow::Result<Bytes> {
    let timestamp_type = if log_append_time {
        TimestampType::LogAppend
    } else {
        TimestampType::Creation
    };
    encode_records(records, timestamp_type, Compression::None)
}

/// Encodes records, offsets as given, as one record batch (magic 2) of a
/// producer that is not idempotent, compressed with `compression`.
pub fn encode_records(
    records: &[Record],
    timestamp_type: TimestampType,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    let Some(first) = records.first() else {
        return Ok(Bytes::new());
    };
    let kafka_records: Vec<KafkaRecord> = records
        .iter()
        .map(|record| KafkaRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type,
            offset: record.offset,
            // The encoder keeps records in one batch while offset minus
            // sequence stays constant.
            sequence: (record.offset - first.offset) as i32,
            timestamp: record.timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                .collect(),
        })
        .collect();
    let mut buf =
        BytesMut::with_capacity(records.iter().map(|r| r.payload_size() + 24).sum::<usize>() + 64);
    RecordBatchEncoder::encode(
        &mut buf,
        kafka_records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::new(1_000, Bytes::from_static(b"v0"))
                .with_key(Bytes::from_static(b"k"))
                .with_header("h", Some(Bytes::from_static(b"1")))
                .with_header("h", None)
                .with_offset(40),
            Record::new(999, Bytes::new())
                .with_key(Bytes::new())
                .with_offset(41),
            Record::tombstone(1_005).with_offset(42),
        ]
    }

    #[test]
    fn batches_round_trip_exactly() {
        let records = sample();
        let encoded = encode_batch(&records, false).expect("encode");
        let decoded = decode_produced(encoded).expect("decode");
        let without_offsets: Vec<Record> =
            records.iter().map(|r| r.clone().with_offset(0)).collect();
        assert_eq!(decoded.batches.len(), 1);
        assert_eq!(decoded.batches[0].producer, None);
        assert_eq!(decoded.batches[0].records, without_offsets);
    }

    #[test]
    fn one_batch_holds_every_record() {
        let encoded = encode_batch(&sample(), false).expect("encode");
        let mut buf = encoded;
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode");
        assert_eq!(sets.len(), 1);
        let offsets: Vec<i64> = sets[0].records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [40, 41, 42]);
    }

    #[test]
    fn corrupt_batches_are_rejected() {
        let encoded = encode_batch(&sample(), false).expect("encode").to_vec();
        for at in [20, encoded.len() / 2, encoded.len() - 1] {
            let mut damaged = encoded.clone();
            damaged[at] ^= 0x40;
            assert!(decode_produced(Bytes::from(damaged)).is_err(), "byte {at}");
        }
        for len in 0..encoded.len() {
            let _ = decode_produced(Bytes::copy_from_slice(&encoded[..len]));
        }
    }

    proptest::proptest! {
        #[test]
        fn random_batches_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = decode_produced(Bytes::from(data));
        }

        /// A valid batch with random bytes flipped: an error or records,
        /// never a panic.
        #[test]
        fn damaged_batches_never_panic(at in 0usize..400, mask in 1u8..=255) {
            let mut bytes = encode_batch(&sample(), false).expect("encode").to_vec();
            let at = at % bytes.len();
            bytes[at] ^= mask;
            let _ = decode_produced(Bytes::from(bytes));
        }
    }

    #[test]
    fn every_codec_decodes() {
        let records = sample();
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch =
                encode_records(&records, TimestampType::Creation, compression).expect("encode");
            let decoded = decode_produced(batch).expect("decode");
            let records = &decoded.batches[0].records;
            assert_eq!(records.len(), 3, "{compression:?}");
            assert_eq!(records[0].headers.len(), 2);
            assert_eq!(records[2].value, None);
        }
    }
}
