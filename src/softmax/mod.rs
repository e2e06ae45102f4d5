//! Losses on a softmax over classes: one row of logits per sample
//! (cross-entropy and its variants, including the long-tail logit
//! adjustment and LDAM).

pub(crate) mod cross_entropy;
mod focal;
mod hierarchical_cross_entropy;
mod kl_divergence;
mod label_smoothing;
mod ldam;
mod logit_adjusted;
mod ohem;
mod ordinal_emd;
mod poly1;
mod sparsemax;
mod wasserstein;

pub use cross_entropy::{ClassTarget, CrossEntropy};
pub use focal::{FocalAlpha, SoftmaxFocal};
pub use hierarchical_cross_entropy::HierarchicalCrossEntropy;
pub use kl_divergence::KlDivergence;
pub use label_smoothing::{LabelSmoothing, SmoothingConvention};
pub use ldam::Ldam;
pub use logit_adjusted::LogitAdjusted;
pub use ohem::OhemCrossEntropy;
pub use ordinal_emd::OrdinalEmd;
pub use poly1::Poly1;
pub use sparsemax::Sparsemax;
pub use wasserstein::Wasserstein;
