//! The server-side assignors members choose with `group.remote.assignor`:
//! `uniform` (the default) and `range`, as Kafka's coordinator names them.
//!
//! - `uniform` spreads the partitions of the subscribed topics evenly and
//!   keeps each partition where the previous target assignment put it
//!   whenever balance allows, so a member joining or leaving moves only
//!   the partitions it must.
//! - `range` gives each member, per topic, a contiguous range of
//!   partitions, members ordered by instance id (static members first)
//!   and then member id; members subscribing to the same topics with the
//!   same partition counts get the same partition numbers of each
//!   (co-partitioning).
//!
//! Both are deterministic: the same group gives the same assignment on
//! every agent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignment::{self, Assignment};

/// The assignors, the default first.
pub(crate) const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor knows of a member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec<'a> {
    pub(crate) member_id: &'a str,
    pub(crate) instance_id: Option<&'a str>,
    /// The existing topics it subscribes to.
    pub(crate) topics: BTreeSet<Uuid>,
    /// Its previous target assignment (for stickiness).
    pub(crate) current: &'a Assignment,
}

/// The target assignment of every member, by member id. Members that get
/// nothing are present with an empty assignment.
pub(crate) fn assign(
    assignor: &str,
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn range(members: &[MemberSpec<'_>], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut ordered: Vec<&MemberSpec<'_>> = members.iter().collect();
    ordered.sort_by(|a, b| match (a.instance_id, b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then(a.member_id.cmp(b.member_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(b.member_id),
    });
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_string(), Assignment::new()))
        .collect();
    for (&topic, &partitions) in topics {
        let subscribers: Vec<&str> = ordered
            .iter()
            .filter(|m| m.topics.contains(&topic))
            .map(|m| m.member_id)
            .collect();
        if subscribers.is_empty() || partitions <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (quota, extra) = (partitions / n, partitions % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let size = quota + i32::from((i as i32) < extra);
            let end = (next + size).min(partitions);
            if let Some(target) = result.get_mut(*member) {
                for partition in next..end {
                    assignment::insert(target, topic, partition);
                }
            }
            next = end;
        }
    }
    result
}

fn uniform(
    members: &[MemberSpec<'_>],
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut ordered: Vec<&MemberSpec<'_>> = members.iter().collect();
    ordered.sort_by(|a, b| a.member_id.cmp(b.member_id));
    let mut held: Vec<Assignment> = vec![Assignment::new(); ordered.len()];
    let mut owner: HashMap<(Uuid, i32), usize> = HashMap::new();
    // Every partition of a subscribed topic, in order.
    let subscribed: BTreeSet<Uuid> = ordered
        .iter()
        .flat_map(|m| m.topics.iter().copied())
        .collect();
    let all: Vec<(Uuid, i32)> = subscribed
        .iter()
        .filter_map(|t| topics.get(t).map(|&n| (*t, n)))
        .flat_map(|(t, n)| (0..n.max(0)).map(move |p| (t, p)))
        .collect();
    let exists = |t: Uuid, p: i32| topics.get(&t).is_some_and(|&n| (0..n).contains(&p));

    // What each member keeps of its previous target, the first claim of a
    // partition winning.
    for (i, member) in ordered.iter().enumerate() {
        for (topic, partition) in assignment::pairs(member.current) {
            if member.topics.contains(&topic)
                && exists(topic, partition)
                && !owner.contains_key(&(topic, partition))
            {
                owner.insert((topic, partition), i);
                assignment::insert(&mut held[i], topic, partition);
            }
        }
    }

    let homogeneous = ordered.windows(2).all(|w| w[0].topics == w[1].topics);
    if homogeneous && !ordered.is_empty() {
        // Quotas: base each, one more for `extra` members, given to the
        // members that already hold the most so that little moves.
        let n = ordered.len();
        let (base, extra) = (all.len() / n, all.len() % n);
        let mut by_load: Vec<usize> = (0..n).collect();
        by_load.sort_by(|&a, &b| {
            assignment::count(&held[b])
                .cmp(&assignment::count(&held[a]))
                .then(a.cmp(&b))
        });
        let mut quota = vec![base; n];
        for &i in by_load.iter().take(extra) {
            quota[i] += 1;
        }
        // Members over quota give up their highest partitions.
        for i in 0..n {
            while assignment::count(&held[i]) > quota[i] {
                let Some((topic, partition)) = assignment::pairs(&held[i]).last() else {
                    break;
                };
                assignment::remove(&mut held[i], topic, partition);
                owner.remove(&(topic, partition));
            }
        }
        // The rest go, in order, to members under quota.
        let mut load: Vec<usize> = held.iter().map(assignment::count).collect();
        let mut next = 0;
        for &(topic, partition) in &all {
            if owner.contains_key(&(topic, partition)) {
                continue;
            }
            while next < n && load[next] >= quota[next] {
                next += 1;
            }
            if next == n {
                break;
            }
            owner.insert((topic, partition), next);
            assignment::insert(&mut held[next], topic, partition);
            load[next] += 1;
        }
    } else {
        let mut load: Vec<usize> = held.iter().map(assignment::count).collect();
        let subscribers: HashMap<Uuid, Vec<usize>> = subscribed
            .iter()
            .map(|t| {
                let who = (0..ordered.len())
                    .filter(|&i| ordered[i].topics.contains(t))
                    .collect();
                (*t, who)
            })
            .collect();
        let least_loaded = |load: &[usize], topic: &Uuid| {
            subscribers
                .get(topic)
                .and_then(|who| who.iter().copied().min_by_key(|&i| (load[i], i)))
        };
        // Each free partition to its least loaded subscriber.
        for &(topic, partition) in &all {
            if owner.contains_key(&(topic, partition)) {
                continue;
            }
            let least = least_loaded(&load, &topic);
            if let Some(i) = least {
                owner.insert((topic, partition), i);
                assignment::insert(&mut held[i], topic, partition);
                load[i] += 1;
            }
        }
        // Then move partitions from a member to a subscriber holding two or
        // more fewer, until none can move: every move lowers the sum of
        // squared loads, so this ends.
        let mut moved = true;
        while moved {
            moved = false;
            for &(topic, partition) in &all {
                let Some(&from) = owner.get(&(topic, partition)) else {
                    continue;
                };
                if let Some(to) = least_loaded(&load, &topic)
                    && load[to] + 1 < load[from]
                {
                    assignment::remove(&mut held[from], topic, partition);
                    assignment::insert(&mut held[to], topic, partition);
                    owner.insert((topic, partition), to);
                    load[from] -= 1;
                    load[to] += 1;
                    moved = true;
                }
            }
        }
    }
    ordered
        .iter()
        .zip(held)
        .map(|(m, a)| (m.member_id.to_string(), a))
        .collect()
}

#[cfg(test)]
mod tests;
