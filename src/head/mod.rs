//! Fused classifier heads: a linear layer and its loss in one call, for
//! class counts where the logits matrix would dominate memory (language
//! model vocabularies, face identities).

mod linear_cross_entropy;

pub use linear_cross_entropy::{LinearCrossEntropy, LinearGrad, LinearGradMut, LinearInput};
