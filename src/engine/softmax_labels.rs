//! The shell shared by the softmax losses on `(N, C)` logits and hard labels
//! (focal, Poly-1, label smoothing and the noise-robust family): the input
//! checks and the row loop. A loss on labels then only states its per-row
//! value and gradient; the checks and their messages are the same for all
//! of them by construction.

use ndarray::Array2;

use crate::base::loss::{Call, ScoresAndLabels};
use crate::base::reduction::Totals;
use crate::base::validate::{about_pow10, check_scores, overflow};
use crate::engine::softmax_rows::{Row, RowGrad, one_hot_grad_f64, softmax_rows_2d};
use crate::{Float, Reduction, Result};

/// Checks `(N, C)` logits, `(N)` labels in `0..C`, the gradient buffer and
/// the per-class option vectors (`(name, length)`, each must have length
/// `C`); then runs `row_loss` on every row through [`softmax_rows_2d`]
/// (`Mean` divides by `N`).
///
/// `row_loss(y, row, grad, scale)` returns the sample's loss (in `f64`);
/// given the row's [`RowGrad`], it overwrites it with `scale` times the
/// gradient of the sample's loss (`scale` is the reduction's factor).
/// `shifted_sums` as in [`softmax_rows_2d`].
pub(crate) fn run_on_labels<F: Float>(
    reduction: Reduction,
    call: Call<'_, '_, '_, F, ScoresAndLabels>,
    class_vectors: &[(&'static str, usize)],
    shifted_sums: bool,
    row_loss: impl Fn(usize, &Row<'_, F>, Option<RowGrad<'_, F>>, F) -> f64 + Sync,
) -> Result<Totals> {
    let Call {
        input: logits,
        target: labels,
        grad,
        per,
    } = call;
    check_scores(&logits, class_vectors, grad.as_ref())?;
    labels.check_rows(logits.nrows(), logits.ncols())?;
    let divisor = logits.nrows() as f64;
    let scale: F = reduction.grad_scale(divisor);
    let sum = softmax_rows_2d(
        logits,
        |i| labels.class(i),
        grad,
        per,
        shifted_sums,
        |y, row, g| row_loss(y, row, g, scale),
    );
    Ok(Totals {
        sum,
        divisor,
        what: "logits",
    })
}

/// Cross-entropy of transformed logits `z_ic = scale (x_ic + shift(y_i, c))`
/// on `(N, C)` logits and labels: the long-tail losses (logit adjustment,
/// LDAM). `shift` is constant in `x`, so `d l / d x = scale (softmax(z) -
/// onehot(y))`. The logits are checked as [`run_on_labels`] checks them
/// (`class_vectors` too); `z` is formed in `f64` and stored in `F`, and a
/// finite logit whose `z` passes `F` is [`crate::Error::Overflow`] naming
/// it. `Mean` divides by `N`.
pub(crate) fn run_shifted_cross_entropy<F: Float>(
    reduction: Reduction,
    call: Call<'_, '_, '_, F, ScoresAndLabels>,
    class_vectors: &[(&'static str, usize)],
    scale: f64,
    shift: impl Fn(usize, usize) -> f64,
) -> Result<Totals> {
    let Call {
        input: logits,
        target: labels,
        grad,
        per,
    } = call;
    check_scores(&logits, class_vectors, grad.as_ref())?;
    let (n, c) = logits.dim();
    labels.check_rows(n, c)?;
    let mut z = Array2::<F>::zeros((n, c));
    for ((i, k), zk) in z.indexed_iter_mut() {
        let x = logits[[i, k]];
        let v = scale * (x.as_f64() + shift(labels.class(i), k));
        *zk = F::lit(v);
        if !zk.is_finite() && x.is_finite() {
            return Err(overflow::<F>(
                "logits",
                vec![i, k],
                "the transformed logit",
                about_pow10(v.abs().log10()),
            ));
        }
    }
    let divisor = n as f64;
    let factor = reduction.grad_scale::<f64>(divisor) * scale;
    let sum = softmax_rows_2d(
        z.view(),
        |i| labels.class(i),
        grad,
        per,
        false,
        |y, row, g| {
            if let Some(g) = g {
                one_hot_grad_f64(g, y, factor);
            }
            row.nll(y)
        },
    );
    Ok(Totals {
        sum,
        divisor,
        what: "logits",
    })
}
