//! Margin losses on raw scores: the binary hinge, the multi-class hinge,
//! the exponential loss and the soft margin (logistic) loss.

mod exponential;
mod hinge;
mod multi_margin;
mod soft_margin;

pub use crate::engine::signed_margins::LabelConvention;
pub use exponential::Exponential;
pub use hinge::Hinge;
pub use multi_margin::MultiMargin;
pub use soft_margin::SoftMargin;
