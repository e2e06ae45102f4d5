//! Losses on a sigmoid per element: binary and multi-label classification.

mod asymmetric;
mod bce;
mod bce_with_logits;
mod multilabel_soft_margin;
mod sigmoid_focal;

pub use asymmetric::Asymmetric;
pub use bce::Bce;
pub use bce_with_logits::BceWithLogits;
pub use multilabel_soft_margin::MultiLabelSoftMargin;
pub use sigmoid_focal::SigmoidFocal;
