//! Encoding one partition's records into a segment: [`streamhouse_segment::writer`].

pub use streamhouse_segment::writer::*;

#[cfg(test)]
#[path = "../../../streamhouse-segment/src/writer/tests.rs"]
mod tests;
