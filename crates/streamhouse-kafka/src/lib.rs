//! The Kafka wire protocol server: framing, one handler per API, and the
//! consumer group coordinator, on top of the storage engine.
//!
//! Message encoding and decoding come from the `kafka-protocol` crate; this
//! crate decides what each request means for StreamHouse and chooses the
//! Kafka error codes (in `error.rs`, from typed errors).

mod broker;
mod cluster;
mod config;
mod coordinator;
mod error;
mod frame;
mod handlers;
mod listener;
pub mod records;
mod sasl;
mod server;
mod session;
pub mod tls;
mod versions;

pub use config::KafkaConfig;
pub use coordinator::{GroupCoordinator, GroupLimits, GroupSummary, MemberSummary};
pub use listener::{KafkaListener, SecurityProtocol};
pub use sasl::SaslMechanism;
pub use server::KafkaServer;
pub use tls::{SslPrincipalMapper, TlsConfig, TlsError, TlsFiles};
