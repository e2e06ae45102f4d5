//! Cross-entropy with labels on `(N, C, d1, .., dk)` logits, by columns.
//!
//! In a contiguous spatial input each sample is a `(C, S)` matrix
//! (`S = d1 * .. * dk` positions) whose class rows run along the positions,
//! so a position's logits are a strided column. The softmax runs down the
//! columns in place, a vector of positions (a strip) at a time
//! ([`RowKernels::softmax_columns`](crate::base::float::RowKernels::softmax_columns)):
//! the strip's logits are read once, each class a vector, and its
//! gradient written once; the per-position values stay in registers.
//! Around the kernel, each tile of positions reads its labels once and
//! forms each position's loss from the kernel's max, sum and logit at the
//! label. The per-position formulas are the row path's (`rows.rs`): the
//! same `(x_y - max) - ln(sum)`, the same gradient. Samples run in
//! parallel with the `rayon` feature; their sums are added in order.

use std::any::Any;
use std::cell::Cell;

use crate::Float;
use crate::base::float::{ColumnGrad, ColumnStats, ColumnTile};
use crate::base::labels::LabelSlice;
use crate::base::reduction::{LaneSum, Sum};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::{smoothed_label_term, term};
use crate::numerics::transpose::transpose;

/// Positions per tile of a spatial sample: the span of the per-position
/// buffers (labels, factors, the kernel's statistics, the losses), 9 KiB
/// each in `f64`, which stay in the caches. The kernel's reads and writes
/// run across tiles as they would in one, so the width changed nothing
/// measurable between 2,048 and 16,384 (whole 128 x 128 maps) on a Zen 4
/// machine; the earlier design, a pass per class row over the tile,
/// wanted whole maps.
const TILE: usize = 2048;
/// Rows per block of `(N, C)` logits transposed to run down the columns
/// ([`label_rows_by_columns`]): the block and its gradient stay in the
/// first-level cache.
const ROW_BLOCK: usize = 256;
/// The size of logits, in bytes, beyond which a spatial input is taken to
/// come from beyond the second-level cache, its gradient with it
/// ([`ColumnTile::far`]): on the Zen 4 machine of the kernel's figures
/// (1 MiB of second-level cache a core), 2 x 21 x 128 x 128 (2.8 MB) ran
/// 0.94x the time asking for its lines that way (0.83-0.96x with them
/// asked 256 elements ahead), and 1 x 21 x 60 x 70 (0.35 MB) 1.25x.
const FAR_BYTES: usize = 1 << 20;
/// A tile's label that counts for nothing.
const NO_LABEL: u32 = ColumnTile::<f32>::NO_LABEL;

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
    let far = std::mem::size_of_val(x) > FAR_BYTES;
    let sums = map_blocks(samples, x.len(), |(first, xs, ys, mut g, mut p)| {
        with_scratch(|scratch: &mut Scratch<F>| {
            let mut sum = LaneSum::new();
            // In place, each pass one sequential stream per class row.
            for start in (0..positions).step_by(TILE) {
                let tile = Tile {
                    first,
                    start,
                    width: TILE.min(positions - start),
                    positions,
                    classes,
                    far,
                };
                let (g, p) = (g.as_deref_mut(), p.as_deref_mut());
                tile.run(&mut scratch.tile, terms, (xs, ys), g, p, &mut sum);
            }
            sum.finish()
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
            let (columns, g_columns) = (aligned(columns, xs.len()), aligned(g_columns, xs.len()));
            transpose(xs, columns, rows, classes);
            // The block is in the first-level cache, just transposed.
            let tile = Tile {
                first,
                start: 0,
                width: rows,
                positions: rows,
                classes,
                far: false,
            };
            let mut sum = LaneSum::new();
            let g_tile = g.is_some().then_some(&mut *g_columns);
            tile.run(buffers, terms, (columns, ys), g_tile, p, &mut sum);
            if let Some(g) = g {
                transpose(g_columns, g, classes, rows);
            }
            sum.finish()
        })
    });
    Sum::of_blocks(sums)
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

/// Elements of slack in a [`grow`]n buffer, for [`aligned`] to start at a
/// cache line (64 bytes, at least 8 elements of any float type).
const ALIGN_SLACK: usize = 16;

/// Grows both buffers to at least `len` and [`aligned`]'s slack (they
/// never shrink: every entry a tile reads, it has written first).
fn grow<F: Float>(a: &mut Vec<F>, b: &mut Vec<F>, len: usize) {
    if a.len() < len + ALIGN_SLACK {
        a.resize(len + ALIGN_SLACK, F::zero());
        b.resize(len + ALIGN_SLACK, F::zero());
    }
}

/// `len` values of `buf` from its first cache-line boundary: the column
/// kernel's strips then start at one, as it aligns them itself on a
/// caller's buffer, with no partial strip first.
fn aligned<F: Float>(buf: &mut [F], len: usize) -> &mut [F] {
    let size = size_of::<F>();
    let skip = (64 - buf.as_ptr() as usize % 64) % 64 / size;
    &mut buf[skip..skip + len]
}

/// A tile's per-position buffers; each tile initializes what it reads.
struct TileScratch<F> {
    /// `max`, `sum`, `at_label`, `ln_sum`, `wy`, `coef`, `fix`, `dense`,
    /// `dot`, as long as the widest tile yet.
    f: Vec<F>,
    /// The positions' values.
    values: Vec<f64>,
    /// The tile's labels.
    ys: Vec<u32>,
    /// One strip of positions' values, for the kernel ([`ColumnTile::strip`]).
    strip: Vec<F>,
}

impl<F: Float> TileScratch<F> {
    fn new() -> Self {
        TileScratch {
            f: Vec::new(),
            values: Vec::new(),
            ys: Vec::new(),
            strip: Vec::new(),
        }
    }

    /// The nine `F` buffers, the values and the labels, `w` long each,
    /// and a strip's room for `classes` (grown first: they never shrink).
    #[allow(clippy::type_complexity)]
    fn parts(
        &mut self,
        w: usize,
        classes: usize,
    ) -> ([&mut [F]; 9], &mut [f64], &mut [u32], &mut [F]) {
        let strip = ColumnTile::<F>::MAX_LANES * classes;
        if self.strip.len() < strip {
            self.strip.resize(strip, F::zero());
        }
        if self.ys.len() < w {
            self.f.resize(9 * w, F::zero());
            self.values.resize(w, 0.0);
            self.ys.resize(w, NO_LABEL);
        }
        let each = self.ys.len();
        let mut f = self.f.chunks_exact_mut(each).map(|c| &mut c[..w]);
        (
            std::array::from_fn(|_| f.next().unwrap_or_default()),
            &mut self.values[..w],
            &mut self.ys[..w],
            &mut self.strip,
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
    /// The kernel's [`ColumnTile::far`].
    far: bool,
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
        g: Option<&mut [F]>,
        per: Option<&mut [F]>,
        out: &mut LaneSum,
    ) {
        let w = self.width;
        let ([max, sum, at_label, ln_sum, wy, coef, fix, dense, dot], values, ys, strip) =
            scratch.parts(w, self.classes);
        // The tile's labels, read once; an ignored one matches no class.
        labels.classes_into(self.start, ys, terms.ignore, NO_LABEL);
        let weight = |c: usize| terms.weight.map_or(F::one(), |wt| wt[c]);
        let labelled = wy.iter_mut().zip(ys.iter());
        // Without weights a select, which vectorizes; with the weights'
        // lookup in the same loop it did not (2.9% of a spatial call's
        // samples).
        match terms.weight {
            None => labelled.for_each(|(wy, &y)| {
                *wy = if y == NO_LABEL { F::zero() } else { F::one() };
            }),
            Some(wt) => labelled.for_each(|(wy, &y)| {
                *wy = if y == NO_LABEL {
                    F::zero()
                } else {
                    wt[y as usize]
                };
            }),
        }
        // The gradient's factors per position (see `ColumnGrad`): on the
        // exponentials, at the label, and (with smoothing) on every class.
        let at_y = terms.scale
            * if terms.smoothing {
                terms.hard
            } else {
                F::one()
            };
        if g.is_some() {
            for (f, &wc) in fix.iter_mut().zip(wy.iter()) {
                *f = at_y * wc;
            }
            if terms.smoothing {
                let (hard, off) = (terms.hard.as_f64(), terms.off.as_f64());
                for j in 0..w {
                    let labelled = ys[j] != NO_LABEL;
                    // hard * w_y in f64: in F a subnormal w_y loses bits.
                    let total = F::lit(hard * wy[j].as_f64() + term(off, terms.w_sum));
                    coef[j] = if labelled {
                        terms.scale * total
                    } else {
                        F::zero()
                    };
                    dense[j] = if labelled {
                        terms.scale * terms.off
                    } else {
                        F::zero()
                    };
                }
            } else {
                for (c, &wc) in coef.iter_mut().zip(wy.iter()) {
                    *c = terms.scale * wc;
                }
            }
        }
        let tile = ColumnTile {
            x: &xs[self.start..],
            classes: self.classes,
            stride: self.positions,
            labels: ys,
            strip,
            far: self.far,
        };
        let stats = ColumnStats { max, sum, at_label };
        let grad = g.map(|g| ColumnGrad {
            g: &mut g[self.start..],
            coef,
            fix,
            dense: terms.smoothing.then_some(&*dense),
            weight: terms.weight,
        });
        F::softmax_columns(tile, stats, grad);
        let (max, sum, at_label) = (&*max, &*sum, &*at_label);
        F::ln_into(sum, ln_sum);
        if terms.smoothing {
            // sum_k w_k (x_k - max), for sum_k w_k (-log p_k).
            dot.fill(F::zero());
            for k in 0..self.classes {
                F::diff_axpy(dot, weight(k), &xs[self.range(k)], max);
            }
            values.fill(0.0);
            for j in 0..w {
                if ys[j] == NO_LABEL {
                    continue;
                }
                // -log p_y in f64: finite where F's would overflow.
                let nll_y = (max[j].as_f64() - at_label[j].as_f64()) + ln_sum[j].as_f64();
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
            // Branch-free, so that the loop vectorizes; an ignored
            // position has weight 0, hence value 0.
            for j in 0..w {
                // -log p_y in f64: finite where F's would overflow.
                let nll_y = (max[j].as_f64() - at_label[j].as_f64()) + ln_sum[j].as_f64();
                values[j] = term(wy[j].as_f64(), nll_y);
            }
        }
        if let Some(p) = per {
            for (p, &v) in p[self.start..self.start + w].iter_mut().zip(values.iter()) {
                *p = F::lit(v);
            }
        }
        out.add_block::<F, f64>(self.first + self.start, values);
    }
}
