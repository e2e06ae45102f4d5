//! Fused classifier heads: a linear layer and its loss in one call, for
//! class counts where the logits matrix would dominate memory (language
//! model vocabularies, face identities), and Partial FC, which runs them
//! on a sampled subset of the classes.

mod angular_margin;
mod linear_cross_entropy;
mod partial_fc;
pub(crate) mod sharded;

pub use angular_margin::AngularMarginHead;
pub use linear_cross_entropy::{LinearCrossEntropy, LinearGrad, LinearGradMut, LinearInput};
pub use partial_fc::{
    OnSampledClasses, PartialFc, SampledClasses, SampledEmbeddings, SampledLinearInput,
};
