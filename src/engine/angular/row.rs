//! One sample's row of an angular-margin loss on its cosines, straight on
//! the row kernels: what the loss on cosines, the loss on embeddings and
//! the fused head all run.

use super::Spec;
use super::margin::{MarginFn, sin_from_cos};
use crate::Float;
use crate::engine::softmax_rows::GradBeyond;
use crate::numerics::times_pow2;

/// The largest `|cos|` accepted: rounding in a normalized dot product can
/// leave it a little above 1.
#[inline]
pub(crate) fn cosine_limit<F: Float>() -> F {
    F::one() + F::epsilon().sqrt()
}

/// One sample's row of the loss, straight on the row kernels: the margin,
/// the scale `s`, and the reduction's factor on the gradient.
pub(crate) struct MarginRow<F> {
    margin: MarginFn<F>,
    s: F,
    scale: F,
}

impl<F: Float> MarginRow<F> {
    /// The row of `spec` in a batch of `n` samples.
    pub(crate) fn new(spec: &Spec, n: usize) -> Self {
        Self::with_grad_shift(spec, n, 0)
    }

    /// [`MarginRow::new`] whose gradients are scaled by `2^-shift` (exact),
    /// for a caller whose sums of them would pass `F`'s range otherwise.
    pub(crate) fn with_grad_shift(spec: &Spec, n: usize, shift: i32) -> Self {
        let scale: f64 = spec.reduction.grad_scale(n as f64);
        MarginRow {
            margin: MarginFn::new(spec),
            s: F::lit(spec.scale),
            scale: F::lit(times_pow2(scale, -shift)),
        }
    }

    /// Whether the margin needs `sin(theta)` of the target.
    pub(crate) fn needs_sin(&self) -> bool {
        self.margin.needs_sin()
    }

    /// The loss of one row of cosines `c` with target `y` (in `f64`), and
    /// with `g` its gradient with respect to the cosines written there.
    ///
    /// The logits are `s c_j` off the target and `s phi(c_y)` on it, so the
    /// exponentials are `exp(s c_j - max)` on either side of the target (one
    /// kernel call each) and one scalar on it: no row of logits is built,
    /// and a row costs what a cross-entropy row costs. The gradient is
    /// `scale * s * p_j` off the target and `scale * s * (p_y - 1) *
    /// phi'(c_y)` on it.
    ///
    /// `sin` is `sin(theta)` of the target when the caller knows it better
    /// than the cosine does (from the two vectors); with it, the target's
    /// entry of `g` holds only the `lin` part of `phi'` and the second value
    /// returned is the coefficient of the unit perpendicular direction that
    /// the caller adds itself (see `TargetLogit`); without it, the whole
    /// derivative and 0.
    #[inline]
    pub(crate) fn run(
        &self,
        c: &[F],
        y: usize,
        sin: Option<F>,
        g: Option<&mut [F]>,
        beyond: &GradBeyond,
    ) -> (f64, F) {
        let MarginRow { margin, s, scale } = self;
        let (s, scale) = (*s, *scale);
        let (before, after) = (&c[..y], &c[y + 1..]);
        // The range of the cosines off the target, in the one pass that also
        // gives their max (NaN is skipped here, but makes the sum NaN below).
        let (lo, hi) = [before, after]
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| F::row_min_max(part))
            .fold((F::infinity(), F::neg_infinity()), |(l, h), (pl, ph)| {
                (l.min(pl), h.max(ph))
            });
        let limit = cosine_limit::<F>();
        let in_range = lo >= -limit && hi <= limit && c[y].abs() <= limit;
        if !in_range {
            // The caller finds the value and reports it.
            return (f64::NAN, F::zero());
        }
        if c.len() == 1 {
            // The target is the only class: p_y = 1 whatever its logit
            // (which may not fit F: s near F's maximum times phi < -1).
            if let Some(g) = g {
                g[0] = F::zero();
            }
            return (0.0, F::zero());
        }
        let split = sin.is_some();
        let sin = sin.unwrap_or_else(|| sin_from_cos(c[y]));
        let target = margin.target(c[y], sin);
        // In f64 for the loss: `s phi` can pass -F::MAX (then e_y is 0 and
        // the loss, beyond F, is the reducer's overflow).
        let z_y64 = s.as_f64() * target.value;
        let z_y = F::lit(z_y64);
        // `s > 0`: the largest `s c_j` off the target is `s` times the largest
        // `c_j` (and -inf when the target is the only class).
        let max = z_y.max(s * hi);
        let e_y = (z_y - max).exp();
        // -log p_y in f64, finite where F's would overflow.
        let nll = |sum: F| (max.as_f64() - z_y64) + sum.ln().as_f64();
        let Some(g) = g else {
            let sum = F::scaled_exp_sum(before, s, max) + e_y + F::scaled_exp_sum(after, s, max);
            return (nll(sum), F::zero());
        };
        let (g_before, g_rest) = g.split_at_mut(y);
        let (g_y, g_after) = g_rest.split_at_mut(1);
        let sum = F::scaled_exp_into(before, s, max, g_before)
            + e_y
            + F::scaled_exp_into(after, s, max, g_after);
        let k = scale * s;
        F::scale(g_before, k / sum);
        F::scale(g_after, k / sum);
        let d_target = k * (e_y / sum - F::one());
        if !split {
            // In f64: at |c| = 1 the slope is m1^2 cos(m2) (CombinedMargin),
            // which times s can pass F's range.
            g_y[0] = beyond.entry(d_target.as_f64() * margin.slope(&target, c[y], sin));
            return (nll(sum), F::zero());
        }
        g_y[0] = d_target * target.lin;
        // At sin = 0 the perpendicular direction does not exist (d cos / d e
        // = 0 there): no such term.
        let perp = target.perp.filter(|_| sin > F::zero());
        (nll(sum), perp.map_or(F::zero(), |p| d_target * p))
    }
}
