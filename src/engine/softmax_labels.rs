//! The shell shared by the softmax losses on `(N, C)` logits and hard labels
//! (focal, Poly-1 and the noise-robust family): the input checks, the row
//! loop and the mean over `N`, plus the trait impls every one of them has.
//!
//! A loss on labels then only states its per-row value and gradient; the
//! checks and their messages are the same for all of them by construction.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::base::validate::{
    check_class_vector, check_labels, expect_nonempty, expect_shape, finish_checked,
};
use crate::engine::softmax_rows::{softmax_rows_2d, Row, RowGrad};
use crate::{Float, Reduction, Result};

/// Checks `(N, C)` logits, `(N)` labels in `0..C`, the gradient buffer and
/// the per-class option vectors (`(name, length)`, each must have length
/// `C`); then runs `row_loss` on every row through [`softmax_rows_2d`] and
/// reduces over the `N` samples (`Mean` divides by `N`).
///
/// `row_loss(y, row, grad, scale)` returns the sample's loss; given the
/// row's [`RowGrad`], it overwrites it with `scale` times the gradient of
/// the sample's loss (`scale` is the reduction's factor).
pub(crate) fn run_on_labels<F: Float>(
    reduction: Reduction,
    logits: ArrayView2<'_, F>,
    labels: ArrayView1<'_, usize>,
    grad: Option<ArrayViewMut2<'_, F>>,
    per_row: Option<ArrayViewMut1<'_, F>>,
    class_vectors: &[(&'static str, usize)],
    row_loss: impl Fn(usize, &Row<'_, F>, Option<RowGrad<'_, F>>, F) -> F + Sync,
) -> Result<F> {
    let shape = logits.shape();
    expect_nonempty("logits", shape, 0, "sample")?;
    expect_nonempty("logits", shape, 1, "class")?;
    let classes = shape[1];
    for &(name, len) in class_vectors {
        check_class_vector(name, len, classes)?;
    }
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    expect_shape("labels", labels.shape(), &shape[..1])?;
    check_labels("labels", &labels, classes, None)?;
    let divisor = shape[0] as f64;
    let scale: F = reduction.grad_scale(divisor);
    // Kept for the overflow check after the loop.
    let per_sample_mode = per_row.is_some();
    let logits_view = logits;
    let total = softmax_rows_2d(
        logits,
        |i| labels[i],
        grad,
        per_row,
        |y, row, g| row_loss(y, row, g, scale),
    );
    finish_checked(
        reduction,
        total,
        divisor,
        "logits",
        &logits_view,
        per_sample_mode,
    )
}

/// `1 - p` from `log p`, exact for `p` near 1 where `1.0 - p` would cancel.
///
/// Never negative, even if a fast `exp` in the row statistics lets `log p`
/// round a hair above 0: a negative base would turn `(1 - p)^gamma` into NaN.
#[inline]
pub(crate) fn one_minus_p<F: Float>(log_p: F) -> F {
    (-log_p.exp_m1()).max(F::zero())
}

/// Implements `Loss` and `Differentiable` for a loss on `(N, C)` logits and
/// `(N)` labels whose type has a `reduction` field and a method
/// `run(&self, logits, labels, grad, per_row) -> Result<F>`.
macro_rules! impl_label_loss {
    ($ty:ident) => {
        impl<F: $crate::Float> $crate::Loss<F> for $ty<F> {
            type Input<'a> = ::ndarray::ArrayView2<'a, F>;
            type Target<'a> = ::ndarray::ArrayView1<'a, usize>;
            type PerSample = ::ndarray::Array1<F>;

            fn reduction(&self) -> $crate::Reduction {
                self.reduction
            }

            fn per_sample(
                &self,
                logits: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<Self::PerSample> {
                let mut out = ::ndarray::Array1::zeros(logits.nrows());
                self.run(logits, labels, None, Some(out.view_mut()))?;
                Ok(out)
            }

            fn forward(
                &self,
                logits: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<F> {
                self.run(logits, labels, None, None)
            }
        }

        impl<F: $crate::Float> $crate::Differentiable<F> for $ty<F> {
            type Grad = ::ndarray::Array2<F>;
            type GradMut<'g> = ::ndarray::ArrayViewMut2<'g, F>;

            fn zeros_grad(&self, logits: Self::Input<'_>) -> Self::Grad {
                ::ndarray::Array2::zeros(logits.raw_dim())
            }

            fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
                grad.view_mut()
            }

            fn forward_backward_into(
                &self,
                logits: Self::Input<'_>,
                labels: Self::Target<'_>,
                grad: Self::GradMut<'_>,
            ) -> $crate::Result<F> {
                self.run(logits, labels, Some(grad), None)
            }
        }
    };
}

pub(crate) use impl_label_loss;
