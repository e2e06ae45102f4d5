//! Decoding the fuzzer's bytes into inputs: float values from a palette of
//! hard cases, shapes, memory layouts, labels of every integer type, and
//! option values. Written once, shared by every target.

use std::fmt;

use arbitrary::Unstructured;
use classloss::{Float, LabelSets, Labels};
use ndarray::{Array, ArrayD, ArrayView, ArrayViewMut, Axis, Dimension, IxDyn, Slice};

/// Inputs with at least this many elements go parallel in the crate
/// (`PARALLEL_MIN_ELEMENTS` is 65,536): the large mode tiles past it.
pub const LARGE: usize = 70_000;

/// The decoder: every read past the end of the bytes gives the smallest
/// value, so any byte string decodes.
pub struct Gen<'a> {
    u: Unstructured<'a>,
    /// Whether the floats are `f32` (values are rounded to it).
    pub f32: bool,
    /// Whether NaN and infinities may be drawn.
    pub nonfinite: bool,
    /// Whether targets may be drawn outside their valid set.
    pub invalid: bool,
    /// Whether shapes are tiled past the parallel threshold.
    pub large: bool,
}

impl<'a> Gen<'a> {
    /// A decoder of `data`; the first bytes pick the float type and what may
    /// be drawn.
    pub fn new(data: &'a [u8], large: bool) -> Self {
        let mut g = Gen {
            u: Unstructured::new(data),
            f32: false,
            nonfinite: false,
            invalid: false,
            large,
        };
        let flags = g.byte();
        g.f32 = flags & 1 == 1;
        // One input in 4 may hold NaN or infinities, one in 8 invalid targets.
        g.nonfinite = flags & 6 == 6;
        g.invalid = flags & 56 == 56;
        g
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        self.u.arbitrary::<u8>().unwrap_or(0)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.u.int_in_range(lo..=hi).unwrap_or(lo)
    }

    /// One of `n` choices (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.range(0, n - 1) }
    }

    /// A coin flip.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// True with probability `k / 256`.
    pub fn chance(&mut self, k: u8) -> bool {
        self.byte() < k
    }

    /// `v` rounded to the float type.
    pub fn round(&self, v: f64) -> f64 {
        if self.f32 { v as f32 as f64 } else { v }
    }

    fn max(&self) -> f64 {
        if self.f32 { f32::MAX as f64 } else { f64::MAX }
    }

    fn min_positive(&self) -> f64 {
        if self.f32 {
            f32::MIN_POSITIVE as f64
        } else {
            f64::MIN_POSITIVE
        }
    }

    fn epsilon(&self) -> f64 {
        if self.f32 {
            f32::EPSILON as f64
        } else {
            f64::EPSILON
        }
    }

    /// Which classes of values an array draws from: ordinary values always,
    /// and a random subset of the hard ones.
    pub fn palette(&mut self) -> Palette {
        if self.flag() {
            return Palette(0);
        }
        let mut mask = self.byte() as u16 | ((self.byte() as u16 & 1) << 8);
        if !self.nonfinite {
            mask &= !Palette::NONFINITE;
        }
        Palette(mask)
    }

    /// A value of the float type (as `f64`), drawn from `pal`.
    pub fn real(&mut self, pal: Palette) -> f64 {
        let classes: Vec<u16> = (0..9).filter(|k| pal.0 & (1 << k) != 0).collect();
        // Ordinary values half of the time.
        let pick = self.below(2 * classes.len().max(1));
        let class = if pick < classes.len() {
            1 << classes[pick]
        } else {
            0
        };
        let sign = if self.flag() { -1.0 } else { 1.0 };
        let v = match class {
            0 => {
                let raw = self.byte() as i8 as f64;
                let frac = self.byte() as f64 / 64.0;
                if self.flag() { raw / 8.0 } else { raw + frac }
            }
            Palette::ZERO => sign * 0.0,
            Palette::SUBNORMAL => {
                let k = self.byte() as f64;
                if k == 0.0 {
                    sign * self.min_positive() * self.epsilon()
                } else {
                    sign * self.min_positive() * k / 256.0
                }
            }
            Palette::TINY => sign * self.min_positive() * (1 + self.byte() as usize * 7) as f64,
            Palette::BIG => {
                const F32_BIG: [f64; 8] = [1e19, 1.5e19, 1e30, 1e37, 1e38, 1.5e38, 3e38, 3.4e38];
                const F64_BIG: [f64; 5] = [1e154, 1.5e154, 1e300, 1e307, 1.7e308];
                let k = self.byte() as usize;
                if self.f32 || k.is_multiple_of(2) {
                    sign * F32_BIG[k / 2 % F32_BIG.len()]
                } else {
                    sign * F64_BIG[k / 2 % F64_BIG.len()]
                }
            }
            Palette::MAX => {
                let k = self.byte() as u64 % 8;
                let max = if self.f32 {
                    f32::from_bits(f32::MAX.to_bits() - k as u32) as f64
                } else {
                    f64::from_bits(f64::MAX.to_bits() - k)
                };
                sign * max
            }
            Palette::POW2 => {
                let (lo, hi) = if self.f32 { (-149, 127) } else { (-1074, 1023) };
                let e = lo + self.range(0, (hi - lo) as usize) as i32;
                sign * 2f64.powi(e)
            }
            Palette::BITS => {
                let bits = (0..8).fold(0u64, |acc, _| acc << 8 | self.byte() as u64);
                let v = if self.f32 {
                    f32::from_bits(bits as u32) as f64
                } else {
                    f64::from_bits(bits)
                };
                if v.is_finite() || self.nonfinite {
                    v
                } else {
                    sign * self.max()
                }
            }
            _ => match self.byte() % 3 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                _ => f64::NEG_INFINITY,
            },
        };
        self.round(v)
    }

    /// A value in `[0, 1]` (a probability or a soft target), or rarely,
    /// when invalid targets may be drawn, one outside it.
    pub fn unit(&mut self, pal: Palette) -> f64 {
        let v = match self.byte() % 16 {
            0 => 0.0,
            1 => 1.0,
            2 => 0.5,
            3 => self.min_positive() * self.epsilon(),
            4 => self.min_positive() * 3.0,
            5 => 1.0 - self.epsilon() / 2.0,
            6 => 1.0 - self.epsilon() * 4.0,
            7 if pal.0 != 0 => self.real(pal).abs().min(1.0),
            7..=13 => self.byte() as f64 / 255.0,
            _ if self.invalid => match self.byte() % 6 {
                0 => -self.min_positive(),
                1 => 1.0 + self.epsilon(),
                2 => 2.0,
                3 => -1.0,
                4 if self.nonfinite => f64::NAN,
                _ => self.real(pal),
            },
            _ => self.byte() as f64 / 256.0,
        };
        self.round(v)
    }

    /// A scalar option: mostly in a typical range, sometimes a boundary, a
    /// huge, tiny, negative or non-finite value (the setter may reject it).
    pub fn option(&mut self, typical: f64) -> f64 {
        match self.byte() % 24 {
            0 => 0.0,
            1 => 1.0,
            2 => -0.0,
            3 => -1.0,
            4 => 1e39,
            5 => 1e300,
            6 => 5e-324,
            7 => 1e-30,
            8 => std::f64::consts::PI,
            9 => std::f64::consts::PI - 1e-9,
            10 => 3e38,
            11 => 1e19,
            12 if self.nonfinite => f64::NAN,
            13 if self.nonfinite => f64::INFINITY,
            14 => typical * 2.0,
            15 => 1.0 - 1e-12,
            _ => typical * self.byte() as f64 / 128.0,
        }
    }

    /// A memory layout for an array of rank `rank`: standard half of the
    /// time, otherwise transposed, stepped and/or reversed.
    pub fn layout(&mut self, rank: usize) -> Layout {
        if rank == 0 || self.flag() {
            return Layout::default();
        }
        let bits = self.byte();
        Layout {
            transpose: bits & 1 == 1 && rank >= 2,
            step: (bits & 2 == 2).then(|| (self.below(rank), 2 + (bits as usize >> 7))),
            invert: if bits & 4 == 4 { self.byte() } else { 0 },
        }
    }

    /// An axis length in `lo..=hi`, empty or one-element with a fair chance.
    pub fn len(&mut self, lo: usize, hi: usize) -> usize {
        match self.byte() % 8 {
            0 => lo,
            1 => 1.max(lo).min(hi),
            _ => self.range(lo, hi),
        }
    }

    /// `shape` with its axis `axis` grown so that the array has at least
    /// [`LARGE`] elements (the other axes at least 1), in the large mode.
    pub fn tile(&self, shape: &mut [usize], axis: usize) {
        if !self.large {
            return;
        }
        for (k, n) in shape.iter_mut().enumerate() {
            if k != axis && *n == 0 {
                *n = 1;
            }
        }
        let rest: usize = shape
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != axis)
            .map(|(_, &n)| n)
            .product();
        shape[axis] = shape[axis].max(LARGE.div_ceil(rest.max(1)));
    }

    /// `len` values from `draw`; in the large mode, up to 64 drawn values
    /// repeated.
    pub fn values<T: Clone>(&mut self, len: usize, mut draw: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let fresh = if len > 256 { 64 } else { len };
        let pool: Vec<T> = (0..fresh).map(|_| draw(self)).collect();
        (0..len).map(|i| pool[i % fresh.max(1)].clone()).collect()
    }

    /// An array of `shape` drawn with `draw`, in a random layout.
    pub fn grid(&mut self, shape: Vec<usize>, mut draw: impl FnMut(&mut Self) -> f64) -> Grid {
        let len = shape.iter().product();
        let values = self.values(len, &mut draw);
        let layout = self.layout(shape.len());
        Grid {
            shape,
            values,
            layout,
        }
    }

    /// An array of `shape` with values from a fresh palette.
    pub fn reals(&mut self, shape: Vec<usize>) -> Grid {
        let pal = self.palette();
        self.grid(shape, |g| g.real(pal))
    }

    /// An array of `shape` with values in `[0, 1]` (rarely outside).
    pub fn units(&mut self, shape: Vec<usize>) -> Grid {
        let pal = self.palette();
        self.grid(shape, |g| g.unit(pal))
    }

    /// Non-negative weights of `shape` (rarely negative or non-finite).
    pub fn weights(&mut self, shape: Vec<usize>) -> Grid {
        let pal = self.palette();
        self.grid(shape, |g| {
            let v = g.real(pal);
            if g.invalid { v } else { v.abs() }
        })
    }

    /// A label for `classes` classes: mostly in range, sometimes negative,
    /// `classes` itself, or far out.
    pub fn label(&mut self, classes: usize, ignore: Option<i128>) -> i128 {
        match self.byte() {
            0..=215 => self.below(classes) as i128,
            216..=229 if ignore.is_some() => ignore.unwrap(),
            216..=235 => classes as i128,
            236..=241 => -1,
            242..=245 => -100,
            246..=247 => 255,
            248..=249 => i64::MIN as i128,
            250..=251 => u64::MAX as i128,
            _ => self.below(1 << 16) as i128,
        }
    }

    /// Labels of `shape` for `classes` classes, of a random integer type
    /// (out-of-range values wrap into it), in a random layout.
    pub fn labels(&mut self, shape: Vec<usize>, classes: usize, ignore: Option<i128>) -> LabelGrid {
        let len = shape.iter().product();
        let values = self.values(len, |g| g.label(classes, ignore));
        let ty = self.byte() % 10;
        let layout = self.layout(shape.len());
        LabelGrid {
            shape,
            values,
            ty,
            layout,
        }
    }
}

/// The classes of hard values an array may hold.
#[derive(Clone, Copy, Debug)]
pub struct Palette(pub u16);

impl Palette {
    pub const ZERO: u16 = 1;
    pub const SUBNORMAL: u16 = 2;
    pub const TINY: u16 = 4;
    pub const BIG: u16 = 8;
    pub const MAX: u16 = 16;
    pub const POW2: u16 = 32;
    pub const BITS: u16 = 64;
    pub const NONFINITE: u16 = 128 | 256;
}

/// How an array's view sits in its backing memory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Layout {
    /// The backing array has the axes in reverse order (a transposed view).
    pub transpose: bool,
    /// One axis of the backing array is `step` times longer and the view
    /// takes every `step`-th element.
    pub step: Option<(usize, usize)>,
    /// Axes (bit `k` for axis `k`) the view runs backwards.
    pub invert: u8,
}

impl Layout {
    fn backing_shape(&self, shape: &[usize]) -> Vec<usize> {
        let mut s = shape.to_vec();
        if let Some((axis, step)) = self.step {
            s[axis] *= step;
        }
        if self.transpose {
            s.reverse();
        }
        s
    }

    /// An array to hold a view of `shape` in this layout, filled with `fill`.
    pub fn backing<A: Clone, D: Dimension>(&self, shape: &[usize], fill: A) -> Array<A, D> {
        ArrayD::from_elem(IxDyn(&self.backing_shape(shape)), fill)
            .into_dimensionality::<D>()
            .expect("the rank of the type")
    }

    /// `v` in this layout: transposed, stepped along an axis, inverted.
    fn lay_out<S: ndarray::RawData, D: Dimension>(
        &self,
        mut v: ndarray::ArrayBase<S, D>,
    ) -> ndarray::ArrayBase<S, D> {
        if self.transpose {
            v = v.reversed_axes();
        }
        if let Some((axis, step)) = self.step {
            v.slice_axis_inplace(Axis(axis), Slice::new(0, None, step as isize));
        }
        for k in 0..v.ndim().min(8) {
            if self.invert & (1 << k) != 0 {
                v.invert_axis(Axis(k));
            }
        }
        v
    }

    /// The view of `backing` in this layout.
    pub fn view<'a, A, D: Dimension>(&self, backing: &'a Array<A, D>) -> ArrayView<'a, A, D> {
        self.lay_out(backing.view())
    }

    /// The mutable view of `backing` in this layout.
    pub fn view_mut<'a, A, D: Dimension>(
        &self,
        backing: &'a mut Array<A, D>,
    ) -> ArrayViewMut<'a, A, D> {
        self.lay_out(backing.view_mut())
    }

    /// The owned array `backing` (from [`Layout::build`]) turned into this
    /// layout, as [`Layout::view`] does for a view.
    pub fn owned<A, D: Dimension>(&self, mut a: Array<A, D>) -> Array<A, D> {
        if self.transpose {
            a = a.reversed_axes();
        }
        if let Some((axis, step)) = self.step {
            a.slice_axis_inplace(Axis(axis), Slice::new(0, None, step as isize));
        }
        for k in 0..a.ndim().min(8) {
            if self.invert & (1 << k) != 0 {
                a.invert_axis(Axis(k));
            }
        }
        a
    }

    /// A backing array whose view in this layout holds `values` (logical
    /// order), the rest `fill`.
    pub fn build<A: Clone, D: Dimension>(
        &self,
        shape: &[usize],
        values: impl IntoIterator<Item = A>,
        fill: A,
    ) -> Array<A, D> {
        let mut backing = self.backing::<A, D>(shape, fill);
        for (dst, src) in self.view_mut(&mut backing).iter_mut().zip(values) {
            *dst = src;
        }
        backing
    }
}

/// A float array as decoded: its shape, values (as `f64`, already rounded
/// to the float type) and layout.
#[derive(Clone)]
pub struct Grid {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    pub layout: Layout,
}

impl Grid {
    /// The backing array in `F`; `self.layout.view(&backing)` is the input.
    pub fn backing<F: Float, D: Dimension>(&self) -> Array<F, D> {
        let fill = F::from(-7.0).unwrap();
        self.layout
            .build(&self.shape, self.values.iter().map(|&v| F::lit(v)), fill)
    }

    /// The values as an owned 1-D array in `F` (an option), laid out as the
    /// grid says (an owned array can be strided or reversed too).
    pub fn array1<F: Float>(&self) -> ndarray::Array1<F> {
        let mut shape = self.shape.clone();
        shape.resize(1, 0);
        let len = shape[0];
        let values = self.values.iter().take(len).map(|&v| F::lit(v));
        let backing = self
            .layout
            .build::<F, ndarray::Ix1>(&shape, values, F::lit(-7.0));
        self.layout.owned(backing)
    }

    /// The values as an owned array of its shape in `F` (an option), laid
    /// out as the grid says.
    pub fn owned<F: Float>(&self) -> ArrayD<F> {
        let backing = self.backing::<F, IxDyn>();
        self.layout.owned(backing)
    }

    /// Whether every value is finite.
    pub fn finite(&self) -> bool {
        self.values.iter().all(|v| v.is_finite())
    }

    /// The largest magnitude (0 when empty; NaN skipped).
    pub fn max_abs(&self) -> f64 {
        self.values.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    /// The rows of a 2-D grid (logical order).
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let d = self.shape.get(1).copied().unwrap_or(0).max(1);
        self.values.chunks(d)
    }
}

impl fmt::Debug for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.values[..self.values.len().min(96)];
        write!(
            f,
            "Grid {{ shape: {:?}, layout: {:?}, values: {:?}",
            self.shape, self.layout, shown
        )?;
        if shown.len() < self.values.len() {
            write!(f, " ... ({} values, repeating)", self.values.len())?;
        }
        write!(f, " }}")
    }
}

/// Labels as decoded: their values (widened), the integer type they are
/// stored as (values wrap into it) and their layout.
#[derive(Clone)]
pub struct LabelGrid {
    pub shape: Vec<usize>,
    pub values: Vec<i128>,
    pub ty: u8,
    pub layout: Layout,
}

impl fmt::Debug for LabelGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
        ];
        let shown = &self.values[..self.values.len().min(96)];
        write!(
            f,
            "Labels {{ shape: {:?}, type: {}, layout: {:?}, values (before the cast): {:?}",
            self.shape,
            names[self.ty as usize % 10],
            self.layout,
            shown
        )?;
        if shown.len() < self.values.len() {
            write!(f, " ... ({} values, repeating)", self.values.len())?;
        }
        write!(f, " }}")
    }
}

/// The stored labels of a [`LabelGrid`], in their integer type.
pub enum LabelStore<D: Dimension> {
    U8(Array<u8, D>),
    U16(Array<u16, D>),
    U32(Array<u32, D>),
    U64(Array<u64, D>),
    Usize(Array<usize, D>),
    I8(Array<i8, D>),
    I16(Array<i16, D>),
    I32(Array<i32, D>),
    I64(Array<i64, D>),
    Isize(Array<isize, D>),
}

macro_rules! label_store {
    ($($variant:ident $t:ty = $k:literal),*) => {
        impl LabelGrid {
            /// The labels stored in their integer type and layout.
            pub fn store<D: Dimension>(&self) -> LabelStore<D> {
                match self.ty % 10 {
                    $($k => LabelStore::$variant(self.layout.build(
                        &self.shape,
                        self.values.iter().map(|&v| v as $t),
                        0 as $t,
                    )),)*
                    _ => unreachable!(),
                }
            }
        }

        impl<D: Dimension> LabelStore<D> {
            /// The labels, viewed in the grid's layout.
            pub fn labels(&self, layout: &Layout) -> Labels<'_, D> {
                match self {
                    $(LabelStore::$variant(a) => Labels::from(layout.view(a)),)*
                }
            }
        }

        impl LabelStore<ndarray::Ix2> {
            /// The labels as PyTorch's padded label sets (`-1` ends a row),
            /// viewed in the grid's layout.
            pub fn sets(&self, layout: &Layout) -> LabelSets<'_> {
                match self {
                    $(LabelStore::$variant(a) => LabelSets::from(layout.view(a)),)*
                }
            }
        }
    };
}

label_store!(U8 u8 = 0, U16 u16 = 1, U32 u32 = 2, U64 u64 = 3, Usize usize = 4,
    I8 i8 = 5, I16 i16 = 6, I32 i32 = 7, I64 i64 = 8, Isize isize = 9);

/// The labels as the loss sees them (after the cast), in logical order.
pub fn seen_labels(grid: &LabelGrid) -> Vec<i128> {
    let store = grid.store::<IxDyn>();
    store.labels(&grid.layout).iter().collect()
}

impl Grid {
    /// A grid with no values (a placeholder filled in later).
    pub fn empty() -> Self {
        Grid {
            shape: vec![0],
            values: Vec::new(),
            layout: Layout::default(),
        }
    }
}
