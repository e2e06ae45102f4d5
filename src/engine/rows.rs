//! The shell of the losses computed row by row in `f64` on `(N, C)`
//! scores without a softmax (the Crammer–Singer hinge, sparsemax, the
//! multi-label losses): the loop, the reduction's gradient factor, the
//! per-sample values and the totals. Each loss makes its own input checks
//! first and states one row's value and gradient.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::base::loss::{ByProbs, Call, Rows, ScoresAndLabels};
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{check_scores, check_values, expect_shape};
use crate::{Float, Reduction, Result};

/// Where a row writes its gradient: `set(k, d)` stores the reduction's
/// factor times `d = d l_i / d x_ik` (formed in `f64`; an entry beyond `F`
/// is recorded for the overflow rule).
pub(crate) struct RowSink<'s, 'g, F> {
    row: ArrayViewMut1<'g, F>,
    scale: f64,
    sum: &'s mut Sum,
    i: usize,
}

impl<F: Float> RowSink<'_, '_, F> {
    /// Stores the entry of class `k`.
    #[inline]
    pub fn set(&mut self, k: usize, d: f64) {
        self.row[k] = self.sum.grad_entry(self.i, self.scale * d);
    }
}

/// Runs `row(i, x_i, sink)` on every row of `scores`, which returns the
/// sample's loss (in `f64`) and, given a sink, writes every entry of its
/// gradient; `Mean` divides by `N`.
pub(crate) fn run_rows<F: Float>(
    reduction: Reduction,
    scores: ArrayView2<'_, F>,
    mut grad: Option<ArrayViewMut2<'_, F>>,
    mut per: Option<ArrayViewMut1<'_, F>>,
    row: impl Fn(usize, ArrayView1<'_, F>, Option<&mut RowSink<'_, '_, F>>) -> f64,
) -> Totals {
    let n = scores.nrows();
    let scale = reduction.grad_scale::<f64>(n as f64);
    let mut sum = Sum::default();
    for (i, x) in scores.rows().into_iter().enumerate() {
        let value = match grad.as_mut() {
            Some(g) => {
                let mut sink = RowSink {
                    row: g.row_mut(i),
                    scale,
                    sum: &mut sum,
                    i,
                };
                row(i, x, Some(&mut sink))
            }
            None => row(i, x, None),
        };
        if let Some(p) = per.as_mut() {
            p[i] = F::lit(value);
        }
        sum.add::<F>(i, value);
    }
    Totals {
        sum,
        divisor: n as f64,
        what: "logits",
    }
}

/// [`run_rows`] for `(N, C)` scores and `(N)` labels, after the checks
/// every such loss makes (the logits, the labels in `0..C`, the gradient
/// buffer); `row(y, x_i, sink)` gets the sample's label.
pub(crate) fn run_rows_on_labels<F: Float>(
    reduction: Reduction,
    call: Call<'_, '_, '_, F, ScoresAndLabels>,
    row: impl Fn(usize, ArrayView1<'_, F>, Option<&mut RowSink<'_, '_, F>>) -> f64,
) -> Result<Totals> {
    let Call {
        input: logits,
        target: labels,
        grad,
        per,
    } = call;
    check_scores(&logits, &[], grad.as_ref())?;
    labels.check_rows(logits.nrows(), logits.ncols())?;
    Ok(run_rows(reduction, logits, grad, per, |i, x, sink| {
        row(labels.class(i), x, sink)
    }))
}

/// [`run_rows`] for `(N, C)` scores and `(N, C)` targets (the multi-label
/// losses), after their checks: the logits and the per-class option
/// vectors `class_vectors`, the targets' shape, and each target, which
/// `accepts` (stated as `expected` in the error); `row(t_i, x_i, sink)`
/// gets the sample's targets.
pub(crate) fn run_rows_on_targets<F: Float>(
    reduction: Reduction,
    call: Call<'_, '_, '_, F, Rows<ByProbs>>,
    class_vectors: &[(&'static str, usize)],
    (expected, accepts): (&'static str, impl Fn(F) -> bool),
    row: impl Fn(ArrayView1<'_, F>, ArrayView1<'_, F>, Option<&mut RowSink<'_, '_, F>>) -> f64,
) -> Result<Totals> {
    let Call {
        input: logits,
        target: targets,
        grad,
        per,
    } = call;
    check_scores(&logits, class_vectors, grad.as_ref())?;
    expect_shape("targets", targets.shape(), logits.shape())?;
    check_values("targets", &targets, expected, accepts)?;
    Ok(run_rows(reduction, logits, grad, per, |i, x, sink| {
        row(targets.row(i), x, sink)
    }))
}
