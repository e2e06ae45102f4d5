//! What the pair losses share: the pair of inputs, its gradient, their
//! signature and their checks. A pair is of `(N, D)` embeddings (the
//! contrastive and cosine embedding losses) or of `(N)` scores (the margin
//! ranking loss).

use std::marker::PhantomData;

use ndarray::{Array, ArrayView, ArrayView1, ArrayViewMut, Dimension, Ix1, Ix2};

use crate::base::loss::{Exact, Signature};
use crate::base::validate::{check_values, expect_nonempty, expect_shape};
use crate::{Float, Result};

/// A batch of pairs: row `i` of `x1` is compared with row `i` of `x2`.
/// Embeddings `(N, D)` by default; scores `(N)` for
/// [`crate::MarginRanking`] (`Pair<'_, F, Ix1>`).
#[derive(Clone, Copy, Debug)]
pub struct Pair<'a, F, D: Dimension = Ix2> {
    /// The first member of each pair, `(N, D)` (or `(N)`).
    pub x1: ArrayView<'a, F, D>,
    /// The second member of each pair, of `x1`'s shape.
    pub x2: ArrayView<'a, F, D>,
}

/// The gradient of a pair loss with respect to both members.
#[derive(Clone, Debug, PartialEq)]
pub struct PairGrad<F, D: Dimension = Ix2> {
    /// `d loss / d x1`, of `x1`'s shape.
    pub x1: Array<F, D>,
    /// `d loss / d x2`, of `x2`'s shape.
    pub x2: Array<F, D>,
}

/// Mutable views of the two gradient buffers a pair loss fills.
#[derive(Debug)]
pub struct PairGradMut<'g, F, D: Dimension = Ix2> {
    /// Receives `d loss / d x1`, of `x1`'s shape.
    pub x1: ArrayViewMut<'g, F, D>,
    /// Receives `d loss / d x2`, of `x2`'s shape.
    pub x2: ArrayViewMut<'g, F, D>,
}

impl<'g, F, D: Dimension> From<&'g mut PairGrad<F, D>> for PairGradMut<'g, F, D> {
    fn from(grad: &'g mut PairGrad<F, D>) -> Self {
        PairGradMut {
            x1: grad.x1.view_mut(),
            x2: grad.x2.view_mut(),
        }
    }
}

/// The signature of the pair losses: two inputs of one shape, `(N, D)` or
/// `(N)`, one target per pair, a gradient for both inputs.
pub struct Pairs<D = Ix2>(PhantomData<D>);

impl<F: Float, D: Dimension> Signature<F> for Pairs<D> {
    type Input<'a> = Pair<'a, F, D>;
    type Target<'a> = ArrayView1<'a, F>;
    type Samples = Ix1;
    type Grad = PairGrad<F, D>;
    type GradMut<'g> = PairGradMut<'g, F, D>;

    fn samples(pair: &Self::Input<'_>) -> Ix1 {
        Ix1(pair.x1.shape().first().copied().unwrap_or(0))
    }
    fn zeros_grad(pair: &Self::Input<'_>) -> PairGrad<F, D> {
        PairGrad {
            x1: Array::zeros(pair.x1.raw_dim()),
            x2: Array::zeros(pair.x2.raw_dim()),
        }
    }
    fn grad_view_mut(grad: &mut PairGrad<F, D>) -> PairGradMut<'_, F, D> {
        grad.into()
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        PairGradMut {
            x1: grad.x1.view_mut(),
            x2: grad.x2.view_mut(),
        }
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        grad.x1 *= factor;
        grad.x2 *= factor;
    }
    fn all_finite(pair: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        pair.x1.iter().all(finite) && pair.x2.iter().all(finite)
    }
}

impl<D> Exact for Pairs<D> {}

/// The checks every pair loss makes: `x1` with a sample (and, for
/// embeddings, a feature), `x2` and the gradient buffers of `x1`'s shape,
/// and one target per pair, named `target_name`, that `accepts` (stated
/// as `expected` in the error).
pub(super) fn check_pairs<F: Float, D: Dimension>(
    pair: &Pair<'_, F, D>,
    target: &ArrayView1<'_, F>,
    (target_name, expected): (&'static str, &'static str),
    accepts: impl Fn(F) -> bool,
    grad: Option<&PairGradMut<'_, F, D>>,
) -> Result<()> {
    let shape = pair.x1.shape();
    for (axis, unit) in ["sample", "feature"].into_iter().enumerate() {
        if axis < shape.len() {
            expect_nonempty("x1", shape, axis, unit)?;
        }
    }
    expect_shape("x2", pair.x2.shape(), shape)?;
    expect_shape(target_name, target.shape(), &shape[..1])?;
    check_values(target_name, target, expected, accepts)?;
    if let Some(g) = grad {
        expect_shape("grad.x1", g.x1.shape(), shape)?;
        expect_shape("grad.x2", g.x2.shape(), shape)?;
    }
    Ok(())
}

/// [`check_pairs`] for the losses whose targets are labels `-1` (the pair
/// is dissimilar, or ranked the other way) or `+1`.
pub(super) fn check_signed_pairs<F: Float, D: Dimension>(
    pair: &Pair<'_, F, D>,
    labels: &ArrayView1<'_, F>,
    grad: Option<&PairGradMut<'_, F, D>>,
) -> Result<()> {
    let plus_minus_one = |v: F| v == F::one() || v == -F::one();
    check_pairs(pair, labels, ("labels", "-1 or +1"), plus_minus_one, grad)
}
