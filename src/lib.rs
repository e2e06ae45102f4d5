//! Classification loss functions with exact gradients.
#![deny(missing_docs)]

mod error;
mod float;
pub mod gradcheck;
mod loss;
pub mod metric;
pub mod numerics;
mod reduction;
pub mod softmax;
mod validate;

pub use error::{Error, Result};
pub use float::Float;
pub use loss::{Differentiable, Loss};
pub use metric::{
    AngularMargin, ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, ContrastiveForm,
    CosFace, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, OnCosines, Pair, PairGrad, PairGradMut,
};
pub use reduction::Reduction;
pub use softmax::{ClassTarget, CrossEntropy};
