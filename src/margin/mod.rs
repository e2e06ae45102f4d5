//! Margin losses on raw scores: the binary hinge, the multi-class hinge and
//! the exponential loss.

mod exponential;
mod hinge;
mod multi_margin;

pub use crate::engine::signed_margins::LabelConvention;
pub use exponential::Exponential;
pub use hinge::Hinge;
pub use multi_margin::MultiMargin;
