//! Bounds on what clients can make the coordinator hold, and the checks
//! that apply them. Every refusal counts in
//! `streamhouse_limit_rejections_total`.

use std::time::Duration;

use super::GroupError;

/// Bounds on what clients can make the coordinator hold, named after
/// Kafka's broker settings where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLimits {
    /// Shortest session timeout a member may ask for
    /// (`group.min.session.timeout.ms`, 6 s).
    pub min_session_timeout: Duration,
    /// Longest session timeout a member may ask for
    /// (`group.max.session.timeout.ms`, 30 min).
    pub max_session_timeout: Duration,
    /// Longest the coordinator waits for members to rejoin, whatever
    /// rebalance timeout (`max.poll.interval.ms`) they ask for; members
    /// that have not rejoined by then are left out of the generation.
    /// Kafka has no such bound; 30 min by default, like the session bound.
    pub max_rebalance_timeout: Duration,
    /// Members (including member ids handed out and not yet used) of one
    /// group (`group.max.size`, 1000).
    pub max_group_size: usize,
    /// Groups with members held by this coordinator (100 000).
    pub max_groups: usize,
    /// How long a group's committed offsets outlive its last member
    /// (`offsets.retention.minutes`, 7 days).
    pub offsets_retention: Duration,
    /// How often offsets are checked for expiry
    /// (`offsets.retention.check.interval.ms`, 10 min).
    pub offsets_retention_check_interval: Duration,
    /// How long a consumer-protocol member may go without a heartbeat
    /// (`group.consumer.session.timeout.ms`, 45 s).
    pub consumer_session_timeout: Duration,
    /// How often consumer-protocol members are told to heartbeat
    /// (`group.consumer.heartbeat.interval.ms`, 5 s).
    pub consumer_heartbeat_interval: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_rebalance_timeout: Duration::from_millis(1_800_000),
            max_group_size: 1_000,
            max_groups: 100_000,
            offsets_retention: Duration::from_secs(10_080 * 60),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
        }
    }
}

/// Timeouts of a join, within the coordinator's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) session: Duration,
    pub(crate) rebalance: Duration,
}

impl GroupLimits {
    /// The timeouts a join asked for, as the coordinator applies them: a
    /// session timeout must be within the bounds; a rebalance timeout is
    /// the member's max.poll.interval.ms, where a long one is legitimate
    /// (Kafka Streams used i32::MAX) but only ever waited for up to the
    /// bound, and a negative one is a malformed request.
    pub(crate) fn join_timeouts(
        &self,
        session_timeout_ms: i32,
        rebalance_timeout_ms: i32,
    ) -> Result<Timeouts, GroupError> {
        let Some(session) = millis(session_timeout_ms)
            .filter(|t| (self.min_session_timeout..=self.max_session_timeout).contains(t))
        else {
            limit_rejected("group_session_timeout");
            return Err(GroupError::InvalidSessionTimeout { session_timeout_ms });
        };
        let Some(rebalance) = millis(rebalance_timeout_ms) else {
            limit_rejected("group_rebalance_timeout");
            return Err(GroupError::InvalidRebalanceTimeout {
                rebalance_timeout_ms,
            });
        };
        Ok(Timeouts {
            session,
            rebalance: rebalance.min(self.max_rebalance_timeout),
        })
    }

    /// Whether a coordinator holding `groups` groups may take one more.
    /// Refused as retriable: clients back off and retry, and room comes
    /// back as groups empty (they are forgotten at once) or sessions expire.
    pub(crate) fn admit_group(&self, groups: usize) -> Result<(), GroupError> {
        if groups >= self.max_groups {
            limit_rejected("group_count");
            return Err(GroupError::TooManyGroups {
                max_groups: self.max_groups,
            });
        }
        Ok(())
    }

    /// Whether a group of `size` members and member ids handed out may
    /// take one more.
    pub(crate) fn admit_member(&self, size: usize) -> Result<(), GroupError> {
        if size >= self.max_group_size {
            limit_rejected("group_max_size");
            return Err(GroupError::GroupMaxSizeReached {
                max_size: self.max_group_size,
            });
        }
        Ok(())
    }
}

/// A timeout from the wire; `None` when negative.
fn millis(ms: i32) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

fn limit_rejected(limit: &'static str) {
    metrics::counter!("streamhouse_limit_rejections_total", "limit" => limit).increment(1);
}

#[cfg(test)]
mod tests;
