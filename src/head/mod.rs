//! Fused classifier heads: a linear layer and its loss in one call, for
//! class counts where the logits matrix would dominate memory (language
//! model vocabularies, face identities).

mod angular_margin;
mod linear_cross_entropy;

pub use angular_margin::AngularMarginHead;
pub use linear_cross_entropy::{LinearCrossEntropy, LinearGrad, LinearGradMut, LinearInput};
