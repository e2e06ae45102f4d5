//! The shared numerics every loss builds on.
//!
//! All log-probabilities are computed from logits in log space: a row's
//! log-softmax is `(x_c - max) - ln(sum_j exp(x_j - max))`, never
//! `ln(softmax)`, and the binary losses use `softplus` and `log_sigmoid` in
//! their overflow-free forms. Keeping `(x_c - max)` and `ln(sum)` apart (in
//! [`RowStats`]) matters in `f32`: for logits near `1e30`, `max + ln(sum)`
//! rounds `ln(sum)` away entirely.
//!
//! The softmax-family losses only ever call [`row_stats`] and
//! [`softmax_into`] (and the row driver's fused passes), which run on
//! vectorized kernels: a polynomial `exp` that stays within 1 ulp of the
//! standard library's (at AVX-512, a table-driven one with the same bound
//! in `f64`, and in `f32` from -10 up, 4 ulp at worst below), compiled for AVX-512, AVX2+FMA and portable code and
//! chosen at run time ([`simd_level`]).

mod exp;
#[cfg(target_arch = "x86_64")]
mod exp_avx512;
pub(crate) mod kernels;
pub(crate) mod matmul;
pub(crate) mod random;
pub(crate) mod simd;
pub(crate) mod transpose;

pub(crate) use exp::clamp_below;
pub use simd::{SimdLevel, simd_level};

use crate::Float;

/// `ln(1 + exp(x))`, computed without overflow for any finite `x`.
///
/// ```
/// use classloss::numerics::softplus;
/// assert!((softplus(0.0_f64) - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(softplus(1e30_f32), 1e30);
/// assert!(softplus(-1e30_f32) == 0.0);
/// ```
#[inline]
pub fn softplus<F: Float>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// `ln(sigmoid(x)) = -softplus(-x)`.
#[inline]
pub fn log_sigmoid<F: Float>(x: F) -> F {
    -softplus(-x)
}

/// `1 / (1 + exp(-x))`, without overflow for any finite `x`.
#[inline]
pub fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// `cap tanh(x / cap)`, Gemma 2's soft cap, in `f64`: `x` itself where
/// `|x / cap| < 1e-8` (there `tanh u = u (1 - u^2 / 3)` rounds to `u`, and
/// `x / cap` may be subnormal with few bits); `±cap` where `x / cap`
/// overflows (`tanh(±inf) = ±1`).
#[inline]
pub(crate) fn soft_cap(x: f64, cap: f64) -> f64 {
    let u = x / cap;
    if u.abs() < 1e-8 { x } else { cap * u.tanh() }
}

/// `z lse^2` in `f64`, ordered so that nothing overflows or underflows
/// before the result does: `(z |lse|) |lse|` for `|lse| > 1` (a tiny `z`
/// times an `lse` near `f64`'s maximum fits), `z lse^2` otherwise.
#[inline]
pub(crate) fn z_square(z: f64, lse: f64) -> f64 {
    let a = lse.abs();
    if a > 1.0 { (z * a) * a } else { z * (a * a) }
}

/// `d/dx cap tanh(x / cap) = 1 - tanh^2(x / cap) = sech^2(x / cap)`, in
/// `f64`, as `4 t / (1 + t)^2` with `t = exp(-2 |x / cap|)`: no
/// cancellation where `tanh` saturates (the form `1 - tanh^2` would be 0
/// from `|u| = 19` on, where the true slope is `4e-17`), and 0, not NaN,
/// where `t` underflows.
#[inline]
pub(crate) fn soft_cap_slope(x: f64, cap: f64) -> f64 {
    let t = (-2.0 * (x / cap).abs()).exp();
    4.0 * t / ((1.0 + t) * (1.0 + t))
}

/// `p = exp(-nll)` and `1 - p` from `nll = -ln p >= 0`, in `f64`, each
/// within an ulp or so: `1 - p` as the subtraction where `p < 1/2` (`p`'s
/// error there is at most a quarter of an ulp of the difference, which is
/// above 1/2), and as `-expm1(-nll)` near `p = 1`, where the subtraction
/// would cancel. One call to the library where `p < 1/2` (the many-class
/// rows of a classifier), two above.
#[inline]
pub(crate) fn prob_and_complement(nll: f64) -> (f64, f64) {
    let p = (-nll).exp();
    let q = if p < 0.5 { 1.0 - p } else { -(-nll).exp_m1() };
    (p, q)
}

/// The two numbers that define a row's softmax.
///
/// `log p_c = (x_c - max) - ln_sum`, and `p_c = exp(x_c - max) / exp(ln_sum)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowStats<F> {
    /// The row's largest logit.
    pub max: F,
    /// `ln(sum_j exp(x_j - max))`, in `[0, ln(C)]`.
    pub ln_sum: F,
}

impl<F: Float> RowStats<F> {
    /// `log p_c` for a logit `x_c` of the row.
    #[inline]
    pub fn log_prob(&self, x_c: F) -> F {
        (x_c - self.max) - self.ln_sum
    }

    /// The row's log-sum-exp, `max + ln_sum`.
    #[inline]
    pub fn log_sum_exp(&self) -> F {
        self.max + self.ln_sum
    }
}

/// The largest value of a non-empty row.
#[inline]
pub fn row_max<F: Float>(x: &[F]) -> F {
    F::row_max(x)
}

/// The softmax statistics of a non-empty row.
///
/// ```
/// use classloss::numerics::row_stats;
/// let s = row_stats(&[2.0_f64, 1.0, 0.1]);
/// assert!((s.log_sum_exp() - 2.4170300162778335).abs() < 1e-12);
/// ```
#[inline]
pub fn row_stats<F: Float>(x: &[F]) -> RowStats<F> {
    let max = row_max(x);
    let sum = F::exp_sum(x, max);
    RowStats {
        max,
        ln_sum: sum.ln(),
    }
}

/// Writes the softmax of `x` into `out` (same length) and returns the row's
/// statistics.
///
/// A probability whose exponential `exp(x_c - max)` is below the smallest
/// normal float (`x_c - max < -87.3` in `f32`, `< -708.4` in `f64`) is
/// written as exactly 0.
#[inline]
pub fn softmax_into<F: Float>(x: &[F], out: &mut [F]) -> RowStats<F> {
    debug_assert_eq!(x.len(), out.len());
    let max = row_max(x);
    let sum = F::exp_into(x, max, out);
    F::scale(out, F::one() / sum);
    RowStats {
        max,
        ln_sum: sum.ln(),
    }
}

/// `ln(sum_j exp(x_j))` of a non-empty row, without overflow.
///
/// ```
/// use classloss::numerics::log_sum_exp;
/// assert_eq!(log_sum_exp(&[1e30_f32, 1e30]), 1e30);
/// assert!((log_sum_exp(&[0.0_f64, 0.0]) - 2f64.ln()).abs() < 1e-15);
/// ```
#[inline]
pub fn log_sum_exp<F: Float>(x: &[F]) -> F {
    row_stats(x).log_sum_exp()
}

/// Writes `log softmax(x)` into `out` (same length).
#[inline]
pub fn log_softmax_into<F: Float>(x: &[F], out: &mut [F]) {
    let s = row_stats(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = s.log_prob(v);
    }
}

/// `sigmoid(±x)` and `softplus(±x)` of one logit, from a single `exp`.
///
/// The binary losses need all four (the loss of a positive and of a
/// negative target, and their derivatives). Each is computed directly,
/// never as `1 - sigmoid` or `softplus(x) - x`, so each keeps full relative
/// precision where it is tiny, and none overflows for any finite `x`.
///
/// ```
/// use classloss::numerics::logistic_terms;
/// let t = logistic_terms(-40.0_f64);
/// assert!((t.sigmoid - 4.248354255291589e-18).abs() < 1e-30); // not 0
/// assert_eq!(t.sigmoid_neg, 1.0);
/// assert!((t.softplus_neg - 40.0).abs() < 1e-12);
/// let big = logistic_terms(1e30_f32);
/// assert_eq!((big.softplus, big.softplus_neg, big.sigmoid_neg), (1e30, 0.0, 0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogisticTerms<F> {
    /// `sigmoid(x)`.
    pub sigmoid: F,
    /// `sigmoid(-x) = 1 - sigmoid(x)`.
    pub sigmoid_neg: F,
    /// `softplus(x) = ln(1 + exp(x)) = -ln sigmoid(-x)`.
    pub softplus: F,
    /// `softplus(-x) = -ln sigmoid(x)`.
    pub softplus_neg: F,
}

/// The [`LogisticTerms`] of `x`.
#[inline]
pub fn logistic_terms<F: Float>(x: F) -> LogisticTerms<F> {
    let e = (-x.abs()).exp();
    logistic_from_parts(x, e, e.ln_1p())
}

/// The [`LogisticTerms`] of `x` from `e = exp(-|x|)` and `ln(1 + e)`, which
/// the binary losses compute for a whole block at once.
#[inline(always)]
pub(crate) fn logistic_from_parts<F: Float>(x: F, e: F, log1p_e: F) -> LogisticTerms<F> {
    let inv = F::one() / (F::one() + e);
    let (big, small) = (inv, e * inv);
    // Selects, not a branch on the sign: in a loop over logits of random
    // sign a branch would be mispredicted half the time.
    let positive = x >= F::zero();
    LogisticTerms {
        sigmoid: if positive { big } else { small },
        sigmoid_neg: if positive { small } else { big },
        softplus: log1p_e + x.max(F::zero()),
        softplus_neg: log1p_e + (-x).max(F::zero()),
    }
}

/// The Euclidean norm `sqrt(sum_k x_k^2)`, without overflow or underflow
/// for any finite entries.
///
/// The entries are divided by the largest magnitude before squaring, so a
/// row of `1e30_f32` values (whose squares overflow) or of `1e-30_f32`
/// values (whose squares underflow to 0) gets its true norm.
///
/// ```
/// use classloss::numerics::l2_norm;
/// assert_eq!(l2_norm([3.0_f64, -4.0]), 5.0);
/// assert!((l2_norm([3e30_f32, 4e30]) / 5e30 - 1.0).abs() < 1e-6);
/// assert!((l2_norm([3e-30_f32, 4e-30]) / 5e-30 - 1.0).abs() < 1e-6);
/// assert_eq!(l2_norm([0.0_f64, 0.0]), 0.0);
/// ```
#[inline]
pub fn l2_norm<F: Float, I>(x: I) -> F
where
    I: IntoIterator<Item = F>,
    I::IntoIter: Clone,
{
    let it = x.into_iter();
    // NaN propagates (`max` would drop it: the norm of [NaN] would be 0).
    let max = it.clone().fold(F::zero(), |m, v| {
        if m.is_nan() || v.is_nan() {
            F::nan()
        } else {
            m.max(v.abs())
        }
    });
    if max == F::zero() || !max.is_finite() {
        return max;
    }
    let sum = it.fold(F::zero(), |acc, v| {
        let r = v / max;
        acc + r * r
    });
    max * sum.sqrt()
}

/// `x * 2^k`, exact while the result is a normal number: two factors, so
/// that neither leaves `f64`'s range (`2^k` alone overflows for `k > 1023`).
pub(crate) fn times_pow2(x: f64, k: i32) -> f64 {
    let half = k / 2;
    x * 2f64.powi(half) * 2f64.powi(k - half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sigmoid_is_minus_softplus_of_minus_x() {
        // ln(sigmoid(x)): ln(1/2) at 0, about -exp(-x) for large x, x for
        // very negative x.
        assert!((log_sigmoid(0.0_f64) + 2f64.ln()).abs() < 1e-15);
        assert!((log_sigmoid(30.0_f64) + (-30.0_f64).exp()).abs() < 1e-25);
        assert_eq!(log_sigmoid(-1e30_f32), -1e30);
        assert!((log_sigmoid(-2.0_f64) - (1.0 / (1.0 + 2f64.exp())).ln()).abs() < 1e-15);
    }

    #[test]
    fn log_sum_exp_and_log_softmax_agree_with_the_definitions() {
        let x = [3.0_f64, -1.0, 0.25, 7.5];
        let naive = x.iter().map(|v| v.exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&x) - naive).abs() < 1e-14);
        let s = row_stats(&x);
        assert!((s.log_sum_exp() - naive).abs() < 1e-14);
        assert_eq!(s.log_sum_exp(), s.max + s.ln_sum);
        let mut out = [0.0; 4];
        log_softmax_into(&x, &mut out);
        for (o, v) in out.iter().zip(&x) {
            assert!((o - (v - naive)).abs() < 1e-14, "{o}");
        }
    }

    #[test]
    fn times_pow2_is_exact_for_every_exponent() {
        assert_eq!(times_pow2(1.5, 3), 12.0);
        assert_eq!(times_pow2(3.0, -5), 3.0 / 32.0);
        // Beyond one factor's range: 2^2000 alone is inf in f64.
        assert_eq!(times_pow2(2f64.powi(-1000), 2000), 2f64.powi(1000));
        assert_eq!(times_pow2(2f64.powi(1000), -2001), 2f64.powi(-1001));
    }

    #[test]
    fn softplus_matches_naive_where_naive_is_exact() {
        for &x in &[-3.0_f64, -0.5, 0.0, 0.5, 3.0, 20.0] {
            let naive = (1.0 + x.exp()).ln();
            assert!((softplus(x) - naive).abs() <= 1e-14 * naive.max(1e-300) + 1e-300);
        }
    }

    #[test]
    fn sigmoid_is_symmetric_and_finite_at_extremes() {
        for &x in &[-1e30_f32, -50.0, -1.0, 0.0, 1.0, 50.0, 1e30] {
            let s = sigmoid(x);
            assert!(s.is_finite());
            assert!((s + sigmoid(-x) - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn softmax_sums_to_one_and_matches_stats() {
        let x = [3.0_f64, -1.0, 0.25, 7.5];
        let mut p = [0.0; 4];
        let s = softmax_into(&x, &mut p);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for (pc, &xc) in p.iter().zip(&x) {
            assert!((pc.ln() - s.log_prob(xc)).abs() < 1e-14);
        }
        assert_eq!(s, row_stats(&x));
    }

    #[test]
    fn log_prob_keeps_small_terms_next_to_huge_logits() {
        // max + ln_sum would round ln 2 away; (x - max) - ln_sum keeps it.
        let s = row_stats(&[1e30_f32, 1e30]);
        assert!((s.log_prob(1e30) + std::f32::consts::LN_2).abs() < 1e-7);
    }

    #[test]
    fn logistic_terms_agree_with_the_single_functions() {
        for &x in &[-800.0_f64, -35.0, -2.5, -1e-3, 0.0, 1e-3, 2.5, 35.0, 800.0] {
            let t = logistic_terms(x);
            let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs());
            assert!(close(t.sigmoid, sigmoid(x)), "sigmoid({x})");
            assert!(close(t.sigmoid_neg, sigmoid(-x)), "sigmoid(-{x})");
            assert!(close(t.softplus, softplus(x)), "softplus({x})");
            assert!(close(t.softplus_neg, softplus(-x)), "softplus(-{x})");
        }
    }
}
