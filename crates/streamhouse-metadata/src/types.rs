use streamhouse_core::TopicConfig;

/// A request to create a topic.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i64,
    pub config: TopicConfig,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i64) -> Self {
        Self {
            name: name.into(),
            partitions,
            config: TopicConfig::default(),
        }
    }

    pub fn with_config(mut self, config: TopicConfig) -> Self {
        self.config = config;
        self
    }
}

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    /// A UUID that changes when a topic is deleted and created again.
    pub topic_id: String,
    pub partition_count: i32,
    pub config: TopicConfig,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// The readable range of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// The next offset to be assigned; readers see offsets below it.
    pub high_watermark: i64,
    /// The first offset that can still be read.
    pub log_start_offset: i64,
    /// The first offset of the partition's oldest open transaction, or the
    /// high watermark when none is open: read_committed readers see
    /// offsets below it.
    pub last_stable_offset: i64,
    /// The partition's leader epoch, read with the high watermark: every
    /// offset below `high_watermark` was written in this epoch or an
    /// earlier one.
    pub leader_epoch: i32,
}

/// A topic with the state of each of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub topic: Topic,
    pub partitions: Vec<PartitionInfo>,
}

/// One stored run of consecutive offsets of a partition: a row of the
/// `segments` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    /// Offset of the last record (inclusive).
    pub end_offset: i64,
    pub record_count: i64,
    /// Uncompressed size of the records' encodings, for accounting.
    pub size_bytes: i64,
    pub bucket: String,
    pub key: String,
    /// Where the segment sits inside its object.
    pub byte_offset: i64,
    pub byte_length: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub created_at: i64,
    /// Set on rows written by key compaction: when the tombstones they hold
    /// were first compacted (see [`ReplacementSegment::cleaned_at`]).
    /// Such rows may hold fewer records than their range spans.
    pub cleaned_at: Option<i64>,
    /// Records with a null value in a key-compacted row (0 otherwise).
    pub tombstones: i64,
    /// Set on a row that is one transactional batch or one transaction
    /// marker: who wrote it, and for a marker which one it is.
    pub transaction: Option<TransactionBatch>,
}

/// A transactional producer's batch or marker, as a segment row records
/// it: the Kafka batch a reader builds of it carries these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// For a marker (a control batch): `Some(true)` for COMMIT,
    /// `Some(false)` for ABORT. `None` for transactional records.
    pub commit: Option<bool>,
}

impl SegmentInfo {
    pub fn contains(&self, offset: i64) -> bool {
        self.base_offset <= offset && offset <= self.end_offset
    }
}

/// The idempotent producer that wrote a segment's records, as one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence number of the first record.
    pub base_sequence: i32,
    /// A transactional producer's batch: accepted only for a partition
    /// added to the producer's open transaction, at its current epoch.
    pub transactional: bool,
}

/// One partition's segment inside a flushed object, not yet committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSegment {
    pub topic: String,
    pub partition: i32,
    pub record_count: i64,
    pub size_bytes: i64,
    pub byte_offset: i64,
    pub byte_length: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Set when the segment is exactly one batch of an idempotent
    /// producer, whose sequence the commit checks.
    pub producer: Option<ProducerBatch>,
    /// Set when the segment is a transaction marker (one control record)
    /// written by the transaction's coordinator: the commit closes the
    /// producer's open transaction in the partition at its offset.
    pub marker: Option<TransactionBatch>,
}

impl PendingSegment {
    /// The transactional batch or marker this segment is, as its row will
    /// record it.
    pub fn transaction(&self) -> Option<TransactionBatch> {
        self.marker.or_else(|| {
            self.producer
                .filter(|p| p.transactional)
                .map(|p| TransactionBatch {
                    producer_id: p.producer_id,
                    producer_epoch: p.producer_epoch,
                    commit: None,
                })
        })
    }
}

/// Everything one flush makes visible, committed in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushCommit {
    pub bucket: String,
    pub key: String,
    /// Milliseconds since the Unix epoch, stamped on every segment row.
    pub created_at: i64,
    pub segments: Vec<PendingSegment>,
}

/// What happened to one [`PendingSegment`] of a committed flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentOutcome {
    /// Offsets `base_offset..=end_offset` were assigned and are visible;
    /// the partition's leader epoch was `leader_epoch` at the commit (or,
    /// for a retried commit found stored, is now), so every offset up to
    /// `end_offset` belongs to this epoch or an earlier one.
    Committed {
        base_offset: i64,
        end_offset: i64,
        leader_epoch: i32,
    },
    /// The partition does not exist (for example, its topic was deleted
    /// while the flush was uploading). Nothing was assigned.
    PartitionNotFound,
    /// The producer batch was committed before (a retry): these are its
    /// original offsets, and nothing new was stored.
    Duplicate { base_offset: i64, end_offset: i64 },
    /// The producer batch does not follow the producer's last sequence.
    OutOfOrderSequence,
    /// The producer batch carries an epoch older than the producer's
    /// current one.
    ProducerFenced,
    /// A transactional batch the producer's transaction does not allow:
    /// the reason is Kafka's error for it.
    TransactionRefused(crate::TransactionRefusal),
}

/// An agent of the cluster, as registered in the metadata store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub agent_id: String,
    /// The agent's Kafka broker id.
    pub node_id: i32,
    /// Where Kafka clients reach it.
    pub host: String,
    /// The port of its first listener.
    pub port: i32,
    pub zone: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub last_heartbeat: i64,
    /// Every Kafka listener of the agent, in the order configured; empty
    /// for an agent registered before listeners were recorded, whose only
    /// listener is PLAINTEXT on `port`.
    pub listeners: Vec<AgentListener>,
}

/// One Kafka listener of an agent: its security protocol (Kafka's name,
/// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentListener {
    pub protocol: String,
    pub port: i32,
}

impl AgentListener {
    /// `PROTOCOL:PORT,…`, as the agents table stores them.
    pub fn encode_list(listeners: &[AgentListener]) -> String {
        listeners
            .iter()
            .map(|l| format!("{}:{}", l.protocol, l.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads [`AgentListener::encode_list`]'s form; malformed entries
    /// are skipped.
    pub fn decode_list(text: &str) -> Vec<AgentListener> {
        text.split(',')
            .filter_map(|entry| {
                let (protocol, port) = entry.trim().rsplit_once(':')?;
                let port = port.parse().ok()?;
                (!protocol.is_empty()).then(|| AgentListener {
                    protocol: protocol.to_string(),
                    port,
                })
            })
            .collect()
    }
}

/// New high watermarks of partitions, from one commit: what a waiting
/// reader on any agent needs to wake up.
pub type CommitNotice = std::sync::Arc<[WatermarkNotice]>;

/// One partition's range after a commit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatermarkNotice {
    pub topic: String,
    pub partition: i32,
    pub high_watermark: i64,
    /// The partition's last stable offset after the commit; `None` when
    /// the commit opened or closed a transaction there (read it again).
    pub last_stable_offset: Option<i64>,
    /// The partition's leader epoch at the commit; `None` from an agent of
    /// an earlier version (read the partition again).
    pub leader_epoch: Option<i32>,
}

/// One consumer-group offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    /// The leader epoch of the record before `offset`, as the client sent
    /// it (Kafka's `committed_leader_epoch`); -1 when unknown.
    pub leader_epoch: i32,
}

/// A committed consumer-group offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    pub committed_at: i64,
    /// The leader epoch committed with the offset; -1 when unknown.
    pub leader_epoch: i32,
}

/// A run of consecutive segment rows of a partition rewritten into one
/// object, swapped in by [`crate::SegmentLog::replace_segments`]. The
/// object holds one or more segments back to back (so a reader fetches and
/// caches a few MiB at a time, not the whole object); each becomes a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReplacement {
    pub topic: String,
    pub partition: i32,
    /// The run replaced: every row with `base_offset >= base_offset` and
    /// `end_offset <= end_offset`; the new segments hold exactly these
    /// offsets.
    pub base_offset: i64,
    pub end_offset: i64,
    /// How many rows the run had when it was read. If it has a different
    /// number now (retention or another compaction got there first),
    /// nothing changes.
    pub replaced_rows: i64,
    pub bucket: String,
    pub key: String,
    /// The object's segments in offset order: the first starts at
    /// `base_offset`, each next one right after the previous one's end, and
    /// the last ends at `end_offset`.
    pub segments: Vec<ReplacementSegment>,
    /// Milliseconds since the Unix epoch: the new rows' `created_at`, and
    /// when the replaced rows' objects lost these references.
    pub created_at: i64,
}

/// One segment of a [`SegmentReplacement`]'s object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacementSegment {
    pub base_offset: i64,
    pub end_offset: i64,
    pub record_count: i64,
    pub size_bytes: i64,
    pub byte_offset: i64,
    pub byte_length: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// For a segment written by key compaction: when the tombstones it
    /// holds were first compacted, the time their `delete.retention.ms`
    /// counts from. `None` for a segment that holds every record of its
    /// range (size-based compaction).
    pub cleaned_at: Option<i64>,
    /// Records with a null value, for a key-compacted segment.
    pub tombstones: i64,
}

impl SegmentReplacement {
    /// Why this replacement is malformed, if it is: no segments, segments
    /// that do not tile `base_offset..=end_offset`, empty or negative
    /// ranges, or a segment with fewer records than its range spans that
    /// was not written by key compaction.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.replaced_rows < 1 {
            return Some(format!("{} rows replaced", self.replaced_rows));
        }
        let (Some(first), Some(last)) = (self.segments.first(), self.segments.last()) else {
            return Some("no segments".to_string());
        };
        if first.base_offset != self.base_offset || last.end_offset != self.end_offset {
            return Some(format!(
                "segments cover {}..={}, the run is {}..={}",
                first.base_offset, last.end_offset, self.base_offset, self.end_offset
            ));
        }
        let mut expected = self.base_offset;
        for segment in &self.segments {
            let span = segment.end_offset - segment.base_offset + 1;
            let counted = if segment.cleaned_at.is_some() {
                (0..=span).contains(&segment.record_count)
            } else {
                segment.record_count == span
            };
            if segment.base_offset != expected
                || segment.end_offset < segment.base_offset
                || !counted
                || segment.byte_offset < 0
                || segment.byte_length < 1
            {
                return Some(format!(
                    "segment {}..={} ({} records, bytes {}+{}) after offset {}",
                    segment.base_offset,
                    segment.end_offset,
                    segment.record_count,
                    segment.byte_offset,
                    segment.byte_length,
                    expected - 1
                ));
            }
            expected = segment.end_offset + 1;
        }
        None
    }
}

/// Counts over the segment table, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub segment_rows: i64,
    /// Distinct objects referenced by segment rows.
    pub objects: i64,
    /// Bytes of object data referenced by segment rows.
    pub bytes: i64,
    /// The most segment rows any one partition has.
    pub max_rows_per_partition: i64,
    /// Objects that lost their last reference and await garbage collection.
    pub tombstones: i64,
}

/// One stored SCRAM credential, without its keys: what listing users shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub user: String,
    pub mechanism: streamhouse_core::security::ScramMechanism,
    pub iterations: u32,
}

/// InitProducerId's answer for a `transactional.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitTransaction {
    /// The producer id and epoch to use.
    Ready {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// A transaction of the previous epoch was open: it is now fenced and
    /// prepared to abort, and must be completed before asking again.
    Aborting(crate::TransactionInfo),
}

/// A producer whose state a partition keeps (Kafka's DescribeProducers):
/// its epoch and the last sequence and timestamp of its newest batch, and
/// the first offset of its open transaction in the partition, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    /// The newest batch's largest timestamp, -1 once its segment is gone.
    pub last_timestamp: i64,
    pub current_txn_start_offset: Option<i64>,
}

/// An aborted transaction's records in a partition: those of
/// `producer_id` from `first_offset` up to its ABORT marker at
/// `marker_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
    pub marker_offset: i64,
}

/// Where a partition is led now, as one agent sees it: an input of
/// [`crate::LeaderEpochs::move_leaders`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaderMove {
    pub topic: String,
    pub partition: i32,
    /// The agent id of the partition's new leader.
    pub leader: String,
}

/// A leader epoch and the offset at which it started (the high watermark
/// when it was bumped): an entry of Kafka's leader epoch cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

/// A partition whose leader epoch changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpedEpoch {
    pub topic: String,
    pub partition: i32,
    /// The agent id recorded as its leader.
    pub leader: String,
    pub epoch: EpochStart,
}

/// A partition's leader epoch and the leader recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEpoch {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    /// The agent id of the leader last recorded; `None` while no agent has
    /// recorded one.
    pub leader: Option<String>,
}

/// Every partition that has a leader recorded or an epoch above 0, and
/// the version of the leader epochs they were read at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochTable {
    /// What [`crate::LeaderEpochs::leader_epochs_version`] was before the
    /// epochs were read.
    pub version: i64,
    /// Ordered by topic and partition.
    pub epochs: Vec<PartitionEpoch>,
}
