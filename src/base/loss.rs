//! The traits every loss implements, and the one mechanism that implements
//! them.
//!
//! A loss declares its options with `loss_options!` (which gives it its
//! reduction, [`Options`]) and implements [`Compute`] once: the
//! [`Signature`] of its arguments and `compute`, which validates, runs an
//! engine and returns the per-sample sum ([`Totals`]). [`Loss`] and [`Differentiable`]
//! come from blanket impls over `Compute`, and so does the reduction with
//! its overflow rule ([`reduce`]): no loss writes forwarding code.

use std::marker::PhantomData;

use ndarray::{
    Array, Array1, Array2, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Axis, Dimension,
    Ix1, Ix2, RemoveAxis,
};

use crate::base::label_sets::LabelSets;
use crate::base::labels::Labels;
use crate::base::options::Options;
use crate::base::reduction::{Totals, reduce};
use crate::numerics::times_pow2;
use crate::{Float, Reduction, Result};

/// A loss: a value per sample and a reduced value.
///
/// Inputs and targets are views; every method takes anything that converts
/// into them, so an array (`&logits`), a view (`logits.view()`) and, for
/// labels, an array of any integer type (`&labels` of `i64`, `u32`,
/// `usize`, ...) all work without a copy.
pub trait Loss<F: Float> {
    /// What the loss is computed from (logits, scores, embeddings, ...).
    type Input<'a>: Clone;
    /// What the input is compared with (labels, probabilities, flags, ...).
    type Target<'a>: Clone;
    /// The unreduced values: one per sample (per position for spatial inputs).
    type PerSample;

    /// The reduction `forward` applies.
    fn reduction(&self) -> Reduction;

    /// The unreduced loss values, whatever the reduction.
    fn per_sample<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<Self::PerSample>;

    /// The reduced loss: mean, sum, or (for [`Reduction::None`]) the sum.
    fn forward<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<F>;
}

/// A loss with an exact gradient.
///
/// Losses without a gradient (the 0-1 loss) do not implement this trait,
/// so asking for their gradient is a compile error rather than an array of
/// zeros.
pub trait Differentiable<F: Float>: Loss<F> {
    /// The gradient, shaped like the differentiable inputs (an array, or a
    /// struct of arrays for losses with several inputs).
    type Grad;
    /// A mutable view of a gradient buffer, which the fused call fills.
    type GradMut<'g>;

    /// A zeroed gradient buffer shaped for `input`.
    fn zeros_grad<'a>(&self, input: impl Into<Self::Input<'a>>) -> Self::Grad;

    /// A mutable view of an owned gradient buffer.
    fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_>;

    /// Computes the reduced loss and its gradient in one pass, writing the
    /// gradient into `grad` (a mutable view, or `&mut` of an array).
    ///
    /// `grad` is overwritten, never accumulated into, so a buffer reused
    /// across calls needs no clearing. The gradient is of the value
    /// returned: of the mean for [`Reduction::Mean`], of the sum otherwise.
    /// After an error its contents are unspecified: some checks (an
    /// overflow, the binary losses' targets on their vectorized path) run
    /// with the loop that writes it.
    fn forward_backward_into<'i, 't, 'g>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
        grad: impl Into<Self::GradMut<'g>>,
    ) -> Result<F>;

    /// The reduced loss and a newly allocated gradient.
    fn forward_backward<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<(F, Self::Grad)>;

    /// The gradient of the reduced loss with respect to every
    /// differentiable input.
    fn backward<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<Self::Grad> {
        self.forward_backward(input, target).map(|(_, g)| g)
    }
}

/// The losses on `(N, C)` scores and class labels with an `(N, C)`
/// gradient: what a classifier's training step needs, as one bound.
///
/// Cross-entropy, label smoothing, focal, Poly-1, the noise-robust losses,
/// the multi-class hinge and the angular margins on cosines all qualify.
/// Pass the labels as [`Labels`] (any integer type converts):
///
/// ```
/// use classloss::{ClassifierLoss, CrossEntropy, Labels, SoftmaxFocal};
/// use ndarray::{array, Array1, Array2};
///
/// /// One gradient step on a linear model `logits = x w`.
/// fn step<L: ClassifierLoss<f32>>(loss: &L, x: &Array2<f32>, w: &mut Array2<f32>, y: &Array1<i64>) -> f32 {
///     let logits = x.dot(w);
///     let mut grad = Array2::zeros(logits.raw_dim());
///     let value = loss.forward_backward_into(&logits, Labels::from(y), &mut grad).unwrap();
///     *w -= &(x.t().dot(&grad) * 0.5);
///     value
/// }
///
/// let x = array![[1.0_f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
/// let y = array![0_i64, 1, 0];
/// for loss_name in ["cross-entropy", "focal"] {
///     let mut w = Array2::zeros((2, 2));
///     let (first, last) = match loss_name {
///         "cross-entropy" => (step(&CrossEntropy::new(), &x, &mut w, &y),
///                             (0..50).map(|_| step(&CrossEntropy::new(), &x, &mut w, &y)).last().unwrap()),
///         _ => (step(&SoftmaxFocal::new(), &x, &mut w, &y),
///               (0..50).map(|_| step(&SoftmaxFocal::new(), &x, &mut w, &y)).last().unwrap()),
///     };
///     assert!(last < first / 2.0, "{loss_name}: {first} -> {last}");
/// }
/// ```
pub trait ClassifierLoss<F: Float>:
    for<'a> Differentiable<
        F,
        Input<'a> = ArrayView2<'a, F>,
        Target<'a>: From<Labels<'a, Ix1>>,
        PerSample = Array1<F>,
        Grad = Array2<F>,
        GradMut<'a> = ArrayViewMut2<'a, F>,
    >
{
}

impl<F: Float, T> ClassifierLoss<F> for T where
    T: for<'a> Differentiable<
            F,
            Input<'a> = ArrayView2<'a, F>,
            Target<'a>: From<Labels<'a, Ix1>>,
            PerSample = Array1<F>,
            Grad = Array2<F>,
            GradMut<'a> = ArrayViewMut2<'a, F>,
        >
{
}

pub(crate) use sealed::{Call, Compute, Exact, Signature};

/// Public only because blanket impls of public traits name them; not
/// exported, so nothing outside the crate implements or calls them.
mod sealed {
    use super::*;

    /// The types of a loss's arguments, shared by every loss that takes the
    /// same ones (each loss family names one).
    pub trait Signature<F: Float> {
        /// The input views.
        type Input<'a>: Clone;
        /// The target views.
        type Target<'a>: Clone;
        /// The shape of the per-sample values.
        type Samples: Dimension;
        /// The gradient buffers.
        type Grad;
        /// Mutable views of the gradient buffers.
        type GradMut<'g>;

        /// The shape of the per-sample values of `input`. Called before
        /// validation: a malformed input gets any shape, `compute` then
        /// reports the error.
        fn samples(input: &Self::Input<'_>) -> Self::Samples;
        /// A zeroed gradient for `input`.
        fn zeros_grad(input: &Self::Input<'_>) -> Self::Grad;
        /// A mutable view of `grad`.
        fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_>;
        /// Whether every input value is finite (the overflow rule).
        fn all_finite(input: &Self::Input<'_>) -> bool;
        /// A shorter-lived view of the same gradient buffers (a wrapper
        /// hands one to the loss and rescales the buffers after).
        fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s>;
        /// Multiplies every gradient entry by `factor`.
        fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F);
    }

    /// Marks the signatures of losses with a gradient.
    pub trait Exact {}

    /// How one loss computes: implemented once per loss (its reduction
    /// comes from [`Options`], which `loss_options!` implements).
    pub trait Compute<F: Float>: Options {
        /// The types of its arguments.
        type Sig: Signature<F>;

        /// Validates, then returns the sum of the per-sample values (and
        /// the `Mean`'s divisor); with `call.grad`, overwrites it with the
        /// gradient of the reduced value, with `call.per` stores each
        /// sample's value.
        fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals>;
    }

    /// The arguments of one call: the input, the target, and the outputs
    /// wanted (a gradient buffer, a per-sample buffer, or neither).
    pub struct Call<'i, 't, 'o, F: Float, S: Signature<F>> {
        /// The input views.
        pub input: S::Input<'i>,
        /// The target views.
        pub target: S::Target<'t>,
        /// The gradient buffers to overwrite, for the fused call.
        pub grad: Option<S::GradMut<'o>>,
        /// The per-sample buffer to fill, for `per_sample`.
        pub per: Option<ArrayViewMut<'o, F, S::Samples>>,
    }
}

type In<'a, F, T> = <<T as Compute<F>>::Sig as Signature<F>>::Input<'a>;
type Tgt<'a, F, T> = <<T as Compute<F>>::Sig as Signature<F>>::Target<'a>;
type Samples<F, T> = <<T as Compute<F>>::Sig as Signature<F>>::Samples;

/// Runs `compute` and reduces its totals under the crate's one rule.
fn run<'o, F: Float, T: Compute<F>>(
    loss: &T,
    input: In<'_, F, T>,
    target: Tgt<'_, F, T>,
    grad: Option<<T::Sig as Signature<F>>::GradMut<'o>>,
    per: Option<ArrayViewMut<'o, F, Samples<F, T>>>,
) -> Result<F> {
    run_with(loss, input, target, grad, per, |call| loss.compute(call))
}

/// [`run`] with the computation given: `loss`'s own with an extra output
/// (a head's per-row log-sum-exp), which the first call fills (a second,
/// cold call for a sum beyond `f64` asks for the per-sample values only).
pub(crate) fn run_with<'o, F: Float, T: Compute<F>>(
    loss: &T,
    input: In<'_, F, T>,
    target: Tgt<'_, F, T>,
    grad: Option<<T::Sig as Signature<F>>::GradMut<'o>>,
    per: Option<ArrayViewMut<'o, F, Samples<F, T>>>,
    mut compute: impl FnMut(Call<'_, '_, '_, F, T::Sig>) -> Result<Totals>,
) -> Result<F> {
    let per_sample = per.is_some();
    let call = Call {
        input: input.clone(),
        target: target.clone(),
        grad,
        per,
    };
    let mut totals = compute(call)?;
    let samples = T::Sig::samples(&input);
    let reduction = Options::reduction(loss);
    if reduction == Reduction::Mean
        && !per_sample
        && totals.sum.total.is_infinite()
        && totals.sum.overflow.is_none()
        && T::Sig::all_finite(&input)
    {
        // Finite per-sample values whose sum passes f64 (only f64 values
        // can: any number of f32 values fits): their mean may still fit.
        // Cold, so computed again, the values into a buffer and summed
        // scaled by 2^-128 (exact; the values too small to survive it do
        // not count next to a sum beyond f64).
        let mut values = Array::zeros(samples.clone());
        let again = Call {
            input: input.clone(),
            target,
            grad: None,
            per: Some(values.view_mut()),
        };
        let divisor = compute(again)?.divisor;
        let scaled: f64 = values.iter().map(|v| times_pow2(v.as_f64(), -128)).sum();
        // The mean stands for the total, over a divisor of 1: `reduce`
        // then checks it against F's range as it checks any mean.
        totals.sum.total = times_pow2(scaled / divisor, 128);
        totals.divisor = 1.0;
    }
    reduce(reduction, totals, samples.slice(), per_sample, || {
        T::Sig::all_finite(&input)
    })
}

impl<F: Float, T: Compute<F>> Loss<F> for T {
    type Input<'a> = In<'a, F, T>;
    type Target<'a> = Tgt<'a, F, T>;
    type PerSample = Array<F, Samples<F, T>>;

    fn reduction(&self) -> Reduction {
        Options::reduction(self)
    }

    fn per_sample<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<Self::PerSample> {
        let input = input.into();
        let mut per = Array::zeros(T::Sig::samples(&input));
        run(self, input, target.into(), None, Some(per.view_mut()))?;
        Ok(per)
    }

    fn forward<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<F> {
        run(self, input.into(), target.into(), None, None)
    }
}

impl<F: Float, T: Compute<F>> Differentiable<F> for T
where
    T::Sig: Exact,
{
    type Grad = <T::Sig as Signature<F>>::Grad;
    type GradMut<'g> = <T::Sig as Signature<F>>::GradMut<'g>;

    fn zeros_grad<'a>(&self, input: impl Into<Self::Input<'a>>) -> Self::Grad {
        T::Sig::zeros_grad(&input.into())
    }

    fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
        T::Sig::grad_view_mut(grad)
    }

    fn forward_backward_into<'i, 't, 'g>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
        grad: impl Into<Self::GradMut<'g>>,
    ) -> Result<F> {
        run(self, input.into(), target.into(), Some(grad.into()), None)
    }

    fn forward_backward<'i, 't>(
        &self,
        input: impl Into<Self::Input<'i>>,
        target: impl Into<Self::Target<'t>>,
    ) -> Result<(F, Self::Grad)> {
        let input = input.into();
        let mut grad = T::Sig::zeros_grad(&input);
        let value = run(
            self,
            input,
            target.into(),
            Some(T::Sig::grad_view_mut(&mut grad)),
            None,
        )?;
        Ok((value, grad))
    }
}

/// The signature of a loss on an array of scores of shape `D` (logits,
/// probabilities, margins) compared with a target `T`, which also gives the
/// shape of the per-sample values; `Exact` when its gradient is
/// ([`WithGradient`]), not for the 0-1 loss.
pub struct Scores<D, T, G = WithGradient>(PhantomData<(D, T, G)>);

/// `(N, C)` scores with one target per row ([`ByLabels`] or [`ByProbs`])
/// and `(N)` per-sample values.
pub type Rows<T, G = WithGradient> = Scores<Ix2, T, G>;

/// [`Rows`] with `(N)` class labels: the label losses.
pub(crate) type ScoresAndLabels<G = WithGradient> = Rows<ByLabels, G>;

/// Inputs and targets of one shape `D` with one value per element (the
/// sigmoid family, the binary margins).
pub type Elementwise<D> = Scores<D, ByElement>;

/// Marks [`Scores`] of a loss with a gradient.
pub struct WithGradient;

/// Marks [`Scores`] of a loss without a gradient.
pub struct NoGradient;

/// What scores of shape `D` are compared with.
pub trait ScoreTarget<F: Float, D: Dimension> {
    /// The target views.
    type View<'a>: Clone;
    /// Which axes of the scores index the samples.
    type Axes: SampleAxes<D>;
}

/// Which axes of scores of shape `D` index the samples, and so the shape of
/// the per-sample values.
pub trait SampleAxes<D: Dimension> {
    /// The shape of the per-sample values.
    type Samples: Dimension;
    /// The per-sample shape of scores of shape `scores`. Called before
    /// validation: a malformed input gets any shape, `compute` then
    /// reports the error.
    fn samples(scores: D) -> Self::Samples;
}

/// Every axis but the class axis 1: one target per lane of classes.
pub struct Lanes;

/// Every axis: one target per element.
pub struct Elements;

impl<D: RemoveAxis> SampleAxes<D> for Lanes {
    type Samples = D::Smaller;

    fn samples(scores: D) -> D::Smaller {
        if scores.ndim() >= 2 {
            scores.remove_axis(Axis(1))
        } else {
            D::Smaller::zeros(scores.ndim().saturating_sub(1))
        }
    }
}

impl<D: Dimension> SampleAxes<D> for Elements {
    type Samples = D;

    fn samples(scores: D) -> D {
        scores
    }
}

/// Scores compared with class labels, one per lane of the class axis.
pub struct ByLabels;

/// Scores compared with probabilities of their own shape, a distribution
/// per lane of the class axis.
pub struct ByProbs;

/// `(N, C)` scores compared with a set of classes per row.
pub struct BySets;

/// Scores compared with targets of their own shape, one per element.
pub struct ByElement;

impl<F: Float, D: RemoveAxis> ScoreTarget<F, D> for ByLabels {
    type View<'a> = Labels<'a, D::Smaller>;
    type Axes = Lanes;
}

impl<F: Float, D: RemoveAxis> ScoreTarget<F, D> for ByProbs {
    type View<'a> = ArrayView<'a, F, D>;
    type Axes = Lanes;
}

impl<F: Float> ScoreTarget<F, Ix2> for BySets {
    type View<'a> = LabelSets<'a>;
    type Axes = Lanes;
}

impl<F: Float, D: Dimension> ScoreTarget<F, D> for ByElement {
    type View<'a> = ArrayView<'a, F, D>;
    type Axes = Elements;
}

/// Scores compared with nothing: the loss finds its structure in the input
/// alone (NT-Xent pairs row `i` with row `i + N`). The target is `()`.
pub struct Unlabeled;

impl<F: Float, D: RemoveAxis> ScoreTarget<F, D> for Unlabeled {
    type View<'a> = ();
    type Axes = Lanes;
}

impl<F: Float, D: Dimension, T: ScoreTarget<F, D>, G> Signature<F> for Scores<D, T, G> {
    type Input<'a> = ArrayView<'a, F, D>;
    type Target<'a> = T::View<'a>;
    type Samples = <T::Axes as SampleAxes<D>>::Samples;
    type Grad = Array<F, D>;
    type GradMut<'g> = ArrayViewMut<'g, F, D>;

    fn samples(input: &Self::Input<'_>) -> Self::Samples {
        T::Axes::samples(input.raw_dim())
    }
    fn zeros_grad(input: &Self::Input<'_>) -> Array<F, D> {
        Array::zeros(input.raw_dim())
    }
    fn grad_view_mut(grad: &mut Array<F, D>) -> ArrayViewMut<'_, F, D> {
        grad.view_mut()
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        grad.view_mut()
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        *grad *= factor;
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        input.iter().all(|v| v.is_finite())
    }
}

impl<D, T> Exact for Scores<D, T, WithGradient> {}
