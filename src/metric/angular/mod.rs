//! The angular-margin losses of the metric family ([`ArcFace`],
//! [`CosFace`], [`CombinedMargin`]) on a materialized cosine matrix: the
//! loss on embeddings and class weights (`embeddings.rs`: the cosine
//! matrix of the normalized rows and the backward pass through the
//! normalization) and on precomputed cosines (`cosines.rs`), with the
//! [`AngularMargin`] trait and [`OnCosines`]. The machinery they share with
//! the fused head ([`AngularMarginHead`](crate::head::AngularMarginHead)),
//! written once, is in `engine::angular`: the input and gradient types,
//! `Spec`, the margin on the target cosine and the margin row.
//!
//! [`ArcFace`]: super::ArcFace
//! [`CosFace`]: super::CosFace
//! [`CombinedMargin`]: super::CombinedMargin

mod cosines;
mod embeddings;
#[cfg(test)]
mod tests;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::Options;
use crate::base::reduction::Totals;
use crate::engine::angular::EmbeddingsAndLabels;
pub use crate::engine::angular::{Embeddings, EmbeddingsGrad, EmbeddingsGradMut};
pub(crate) use crate::engine::angular::{Sealed, Spec};
use crate::{Float, Reduction, Result};

/// The angular-margin losses ([`ArcFace`](super::ArcFace),
/// [`CosFace`](super::CosFace), [`CombinedMargin`](super::CombinedMargin)):
/// what [`OnCosines`] accepts. Sealed: implemented by this crate only.
pub trait AngularMargin: Sealed {
    /// The same loss on precomputed cosines `(N, C)` instead of embeddings
    /// and weights, for models that normalize elsewhere (see [`OnCosines`]).
    fn on_cosines(self) -> OnCosines<Self>
    where
        Self: Sized,
    {
        OnCosines { inner: self }
    }
}

impl<T: Sealed> AngularMargin for T {}

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

impl<F: Float, L: Sealed> Compute<F> for L {
    type Sig = EmbeddingsAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        embeddings::run_embeddings(&self.spec(), call)
    }
}

impl<L: AngularMargin> Options for OnCosines<L> {
    fn reduction(&self) -> Reduction {
        Options::reduction(&self.inner)
    }
    fn set_reduction(&mut self, reduction: Reduction) {
        Options::set_reduction(&mut self.inner, reduction);
    }
}

impl<F: Float, L: AngularMargin> Compute<F> for OnCosines<L> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        cosines::run_cosines(&self.inner.spec(), call)
    }
}
