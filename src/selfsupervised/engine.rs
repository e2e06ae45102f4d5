//! What the three losses share: rows normalized as PyTorch's `F.normalize`
//! normalizes them, with the backward pass through that normalization, and
//! the softmax of one anchor over its similarities to every other row,
//! which NT-Xent and the supervised contrastive loss both are (NT-Xent is
//! the supervised loss with row `i` in group `i mod N`).

use std::collections::HashMap;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, s};

use crate::base::reduction::{Sum, Totals};
use crate::base::validate::expect_shape;
use crate::metric::cosine_embedding::scaled_row;
use crate::{Float, Reduction, Result};

/// `F.normalize`'s floor on a row's norm: rows become `z / max(|z|, EPS)`.
/// A zero row stays zero (cosine 0 with everything) instead of failing.
pub(super) const EPS: f64 = 1e-12;

/// The rows of an `(M, D)` array in `f64`, each divided by
/// `max(|z_i|, EPS)`, and what the backward pass needs.
pub(super) struct UnitRows {
    /// The normalized rows.
    pub(super) u: Array2<f64>,
    /// Per row, the power of two it was scaled by first: 1 unless an entry
    /// passes `1e150`, whose square would pass `f64` (the direction does
    /// not change, and next to such a norm `EPS` is nothing).
    scale: Vec<f64>,
    /// Per row, the norm of the scaled row.
    norm: Vec<f64>,
}

impl UnitRows {
    /// Normalizes every row of `z`.
    pub(super) fn new<F: Float>(z: &ArrayView2<'_, F>) -> Self {
        let mut u = Array2::zeros(z.raw_dim());
        let mut scale = Vec::with_capacity(z.nrows());
        let mut norm = Vec::with_capacity(z.nrows());
        for (mut out, row) in u.rows_mut().into_iter().zip(z.rows()) {
            let (v, s) = scaled_row(row.iter().map(|x| x.as_f64()));
            // Squares of a row below 1e-154 underflow, but such a row is
            // below EPS either way, where only `z / EPS` counts.
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let floor = n.max(EPS);
            for (o, x) in out.iter_mut().zip(&v) {
                *o = x / floor;
            }
            scale.push(s);
            norm.push(n);
        }
        UnitRows { u, scale, norm }
    }

    /// `d loss / d z_i` from `g = d loss / d u_i`: entry `k`, divided by
    /// `divisor`, is passed to `write(k, value)`.
    ///
    /// The division comes last so that a temperature near 0 (whose inverse
    /// may pass `f64`) turns a zero entry into 0 and any other into a large
    /// or infinite value, which the caller reports: never `0 * inf`.
    pub(super) fn backward_row(
        &self,
        i: usize,
        g: ArrayView1<'_, f64>,
        divisor: f64,
        mut write: impl FnMut(usize, f64),
    ) {
        let (s, n) = (self.scale[i], self.norm[i]);
        let u = self.u.row(i);
        if n >= EPS {
            // The normalization removes the radial part: (g - (g.u) u) / |z|.
            let radial = g.dot(&u);
            for (k, (&gk, &uk)) in g.iter().zip(&u).enumerate() {
                write(k, s * ((gk - radial * uk) / n) / divisor);
            }
        } else {
            // Below the floor the map is `z / EPS`, linear (PyTorch's
            // gradient there, finite at a zero row).
            for (k, &gk) in g.iter().enumerate() {
                write(k, s * (gk / EPS) / divisor);
            }
        }
    }
}

/// Anchors whose similarity rows are computed at a time: the scratch is
/// `BLOCK x M` instead of `M x M`, with the same arithmetic.
const BLOCK: usize = 256;

/// The contrastive loss of a batch of embeddings `z` `(M, D)`, already
/// checked (at least one row and one feature): row `i`'s positives are the
/// other rows of its group (`groups[i]`), and
///
/// ```text
/// l_i = log sum_{k != i} exp(c_ik / tau) - mean_{p in P(i)} c_ip / tau
///     = mean_p (c_max - c_ip) / tau + log sum_{k != i} exp((c_ik - c_max) / tau)
/// ```
///
/// with `c` the cosines of the normalized rows and `c_max` the anchor's
/// largest off its diagonal (the second form: no exponential passes 1, and
/// the gaps are each `>= 0`). An anchor without a positive has value 0, no
/// gradient, and is not counted in `Mean`'s divisor. Checks `grad` (named
/// `grad`) against `z`'s shape.
pub(super) fn contrast<F: Float>(
    z: ArrayView2<'_, F>,
    groups: &[i128],
    temperature: f64,
    reduction: Reduction,
    grad: Option<ArrayViewMut2<'_, F>>,
    mut per: Option<ArrayViewMut1<'_, F>>,
) -> Result<Totals> {
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), z.shape())?;
    }
    let m = z.nrows();
    let mut members: HashMap<i128, usize> = HashMap::new();
    for &g in groups {
        *members.entry(g).or_default() += 1;
    }
    let positives: Vec<usize> = groups.iter().map(|g| members[g] - 1).collect();
    let anchors = positives.iter().filter(|&&p| p > 0).count() as f64;
    let factor: f64 = reduction.grad_scale(anchors);
    let units = UnitRows::new(&z);
    let u = &units.u;
    let want_grad = grad.is_some();
    // tau * d loss / d u: the division by tau comes last (`backward_row`).
    let mut du = Array2::<f64>::zeros(if want_grad { u.dim() } else { (0, 0) });
    let mut sims = Array2::<f64>::zeros((BLOCK.min(m), m));
    let mut sum = Sum::default();
    for start in (0..m).step_by(BLOCK) {
        let end = (start + BLOCK).min(m);
        let u_block = u.slice(s![start..end, ..]);
        let mut c = sims.slice_mut(s![..end - start, ..]);
        general_mat_mul(1.0, &u_block, &u.t(), 0.0, &mut c);
        for (r, row) in c.rows_mut().into_iter().enumerate() {
            let i = start + r;
            let gain = want_grad.then_some(factor);
            let value = anchor(row, i, groups, positives[i], temperature, gain);
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
        }
        if want_grad {
            // `c` now holds tau * d loss / d c for the block's anchors:
            // d loss / d u_B += G_B u, and d loss / d u += G_B^T u_B.
            let mut du_block = du.slice_mut(s![start..end, ..]);
            general_mat_mul(1.0, &c, u, 1.0, &mut du_block);
            general_mat_mul(1.0, &c.t(), &u_block, 1.0, &mut du);
        }
    }
    if let Some(mut g) = grad {
        for (i, du_i) in du.rows().into_iter().enumerate() {
            let mut g_i = g.row_mut(i);
            units.backward_row(i, du_i, temperature, |k, v| {
                g_i[k] = sum.grad_entry(i, v);
            });
        }
    }
    Ok(Totals {
        sum,
        divisor: anchors,
        what: "embeddings",
    })
}

/// Anchor `i`'s loss from its row of cosines `c` (see [`contrast`]); with
/// `gain` (the reduction's factor) the row is overwritten with
/// `tau * d loss / d c_ik = gain (q_ik - [k in P(i)] / |P(i)|)`, 0 on the
/// diagonal, `q` the softmax off it.
fn anchor(
    mut c: ArrayViewMut1<'_, f64>,
    i: usize,
    groups: &[i128],
    positives: usize,
    temperature: f64,
    gain: Option<f64>,
) -> f64 {
    if positives == 0 {
        c.fill(0.0);
        return 0.0;
    }
    let c_max = c
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != i)
        .fold(f64::NEG_INFINITY, |m, (_, &v)| m.max(v));
    let mut exp_sum = 0.0;
    let mut gap = 0.0;
    for (k, v) in c.iter_mut().enumerate() {
        if k == i {
            *v = 0.0;
            continue;
        }
        if groups[k] == groups[i] {
            gap += c_max - *v;
        }
        let e = ((*v - c_max) / temperature).exp();
        exp_sum += e;
        *v = e;
    }
    let p = positives as f64;
    let value = (gap / p) / temperature + exp_sum.ln();
    if let Some(gain) = gain {
        for (k, v) in c.iter_mut().enumerate() {
            if k != i {
                let target = if groups[k] == groups[i] { 1.0 / p } else { 0.0 };
                *v = gain * (*v / exp_sum - target);
            }
        }
    }
    value
}
