#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod base;
pub mod binary;
mod engine;
pub mod eval;
pub mod gradcheck;
pub mod margin;
pub mod metric;
pub mod numerics;
pub mod robust;
pub mod selfsupervised;
pub mod softmax;
mod weighting;

pub use base::error::{Error, Result};
pub use base::float::Float;
pub use base::labels::{Label, LabelIter, Labels};
pub use base::loss::{ClassifierLoss, Differentiable, Loss};
pub use base::reduction::Reduction;
pub use binary::{Asymmetric, Bce, BceWithLogits, MultiLabelSoftMargin, SigmoidFocal};
pub use eval::{Hamming, ZeroOne};
pub use margin::{CrammerSinger, Exponential, Hinge, LabelConvention, MultiMargin, SoftMargin};
pub use metric::{
    AngularMargin, ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, ContrastiveForm,
    CosFace, CosineEmbedding, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, OnCosines, Pair,
    PairGrad, PairGradMut,
};
pub use robust::{
    GeneralizedCrossEntropy, HardBootstrapping, SoftBootstrapping, SymmetricCrossEntropy,
};
pub use selfsupervised::{Byol, NtXent, SupervisedContrastive};
pub use softmax::{
    ClassTarget, CrossEntropy, FocalAlpha, KlDivergence, LabelSmoothing, Ldam, LogitAdjusted,
    OhemCrossEntropy, OrdinalEmd, Poly1, SmoothingConvention, SoftmaxFocal, Sparsemax, Wasserstein,
};
pub use weighting::class_balanced_weights;
