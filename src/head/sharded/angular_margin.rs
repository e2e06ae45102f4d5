//! [`AngularMarginHead`] (ArcFace, CosFace, the combined margin) with its
//! classes split across processes, as insightface's model-parallel
//! `PartialFC`.
//!
//! Before the chunks, the class rows' norms meet in one all-reduce of two
//! `f64` (the range of their `log2`, which sets the power-of-two scale of
//! the products) and one of one `f64` (the largest reciprocal norm, which
//! sets the gradient's scale). Per chunk of `T` samples, each process
//! computes its shard's cosines and the softmax is completed as in the
//! linear head: an all-reduce of the rows' maxima and out-of-range flags
//! (`2 T` of `F`), then of the sums of exponentials and the target's logit
//! `s phi(cos theta_y)`, which only the shard holding the target computes
//! (`2 T` `f64`). The target's perpendicular part of `d embeddings` is
//! added by that shard before `d embeddings` is all-reduced; the radial
//! part is removed after, on every process (it is linear).

use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, s};

use super::{
    ClassSharded, Fingerprint, Report, agree, block_rows, map_rows, map_rows_mut, sum_hidden_grad,
};
use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute, Signature};
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::expect_shape;
use crate::distributed::{Collective, ReduceOp, all_reduce_floats};
use crate::engine::angular::margin::target_sin;
use crate::engine::angular::norms::{exact_row_norms, grad_shift, unscale_grad};
use crate::engine::angular::row::{MarginRow, ShardTarget};
use crate::engine::angular::{
    EmbeddingsAndLabels, EmbeddingsGradMut, Sealed, Spec, check_embeddings_of,
};
use crate::engine::linear_chunks::{Linear, LinearGradViews, linear_chunks};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::with_lane_mut;
use crate::head::AngularMarginHead;
use crate::head::angular_margin::{Geometry, SpanTooWide, log2_range, row_blocks, span_error};
use crate::{Error, Float, Result};

const WHAT: &str = "ClassSharded<AngularMarginHead>";

impl<F: Float, L: Sealed, C: Collective> Compute<F> for ClassSharded<AngularMarginHead<L>, C> {
    type Sig = EmbeddingsAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let spec = self.head.loss().spec();
        let Call {
            input,
            target: labels,
            mut grad,
            mut per,
        } = call;
        let (shard, collective) = (self.shard, &self.collective);
        let (n, d) = input.embeddings.dim();
        let local = check_embeddings_of(&spec, &input, &labels, grad.as_ref(), shard.classes())
            .and_then(|_| expect_shape("weight", input.weight.shape(), &[shard.len(), d]))
            .and_then(|()| {
                let ne = exact_row_norms("embeddings", &input.embeddings)?;
                let nw = exact_row_norms("weight", &input.weight)
                    .map_err(|e| global_row(e, shard.offset()))?;
                Ok((ne, nw))
            });
        let finite = EmbeddingsAndLabels::all_finite(&input);
        let report = Report {
            failed: false,
            shard: Some(shard),
            hidden: (n, d),
            grad: grad.is_some(),
            finite,
            fingerprint: fingerprint(&spec, self.head.chunk_rows(), input.embeddings, &labels),
        };
        let agreed = agree(collective, WHAT, &local, report)?;
        let (ne, nw) = local?;

        // The scales of the products, from every shard's norms.
        let w_range = if agreed.not_finite > 0 {
            None
        } else {
            let (lo, hi) = log2_range(&nw).unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
            let mut range = [hi, -lo];
            collective.all_reduce_f64(ReduceOp::Max, &mut range);
            Some((-range[1], range[0]))
        };
        let (g, shifts) = match Geometry::<F>::scales(&ne, w_range) {
            Ok(scales) => scales,
            Err(SpanTooWide) => {
                // The shard holding the smallest row names it.
                let lo = w_range.map_or(f64::NAN, |r| r.0);
                return Err(match nw.iter().position(|n| n.log2() == lo) {
                    Some(j) => span_error::<F>(shard.offset() + j, nw[j]),
                    None => Error::PeerFailed {
                        what: WHAT,
                        failed: 1,
                        processes: collective.size(),
                    },
                });
            }
        };
        let geo = Geometry::with_scales(input.embeddings, input.weight, &ne, &nw, g, shifts);
        let mut max_inv_w = [geo.max_inv_w()];
        collective.all_reduce_f64(ReduceOp::Max, &mut max_inv_w);
        let t = grad_shift::<F>(&spec, n, geo.grad_factor_with(max_inv_w[0]));
        let rows = self.head.chunk_rows_for::<F>(agreed.max_len).min(n);
        let terms = Terms {
            row: MarginRow::with_grad_shift(&spec, n, t),
            geo: &geo,
            labels: &labels,
            shard,
            single_class: shard.classes() == 1,
        };

        let want_grad = grad.is_some();
        let mut perp = vec![F::zero(); if want_grad { n } else { 0 }];
        let grad_views = grad.as_mut().map(|g| LinearGradViews {
            hidden: &mut g.embeddings,
            weight: &mut g.weight,
            bias: None,
        });
        let linear = Linear {
            hidden: geo.h.view(),
            weight: input.weight,
            bias: None,
        };
        let sum = linear_chunks(linear, rows, grad_views, F::one(), |start, z| {
            let count = z.nrows();
            let firsts = terms.row_maxes(start, z.view());
            let mut maxes: Vec<F> = firsts.iter().map(|(m, _)| *m).collect();
            maxes.extend(firsts.iter().map(|(_, t)| match t {
                Some(_) => F::zero(),
                None => F::one(),
            }));
            all_reduce_floats(collective, ReduceOp::Max, &mut maxes);
            let (maxes, out_of_range) = maxes.split_at(count);
            let targets: Vec<_> = firsts.into_iter().map(|(_, t)| t.flatten()).collect();
            let mut parts = terms.row_sums(start, z, maxes, &targets, want_grad);
            collective.all_reduce_f64(ReduceOp::Sum, &mut parts);
            let per = per.as_mut().map(|p| p.slice_mut(s![start..start + count]));
            let perp = if want_grad {
                &mut perp[start..start + count]
            } else {
                Default::default()
            };
            let global = Global {
                maxes,
                out_of_range,
                parts: &parts,
            };
            Ok(terms.rows(start, z, &global, &targets, want_grad, per, perp))
        })?;

        if let Some(g) = grad {
            let EmbeddingsGradMut {
                embeddings: mut dh,
                weight: mut dw,
            } = g;
            let holds = |i: usize| shard.local(labels.class(i));
            geo.weight_radial_and_perp(&mut dw, holds, &perp);
            let weight = unscale_grad("weight", &mut dw, &[], t);
            // This shard's targets' perpendicular parts, then the sum over
            // the shards (and whether one failed), then the radial parts.
            geo.add_hidden_perp(&mut dh, holds, &perp);
            sum_hidden_grad(collective, WHAT, &mut dh, weight.is_err())?;
            weight?;
            geo.remove_hidden_radial(&mut dh);
            unscale_grad("embeddings", &mut dh, &geo.shifts, t)?;
        }
        agreed.peers_finite(finite, WHAT, collective.size())?;
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "embeddings",
        })
    }
}

/// An error naming a row of this shard's `weight`, renamed to the row of
/// the whole head.
fn global_row(e: Error, offset: usize) -> Error {
    match e {
        Error::InvalidInput {
            what: "weight",
            mut index,
            value,
            expected,
        } => {
            if let Some(i) = index.first_mut() {
                *i += offset;
            }
            Error::InvalidInput {
                what: "weight",
                index,
                value,
                expected,
            }
        }
        other => other,
    }
}

/// The hash of what every process must pass alike: the embeddings, the
/// labels and the options.
fn fingerprint<F: Float>(
    spec: &Spec,
    chunk_rows: Option<usize>,
    embeddings: ArrayView2<'_, F>,
    labels: &Labels<'_>,
) -> u64 {
    let mut h = Fingerprint::default();
    h.floats(embeddings.iter().copied());
    for label in labels.iter() {
        h.word(label as u64);
    }
    h.word(spec.reduction.as_str().len() as u64);
    for option in [spec.scale, spec.m1, spec.m2, spec.m3] {
        h.word(option.to_bits());
    }
    h.word(u64::from(spec.easy_margin));
    h.word(chunk_rows.map_or(u64::MAX, |r| r as u64));
    h.finish()
}

/// What every row of a call shares.
struct Terms<'c, 'a, 'l, F> {
    row: MarginRow<F>,
    geo: &'c Geometry<'a, F>,
    labels: &'c Labels<'l>,
    shard: super::ClassShard,
    /// The head has one class: every row's loss is 0 (`p_y = 1`).
    single_class: bool,
}

/// A chunk's all-reduced row statistics: the maxima, whether a row has a
/// cosine out of range on some shard, and per row the sum of
/// exponentials and the target's logit.
struct Global<'g, F> {
    maxes: &'g [F],
    out_of_range: &'g [F],
    parts: &'g [f64],
}

impl<F: Float> Terms<'_, '_, '_, F> {
    /// Sample `i`'s cosines with this shard's classes, from the products
    /// `z`, into `c`.
    fn cosines(&self, i: usize, z: &[F], c: &mut Vec<F>) {
        let inv_h = self.geo.inv_h[i];
        c.clear();
        c.extend(
            z.iter()
                .zip(&self.geo.inv_w)
                .map(|(&z, &inv_w)| z * inv_h * inv_w),
        );
    }

    /// Sample `i`'s target on this shard, if it holds it: its column and
    /// `sin(theta)` from the two vectors.
    fn target(&self, i: usize, scratch: &mut Vec<F>) -> Option<(usize, Option<F>)> {
        let y = self.shard.local(self.labels.class(i))?;
        let sin = if self.row.needs_sin() {
            let w = self.geo.weight_row(y, scratch);
            target_sin(self.geo.h.row(i), self.geo.norm_h[i], w, self.geo.norm_w[y])
        } else {
            F::zero()
        };
        Some((y, Some(sin)))
    }

    /// Per row of the chunk from sample `start`: this shard's part of the
    /// row's maximum logit and its target, or `None` for a row with a
    /// cosine out of range (then `-inf`).
    #[allow(clippy::type_complexity)]
    fn row_maxes(
        &self,
        start: usize,
        z: ArrayView2<'_, F>,
    ) -> Vec<(F, Option<Option<ShardTarget<F>>>)> {
        map_rows(z, |(c, w): &mut (Vec<F>, Vec<F>), r, zr| {
            let i = start + r;
            self.cosines(i, zr, c);
            let target = self.target(i, w);
            match self.row.shard_max(c, target) {
                Some((max, t)) => (max, Some(t)),
                None => (F::neg_infinity(), None),
            }
        })
    }

    /// Per row: this shard's sum of exponentials against the row's
    /// maximum, and the target's logit (0 where the shard does not hold
    /// it), in `f64`; with `store`, the exponentials written over `z`.
    fn row_sums(
        &self,
        start: usize,
        z: &mut ArrayViewMut2<'_, F>,
        maxes: &[F],
        targets: &[Option<ShardTarget<F>>],
        store: bool,
    ) -> Vec<f64> {
        let parts = map_rows_mut(z, |c: &mut Vec<F>, r, zr| {
            let (i, target) = (start + r, targets[r].as_ref());
            self.cosines(i, zr, c);
            let g = if store { Some(zr) } else { None };
            let sum = self.row.shard_exps(c, target, maxes[r], g);
            [sum.as_f64(), target.map_or(0.0, |t| t.z)]
        });
        parts.concat()
    }

    /// The rows' values (into `per`, and summed) and, with `want_grad`,
    /// `G' = dL/dcos / (|h_i| |w_j|)` written over the stored exponentials
    /// in `z` and the targets' perpendicular coefficients into `perp`.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        start: usize,
        z: &mut ArrayViewMut2<'_, F>,
        global: &Global<'_, F>,
        targets: &[Option<ShardTarget<F>>],
        want_grad: bool,
        per: Option<ArrayViewMut1<'_, F>>,
        perp: &mut [F],
    ) -> Sum {
        let block = block_rows::<F>(z.ncols());
        let elements = z.len();
        let blocks = row_blocks(z, per, perp, block);
        let sums = map_blocks(blocks, elements, |(first, mut zb, mut pb, kb)| {
            let mut lane = Vec::new();
            let mut sum = Sum::default();
            for (k, row) in zb.outer_iter_mut().enumerate() {
                let r = first + k;
                let (exp_sum, target_z) = (global.parts[2 * r], global.parts[2 * r + 1]);
                let max = global.maxes[r];
                let broken = global.out_of_range[r] > F::zero();
                let value = if broken {
                    // A cosine out of range (a row that is not finite): the
                    // value the loss alone gives, reported by the reducer.
                    f64::NAN
                } else if self.single_class {
                    0.0
                } else {
                    (max.as_f64() - target_z) + exp_sum.ln()
                };
                if want_grad {
                    let target = targets[r].as_ref();
                    let coefficient = with_lane_mut(row, &mut lane, |g| {
                        if broken || self.single_class {
                            g.fill(F::zero());
                            return F::zero();
                        }
                        let (_, p) = self.row.shard_grad(g, target, F::lit(exp_sum));
                        // G' = g / (|h_i| |w_j|).
                        let inv_h = self.geo.inv_h[start + r];
                        for (g, &inv_w) in g.iter_mut().zip(&self.geo.inv_w) {
                            *g = *g * inv_h * inv_w;
                        }
                        p
                    });
                    kb[k] = coefficient;
                }
                if let Some(p) = pb.as_mut() {
                    p[k] = F::lit(value);
                }
                sum.add::<F>(r, value);
            }
            sum
        });
        Sum::of_blocks(sums)
    }
}
