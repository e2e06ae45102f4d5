#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod binary;
mod error;
pub mod eval;
mod float;
pub mod gradcheck;
mod loss;
pub mod margin;
pub mod metric;
pub mod numerics;
mod parallel;
mod reduction;
pub mod robust;
pub mod softmax;
mod validate;
mod weighting;

pub use binary::{Bce, BceWithLogits, SigmoidFocal};
pub use error::{Error, Result};
pub use eval::ZeroOne;
pub use float::Float;
pub use loss::{Differentiable, Loss};
pub use margin::{Exponential, Hinge, LabelConvention, MultiMargin};
pub use metric::{
    AngularMargin, ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, ContrastiveForm,
    CosFace, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, OnCosines, Pair, PairGrad, PairGradMut,
};
pub use reduction::Reduction;
pub use robust::{
    GeneralizedCrossEntropy, HardBootstrapping, SoftBootstrapping, SymmetricCrossEntropy,
};
pub use softmax::{
    ClassTarget, CrossEntropy, FocalAlpha, KlDivergence, LabelSmoothing, Poly1,
    SmoothingConvention, SoftmaxFocal,
};
pub use weighting::class_balanced_weights;
