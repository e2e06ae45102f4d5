//! The shell shared by the softmax losses on `(N, C)` logits and hard labels
//! (focal, Poly-1, label smoothing and the noise-robust family): the input
//! checks and the row loop. A loss on labels then only states its per-row
//! value and gradient; the checks and their messages are the same for all
//! of them by construction.

use crate::base::loss::{Call, ScoresAndLabels};
use crate::base::reduction::Totals;
use crate::base::validate::check_scores;
use crate::engine::softmax_rows::{Row, RowGrad, softmax_rows_2d};
use crate::{Float, Reduction, Result};

/// Checks `(N, C)` logits, `(N)` labels in `0..C`, the gradient buffer and
/// the per-class option vectors (`(name, length)`, each must have length
/// `C`); then runs `row_loss` on every row through [`softmax_rows_2d`]
/// (`Mean` divides by `N`).
///
/// `row_loss(y, row, grad, scale)` returns the sample's loss (in `f64`);
/// given the row's [`RowGrad`], it overwrites it with `scale` times the
/// gradient of the sample's loss (`scale` is the reduction's factor).
pub(crate) fn run_on_labels<F: Float>(
    reduction: Reduction,
    call: Call<'_, '_, '_, F, ScoresAndLabels>,
    class_vectors: &[(&'static str, usize)],
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
        |y, row, g| row_loss(y, row, g, scale),
    );
    Ok(Totals {
        sum,
        divisor,
        what: "logits",
    })
}
