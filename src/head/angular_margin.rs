//! The fused angular-margin head: ArcFace, CosFace or the combined margin
//! on raw embeddings and class weights, chunk by chunk of samples, never
//! holding the `(N, C)` cosines.

use ndarray::{
    Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, CowArray, Ix2, s,
};

use crate::base::labels::Labels;
use crate::base::loss::{Call, Compute};
use crate::base::options::Options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::at_least_one_count;
use crate::engine::angular::margin::{Perp, target_sin};
use crate::engine::angular::norms::{RowNorm, exact_row_norms, grad_shift, unscale_grad};
use crate::engine::angular::row::MarginRow;
use crate::engine::angular::{EmbeddingsAndLabels, EmbeddingsGradMut, Sealed, check_embeddings};
use crate::engine::linear_chunks::{Linear, LinearGradViews, linear_chunks};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::{GradBeyond, with_lane_mut};
use crate::numerics::times_pow2;
use crate::{AngularMargin, Error, Float, LinearCrossEntropy, Reduction, Result};

/// An angular-margin loss ([`ArcFace`](crate::ArcFace),
/// [`CosFace`](crate::CosFace) or [`CombinedMargin`](crate::CombinedMargin),
/// with every option it was configured with) fused with its classifier:
/// the same value, per-sample values and gradients as the loss itself on
/// the same [`Embeddings`](crate::Embeddings), computed a chunk of samples
/// at a time so that the `(N, C)` cosine matrix and its gradient are never
/// held whole.
///
/// Use it where the classes are many (face recognition trains on 10^5 to
/// 10^7 identities): at `N = 1,024` samples and `C = 10^6` classes the
/// cosines alone are 4 GiB of `f32`, which the loss on
/// [`Embeddings`](crate::Embeddings) allocates and this head does not. With
/// [`PartialFc`](crate::PartialFc) it runs on a sampled subset of the
/// classes.
///
/// # Formula
/// With `h_i` the raw embeddings `(N, D)` and `w_j` the raw class weights
/// `(C, D)`:
/// ```text
/// Z = h W^T                                       (N, C), by chunks of rows
/// cos_ij = Z_ij / (|h_i| |w_j|)
/// l_i = the wrapped loss's row: s cos_ij off the target,
///       s (cos(m1 theta + m2) - m3) on it, then cross-entropy
/// g_ij = dL/dcos_ij,   G'_ij = g_ij / (|h_i| |w_j|)  (written over Z)
/// dL/dh_i = (G' W)_i - ((G' W)_i . h_i) / |h_i|^2 h_i
/// dL/dw_j = (G'^T h)_j - ((G'^T h)_j . w_j) / |w_j|^2 w_j
/// ```
/// The last two lines are the backward pass through the normalization:
/// each product loses its component along its own row. That component is
/// `sum_j g_ij cos_ij / |h_i|` for sample `i` (and `sum_i g_ij cos_ij /
/// |w_j|` for class `j`), since `G'_ij Z_ij = g_ij cos_ij`; it is read off
/// the finished products after the loop (one dot product per row), so no
/// per-class sum is carried across the chunks. As in the wrapped loss, the
/// part of the target's slope that divides by `sin(theta)` is added along
/// the unit direction between the two rows, computed as such (see
/// [`ArcFace`](crate::ArcFace), *Precision near `theta = 0`*).
///
/// The head is exact: the same value, per-sample values and gradients as
/// the wrapped loss on [`Embeddings`](crate::Embeddings), to float rounding
/// (the cosines come from the raw products divided by the norms, where the
/// loss normalizes the rows first), in `f32` and `f64`, for every option,
/// reduction and chunk size. The products run on the `gemm` crate on the
/// current rayon pool's threads and the rows of a chunk in parallel blocks
/// whose sums are added in order: the results are the same bits on any
/// thread count.
///
/// # Memory
/// Beyond the inputs and the gradient buffers: one `chunk_rows x C` buffer
/// of `F` (the default chunk is [`LinearCrossEntropy`]'s, the largest
/// count of rows whose buffer fits 48 MiB, at least 64), one row of `C` cosines per
/// thread, `gemm`'s packing, and vectors of a few numbers per sample and
/// per class (the norms and their reciprocals: 24 to 32 bytes per class).
/// The weight matrix is never copied. Where the raw products would leave
/// the float type's range (rows whose norms multiply beyond it or below its
/// precision, such as `f32` embeddings and weights both of norm `1e20`),
/// the embeddings are copied once, each row scaled by a power of two (an
/// `N x D` copy; the results are the same).
///
/// # Shapes
/// - input: [`Embeddings`](crate::Embeddings) `{ embeddings (N, D), weight
///   (C, D) }`, neither normalized; labels `(N)` in `0..C`, of any integer
///   type.
/// - per-sample `(N)`; gradient: [`EmbeddingsGrad`](crate::EmbeddingsGrad)
///   `{ embeddings (N, D), weight (C, D) }`.
/// - `Mean` divides by `N`, as the wrapped loss.
///
/// # Options
/// The wrapped loss's (scale, margins, `easy_margin`, reduction), set on it
/// before wrapping; and `chunk_rows`, the samples per chunk (`>= 1`). The
/// results are the same for every chunk size, to float rounding.
///
/// # Errors
/// The wrapped loss's, with the same messages: an empty batch, feature or
/// class axis; `weight` with another `D` than the embeddings; labels of the
/// wrong length or `>= C`; a row of zero norm in `embeddings` or `weight`
/// ([`Error::InvalidInput`] naming the row); a gradient buffer of the
/// wrong shape; a scale beyond the float type; a finite input whose loss
/// or gradient is beyond the float type is [`Error::Overflow`]. One limit
/// of its own: the class weights' norms may span at most `2^225` in `f32`
/// (`2^1988` in `f64`) from the smallest to the largest, since the raw
/// products of every class row with one embedding must share the float
/// type's range (the wrapped loss normalizes each row instead). A wider
/// span (a subnormal class row beside one of norm `1e30`, say) is an
/// [`Error::InvalidInput`] naming the smallest row.
///
/// # Examples
/// ```
/// use classloss::{AngularMarginHead, ArcFace, Differentiable, Embeddings, Loss};
/// use ndarray::array;
///
/// let e = array![[3.0_f64, 0.0], [1.0, 1.0]];
/// let w = array![[1.0, 0.0], [0.0, 2.0], [-1.0, 0.5]];
/// let labels = array![0_i64, 1];
/// let input = Embeddings { embeddings: e.view(), weight: w.view() };
/// let arc = ArcFace::new().with_scale(16.0)?.with_margin(0.3)?;
/// let head = AngularMarginHead::new(arc.clone()).with_chunk_rows(1)?;
/// let (loss, grad) = head.forward_backward(input, &labels)?;
/// // The loss on the materialized cosines, to rounding.
/// let (want, want_grad) = arc.forward_backward(input, &labels)?;
/// assert!((loss - want).abs() < 1e-12);
/// assert!((&grad.weight - &want_grad.weight).iter().all(|d| d.abs() < 1e-12));
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// The losses: J. Deng et al., "ArcFace: Additive Angular Margin Loss for
/// Deep Face Recognition", CVPR 2019, <https://arxiv.org/abs/1801.07698>;
/// H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
/// Recognition", CVPR 2018, <https://arxiv.org/abs/1801.09414>. The chunked
/// fused head: as [`LinearCrossEntropy`] (Liger-Kernel, Cut Cross-Entropy).
/// Large class counts in face recognition: X. An et al., "Killing Two Birds
/// with One Stone: Efficient and Robust Training of Face Recognition CNNs
/// by Partial FC", CVPR 2022, <https://arxiv.org/abs/2203.15565>.
#[derive(Clone, Debug, PartialEq)]
pub struct AngularMarginHead<L> {
    loss: L,
    chunk_rows: Option<usize>,
}

impl<L: AngularMargin> AngularMarginHead<L> {
    /// The fused head of `loss` (with its options), the default chunk.
    pub fn new(loss: L) -> Self {
        AngularMarginHead {
            loss,
            chunk_rows: None,
        }
    }

    /// The wrapped loss, whose options apply.
    pub fn loss(&self) -> &L {
        &self.loss
    }

    /// Unwraps the loss.
    pub fn into_inner(self) -> L {
        self.loss
    }

    /// The reduction (the wrapped loss's).
    pub fn reduction(&self) -> Reduction {
        Options::reduction(&self.loss)
    }

    /// Sets the samples per chunk, `>= 1` (default: as
    /// [`LinearCrossEntropy::chunk_rows_for`]).
    pub fn with_chunk_rows(mut self, chunk_rows: usize) -> Result<Self> {
        at_least_one_count("chunk_rows", chunk_rows)?;
        self.chunk_rows = Some(chunk_rows);
        Ok(self)
    }

    /// The samples per chunk set by [`Self::with_chunk_rows`], or `None`
    /// for the default.
    pub fn chunk_rows(&self) -> Option<usize> {
        self.chunk_rows
    }

    /// The samples per chunk used with `classes` classes in the float type
    /// `F`: the one set, or [`LinearCrossEntropy`]'s default (the largest
    /// count whose `rows x classes` buffer of `F` fits 48 MiB, at least 64).
    pub fn chunk_rows_for<F: Float>(&self, classes: usize) -> usize {
        self.chunk_rows
            .unwrap_or_else(|| LinearCrossEntropy::<F>::new().chunk_rows_for(classes))
    }
}

impl<L: Sealed> Options for AngularMarginHead<L> {
    fn reduction(&self) -> Reduction {
        Options::reduction(&self.loss)
    }
    fn set_reduction(&mut self, reduction: Reduction) {
        Options::set_reduction(&mut self.loss, reduction);
    }
}

/// The exponents of `F`: `log2` of its largest value (rounded down) and of
/// its smallest normal value, and its precision in bits (`-log2 eps`).
fn exponents<F: Float>() -> (i32, i32, i32) {
    let emax = F::max_value().as_f64().log2().floor() as i32;
    let emin = F::min_positive_value().as_f64().log2().round() as i32;
    let bits = -(F::epsilon().as_f64().log2().round() as i32);
    (emax, emin, bits)
}

/// The error for class rows whose norms span more than the head's range
/// (`2^((emax - 3) - (emin + bits + 2))`, see [`Geometry::scales`]): names
/// the smallest.
pub(crate) fn span_error<F: Float>(j: usize, norm: RowNorm) -> Error {
    let f32_type = std::mem::size_of::<F>() == 4;
    Error::InvalidInput {
        what: "weight",
        index: vec![j],
        value: norm.times_pow2(0),
        expected: if f32_type {
            "a row norm at least 2^-225 times the largest row's (the fused head's range in f32)"
        } else {
            "a row norm at least 2^-1988 times the largest row's (the fused head's range in f64)"
        },
    }
}

/// The norms of one call's rows and the powers of two that keep its raw
/// products inside `F`.
///
/// The products see the embeddings `h'_i = h_i 2^(s_i)` and the weight as
/// it is. Usually `s_i = 0` and `g = 0` (no copy). Where the raw products
/// would leave `F`'s range or its precision (`|h_i| |w_j|` beyond
/// `F::MAX / 4` or below `4 F::MIN_POSITIVE / eps`), or a norm's reciprocal
/// would, each embedding row is scaled to a norm in `[2^g, 2^(g+1))`, `g`
/// chosen so that `|h'_i| |w_j|` is inside that range for every class:
/// then `|w_j| 2^g` and `|h'_i| 2^-g` are normal numbers of `F`, and so
/// are their reciprocals, which turn the products into cosines.
pub(crate) struct Geometry<'a, F> {
    /// The embeddings of the products, `h'`.
    pub(crate) h: CowArray<'a, F, Ix2>,
    /// The class weights.
    pub(crate) w: ArrayView2<'a, F>,
    /// The power of two `g`.
    pub(crate) g: i32,
    /// `2^g` in `F`.
    pub(crate) pow2g: F,
    /// `-s_i` per row (empty when `h'` is `h`), for [`unscale_grad`].
    pub(crate) shifts: Vec<i32>,
    /// `|h'_i|`.
    pub(crate) norm_h: Vec<F>,
    /// `1 / (|h'_i| 2^-g)`.
    pub(crate) inv_h: Vec<F>,
    /// `|w_j| 2^g`.
    pub(crate) norm_w: Vec<F>,
    /// `1 / (|w_j| 2^g)`.
    pub(crate) inv_w: Vec<F>,
}

/// The class rows' norms span more than the head's range (see
/// [`Geometry::scales`]).
pub(crate) struct SpanTooWide;

/// The range `(min, max)` of the `log2` of `norms`, or `None` if one is
/// not finite (a row that is not finite).
pub(crate) fn log2_range(norms: &[RowNorm]) -> Option<(f64, f64)> {
    let mut range = (f64::INFINITY, f64::NEG_INFINITY);
    for n in norms {
        let l = n.log2();
        if !l.is_finite() {
            return None;
        }
        range = (range.0.min(l), range.1.max(l));
    }
    Some(range)
}

impl<'a, F: Float> Geometry<'a, F> {
    fn new(h: ArrayView2<'a, F>, w: ArrayView2<'a, F>) -> Result<Self> {
        let ne = exact_row_norms("embeddings", &h)?;
        let nw = exact_row_norms("weight", &w)?;
        let (g, s) = Self::scales(&ne, log2_range(&nw)).map_err(|SpanTooWide| {
            let j = (0..nw.len()).fold(0, |m, j| if nw[j].log2() < nw[m].log2() { j } else { m });
            span_error::<F>(j, nw[j])
        })?;
        Ok(Self::with_scales(h, w, &ne, &nw, g, s))
    }

    /// The geometry of embeddings `h` (norms `ne`) and class rows `w`
    /// (norms `nw`) under the scales `g` and `s` of [`Geometry::scales`].
    pub(crate) fn with_scales(
        h: ArrayView2<'a, F>,
        w: ArrayView2<'a, F>,
        ne: &[RowNorm],
        nw: &[RowNorm],
        g: i32,
        s: Option<Vec<i32>>,
    ) -> Self {
        let h = match &s {
            None => CowArray::from(h),
            Some(s) => {
                let mut scaled = Array2::zeros(h.raw_dim());
                for ((mut to, from), &si) in scaled.rows_mut().into_iter().zip(h.rows()).zip(s) {
                    let (f1, f2) = (times_pow2(1.0, si / 2), times_pow2(1.0, si - si / 2));
                    to.zip_mut_with(&from, |t, &x| *t = F::lit(x.as_f64() * f1 * f2));
                }
                CowArray::from(scaled)
            }
        };
        let s_of = |i: usize| s.as_ref().map_or(0, |s| s[i]);
        let recip = |x: f64| F::lit(1.0 / x);
        Geometry {
            h,
            w,
            g,
            pow2g: F::lit(times_pow2(1.0, g)),
            shifts: s
                .as_ref()
                .map_or(Vec::new(), |s| s.iter().map(|&x| -x).collect()),
            norm_h: (ne.iter().enumerate())
                .map(|(i, n)| F::lit(n.times_pow2(s_of(i))))
                .collect(),
            inv_h: (ne.iter().enumerate())
                .map(|(i, n)| recip(n.times_pow2(s_of(i) - g)))
                .collect(),
            norm_w: nw.iter().map(|n| F::lit(n.times_pow2(g))).collect(),
            inv_w: nw.iter().map(|n| recip(n.times_pow2(g))).collect(),
        }
    }

    /// `g` and the row shifts `s_i` (`None`: all 0, the raw products fit),
    /// from the embeddings' norms and the range of the class rows' norms'
    /// `log2` (`None` when one is not finite: then the NaN and infinities
    /// pass through).
    pub(crate) fn scales(
        ne: &[RowNorm],
        w_range: Option<(f64, f64)>,
    ) -> Result<(i32, Option<Vec<i32>>), SpanTooWide> {
        let (emax, emin, bits) = exponents::<F>();
        // The products' range, and the norms' (whose reciprocals are normal).
        let (z_lo, z_hi) = (f64::from(emin + bits + 2), f64::from(emax - 2));
        let (n_lo, n_hi) = (f64::from(emin + 2), z_hi);
        let le: Vec<f64> = ne.iter().map(|n| n.log2()).collect();
        let (Some(e_range), Some((w_lo, w_hi))) = (log2_range(ne), w_range) else {
            // Non-finite inputs: their NaN and infinities pass through.
            return Ok((0, None));
        };
        let (e_lo, e_hi) = e_range;
        let norms_fit = e_lo >= n_lo && w_lo >= n_lo && e_hi <= n_hi && w_hi <= n_hi;
        if norms_fit && e_hi + w_hi <= z_hi && e_lo + w_lo >= z_lo {
            return Ok((0, None));
        }
        // |h'_i| in [2^g, 2^(g+1)): the products of the smallest class row
        // stay above z_lo, those of the largest below z_hi, and h' itself
        // within F with its precision.
        let lo = (z_lo - w_lo).max(z_lo).ceil();
        let hi = (z_hi - 1.0 - w_hi).min(f64::from(emax - 3)).floor();
        if lo > hi {
            return Err(SpanTooWide);
        }
        let g = ((lo + hi) / 2.0).floor() as i32;
        let s = le.iter().map(|&l| g - l.floor() as i32).collect();
        Ok((g, Some(s)))
    }

    /// What the head's factors can multiply the gradient's sums by before
    /// they are final (see [`grad_shift`]): `G' = g / (|h_i| |w_j|)`, at
    /// most `|g|` times the largest `inv_h inv_w`; and, where the
    /// embeddings are scaled, the product `G' W`, which is `d h'_i`, at
    /// most `sum |g| inv_h 2^-g` before its `2^(s_i)`. (The other product,
    /// `sum_i G'_ij h'_i`, is the weight's gradient itself: beyond `F`, it
    /// is the gradient's overflow.)
    fn grad_factor(&self) -> f64 {
        self.grad_factor_with(self.max_inv_w())
    }

    /// The largest `1 / (|w_j| 2^g)` of these class rows (0 for none).
    pub(crate) fn max_inv_w(&self) -> f64 {
        self.inv_w.iter().fold(0.0_f64, |m, x| m.max(x.as_f64()))
    }

    /// [`Geometry::grad_factor`] with the largest `1 / (|w_j| 2^g)` of all
    /// the classes given (those of every shard).
    pub(crate) fn grad_factor_with(&self, max_inv_w: f64) -> f64 {
        let max = |v: &[F]| v.iter().fold(0.0_f64, |m, x| m.max(x.as_f64()));
        let (e, w) = (max(&self.inv_h), max_inv_w);
        let scaled = if self.shifts.is_empty() {
            1.0
        } else {
            e / times_pow2(1.0, self.g)
        };
        [e * w, scaled, 1.0].into_iter().fold(0.0, f64::max)
    }

    /// Class row `j` as the products see it, times `2^g` (the row itself
    /// when `g = 0`, else a copy in `scratch`), so that its norm is
    /// `norm_w[j]`.
    pub(crate) fn weight_row<'s>(&'s self, j: usize, scratch: &'s mut Vec<F>) -> ArrayView1<'s, F> {
        if self.g == 0 {
            return self.w.row(j);
        }
        scratch.clear();
        scratch.extend(self.w.row(j).iter().map(|&x| x * self.pow2g));
        ArrayView1::from(&scratch[..])
    }

    /// The part of `w^_y` perpendicular to `h^_i`, and the other way round
    /// (`from_weight`).
    pub(crate) fn perp<'s>(
        &'s self,
        i: usize,
        y: usize,
        scratch: &'s mut Vec<F>,
        from_weight: bool,
    ) -> Perp<'s, F> {
        let w = self.weight_row(y, scratch);
        let h = self.h.row(i);
        if from_weight {
            Perp::new(w, self.norm_w[y], h, self.norm_h[i])
        } else {
            Perp::new(h, self.norm_h[i], w, self.norm_w[y])
        }
    }
}

/// The bytes of logits per block of rows of [`chunk_loss`] (at least one
/// row): the unit of its parallel work.
const BLOCK_BYTES: usize = 256 << 10;

/// The loss of one chunk's products `z` (samples `start..`): the cosines,
/// the margin rows, and with `want_grad` `G'` written over `z` and the
/// target's perpendicular coefficients into `perp`; blocks of rows in
/// parallel, their sums added in order.
#[allow(clippy::too_many_arguments)]
fn chunk_loss<F: Float>(
    row: &MarginRow<F>,
    geo: &Geometry<'_, F>,
    labels: &Labels<'_>,
    start: usize,
    z: &mut ArrayViewMut2<'_, F>,
    per: Option<ArrayViewMut1<'_, F>>,
    perp: &mut [F],
    want_grad: bool,
) -> Sum {
    let (rows, v) = z.dim();
    let block = (BLOCK_BYTES / (v * std::mem::size_of::<F>())).clamp(1, rows);
    let blocks = row_blocks(z, per, perp, block);
    let sums = map_blocks(blocks, rows * v, |(first, mut zb, mut pb, kb)| {
        let mut c = vec![F::zero(); v];
        let (mut w_scratch, mut lane) = (Vec::new(), Vec::new());
        let mut sum = Sum::default();
        let beyond = GradBeyond::default();
        for (r, mut z_row) in zb.outer_iter_mut().enumerate() {
            let i = start + first + r;
            let y = labels.class(i);
            let inv_h = geo.inv_h[i];
            for ((c, &z), &inv_w) in c.iter_mut().zip(z_row.iter()).zip(&geo.inv_w) {
                *c = z * inv_h * inv_w;
            }
            let sin = if row.needs_sin() {
                let w = geo.weight_row(y, &mut w_scratch);
                target_sin(geo.h.row(i), geo.norm_h[i], w, geo.norm_w[y])
            } else {
                F::zero()
            };
            let value = if want_grad {
                let (value, k) = with_lane_mut(z_row.view_mut(), &mut lane, |g| {
                    row.run(&c, y, Some(sin), Some(g), &beyond)
                });
                z_row.zip_mut_with(&ArrayView1::from(&geo.inv_w[..]), |g, &inv_w| {
                    *g = *g * inv_h * inv_w;
                });
                kb[r] = k;
                value
            } else {
                row.run(&c, y, Some(sin), None, &beyond).0
            };
            if let Some(p) = pb.as_mut() {
                p[r] = F::lit(value);
            }
            sum.add::<F>(first + r, value);
            beyond.report(&mut sum, first + r);
        }
        sum
    });
    Sum::of_blocks(sums)
}

/// One block of a chunk's rows: its first row, the rows, and its slices of
/// the per-sample values and of the targets' perpendicular coefficients.
pub(crate) type RowBlock<'z, F> = (
    usize,
    ArrayViewMut2<'z, F>,
    Option<ArrayViewMut1<'z, F>>,
    &'z mut [F],
);

/// The rows of `z` in blocks of `block`, each with its slices of `per`
/// (if any) and of `perp` (empty when no gradient is wanted).
pub(crate) fn row_blocks<'z, F>(
    z: &'z mut ArrayViewMut2<'_, F>,
    per: Option<ArrayViewMut1<'z, F>>,
    perp: &'z mut [F],
    block: usize,
) -> Vec<RowBlock<'z, F>> {
    let count = z.nrows().div_ceil(block);
    let mut pers: Vec<Option<ArrayViewMut1<'z, F>>> = match per {
        Some(p) => p
            .into_axis_chunks_iter_mut(Axis(0), block)
            .map(Some)
            .collect(),
        None => Vec::new(),
    };
    pers.resize_with(count, || None);
    let mut perps: Vec<&mut [F]> = perp.chunks_mut(block).collect();
    perps.resize_with(count, Default::default);
    z.axis_chunks_iter_mut(Axis(0), block)
        .zip(pers)
        .zip(perps)
        .enumerate()
        .map(|(k, ((zb, pb), kb))| (k * block, zb, pb, kb))
        .collect()
}

impl<F: Float> Geometry<'_, F> {
    /// The backward pass through the normalization, after the loop: each
    /// product loses its component along its own row, the target's
    /// perpendicular parts are added (`perp`: their coefficients per
    /// sample), and the scales are undone (`2^(s_i + t)` for the
    /// embeddings, `2^t` for the weight), an entry beyond `F` an overflow.
    fn finish_grad(
        &self,
        grad: EmbeddingsGradMut<'_, F>,
        labels: &Labels<'_>,
        perp: &[F],
        t: i32,
    ) -> Result<()> {
        let EmbeddingsGradMut {
            embeddings: mut dh,
            weight: mut dw,
        } = grad;
        let target = |i: usize| Some(labels.class(i));
        self.remove_hidden_radial(&mut dh);
        self.add_hidden_perp(&mut dh, target, perp);
        self.weight_radial_and_perp(&mut dw, target, perp);
        unscale_grad("embeddings", &mut dh, &self.shifts, t)?;
        unscale_grad("weight", &mut dw, &[], t)
    }

    /// `d h`'s rows without their component along their own embedding.
    pub(crate) fn remove_hidden_radial(&self, dh: &mut ArrayViewMut2<'_, F>) {
        for_rows(dh, |i, mut q, _| {
            remove_radial(&mut q, self.h.row(i), self.norm_h[i]);
        });
    }

    /// Adds to `d h` sample `i`'s target's perpendicular part, of
    /// coefficient `perp[i]`, where these class rows hold its target
    /// (`target(i)`: the row).
    pub(crate) fn add_hidden_perp(
        &self,
        dh: &mut ArrayViewMut2<'_, F>,
        target: impl Fn(usize) -> Option<usize> + Sync,
        perp: &[F],
    ) {
        for_rows(dh, |i, mut q, scratch| {
            let k = perp[i];
            if let (true, Some(y)) = (k != F::zero(), target(i)) {
                let p = self.perp(i, y, scratch, false);
                add_along(&mut q, p, k, self.norm_h[i].as_f64());
            }
        });
    }

    /// `d W`'s rows without their component along their own class row,
    /// and each target row's perpendicular parts added (as
    /// [`Geometry::add_hidden_perp`]).
    pub(crate) fn weight_radial_and_perp(
        &self,
        dw: &mut ArrayViewMut2<'_, F>,
        target: impl Fn(usize) -> Option<usize>,
        perp: &[F],
    ) {
        for_rows(dw, |j, mut p, scratch| {
            remove_radial(&mut p, self.weight_row(j, scratch), self.norm_w[j]);
        });
        // Several samples may share a class: their parts in sample order.
        let mut scratch = Vec::new();
        for (i, &k) in perp.iter().enumerate() {
            if let (true, Some(y)) = (k != F::zero(), target(i)) {
                let p = self.perp(i, y, &mut scratch, true);
                // 1 / |w_y| = 2^g / (|w_y| 2^g).
                let norm = times_pow2(self.norm_w[y].as_f64(), -self.g);
                add_along(&mut dw.row_mut(y), p, k, norm);
            }
        }
    }
}

/// `f(i, row_i, scratch)` on every row of `x`, blocks of rows in parallel.
fn for_rows<F: Float>(
    x: &mut ArrayViewMut2<'_, F>,
    f: impl Fn(usize, ArrayViewMut1<'_, F>, &mut Vec<F>) + Sync,
) {
    let elements = x.len();
    let rows = (BLOCK_BYTES / (x.ncols().max(1) * std::mem::size_of::<F>())).max(1);
    let blocks: Vec<_> = x
        .axis_chunks_iter_mut(Axis(0), rows)
        .enumerate()
        .map(|(k, b)| (k * rows, b))
        .collect();
    map_blocks(blocks, elements, |(first, mut b)| {
        let mut scratch = Vec::new();
        for (r, row) in b.outer_iter_mut().enumerate() {
            f(first + r, row, &mut scratch);
        }
    });
}

/// `q -= (q . x) / |x|^2 x`, for a row `x` of norm `norm`: `q` without its
/// component along `x` (in `f64`, as `(q . x / |x|) (x / |x|)`, so that
/// neither factor leaves the range whatever `|x|`).
fn remove_radial<F: Float>(q: &mut ArrayViewMut1<'_, F>, x: ArrayView1<'_, F>, norm: F) {
    let norm = norm.as_f64();
    let along = q
        .iter()
        .zip(&x)
        .fold(0.0_f64, |acc, (&a, &b)| acc + a.as_f64() * b.as_f64())
        / norm;
    q.zip_mut_with(&x, |a, &b| {
        *a = F::lit(a.as_f64() - along * (b.as_f64() / norm));
    });
}

/// `q += k u / norm`, `u` the unit direction of the residual `p` (nothing
/// where the residual is 0: no direction).
fn add_along<F: Float>(q: &mut ArrayViewMut1<'_, F>, p: Perp<'_, F>, k: F, norm: f64) {
    let len = p.norm();
    if len > F::zero() {
        let f = (k / len).as_f64() / norm;
        for (q, r) in q.iter_mut().zip(p.entries()) {
            *q += F::lit(f * r.as_f64());
        }
    }
}

impl<F: Float, L: Sealed> Compute<F> for AngularMarginHead<L> {
    type Sig = EmbeddingsAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let spec = self.loss.spec();
        let Call {
            input,
            target: labels,
            mut grad,
            mut per,
        } = call;
        // The wrapped loss's checks.
        let (n, _, v) = check_embeddings(&spec, &input, &labels, grad.as_ref())?;
        let (h, w) = (input.embeddings, input.weight);
        let geo = Geometry::new(h, w)?;
        let t = grad_shift::<F>(&spec, n, geo.grad_factor());
        let row = MarginRow::with_grad_shift(&spec, n, t);
        let rows = self.chunk_rows_for::<F>(v).min(n);
        let want_grad = grad.is_some();
        let mut perp = vec![F::zero(); if want_grad { n } else { 0 }];
        let grad_views = grad.as_mut().map(|g| LinearGradViews {
            hidden: &mut g.embeddings,
            weight: &mut g.weight,
            bias: None,
        });
        let linear = Linear {
            hidden: geo.h.view(),
            weight: w,
            bias: None,
        };
        let sum = linear_chunks(linear, rows, grad_views, F::one(), |start, z| {
            let end = start + z.nrows();
            let per = per.as_mut().map(|p| p.slice_mut(s![start..end]));
            let perp = if want_grad {
                &mut perp[start..end]
            } else {
                Default::default()
            };
            Ok(chunk_loss(
                &row, &geo, &labels, start, z, per, perp, want_grad,
            ))
        })?;
        if let Some(g) = grad {
            geo.finish_grad(g, &labels, &perp, t)?;
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "embeddings",
        })
    }
}
