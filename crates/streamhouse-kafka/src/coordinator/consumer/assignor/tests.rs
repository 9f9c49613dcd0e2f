use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use super::super::assignment::{self, Assignment};
use super::{MemberSpec, assign};

fn topic(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn spec<'a>(id: &'a str, topics: &[u8], current: &'a Assignment) -> MemberSpec<'a> {
    MemberSpec {
        member_id: id,
        instance_id: None,
        topics: topics.iter().map(|&t| topic(t)).collect(),
        current,
    }
}

/// Every partition of a topic someone subscribes to is held exactly once,
/// by a subscriber.
fn assert_covers(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<Uuid, i32>,
    result: &BTreeMap<String, Assignment>,
) {
    let mut seen = BTreeSet::new();
    for member in members {
        let held = &result[member.member_id];
        for (t, p) in assignment::pairs(held) {
            assert!(
                member.topics.contains(&t),
                "{} holds unsubscribed {t}",
                member.member_id
            );
            assert!(seen.insert((t, p)), "{t}-{p} assigned twice");
        }
    }
    for member in members {
        for t in &member.topics {
            for p in 0..topics.get(t).copied().unwrap_or(0) {
                assert!(seen.contains(&(*t, p)), "{t}-{p} not assigned");
            }
        }
    }
}

fn counts(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
    result.values().map(assignment::count).collect()
}

#[test]
fn uniform_splits_evenly_and_a_third_member_takes_only_its_share() {
    let topics = BTreeMap::from([(topic(1), 4)]);
    let empty = Assignment::new();
    let two = [spec("a", &[1], &empty), spec("b", &[1], &empty)];
    let first = assign("uniform", &two, &topics);
    assert_covers(&two, &topics, &first);
    assert_eq!(counts(&first), [2, 2]);

    let three = [
        spec("a", &[1], &first["a"]),
        spec("b", &[1], &first["b"]),
        spec("c", &[1], &empty),
    ];
    let second = assign("uniform", &three, &topics);
    assert_covers(&three, &topics, &second);
    let mut loads = counts(&second);
    loads.sort();
    assert_eq!(loads, [1, 1, 2]);
    // Only the partition the newcomer gets moves.
    for id in ["a", "b"] {
        assert!(
            assignment::is_subset(&second[id], &first[id]),
            "{id} lost more than it had to: {:?} -> {:?}",
            first[id],
            second[id]
        );
    }
    assert_eq!(assignment::count(&second["c"]), 1);
}

#[test]
fn uniform_balances_members_with_different_subscriptions() {
    // a: t1 (6 partitions) and t2 (2); b: t2 only.
    let topics = BTreeMap::from([(topic(1), 6), (topic(2), 2)]);
    let empty = Assignment::new();
    let members = [spec("a", &[1, 2], &empty), spec("b", &[2], &empty)];
    let result = assign("uniform", &members, &topics);
    assert_covers(&members, &topics, &result);
    // b can only hold t2: it gets both of its partitions.
    assert_eq!(
        result["b"],
        assignment::from_pairs([(topic(2), 0), (topic(2), 1)])
    );
    assert_eq!(assignment::count(&result["a"]), 6);
}

#[test]
fn uniform_drops_partitions_of_topics_no_longer_subscribed_or_gone() {
    let topics = BTreeMap::from([(topic(1), 2)]);
    let stale = assignment::from_pairs([(topic(1), 0), (topic(1), 5), (topic(9), 0)]);
    let members = [spec("a", &[1], &stale)];
    let result = assign("uniform", &members, &topics);
    assert_eq!(
        result["a"],
        assignment::from_pairs([(topic(1), 0), (topic(1), 1)])
    );
}

#[test]
fn range_gives_contiguous_ranges_static_members_first() {
    let topics = BTreeMap::from([(topic(1), 5), (topic(2), 4)]);
    let empty = Assignment::new();
    let mut members = vec![
        spec("a-dynamic", &[1, 2], &empty),
        spec("z-static", &[1, 2], &empty),
    ];
    members[1].instance_id = Some("instance-0");
    let result = assign("range", &members, &topics);
    assert_covers(&members, &topics, &result);
    // The static member sorts first and gets the larger first range.
    assert_eq!(
        result["z-static"],
        assignment::from_pairs([
            (topic(1), 0),
            (topic(1), 1),
            (topic(1), 2),
            (topic(2), 0),
            (topic(2), 1)
        ])
    );
    assert_eq!(
        result["a-dynamic"],
        assignment::from_pairs([(topic(1), 3), (topic(1), 4), (topic(2), 2), (topic(2), 3)])
    );
}

#[test]
fn no_members_or_no_topics_assign_nothing() {
    let topics = BTreeMap::from([(topic(1), 3)]);
    assert!(assign("uniform", &[], &topics).is_empty());
    let empty = Assignment::new();
    let members = [spec("a", &[2], &empty)];
    for assignor in ["uniform", "range"] {
        let result = assign(assignor, &members, &topics);
        assert!(result["a"].is_empty(), "{assignor}");
    }
}

/// A member: its id, the topics it subscribes to, its previous target.
type RawMember = (u8, Vec<u8>, Vec<(u8, i32)>);

fn arbitrary_group() -> impl Strategy<Value = (Vec<RawMember>, Vec<i32>)> {
    let member = (
        0u8..40,
        proptest::collection::vec(0u8..4, 0..4),
        proptest::collection::vec((0u8..5, 0i32..12), 0..10),
    );
    (
        proptest::collection::vec(member, 0..8),
        proptest::collection::vec(0i32..10, 4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the previous assignment (stale, overlapping, naming
    /// topics that are gone), both assignors cover every subscribed
    /// partition exactly once, give the same answer twice, and uniform
    /// keeps members of the same subscription within one of each other.
    #[test]
    fn assignors_cover_every_partition_once(
        (raw_members, partition_counts) in arbitrary_group(),
        homogeneous in any::<bool>(),
    ) {
        let topics: BTreeMap<Uuid, i32> = partition_counts
            .iter()
            .enumerate()
            .map(|(i, &n)| (topic(i as u8), n))
            .collect();
        let mut seen_ids = BTreeSet::new();
        let raw: Vec<(String, Vec<u8>, Assignment)> = raw_members
            .into_iter()
            .filter(|(id, _, _)| seen_ids.insert(*id))
            .map(|(id, subscribed, current)| {
                let subscribed = if homogeneous { vec![0, 1, 2] } else { subscribed };
                let current = assignment::from_pairs(current.into_iter().map(|(t, p)| (topic(t), p)));
                (format!("m{id}"), subscribed, current)
            })
            .collect();
        let members: Vec<MemberSpec<'_>> = raw
            .iter()
            .map(|(id, subscribed, current)| spec(id, subscribed, current))
            .collect();
        for assignor in ["uniform", "range"] {
            let result = assign(assignor, &members, &topics);
            assert_covers(&members, &topics, &result);
            prop_assert_eq!(&result, &assign(assignor, &members, &topics));
            if assignor == "uniform" && homogeneous && !members.is_empty() {
                let loads = counts(&result);
                let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
                prop_assert!(max - min <= 1, "unbalanced: {:?}", loads);
            }
        }
    }
}
