//! Cross-entropy with labels on `(N, C, d1, .., dk)` logits, by columns.
//!
//! In a contiguous spatial input each sample is a `(C, S)` matrix
//! (`S = d1 * .. * dk` positions) whose class rows run along the positions,
//! so a position's logits are a strided column. Rather than gather each
//! column (one cache line per class per position), the softmax runs down
//! the columns a tile of positions at a time, in place: every pass (the
//! max, the exponentials stored in the gradient buffer and summed, the
//! scaling) is an element-by-element loop along the positions, which
//! vectorizes, and reads each class row as one sequential stretch. The
//! per-position formulas are the row path's (`rows.rs`): the same
//! `(x_y - max) - ln(sum)`, the same gradient. Samples run in parallel with
//! the `rayon` feature; their sums are added in order.

use std::any::Any;
use std::cell::Cell;

use crate::Float;
use crate::base::labels::LabelSlice;
use crate::base::reduction::Sum;
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::{smoothed_label_term, term};

/// Positions per tile of a spatial sample, which runs in place: each
/// pass over a class row is then a sequential stretch of up to 64 KiB
/// (`f32`), which the hardware prefetchers follow. Tiles of 256 positions
/// copied into a contiguous block (the earlier design: the class rows are
/// a map apart, often a power of two, where short stretches evict each
/// other from the caches) spent over half their time in the copies on a
/// Zen 4 machine, waiting on memory; whole 128 x 128 maps in place ran
/// 0.77x their time (median of 60 alternating slices, one thread).
const TILE: usize = 16384;
/// Rows per block of `(N, C)` logits transposed to run down the columns
/// ([`label_rows_by_columns`]): the block and its gradient stay in the
/// first-level cache.
const ROW_BLOCK: usize = 256;
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

/// One run of positions: its first position in the per-position array,
/// its logits `(C, len)`, labels `(len)`, and the outputs' slices.
type Sample<'a, F> = (
    usize,
    &'a [F],
    LabelSlice<'a>,
    Option<&'a mut [F]>,
    Option<&'a mut [F]>,
);

/// Contiguous `(C, len)` blocks of `x` (a spatial sample's class rows, or
/// a block of `len` rows of `C` logits) with their labels and outputs'
/// slices; the last block may be shorter.
fn blocks_of<'a, F: Float>(
    x: &'a [F],
    labels: LabelSlice<'a>,
    grad: Option<&'a mut [F]>,
    per: Option<&'a mut [F]>,
    (classes, len): (usize, usize),
) -> Vec<Sample<'a, F>> {
    let block = classes * len;
    let mut grads = grad.map(|g| g.chunks_mut(block));
    let mut pers = per.map(|p| p.chunks_mut(len));
    x.chunks(block)
        .enumerate()
        .map(|(b, xs)| {
            let first = b * len;
            let ys = labels.sub(first..first + xs.len() / classes);
            let g = grads.as_mut().and_then(|it| it.next());
            let p = pers.as_mut().and_then(|it| it.next());
            (first, xs, ys, g, p)
        })
        .collect()
}

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
    let samples = blocks_of(x, labels, grad, per, (classes, positions));
    let sums = map_blocks(samples, x.len(), |(first, xs, ys, mut g, mut p)| {
        with_scratch(|scratch: &mut Scratch<F>| {
            let mut sum = Sum::default();
            // In place, each pass one sequential stream per class row.
            for start in (0..positions).step_by(TILE) {
                let tile = Tile {
                    first,
                    start,
                    width: TILE.min(positions - start),
                    positions,
                    classes,
                };
                let (g, p) = (g.as_deref_mut(), p.as_deref_mut());
                tile.run(&mut scratch.tile, terms, (xs, ys), g, p, &mut sum);
            }
            sum
        })
    });
    Sum::of_blocks(sums)
}

/// Classes up to which `(N, C)` rows run down the columns
/// ([`label_rows_by_columns`]): a short row's own passes (the max, the
/// exponentials, the scaling: vector kernels with their setup and their
/// lanes' reductions) and its scalar logarithm cost more than its work.
/// Measured on AVX2 (f32, one thread, 262,144 logits, ns per logit, rows
/// against columns, four alternating runs): 16 classes 6.0-6.2 against
/// 3.7-3.8; 21: 5.1-5.5 against 3.6-3.8; 24: 3.3-5.1 against 2.5-4.0;
/// 28: 2.9-3.9 against 2.4-2.7; 32 (four whole vectors a row): 3.1-3.5
/// against 2.4-3.7.
pub(crate) const SMALL_CLASSES: usize = 31;

/// [`label_columns`] for contiguous `(N, C)` logits with few classes
/// (`C <= SMALL_CLASSES`): each block of `ROW_BLOCK` rows is transposed into a
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
    let blocks = blocks_of(x, labels, grad, per, (classes, ROW_BLOCK));
    let sums = map_blocks(blocks, x.len(), |(first, xs, ys, g, p)| {
        with_scratch(|scratch: &mut Scratch<F>| {
            let rows = xs.len() / classes;
            let Scratch {
                tile: buffers,
                columns,
                g_columns,
            } = scratch;
            // The block's logits class by class: row r's class k at
            // k rows + r.
            grow(columns, g_columns, xs.len());
            let (columns, g_columns) = (&mut columns[..xs.len()], &mut g_columns[..xs.len()]);
            transpose(xs, columns, rows, classes);
            let tile = Tile {
                first,
                start: 0,
                width: rows,
                positions: rows,
                classes,
            };
            let mut sum = Sum::default();
            let g_tile = g.is_some().then_some(&mut *g_columns);
            tile.run(buffers, terms, (columns, ys), g_tile, p, &mut sum);
            if let Some(g) = g {
                transpose(g_columns, g, classes, rows);
            }
            sum
        })
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

/// The buffers of a thread's tiles, kept from call to call ([`with_scratch`]).
struct Scratch<F> {
    /// The per-position buffers.
    tile: TileScratch<F>,
    /// A block of rows transposed ([`label_rows_by_columns`]), and its
    /// gradient.
    columns: Vec<F>,
    g_columns: Vec<F>,
}

/// Runs `f` on this thread's [`Scratch`] for `F`, made on the thread's
/// first call and kept for the next ones: allocating and zero-filling the
/// buffers (14 KiB as stack arrays) for every call or tile was a quarter
/// of a 128 x 10 call's instructions. Each tile initializes the part it
/// reads. A nested call (there is none) would get buffers of its own.
fn with_scratch<F: Float, R>(f: impl FnOnce(&mut Scratch<F>) -> R) -> R {
    thread_local! {
        // One slot per float type: f32, f64.
        static CACHE: [Cell<Option<Box<dyn Any>>>; 2] = const { [Cell::new(None), Cell::new(None)] };
    }
    let slot = usize::from(size_of::<F>() == 8);
    let mut scratch = CACHE
        .with(|c| c[slot].take())
        .and_then(|b| b.downcast::<Scratch<F>>().ok())
        .unwrap_or_else(|| {
            Box::new(Scratch {
                tile: TileScratch::new(),
                columns: Vec::new(),
                g_columns: Vec::new(),
            })
        });
    let result = f(&mut scratch);
    CACHE.with(|c| c[slot].set(Some(scratch)));
    result
}

/// Grows both buffers to at least `len` (they never shrink: every entry a
/// tile reads, it has written first).
fn grow<F: Float>(a: &mut Vec<F>, b: &mut Vec<F>, len: usize) {
    if a.len() < len {
        a.resize(len, F::zero());
        b.resize(len, F::zero());
    }
}

/// A tile's per-position buffers; each tile initializes what it reads.
struct TileScratch<F> {
    /// `max`, `sum`, `dot`, `wy`, `xy`, `ln_sum`, `kc`, `dense`, as long as
    /// the widest tile yet.
    f: Vec<F>,
    /// The `f64` column sums (`wide`) and the positions' values.
    wide: Vec<f64>,
    /// The tile's labels.
    ys: Vec<usize>,
}

impl<F: Float> TileScratch<F> {
    fn new() -> Self {
        TileScratch {
            f: Vec::new(),
            wide: Vec::new(),
            ys: Vec::new(),
        }
    }

    /// The eight `F` buffers, the two `f64` ones and the labels, `w` long
    /// each (grown to `w` first: they never shrink).
    #[allow(clippy::type_complexity)]
    fn parts(&mut self, w: usize) -> ([&mut [F]; 8], [&mut [f64]; 2], &mut [usize]) {
        if self.ys.len() < w {
            self.f.resize(8 * w, F::zero());
            self.wide.resize(2 * w, 0.0);
            self.ys.resize(w, IGNORED);
        }
        let each = self.ys.len();
        let mut f = self.f.chunks_exact_mut(each).map(|c| &mut c[..w]);
        let mut wide = self.wide.chunks_exact_mut(each).map(|c| &mut c[..w]);
        (
            std::array::from_fn(|_| f.next().unwrap_or_default()),
            std::array::from_fn(|_| wide.next().unwrap_or_default()),
            &mut self.ys[..w],
        )
    }
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

    /// Runs the tile on the sample's logits `xs` and labels, adding each
    /// position's loss to `out`.
    fn run<F: Float>(
        &self,
        scratch: &mut TileScratch<F>,
        terms: &LabelTerms<'_, F>,
        (xs, labels): (&[F], LabelSlice<'_>),
        mut g: Option<&mut [F]>,
        per: Option<&mut [F]>,
        out: &mut Sum,
    ) {
        let w = self.width;
        let ([max, sum, dot, wy, xy, ln_sum, kc, dense], [wide, values], ys) = scratch.parts(w);
        // The tile's labels, read once: `IGNORED` marks the ignored one.
        labels.classes_into(self.start, ys, terms.ignore, IGNORED);
        max.fill(F::neg_infinity());
        sum.fill(F::zero());
        for k in 0..self.classes {
            F::max_into(max, &xs[self.range(k)]);
        }
        // Many classes: the per-position sums move into `f64` every
        // `CLASS_BLOCK` classes, so that a long class axis keeps `f32`
        // accuracy (few classes: one `F` sum, as in a row).
        if self.classes > CLASS_BLOCK {
            wide.fill(0.0);
        }
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
        if terms.smoothing {
            dot.fill(F::zero());
            for k in 0..self.classes {
                let wk = terms.weight.map_or(F::one(), |wt| wt[k]);
                F::diff_axpy(dot, wk, &xs[self.range(k)], max);
            }
        }

        // Per position: the label's weight (0 where ignored) and logit, and
        // the log of the sum, each as a vector pass; then the loss, and the
        // gradient's factor on the stored exponentials (`k`) and on the
        // class weights (`dense`).
        let weight = |c: usize| terms.weight.map_or(F::one(), |wt| wt[c]);
        // Branch-free: an ignored position reads class 0's logit, and its
        // weight 0 makes the position's value and factor 0 whatever it is.
        let label_at = |j: usize| {
            let y = ys[j];
            let (c, wc) = if y == IGNORED {
                (0, F::zero())
            } else {
                (y, weight(y))
            };
            (c * self.positions + self.start + j, wc)
        };
        dense.fill(F::zero());
        for j in 0..w {
            let (at, wc) = label_at(j);
            wy[j] = wc;
            xy[j] = xs[at];
        }
        F::ln_into(sum, ln_sum);
        if terms.smoothing {
            kc.fill(F::zero());
            values.fill(0.0);
            for j in 0..w {
                if ys[j] == IGNORED {
                    continue;
                }
                // -log p_y in f64: finite where F's would overflow.
                let nll_y = (max[j].as_f64() - xy[j].as_f64()) + ln_sum[j].as_f64();
                // hard * w_y in f64: in F a subnormal w_y loses bits.
                let at_y = terms.hard.as_f64() * wy[j].as_f64();
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
                let nll_sum = terms.w_sum * ln_sum[j].as_f64() - shifted;
                let (hard, off) = (terms.hard.as_f64(), terms.off.as_f64());
                values[j] = smoothed_label_term(wy[j].as_f64(), hard, nll_y, off, nll_sum);
            }
        } else {
            // Branch-free, so that both loops vectorize; an ignored
            // position has weight 0, hence factor 0 and value 0.
            for j in 0..w {
                kc[j] = terms.scale * wy[j] / sum[j];
            }
            for j in 0..w {
                // -log p_y in f64: finite where F's would overflow.
                let nll_y = (max[j].as_f64() - xy[j].as_f64()) + ln_sum[j].as_f64();
                values[j] = term(wy[j].as_f64(), nll_y);
            }
        }
        if let Some(p) = per {
            for (p, &v) in p[self.start..self.start + w].iter_mut().zip(values.iter()) {
                *p = F::lit(v);
            }
        }
        out.add_block::<F, f64>(self.first + self.start, values);
        if let Some(g) = g {
            for k in 0..self.classes {
                F::scale_shift_cols(&mut g[self.range(k)], kc, weight(k), dense);
            }
            let at_y = if terms.smoothing {
                terms.hard
            } else {
                F::one()
            };
            // An ignored position subtracts +0 (its weight 0 times a
            // non-negative factor) from class 0: the same bits.
            let at_y = terms.scale * at_y;
            for j in 0..w {
                let (at, wc) = label_at(j);
                g[at] -= at_y * wc;
            }
        }
    }
}
