//! Losses on a softmax over classes: one row of logits per sample.

mod cross_entropy;
mod label_smoothing;
pub(crate) mod rows;

pub use cross_entropy::{ClassTarget, CrossEntropy};
pub use label_smoothing::{LabelSmoothing, SmoothingConvention};
