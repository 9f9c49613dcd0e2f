//! The engine's clock: [`streamhouse_core::clock`], re-exported here so
//! that storage users find it beside the engine that takes it.

pub use streamhouse_core::clock::{Clock, ManualClock, SystemClock};
