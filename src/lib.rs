#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod base;
pub mod binary;
pub mod distributed;
mod engine;
pub mod eval;
pub mod gradcheck;
pub mod head;
mod loss_scaler;
pub mod margin;
pub mod metric;
pub mod numerics;
pub mod robust;
pub mod selfsupervised;
pub mod softmax;
mod weighting;

pub use base::class_tree::ClassTree;
pub use base::error::{Error, Result};
pub use base::float::Float;
pub use base::label_sets::LabelSets;
pub use base::labels::{Label, LabelIter, Labels};
pub use base::loss::{ClassifierLoss, Differentiable, Loss};
pub use base::reduction::Reduction;
pub use binary::{Asymmetric, Bce, BceWithLogits, MultiLabelSoftMargin, SigmoidFocal};
pub use eval::{
    EvalTarget, F1Scores, Hamming, PerClassMetric, ThresholdMode, Thresholds, ZeroDivision,
    ZeroOne, argmax_predictions, average_precision, multiclass_f1, multilabel_f1,
    multilabel_predictions, pick_f1_thresholds, roc_auc,
};
pub use head::{
    AngularMarginHead, LinearCrossEntropy, LinearGrad, LinearGradMut, LinearInput,
    OnSampledClasses, PartialFc, SampledClasses, SampledEmbeddings, SampledLinearInput,
};
pub use loss_scaler::{GradBuffers, LossScaler, StepDecision};
pub use margin::{
    CrammerSinger, Exponential, Hinge, LabelConvention, MultiLabelMargin, MultiMargin, SoftMargin,
};
pub use metric::{
    AngularMargin, ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, ContrastiveForm,
    CosFace, CosineEmbedding, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, MarginRanking,
    OnCosines, Pair, PairGrad, PairGradMut, Triplet, TripletGrad, TripletGradMut, TripletMargin,
};
pub use robust::{
    CoTeachingSchedule, GeneralizedCrossEntropy, HardBootstrapping, SoftBootstrapping,
    SymmetricCrossEntropy, small_loss_indices,
};
pub use selfsupervised::{Byol, NtXent, SupervisedContrastive};
pub use softmax::{
    ClassTarget, CrossEntropy, FocalAlpha, HierarchicalCrossEntropy, KlDivergence, LabelSmoothing,
    Ldam, LogitAdjusted, OhemCrossEntropy, OrdinalEmd, Poly1, SmoothingConvention, SoftmaxFocal,
    Sparsemax, Wasserstein,
};
pub use weighting::{
    class_balanced_weights, inverse_frequency_weights, sqrt_inverse_frequency_weights,
};
