//! Losses on a softmax over classes: one row of logits per sample.

mod cross_entropy;
pub(crate) mod rows;

pub use cross_entropy::{ClassTarget, CrossEntropy};
