//! The row loops every softmax-family loss runs through.
//!
//! A loss supplies a closure that turns one row's statistics (and, when a
//! gradient is wanted, a [`RowGrad`]: the row's exponentials, already in the
//! gradient buffer) into the row's loss, writing the row's gradient as it
//! goes. The loops own the layout questions and the accumulation:
//! [`softmax_rows_2d`] runs `(N, C)` logits in fixed blocks of rows, in
//! parallel with the `rayon` feature, and [`softmax_rows`] any rank with
//! the class axis at 1 (contiguous or strided lanes), one lane after another.
//! [`rows_2d`] is the blocked loop alone, for a loss that computes its rows
//! itself (the angular margins on cosines). Cross-entropy with labels on
//! contiguous spatial inputs runs down the columns instead (`columns.rs`).
//!
//! A row costs three passes over its `C` values: the max, the exponentials
//! (stored in the gradient buffer, summed on the way), and one pass that
//! turns them into the gradient. The normalization `1 / sum` is folded into
//! that last pass's factor, never a pass of its own, for the losses whose
//! gradient is `k p - (a sparse or per-class term)`: cross-entropy, label
//! smoothing, focal, Poly-1, GCE, SCE, hard bootstrapping.

use std::cell::Cell;

use ndarray::{ArrayView, ArrayView1, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2};
use ndarray::{Axis, Ix1, Ix2, RemoveAxis};

use crate::Float;
use crate::base::reduction::Sum;
use crate::engine::parallel::{map_blocks, threads};
use crate::numerics::{RowStats, soft_cap};

/// One row (class lane) of logits and its softmax statistics.
pub(crate) struct Row<'r, F> {
    /// The row's logits.
    pub x: &'r [F],
    /// Its max and log-sum.
    pub stats: RowStats<F>,
    /// `sum_c (x_c - max)` in `f64`, when the row loop took it with the
    /// exponentials (`shifted_sums`), for [`Row::nll_sum`].
    pub shifted: Option<f64>,
}

impl<F: Float> Row<'_, F> {
    /// `log p_c`.
    #[inline]
    pub fn log_p(&self, c: usize) -> F {
        self.stats.log_prob(self.x[c])
    }

    /// `-log p_c` in `f64`, from the row's statistics: finite where the
    /// float type's own `log p_c` would overflow (`f32` logits `3e38` apart).
    #[inline]
    pub fn nll(&self, c: usize) -> f64 {
        let RowStats { max, ln_sum } = self.stats;
        (max.as_f64() - self.x[c].as_f64()) + ln_sum.as_f64()
    }

    /// The row's log-sum-exp `max + ln_sum`, in `f64` (finite where the
    /// float type's own sum would overflow: `f32` logits near its maximum).
    #[inline]
    pub fn lse(&self) -> f64 {
        self.stats.max.as_f64() + self.stats.ln_sum.as_f64()
    }

    /// `sum_c coef(c) * (-log p_c)`, a weighted negative log-likelihood
    /// (accumulated in `f64`: rows can be long).
    #[inline]
    pub fn weighted_nll(&self, coef: impl Fn(usize) -> F) -> f64 {
        (0..self.x.len()).fold(0.0_f64, |acc, c| acc + term(coef(c).as_f64(), self.nll(c)))
    }

    /// `sum_c w_c * (-log p_c)` with `w_c = 1` when `weights` is `None`, and
    /// `Some((w, sum_c w_c))` otherwise (the sum in `f64`: weights near the
    /// float maximum add up beyond it): one vectorized pass.
    ///
    /// `-log p_c = ln_sum - (x_c - max)`, so the sum is
    /// `W ln_sum - sum_c w_c (x_c - max)`; both terms are non-negative sums
    /// of the row's own differences, so nothing cancels catastrophically.
    #[inline]
    pub fn nll_sum(&self, weights: Option<(&[F], f64)>) -> f64 {
        let RowStats { max, ln_sum } = self.stats;
        // The vector sums run over blocks whose totals are added in `f64`,
        // so that a long row of huge logits keeps `f32` accuracy.
        const BLOCK: usize = 1024;
        let mut shifted: f64 = match (weights, self.shifted) {
            (None, Some(shifted)) => shifted,
            (None, None) => self
                .x
                .chunks(BLOCK)
                .map(|x| F::shifted_sum(x, max).as_f64())
                .sum(),
            (Some((w, _)), _) => self
                .x
                .chunks(BLOCK)
                .zip(w.chunks(BLOCK))
                .map(|(x, w)| F::shifted_dot(x, max, w).as_f64())
                .sum(),
        };
        if !shifted.is_finite() && max.is_finite() {
            // Cold: `x_c - max` overflowed `F` (f32 logits `3e38` apart);
            // each difference and product is exact in `f64`.
            let weight = |c: usize| weights.map_or(1.0, |(w, _)| w[c].as_f64());
            shifted = (self.x.iter().enumerate())
                .map(|(c, &x)| term(weight(c), x.as_f64() - max.as_f64()))
                .sum();
        }
        let w_sum = weights.map_or(self.x.len() as f64, |(_, s)| s);
        // A weight sum beyond f64 (f64 weights near its maximum) times a
        // log-sum of exactly 0 is 0, not NaN.
        let spread = if ln_sum == F::zero() {
            0.0
        } else {
            w_sum * ln_sum.as_f64()
        };
        spread - shifted
    }
}

/// `coef * nll`, and 0 where `coef` is 0: a term that counts for nothing
/// stays 0 beside a `-log p` beyond `f64` (f64 logits spanning more than
/// its range), where the product would be NaN.
#[inline]
pub(crate) fn term(coef: f64, nll: f64) -> f64 {
    if coef == 0.0 { 0.0 } else { coef * nll }
}

/// One label's smoothed cross-entropy, `w_y hard nll_y + off nll_sum`
/// (`nll_sum` already weighted), in `f64`. The weight multiplies last: a
/// subnormal `w_y` has few bits, and `(hard w_y) nll_y` would round the
/// product `hard w_y` to them first (9% off for `w_y = 5e-324`). A `hard`
/// of 0 (`eps = 1`) drops `nll_y` through [`term`], even where `nll_y` is
/// beyond `f64` (`0 * inf` would be NaN).
#[inline]
pub(crate) fn smoothed_label_term(w_y: f64, hard: f64, nll_y: f64, off: f64, nll_sum: f64) -> f64 {
    term(w_y, term(hard, nll_y)) + term(off, nll_sum)
}

/// A row of the gradient buffer while it holds `exp(x_c - max)`, the
/// softmax before normalization, and `1 / sum_c exp(x_c - max)`.
///
/// A loss consumes it with one of the functions below, which write the
/// row's gradient in one pass, or asks for [`RowGrad::probs`] and writes
/// the gradient itself.
pub(crate) struct RowGrad<'g, F> {
    e: &'g mut [F],
    inv_sum: F,
    beyond: &'g GradBeyond,
    /// Where [`one_hot_grad`] may leave its scaling to the next row's
    /// exponentials' pass ([`Deferred`]), when the row loop offers it.
    defer: Option<&'g Cell<Option<Deferred<F>>>>,
}

/// A row's gradient left for the next row's pass to finish: the stored
/// exponentials times `k`, then `fix` taken from entry `at`
/// ([`one_hot_grad`]'s two steps). A row's scaling pass waits on its
/// stores while the exponentials' pass waits on arithmetic; done in the
/// next row's exponentials' pass
/// ([`RowKernels::exp_into_scaling`](crate::base::float::RowKernels::exp_into_scaling)),
/// the products are the same bits.
#[derive(Clone, Copy)]
pub(crate) struct Deferred<F> {
    k: F,
    at: usize,
    fix: F,
}

impl<F: Float> Deferred<F> {
    /// Finishes the row `e` on its own.
    fn finish(self, e: &mut [F]) {
        F::scale(e, self.k);
        self.fix_entry(e);
    }

    /// The step after the scaling.
    fn fix_entry(self, e: &mut [F]) {
        if let Some(v) = e.get_mut(self.at) {
            *v -= self.fix;
        }
    }
}

/// Where a row's gradient reports an entry beyond the float type (its
/// magnitude, 0 when none): the engine loops read it after each row and
/// record the row in [`Sum::grad_beyond`]. Only gradient factors computed
/// in `f64` (options or weights near the float maximum) can set it.
#[derive(Default)]
pub(crate) struct GradBeyond(Cell<f64>);

impl GradBeyond {
    /// Records an entry of magnitude `v` beyond the float type.
    #[cold]
    pub(crate) fn record(&self, v: f64) {
        self.0.set(self.0.get().max(v.abs()));
    }

    /// The gradient entry `v` (computed in `f64`) in `F`, recorded when it
    /// is beyond `F`.
    #[inline]
    pub(crate) fn entry<F: Float>(&self, v: f64) -> F {
        if v.abs() > F::max_value().as_f64() {
            self.record(v);
        }
        F::lit(v)
    }

    /// Adds the row's report, if any, to `sum` as row `i`'s, and clears it.
    #[inline(always)]
    pub(crate) fn report(&self, sum: &mut Sum, i: usize) {
        let v = self.0.get();
        if v != 0.0 {
            sum.grad_beyond(i, v);
            self.0.set(0.0);
        }
    }
}

impl<'g, F: Float> RowGrad<'g, F> {
    /// A row whose exponentials `e` are taken against a maximum and summed
    /// elsewhere (over the class shards of the processes), `inv_sum` the
    /// inverse of the whole row's sum.
    #[inline]
    pub(crate) fn from_parts(e: &'g mut [F], inv_sum: F, beyond: &'g GradBeyond) -> Self {
        RowGrad {
            e,
            inv_sum,
            beyond,
            defer: None,
        }
    }

    /// Writes a zero gradient (a row that counts for nothing).
    #[inline]
    pub fn zero(self) {
        self.e.fill(F::zero());
    }

    /// The row's probabilities (normalized in place), for a loss that
    /// overwrites them with its gradient itself.
    #[inline]
    pub fn probs(self) -> &'g mut [F] {
        F::scale(self.e, self.inv_sum);
        self.e
    }
}

/// Writes `scale * (p_c - sum_k a_k [c == c_k])`, the gradient of
/// `-sum_k a_k log p_{c_k}` scaled by `scale` for coefficients `a_k` that
/// sum to 1, and returns the row.
#[inline]
pub(crate) fn sparse_target_grad<'g, F: Float>(
    g: RowGrad<'g, F>,
    scale: F,
    at: &[(usize, F)],
) -> &'g mut [F] {
    F::scale(g.e, scale * g.inv_sum);
    for &(c, a) in at {
        g.e[c] -= scale * a;
    }
    g.e
}

/// Writes `scale * (p_c - [c == y])`, the gradient of `-log p_y` scaled by
/// `scale`: at once, or, when the row loop offers it, by the next row's
/// pass ([`Deferred`]; the same bits).
#[inline]
pub(crate) fn one_hot_grad<F: Float>(g: RowGrad<'_, F>, y: usize, scale: F) {
    match g.defer {
        Some(slot) => slot.set(Some(Deferred {
            k: scale * g.inv_sum,
            at: y,
            // `sparse_target_grad`'s `scale * 1`, the same bits.
            fix: scale,
        })),
        None => {
            sparse_target_grad(g, scale, &[(y, F::one())]);
        }
    }
}

/// [`one_hot_grad`] with a factor computed in `f64`, which may exceed `F`
/// (an option near the float maximum): then each entry is formed in `f64`
/// (`p_y - 1` as minus the other probabilities, exact near `p_y = 1`), and
/// an entry beyond `F` is reported.
#[inline]
pub(crate) fn one_hot_grad_f64<F: Float>(g: RowGrad<'_, F>, y: usize, scale: f64) {
    let k = F::lit(scale);
    if k.is_finite() {
        one_hot_grad(g, y, k);
        return;
    }
    let beyond = g.beyond;
    if scale.is_infinite() {
        // Beyond f64 too (an option near f64's maximum times another).
        beyond.record(scale);
    }
    let p = g.probs();
    let others: f64 = (p.iter().enumerate())
        .filter(|&(c, _)| c != y)
        .map(|(_, v)| v.as_f64())
        .sum();
    for (c, v) in p.iter_mut().enumerate() {
        *v = beyond.entry(scale * if c == y { -others } else { v.as_f64() });
    }
}

/// Writes `scale * (total * p_c - off * w_c - at_y [c == y])`, the gradient
/// of a smoothed target `off * w_c + at_y [c == y]` whose sum is `total`
/// (`w_c = 1` when `weights` is `None`; otherwise `Some((w, max_c w_c))`).
/// `label` is `Some((y, at_y))`, or `None` for a row of a class shard that
/// does not hold the label (the class-sharded heads): then `total` still
/// counts `at_y`, which the shard holding `y` subtracts.
///
/// `total` is in `f64`: with class weights near the float maximum it does
/// not fit `F`, nor may the entries (a tiny mean divisor makes `scale`
/// large). The entries are bounded by `|scale| (total + off w_max + at_y)`
/// (the stored exponentials are at most 1); beyond a quarter of `F`'s
/// maximum they are formed in `f64` instead, and an entry beyond `F` is
/// reported.
#[inline]
pub(crate) fn smoothed_grad<F: Float>(
    g: RowGrad<'_, F>,
    scale: F,
    total: f64,
    off: F,
    weights: Option<(&[F], f64)>,
    label: Option<(usize, F)>,
) {
    let (y, at_y) = label.unwrap_or((usize::MAX, F::zero()));
    let w_max = weights.map_or(1.0, |(_, m)| m);
    // `total` itself must fit `F` too: a z-loss adds `2 z w_y lse` to it,
    // which a small `scale` (the mean's) can leave beyond `F` (without it
    // `total` is at most the largest class weight, within `F`).
    let fits = smoothed_grad_fits::<F>(scale.as_f64(), total, off.as_f64(), w_max, at_y.as_f64());
    if fits && total.abs() <= F::max_value().as_f64() {
        let k = scale * F::lit(total) * g.inv_sum;
        match weights {
            None => F::affine(g.e, k, -scale * off),
            Some((w, _)) => F::affine_weighted(g.e, k, -scale * off, w),
        }
        if let Some(e_y) = g.e.get_mut(y) {
            *e_y -= scale * at_y;
        }
        return;
    }
    // Cold: the same formula in f64.
    if !total.is_finite() {
        // A class-weight sum beyond f64 (documented as an overflow).
        g.beyond.record(total);
    }
    let (scale, off, inv_sum) = (scale.as_f64(), off.as_f64(), g.inv_sum.as_f64());
    let w = |c: usize| weights.map_or(1.0, |(w, _)| w[c].as_f64());
    for (c, e) in g.e.iter_mut().enumerate() {
        let at = if c == y { at_y.as_f64() } else { 0.0 };
        *e = g
            .beyond
            .entry(scale * (total * inv_sum * e.as_f64() - off * w(c) - at));
    }
}

/// Whether every entry of [`smoothed_grad`] fits well within `F`, so that
/// the fast path in `F` may form them: they are bounded by
/// `|scale| (|total| + off w_max + |at_y|)` (the stored exponentials are at
/// most 1), which must stay within a quarter of `F`'s maximum.
#[inline]
pub(crate) fn smoothed_grad_fits<F: Float>(
    scale: f64,
    total: f64,
    off: f64,
    w_max: f64,
    at_y: f64,
) -> bool {
    scale.abs() * (total.abs() + off * w_max + at_y.abs()) <= F::max_value().as_f64() / 4.0
}

/// Writes `scale * (total * p_c - coef(c))`, the gradient of
/// `-sum_c coef(c) log p_c` scaled by `scale`, where `total = sum_c coef(c)`
/// (in `f64`: it may not fit `F`), plus, for a z-loss, its `2 z lse` (so
/// `total` may be negative).
#[inline]
pub(crate) fn linear_target_grad<F: Float>(
    g: RowGrad<'_, F>,
    scale: F,
    total: f64,
    coef: impl Fn(usize) -> F,
) {
    let big = F::max_value().as_f64() / 4.0;
    if total.abs() <= big {
        let k = F::lit(total) * g.inv_sum;
        for (c, ec) in g.e.iter_mut().enumerate() {
            *ec = scale * (k * *ec - coef(c));
        }
        return;
    }
    // Cold: coefficients near F's maximum (class weights). The difference
    // is taken on the coefficients scaled by a power of two `s` (exact),
    // which brings `total` below F's maximum; the scale applied after, in
    // f64; an entry beyond F is reported.
    let s64 = (big.log2().floor() - total.abs().log2().ceil()).exp2();
    let k = F::lit(total * s64) * g.inv_sum;
    let s = F::lit(s64);
    for (c, ec) in g.e.iter_mut().enumerate() {
        *ec = g
            .beyond
            .entry(((k * *ec - coef(c) * s) * scale).as_f64() / s64);
    }
}

/// A row's maximum found while the previous row's exponentials ran
/// ([`RowKernels::exp_into_ahead`]), and the next row, to find its
/// maximum the same way. A row's first pass, its maximum, reads it from
/// memory and waits on the reads; the exponentials' pass is bound by
/// arithmetic and leaves the loads idle, so the next row is read there.
/// The maximum is exact and taken in the same lanes and order as
/// [`RowKernels::row_max`]'s: the same bits either way.
///
/// [`RowKernels::exp_into_ahead`]: crate::base::float::RowKernels::exp_into_ahead
/// [`RowKernels::row_max`]: crate::base::float::RowKernels::row_max
///
/// It also carries a row's gradient the other way: the previous row's,
/// whose scaling this row's pass finishes ([`Deferred`]).
pub(crate) struct Ahead<'x, F> {
    /// This row's maximum, when the previous row found it.
    max: Option<F>,
    /// The next row, when it is a slice of the same length.
    next: Option<&'x [F]>,
    /// The previous row's gradient and what is left to do on it.
    prev: Option<(&'x mut [F], Deferred<F>)>,
    /// Whether this row may leave its scaling to the next row.
    may_defer: bool,
    /// Rows on from this one whose lines its pass asks for
    /// ([`ROWS_ASKED_AHEAD`]); 0 for none.
    later: usize,
    /// Where it leaves it.
    deferred: Cell<Option<Deferred<F>>>,
}

impl<F> Default for Ahead<'_, F> {
    fn default() -> Self {
        Ahead {
            max: None,
            next: None,
            prev: None,
            may_defer: false,
            later: 0,
            deferred: Cell::new(None),
        }
    }
}

/// Elements per kernel call when summing a long row's exponentials: each
/// call's `f32` lanes (8 or more) add at most `SUM_BLOCK / 8` terms, and
/// the calls' sums are added in `f64`, so a row of 200k classes keeps
/// `f32` accuracy.
const SUM_BLOCK: usize = 1024;

/// Elements per segment when one long row's passes are split across
/// threads: a whole number of `SUM_BLOCK`s, so that the segments' block
/// sums are the ones a single thread takes, added in the same order.
const ROW_SEGMENT: usize = 32 * SUM_BLOCK;

/// Whether a row of `len` classes runs its maximum and exponentials split
/// across threads, given whether its batch leaves threads idle (`spare`:
/// fewer blocks of rows than threads, as a batch of one long row, a
/// language model's next token): a row of at least [`SPLIT_ROW_MIN`]
/// classes. The results are the same bits either way.
#[inline]
fn split_row(len: usize, spare: bool) -> bool {
    spare && len >= SPLIT_ROW_MIN
}

/// The shortest row [`split_row`] splits. Measured on two threads of the
/// 2-core VM (one row, cross-entropy with a gradient): a million classes
/// ran 1.25-1.4x faster split; 128,256 ran from 1.1x faster to 1.5x
/// slower, the waking of threads and the exponentials' move between cores
/// costing about what they save on a row that short.
const SPLIT_ROW_MIN: usize = 1 << 18;

/// The largest value of a row (NaN skipped), as
/// [`RowKernels::row_max`](crate::base::float::RowKernels::row_max), the
/// segments in parallel for a long row with threads `spare` ([`split_row`]).
#[inline]
fn row_max<F: Float>(x: &[F], spare: bool) -> F {
    if !split_row(x.len(), spare) {
        return F::row_max(x);
    }
    let maxima = map_blocks(x.chunks(ROW_SEGMENT).collect(), x.len(), F::row_max);
    // The maximum is exact, whatever the grouping; NaN skipped as there.
    maxima
        .into_iter()
        .fold(F::neg_infinity(), |m, v| if v > m { v } else { m })
}

/// Runs a kernel on each `SUM_BLOCK` block of `x` in order, `stored` with
/// the matching block of `e` when given, else `summed`, and hands each
/// block's result to `add`.
#[inline]
fn for_blocks<F: Float, R>(
    x: &[F],
    e: Option<&mut [F]>,
    stored: impl Fn(&[F], &mut [F]) -> R,
    summed: impl Fn(&[F]) -> R,
    mut add: impl FnMut(R),
) {
    match e {
        Some(e) => {
            (x.chunks(SUM_BLOCK).zip(e.chunks_mut(SUM_BLOCK))).for_each(|(x, e)| add(stored(x, e)))
        }
        None => x.chunks(SUM_BLOCK).for_each(|x| add(summed(x))),
    }
}

/// Calls `add` with the sum of `exp(x - max)` of each `SUM_BLOCK` block of
/// `x` in order, as an `f64`, storing the exponentials in `e` when given.
#[inline]
fn for_block_sums<F: Float>(x: &[F], max: F, e: Option<&mut [F]>, add: impl FnMut(f64)) {
    let stored = |x: &[F], e: &mut [F]| F::exp_into(x, max, e).as_f64();
    for_blocks(x, e, stored, |x| F::exp_sum(x, max).as_f64(), add);
}

/// A row's sum of `exp(x - max)` (stored in `e` when given), over blocks
/// whose sums are added in `f64` so that a row of 200k classes keeps `F`'s
/// accuracy; a long row's segments run in parallel with threads `spare`
/// ([`split_row`]), and their blocks' sums are added in the same order.
#[inline]
fn exp_sum_blocks<F: Float>(x: &[F], max: F, e: Option<&mut [F]>, spare: bool) -> F {
    let mut total = 0.0_f64;
    if !split_row(x.len(), spare) {
        for_block_sums(x, max, e, |s| total += s);
        return F::lit(total);
    }
    let segment = |x: &[F], e: Option<&mut [F]>| {
        let mut sums = Vec::with_capacity(ROW_SEGMENT / SUM_BLOCK);
        for_block_sums(x, max, e, |s| sums.push(s));
        sums
    };
    let sums = match e {
        Some(e) => {
            let segments = x.chunks(ROW_SEGMENT).zip(e.chunks_mut(ROW_SEGMENT));
            map_blocks(segments.collect(), x.len(), |(x, e)| segment(x, Some(e)))
        }
        None => map_blocks(x.chunks(ROW_SEGMENT).collect(), x.len(), |x| {
            segment(x, None)
        }),
    };
    sums.iter().flatten().for_each(|s| total += s);
    F::lit(total)
}

/// [`RowKernels::exp_into`](crate::base::float::RowKernels::exp_into)
/// over blocks, summed in `f64` ([`exp_sum_blocks`]).
#[inline]
pub(crate) fn exp_into_accurate<F: Float>(x: &[F], max: F, e: &mut [F]) -> F {
    if x.len() <= SUM_BLOCK {
        return F::exp_into(x, max, e);
    }
    exp_sum_blocks(x, max, Some(e), false)
}

/// [`exp_into_accurate`] without storing.
#[inline]
pub(crate) fn exp_sum_accurate<F: Float>(x: &[F], max: F) -> F {
    if x.len() <= SUM_BLOCK {
        return F::exp_sum(x, max);
    }
    exp_sum_blocks(x, max, None, false)
}

/// The log-sum-exp of one row, in `f64`, from the same maximum and sum as
/// the losses' rows ([`Row::lse`]).
#[inline]
pub(crate) fn row_lse<F: Float>(x: &[F]) -> f64 {
    let max = F::row_max(x);
    max.as_f64() + exp_sum_accurate(x, max).ln().as_f64()
}

/// Writes the log-sum-exp of every class lane (axis 1) of `logits`, after
/// the soft cap `cap` if any, into `lse` (the lanes' shape, logical
/// order). Always finite: `max + ln_sum` with `ln_sum <= ln C`, far below
/// an ulp of `F`'s maximum, so it rounds to at most that maximum.
pub(crate) fn lanes_lse<F: Float, D: RemoveAxis>(
    logits: ArrayView<'_, F, D>,
    cap: Option<f64>,
    mut lse: ArrayViewMut<'_, F, D::Smaller>,
) {
    let mut scratch: Vec<F> = Vec::new();
    let lanes = logits.lanes(Axis(1)).into_iter().zip(lse.iter_mut());
    for (lane, out) in lanes {
        let value = match cap {
            Some(cap) => {
                scratch.clear();
                scratch.extend(lane.iter().map(|&x| F::lit(soft_cap(x.as_f64(), cap))));
                row_lse(&scratch)
            }
            None => row_lse(lane_slice(&lane, &mut scratch)),
        };
        *out = F::lit(value);
    }
}

/// A row's sum of `exp(x - max)` (stored in `e` when given) and
/// `sum (x - max)` in `f64`, in one pass over blocks whose sums are added
/// in `f64` (as [`exp_into_accurate`]).
#[inline]
fn exp_and_shifted_sums<F: Float>(x: &[F], max: F, e: Option<&mut [F]>) -> (F, f64) {
    let (mut exps, mut shifted) = (0.0_f64, 0.0_f64);
    let add = |(s, d): (F, F)| {
        exps += s.as_f64();
        shifted += d.as_f64();
    };
    let stored = |x: &[F], e: &mut [F]| F::exp_into_shifted(x, max, e);
    for_blocks(x, e, stored, |x| F::exp_sum_shifted(x, max), add);
    (F::lit(exps), shifted)
}

/// One row: its statistics, and with `g` its exponentials stored there;
/// with `shifted_sums` also `sum (x - max)`, taken in the same pass.
// Always inlined, with the lane helpers below: as calls they cost about
// 130 instructions a row, a quarter of a 10-class row's work.
#[inline(always)]
fn run_row<F: Float, T, R>(
    x: &[F],
    mut g: Option<&mut [F]>,
    (target, shifted_sums): (T, bool),
    f: &impl Fn(T, &Row<'_, F>, Option<RowGrad<'_, F>>) -> R,
    (beyond, spare, ahead): (&GradBeyond, bool, &mut Ahead<'_, F>),
) -> R {
    let max = match ahead.max.take() {
        Some(max) => max,
        None => row_max(x, spare),
    };
    // The previous row's scaling, done in this row's exponentials' pass
    // where it takes one, else below on its own.
    let mut prev = ahead.prev.take();
    // A row that stores its exponentials reads the next one when the
    // batch loop offers it (`rows_2d`: rows of `READ_AHEAD_CLASSES`).
    let mut read_ahead = None;
    if let (Some(next), Some(e)) = (ahead.next.take(), g.as_deref_mut())
        && next.len() == x.len()
    {
        read_ahead = Some(if shifted_sums {
            let (sum, shifted, next_max) = F::exp_into_shifted_ahead(x, max, e, next, ahead.later);
            ahead.max = Some(next_max);
            (sum, Some(shifted.as_f64()))
        } else {
            let (sum, next_max) = match prev.take() {
                Some((p, d)) => {
                    let done = F::exp_into_scaling(x, max, e, next, p, d.k);
                    d.fix_entry(p);
                    done
                }
                None => F::exp_into_ahead(x, max, e, next, ahead.later),
            };
            ahead.max = Some(next_max);
            (sum, None)
        });
    }
    let (sum, shifted) = if let Some(done) = read_ahead {
        done
    } else if shifted_sums {
        let (sum, shifted) = exp_and_shifted_sums(x, max, g.as_deref_mut());
        (sum, Some(shifted))
    } else if x.len() <= SUM_BLOCK {
        let sum = match g.as_deref_mut() {
            Some(e) => F::exp_into(x, max, e),
            None => F::exp_sum(x, max),
        };
        (sum, None)
    } else {
        (exp_sum_blocks(x, max, g.as_deref_mut(), spare), None)
    };
    if let Some((p, d)) = prev {
        d.finish(p);
    }
    let stats = RowStats {
        max,
        ln_sum: sum.ln(),
    };
    let row = Row { x, stats, shifted };
    match g {
        Some(e) => {
            let inv_sum = F::one() / sum;
            let defer = ahead.may_defer.then_some(&ahead.deferred);
            let grad = RowGrad {
                e,
                inv_sum,
                beyond,
                defer,
            };
            f(target, &row, Some(grad))
        }
        None => f(target, &row, None),
    }
}

/// Runs `f` on every class lane (axis 1) of `logits`, paired with the
/// matching item of `targets`, and returns the sum of what `f` returns
/// (each lane's loss, in `f64` so that a value beyond `F` keeps its
/// magnitude), one lane after another.
///
/// With `grad`, `f` receives a [`RowGrad`] and must overwrite it with the
/// row's gradient; strided lanes go through a scratch row that is written
/// back. Each value `f` returns is also stored in `per` when given.
/// Lanes are visited in the logical order of the remaining axes, which is
/// the order of `targets` and `per`.
pub(crate) fn softmax_rows<F, D, T>(
    logits: ArrayView<'_, F, D>,
    targets: impl IntoIterator<Item = T>,
    mut grad: Option<ArrayViewMut<'_, F, D>>,
    mut per: Option<ArrayViewMut<'_, F, D::Smaller>>,
    f: impl Fn(T, &Row<'_, F>, Option<RowGrad<'_, F>>) -> f64,
) -> Sum
where
    F: Float,
    D: RemoveAxis,
{
    // Scratch for strided lanes (class axis of a spatial input): one row each.
    let mut x_scratch: Vec<F> = Vec::new();
    let mut g_scratch: Vec<F> = Vec::new();
    let mut grad_lanes = grad.as_mut().map(|g| g.lanes_mut(Axis(1)).into_iter());
    let mut out = per.as_mut().map(|p| p.iter_mut());
    let mut sum = Sum::default();
    let beyond = GradBeyond::default();
    // Lanes are not read ahead: a spatial input's are strided copies.
    let mut alone = Ahead::default();
    let lanes = logits.lanes(Axis(1)).into_iter().zip(targets);
    for (i, (lane, target)) in lanes.enumerate() {
        let x = lane_slice(&lane, &mut x_scratch);
        let value = match grad_lanes.as_mut().and_then(|it| it.next()) {
            Some(g_lane) => with_lane_mut(g_lane, &mut g_scratch, |g| {
                run_row(
                    x,
                    Some(g),
                    (target, false),
                    &f,
                    (&beyond, false, &mut alone),
                )
            }),
            None => run_row(x, None, (target, false), &f, (&beyond, false, &mut alone)),
        };
        if let Some(o) = out.as_mut().and_then(|it| it.next()) {
            *o = F::lit(value);
        }
        sum.add::<F>(i, value);
        beyond.report(&mut sum, i);
    }
    sum
}

/// The largest batch of logits, in bytes, taken to stay in the last-level
/// cache with its gradient between calls. Beyond it, rows ask for the
/// lines of a later row ([`ROWS_ASKED_AHEAD`]) and `f64` rows finish their
/// own scaling ([`defers`]).
const IN_CACHE_MAX_BYTES: usize = 1 << 21;

/// Rows on from a row of [`READ_AHEAD_CLASSES`] classes, in a batch
/// beyond [`IN_CACHE_MAX_BYTES`] whose logits and gradient have contiguous
/// rows, whose lines the row's exponentials' pass asks for, a line for
/// each vector as it goes: the logits' to be read and the gradient's to
/// be written (`prefetchw` where the CPU has it). A row reads the next
/// row's maximum in that pass ([`Ahead`]); without the requests those
/// reads, and the gradient's stores (a store to a line not in the cache
/// waits for it to be read first), waited on memory, and a pass of its
/// own for the maximum took 43% of cross-entropy 4096 x 1000's samples.
/// On a Zen 4 VM (32 MiB L3), one thread, cross-entropy 4096 x 1000, two
/// builds, 30 alternating slices (fastest slice; pairs' median): against
/// asking at each row's start for every line of the logits' row two on
/// (a burst that stalled the row's start, 10% of the samples), asking as
/// the pass goes for row two on, both arrays, ran 0.69x the time (0.69x);
/// row three on 0.85x of that (0.88x); row four on as two on (1.0x).
/// The last rows of a block ask for nothing.
const ROWS_ASKED_AHEAD: usize = 3;

/// The row lengths that read the next row ahead: up to one kernel call
/// ([`SUM_BLOCK`]), and from 256 classes. A shorter row's batch sits in
/// the second-level cache, and the pass's out-of-line reduction of its
/// extra lanes cost more than it hid: cross-entropy 128 x 100 ran 1.02-
/// 1.06x the time (one thread, 40 alternating slices).
const READ_AHEAD_CLASSES: std::ops::RangeInclusive<usize> = 256..=SUM_BLOCK;

/// Whether rows leave their scaling to the next row ([`Deferred`]) when
/// the caller allows it: in `f64`, in a batch in the caches whose rows
/// read the next one ahead (the scaling joins that loop; the last row of
/// a block, which has no next row to read, finishes its predecessor's in
/// a pass of its own).
/// On a Zen 4 VM (one thread, 30-50 alternating slices) `f64`
/// cross-entropy 256 x 1000 ran 0.94-0.97x the time, but `f32` 256 x 1000
/// 1.05x, with the next row read ahead or not: its exponentials' pass is no
/// longer bound by arithmetic (the AVX-512 table `exp`), and the previous
/// row's loads and stores cost more in it than in a pass of their own.
/// `f32` 128 x 100 ran 0.87-0.97x with a loop that scaled without reading
/// ahead, but the compiler split that loop into single lanes at AVX2 (2.1x
/// the instructions at 2621 x 100), so it is not kept.
fn defers<F>(read_ahead_in_cache: bool) -> bool {
    read_ahead_in_cache && std::mem::size_of::<F>() == 8
}

/// Logits per block of rows: a block's rows (and gradient) stay in the
/// second-level cache while the block runs.
const BLOCK_ELEMENTS: usize = 1 << 15;

/// The rows of one block and its slices of the outputs.
struct Block<'a, F> {
    start: usize,
    logits: ArrayView2<'a, F>,
    grad: Option<ArrayViewMut2<'a, F>>,
    per: Option<ArrayViewMut1<'a, F>>,
}

/// [`softmax_rows`] for `(N, C)` logits, with the target of row `i` given by
/// `target(i)`.
///
/// The rows are cut into blocks whose size depends only on `C`; each
/// block's sum is accumulated in `f64` and the blocks' sums are added in
/// order, so the result is the same bit for bit on one thread or many. With
/// the `rayon` feature, blocks run in parallel on large inputs
/// ([`map_blocks`]). With `shifted_sums`, each row's `sum (x - max)` is
/// taken in the exponentials' pass, for a loss that calls
/// [`Row::nll_sum`] without weights (label smoothing): one pass over the
/// row fewer.
pub(crate) fn softmax_rows_2d<F, T>(
    logits: ArrayView2<'_, F>,
    target: impl Fn(usize) -> T + Sync,
    grad: Option<ArrayViewMut2<'_, F>>,
    per: Option<ArrayViewMut1<'_, F>>,
    shifted_sums: bool,
    f: impl Fn(T, &Row<'_, F>, Option<RowGrad<'_, F>>) -> f64 + Sync,
) -> Sum
where
    F: Float,
{
    rows_2d(
        logits,
        grad,
        per,
        true,
        #[inline(always)]
        |i, x, g, context| run_row(x, g, (target(i), shifted_sums), &f, context),
    )
}

/// The blocked, parallel loop under [`softmax_rows_2d`], for a loss that
/// computes a row itself: `row(i, x, g, (beyond, spare, ahead))` gets row
/// `i` of the input as a slice and, when a gradient is wanted, the row of
/// the buffer to overwrite, and returns the row's loss (reporting a
/// gradient entry beyond `F` to the [`GradBeyond`] it is given). `ahead`
/// holds the next row, which a row that runs its own passes ignores
/// ([`Ahead`]; rows of [`READ_AHEAD_CLASSES`]). `spare` says that
/// the batch has fewer blocks of rows than the pool has threads, so that
/// a long row may split its own passes across them. Same blocks, same
/// order, same sums. With `defer`, a row whose gradient is
/// [`one_hot_grad`]'s may leave its scaling to the next row of its block
/// ([`Deferred`], where [`defers`] says), when the gradient's rows are
/// contiguous; the last row of a block finishes its own.
pub(crate) fn rows_2d<F: Float>(
    logits: ArrayView2<'_, F>,
    grad: Option<ArrayViewMut2<'_, F>>,
    per: Option<ArrayViewMut1<'_, F>>,
    defer: bool,
    row: impl Fn(usize, &[F], Option<&mut [F]>, (&GradBeyond, bool, &mut Ahead<'_, F>)) -> f64 + Sync,
) -> Sum {
    let (elements, classes) = (logits.len(), logits.ncols());
    let block_rows = (BLOCK_ELEMENTS / classes.max(1)).max(1);
    let mut grads = grad.map(|g| g.into_axis_chunks_iter_mut(Axis(0), block_rows));
    let mut outs = per.map(|p| p.into_axis_chunks_iter_mut(Axis(0), block_rows));
    let blocks: Vec<Block<'_, F>> = logits
        .axis_chunks_iter(Axis(0), block_rows)
        .enumerate()
        .map(|(b, logits)| Block {
            start: b * block_rows,
            logits,
            grad: grads.as_mut().and_then(|it| it.next()),
            per: outs.as_mut().and_then(|it| it.next()),
        })
        .collect();
    let spare = blocks.len() < threads();
    let from_memory = elements * std::mem::size_of::<F>() > IN_CACHE_MAX_BYTES;
    let read_ahead = READ_AHEAD_CLASSES.contains(&classes);
    let run_block = |block: Block<'_, F>| -> Sum {
        let Block {
            start,
            logits,
            mut grad,
            mut per,
        } = block;
        let mut scratch: Vec<F> = Vec::new();
        let mut g_scratch: Vec<F> = Vec::new();
        let mut sum = Sum::default();
        let beyond = GradBeyond::default();
        let mut ahead = Ahead::default();
        let all = logits.to_slice().filter(|_| read_ahead);
        let rows = logits.nrows();
        // The kernel finds a later row's lines by its offset from this
        // row's: both arrays' rows must be contiguous.
        let ask_later =
            from_memory && all.is_some() && grad.as_ref().is_some_and(|g| g.is_standard_layout());
        // The gradient's rows as slices of the block's own, to be handed
        // from one row to the next.
        let mut g_rows = None;
        if defer
            && defers::<F>(read_ahead && !from_memory)
            && let Some(g) = grad.take_if(|g| g.is_standard_layout())
        {
            g_rows = g.into_slice().map(|g| g.chunks_exact_mut(classes));
        }
        for (i, x_row) in logits.outer_iter().enumerate() {
            let x = lane_slice(&x_row, &mut scratch);
            ahead.later = if ask_later && i + ROWS_ASKED_AHEAD < rows {
                ROWS_ASKED_AHEAD
            } else {
                0
            };
            ahead.next = all.and_then(|all| all.get((i + 1) * classes..(i + 2) * classes));
            let g_row = g_rows.as_mut().and_then(|it| it.next());
            ahead.may_defer = g_row.is_some() && i + 1 < rows;
            let value = match (g_row, grad.as_mut()) {
                (Some(g), _) => {
                    let value = row(start + i, x, Some(&mut *g), (&beyond, spare, &mut ahead));
                    ahead.prev = ahead.deferred.take().map(|d| (g, d));
                    value
                }
                (None, Some(g)) => with_lane_mut(g.row_mut(i), &mut g_scratch, |g| {
                    row(start + i, x, Some(g), (&beyond, spare, &mut ahead))
                }),
                (None, None) => row(start + i, x, None, (&beyond, spare, &mut ahead)),
            };
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            sum.add::<F>(start + i, value);
            beyond.report(&mut sum, start + i);
        }
        // The last row finishes its own (`may_defer`): nothing is left
        // here, but no row may stay unscaled.
        if let Some((g, d)) = ahead.prev.take() {
            d.finish(g);
        }
        sum
    };
    Sum::of_blocks(map_blocks(blocks, elements, run_block))
}

/// Rank-2 views of a call's logits and outputs (a reborrow), when the
/// logits have rank 2, for [`softmax_rows_2d`].
#[allow(clippy::type_complexity)]
pub(crate) fn matrix_views<'s, F, D: RemoveAxis>(
    logits: &'s ArrayView<'_, F, D>,
    grad: &'s mut Option<ArrayViewMut<'_, F, D>>,
    per: &'s mut Option<ArrayViewMut<'_, F, D::Smaller>>,
) -> Option<(
    ArrayView2<'s, F>,
    Option<ArrayViewMut2<'s, F>>,
    Option<ArrayViewMut1<'s, F>>,
)> {
    let l = logits.view().into_dimensionality::<Ix2>().ok()?;
    let g = match grad {
        Some(g) => Some(g.view_mut().into_dimensionality::<Ix2>().ok()?),
        None => None,
    };
    let p = match per {
        Some(p) => Some(p.view_mut().into_dimensionality::<Ix1>().ok()?),
        None => None,
    };
    Some((l, g, p))
}

/// `lane` as a slice: itself when contiguous, else a copy in `scratch`.
#[inline(always)]
fn lane_slice<'s, F: Float>(lane: &'s ArrayView1<'_, F>, scratch: &'s mut Vec<F>) -> &'s [F] {
    match lane.as_slice() {
        Some(s) => s,
        None => {
            scratch.clear();
            scratch.extend(lane.iter().copied());
            scratch
        }
    }
}

/// Runs `f` on `lane` as a mutable slice: itself when contiguous, else
/// `scratch`, copied back into the lane after.
#[inline(always)]
pub(crate) fn with_lane_mut<F: Float, T>(
    mut lane: ArrayViewMut1<'_, F>,
    scratch: &mut Vec<F>,
    f: impl FnOnce(&mut [F]) -> T,
) -> T {
    match lane.as_slice_mut() {
        Some(g) => f(g),
        None => {
            scratch.resize(lane.len(), F::zero());
            let value = f(scratch);
            lane.assign(&ArrayView1::from(&scratch[..]));
            value
        }
    }
}

#[cfg(all(test, feature = "rayon"))]
mod tests {
    use super::{SPLIT_ROW_MIN, exp_sum_blocks, row_max};

    /// A long row split across threads gives the single thread's bits: its
    /// maximum, its sum, and every stored exponential.
    #[test]
    fn a_split_row_gives_the_bits_of_a_whole_one() {
        let n = SPLIT_ROW_MIN + 12_345;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a thread pool");
        let run = |spare: bool| {
            pool.install(|| {
                let max = row_max(&x, spare);
                let mut e = vec![0.0_f32; n];
                let stored = exp_sum_blocks(&x, max, Some(&mut e), spare);
                let sum = exp_sum_blocks(&x, max, None, spare);
                (max, stored, sum, e)
            })
        };
        let (whole, split) = (run(false), run(true));
        assert_eq!(whole.0.to_bits(), split.0.to_bits(), "max");
        assert_eq!(whole.1.to_bits(), split.1.to_bits(), "sum, storing");
        assert_eq!(whole.2.to_bits(), split.2.to_bits(), "sum");
        assert_eq!(whole.1.to_bits(), whole.2.to_bits());
        assert_eq!(whole.3, split.3, "exponentials");
        assert_eq!(whole.0, 9.98);
    }
}
