//! The losses compared: one entry per loss, built from the crate's public
//! API only. Adding a loss to the study is adding an entry to `table`.

use classloss::{ClassTarget, CrossEntropy, Differentiable, LabelSmoothing};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

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

/// A loss on `(N, C)` logits and `(N)` labels, as most softmax losses are.
fn on_labels<L>(loss: L) -> Objective
where
    L: for<'a> Differentiable<
            f32,
            Input<'a> = ArrayView2<'a, f32>,
            Target<'a> = ArrayView1<'a, usize>,
            GradMut<'a> = ArrayViewMut2<'a, f32>,
        > + Send
        + Sync
        + 'static,
{
    Objective::Logits(Box::new(move |x, y, g| loss.forward_backward_into(x, y, g)))
}

/// Cross-entropy (possibly weighted), whose target is a `ClassTarget`.
fn cross_entropy(ce: CrossEntropy<f32>) -> Objective {
    Objective::Logits(Box::new(move |x, y, g| {
        ce.forward_backward_into(x, ClassTarget::Labels(y), g)
    }))
}

/// Every loss of the study, the baseline first.
pub fn table() -> Vec<Entry> {
    vec![
        Entry {
            name: "cross-entropy",
            settings: "CrossEntropy::new()",
            reading: Reading::Softmax,
            build: |_| Ok(cross_entropy(CrossEntropy::new())),
        },
        Entry {
            name: "label smoothing",
            settings: "LabelSmoothing, epsilon 0.1, uniform (PyTorch) convention",
            reading: Reading::Softmax,
            build: |_| Ok(on_labels(LabelSmoothing::new().with_epsilon(0.1)?)),
        },
    ]
}
