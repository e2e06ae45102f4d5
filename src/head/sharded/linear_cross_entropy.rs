//! [`LinearCrossEntropy`] with its classes split across processes.
//!
//! Per chunk of `T` tokens, each process computes its shard's logits
//! `Z_p = H_c W_p^T + b_p` (`T x V_p`) and the softmax is completed with
//! two all-reduces: the rows' maxima (`T` floats of `F`, and a failure flag
//! per process), then per row the
//! shard's sum of exponentials against the global maximum, the target's
//! logit (0 from the shards without it) and, with label smoothing, the
//! shard's `sum_c w_c (z_c - max)` (3 `f64`, the last 0 without smoothing).
//! Every process then has
//! each row's log-sum-exp, target logit and smoothing sum, so it computes
//! every row's value (the same bits everywhere) and its own columns of
//! `dL/dZ`, which the chunk's products carry to its rows of `dW` and `db`
//! and its part of `dH`. One all-reduce of `dH` (`N x D`) ends the call.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

use super::{
    ClassSharded, Fingerprint, Report, agree, block_rows, map_rows, map_rows_mut, sum_hidden_grad,
};
use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute, Signature};
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::expect_shape;
use crate::distributed::{Collective, ReduceOp, all_reduce_floats};
use crate::engine::linear_chunks::{Linear, LinearGradViews, linear_chunks};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::{
    GradBeyond, Row, RowGrad, exp_into_accurate, exp_sum_accurate, smoothed_grad,
    smoothed_label_term, term, with_lane_mut,
};
use crate::head::LinearCrossEntropy;
use crate::head::linear_cross_entropy::{
    Checked, LinearAndLabels, logits_overflow, repair_capped_logits,
};
use crate::numerics::{RowStats, soft_cap, soft_cap_slope, z_square};
use crate::{Error, Float, Result};

const WHAT: &str = "ClassSharded<LinearCrossEntropy>";

impl<F: Float, C: Collective> Compute<F> for ClassSharded<LinearCrossEntropy<F>, C> {
    type Sig = LinearAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input,
            target,
            mut grad,
            mut per,
        } = call;
        let (head, shard, collective) = (&self.head, self.shard, &self.collective);
        let (n, d) = input.hidden.dim();
        let local = head
            .check_call(input, target, grad.as_ref(), shard.classes())
            .and_then(|checked| {
                expect_shape("weight", input.weight.shape(), &[shard.len(), d])?;
                Ok(checked)
            });
        let finite = LinearAndLabels::all_finite(&input);
        let report = match &local {
            Ok(checked) => Report {
                failed: false,
                shard: Some(shard),
                hidden: (n, d),
                grad: grad.is_some(),
                finite,
                fingerprint: fingerprint(head, input.hidden, checked),
            },
            Err(_) => Report::default(),
        };
        let agreed = agree(collective, WHAT, &local, report)?;
        let Checked {
            labels,
            token_weights,
        } = local?;

        let (ce, divisor) = head.mean_plan(&labels, token_weights, per.is_some())?;
        let scale: F = head.reduction().grad_scale(divisor);
        let rows = head
            .chunk_rows()
            .unwrap_or_else(|| head.chunk_rows_for(agreed.max_len))
            .min(n);
        let eps = F::lit(ce.label_smoothing());
        let class_weight = ce.weight().and_then(|w| w.as_slice());
        let terms = RowTerms {
            labels: &labels,
            token_weights,
            ignore: ce.ignore_index(),
            shard,
            class_weight,
            shard_weight: class_weight.map(|w| &w[shard.range()]),
            w_sum: class_weight.map_or(shard.classes() as f64, |w| {
                w.iter().map(|v| v.as_f64()).sum()
            }),
            w_max: class_weight.map_or(1.0, |w| w.iter().fold(0.0, |m, v| v.as_f64().max(m))),
            hard: F::one() - eps,
            off: eps / F::from_count(shard.classes()),
            smoothing: ce.label_smoothing() > 0.0,
            z: ce.z_loss(),
            cap: ce.softcap(),
        };
        let grad_views = grad.as_mut().map(|g| LinearGradViews {
            hidden: &mut g.hidden,
            weight: &mut g.weight,
            bias: g.bias.as_mut(),
        });
        let want_grad = grad_views.is_some();
        let linear = Linear {
            hidden: input.hidden,
            weight: input.weight,
            bias: input.bias,
        };
        let sum = linear_chunks(linear, rows, grad_views, scale, |start, z| {
            // Whether this process failed on its logits (then every
            // process stops at this chunk).
            let mut failure = None;
            if let Some(cap) = terms.cap {
                failure = repair_capped_logits(input, start, z, cap).err();
            } else if finite && !all_finite(z.view()) {
                failure = Some(logits_overflow(input, start, z.view()));
            }
            // The rows' maxima, then one slot per process: 1 where it
            // failed (a max over the slots is each process's own flag).
            let (rows, processes) = (z.nrows(), collective.size());
            let mut maxes = terms.row_maxes(z.view());
            maxes.resize(rows + processes, F::zero());
            if failure.is_some() {
                maxes[rows + collective.rank()] = F::one();
            }
            all_reduce_floats(collective, ReduceOp::Max, &mut maxes);
            let failed = maxes
                .split_off(rows)
                .iter()
                .filter(|&&f| f > F::zero())
                .count();
            if failed > 0 {
                return Err(failure.unwrap_or(Error::PeerFailed {
                    what: WHAT,
                    failed,
                    processes,
                }));
            }
            // Without a soft cap, the exponentials stay in the buffer for
            // the gradient (under one, its chain rule needs the logits).
            let store = want_grad && terms.cap.is_none();
            let mut parts = terms.row_parts(start, z, &maxes, store);
            collective.all_reduce_f64(ReduceOp::Sum, &mut parts);
            let per = per
                .as_mut()
                .map(|p| p.slice_mut(s![start..start + z.nrows()]));
            Ok(terms.rows(start, z, (&maxes, &parts), want_grad, store, per))
        })?;

        if let Some(g) = grad.as_mut() {
            // A gradient entry beyond `F` here is this process's error
            // (from the reducer); the others stop with it.
            sum_hidden_grad(collective, WHAT, &mut g.hidden, sum.grad_overflow.is_some())?;
        }
        agreed.peers_finite(finite, WHAT, collective.size())?;
        Ok(Totals {
            sum,
            divisor,
            what: "hidden",
        })
    }
}

/// The hash of what every process must pass alike: the hidden states, the
/// labels and token weights, the class weights and the options.
fn fingerprint<F: Float>(
    head: &LinearCrossEntropy<F>,
    hidden: ArrayView2<'_, F>,
    checked: &Checked<'_, F>,
) -> u64 {
    let mut h = Fingerprint::default();
    h.floats(hidden.iter().copied());
    for label in checked.labels.iter() {
        h.word(label as u64);
        h.word((label >> 64) as u64);
    }
    if let Some(t) = &checked.token_weights {
        h.floats(t.iter().copied());
    }
    if let Some(w) = head.class_weight() {
        h.floats(w.iter().copied());
    }
    h.word(head.reduction().as_str().len() as u64);
    h.word(head.ignore_index().map_or(u64::MAX, |i| i as u64));
    for option in [
        head.label_smoothing(),
        head.z_loss(),
        head.softcap().unwrap_or(-1.0),
    ] {
        h.word(option.to_bits());
    }
    h.word(head.chunk_rows().map_or(u64::MAX, |r| r as u64));
    h.finish()
}

/// What every row of a call shares.
struct RowTerms<'c, 'a, F> {
    labels: &'c Labels<'a>,
    token_weights: Option<ArrayView1<'a, F>>,
    ignore: Option<i128>,
    shard: super::ClassShard,
    /// The class weights of all the classes (scaled for a tiny mean's
    /// divisor, as the single-process head), and this shard's.
    class_weight: Option<&'c [F]>,
    shard_weight: Option<&'c [F]>,
    w_sum: f64,
    w_max: f64,
    hard: F,
    off: F,
    smoothing: bool,
    z: f64,
    cap: Option<f64>,
}

/// The `f64` values per row of the second all-reduce.
const PARTS: usize = 3;

impl<F: Float> RowTerms<'_, '_, F> {
    /// Row `x`'s logits as the loss sees them: capped into `scratch` under
    /// a soft cap (the same rounding as the single-process head's).
    fn capped<'s>(&self, x: &'s [F], scratch: &'s mut Vec<F>) -> &'s [F] {
        match self.cap {
            Some(cap) => {
                scratch.clear();
                scratch.extend(x.iter().map(|&v| F::lit(soft_cap(v.as_f64(), cap))));
                scratch
            }
            None => x,
        }
    }

    /// Each row's largest (capped) logit on this shard, `-inf` on an empty
    /// shard.
    fn row_maxes(&self, z: ArrayView2<'_, F>) -> Vec<F> {
        if z.ncols() == 0 {
            return vec![F::neg_infinity(); z.nrows()];
        }
        map_rows(z, |(): &mut (), _, x| {
            let m = F::row_max(x);
            self.cap.map_or(m, |cap| F::lit(soft_cap(m.as_f64(), cap)))
        })
    }

    /// Per row of the chunk starting at token `start`: this shard's
    /// `sum_c exp(z_c - max)`, the target's logit (0 if the shard does not
    /// hold it), and with smoothing `sum_c w_c (z_c - max)`, in `f64`.
    /// With `store`, the exponentials are left in `z` for the gradient (not
    /// under a soft cap, whose gradient needs the logits).
    fn row_parts(
        &self,
        start: usize,
        z: &mut ArrayViewMut2<'_, F>,
        maxes: &[F],
        store: bool,
    ) -> Vec<f64> {
        let parts = map_rows_mut(z, |scratch: &mut Scratch<F>, i, x| {
            let max = maxes[i];
            let label = self.labels.class_or_ignored(start + i, self.ignore);
            let local = label.and_then(|c| self.shard.local(c));
            let y = self.capped(x, &mut scratch.capped);
            let target = local.map_or(0.0, |c| y[c].as_f64());
            let shifted = if self.smoothing {
                // `nll_sum` with a log-sum of 0 is minus the shifted sum.
                let row = Row {
                    x: y,
                    stats: RowStats {
                        max,
                        ln_sum: F::zero(),
                    },
                    shifted: None,
                };
                -row.nll_sum(self.shard_weight.map(|w| (w, 0.0)))
            } else {
                0.0
            };
            let exp_sum = match (y.is_empty(), store) {
                (true, _) => 0.0,
                (false, false) => exp_sum_accurate(y, max).as_f64(),
                (false, true) => {
                    scratch.raw.clear();
                    scratch.raw.extend_from_slice(x);
                    exp_into_accurate(&scratch.raw, max, x).as_f64()
                }
            };
            [exp_sum, target, shifted]
        });
        parts.concat()
    }

    /// The rows' values (into `per`, and summed) from the global
    /// statistics, and with `want_grad` this shard's columns of their
    /// gradient written over the logits `z`.
    fn rows(
        &self,
        start: usize,
        z: &mut ArrayViewMut2<'_, F>,
        (maxes, parts): (&[F], &[f64]),
        want_grad: bool,
        stored: bool,
        per: Option<ArrayViewMut1<'_, F>>,
    ) -> Sum {
        let block = block_rows::<F>(z.ncols());
        let elements = z.len();
        let mut pers = per.map(|p| p.into_axis_chunks_iter_mut(Axis(0), block));
        let blocks: Vec<_> = z
            .axis_chunks_iter_mut(Axis(0), block)
            .enumerate()
            .map(|(b, zb)| (b * block, zb, pers.as_mut().and_then(|it| it.next())))
            .collect();
        let sums = map_blocks(blocks, elements, |(first, mut zb, mut per)| {
            let mut scratch = Scratch::default();
            let beyond = GradBeyond::default();
            let mut sum = Sum::default();
            for (k, row) in zb.outer_iter_mut().enumerate() {
                let i = first + k;
                let p = &parts[PARTS * i..PARTS * (i + 1)];
                if want_grad {
                    let scratch_rows = (&mut scratch.raw, &mut scratch.capped);
                    with_lane_mut(row, &mut scratch.lane, |g| {
                        self.row_grad(start + i, maxes[i], p, g, stored, scratch_rows, &beyond);
                    });
                }
                let value = self.row_value(start + i, maxes[i], p);
                if let Some(per) = per.as_mut() {
                    per[k] = F::lit(value);
                }
                sum.add::<F>(i, value);
                beyond.report(&mut sum, i);
            }
            sum
        });
        Sum::of_blocks(sums)
    }

    /// Token `t`'s label, if it counts (not ignored, a token weight other
    /// than 0), and its token weight.
    fn counted(&self, t: usize) -> (Option<usize>, f64) {
        let label = self.labels.class_or_ignored(t, self.ignore);
        let token = self.token_weights.map_or(1.0, |w| w[t].as_f64());
        (label.filter(|_| token != 0.0), token)
    }

    /// Token `t`'s value, from its global maximum `max` and the all-reduced
    /// `[sum of exponentials, target logit, smoothing sum]`.
    fn row_value(&self, t: usize, max: F, parts: &[f64]) -> f64 {
        let (Some(y), token) = self.counted(t) else {
            return 0.0;
        };
        let (exp_sum, target, shifted) = (parts[0], parts[1], parts[2]);
        let w_y = self.class_weight.map_or(1.0, |w| w[y].as_f64());
        let ln_sum = exp_sum.ln();
        let lse = max.as_f64() + ln_sum;
        let nll_y = (max.as_f64() - target) + ln_sum;
        let mut value = if self.smoothing {
            // `sum_c w_c nll_c = W ln_sum - sum_c w_c (z_c - max)`; a weight
            // sum beyond f64 times a log-sum of 0 is 0.
            let spread = if ln_sum == 0.0 {
                0.0
            } else {
                self.w_sum * ln_sum
            };
            let (hard, off) = (self.hard.as_f64(), self.off.as_f64());
            smoothed_label_term(w_y, hard, nll_y, off, spread - shifted)
        } else {
            term(w_y, nll_y)
        };
        if self.z > 0.0 {
            value += term(w_y, z_square(self.z, lse));
        }
        if token == 1.0 { value } else { token * value }
    }

    /// This shard's columns of token `t`'s gradient, written over its
    /// logits `g`, or over their exponentials when `stored` (`raw` and
    /// `capped` are scratch rows).
    #[allow(clippy::too_many_arguments)]
    fn row_grad(
        &self,
        t: usize,
        max: F,
        parts: &[f64],
        g: &mut [F],
        stored: bool,
        (raw, capped): (&mut Vec<F>, &mut Vec<F>),
        beyond: &GradBeyond,
    ) {
        let (Some(y), token) = self.counted(t) else {
            g.fill(F::zero());
            return;
        };
        let exp_sum = parts[0];
        if !stored {
            raw.clear();
            raw.extend_from_slice(g);
            let x = self.capped(raw, capped);
            if !x.is_empty() {
                exp_into_accurate(x, max, g);
            }
        }
        let w_y = self.class_weight.map_or(F::one(), |w| w[y]);
        let mut total = self.hard.as_f64() * w_y.as_f64() + term(self.off.as_f64(), self.w_sum);
        if self.z > 0.0 {
            let lse = max.as_f64() + exp_sum.ln();
            total += term(w_y.as_f64(), 2.0 * self.z * lse);
        }
        let weights = self.shard_weight.map(|w| (w, self.w_max));
        let at = self.shard.local(y).map(|c| (c, self.hard * w_y));
        let row = RowGrad::from_parts(&mut *g, F::lit(1.0 / exp_sum), beyond);
        smoothed_grad(row, F::lit(token), total, self.off, weights, at);
        if let Some(cap) = self.cap {
            for (g, &x) in g.iter_mut().zip(raw.iter()) {
                *g = F::lit(g.as_f64() * soft_cap_slope(x.as_f64(), cap));
            }
        }
    }
}

/// The scratch rows of one block of [`RowTerms::rows`].
#[derive(Default)]
struct Scratch<F> {
    lane: Vec<F>,
    raw: Vec<F>,
    capped: Vec<F>,
}

/// Whether every logit of `z` is finite: in blocks without an early exit,
/// so that the common case runs as vector compares.
fn all_finite<F: Float>(z: ArrayView2<'_, F>) -> bool {
    match z.as_slice() {
        Some(s) => s
            .chunks(256)
            .all(|c| c.iter().fold(true, |acc, v| acc & v.is_finite())),
        None => z.iter().all(|v| v.is_finite()),
    }
}
