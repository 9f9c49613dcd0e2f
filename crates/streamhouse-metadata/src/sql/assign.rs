//! Offset assignment for one flush commit, and idempotent-producer checks.
//!
//! Pure logic: the backends load the current high watermarks and producer
//! state inside the commit transaction (with the partitions locked), call
//! [`assign_offsets`], and write back what it decided.
//!
//! Idempotent producers follow Kafka's rules per (producer id, partition):
//! a batch from an older epoch is fenced; a batch from a newer epoch must
//! start at sequence 0; a batch that repeats one of the last five stored
//! batches is a duplicate and gets that batch's offsets back; otherwise its
//! first sequence must follow the last stored one.

use std::collections::{BTreeMap, HashMap};

use crate::types::{PendingSegment, ProducerBatch, SegmentOutcome};

/// How many batches per producer and partition are kept to recognise
/// retries, as Kafka does.
pub(crate) const KEPT_BATCHES: usize = 5;

/// A stored batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub(crate) producer_epoch: i16,
    pub(crate) first_sequence: i32,
    pub(crate) last_sequence: i32,
    pub(crate) base_offset: i64,
    pub(crate) end_offset: i64,
}

/// (producer id, topic, partition)
pub(crate) type ProducerKey = (i64, String, i32);

/// Recent batches per producer and partition, oldest first.
pub(crate) type ProducerState = HashMap<ProducerKey, Vec<BatchMeta>>;

/// The sequence after `sequence`, wrapping like Kafka's.
pub(crate) fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// The last sequence of a batch of `count` records starting at `first`.
pub(crate) fn last_sequence(first: i32, count: i64) -> i32 {
    let span = i64::from(first) + count - 1;
    let wrap = i64::from(i32::MAX) + 1;
    (span % wrap) as i32
}

enum Check {
    Accept,
    Duplicate(BatchMeta),
    OutOfOrder,
    Fenced,
}

fn check(history: &[BatchMeta], batch: &ProducerBatch, last: i32) -> Check {
    let Some(latest) = history.last() else {
        return if batch.base_sequence == 0 {
            Check::Accept
        } else {
            Check::OutOfOrder
        };
    };
    if batch.producer_epoch < latest.producer_epoch {
        return Check::Fenced;
    }
    if batch.producer_epoch > latest.producer_epoch {
        return if batch.base_sequence == 0 {
            Check::Accept
        } else {
            Check::OutOfOrder
        };
    }
    if let Some(stored) = history.iter().find(|b| {
        b.producer_epoch == batch.producer_epoch
            && b.first_sequence == batch.base_sequence
            && b.last_sequence == last
    }) {
        return Check::Duplicate(*stored);
    }
    if batch.base_sequence == next_sequence(latest.last_sequence) {
        Check::Accept
    } else {
        Check::OutOfOrder
    }
}

/// What a commit decided.
pub(crate) struct Assignment {
    pub(crate) outcomes: Vec<SegmentOutcome>,
    /// New high watermark per partition, sorted by (topic, partition).
    pub(crate) watermarks: Vec<(String, i32, i64)>,
    /// Indexes of the segments that get a new segment row.
    pub(crate) inserted: Vec<usize>,
    /// Producer batches to store.
    pub(crate) batches: Vec<(ProducerKey, BatchMeta)>,
}

/// A partition's row as a commit found it, locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockedRow {
    pub(crate) high_watermark: i64,
    pub(crate) leader_epoch: i32,
}

/// Assigns offsets to the segments of a flush.
///
/// `current` holds the high watermark and leader epoch of every partition
/// that exists (those of segments committed before included);
/// `committed_before` the offsets of segments a previous attempt of this
/// same commit already stored (by index); `producers` the stored batches of
/// every producer and partition involved.
pub(crate) fn assign_offsets(
    segments: &[PendingSegment],
    current: &BTreeMap<(String, i32), LockedRow>,
    committed_before: &HashMap<usize, (i64, i64)>,
    refused: &HashMap<usize, SegmentOutcome>,
    mut producers: ProducerState,
) -> Assignment {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut inserted = Vec::new();
    let mut batches = Vec::new();
    let mut outcomes = Vec::with_capacity(segments.len());
    for (index, segment) in segments.iter().enumerate() {
        let key = (segment.topic.clone(), segment.partition);
        if let Some(&(base_offset, end_offset)) = committed_before.get(&index) {
            // Epochs only grow: the current one is no older than the one
            // the earlier attempt committed in.
            outcomes.push(SegmentOutcome::Committed {
                base_offset,
                end_offset,
                leader_epoch: current.get(&key).map_or(0, |row| row.leader_epoch),
            });
            continue;
        }
        let Some(&LockedRow {
            high_watermark,
            leader_epoch,
        }) = current.get(&key)
        else {
            outcomes.push(SegmentOutcome::PartitionNotFound);
            continue;
        };
        let producer = segment.producer.map(|batch| {
            let last = last_sequence(batch.base_sequence, segment.record_count);
            let producer_key = (batch.producer_id, segment.topic.clone(), segment.partition);
            let history = producers.entry(producer_key.clone()).or_default();
            (batch, last, producer_key, check(history, &batch, last))
        });
        match producer {
            Some((_, _, _, Check::Duplicate(stored))) => {
                outcomes.push(SegmentOutcome::Duplicate {
                    base_offset: stored.base_offset,
                    end_offset: stored.end_offset,
                });
                continue;
            }
            Some((_, _, _, Check::OutOfOrder)) => {
                outcomes.push(SegmentOutcome::OutOfOrderSequence);
                continue;
            }
            Some((_, _, _, Check::Fenced)) => {
                outcomes.push(SegmentOutcome::ProducerFenced);
                continue;
            }
            _ => {}
        }
        // A retry of a stored batch was answered above, whatever its
        // transaction has become since.
        if let Some(outcome) = refused.get(&index) {
            outcomes.push(*outcome);
            continue;
        }
        let base_offset = *next.entry(key.clone()).or_insert(high_watermark);
        let end_offset = base_offset + segment.record_count - 1;
        next.insert(key, end_offset + 1);
        if let Some((batch, last, producer_key, Check::Accept)) = producer {
            let meta = BatchMeta {
                producer_epoch: batch.producer_epoch,
                first_sequence: batch.base_sequence,
                last_sequence: last,
                base_offset,
                end_offset,
            };
            let history = producers.entry(producer_key.clone()).or_default();
            history.push(meta);
            if history.len() > KEPT_BATCHES {
                history.remove(0);
            }
            batches.push((producer_key, meta));
        }
        inserted.push(index);
        outcomes.push(SegmentOutcome::Committed {
            base_offset,
            end_offset,
            leader_epoch,
        });
    }
    Assignment {
        outcomes,
        watermarks: next.into_iter().map(|((t, p), hw)| (t, p, hw)).collect(),
        inserted,
        batches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(partition: i32, records: i64, producer: Option<(i64, i16, i32)>) -> PendingSegment {
        PendingSegment {
            topic: "t".into(),
            partition,
            record_count: records,
            size_bytes: 0,
            byte_offset: 0,
            byte_length: 0,
            min_timestamp: 0,
            max_timestamp: 0,
            producer: producer.map(
                |(producer_id, producer_epoch, base_sequence)| ProducerBatch {
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    transactional: false,
                },
            ),
            marker: None,
        }
    }

    fn partitions() -> BTreeMap<(String, i32), LockedRow> {
        let row = |high_watermark, leader_epoch| LockedRow {
            high_watermark,
            leader_epoch,
        };
        BTreeMap::from([
            (("t".to_string(), 0), row(100, 3)),
            (("t".to_string(), 1), row(0, 0)),
        ])
    }

    fn assign(segments: &[PendingSegment], producers: ProducerState) -> Assignment {
        assign_offsets(
            segments,
            &partitions(),
            &HashMap::new(),
            &HashMap::new(),
            producers,
        )
    }

    fn history(batches: &[(i16, i32, i32, i64, i64)]) -> ProducerState {
        HashMap::from([(
            (7, "t".to_string(), 0),
            batches
                .iter()
                .map(
                    |&(producer_epoch, first_sequence, last_sequence, base_offset, end_offset)| {
                        BatchMeta {
                            producer_epoch,
                            first_sequence,
                            last_sequence,
                            base_offset,
                            end_offset,
                        }
                    },
                )
                .collect(),
        )])
    }

    #[test]
    fn plain_segments_get_consecutive_offsets() {
        let a = assign(
            &[
                segment(0, 3, None),
                segment(1, 2, None),
                segment(0, 1, None),
            ],
            HashMap::new(),
        );
        assert_eq!(
            a.outcomes,
            [
                SegmentOutcome::Committed {
                    base_offset: 100,
                    end_offset: 102,
                    leader_epoch: 3
                },
                SegmentOutcome::Committed {
                    base_offset: 0,
                    end_offset: 1,
                    leader_epoch: 0
                },
                SegmentOutcome::Committed {
                    base_offset: 103,
                    end_offset: 103,
                    leader_epoch: 3
                },
            ]
        );
        assert_eq!(a.watermarks, [("t".into(), 0, 104), ("t".into(), 1, 2)]);
        assert_eq!(a.inserted, [0, 1, 2]);
        assert!(a.batches.is_empty());
    }

    #[test]
    fn a_new_producer_starts_at_sequence_zero() {
        let a = assign(
            &[
                segment(0, 5, Some((7, 0, 0))),
                segment(0, 2, Some((7, 0, 5))),
            ],
            HashMap::new(),
        );
        assert_eq!(
            a.outcomes[0],
            SegmentOutcome::Committed {
                base_offset: 100,
                end_offset: 104,
                leader_epoch: 3
            }
        );
        assert_eq!(
            a.outcomes[1],
            SegmentOutcome::Committed {
                base_offset: 105,
                end_offset: 106,
                leader_epoch: 3
            }
        );
        assert_eq!(a.batches.len(), 2);
        assert_eq!(
            (a.batches[1].1.first_sequence, a.batches[1].1.last_sequence),
            (5, 6)
        );
        let late = assign(&[segment(0, 1, Some((8, 0, 3)))], HashMap::new());
        assert_eq!(late.outcomes[0], SegmentOutcome::OutOfOrderSequence);
        assert!(
            late.watermarks.is_empty(),
            "rejected batches take no offsets"
        );
    }

    #[test]
    fn retries_of_stored_batches_are_duplicates_with_their_offsets() {
        let state = history(&[(0, 0, 4, 50, 54), (0, 5, 9, 60, 64)]);
        let a = assign(
            &[
                segment(0, 5, Some((7, 0, 0))),
                segment(0, 5, Some((7, 0, 5))),
                segment(0, 1, Some((7, 0, 10))),
            ],
            state,
        );
        assert_eq!(
            a.outcomes,
            [
                SegmentOutcome::Duplicate {
                    base_offset: 50,
                    end_offset: 54
                },
                SegmentOutcome::Duplicate {
                    base_offset: 60,
                    end_offset: 64
                },
                SegmentOutcome::Committed {
                    base_offset: 100,
                    end_offset: 100,
                    leader_epoch: 3
                },
            ]
        );
        assert_eq!(a.inserted, [2]);
    }

    #[test]
    fn gaps_and_old_epochs_are_refused() {
        let gap = assign(
            &[segment(0, 1, Some((7, 2, 11)))],
            history(&[(2, 0, 9, 0, 9)]),
        );
        assert_eq!(gap.outcomes[0], SegmentOutcome::OutOfOrderSequence);
        let fenced = assign(
            &[segment(0, 1, Some((7, 1, 10)))],
            history(&[(2, 0, 9, 0, 9)]),
        );
        assert_eq!(fenced.outcomes[0], SegmentOutcome::ProducerFenced);
        let bumped = assign(
            &[segment(0, 1, Some((7, 3, 0)))],
            history(&[(2, 0, 9, 0, 9)]),
        );
        assert!(
            matches!(bumped.outcomes[0], SegmentOutcome::Committed { .. }),
            "a new epoch restarts at 0"
        );
        let bumped_late = assign(
            &[segment(0, 1, Some((7, 3, 4)))],
            history(&[(2, 0, 9, 0, 9)]),
        );
        assert_eq!(bumped_late.outcomes[0], SegmentOutcome::OutOfOrderSequence);
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 0);
        assert_eq!(last_sequence(5, 1), 5);
        let state = history(&[(0, i32::MAX - 4, i32::MAX, 0, 4)]);
        let a = assign(&[segment(0, 3, Some((7, 0, 0)))], state);
        assert!(matches!(a.outcomes[0], SegmentOutcome::Committed { .. }));
    }

    #[test]
    fn only_the_last_five_batches_are_kept() {
        let segments: Vec<_> = (0..8).map(|i| segment(0, 1, Some((7, 0, i)))).collect();
        let a = assign(&segments, HashMap::new());
        assert_eq!(
            a.batches.len(),
            8,
            "every accepted batch is stored; the store trims"
        );
        assert!(
            a.outcomes
                .iter()
                .all(|o| matches!(o, SegmentOutcome::Committed { .. }))
        );
    }

    #[test]
    fn segments_committed_by_an_earlier_attempt_keep_their_offsets() {
        let before = HashMap::from([(0, (90, 92))]);
        let a = assign_offsets(
            &[segment(0, 3, None), segment(0, 1, None)],
            &partitions(),
            &before,
            &HashMap::new(),
            HashMap::new(),
        );
        assert_eq!(
            a.outcomes[0],
            SegmentOutcome::Committed {
                base_offset: 90,
                end_offset: 92,
                leader_epoch: 3
            }
        );
        assert_eq!(
            a.outcomes[1],
            SegmentOutcome::Committed {
                base_offset: 100,
                end_offset: 100,
                leader_epoch: 3
            }
        );
        assert_eq!(a.inserted, [1]);
    }

    #[test]
    fn unknown_partitions_are_reported() {
        let a = assign(&[segment(9, 1, None)], HashMap::new());
        assert_eq!(a.outcomes[0], SegmentOutcome::PartitionNotFound);
        assert!(a.inserted.is_empty());
    }
}
