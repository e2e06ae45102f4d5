//! The row norms of the normalization, and the power-of-two scaling that
//! keeps the backward pass through it inside the float type.

use ndarray::{Array1, ArrayView2, ArrayViewMut2};

use super::Spec;
use crate::base::validate::{about_pow10, overflow};
use crate::numerics::{l2_norm, times_pow2};
use crate::{Error, Float, Result};

/// The error of row `i` of `what`, of norm 0: it has no direction to
/// normalize.
fn zero_norm(what: &'static str, i: usize) -> Error {
    Error::InvalidInput {
        what,
        index: vec![i],
        value: 0.0,
        expected: "a row with a nonzero norm",
    }
}

/// The norm of every row; a row of norm 0 cannot be normalized.
pub(crate) fn row_norms<F: Float>(what: &'static str, x: &ArrayView2<'_, F>) -> Result<Array1<F>> {
    let norms: Array1<F> = x
        .rows()
        .into_iter()
        .map(|r| l2_norm(r.iter().copied()))
        .collect();
    match norms.iter().position(|&n| n == F::zero()) {
        None => Ok(norms),
        Some(i) => Err(zero_norm(what, i)),
    }
}

/// The power of two `t` by which the gradients with respect to the
/// cosines are scaled down (0 unless `s` is near `F`'s maximum): their sums
/// over classes and samples in the backward products are bounded by
/// `4 n s m1^2` times the reduction's factor, times `extra` (what the
/// caller's own factors, such as the fused head's reciprocal norms, can
/// multiply them by; 1 for none), which must stay within `F`.
pub(crate) fn grad_shift<F: Float>(spec: &Spec, n: usize, extra: f64) -> i32 {
    let factor: f64 = spec.reduction.grad_scale(n as f64);
    let bound = 4.0 * factor * spec.scale * n as f64 * spec.m1.max(1.0).powi(2) * extra;
    let room = F::max_value().as_f64() / 16.0;
    if bound <= room {
        0
    } else {
        (bound / room).log2().ceil() as i32
    }
}

/// Multiplies each gradient row by `2^(t - k_i)`: the chain rule through
/// a power-of-two scaling of the input's rows by `2^-k_i` (`shifts`, empty
/// for none) and the gradient's scale [`grad_shift`] (`t`); a gradient
/// beyond `F` is an overflow naming its entry. Also the check that no entry
/// overflowed on the way (`1 / |w_j|` of a row of tiny norm): one pass over
/// the gradients, small beside the matrix products.
pub(crate) fn unscale_grad<F: Float>(
    what: &'static str,
    g: &mut ArrayViewMut2<'_, F>,
    shifts: &[i32],
    t: i32,
) -> Result<()> {
    let beyond_f = || format!("a value beyond the range of {}", std::any::type_name::<F>());
    let quantity = "the gradient";
    for (i, mut row) in g.rows_mut().into_iter().enumerate() {
        let k = shifts.get(i).copied().unwrap_or(0) - t;
        if k == 0 {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(overflow::<F>(what, vec![i, j], quantity, beyond_f()));
            }
            continue;
        }
        for (j, v) in row.iter_mut().enumerate() {
            if !v.is_finite() {
                // inf - inf on the way (a row of tiny norm): beyond F.
                return Err(overflow::<F>(what, vec![i, j], quantity, beyond_f()));
            }
            let exact = times_pow2(v.as_f64(), -k);
            if exact.abs() > F::max_value().as_f64() {
                let actual = about_pow10(exact.abs().log10());
                return Err(overflow::<F>(what, vec![i, j], quantity, actual));
            }
            *v = F::lit(exact);
        }
    }
    Ok(())
}
