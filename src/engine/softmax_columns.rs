//! Cross-entropy with labels on `(N, C, d1, .., dk)` logits, by columns.
//!
//! In a contiguous spatial input each sample is a `(C, S)` matrix
//! (`S = d1 * .. * dk` positions) whose class rows run along the positions,
//! so a position's logits are a strided column. Rather than gather each
//! column (one cache line per class per position), the softmax runs down
//! the columns a tile of positions at a time: every pass (the max, the
//! exponentials stored in the gradient buffer and summed, the scaling) is
//! an element-by-element loop along the positions, which vectorizes. The
//! per-position formulas are the row path's (`rows.rs`): the same
//! `(x_y - max) - ln(sum)`, the same gradient. Samples run in parallel with
//! the `rayon` feature; their sums are added in order.

use crate::Float;
use crate::base::labels::LabelSlice;
use crate::base::reduction::Sum;
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::{smoothed_label_term, term};

/// Positions per tile: a tile's max, sum and coefficients stay on the stack.
const TILE: usize = 256;
/// A tile's label that counts for nothing.
const IGNORED: usize = usize::MAX;
/// Classes summed in `F` before their sums move into `f64`.
const CLASS_BLOCK: usize = 64;

/// What the labels mean: the options of [`crate::CrossEntropy`] as numbers.
pub(crate) struct LabelTerms<'a, F> {
    /// One weight per class, or none (all 1).
    pub weight: Option<&'a [F]>,
    /// The sum of the weights (`C` without weights), in `f64`.
    pub w_sum: f64,
    /// The label that counts for nothing.
    pub ignore: Option<i128>,
    /// `1 - eps` and `eps / C`; with `smoothing` false, only plain CE.
    pub hard: F,
    /// `eps / C`.
    pub off: F,
    /// Whether `eps > 0`.
    pub smoothing: bool,
    /// The reduction's factor on the gradient.
    pub scale: F,
}

/// One sample's slices: logits `(C, S)`, labels `(S)`, and the outputs.
type Sample<'a, F> = (
    usize,
    &'a [F],
    LabelSlice<'a>,
    Option<&'a mut [F]>,
    Option<&'a mut [F]>,
);

/// The sum of the per-position losses of contiguous `(N, C, S)` logits
/// `x` with labels `(N, S)` (all in `0..C` or the ignored label); with
/// `grad` (same layout as `x`) its gradient scaled by `terms.scale`, with
/// `per` (`(N, S)`) each position's loss.
pub(crate) fn label_columns<F: Float>(
    x: &[F],
    labels: LabelSlice<'_>,
    grad: Option<&mut [F]>,
    per: Option<&mut [F]>,
    (classes, positions): (usize, usize),
    terms: &LabelTerms<'_, F>,
) -> Sum {
    let block = classes * positions;
    let mut grads = grad.map(|g| g.chunks_mut(block));
    let mut pers = per.map(|p| p.chunks_mut(positions));
    let samples: Vec<Sample<'_, F>> = x
        .chunks(block)
        .enumerate()
        .map(|(n, xs)| {
            let ys = labels.sub(n * positions..(n + 1) * positions);
            let g = grads.as_mut().and_then(|it| it.next());
            let p = pers.as_mut().and_then(|it| it.next());
            (n, xs, ys, g, p)
        })
        .collect();
    let sums = map_blocks(samples, x.len(), |(n, xs, ys, mut g, mut p)| {
        let mut sum = Sum::default();
        for start in (0..positions).step_by(TILE) {
            let width = TILE.min(positions - start);
            let tile = Tile {
                first: n * positions,
                start,
                width,
                positions,
                classes,
            };
            tile.run(terms, xs, ys, g.as_deref_mut(), p.as_deref_mut(), &mut sum);
        }
        sum
    });
    Sum::of_blocks(sums)
}

/// Classes up to which `(N, C)` rows run down the columns
/// ([`label_rows_by_columns`]): a short row's own passes (the max, the
/// exponentials, the scaling: vector kernels with their setup and a
/// scalar tail) and its scalar logarithm cost more than its work. Measured
/// on AVX2 (f32, one thread, ns per logit, rows against columns): 256 x 8
/// 11-13 against 7.0-7.4; 128 x 10 13.3 against 7.7; 256 x 12 9.1-10.3
/// against 6.0-6.6; 256 x 16, two full vectors a row, 5.1-5.6 against
/// 6.0-6.2; 256 x 32 3.0 against 5.0.
pub(crate) const SMALL_CLASSES: usize = 15;

/// [`label_columns`] for contiguous `(N, C)` logits with few classes
/// (`C <= SMALL_CLASSES`): each block of `TILE` rows is transposed into a
/// `(C, rows)` scratch, run as a tile of one sample, and its gradient
/// transposed back. The blocks run in parallel with the `rayon` feature;
/// their sums are added in order.
pub(crate) fn label_rows_by_columns<F: Float>(
    x: &[F],
    labels: LabelSlice<'_>,
    grad: Option<&mut [F]>,
    per: Option<&mut [F]>,
    classes: usize,
    terms: &LabelTerms<'_, F>,
) -> Sum {
    let block = classes * TILE;
    let mut grads = grad.map(|g| g.chunks_mut(block));
    let mut pers = per.map(|p| p.chunks_mut(TILE));
    let blocks: Vec<Sample<'_, F>> = x
        .chunks(block)
        .enumerate()
        .map(|(b, xs)| {
            let rows = xs.len() / classes;
            let ys = labels.sub(b * TILE..b * TILE + rows);
            let g = grads.as_mut().and_then(|it| it.next());
            let p = pers.as_mut().and_then(|it| it.next());
            (b * TILE, xs, ys, g, p)
        })
        .collect();
    let sums = map_blocks(blocks, x.len(), |(first, xs, ys, g, p)| {
        let rows = xs.len() / classes;
        // The block's logits class by class: row r's class k at k rows + r.
        let mut columns = vec![F::zero(); xs.len()];
        transpose(xs, &mut columns, rows, classes);
        let mut g_columns = g.as_ref().map(|_| vec![F::zero(); xs.len()]);
        let tile = Tile {
            first,
            start: 0,
            width: rows,
            positions: rows,
            classes,
        };
        let mut sum = Sum::default();
        tile.run(terms, &columns, ys, g_columns.as_deref_mut(), p, &mut sum);
        if let (Some(g), Some(gc)) = (g, g_columns) {
            transpose(&gc, g, classes, rows);
        }
        sum
    });
    Sum::of_blocks(sums)
}

/// Writes the `(rows, cols)` row-major matrix `from` into `to` as
/// `(cols, rows)`, eight rows of `from` at a time (each output run of
/// eight is one store; a row at a time was 6 instructions an element).
fn transpose<F: Float>(from: &[F], to: &mut [F], rows: usize, cols: usize) {
    const GROUP: usize = 8;
    let whole = rows - rows % GROUP;
    for (g, block) in from[..whole * cols].chunks_exact(GROUP * cols).enumerate() {
        let r: [&[F]; GROUP] = std::array::from_fn(|i| &block[i * cols..(i + 1) * cols]);
        let at = g * GROUP;
        for (k, column) in to.chunks_exact_mut(rows).enumerate() {
            column[at..at + GROUP]
                .copy_from_slice(&std::array::from_fn::<F, GROUP, _>(|i| r[i][k]));
        }
    }
    for i in whole..rows {
        for (k, &v) in from[i * cols..(i + 1) * cols].iter().enumerate() {
            to[k * rows + i] = v;
        }
    }
}

/// Whether a tile's column sums move into `f64` after class `k` (of
/// `classes`): every `CLASS_BLOCK` classes, when there are more than that.
#[inline]
fn flushes_after(classes: usize, k: usize) -> bool {
    classes > CLASS_BLOCK && (k + 1).is_multiple_of(CLASS_BLOCK)
}

/// A run of positions `start..start + width` of one sample.
struct Tile {
    /// The sample's first position in the per-sample array.
    first: usize,
    start: usize,
    width: usize,
    positions: usize,
    classes: usize,
}

impl Tile {
    /// Class `k`'s stretch of this tile in a `(C, S)` sample.
    #[inline]
    fn range(&self, k: usize) -> std::ops::Range<usize> {
        let from = k * self.positions + self.start;
        from..from + self.width
    }

    fn run<F: Float>(
        &self,
        terms: &LabelTerms<'_, F>,
        xs: &[F],
        labels: LabelSlice<'_>,
        mut g: Option<&mut [F]>,
        per: Option<&mut [F]>,
        out: &mut Sum,
    ) {
        let w = self.width;
        // The tile's labels, read once: `IGNORED` marks the ignored one.
        let mut ys_buf = [IGNORED; TILE];
        let ys = &mut ys_buf[..w];
        labels.classes_into(self.start, ys, terms.ignore, IGNORED);
        let mut max = [F::neg_infinity(); TILE];
        let mut sum = [F::zero(); TILE];
        let (max, sum) = (&mut max[..w], &mut sum[..w]);
        for k in 0..self.classes {
            F::max_into(max, &xs[self.range(k)]);
        }
        // Many classes: the per-position sums move into `f64` every
        // `CLASS_BLOCK` classes, so that a long class axis keeps `f32`
        // accuracy (few classes: one `F` sum, as in a row).
        let mut wide = [0.0_f64; TILE];
        for k in 0..self.classes {
            let x = &xs[self.range(k)];
            match g.as_deref_mut() {
                Some(g) => F::exp_diff_into_acc(x, max, &mut g[self.range(k)], sum),
                None => F::exp_diff_acc(x, max, sum),
            }
            if flushes_after(self.classes, k) {
                for (w, s) in wide.iter_mut().zip(sum.iter_mut()) {
                    *w += s.as_f64();
                    *s = F::zero();
                }
            }
        }
        if self.classes > CLASS_BLOCK {
            for (w, s) in wide.iter().zip(sum.iter_mut()) {
                *s = F::lit(*w + s.as_f64());
            }
        }
        // With smoothing: sum_k w_k (x_k - max), for sum_k w_k (-log p_k).
        let mut dot = [F::zero(); TILE];
        let dot = &mut dot[..w];
        if terms.smoothing {
            for k in 0..self.classes {
                let wk = terms.weight.map_or(F::one(), |wt| wt[k]);
                F::diff_axpy(dot, wk, &xs[self.range(k)], max);
            }
        }

        // Per position: the loss, and the gradient's factor on the stored
        // exponentials (`k`) and on the class weights (`dense`).
        let mut k_buf = [F::zero(); TILE];
        let mut dense_buf = [F::zero(); TILE];
        let (kc, dense) = (&mut k_buf[..w], &mut dense_buf[..w]);
        let mut per = per.map(|p| &mut p[self.start..self.start + w]);
        let weight = |c: usize| terms.weight.map_or(F::one(), |wt| wt[c]);
        for j in 0..w {
            let y = ys[j];
            let value = if y == IGNORED {
                0.0
            } else {
                let wy = weight(y);
                let ln_sum = sum[j].ln();
                // -log p_y in f64: finite where F's would overflow.
                let x_y = xs[y * self.positions + self.start + j];
                let nll_y = (max[j].as_f64() - x_y.as_f64()) + ln_sum.as_f64();
                if terms.smoothing {
                    // hard * w_y in f64: in F a subnormal w_y loses bits.
                    let at_y = terms.hard.as_f64() * wy.as_f64();
                    let total_coef = F::lit(at_y + term(terms.off.as_f64(), terms.w_sum));
                    kc[j] = terms.scale * total_coef / sum[j];
                    dense[j] = terms.scale * terms.off;
                    let mut shifted = dot[j].as_f64();
                    if !shifted.is_finite() && max[j].is_finite() {
                        // Cold: a weighted difference overflowed F (f32
                        // logits 1e37 apart); each is exact in f64.
                        let at = |k: usize| xs[k * self.positions + self.start + j].as_f64();
                        shifted = (0..self.classes)
                            .map(|k| term(weight(k).as_f64(), at(k) - max[j].as_f64()))
                            .sum();
                    }
                    let nll_sum = terms.w_sum * ln_sum.as_f64() - shifted;
                    let (hard, off) = (terms.hard.as_f64(), terms.off.as_f64());
                    smoothed_label_term(wy.as_f64(), hard, nll_y, off, nll_sum)
                } else {
                    kc[j] = terms.scale * wy / sum[j];
                    term(wy.as_f64(), nll_y)
                }
            };
            if let Some(p) = per.as_mut() {
                p[j] = F::lit(value);
            }
            out.add::<F>(self.first + self.start + j, value);
        }
        if let Some(g) = g {
            for k in 0..self.classes {
                F::scale_shift_cols(&mut g[self.range(k)], kc, weight(k), dense);
            }
            let at_y = if terms.smoothing {
                terms.hard
            } else {
                F::one()
            };
            for (j, &y) in ys.iter().enumerate() {
                if y != IGNORED {
                    g[y * self.positions + self.start + j] -= terms.scale * at_y * weight(y);
                }
            }
        }
    }
}
