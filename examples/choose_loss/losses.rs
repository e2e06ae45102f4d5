//! The losses compared: one entry per loss, built from the crate's public
//! API only. Adding a loss to the study is adding an entry to `table`.

use classloss::{
    ArcFace, ClassifierLoss, CosFace, CrossEntropy, Differentiable, Embeddings, EmbeddingsGradMut,
    GeneralizedCrossEntropy, HardBootstrapping, LabelSmoothing, Labels, Poly1, SigmoidFocal,
    SoftBootstrapping, SoftmaxFocal, SymmetricCrossEntropy, class_balanced_weights,
};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};

/// Value and `d loss / d logits` for a batch, written into a reused buffer.
pub type LogitsFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView1<'_, usize>,
            ArrayViewMut2<'_, f32>,
        ) -> classloss::Result<f32>
        + Send
        + Sync,
>;

/// Value and the gradients for the features `(N, E)` and the class matrix
/// `(C, E)` of a cosine head, written into reused buffers.
pub type CosineFn = Box<
    dyn Fn(
            ArrayView2<'_, f32>,
            ArrayView2<'_, f32>,
            ArrayView1<'_, usize>,
            ArrayViewMut2<'_, f32>,
            ArrayViewMut2<'_, f32>,
        ) -> classloss::Result<f32>
        + Send
        + Sync,
>;

/// What a loss trains.
pub enum Objective {
    /// A linear head's logits.
    Logits(LogitsFn),
    /// A cosine head at scale `s`.
    Cosine {
        /// The scale used for the predictions' softmax confidences.
        scale: f32,
        /// The loss.
        loss: CosineFn,
    },
}

/// How a trained model's scores become a confidence for its prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The largest softmax probability of the scores.
    Softmax,
    /// `sigmoid` of the largest score: the one-vs-all probability the model
    /// was trained to give for that class.
    Sigmoid,
}

/// What a loss may look at when it is built: the training split's labels as
/// the training code sees them (after subsampling or noise).
pub struct TrainInfo {
    /// Images per class in the training split.
    pub class_counts: Vec<usize>,
}

/// One loss of the study.
pub struct Entry {
    /// Its name in the tables.
    pub name: &'static str,
    /// Its settings, printed once.
    pub settings: &'static str,
    /// How its model's confidence is read for the calibration error.
    pub reading: Reading,
    /// Builds the loss for one training split.
    pub build: fn(&TrainInfo) -> classloss::Result<Objective>,
}

/// A loss on `(N, C)` logits and `(N)` labels, as the softmax losses are
/// (cross-entropy included).
fn on_labels<L: ClassifierLoss<f32> + Send + Sync + 'static>(loss: L) -> Objective {
    Objective::Logits(Box::new(move |x, y, g| {
        loss.forward_backward_into(x, Labels::from(y), g)
    }))
}

/// Sigmoid focal loss one-vs-all: each class is a binary problem with a
/// one-hot target.
fn one_vs_all(loss: SigmoidFocal<f32>) -> Objective {
    Objective::Logits(Box::new(move |x, y, g| {
        // The (N, C) one-hot targets are built per batch; they are the
        // caller's data, not something the loss allocates.
        let mut one_hot = Array2::<f32>::zeros(x.raw_dim());
        for (r, &c) in y.iter().enumerate() {
            one_hot[[r, c]] = 1.0;
        }
        loss.forward_backward_into(x, one_hot.view(), g)
    }))
}

/// An angular-margin loss on a cosine head: the features and the class
/// matrix are its inputs, and it returns the gradients of both.
fn cosine_head<L>(scale: f64, loss: L) -> Objective
where
    L: for<'a> Differentiable<
            f32,
            Input<'a> = Embeddings<'a, f32>,
            Target<'a> = Labels<'a>,
            GradMut<'a> = EmbeddingsGradMut<'a, f32>,
        > + Send
        + Sync
        + 'static,
{
    Objective::Cosine {
        scale: scale as f32,
        loss: Box::new(move |z, w, y, g_z, g_w| {
            let input = Embeddings {
                embeddings: z,
                weight: w,
            };
            let grad = EmbeddingsGradMut {
                embeddings: g_z,
                weight: g_w,
            };
            loss.forward_backward_into(input, y, grad)
        }),
    }
}

/// The cosine heads' scale: the papers' 64 is for thousands of identities;
/// ten classes reach a confident softmax at a much smaller scale (the
/// crate's `embeddings` example uses the same).
const COSINE_SCALE: f64 = 16.0;

/// Every loss of the study, the baseline first.
pub fn table() -> Vec<Entry> {
    vec![
        Entry {
            name: "cross-entropy",
            settings: "CrossEntropy::new()",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(CrossEntropy::new())),
        },
        Entry {
            name: "label smoothing",
            settings: "LabelSmoothing, epsilon 0.1, uniform (PyTorch) convention",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(LabelSmoothing::new().with_epsilon(0.1)?)),
        },
        Entry {
            name: "sigmoid focal",
            settings: "SigmoidFocal one-vs-all on one-hot targets, gamma 2, no alpha; \
                       confidence = sigmoid of the top logit",
            reading: Reading::Sigmoid,
            build: |_| {
                Ok(one_vs_all(
                    SigmoidFocal::new().with_gamma(2.0)?.with_alpha(None)?,
                ))
            },
        },
        Entry {
            name: "softmax focal",
            settings: "SoftmaxFocal, gamma 2, alpha 1",
            reading: Reading::Softmax,
            build: |_| {
                Ok(on_labels(
                    SoftmaxFocal::new().with_gamma(2.0)?.with_alpha(1.0)?,
                ))
            },
        },
        Entry {
            name: "class-balanced CE",
            settings: "CrossEntropy weighted by class_balanced_weights(train counts, beta 0.999)",
            reading: Reading::Softmax,
            build: |info| {
                let w = class_balanced_weights(&info.class_counts, 0.999)?;
                Ok(on_labels(CrossEntropy::new().with_weight(w)?))
            },
        },
        Entry {
            name: "GCE",
            settings: "GeneralizedCrossEntropy, q 0.7",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(GeneralizedCrossEntropy::new().with_q(0.7)?)),
        },
        Entry {
            name: "SCE",
            settings: "SymmetricCrossEntropy, alpha 0.1, beta 1, log_zero -4",
            reading: Reading::Softmax,
            build: |_| {
                Ok(on_labels(
                    SymmetricCrossEntropy::new()
                        .with_alpha(0.1)?
                        .with_beta(1.0)?
                        .with_log_zero(-4.0)?,
                ))
            },
        },
        Entry {
            name: "Poly-1",
            settings: "Poly1, epsilon 1",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(Poly1::new().with_epsilon(1.0)?)),
        },
        Entry {
            name: "soft bootstrapping",
            settings: "SoftBootstrapping, beta 0.95",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(SoftBootstrapping::new().with_beta(0.95)?)),
        },
        Entry {
            name: "hard bootstrapping",
            settings: "HardBootstrapping, beta 0.8",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(HardBootstrapping::new().with_beta(0.8)?)),
        },
        Entry {
            name: "ArcFace",
            settings: "ArcFace on a cosine head (no bias), scale 16, margin 0.5 (the paper's); \
                       confidence = softmax of 16 cos",
            reading: Reading::Softmax,
            build: |_| {
                let loss = ArcFace::new().with_scale(COSINE_SCALE)?.with_margin(0.5)?;
                Ok(cosine_head(COSINE_SCALE, loss))
            },
        },
        Entry {
            name: "CosFace",
            settings: "CosFace on a cosine head (no bias), scale 16, margin 0.35 (the paper's); \
                       confidence = softmax of 16 cos",
            reading: Reading::Softmax,
            build: |_| {
                let loss = CosFace::new().with_scale(COSINE_SCALE)?.with_margin(0.35)?;
                Ok(cosine_head(COSINE_SCALE, loss))
            },
        },
    ]
}
