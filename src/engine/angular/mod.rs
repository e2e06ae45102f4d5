//! What the angular-margin losses share, below both families that run
//! them: the metric losses on a materialized cosine matrix
//! (`metric::angular`: [`ArcFace`], [`CosFace`], [`CombinedMargin`] on
//! embeddings or on cosines) and the fused head that never holds it
//! (`head::AngularMarginHead`).
//!
//! All of them are one family: the target logit is
//! `s * (cos(m1 * theta + m2) - m3)`, every other logit `s * cos theta_j`,
//! followed by cross-entropy. ArcFace is `(1, m, 0)`, CosFace `(1, 0, m)`.
//! A loss describes itself once, by its [`Spec`] (the sealed [`Sealed`]
//! trait hands it over); everything else is written here once: the input
//! and gradient types ([`Embeddings`], [`EmbeddingsGrad`]), the margin on
//! the target cosine and `sin(theta)` from the two vectors (`margin.rs`),
//! the one margin row on the row kernels (`row.rs`), and the row norms and
//! power-of-two gradient scaling of the backward pass through the
//! normalization (`norms.rs`).
//!
//! [`ArcFace`]: crate::ArcFace
//! [`CosFace`]: crate::CosFace
//! [`CombinedMargin`]: crate::CombinedMargin

pub(crate) mod margin;
pub(crate) mod norms;
pub(crate) mod row;
#[cfg(test)]
pub(crate) mod tests;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix1};

use crate::base::labels::Labels;
use crate::base::loss::{Exact, Signature};
use crate::base::validate::{expect_nonempty, expect_samples_and_features, expect_shape};
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
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        EmbeddingsGradMut {
            embeddings: grad.embeddings.view_mut(),
            weight: grad.weight.view_mut(),
        }
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        grad.embeddings *= factor;
        grad.weight *= factor;
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        input.embeddings.iter().all(finite) && input.weight.iter().all(finite)
    }
}

impl Exact for EmbeddingsAndLabels {}

/// The checks of every angular-margin loss on embeddings, in one order:
/// the batch, features and classes not empty, a scale that `F` holds,
/// the weight's width, the labels, the gradient buffers' shapes. Returns
/// `(N, D, C)`.
pub(crate) fn check_embeddings<F: Float>(
    spec: &Spec,
    input: &Embeddings<'_, F>,
    labels: &Labels<'_>,
    grad: Option<&EmbeddingsGradMut<'_, F>>,
) -> Result<(usize, usize, usize)> {
    check_embeddings_of(spec, input, labels, grad, input.weight.nrows())
}

/// [`check_embeddings`] for labels in `0..classes`, of which `weight`
/// holds some (a class shard of them) or all.
pub(crate) fn check_embeddings_of<F: Float>(
    spec: &Spec,
    input: &Embeddings<'_, F>,
    labels: &Labels<'_>,
    grad: Option<&EmbeddingsGradMut<'_, F>>,
    classes: usize,
) -> Result<(usize, usize, usize)> {
    let (e, w) = (input.embeddings, input.weight);
    expect_samples_and_features("embeddings", e.shape())?;
    if classes == 0 {
        expect_nonempty("weight", w.shape(), 0, "class")?;
    }
    let (n, d) = e.dim();
    let c = w.nrows();
    margin::check_scale_fits::<F>(spec)?;
    expect_shape("weight", w.shape(), &[c, d])?;
    labels.check_rows(n, classes)?;
    if let Some(g) = grad {
        expect_shape("grad.embeddings", g.embeddings.shape(), &[n, d])?;
        expect_shape("grad.weight", g.weight.shape(), &[c, d])?;
    }
    Ok((n, d, classes))
}

/// The options every angular-margin loss is made of.
///
/// Nominally public only because the sealed trait that hands it to
/// [`OnCosines`](crate::OnCosines) and the fused head must be; it is not
/// exported.
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

    /// Gives the wrappers of an angular-margin loss (on cosines, the fused
    /// head) the options of the loss they wrap.
    pub trait Sealed: Options {
        /// The loss's options.
        fn spec(&self) -> super::Spec;
    }
}
