//! The one row loop every softmax-family loss runs through.
//!
//! A loss supplies a closure that turns one row's statistics (and, when a
//! gradient is wanted, the row's softmax probabilities, which it overwrites
//! with the row's gradient) into the row's loss. The loop owns the layout
//! questions (class axis 1 of any rank, contiguous or strided lanes) and the
//! accumulation, so the speed work replaces this file and nothing else.

use ndarray::{ArrayView, ArrayView1, ArrayViewMut, Axis, RemoveAxis};

use crate::numerics::{row_stats, softmax_into, RowStats};
use crate::Float;

/// One row (class lane) of logits and its softmax statistics.
pub(crate) struct Row<'r, F> {
    /// The row's logits.
    pub x: &'r [F],
    /// Its max and log-sum.
    pub stats: RowStats<F>,
}

impl<F: Float> Row<'_, F> {
    /// `log p_c`.
    #[inline]
    pub fn log_p(&self, c: usize) -> F {
        self.stats.log_prob(self.x[c])
    }

    /// `sum_c coef(c) * (-log p_c)`, a weighted negative log-likelihood.
    #[inline]
    pub fn weighted_nll(&self, coef: impl Fn(usize) -> F) -> F {
        self.x.iter().enumerate().fold(F::zero(), |acc, (c, &xc)| {
            acc - coef(c) * self.stats.log_prob(xc)
        })
    }
}

/// Runs `f` on every class lane (axis 1) of `logits`, paired with the
/// matching item of `targets`, and returns the sum of what `f` returns
/// (accumulated in `f64`).
///
/// With `grad`, `f` receives the row's softmax probabilities in a mutable
/// slice and must overwrite them with the row's gradient; the loop writes the
/// slice back into `grad`. Each value `f` returns is also stored in
/// `per_row` when given. Lanes are visited in the logical order of the
/// remaining axes, which is the order of `targets` and `per_row`.
pub(crate) fn softmax_rows<F, D, T>(
    logits: ArrayView<'_, F, D>,
    targets: impl IntoIterator<Item = T>,
    mut grad: Option<ArrayViewMut<'_, F, D>>,
    mut per_row: Option<ArrayViewMut<'_, F, D::Smaller>>,
    f: impl Fn(T, &Row<'_, F>, Option<&mut [F]>) -> F,
) -> f64
where
    F: Float,
    D: RemoveAxis,
{
    let classes = logits.len_of(Axis(1));
    // Scratch for strided lanes (class axis of a spatial input): one row each.
    let mut x_scratch: Vec<F> = Vec::new();
    let mut g_scratch: Vec<F> = Vec::new();
    let mut grad_lanes = grad.as_mut().map(|g| g.lanes_mut(Axis(1)).into_iter());
    let mut out = per_row.as_mut().map(|p| p.iter_mut());
    let mut total = 0.0_f64;
    for (lane, target) in logits.lanes(Axis(1)).into_iter().zip(targets) {
        let x: &[F] = match lane.to_slice() {
            Some(s) => s,
            None => {
                x_scratch.clear();
                x_scratch.extend(lane.iter().copied());
                &x_scratch
            }
        };
        let value = match grad_lanes.as_mut().and_then(|it| it.next()) {
            Some(mut g_lane) => match g_lane.as_slice_mut() {
                Some(g) => {
                    let stats = softmax_into(x, g);
                    f(target, &Row { x, stats }, Some(g))
                }
                None => {
                    g_scratch.resize(classes, F::zero());
                    let stats = softmax_into(x, &mut g_scratch);
                    let v = f(target, &Row { x, stats }, Some(&mut g_scratch));
                    g_lane.assign(&ArrayView1::from(&g_scratch[..]));
                    v
                }
            },
            None => {
                let stats = row_stats(x);
                f(target, &Row { x, stats }, None)
            }
        };
        if let Some(o) = out.as_mut().and_then(|it| it.next()) {
            *o = value;
        }
        total += value.as_f64();
    }
    total
}

/// Overwrites a row of probabilities `p` with `scale * (total * p_c - coef(c))`,
/// the gradient of `-sum_c coef(c) log p_c` scaled by `scale`, where
/// `total = sum_c coef(c)`.
#[inline]
pub(crate) fn linear_target_grad<F: Float>(
    p: &mut [F],
    scale: F,
    total: F,
    coef: impl Fn(usize) -> F,
) {
    for (c, pc) in p.iter_mut().enumerate() {
        *pc = scale * (total * *pc - coef(c));
    }
}

/// Overwrites a row of probabilities `p` with `scale * (p_c - [c == y])`, the
/// gradient of `-log p_y` scaled by `scale`.
#[inline]
pub(crate) fn one_hot_grad<F: Float>(p: &mut [F], y: usize, scale: F) {
    for pc in p.iter_mut() {
        *pc *= scale;
    }
    p[y] -= scale;
}
