//! The machinery shared by the angular-margin losses ([`ArcFace`],
//! [`CosFace`], [`CombinedMargin`]): their input and gradient types, the
//! cosine matrix of normalized embeddings and class weights, the margin on
//! the target cosine, the cross-entropy row loop, and the backward pass
//! through the normalization.
//!
//! All three losses are one family: the target logit is
//! `s * (cos(m1 * theta + m2) - m3)`, every other logit `s * cos theta_j`,
//! followed by cross-entropy. ArcFace is `(1, m, 0)`, CosFace `(1, 0, m)`.
//! They differ only in their options and documentation, so they share
//! [`Spec`] and everything below: the margin on the target cosine
//! (`margin.rs`), the one margin row on the row kernels (`cosines.rs`), and
//! the cosine matrix of normalized embeddings with the backward pass through
//! the normalization (`embeddings.rs`).
//!
//! [`ArcFace`]: super::ArcFace
//! [`CosFace`]: super::CosFace
//! [`CombinedMargin`]: super::CombinedMargin

mod cosines;
mod embeddings;
mod margin;
#[cfg(test)]
mod tests;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix1};

use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute, Exact, ScoresAndLabels, Signature};
use crate::base::options::Options;
use crate::base::reduction::Totals;
use crate::{Float, Reduction, Result};

/// The input of the angular-margin losses: a batch of embeddings and the
/// class weight matrix they are compared with.
///
/// Neither needs to be normalized: the losses normalize every row (and
/// return gradients with respect to the raw, unnormalized arrays).
#[derive(Clone, Copy, Debug)]
pub struct Embeddings<'a, F> {
    /// One embedding per sample, `(N, D)`.
    pub embeddings: ArrayView2<'a, F>,
    /// One weight vector (class center) per class, `(C, D)`.
    pub weight: ArrayView2<'a, F>,
}

/// The gradient of an angular-margin loss with respect to both inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsGrad<F> {
    /// `d loss / d embeddings`, `(N, D)`.
    pub embeddings: Array2<F>,
    /// `d loss / d weight`, `(C, D)`.
    pub weight: Array2<F>,
}

/// Mutable views of the two gradient buffers an angular-margin loss fills.
#[derive(Debug)]
pub struct EmbeddingsGradMut<'g, F> {
    /// Receives `d loss / d embeddings`, `(N, D)`.
    pub embeddings: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d weight`, `(C, D)`.
    pub weight: ArrayViewMut2<'g, F>,
}

/// The options every angular-margin loss is made of.
///
/// Nominally public only because the sealed trait that hands it to
/// [`OnCosines`] must be; it is not exported.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    /// The reduction.
    pub reduction: Reduction,
    /// The scale `s`.
    pub scale: f64,
    /// The multiplicative angular margin.
    pub m1: f64,
    /// The additive angular margin.
    pub m2: f64,
    /// The additive cosine margin.
    pub m3: f64,
    /// Whether the margin applies only where `cos > 0`.
    pub easy_margin: bool,
}

impl Spec {
    /// The options of a loss with margins `(m1, m2, m3)`.
    pub(crate) fn new(
        reduction: Reduction,
        scale: f64,
        margins: (f64, f64, f64),
        easy_margin: bool,
    ) -> Self {
        let (m1, m2, m3) = margins;
        Spec {
            reduction,
            scale,
            m1,
            m2,
            m3,
            easy_margin,
        }
    }
}

pub(crate) use sealed::Sealed;

mod sealed {
    use crate::base::options::Options;

    /// Gives [`OnCosines`](super::OnCosines) the options of the loss it wraps.
    pub trait Sealed: Options {
        /// The loss's options.
        fn spec(&self) -> super::Spec;
    }
}

/// The angular-margin losses ([`ArcFace`](super::ArcFace),
/// [`CosFace`](super::CosFace), [`CombinedMargin`](super::CombinedMargin)):
/// what [`OnCosines`] accepts. Sealed: implemented by this crate only.
pub trait AngularMargin: sealed::Sealed {
    /// The same loss on precomputed cosines `(N, C)` instead of embeddings
    /// and weights, for models that normalize elsewhere (see [`OnCosines`]).
    fn on_cosines(self) -> OnCosines<Self>
    where
        Self: Sized,
    {
        OnCosines { inner: self }
    }
}

impl<T: sealed::Sealed> AngularMargin for T {}

/// An angular-margin loss applied to precomputed cosines.
///
/// For models that already produce the cosine matrix
/// `cos_ij = <e_i, w_j> / (|e_i| |w_j|)` (a normalized linear layer, a
/// partial-FC shard), this takes that `(N, C)` matrix instead of
/// [`Embeddings`] and returns the gradient with respect to it. The value is
/// the wrapped loss's value on the same cosines. Build it with
/// [`AngularMargin::on_cosines`], for example
/// `ArcFace::new().on_cosines()`.
///
/// # Shapes
/// - input: cosines `(N, C)`, each in `[-1, 1]`. Values beyond `±1` by at
///   most `sqrt(machine epsilon)` (the rounding of a normalized dot
///   product) are accepted; the margin takes their `sin(theta)` as 0, as at
///   `±1`.
/// - target: labels `(N)` in `0..C`; per-sample `(N)`; gradient `(N, C)`.
/// - `Mean` divides by `N`.
///
/// # Errors
/// An empty batch or class axis, labels of the wrong length or out of
/// range, a cosine outside `[-1, 1]` beyond the rounding allowance
/// ([`Error::InvalidInput`](crate::Error::InvalidInput), naming its position), a gradient buffer of the
/// wrong shape. The range is checked in the same pass over each row that
/// finds its max, so after a range error the fused call may have written
/// part of the gradient buffer.
///
/// # Examples
/// ```
/// use classloss::{AngularMargin, ArcFace, Differentiable, Loss};
/// use ndarray::array;
///
/// let cos = array![[0.8_f64, 0.1, -0.3]];
/// let labels = array![0_usize];
/// let arc = ArcFace::new().with_scale(10.0)?.with_margin(0.5)?.on_cosines();
/// let (loss, grad) = arc.forward_backward(cos.view(), labels.view())?;
/// // target logit 10 cos(acos(0.8) + 0.5), the others 10 cos
/// let t = 10.0 * (0.8_f64.acos() + 0.5).cos();
/// let lse = (t.exp() + 1.0_f64.exp() + (-3.0_f64).exp()).ln();
/// assert!((loss - (lse - t)).abs() < 1e-12);
/// assert!(grad[[0, 0]] < 0.0 && grad[[0, 1]] > 0.0);
/// # Ok::<(), classloss::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OnCosines<L> {
    inner: L,
}

impl<L> OnCosines<L> {
    /// The wrapped loss, whose options apply.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The reduction (the wrapped loss's).
    pub fn reduction(&self) -> Reduction
    where
        L: AngularMargin,
    {
        Options::reduction(&self.inner)
    }

    /// Unwraps the loss.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<'g, F> From<&'g mut EmbeddingsGrad<F>> for EmbeddingsGradMut<'g, F> {
    fn from(grad: &'g mut EmbeddingsGrad<F>) -> Self {
        EmbeddingsGradMut {
            embeddings: grad.embeddings.view_mut(),
            weight: grad.weight.view_mut(),
        }
    }
}

/// The signature of the angular margins on embeddings: embeddings and
/// class weights, labels `(N)`, a gradient for both inputs.
pub struct EmbeddingsAndLabels;

impl<F: Float> Signature<F> for EmbeddingsAndLabels {
    type Input<'a> = Embeddings<'a, F>;
    type Target<'a> = Labels<'a>;
    type Samples = Ix1;
    type Grad = EmbeddingsGrad<F>;
    type GradMut<'g> = EmbeddingsGradMut<'g, F>;

    fn samples(input: &Self::Input<'_>) -> Ix1 {
        Ix1(input.embeddings.nrows())
    }
    fn zeros_grad(input: &Self::Input<'_>) -> EmbeddingsGrad<F> {
        EmbeddingsGrad {
            embeddings: Array2::zeros(input.embeddings.raw_dim()),
            weight: Array2::zeros(input.weight.raw_dim()),
        }
    }
    fn grad_view_mut(grad: &mut EmbeddingsGrad<F>) -> EmbeddingsGradMut<'_, F> {
        grad.into()
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        input.embeddings.iter().all(finite) && input.weight.iter().all(finite)
    }
}

impl Exact for EmbeddingsAndLabels {}

impl<F: Float, L: sealed::Sealed> Compute<F> for L {
    type Sig = EmbeddingsAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        embeddings::run_embeddings(&self.spec(), call)
    }
}

impl<L: AngularMargin> Options for OnCosines<L> {
    fn reduction(&self) -> Reduction {
        Options::reduction(&self.inner)
    }
}

impl<F: Float, L: AngularMargin> Compute<F> for OnCosines<L> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        cosines::run_cosines(&self.inner.spec(), call)
    }
}
