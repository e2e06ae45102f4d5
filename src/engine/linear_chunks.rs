//! The loop of the fused classifier heads: the logits of a linear layer,
//! `hidden W^T + b`, a chunk of tokens at a time, turned into their
//! gradient by the head's loss, and the three products that carry it back
//! to the hidden states, the weight and the bias.
//!
//! One `(rows, V)` buffer is reused for every chunk: the head's loss reads
//! the chunk's logits from it and writes `dL/dZ` over them, so the working
//! set beyond the inputs and the gradients is that buffer (and `gemm`'s
//! packing), whatever `N`. The products run on the current rayon pool's
//! threads (`numerics::matmul`), whose results do not depend on the thread
//! count.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

use crate::base::reduction::Sum;
use crate::numerics::matmul::{Threads, mat_mul};
use crate::{Float, Result};

/// A linear layer's input and parameters: `hidden (N, D)`, `weight (V, D)`,
/// `bias (V)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear<'a, F> {
    pub hidden: ArrayView2<'a, F>,
    pub weight: ArrayView2<'a, F>,
    pub bias: Option<ArrayView1<'a, F>>,
}

/// Where the products write: `d hidden (N, D)`, `d weight (V, D)`, and
/// `d bias (V)` if wanted. All three are overwritten.
pub(crate) struct LinearGradViews<'s, 'g, F> {
    pub hidden: &'s mut ArrayViewMut2<'g, F>,
    pub weight: &'s mut ArrayViewMut2<'g, F>,
    pub bias: Option<&'s mut ArrayViewMut1<'g, F>>,
}

/// Runs the chunks of `rows` tokens (the last one shorter). For each, the
/// logits `Z_c = H_c W^T + b` are computed into the buffer and handed to
/// `chunk(start, z)`, which returns the chunk's [`Sum`] (its samples
/// numbered from 0) and, when `grad` is given, leaves `dL/dZ_c` in `z`;
/// then `dH_c = scale G W`, `dW += scale G^T H_c`, `db += scale sum_i G_i`.
/// The chunks' sums are added in order. `chunk` may stop the loop with an
/// error.
pub(crate) fn linear_chunks<F: Float>(
    linear: Linear<'_, F>,
    rows: usize,
    mut grad: Option<LinearGradViews<'_, '_, F>>,
    scale: F,
    mut chunk: impl FnMut(usize, &mut ArrayViewMut2<'_, F>) -> Result<Sum>,
) -> Result<Sum> {
    let Linear {
        hidden,
        weight,
        bias,
    } = linear;
    let n = hidden.nrows();
    let rows = rows.clamp(1, n.max(1));
    let mut buffer = Array2::<F>::zeros((rows, weight.nrows()));
    let mut sum = Sum::default();
    for start in (0..n).step_by(rows) {
        let end = (start + rows).min(n);
        let h = hidden.slice(s![start..end, ..]);
        let mut z = buffer.slice_mut(s![..end - start, ..]);
        mat_mul(F::one(), h, weight.t(), F::zero(), &mut z, Threads::Pool);
        if let Some(b) = &bias {
            z += b;
        }
        let totals = chunk(start, &mut z)?;
        sum = sum.then(totals.shifted(start));
        if let Some(g) = grad.as_mut() {
            let mut dh = g.hidden.slice_mut(s![start..end, ..]);
            mat_mul(scale, z.view(), weight, F::zero(), &mut dh, Threads::Pool);
            let beta = if start == 0 { F::zero() } else { F::one() };
            mat_mul(scale, z.t(), h, beta, g.weight, Threads::Pool);
            if let Some(db) = g.bias.as_mut() {
                let column_sums = z.sum_axis(Axis(0));
                if start == 0 {
                    db.fill(F::zero());
                }
                db.scaled_add(scale, &column_sums);
            }
        }
    }
    Ok(sum)
}
