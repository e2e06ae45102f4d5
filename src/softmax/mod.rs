//! Losses on a softmax over classes: one row of logits per sample.

pub(crate) mod cross_entropy;
mod focal;
mod kl_divergence;
mod label_smoothing;
mod poly1;

pub use cross_entropy::{ClassTarget, CrossEntropy};
pub use focal::{FocalAlpha, SoftmaxFocal};
pub use kl_divergence::KlDivergence;
pub use label_smoothing::{LabelSmoothing, SmoothingConvention};
pub use poly1::Poly1;
