//! The multi-partition batch object and its table of contents: [`streamhouse_segment::batch`].

pub use streamhouse_segment::batch::*;

#[cfg(test)]
#[path = "../../../streamhouse-segment/src/batch/tests.rs"]
mod tests;
