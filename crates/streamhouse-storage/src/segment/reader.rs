//! Decoding a segment held in memory: [`streamhouse_segment::reader`].

pub use streamhouse_segment::reader::*;

#[cfg(test)]
#[path = "../../../streamhouse-segment/src/reader/tests.rs"]
mod tests;
