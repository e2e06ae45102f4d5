//! Margin losses on raw scores: the binary hinge, the multi-class hinges
//! (Weston–Watkins, Crammer–Singer), the multi-label ranking hinge, the
//! exponential loss and the soft margin (logistic) loss.

mod crammer_singer;
mod exponential;
mod hinge;
mod multi_margin;
mod multilabel_margin;
mod soft_margin;

pub use crate::engine::signed_margins::LabelConvention;
pub use crammer_singer::CrammerSinger;
pub use exponential::Exponential;
pub use hinge::Hinge;
pub use multi_margin::MultiMargin;
pub use multilabel_margin::MultiLabelMargin;
pub use soft_margin::SoftMargin;
