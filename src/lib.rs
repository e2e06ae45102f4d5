//! Classification loss functions with exact gradients.
#![deny(missing_docs)]

mod error;
mod float;
pub mod gradcheck;
mod loss;
pub mod numerics;
mod reduction;
pub mod robust;
pub mod softmax;
mod validate;
mod weighting;

pub use error::{Error, Result};
pub use float::Float;
pub use loss::{Differentiable, Loss};
pub use reduction::Reduction;
pub use robust::{
    GeneralizedCrossEntropy, HardBootstrapping, SoftBootstrapping, SymmetricCrossEntropy,
};
pub use softmax::{ClassTarget, CrossEntropy, FocalAlpha, KlDivergence, Poly1, SoftmaxFocal};
pub use weighting::class_balanced_weights;
