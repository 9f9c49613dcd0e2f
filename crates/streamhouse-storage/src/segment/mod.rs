//! The segment format of [`streamhouse_segment`], as
//! `streamhouse_storage::segment`: the writer the flusher and compaction
//! encode with, the reader the read path and the checks decode with, and
//! the batch object a flush uploads.
//!
//! The format's own tests are compiled into this crate as well, so that
//! `cargo test -p streamhouse-storage --lib` checks the exact bytes this
//! crate stores and reads.

pub use streamhouse_segment::*;

pub mod batch;
pub mod reader;
pub mod writer;

#[cfg(test)]
#[path = "../../../streamhouse-segment/src/test_util.rs"]
mod test_util;
#[cfg(test)]
#[path = "../../../streamhouse-segment/src/tests.rs"]
mod tests;
