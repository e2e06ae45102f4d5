//! The row norms of the normalization, and the power-of-two scaling that
//! keeps the backward pass through it inside the float type.

use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut2, Axis};

use super::Spec;
use crate::base::validate::{about_pow10, overflow};
use crate::engine::parallel::map_blocks;
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

/// Elements per block of [`exact_row_norms`].
const NORM_BLOCK: usize = 1 << 14;

/// A row's norm as `m 2^k` in `f64`, `2^k` the power of two of the row's
/// largest entry (so `m` is in `[1, 2 sqrt(D))`): exact however far the
/// norm is from `F`'s range (an `f64` row near `f64::MAX`, or of subnormal
/// entries, whose norm `f64` itself cannot hold).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowNorm {
    m: f64,
    k: i32,
}

impl RowNorm {
    /// The norm of `row` (0 for a row of zeros, NaN for a row with a NaN).
    pub(crate) fn of<F: Float>(row: ArrayView1<'_, F>) -> RowNorm {
        let max = row.iter().fold(0.0_f64, |m, v| {
            let a = v.as_f64().abs();
            if m.is_nan() || a.is_nan() {
                f64::NAN
            } else {
                m.max(a)
            }
        });
        if max == 0.0 || !max.is_finite() {
            return RowNorm { m: max, k: 0 };
        }
        let k = max.log2().floor() as i32;
        // 2^-k in two factors, each within f64 (k reaches +-1074).
        let (f1, f2) = (times_pow2(1.0, -k / 2), times_pow2(1.0, -k + k / 2));
        let m = l2_norm(row.iter().map(|v| v.as_f64() * f1 * f2));
        RowNorm { m, k }
    }

    /// Whether the row is all zeros.
    pub(crate) fn is_zero(self) -> bool {
        self.m == 0.0
    }

    /// `log2` of the norm (NaN or infinite for a row that is not finite).
    pub(crate) fn log2(self) -> f64 {
        self.k as f64 + self.m.log2()
    }

    /// The norm times `2^g`, in `f64`: exact to rounding where it is a
    /// normal `f64`.
    pub(crate) fn times_pow2(self, g: i32) -> f64 {
        times_pow2(self.m, self.k + g)
    }
}

/// [`RowNorm::of`] every row of `x` (blocks of rows in parallel); a row of
/// norm 0 is an error naming it.
pub(crate) fn exact_row_norms<F: Float>(
    what: &'static str,
    x: &ArrayView2<'_, F>,
) -> Result<Vec<RowNorm>> {
    let rows = (NORM_BLOCK / x.ncols().max(1)).max(1);
    let blocks: Vec<_> = x.axis_chunks_iter(Axis(0), rows).collect();
    let parts = map_blocks(blocks, x.len(), |b| {
        b.rows().into_iter().map(RowNorm::of).collect::<Vec<_>>()
    });
    let norms: Vec<RowNorm> = parts.into_iter().flatten().collect();
    match norms.iter().position(|n| n.is_zero()) {
        None => Ok(norms),
        Some(i) => Err(zero_norm(what, i)),
    }
}

/// The power of two `t` by which the gradients with respect to the
/// cosines are scaled down (0 unless `s` is near `F`'s maximum): their sums
/// over classes and samples in the backward products are bounded by
/// `4 n s m1^2` times the reduction's factor, times `extra` (what the
/// caller's own factors, such as the fused head's reciprocal norms, can
/// multiply them by; 1 for none), which must stay within `F`. The bound is
/// taken in `log2`, so that one beyond `f64` (`s = 1e308` in `f64`) gives
/// its `t` too, not an infinite one.
pub(crate) fn grad_shift<F: Float>(spec: &Spec, n: usize, extra: f64) -> i32 {
    let factor: f64 = spec.reduction.grad_scale(n as f64);
    let log2_bound = 2.0
        + factor.log2()
        + spec.scale.log2()
        + (n as f64).log2()
        + 2.0 * spec.m1.max(1.0).log2()
        + extra.log2();
    let log2_room = F::max_value().as_f64().log2() - 4.0;
    if log2_bound <= log2_room {
        0
    } else {
        (log2_bound - log2_room).ceil() as i32
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
