//! Losses on a sigmoid per element: binary and multi-label classification.

mod bce;
mod bce_with_logits;
mod sigmoid_focal;

pub use bce::Bce;
pub use bce_with_logits::BceWithLogits;
pub use sigmoid_focal::SigmoidFocal;
