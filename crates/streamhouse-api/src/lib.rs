//! The JSON bodies of StreamHouse's REST API (`/api/v1/...`): what the
//! server's HTTP handlers accept and answer, and what streamctl sends and
//! reads. One definition serves both sides, so they cannot drift apart.
//!
//! The invariant that matters: these types ARE the wire format. A field's
//! name, its presence when empty, and an enum's spelling are part of the
//! API; changing one changes what every client sees.
//!
//! Requests are strict (`deny_unknown_fields`: a misspelt field is an
//! error, not silently ignored); responses are lenient, so a client built
//! against these types keeps working when a server adds a field.

mod encoding;
mod groups;
mod records;
mod security;
mod topics;

pub use encoding::Encoding;
pub use groups::{Assignment, GroupDetail, GroupListing, GroupMember, GroupOffset};
pub use records::{
    ConsumeQuery, ConsumeResponse, ConsumedHeader, ConsumedRecord, IsolationLevel, ProduceHeader,
    ProduceRecord, ProduceRequest, ProduceResponse, StoredOffset,
};
pub use security::{Acl, AclFilter, DeleteUserQuery, SetUser, User, UserCredential};
pub use topics::{
    CreateTopic, PartitionDetail, SegmentQuery, SegmentRow, TopicDetail, TopicSummary,
};

#[cfg(test)]
mod tests;
