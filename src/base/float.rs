//! The floating-point types the crate is generic over.

/// A floating-point element type the losses accept: `f32` or `f64`.
///
/// The trait is sealed: the numerics (clamps, polynomial exps, tolerances)
/// are tuned for these two types only.
pub trait Float:
    ndarray::NdFloat
    + num_traits::FromPrimitive
    + sealed::Sealed
    + RowKernels
    + Default
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    fn lit(x: f64) -> Self;
    /// Widens (or keeps) the value as an `f64`.
    fn as_f64(self) -> f64;
    /// Converts a count to this type (used to divide by batch sizes).
    fn from_count(n: usize) -> Self {
        Self::lit(n as f64)
    }
}

impl Float for f32 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    #[inline(always)]
    fn lit(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// What the engines do with slices of a float type: the kernels, declared
/// here and implemented (vectorized, dispatched to the CPU's level) in
/// `crate::numerics`, so that the bottom layer depends on nothing above it.
///
/// A supertrait of [`Float`] that users cannot name: the crate's loss code
/// calls these through `F`, users never need to.
pub trait RowKernels: Copy {
    /// The largest value of a non-empty slice (NaN skipped).
    fn row_max(x: &[Self]) -> Self;
    /// The smallest and largest values (NaN skipped; `(inf, -inf)` when empty).
    fn row_min_max(x: &[Self]) -> (Self, Self);
    /// `sum_i (x_i - shift)`.
    fn shifted_sum(x: &[Self], shift: Self) -> Self;
    /// `sum_i (x_i - shift) w_i` over the common length.
    fn shifted_dot(x: &[Self], shift: Self, w: &[Self]) -> Self;
    /// `sum_i exp(x_i - shift)`, for `shift >= max x_i`.
    fn exp_sum(x: &[Self], shift: Self) -> Self;
    /// Stores `exp(x_i - shift)` in `out` (same length) and returns the sum.
    fn exp_into(x: &[Self], shift: Self, out: &mut [Self]) -> Self;
    /// [`RowKernels::exp_into`], and in the same pass the largest value of
    /// `ahead` (the next row, as long as `x`; NaN skipped): `(sum, max)`.
    /// With `later > 0`, for rows of one contiguous batch (`x`, `ahead`
    /// the next) and their contiguous gradient (`out` the row of `x`), it
    /// also asks for the lines of the row `later` rows on, a line each as
    /// it goes: the logits' to be read, the gradient's to be written. The
    /// addresses are only asked for, never read.
    fn exp_into_ahead(
        x: &[Self],
        shift: Self,
        out: &mut [Self],
        ahead: &[Self],
        later: usize,
    ) -> (Self, Self);
    /// [`RowKernels::exp_into_ahead`] and, in the same pass, `prev_i *= k`
    /// (`prev` as long as `x`, each product the bits of `prev_i * k`): the
    /// previous row's gradient scaled while this row's exponentials run.
    /// `(sum, max of ahead)`.
    fn exp_into_scaling(
        x: &[Self],
        shift: Self,
        out: &mut [Self],
        ahead: &[Self],
        prev: &mut [Self],
        k: Self,
    ) -> (Self, Self);
    /// [`RowKernels::exp_into_shifted`] and the largest value of `ahead`, as
    /// [`RowKernels::exp_into_ahead`] (`later` as there): `(sum, shifted
    /// sum, max)`.
    fn exp_into_shifted_ahead(
        x: &[Self],
        shift: Self,
        out: &mut [Self],
        ahead: &[Self],
        later: usize,
    ) -> (Self, Self, Self);
    /// [`RowKernels::exp_sum`] and `sum_i (x_i - shift)` in the same pass.
    fn exp_sum_shifted(x: &[Self], shift: Self) -> (Self, Self);
    /// [`RowKernels::exp_into`] and `sum_i (x_i - shift)` in the same pass.
    fn exp_into_shifted(x: &[Self], shift: Self, out: &mut [Self]) -> (Self, Self);
    /// `sum_i exp(scale * x_i - shift)`, the same sum as `scaled_exp_into`.
    fn scaled_exp_sum(x: &[Self], scale: Self, shift: Self) -> Self;
    /// Stores `exp(scale * x_i - shift)` in `out` (same length) and returns
    /// the sum, for `shift >= max scale * x_i`.
    fn scaled_exp_into(x: &[Self], scale: Self, shift: Self, out: &mut [Self]) -> Self;
    /// The softmax down the columns of a tile ([`ColumnTile`]): each
    /// position's largest logit, sum of `exp(x - max)` and logit at its
    /// label into `stats`, and with `grad` the gradient ([`ColumnGrad`]).
    fn softmax_columns(
        tile: ColumnTile<'_, Self>,
        stats: ColumnStats<'_, Self>,
        grad: Option<ColumnGrad<'_, Self>>,
    );
    /// `acc_j += a (x_j - m_j)`.
    fn diff_axpy(acc: &mut [Self], a: Self, x: &[Self], m: &[Self]);
    /// `e_i = exp(-|x_i|)` and `l_i = ln(1 + e_i)`, over the common length.
    fn logistic_parts(x: &[Self], e: &mut [Self], l: &mut [Self]);
    /// `g_i = a g_i + b`.
    fn affine(g: &mut [Self], a: Self, b: Self);
    /// `g_i = a g_i + b w_i`.
    fn affine_weighted(g: &mut [Self], a: Self, b: Self, w: &[Self]);
    /// `out_i = ln(x_i)` for positive normal `x_i` (a row's sum of
    /// exponentials, at least 1), within 2 ulp; NaN stays NaN.
    fn ln_into(x: &[Self], out: &mut [Self]);
    /// `g_i = a g_i`.
    fn scale(g: &mut [Self], a: Self);
    /// Whether every `x_i` is in `[0, 1]` (NaN is not).
    fn all_unit(x: &[Self]) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The logits of a tile of positions whose classes run down columns:
/// class `k`'s logits at positions `0..width` are
/// `x[k * stride..][..width]`, `width` being the labels' length.
pub struct ColumnTile<'a, F> {
    /// The logits.
    pub x: &'a [F],
    /// Classes (rows of the tile).
    pub classes: usize,
    /// Elements from one class's logits to the next's.
    pub stride: usize,
    /// Each position's label; [`ColumnTile::NO_LABEL`] (an ignored
    /// position) matches no class. Every label is below `classes`.
    pub labels: &'a [u32],
    /// Room for one strip of positions: at least
    /// `classes * ColumnTile::MAX_LANES` values.
    pub strip: &'a mut [F],
    /// Whether the logits and the gradient come from beyond the
    /// second-level cache (a large input): the kernel then asks for each
    /// row's lines farther ahead, into that cache only. The results are
    /// the same bits either way.
    pub far: bool,
}

impl<F> ColumnTile<'_, F> {
    /// The label of a position that matches no class.
    pub const NO_LABEL: u32 = u32::MAX;
    /// The most positions a strip holds (a vector's lanes at any level).
    pub const MAX_LANES: usize = 16;
}

/// Per position of a [`ColumnTile`], as long as its labels: written by
/// [`RowKernels::softmax_columns`].
pub struct ColumnStats<'a, F> {
    /// The largest logit (NaN skipped).
    pub max: &'a mut [F],
    /// `sum_k exp(x_k - max)`: in `F` over each 64 classes, added in `f64`
    /// beyond that.
    pub sum: &'a mut [F],
    /// The logit at the label; 0 at a position without one.
    pub at_label: &'a mut [F],
}

/// The gradient of a [`ColumnTile`], laid out as its logits:
/// `g_kj = (coef_j / sum_j) exp(x_kj - max_j) - w_k dense_j - [k = y_j] fix_j`,
/// without the `dense` term when it is `None` (`w_k` 1 without weights).
pub struct ColumnGrad<'a, F> {
    /// The gradient, `x`'s layout.
    pub g: &'a mut [F],
    /// Per position.
    pub coef: &'a [F],
    /// Per position, subtracted at the label.
    pub fix: &'a [F],
    /// Per position, times the class weight, subtracted at every class.
    pub dense: Option<&'a [F]>,
    /// One weight per class for `dense`, or none (all 1).
    pub weight: Option<&'a [F]>,
}
