//! What classloss's framework adapters (`classloss-candle`,
//! `classloss-burn`) share: the two shapes a differentiable loss takes once
//! a framework's tensors are read as ndarray views.
//!
//! - [`ScoresLoss`]: one differentiable input (scores, logits,
//!   probabilities) and a gradient shaped like it: the core's
//!   [`Differentiable`] with views in and out, as a bound.
//! - [`TwoInputLoss`]: two differentiable `(rows, D)` inputs (embeddings and
//!   class weights, the two sides of pairs, features and centers), with a
//!   gradient for each, written into two caller views. For the center loss
//!   this adds the centers' gradient, which the core leaves to its update
//!   rule.
//!
//! Each adapter reads its framework's storage into these views and hands
//! the gradients back without a copy; nothing here knows a framework. The
//! lists of losses each adapter exposes are here too
//! ([`with_typed_scores_losses`], [`with_any_rank_losses`],
//! [`with_two_input_losses`]), so that a loss added to the core is added to
//! every adapter at once; and, with the feature `testing`, the
//! deterministic inputs the adapters' tests and benchmarks share.

#![deny(missing_docs)]

use classloss::{
    ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, CosFace, CosineEmbedding,
    Differentiable, Embeddings, EmbeddingsGradMut, Float, Labels, Loss, Pair, PairGradMut,
};
use ndarray::{Array, ArrayD, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Axis, Dimension};

#[cfg(feature = "testing")]
pub mod testing;

/// Calls `$m!` with every loss on one tensor whose type fixes the float
/// type (`Loss<F>`), each with its input's rank: `SoftmaxFocal => Ix2, ...`.
/// The names must be in scope where it is called.
#[macro_export]
macro_rules! with_typed_scores_losses {
    ($m:ident) => {
        $m!(
            SoftmaxFocal => Ix2,
            Poly1 => Ix2,
            KlDivergence => Ix2,
            SoftBootstrapping => Ix2,
            GeneralizedCrossEntropy => Ix2,
            HardBootstrapping => Ix2,
            SymmetricCrossEntropy => Ix2,
            MultiMargin => Ix2,
            MultiLabelSoftMargin => Ix2,
            Asymmetric => Ix2,
            CrammerSinger => Ix2,
            LogitAdjusted => Ix2,
            Ldam => Ix2,
            OhemCrossEntropy => Ix2,
            OrdinalEmd => Ix2,
            Hinge => Ix1,
            Exponential => Ix1,
        );
    };
}

/// Calls `$m!` with every loss on one tensor of any rank (`Loss<F, D>`),
/// each with the bound on its rank `D`: `CrossEntropy: RemoveAxis, ...`.
#[macro_export]
macro_rules! with_any_rank_losses {
    ($m:ident) => {
        $m!(
            CrossEntropy: RemoveAxis,
            Bce: Dimension,
            BceWithLogits: Dimension,
            SigmoidFocal: Dimension,
            SoftMargin: Dimension,
        );
    };
}

/// Calls `$m!` with every loss on two tensors ([`TwoInputLoss`]).
/// The other losses on one tensor take either float type and are written
/// out by each adapter: `LabelSmoothing` and the angular margins on
/// cosines (`OnCosines`), sparsemax, the Wasserstein loss, the
/// hierarchical cross-entropy and BYOL. The 0-1 and Hamming losses have no
/// gradient and are in no list; neither is `MultiLabelMargin`, whose
/// targets are label sets, not a tensor; nor are NT-Xent and the
/// supervised contrastive loss: each sample's value depends on every row,
/// which the adapters' unreduced (`None`) backward, one upstream value per
/// row, cannot carry (and NT-Xent has no target).
#[macro_export]
macro_rules! with_two_input_losses {
    ($m:ident) => {
        $m!(
            ArcFace,
            CosFace,
            CombinedMargin,
            Contrastive,
            CosineEmbedding,
            CenterLoss
        );
    };
}

/// A loss on one differentiable tensor (scores, logits, probabilities) of
/// rank `D`, with a gradient shaped like the input and its unreduced
/// values as an array.
pub trait ScoresLoss<F: Float, D: Dimension>:
    for<'a> Differentiable<
        F,
        Input<'a> = ArrayView<'a, F, D>,
        Grad = Array<F, D>,
        GradMut<'a> = ArrayViewMut<'a, F, D>,
    > + Unreduced<F>
{
}

impl<F: Float, D: Dimension, T> ScoresLoss<F, D> for T where
    T: for<'a> Differentiable<
            F,
            Input<'a> = ArrayView<'a, F, D>,
            Grad = Array<F, D>,
            GradMut<'a> = ArrayViewMut<'a, F, D>,
        > + Unreduced<F>
{
}

/// A loss's unreduced values (the core's `per_sample`) as a dynamic-rank
/// array in standard layout: one per sample, per position for spatial
/// inputs, per element for the elementwise losses.
pub trait Unreduced<F: Float>: Loss<F> {
    /// The unreduced values, whatever the reduction.
    fn unreduced<'a>(
        &self,
        input: Self::Input<'a>,
        target: Self::Target<'a>,
    ) -> classloss::Result<ArrayD<F>>;
}

impl<F: Float, E: Dimension, L: Loss<F, PerSample = Array<F, E>>> Unreduced<F> for L {
    fn unreduced<'a>(
        &self,
        input: Self::Input<'a>,
        target: Self::Target<'a>,
    ) -> classloss::Result<ArrayD<F>> {
        Ok(self.per_sample(input, target)?.into_dyn())
    }
}

/// A loss on two differentiable `(rows, D)` tensors and a target, with a
/// gradient for each.
pub trait TwoInputLoss<F: Float>: Loss<F> {
    /// The names of the two inputs, as the core's errors name them.
    const NAMES: [&'static str; 2];
    /// The core's input from the two views.
    fn input<'a>(a: ArrayView2<'a, F>, b: ArrayView2<'a, F>) -> Self::Input<'a>;
    /// The value, with the gradients with respect to `a` and `b` written
    /// into `grad_a` and `grad_b` (overwritten, as the core's fused call
    /// overwrites its buffer).
    fn forward_backward_into<'a>(
        &self,
        a: ArrayView2<'a, F>,
        b: ArrayView2<'a, F>,
        target: Self::Target<'a>,
        grad_a: ArrayViewMut2<'_, F>,
        grad_b: ArrayViewMut2<'_, F>,
    ) -> classloss::Result<F>;
}

/// The two-input losses whose core gradient covers both inputs: the
/// input and gradient structs take the two views under their own names.
macro_rules! both_gradients {
    ($($loss:ty => $input:ident, $grad:ident { $a:ident, $b:ident }),* $(,)?) => {$(
        impl<F: Float> TwoInputLoss<F> for $loss {
            const NAMES: [&'static str; 2] = [stringify!($a), stringify!($b)];
            fn input<'a>(a: ArrayView2<'a, F>, b: ArrayView2<'a, F>) -> $input<'a, F> {
                $input { $a: a, $b: b }
            }
            fn forward_backward_into<'a>(
                &self,
                a: ArrayView2<'a, F>,
                b: ArrayView2<'a, F>,
                target: Self::Target<'a>,
                grad_a: ArrayViewMut2<'_, F>,
                grad_b: ArrayViewMut2<'_, F>,
            ) -> classloss::Result<F> {
                let grad = $grad { $a: grad_a, $b: grad_b };
                Differentiable::forward_backward_into(self, Self::input(a, b), target, grad)
            }
        }
    )*};
}

both_gradients!(
    ArcFace => Embeddings, EmbeddingsGradMut { embeddings, weight },
    CosFace => Embeddings, EmbeddingsGradMut { embeddings, weight },
    CombinedMargin => Embeddings, EmbeddingsGradMut { embeddings, weight },
    Contrastive => Pair, PairGradMut { x1, x2 },
    CosineEmbedding => Pair, PairGradMut { x1, x2 },
);

impl<F: Float> TwoInputLoss<F> for CenterLoss {
    const NAMES: [&'static str; 2] = ["features", "centers"];
    fn input<'a>(a: ArrayView2<'a, F>, b: ArrayView2<'a, F>) -> CenterInput<'a, F> {
        CenterInput {
            features: a,
            centers: b,
        }
    }
    /// The core gives the features' gradient; the centers' follows from
    /// it: `L = s/2 sum_i |x_i - c_{y_i}|^2`, so `dL/dc_k = -sum_{i: y_i = k}
    /// dL/dx_i` (a class no sample has gets 0). The paper's update rule for
    /// the centers stays the core's `update_centers`.
    fn forward_backward_into<'a>(
        &self,
        a: ArrayView2<'a, F>,
        b: ArrayView2<'a, F>,
        target: Labels<'a>,
        mut grad_a: ArrayViewMut2<'_, F>,
        mut grad_b: ArrayViewMut2<'_, F>,
    ) -> classloss::Result<F> {
        if grad_b.dim() != b.dim() {
            return Err(classloss::Error::ShapeMismatch {
                what: "grad.centers",
                expected: format!("{:?}", b.shape()),
                actual: format!("{:?}", grad_b.shape()),
            });
        }
        let value = Differentiable::forward_backward_into(
            self,
            Self::input(a, b),
            target.clone(),
            grad_a.view_mut(),
        )?;
        grad_b.fill(F::zero());
        for (row, label) in grad_a.axis_iter(Axis(0)).zip(target.iter()) {
            // The core checked every label against the class count.
            if let Some(mut center) = usize::try_from(label)
                .ok()
                .and_then(|k| (k < grad_b.nrows()).then(|| grad_b.row_mut(k)))
            {
                center -= &row;
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn the_centers_gradient_buffer_must_have_the_centers_shape() {
        let f = array![[1.0_f64, 2.0], [0.5, -1.0]];
        let c = array![[0.0_f64, 0.0], [1.0, 1.0], [2.0, 0.0]];
        let y = array![2_i64, 0];
        let mut gf = Array2::zeros((2, 2));
        for shape in [(2, 2), (3, 1)] {
            let mut gc = Array2::zeros(shape);
            let err = TwoInputLoss::forward_backward_into(
                &CenterLoss::new(),
                f.view(),
                c.view(),
                Labels::from(&y),
                gf.view_mut(),
                gc.view_mut(),
            )
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "grad.centers: expected shape [3, 2], got {:?}",
                    [shape.0, shape.1]
                )
            );
        }
        // The right shape: class 1 has no sample and gets 0.
        let mut gc = Array2::from_elem((3, 2), 9.0);
        TwoInputLoss::forward_backward_into(
            &CenterLoss::new(),
            f.view(),
            c.view(),
            Labels::from(&y),
            gf.view_mut(),
            gc.view_mut(),
        )
        .unwrap();
        assert_eq!(gc.row(1), array![0.0, 0.0]);
        assert_eq!(gc.row(0), -&gf.row(1));
        assert_eq!(gc.row(2), -&gf.row(0));
    }
}
