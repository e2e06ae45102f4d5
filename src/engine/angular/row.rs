//! One sample's row of an angular-margin loss on its cosines, straight on
//! the row kernels: what the loss on cosines, the loss on embeddings and
//! the fused head all run.

use super::Spec;
use super::margin::{MarginFn, TargetLogit, sin_from_cos};
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
        let split = sin.is_some();
        let Some((max, Some(target))) = self.shard_max(c, Some((y, sin))) else {
            // A cosine out of range: the caller finds the value and
            // reports it.
            return (f64::NAN, F::zero());
        };
        if c.len() == 1 {
            // The target is the only class: p_y = 1 whatever its logit
            // (which may not fit F: s near F's maximum times phi < -1).
            if let Some(g) = g {
                g[0] = F::zero();
            }
            return (0.0, F::zero());
        }
        // -log p_y in f64, finite where F's would overflow.
        let nll = |sum: F| (max.as_f64() - target.z) + sum.ln().as_f64();
        let Some(g) = g else {
            let sum = self.shard_exps(c, Some(&target), max, None);
            return (nll(sum), F::zero());
        };
        let sum = self.shard_exps(c, Some(&target), max, Some(&mut *g));
        let (d_target, perp) = self.shard_grad(g, Some(&target), sum);
        if !split {
            // In f64: at |c| = 1 the slope is m1^2 cos(m2) (CombinedMargin),
            // which times s can pass F's range.
            let slope = self.margin.slope(&target.logit, c[y], target.sin);
            g[y] = beyond.entry(d_target.as_f64() * slope);
            return (nll(sum), F::zero());
        }
        (nll(sum), perp)
    }

    /// The part of a row's maximum logit on the cosines `c` of a class
    /// shard (the whole row for the losses on one process): the largest
    /// `s c_j` off the target, or the target's logit if larger, where the
    /// shard holds the target (`Some((y, sin))`, `sin` as in
    /// [`MarginRow::run`]); and the target. `None` when a cosine is out
    /// of range; `-inf` for a shard without cosines.
    #[inline]
    pub(crate) fn shard_max(
        &self,
        c: &[F],
        target: Option<(usize, Option<F>)>,
    ) -> Option<(F, Option<ShardTarget<F>>)> {
        let y = target.map_or(c.len(), |(y, _)| y);
        let (before, after) = (&c[..y], &c[(y + 1).min(c.len())..]);
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
        let c_y_in_range = target.is_none_or(|_| c[y].abs() <= limit);
        if !(lo >= -limit && hi <= limit && c_y_in_range) {
            return None;
        }
        // `s > 0`: the largest `s c_j` off the target is `s` times the largest
        // `c_j` (and -inf when there is none).
        let off = self.s * hi;
        let Some((y, sin)) = target else {
            return Some((off, None));
        };
        let sin = sin.unwrap_or_else(|| sin_from_cos(c[y]));
        let logit = self.margin.target(c[y], sin);
        // In f64 for the loss: `s phi` can pass -F::MAX (then e_y is 0 and
        // the loss, beyond F, is the reducer's overflow).
        let z = self.s.as_f64() * logit.value;
        let target = ShardTarget { y, logit, z, sin };
        Some((F::lit(z).max(off), Some(target)))
    }

    /// The sum of a shard's exponentials `exp(logit - max)` against the
    /// row's `max` (the target's too, where the shard holds it), with `g`
    /// stored there (the target's in its own entry).
    #[inline]
    pub(crate) fn shard_exps(
        &self,
        c: &[F],
        target: Option<&ShardTarget<F>>,
        max: F,
        g: Option<&mut [F]>,
    ) -> F {
        let s = self.s;
        let Some(t) = target else {
            return match g {
                Some(g) => F::scaled_exp_into(c, s, max, g),
                None => F::scaled_exp_sum(c, s, max),
            };
        };
        let y = t.y;
        let e_y = (F::lit(t.z) - max).exp();
        let (before, after) = (&c[..y], &c[y + 1..]);
        let Some(g) = g else {
            return F::scaled_exp_sum(before, s, max) + e_y + F::scaled_exp_sum(after, s, max);
        };
        let (g_before, g_rest) = g.split_at_mut(y);
        let (g_y, g_after) = g_rest.split_at_mut(1);
        g_y[0] = e_y;
        F::scaled_exp_into(before, s, max, g_before)
            + e_y
            + F::scaled_exp_into(after, s, max, g_after)
    }

    /// A shard's gradient with respect to its cosines, over the
    /// exponentials [`MarginRow::shard_exps`] stored in `g`, from the whole
    /// row's sum: `scale * s * p_j` off the target, and on it (where the
    /// shard holds it) `d = scale * s * (p_y - 1)` times the `lin` part of
    /// `phi'`. Returns `d` and the coefficient of the unit perpendicular
    /// direction the caller adds (0 where `sin = 0` or the margin has no
    /// such part).
    #[inline]
    pub(crate) fn shard_grad(
        &self,
        g: &mut [F],
        target: Option<&ShardTarget<F>>,
        sum: F,
    ) -> (F, F) {
        let k = self.scale * self.s;
        let Some(t) = target else {
            F::scale(g, k / sum);
            return (F::zero(), F::zero());
        };
        let y = t.y;
        let d_target = k * (g[y] / sum - F::one());
        let (g_before, g_rest) = g.split_at_mut(y);
        let (g_y, g_after) = g_rest.split_at_mut(1);
        F::scale(g_before, k / sum);
        F::scale(g_after, k / sum);
        g_y[0] = d_target * t.logit.lin;
        // At sin = 0 the perpendicular direction does not exist (d cos / d e
        // = 0 there): no such term.
        let perp = t.logit.perp.filter(|_| t.sin > F::zero());
        (d_target, perp.map_or(F::zero(), |p| d_target * p))
    }
}

/// A row's target on the class shard that holds it (the whole row on one
/// process): its column, the margin's logit, `s phi(c_y)` in `f64`, and
/// `sin(theta)`.
#[derive(Clone, Copy)]
pub(crate) struct ShardTarget<F> {
    /// The target's column among the shard's.
    pub y: usize,
    logit: TargetLogit<F>,
    /// The target's logit `s phi(c_y)`, in `f64`.
    pub z: f64,
    sin: F,
}
