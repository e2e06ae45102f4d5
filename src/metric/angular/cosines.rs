//! The loss on precomputed cosines.

use crate::base::loss::{Call, ScoresAndLabels};
use crate::base::reduction::Totals;
use crate::base::validate::{expect_nonempty, expect_shape};
use crate::engine::angular::Spec;
use crate::engine::angular::margin::check_scale_fits;
use crate::engine::angular::row::{MarginRow, cosine_limit};
use crate::engine::softmax_rows::rows_2d;
use crate::{Error, Float, Result};

/// The loss on precomputed cosines `(N, C)`.
pub(crate) fn run_cosines<F: Float>(
    spec: &Spec,
    call: Call<'_, '_, '_, F, ScoresAndLabels>,
) -> Result<Totals> {
    let Call {
        input: cosines,
        target: labels,
        grad,
        per,
    } = call;
    let shape = cosines.shape();
    expect_nonempty("cosines", shape, 0, "sample")?;
    expect_nonempty("cosines", shape, 1, "class")?;
    let (n, c) = cosines.dim();
    check_scale_fits::<F>(spec)?;
    labels.check_rows(n, c)?;
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    let row = MarginRow::new(spec, n);
    // Each row checks its own range in the pass that finds its max, and
    // returns NaN when a value is out of range or NaN (which nothing else
    // produces: the exponentials are at most 1 and their sum at least 1).
    // The input is read once instead of twice; the error is reported after.
    let sum = rows_2d(cosines, grad, per, false, |i, c_row, g, (beyond, _, _)| {
        row.run(c_row, labels.class(i), None, g, beyond).0
    });
    if sum.total.is_nan() {
        let bad = |v: &F| v.is_nan() || v.abs() > cosine_limit::<F>();
        if let Some((idx, &v)) = cosines.indexed_iter().find(|(_, v)| bad(v)) {
            return Err(Error::InvalidInput {
                what: "cosines",
                index: vec![idx.0, idx.1],
                value: v.as_f64(),
                expected: "a cosine in [-1, 1]",
            });
        }
    }
    Ok(Totals {
        sum,
        divisor: n as f64,
        what: "cosines",
    })
}
