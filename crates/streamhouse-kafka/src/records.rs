//! Converting between Kafka record batches and StreamHouse records.
//!
//! Produced batches are decoded here rather than by the protocol crate, so
//! that every limit is applied while decoding: a batch as sent may not
//! exceed its topic's `max.message.bytes`, and what it becomes in memory
//! (decompressed bytes plus the decoded records and headers) may not
//! exceed [`BatchLimits::max_uncompressed_bytes`], checked before each
//! allocation, whatever the batch claims.

mod decompress;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use streamhouse_core::{Header, Record};
use streamhouse_storage::{ProducerBatch, TransactionRun};

use decompress::{Codec, DecompressError, OverLimit};

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

/// What one partition's produced batches are held to.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Largest record batch as sent, log overhead included (the topic's
    /// `max.message.bytes`, as Kafka applies it).
    pub max_batch_bytes: usize,
    /// Largest the partition's batches may grow to in memory once
    /// decompressed and decoded.
    pub max_uncompressed_bytes: usize,
}

impl BatchLimits {
    /// No limit beyond what fits in memory; for tests and trusted input.
    pub const UNLIMITED: BatchLimits = BatchLimits {
        max_batch_bytes: usize::MAX,
        max_uncompressed_bytes: usize::MAX,
    };
}

/// Why produced batches were refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Kafka's MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds max.message.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    /// A compression bomb, or records that decode to far more memory than
    /// they were sent as.
    #[error(
        "record batch decodes to more than {limit} bytes (max.message.bytes times \
         --max-uncompressed-batch-factor)"
    )]
    UncompressedTooLarge { limit: usize },
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
}

/// Memory a decoded record costs beyond its key and value bytes.
const RECORD_COST: usize = std::mem::size_of::<Record>() + 16;
/// Memory a decoded header costs beyond its key and value bytes.
const HEADER_COST: usize = std::mem::size_of::<Header>() + 16;
/// Bytes of a magic-2 record batch before its records.
const BATCH_HEADER_LEN: usize = 61;
/// Base offset and batch length, which Kafka counts in the batch's size.
const LOG_OVERHEAD: usize = 12;

/// Decodes every record batch in `data` (any of the four codecs), checking
/// each batch's size, CRC and structure and the memory it decodes to.
/// Control batches are not data and are skipped.
pub fn decode_produced(
    mut data: Bytes,
    limits: &BatchLimits,
) -> Result<ProducedRecords, BatchError> {
    let wire_bytes = data.len();
    let mut charged = Charge {
        used: 0,
        limit: limits.max_uncompressed_bytes,
    };
    let mut batches: Vec<ProducedBatch> = Vec::new();
    while !data.is_empty() {
        let length = data
            .get(8..LOG_OVERHEAD)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(format!("{} bytes is not a batch header", data.len())))?;
        let length = usize::try_from(length)
            .map_err(|_| corrupt(format!("negative batch length {length}")))?;
        let size = LOG_OVERHEAD + length;
        if size > limits.max_batch_bytes {
            return Err(BatchError::TooLarge {
                size,
                max: limits.max_batch_bytes,
            });
        }
        if size > data.len() {
            return Err(corrupt(format!(
                "batch of {size} bytes but only {} received",
                data.len()
            )));
        }
        let batch = data.split_to(size);
        if let Some(decoded) = decode_batch(batch, &mut charged)? {
            match (decoded.producer, batches.last_mut()) {
                (None, Some(last)) if last.producer.is_none() => {
                    last.records.extend(decoded.records)
                }
                _ => batches.push(decoded),
            }
        }
    }
    Ok(ProducedRecords {
        batches,
        wire_bytes,
    })
}

fn corrupt(reason: impl Into<String>) -> BatchError {
    BatchError::Corrupt(reason.into())
}

/// Memory used by a partition's decoded batches so far.
struct Charge {
    used: usize,
    limit: usize,
}

impl Charge {
    fn take(&mut self, bytes: usize) -> Result<(), BatchError> {
        match self.used.checked_add(bytes) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => Err(BatchError::UncompressedTooLarge { limit: self.limit }),
        }
    }

    fn left(&self) -> usize {
        self.limit - self.used
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(bytes)
}

/// One batch (log overhead included); `None` for a control batch.
fn decode_batch(batch: Bytes, charged: &mut Charge) -> Result<Option<ProducedBatch>, BatchError> {
    if batch.len() < BATCH_HEADER_LEN {
        return Err(corrupt(format!(
            "batch of {} bytes is too short",
            batch.len()
        )));
    }
    let magic = batch[16] as i8;
    if magic != 2 {
        return Err(corrupt(format!(
            "record batch magic {magic} is not supported"
        )));
    }
    let crc = be_i32(&batch, 17) as u32;
    let actual = crc32c::crc32c(&batch[21..]);
    if crc != actual {
        return Err(corrupt(format!(
            "CRC mismatch: batch says {crc:#010x}, bytes give {actual:#010x}"
        )));
    }
    let attributes = be_i16(&batch, 21);
    let codec = Codec::from_attributes(attributes)
        .ok_or_else(|| corrupt(format!("unknown compression codec {}", attributes & 7)))?;
    let control = attributes & (1 << 5) != 0;
    let transactional = attributes & (1 << 4) != 0;
    let base_timestamp = be_i64(&batch, 27);
    let producer_id = be_i64(&batch, 43);
    let producer_epoch = be_i16(&batch, 51);
    let base_sequence = be_i32(&batch, 53);
    let count = be_i32(&batch, 57);
    let count =
        usize::try_from(count).map_err(|_| corrupt(format!("negative record count {count}")))?;
    if control {
        return Ok(None);
    }
    // Charged before anything is allocated for the records.
    charged.take(count.saturating_mul(RECORD_COST))?;
    let body = batch.slice(BATCH_HEADER_LEN..);
    let body = decompress::decompress(codec, body, charged.left()).map_err(|e| match e {
        DecompressError::OverLimit(OverLimit { .. }) => BatchError::UncompressedTooLarge {
            limit: charged.limit,
        },
        DecompressError::Invalid { .. } => corrupt(e.to_string()),
    })?;
    if codec != Codec::None {
        charged.take(body.len())?;
    }
    let mut records = Vec::with_capacity(count);
    let mut reader = RecordReader { buf: body, at: 0 };
    for index in 0..count {
        let record = reader
            .record(base_timestamp, charged)
            .map_err(|e| match e {
                BatchError::Corrupt(reason) => corrupt(format!("record {index}: {reason}")),
                other => other,
            })?;
        records.push(record);
    }
    if reader.at != reader.buf.len() {
        return Err(corrupt(format!(
            "{} bytes after the batch's {count} records",
            reader.buf.len() - reader.at
        )));
    }
    if records.is_empty() {
        return Ok(None);
    }
    if transactional && producer_id < 0 {
        return Err(corrupt(
            "a transactional batch without a producer id".to_string(),
        ));
    }
    let producer = (producer_id >= 0).then_some(ProducerBatch {
        producer_id,
        producer_epoch,
        base_sequence,
        transactional,
    });
    Ok(Some(ProducedBatch { records, producer }))
}

/// Reads Kafka records (varint-framed) from a batch's decompressed body.
struct RecordReader {
    buf: Bytes,
    at: usize,
}

impl RecordReader {
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.at)
                .ok_or_else(|| corrupt("truncated varint"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zigzag.
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| corrupt(format!("varint {value} out of range")))
    }

    /// A length-prefixed byte string; -1 is null.
    fn bytes(&mut self) -> Result<Option<Bytes>, BatchError> {
        let len = self.varint()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(corrupt(format!("negative length {len}")))
            };
        }
        let end = self
            .at
            .checked_add(len as usize)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| corrupt(format!("{len} bytes announced past the end")))?;
        let bytes = self.buf.slice(self.at..end);
        self.at = end;
        Ok(Some(bytes))
    }

    fn record(&mut self, base_timestamp: i64, charged: &mut Charge) -> Result<Record, BatchError> {
        let length = self.varint()?;
        let start = self.at;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| corrupt(format!("record length {length} past the end")))?;
        let _attributes = *self.buf.get(self.at).ok_or_else(|| corrupt("truncated"))?;
        self.at += 1;
        let timestamp_delta = self.varlong()?;
        let _offset_delta = self.varint()?;
        let key = self.bytes()?;
        let value = self.bytes()?;
        let header_count = self.varint()?;
        let header_count = usize::try_from(header_count)
            .map_err(|_| corrupt(format!("negative header count {header_count}")))?;
        // Each header takes at least two bytes; a count beyond what is left
        // is corrupt, and the memory is charged before it is reserved.
        if header_count > (end.saturating_sub(self.at)) / 2 {
            return Err(corrupt(format!(
                "{header_count} headers do not fit the record"
            )));
        }
        charged.take(header_count * HEADER_COST)?;
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key = self
                .bytes()?
                .ok_or_else(|| corrupt("a header key is null"))?;
            let key = String::from_utf8(key.to_vec())
                .map_err(|_| corrupt("a header key is not UTF-8"))?;
            let value = self.bytes()?;
            headers.push(Header { key, value });
        }
        if self.at != end {
            return Err(corrupt(format!(
                "record says {length} bytes but holds {}",
                self.at - start
            )));
        }
        Ok(Record {
            offset: 0,
            timestamp: base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        })
    }
}

/// Encodes records as one uncompressed record batch (magic 2), marked as
/// carrying append times when the topic stamps records on append.
pub fn encode_batch(records: &[Record], log_append_time: bool) -> anyhow::Result<Bytes> {
    encode_read(records, &[], log_append_time, |_| 0)
}

/// Encodes what a read returned as uncompressed record batches (magic 2):
/// plain records as batches of no producer, each transactional run as its
/// producer's transactional batch, each marker as a control batch, as
/// Kafka's log holds them. Each batch carries the partition leader epoch
/// `epoch_at` gives its records' offsets; a batch never spans two epochs.
pub fn encode_read(
    records: &[Record],
    runs: &[TransactionRun],
    log_append_time: bool,
    epoch_at: impl Fn(i64) -> i32,
) -> anyhow::Result<Bytes> {
    let timestamp_type = if log_append_time {
        TimestampType::LogAppend
    } else {
        TimestampType::Creation
    };
    encode(records, runs, timestamp_type, Compression::None, &epoch_at)
}

/// Encodes records, offsets as given, as one record batch (magic 2) of a
/// producer that is not idempotent, compressed with `compression`.
pub fn encode_records(
    records: &[Record],
    timestamp_type: TimestampType,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    encode(records, &[], timestamp_type, compression, &|_| 0)
}

/// Records, offsets as given, as record batches (magic 2): the encoder
/// starts a new batch where the producer, the transactional or control
/// bit, the partition leader epoch, or offset minus sequence changes.
fn encode(
    records: &[Record],
    runs: &[TransactionRun],
    timestamp_type: TimestampType,
    compression: Compression,
    epoch_at: &dyn Fn(i64) -> i32,
) -> anyhow::Result<Bytes> {
    let Some(first) = records.first() else {
        return Ok(Bytes::new());
    };
    let mut runs = runs.iter().peekable();
    let kafka_records: Vec<KafkaRecord> = records
        .iter()
        .map(|record| {
            while runs.next_if(|r| r.last_offset < record.offset).is_some() {}
            let run = runs
                .peek()
                .filter(|r| r.first_offset <= record.offset && record.offset <= r.last_offset);
            let (producer_id, producer_epoch, transactional, control, sequence) = match run {
                Some(run) => (
                    run.batch.producer_id,
                    run.batch.producer_epoch,
                    true,
                    run.batch.commit.is_some(),
                    (record.offset - run.first_offset) as i32,
                ),
                None => (-1, -1, false, false, (record.offset - first.offset) as i32),
            };
            KafkaRecord {
                transactional,
                control,
                delete_horizon: false,
                partition_leader_epoch: epoch_at(record.offset),
                producer_id,
                producer_epoch,
                timestamp_type,
                offset: record.offset,
                sequence,
                timestamp: record.timestamp,
                key: record.key.clone(),
                value: record.value.clone(),
                headers: record
                    .headers
                    .iter()
                    .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                    .collect(),
            }
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
    use kafka_protocol::records::RecordBatchDecoder;

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
        let decoded = decode_produced(encoded, &BatchLimits::UNLIMITED).expect("decode");
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

    /// Each batch carries its records' partition leader epoch (bytes 12..16
    /// of the batch header, as clients read it), and a batch ends where
    /// the epoch changes.
    #[test]
    fn batches_carry_the_epoch_of_their_offsets() {
        let records: Vec<Record> = (10..16)
            .map(|offset| Record::new(1_000, Bytes::from("v")).with_offset(offset))
            .collect();
        let epoch_at = |offset: i64| if offset < 13 { 4 } else { 7 };
        let encoded = encode_read(&records, &[], false, epoch_at).expect("encode");
        let mut buf = encoded.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode");
        let batches: Vec<(i32, Vec<i64>)> = sets
            .iter()
            .map(|set| {
                (
                    set.records[0].partition_leader_epoch,
                    set.records.iter().map(|r| r.offset).collect(),
                )
            })
            .collect();
        assert_eq!(batches, [(4, vec![10, 11, 12]), (7, vec![13, 14, 15])]);
        assert_eq!(be_i32(&encoded, 12), 4, "the first batch's header");
    }

    /// Key compaction leaves gaps: one batch still carries every record at
    /// its own offset, and its header spans first to last.
    #[test]
    fn batches_over_gaps_keep_every_offset() {
        let records: Vec<Record> = [40, 45, 47, 1_000]
            .iter()
            .map(|&offset| {
                Record::new(1_000 + offset, Bytes::from("v"))
                    .with_key(Bytes::from("k"))
                    .with_offset(offset)
            })
            .collect();
        for compression in [Compression::None, Compression::Lz4] {
            let encoded =
                encode_records(&records, TimestampType::Creation, compression).expect("encode");
            // Base offset and last offset delta, as a client reads them.
            assert_eq!(be_i64(&encoded, 0), 40);
            assert_eq!(be_i32(&encoded, 23), 960);
            let mut buf = encoded;
            let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode");
            assert_eq!(sets.len(), 1);
            let offsets: Vec<i64> = sets[0].records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, [40, 45, 47, 1_000]);
        }
    }

    #[test]
    fn corrupt_batches_are_rejected() {
        let encoded = encode_batch(&sample(), false).expect("encode").to_vec();
        for at in [20, encoded.len() / 2, encoded.len() - 1] {
            let mut damaged = encoded.clone();
            damaged[at] ^= 0x40;
            assert!(
                decode_produced(Bytes::from(damaged), &BatchLimits::UNLIMITED).is_err(),
                "byte {at}"
            );
        }
        for len in 0..encoded.len() {
            let _ = decode_produced(
                Bytes::copy_from_slice(&encoded[..len]),
                &BatchLimits::UNLIMITED,
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn random_batches_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = decode_produced(Bytes::from(data), &BatchLimits::UNLIMITED);
        }

        /// A valid batch with random bytes flipped: an error or records,
        /// never a panic.
        #[test]
        fn damaged_batches_never_panic(at in 0usize..400, mask in 1u8..=255) {
            let mut bytes = encode_batch(&sample(), false).expect("encode").to_vec();
            let at = at % bytes.len();
            bytes[at] ^= mask;
            let _ = decode_produced(Bytes::from(bytes), &BatchLimits::UNLIMITED);
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
            let decoded = decode_produced(batch, &BatchLimits::UNLIMITED).expect("decode");
            let records = &decoded.batches[0].records;
            assert_eq!(records.len(), 3, "{compression:?}");
            assert_eq!(records[0].headers.len(), 2);
            assert_eq!(records[2].value, None);
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn values(count: usize, size: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record::new(1_000 + i as i64, vec![b'x'; size]).with_offset(i as i64))
            .collect()
    }

    fn limits(max_batch_bytes: usize, max_uncompressed_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_batch_bytes,
            max_uncompressed_bytes,
        }
    }

    #[test]
    fn the_batch_as_sent_is_held_to_max_message_bytes() {
        // Five 400 KB records: 2 MB as sent, over a 1 MiB limit.
        let batch = encode_records(
            &values(5, 400_000),
            TimestampType::Creation,
            Compression::None,
        )
        .expect("encode");
        let error =
            decode_produced(batch.clone(), &limits(1_048_588, 64 << 20)).expect_err("too large");
        assert!(
            matches!(error, BatchError::TooLarge { size, max: 1_048_588 } if size == batch.len()),
            "{error}"
        );
        assert!(decode_produced(batch.clone(), &limits(batch.len(), 64 << 20)).is_ok());
    }

    #[test]
    fn a_compressed_batch_counts_its_compressed_size() {
        // 3 MB of zeros, gzip-compressed to a few KB: Kafka accepts it
        // under a 1 MiB max.message.bytes, and so does StreamHouse.
        let batch = encode_records(
            &values(1, 3_000_000),
            TimestampType::Creation,
            Compression::Gzip,
        )
        .expect("encode");
        assert!(batch.len() < 16 << 10, "{}", batch.len());
        let decoded = decode_produced(batch, &limits(1_048_588, 8 * 1_048_588)).expect("accepted");
        assert_eq!(
            decoded.batches[0].records[0]
                .value
                .as_ref()
                .map(|v| v.len()),
            Some(3_000_000)
        );
    }

    #[test]
    fn compression_bombs_are_refused_in_every_codec() {
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            // 16 MiB of one byte: snappy, the weakest codec, still sends it
            // in under 1 MiB.
            let batch = encode_records(&values(1, 16 << 20), TimestampType::Creation, compression)
                .expect("encode");
            assert!(batch.len() < 1 << 20, "{compression:?}: {}", batch.len());
            let error = decode_produced(batch, &limits(1 << 20, 8 << 20)).expect_err("a bomb");
            assert!(
                matches!(error, BatchError::UncompressedTooLarge { limit } if limit == 8 << 20),
                "{compression:?}: {error}"
            );
        }
    }

    #[test]
    fn many_tiny_records_are_charged_for_their_memory() {
        // 100,000 empty records: ~700 KB compressed to a few KB, but
        // decoded they would take megabytes.
        let records: Vec<Record> = (0..100_000)
            .map(|i| Record::new(0, Bytes::new()).with_offset(i))
            .collect();
        let batch =
            encode_records(&records, TimestampType::Creation, Compression::Zstd).expect("encode");
        assert!(matches!(
            decode_produced(batch.clone(), &limits(1 << 20, 4 << 20)),
            Err(BatchError::UncompressedTooLarge { .. })
        ));
        assert_eq!(
            decode_produced(batch, &limits(1 << 20, 64 << 20))
                .expect("fits")
                .record_count(),
            100_000
        );
    }

    #[test]
    fn many_headers_are_charged_for_their_memory() {
        let mut record = Record::new(0, Bytes::new());
        for _ in 0..50_000 {
            record = record.with_header("", None);
        }
        let batch =
            encode_records(&[record], TimestampType::Creation, Compression::Gzip).expect("encode");
        assert!(matches!(
            decode_produced(batch.clone(), &limits(1 << 20, 1 << 20)),
            Err(BatchError::UncompressedTooLarge { .. })
        ));
        let decoded = decode_produced(batch, &limits(1 << 20, 64 << 20)).expect("fits");
        assert_eq!(decoded.batches[0].records[0].headers.len(), 50_000);
    }

    #[test]
    fn a_claimed_record_count_cannot_reserve_memory() {
        let mut batch = encode_records(&values(1, 10), TimestampType::Creation, Compression::None)
            .expect("encode")
            .to_vec();
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            decode_produced(Bytes::from(batch), &limits(1 << 20, 8 << 20)),
            Err(BatchError::UncompressedTooLarge { .. })
        ));
    }

    #[test]
    fn decoding_matches_the_protocol_crate_for_every_codec() {
        let records: Vec<Record> = (0..50)
            .map(|i| {
                Record::new(1_700_000_000_000 + i * 7, vec![i as u8; i as usize * 3])
                    .with_key(format!("k{i}").into_bytes())
                    .with_header("trace", Some(Bytes::from(format!("t{i}"))))
                    .with_header("empty", None)
                    .with_offset(i)
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch =
                encode_records(&records, TimestampType::Creation, compression).expect("encode");
            let decoded = decode_produced(batch, &limits(1 << 20, 8 << 20)).expect("decode");
            let expected: Vec<Record> = records.iter().map(|r| r.clone().with_offset(0)).collect();
            assert_eq!(decoded.batches.len(), 1, "{compression:?}");
            assert_eq!(decoded.batches[0].records, expected, "{compression:?}");
        }
    }
}
