//! Sets of partitions named by topic id, as the consumer protocol names
//! them, and their stored and wire forms.

use std::collections::{BTreeMap, BTreeSet};

use streamhouse_storage::AssignedPartitions;
use uuid::Uuid;

/// Partitions by topic id. A topic is present only with partitions.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// How many partitions `assignment` holds.
pub(crate) fn count(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

/// Whether every partition of `part` is in `whole`.
pub(crate) fn is_subset(part: &Assignment, whole: &Assignment) -> bool {
    part.iter().all(|(topic, partitions)| {
        whole
            .get(topic)
            .is_some_and(|held| partitions.is_subset(held))
    })
}

/// Whether the two share a partition.
pub(crate) fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter().any(|(topic, partitions)| {
        b.get(topic)
            .is_some_and(|other| !partitions.is_disjoint(other))
    })
}

/// Adds one partition.
pub(crate) fn insert(assignment: &mut Assignment, topic: Uuid, partition: i32) {
    assignment.entry(topic).or_default().insert(partition);
}

/// Removes one partition, dropping the topic once it has none.
pub(crate) fn remove(assignment: &mut Assignment, topic: Uuid, partition: i32) {
    if let Some(partitions) = assignment.get_mut(&topic) {
        partitions.remove(&partition);
        if partitions.is_empty() {
            assignment.remove(&topic);
        }
    }
}

/// Every (topic, partition) pair, in order.
pub(crate) fn pairs(assignment: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    assignment
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
}

/// A set built from pairs; empty topics never appear.
#[cfg(test)]
pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (Uuid, i32)>) -> Assignment {
    let mut assignment = Assignment::new();
    for (topic, partition) in pairs {
        insert(&mut assignment, topic, partition);
    }
    assignment
}

/// The stored form.
pub(crate) fn to_records(assignment: &Assignment) -> Vec<AssignedPartitions> {
    assignment
        .iter()
        .map(|(topic, partitions)| AssignedPartitions {
            topic_id: topic.to_string(),
            partitions: partitions.iter().copied().collect(),
        })
        .collect()
}

/// From the stored form; an unreadable topic id is named in the error.
pub(crate) fn from_records(records: &[AssignedPartitions]) -> Result<Assignment, String> {
    let mut assignment = Assignment::new();
    for record in records {
        let topic = Uuid::parse_str(&record.topic_id)
            .map_err(|e| format!("topic id {:?}: {e}", record.topic_id))?;
        for &partition in &record.partitions {
            insert(&mut assignment, topic, partition);
        }
    }
    Ok(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn subsets_and_overlaps() {
        let whole = from_pairs([(topic(1), 0), (topic(1), 1), (topic(2), 0)]);
        assert!(is_subset(&from_pairs([(topic(1), 1)]), &whole));
        assert!(is_subset(&Assignment::new(), &whole));
        assert!(!is_subset(&from_pairs([(topic(2), 1)]), &whole));
        assert!(!is_subset(&from_pairs([(topic(3), 0)]), &whole));
        assert!(intersects(
            &from_pairs([(topic(2), 0), (topic(3), 0)]),
            &whole
        ));
        assert!(!intersects(&from_pairs([(topic(1), 2)]), &whole));
        assert_eq!(count(&whole), 3);
    }

    #[test]
    fn removing_the_last_partition_drops_the_topic() {
        let mut set = from_pairs([(topic(1), 0)]);
        remove(&mut set, topic(1), 0);
        assert!(set.is_empty());
        remove(&mut set, topic(9), 0);
        assert!(set.is_empty());
    }

    #[test]
    fn the_stored_form_round_trips_and_bad_ids_are_named() {
        let set = from_pairs([(topic(1), 3), (topic(1), 0), (topic(2), 7)]);
        assert_eq!(from_records(&to_records(&set)), Ok(set));
        let bad = [AssignedPartitions {
            topic_id: "not-a-uuid".into(),
            partitions: vec![0],
        }];
        assert!(from_records(&bad).unwrap_err().contains("not-a-uuid"));
    }
}
