//! A consumer-protocol group in the coordinator's memory: its epochs, the
//! topics its members subscribe to, its members, who owns which partition,
//! and the timers that fence silent members. Everything but the timers is
//! saved in the metadata store after each change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use regex::Regex;
use streamhouse_storage::{ConsumerGroupRecord, ConsumerGroupSave, SubscribedTopic};
use tokio::time::Instant;
use uuid::Uuid;

use super::assignment;
use super::assignor::{self, ASSIGNORS, MemberSpec};
use super::member::{MayDescribe, Member};
use crate::coordinator::GroupError;

/// A topic as the group knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
}

/// The topics of the cluster as the coordinator last listed them.
#[derive(Debug, Default)]
pub(crate) struct TopicSnapshot {
    /// Moves whenever the list changes, so a group recomputes its
    /// subscriptions only then.
    pub(crate) generation: u64,
    pub(crate) by_name: BTreeMap<String, TopicInfo>,
}

/// Kafka's group states for consumer-protocol groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A member's deadlines; kept in memory only: a coordinator that takes a
/// group over gives every member a full session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub(crate) session: Instant,
    /// The epoch a member asked to revoke partitions is at, and when it is
    /// fenced if it is still there.
    pub(crate) revocation: Option<(i32, Instant)>,
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroup {
    pub(crate) group_id: String,
    /// The stored version this state was read as or saved at; `None`
    /// before its first save.
    pub(crate) version: Option<i64>,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    /// Subscribed topics that exist, by name.
    pub(crate) subscribed: BTreeMap<String, TopicInfo>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Who owns each partition: holds it or still has to revoke it.
    owners: HashMap<(Uuid, i32), String>,
    pub(crate) timers: HashMap<String, Timers>,
    /// The topic snapshot the subscriptions were last computed from.
    pub(crate) snapshot_generation: Option<u64>,
}

impl ConsumerGroup {
    pub(crate) fn new(group_id: String) -> Self {
        Self {
            group_id,
            version: None,
            group_epoch: 0,
            assignment_epoch: 0,
            subscribed: BTreeMap::new(),
            members: BTreeMap::new(),
            owners: HashMap::new(),
            timers: HashMap::new(),
            snapshot_generation: None,
        }
    }

    /// The group as stored. Members `previous` (the copy held before)
    /// knows keep their deadlines; the others get a session from `now`.
    pub(crate) fn from_record(
        record: &ConsumerGroupRecord,
        now: Instant,
        session: Duration,
        max_rebalance_timeout: Duration,
        previous: Option<&ConsumerGroup>,
    ) -> Result<Self, String> {
        let mut group = ConsumerGroup::new(record.group_id.clone());
        group.version = Some(record.version);
        group.group_epoch = record.group_epoch;
        group.assignment_epoch = record.assignment_epoch;
        for topic in &record.subscribed_topics {
            let id = Uuid::parse_str(&topic.topic_id)
                .map_err(|e| format!("topic id {:?}: {e}", topic.topic_id))?;
            group.subscribed.insert(
                topic.name.clone(),
                TopicInfo {
                    id,
                    partitions: topic.partitions,
                },
            );
        }
        for stored in &record.members {
            let member = Member::from_record(stored)?;
            let known = previous.and_then(|p| {
                let timers = p.timers.get(&member.member_id)?;
                Some((p.members.get(&member.member_id)?, *timers))
            });
            let revoking = member.state == super::member::MemberState::UnrevokedPartitions;
            let timers = match known {
                Some((held, timers)) => Timers {
                    session: timers.session,
                    revocation: timers.revocation.filter(|(epoch, _)| {
                        revoking
                            && held.member_epoch == member.member_epoch
                            && *epoch == member.member_epoch
                    }),
                },
                None => Timers {
                    session: now + session,
                    revocation: None,
                },
            };
            let timers = Timers {
                revocation: timers.revocation.or_else(|| {
                    revoking.then(|| {
                        (
                            member.member_epoch,
                            now + rebalance_timeout(&member, max_rebalance_timeout),
                        )
                    })
                }),
                ..timers
            };
            group.timers.insert(member.member_id.clone(), timers);
            group.put_member(member);
        }
        Ok(group)
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The member holding a static instance id.
    pub(crate) fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Whether a member other than `member_id` owns the partition.
    pub(crate) fn owned_by_other(&self, member_id: &str, topic: Uuid, partition: i32) -> bool {
        self.owners
            .get(&(topic, partition))
            .is_some_and(|owner| owner != member_id)
    }

    /// Adds or replaces a member, keeping the owners in step.
    pub(crate) fn put_member(&mut self, member: Member) {
        if let Some(old) = self.members.get(&member.member_id) {
            let old_owned: Vec<(Uuid, i32)> = assignment::pairs(&old.assigned)
                .chain(assignment::pairs(&old.pending_revocation))
                .collect();
            for key in old_owned {
                if self.owners.get(&key) == Some(&member.member_id) {
                    self.owners.remove(&key);
                }
            }
        }
        for key in
            assignment::pairs(&member.assigned).chain(assignment::pairs(&member.pending_revocation))
        {
            self.owners.insert(key, member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; its partitions are free for others.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        for key in
            assignment::pairs(&member.assigned).chain(assignment::pairs(&member.pending_revocation))
        {
            if self.owners.get(&key).map(String::as_str) == Some(member_id) {
                self.owners.remove(&key);
            }
        }
        self.timers.remove(member_id);
        Some(member)
    }

    pub(crate) fn start_session(&mut self, member_id: &str, now: Instant, session: Duration) {
        let timers = self.timers.entry(member_id.to_string()).or_insert(Timers {
            session: now + session,
            revocation: None,
        });
        timers.session = now + session;
    }

    /// The existing topics `member` subscribes to: by name, or matched by
    /// its pattern (`patterns`, compiled once per pass) among the topics
    /// it may describe.
    fn member_topics(
        member: &Member,
        topics: &BTreeMap<String, TopicInfo>,
        patterns: &HashMap<String, Regex>,
        may_describe: &MayDescribe,
    ) -> BTreeSet<Uuid> {
        let pattern = member
            .subscribed_topic_regex
            .as_deref()
            .and_then(|p| patterns.get(p));
        topics
            .iter()
            .filter(|(name, _)| {
                member.subscribed_topic_names.binary_search(name).is_ok()
                    || pattern.is_some_and(|re| re.is_match(name) && may_describe(member, name))
            })
            .map(|(_, info)| info.id)
            .collect()
    }

    /// The topics of `topics` some member subscribes to.
    pub(crate) fn subscribed_among(
        &self,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> BTreeMap<String, TopicInfo> {
        let patterns: Vec<Regex> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_deref())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|p| topic_regex(p).ok())
            .collect();
        let names: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().map(String::as_str))
            .collect();
        topics
            .iter()
            .filter(|(name, _)| {
                names.contains(name.as_str()) || patterns.iter().any(|re| re.is_match(name))
            })
            .map(|(name, info)| (name.clone(), *info))
            .collect()
    }

    /// The assignor most members ask for, or the default.
    pub(crate) fn preferred_assignor(&self) -> &'static str {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(i) = member
                .server_assignor
                .as_deref()
                .and_then(|name| ASSIGNORS.iter().position(|a| *a == name))
            {
                *votes.entry(i).or_default() += 1;
            }
        }
        let best = votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(0, |(i, _)| *i);
        ASSIGNORS[best]
    }

    /// Computes the target assignment for the group epoch: every member's
    /// target, starting from the previous one.
    pub(crate) fn update_target(&mut self, may_describe: &MayDescribe) {
        let topics: BTreeMap<Uuid, i32> = self
            .subscribed
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        let assignor = self.preferred_assignor();
        let patterns: HashMap<String, Regex> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_deref())
            .filter_map(|p| Some((p.to_string(), topic_regex(p).ok()?)))
            .collect();
        let targets = {
            let specs: Vec<MemberSpec<'_>> = self
                .members
                .values()
                .map(|m| MemberSpec {
                    member_id: &m.member_id,
                    instance_id: m.instance_id.as_deref(),
                    topics: Self::member_topics(m, &self.subscribed, &patterns, may_describe),
                    current: &m.target,
                })
                .collect();
            assignor::assign(assignor, &specs, &topics)
        };
        for (member_id, target) in targets {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.target = target;
            }
        }
        self.assignment_epoch = self.group_epoch;
        tracing::info!(
            group = %self.group_id,
            epoch = self.group_epoch,
            assignor,
            members = self.members.len(),
            "computed a new target assignment"
        );
    }

    /// What changed since `before`, as one save; `None` when nothing that
    /// is stored changed.
    pub(crate) fn changes_since(&self, before: &ConsumerGroup) -> Option<ConsumerGroupSave> {
        let upserted: Vec<_> = self
            .members
            .values()
            .filter(|m| before.members.get(&m.member_id) != Some(*m))
            .map(Member::to_record)
            .collect();
        let removed: Vec<String> = before
            .members
            .keys()
            .filter(|id| !self.members.contains_key(*id))
            .cloned()
            .collect();
        let unchanged = upserted.is_empty()
            && removed.is_empty()
            && self.group_epoch == before.group_epoch
            && self.assignment_epoch == before.assignment_epoch
            && self.subscribed == before.subscribed
            && self.state() == before.state()
            && self.version.is_some();
        if unchanged {
            return None;
        }
        Some(ConsumerGroupSave {
            group_id: self.group_id.clone(),
            expected_version: self.version,
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            state: self.state().name().to_string(),
            subscribed_topics: self
                .subscribed
                .iter()
                .map(|(name, info)| SubscribedTopic {
                    name: name.clone(),
                    topic_id: info.id.to_string(),
                    partitions: info.partitions,
                })
                .collect(),
            upserted,
            removed,
        })
    }

    /// Topic names by id, for describing assignments.
    pub(crate) fn topic_names(&self) -> HashMap<Uuid, String> {
        self.subscribed
            .iter()
            .map(|(name, info)| (info.id, name.clone()))
            .collect()
    }
}

/// The longest a member may take to revoke partitions: its rebalance
/// timeout (`max.poll.interval.ms`), within the coordinator's bound.
pub(crate) fn rebalance_timeout(member: &Member, max: Duration) -> Duration {
    Duration::from_millis(u64::try_from(member.rebalance_timeout_ms).unwrap_or(0)).min(max)
}

/// Largest compiled form of a subscription pattern; a larger one is
/// refused as an invalid expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A subscription pattern as Kafka matches it (RE2 syntax, against the
/// whole topic name). The pattern must be valid on its own, so that it
/// cannot escape the anchors around it (`a)|(b`).
pub(crate) fn topic_regex(pattern: &str) -> Result<Regex, GroupError> {
    let build = |source: &str| {
        regex::RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| GroupError::InvalidRegularExpression {
                reason: e.to_string(),
            })
    };
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}
