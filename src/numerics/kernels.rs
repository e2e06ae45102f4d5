//! The vectorized slice kernels under the row statistics: a row's max, its
//! sum of `exp(x - shift)` (with or without storing the exponentials), the
//! scaling passes that turn stored exponentials into a gradient, the
//! softmax down a tile's columns, and the sigmoid family's parts.
//!
//! Each body is written once, generically, as a loop over fixed-width
//! chunks with one accumulator per lane, which the compiler turns into
//! vector code; the bodies are then compiled once per [`SimdLevel`] under
//! `#[target_feature]` and picked at run time by [`RowKernels`]. A result
//! never differs between calls; between levels it differs by the rounding
//! of fused multiply-adds and, at AVX-512, by the lanes' order (in `f32`)
//! and the exponentials ([`LevelExp`]: a table there, the
//! polynomial elsewhere).
//!
//! Lanes a chunk (`L`, one accumulator each), per level:
//! - portable and AVX2: 8, one AVX2 vector of `f32`, two of `f64`. Sixteen
//!   (two vectors of `f32`, four of `f64`) ran 7-18% slower on a Zen 3
//!   AVX2 machine at 128 x 100 to 4096 x 1000: with the exponential's
//!   constants, two or four chains of it outgrow the sixteen vector
//!   registers (the `f64` loop spilled to the stack), and each chunk's
//!   long chains fill the out-of-order window.
//! - AVX-512: one 512-bit vector, 16 `f32` or 8 `f64`. On a Zen 4 machine
//!   sixteen `f32` lanes ran 0.56-0.94x the time of eight (the median of
//!   100 alternating slices each, one thread: cross-entropy 256 x 1000
//!   0.69x, label smoothing 0.56x, 64 x 21841 0.78x; 128 x 10 unchanged),
//!   with 32 registers and half as many instructions in the window;
//!   sixteen `f64` lanes (two vectors) ran 1.03x the time of eight.
//!
//! [`SimdLevel`]: super::SimdLevel

use std::ops::{Add, AddAssign, Div, Mul, Sub};

use super::exp::{
    exp_nonpos_f32, exp_nonpos_f64, ln_pos_f32, ln_pos_f64, ln1p_unit_f32, ln1p_unit_f64,
};
use super::simd::dispatch;
use crate::base::float::{ColumnGrad, ColumnStats, ColumnTile, RowKernels};

/// The scalar operations the kernel bodies need.
pub(crate) trait Lane:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    /// The value as an `f64`.
    fn widen(self) -> f64;
    /// The nearest value to `v`.
    fn narrow(v: f64) -> Self;
    const NEG_INFINITY: Self;
    const INFINITY: Self;
    /// `exp` for `x <= 0`, subnormal results included.
    fn exp_nonpos<const FMA: bool>(self) -> Self;
    /// `exp` for `x <= 0`, results below the smallest normal number as 0.
    fn exp_flush<const FMA: bool>(self) -> Self;
    fn ln1p_unit<const FMA: bool>(self) -> Self;
    /// `ln` of a positive normal number (or NaN).
    fn ln_pos<const FMA: bool>(self) -> Self;
    fn neg_abs(self) -> Self;
    /// The unsigned integer of the type's width, for [`Lane::unit_key`].
    type Key: Copy + Ord;
    /// The key of 1, the largest of `[0, 1]`'s.
    const ONE_KEY: Self::Key;
    /// The smallest key.
    const ZERO_KEY: Self::Key;
    /// A key that orders the values of `[0, 1]` (`-0` as `+0`) below every
    /// other value, NaN and infinities included: the bits, with `-0`'s
    /// cleared. Negative numbers have the sign bit set, and NaN and the
    /// numbers above 1 larger exponents.
    fn unit_key(self) -> Self::Key;
}

impl Lane for f32 {
    const ONE: Self = 1.0;
    #[inline(always)]
    fn widen(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v as f32
    }
    type Key = u32;
    const ONE_KEY: u32 = 0x3f80_0000;
    const ZERO_KEY: u32 = 0;
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const INFINITY: Self = f32::INFINITY;
    #[inline(always)]
    fn exp_nonpos<const FMA: bool>(self) -> Self {
        exp_nonpos_f32::<FMA, true>(self)
    }
    #[inline(always)]
    fn exp_flush<const FMA: bool>(self) -> Self {
        exp_nonpos_f32::<FMA, false>(self)
    }
    #[inline(always)]
    fn ln1p_unit<const FMA: bool>(self) -> Self {
        ln1p_unit_f32::<FMA>(self)
    }
    #[inline(always)]
    fn ln_pos<const FMA: bool>(self) -> Self {
        ln_pos_f32::<FMA>(self)
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        -self.abs()
    }
    #[inline(always)]
    fn unit_key(self) -> Self::Key {
        let bits = self.to_bits();
        if bits == (-0.0_f32).to_bits() {
            0
        } else {
            bits
        }
    }
}

impl Lane for f64 {
    const ONE: Self = 1.0;
    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v
    }
    type Key = u64;
    const ONE_KEY: u64 = 0x3ff0_0000_0000_0000;
    const ZERO_KEY: u64 = 0;
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const INFINITY: Self = f64::INFINITY;
    #[inline(always)]
    fn exp_nonpos<const FMA: bool>(self) -> Self {
        exp_nonpos_f64::<FMA, true>(self)
    }
    #[inline(always)]
    fn exp_flush<const FMA: bool>(self) -> Self {
        exp_nonpos_f64::<FMA, false>(self)
    }
    #[inline(always)]
    fn ln1p_unit<const FMA: bool>(self) -> Self {
        ln1p_unit_f64::<FMA>(self)
    }
    #[inline(always)]
    fn ln_pos<const FMA: bool>(self) -> Self {
        ln_pos_f64::<FMA>(self)
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        -self.abs()
    }
    #[inline(always)]
    fn unit_key(self) -> Self::Key {
        let bits = self.to_bits();
        if bits == (-0.0_f64).to_bits() {
            0
        } else {
            bits
        }
    }
}

/// How a level takes `exp` of arguments `<= 0`: in the softmax rows and
/// columns with results below the smallest normal number as 0 (see
/// [`Lane::exp_flush`]), per chunk of `L` lanes in a row's loop and for
/// the values left over; and the sigmoid family's `exp(-|x|)`, subnormal
/// results kept ([`LevelExp::exp_neg_abs_into`]).
///
/// A chunk's sums are kept in the level's own chunk type: kept in an array
/// of lanes and fed from a vector that intrinsics built, they led the
/// compiler to split the loop's additions into single lanes and shuffles;
/// and the steps a chunk takes are one method each, so that the levels
/// that take the exponential lane by lane keep their one loop a lane
/// (written as separate loops, the compiler built AVX2's in half-width
/// vectors or reversed lanes).
pub(crate) trait LevelExp<T, const L: usize> {
    /// `L` lanes in the form the level's exponential returns them.
    type Chunk: Copy;
    /// Every lane 0.
    fn zero() -> Self::Chunk;
    /// The lanes, in order.
    fn lanes(c: Self::Chunk) -> [T; L];
    /// `f(i, a_i, exp(a_i))` with `a_i = arg(c_i)`, for each of the
    /// values of `c` (at most `L`): a row's tail.
    fn each_exp(c: &[T], arg: &impl Fn(T) -> T, f: impl FnMut(usize, T, T));
    /// `sums += exp(arg(c))` and, with `ARGS`, `args += arg(c)`, lane by
    /// lane (`c` is `L` long).
    fn add_exp<const ARGS: bool>(
        sums: &mut Self::Chunk,
        args: &mut Self::Chunk,
        c: &[T],
        arg: &impl Fn(T) -> T,
    );
    /// As [`LevelExp::add_exp`], with `exp(arg(c))` also stored in `out`
    /// (`L` long).
    fn add_store_exp<const ARGS: bool>(
        sums: &mut Self::Chunk,
        args: &mut Self::Chunk,
        c: &[T],
        arg: &impl Fn(T) -> T,
        out: &mut [T],
    );
    /// `sum_i += exp(x_i - m_i)` and, with `out`, `out_i = exp(x_i - m_i)`
    /// (the column kernels; the slices of one length).
    fn add_exp_diff(x: &[T], m: &[T], out: Option<&mut [T]>, sum: &mut [T]);
    /// `out_i = exp(-|x_i|)` over the common length, with results below the
    /// smallest normal number kept (subnormal): the sigmoid family's parts
    /// ([`Lane::exp_nonpos`] lane by lane).
    fn exp_neg_abs_into(x: &[T], out: &mut [T]);
}

/// Lane by lane, [`Lane::exp_flush`]'s polynomial, which the compiler
/// vectorizes.
pub(crate) struct PerLane<const FMA: bool>;

impl<T: Lane, const FMA: bool, const L: usize> LevelExp<T, L> for PerLane<FMA> {
    type Chunk = [T; L];
    #[inline(always)]
    fn zero() -> [T; L] {
        [T::ZERO; L]
    }
    #[inline(always)]
    fn lanes(c: [T; L]) -> [T; L] {
        c
    }
    #[inline(always)]
    fn each_exp(c: &[T], arg: &impl Fn(T) -> T, mut f: impl FnMut(usize, T, T)) {
        for (i, &v) in c.iter().enumerate() {
            let a = arg(v);
            f(i, a, a.exp_flush::<FMA>());
        }
    }
    #[inline(always)]
    fn add_exp<const ARGS: bool>(
        sums: &mut [T; L],
        args: &mut [T; L],
        c: &[T],
        arg: &impl Fn(T) -> T,
    ) {
        for i in 0..L {
            let a = arg(c[i]);
            sums[i] += a.exp_flush::<FMA>();
            if ARGS {
                args[i] += a;
            }
        }
    }
    #[inline(always)]
    fn add_store_exp<const ARGS: bool>(
        sums: &mut [T; L],
        args: &mut [T; L],
        c: &[T],
        arg: &impl Fn(T) -> T,
        out: &mut [T],
    ) {
        for i in 0..L {
            let a = arg(c[i]);
            let e = a.exp_flush::<FMA>();
            out[i] = e;
            sums[i] += e;
            if ARGS {
                args[i] += a;
            }
        }
    }
    #[inline(always)]
    fn add_exp_diff(x: &[T], m: &[T], out: Option<&mut [T]>, sum: &mut [T]) {
        match out {
            Some(out) => {
                for (((o, s), &v), &mv) in out.iter_mut().zip(sum.iter_mut()).zip(x).zip(m) {
                    let e = (v - mv).exp_flush::<FMA>();
                    *o = e;
                    *s += e;
                }
            }
            None => {
                for ((s, &v), &mv) in sum.iter_mut().zip(x).zip(m) {
                    *s += (v - mv).exp_flush::<FMA>();
                }
            }
        }
    }
    #[inline(always)]
    fn exp_neg_abs_into(x: &[T], out: &mut [T]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.neg_abs().exp_nonpos::<FMA>();
        }
    }
}

/// One vector (16 `f32` lanes, 8 `f64`) from a table of `2^(j/16)` with
/// AVX-512F
/// ([`exp_avx512`](super::exp_avx512)); a value left over is computed in
/// a vector of its own, so that every exponential of the level has the
/// same bits for the same argument. Named only by the AVX-512 level's
/// kernels, which the dispatcher runs only where the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
pub(crate) struct TableAvx512;

#[cfg(target_arch = "x86_64")]
mod table_avx512 {
    use std::arch::x86_64::{__m512, __m512d, _mm512_add_pd, _mm512_add_ps};

    use super::super::exp_avx512::{exp_flush_x8, exp_flush_x16, exp_subnormal_x16};
    use super::{Lane, LevelExp, TableAvx512};

    /// [`exp_subnormal_x16`]'s counterpart in `f64`: [`Lane::exp_nonpos`]
    /// lane by lane (the polynomial; `f64`'s sigmoid family has no table
    /// form yet).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_subnormal_x8(x: __m512d) -> __m512d {
        // SAFETY: 64 bytes either way, every bit pattern valid in both.
        let mut a = unsafe { std::mem::transmute::<__m512d, [f64; 8]>(x) };
        for v in &mut a {
            *v = v.exp_nonpos::<true>();
        }
        // SAFETY: as above.
        unsafe { std::mem::transmute::<[f64; 8], __m512d>(a) }
    }

    /// The implementation for `$t` in vectors `$v` of `$l` lanes, whose
    /// exponential is `$exp` and sum `$add`.
    macro_rules! table_impl {
        ($m:ident, $t:ty, $l:literal, $v:ty, $exp:ident, $sub:ident, $add:ident) => {
            mod $m {
                use super::*;

                #[inline(always)]
                fn vector(a: [$t; $l]) -> $v {
                    // SAFETY: 64 bytes either way, every bit pattern valid in both.
                    unsafe { std::mem::transmute::<[$t; $l], $v>(a) }
                }

                #[inline(always)]
                fn args_of(c: &[$t], arg: &impl Fn($t) -> $t) -> $v {
                    let mut a = [0.0; $l];
                    for i in 0..$l {
                        a[i] = arg(c[i]);
                    }
                    vector(a)
                }

                // SAFETY (each `unsafe` call below): only the AVX-512 level's kernels
                // use this type (see its docs), and they run only on CPUs with
                // AVX-512F.
                impl LevelExp<$t, $l> for TableAvx512 {
                    type Chunk = $v;
                    #[inline(always)]
                    fn zero() -> $v {
                        vector([0.0; $l])
                    }
                    #[inline(always)]
                    fn lanes(c: $v) -> [$t; $l] {
                        // SAFETY: as in `vector`.
                        unsafe { std::mem::transmute::<$v, [$t; $l]>(c) }
                    }
                    /// The values in one vector, padded with zeros.
                    #[inline(always)]
                    fn each_exp(
                        c: &[$t],
                        arg: &impl Fn($t) -> $t,
                        mut f: impl FnMut(usize, $t, $t),
                    ) {
                        let k = c.len().min($l);
                        let mut a = [0.0; $l];
                        for i in 0..k {
                            a[i] = arg(c[i]);
                        }
                        let e = Self::lanes(unsafe { $exp(vector(a)) });
                        for i in 0..k {
                            f(i, a[i], e[i]);
                        }
                    }
                    #[inline(always)]
                    fn add_exp<const ARGS: bool>(
                        sums: &mut $v,
                        args: &mut $v,
                        c: &[$t],
                        arg: &impl Fn($t) -> $t,
                    ) {
                        let a = args_of(c, arg);
                        *sums = unsafe { $add(*sums, $exp(a)) };
                        if ARGS {
                            *args = unsafe { $add(*args, a) };
                        }
                    }
                    #[inline(always)]
                    fn add_store_exp<const ARGS: bool>(
                        sums: &mut $v,
                        args: &mut $v,
                        c: &[$t],
                        arg: &impl Fn($t) -> $t,
                        out: &mut [$t],
                    ) {
                        let a = args_of(c, arg);
                        let e = unsafe { $exp(a) };
                        out[..$l].copy_from_slice(&Self::lanes(e));
                        *sums = unsafe { $add(*sums, e) };
                        if ARGS {
                            *args = unsafe { $add(*args, a) };
                        }
                    }
                    #[inline(always)]
                    fn add_exp_diff(
                        x: &[$t],
                        m: &[$t],
                        mut out: Option<&mut [$t]>,
                        sum: &mut [$t],
                    ) {
                        let n = x.len().min(m.len()).min(sum.len());
                        let whole = n - n % $l;
                        let mut step = |i: usize, e: &[$t]| {
                            if let Some(out) = out.as_deref_mut() {
                                out[i..i + e.len()].copy_from_slice(e);
                            }
                            for (s, &e) in sum[i..i + e.len()].iter_mut().zip(e) {
                                *s += e;
                            }
                        };
                        let chunks = x[..whole].chunks_exact($l).zip(m[..whole].chunks_exact($l));
                        for (k, (xc, mc)) in chunks.enumerate() {
                            let mut a = [0.0; $l];
                            for j in 0..$l {
                                a[j] = xc[j] - mc[j];
                            }
                            step($l * k, &Self::lanes(unsafe { $exp(vector(a)) }));
                        }
                        let rest = n - whole;
                        if rest > 0 {
                            // One vector padded with zeros, as `each_exp`.
                            let mut d = [0.0; $l];
                            for j in 0..rest {
                                d[j] = x[whole + j] - m[whole + j];
                            }
                            step(whole, &Self::lanes(unsafe { $exp(vector(d)) })[..rest]);
                        }
                    }
                    #[inline(always)]
                    fn exp_neg_abs_into(x: &[$t], out: &mut [$t]) {
                        let n = x.len().min(out.len());
                        let (x, out) = (&x[..n], &mut out[..n]);
                        let mut whole = out.chunks_exact_mut($l);
                        for (o, c) in (&mut whole).zip(x.chunks_exact($l)) {
                            let mut a = [0.0; $l];
                            for i in 0..$l {
                                a[i] = -c[i].abs();
                            }
                            o.copy_from_slice(&Self::lanes(unsafe { $sub(vector(a)) }));
                        }
                        let rest = whole.into_remainder();
                        if !rest.is_empty() {
                            // One vector padded with zeros, as `each_exp`.
                            let mut a = [0.0; $l];
                            for (a, &v) in a.iter_mut().zip(&x[n - rest.len()..]) {
                                *a = -v.abs();
                            }
                            let e = Self::lanes(unsafe { $sub(vector(a)) });
                            rest.copy_from_slice(&e[..rest.len()]);
                        }
                    }
                }
            }
        };
    }

    table_impl!(
        single,
        f32,
        16,
        __m512,
        exp_flush_x16,
        exp_subnormal_x16,
        _mm512_add_ps
    );
    table_impl!(
        double,
        f64,
        8,
        __m512d,
        exp_flush_x8,
        exp_subnormal_x8,
        _mm512_add_pd
    );
}

/// The kernel bodies, generic over the element type, the lanes a chunk
/// and the exponential (or fused multiply-add); the per-level wrappers
/// below instantiate them.
mod body {
    use super::{Lane, LevelExp};
    use crate::base::float::{ColumnGrad, ColumnStats, ColumnTile};

    /// NaN is skipped by a comparison, as by `f64::max`.
    #[inline(always)]
    fn larger<T: Lane>(a: T, b: T) -> T {
        if b > a { b } else { a }
    }

    /// NaN is skipped, as by `f64::min`.
    #[inline(always)]
    fn smaller<T: Lane>(a: T, b: T) -> T {
        if b < a { b } else { a }
    }

    /// The lanes combined pairwise by `op` (a sum, a max): a fixed order,
    /// and a tree the compiler turns into vector shuffles.
    #[inline(always)]
    fn pairwise<T: Lane, const L: usize>(mut acc: [T; L], op: impl Fn(T, T) -> T) -> T {
        let mut width = L;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] = op(acc[i], acc[i + width]);
            }
        }
        acc[0]
    }

    /// The sums of `acc` and (with `ARGS`) `args` and the maximum of `hi`,
    /// out of line: inlined after a loop that keeps more than one set of
    /// lanes, their trees of half-width vectors led the compiler to split the whole loop into
    /// half-width vectors and single lanes. A caller passes any lanes for
    /// what it does not use.
    #[inline(never)]
    fn reduce_out_of_line<T: Lane, const ARGS: bool, const L: usize>(
        acc: [T; L],
        args: [T; L],
        hi: [T; L],
    ) -> (T, T, T) {
        let args = if ARGS { sum_lanes(args) } else { T::ZERO };
        (sum_lanes(acc), args, pairwise(hi, larger))
    }

    /// The lanes' partial sums, added pairwise.
    #[inline(always)]
    fn sum_lanes<T: Lane, const L: usize>(acc: [T; L]) -> T {
        pairwise(acc, |a, b| a + b)
    }

    /// The last `L` values of `x` (at least `L` long), and how many
    /// of them the whole chunks before already took: the tail of a row
    /// runs as one more vector chunk overlapping the last whole one, not
    /// as one scalar operation after another (a 21-class row's last 5
    /// exponentials cost more than its first 16).
    #[inline(always)]
    fn overlapping_tail<T: Lane, const L: usize>(x: &[T]) -> (&[T], usize) {
        let n = x.len();
        (&x[n - L..], L - n % L)
    }

    #[inline(always)]
    pub fn row_max<T: Lane, const L: usize>(x: &[T]) -> T {
        if x.len() < L {
            return x.iter().fold(T::NEG_INFINITY, |m, &v| larger(m, v));
        }
        let mut acc = [T::NEG_INFINITY; L];
        let mut chunks = x.chunks_exact(L);
        for c in &mut chunks {
            for i in 0..L {
                acc[i] = larger(acc[i], c[i]);
            }
        }
        if !chunks.remainder().is_empty() {
            // The max is not changed by the values seen twice.
            let (tail, _) = overlapping_tail::<T, L>(x);
            for i in 0..L {
                acc[i] = larger(acc[i], tail[i]);
            }
        }
        pairwise(acc, larger)
    }

    #[inline(always)]
    pub fn row_min_max<T: Lane, const L: usize>(x: &[T]) -> (T, T) {
        let mut lo = [T::INFINITY; L];
        let mut hi = [T::NEG_INFINITY; L];
        let mut chunks = x.chunks_exact(L);
        for c in &mut chunks {
            for i in 0..L {
                lo[i] = smaller(lo[i], c[i]);
                hi[i] = larger(hi[i], c[i]);
            }
        }
        let (mut l, mut h) = (T::INFINITY, T::NEG_INFINITY);
        for &v in chunks.remainder().iter().chain(&lo) {
            l = smaller(l, v);
        }
        for &v in chunks.remainder().iter().chain(&hi) {
            h = larger(h, v);
        }
        (l, h)
    }

    #[inline(always)]
    pub fn shifted_sum<T: Lane, const L: usize>(x: &[T], shift: T) -> T {
        let mut acc = [T::ZERO; L];
        let mut chunks = x.chunks_exact(L);
        for c in &mut chunks {
            for i in 0..L {
                acc[i] += c[i] - shift;
            }
        }
        for (i, &v) in chunks.remainder().iter().enumerate() {
            acc[i] += v - shift;
        }
        sum_lanes(acc)
    }

    #[inline(always)]
    pub fn shifted_dot<T: Lane, const L: usize>(x: &[T], shift: T, w: &[T]) -> T {
        let n = x.len().min(w.len());
        let (x, w) = (&x[..n], &w[..n]);
        let mut acc = [T::ZERO; L];
        let mut xs = x.chunks_exact(L);
        let mut ws = w.chunks_exact(L);
        for (c, wc) in (&mut xs).zip(&mut ws) {
            for i in 0..L {
                acc[i] += (c[i] - shift) * wc[i];
            }
        }
        for (i, (&v, &wv)) in xs.remainder().iter().zip(ws.remainder()).enumerate() {
            acc[i] += (v - shift) * wv;
        }
        sum_lanes(acc)
    }

    /// `sum_i exp(arg(x_i))`, one accumulator per lane; with `ARGS` also
    /// `sum_i arg(x_i)` (else 0), for the label-smoothing losses' sum of
    /// `x_i - max`, taken in the same pass.
    #[inline(always)]
    fn sum_of_exp<T: Lane, E: LevelExp<T, L>, const ARGS: bool, const L: usize>(
        x: &[T],
        arg: impl Fn(T) -> T,
    ) -> (T, T) {
        let mut acc = E::zero();
        let mut args = E::zero();
        let mut chunks = x.chunks_exact(L);
        for c in &mut chunks {
            E::add_exp::<ARGS>(&mut acc, &mut args, c, &arg);
        }
        let (mut acc, mut args) = (E::lanes(acc), E::lanes(args));
        let rem = chunks.remainder();
        if x.len() < L {
            E::each_exp(rem, &arg, |i, a, e| {
                acc[i] += e;
                if ARGS {
                    args[i] += a;
                }
            });
        } else if !rem.is_empty() {
            // The values the whole chunks took add 0 this time.
            let (tail, seen) = overlapping_tail::<T, L>(x);
            E::each_exp(tail, &arg, |i, a, e| {
                acc[i] += if i >= seen { e } else { T::ZERO };
                if ARGS {
                    args[i] += if i >= seen { a } else { T::ZERO };
                }
            });
        }
        if ARGS {
            let (sum, args, _) = reduce_out_of_line::<T, true, L>(acc, args, acc);
            (sum, args)
        } else {
            (sum_lanes(acc), T::ZERO)
        }
    }

    /// Stores `exp(arg(x_i))` in `out` and returns the sum (and with
    /// `ARGS` the sum of the arguments), in the same lanes as
    /// [`sum_of_exp`] (so the sums are equal); with `AHEAD` also the
    /// largest value of `ahead` (as long as `x`, NaN skipped; else
    /// `-inf`): the next row's maximum, read while this row's exponentials
    /// keep the arithmetic busy, instead of in a pass of its own that
    /// waits on memory.
    ///
    /// With `PREV` (only with `AHEAD`), also `prev_i *= k` (`prev` as long
    /// as `x`): the previous row's gradient scaled in this row's pass,
    /// whose arithmetic leaves the stores room, instead of in a pass of its
    /// own that waits on them.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn store_exp<
        T: Lane,
        E: LevelExp<T, L>,
        const ARGS: bool,
        const AHEAD: bool,
        const PREV: bool,
        const ASK: bool,
        const L: usize,
    >(
        x: &[T],
        out: &mut [T],
        ahead: &[T],
        (prev, k): (&mut [T], T),
        later: usize,
        arg: impl Fn(T) -> T,
    ) -> (T, T, T) {
        let n = x.len().min(out.len());
        let (x, out) = (&x[..n], &mut out[..n]);
        let ahead = if AHEAD { &ahead[..n] } else { &ahead[..0] };
        let prev = if PREV { &mut prev[..n] } else { &mut prev[..0] };
        let mut ps = prev.chunks_exact_mut(L);
        let mut acc = E::zero();
        let mut args = E::zero();
        let mut hi = [T::NEG_INFINITY; L];
        let mut xs = x.chunks_exact(L);
        let mut os = out.chunks_exact_mut(L);
        // One loop per set of slices walked, one body: a loop without
        // `AHEAD` that also walked a stand-in slice was built in reversed
        // lanes (six shuffles a chunk at AVX2).
        let mut chunk = |c: &[T], o: &mut [T], h: &[T], p: &mut [T]| {
            if AHEAD {
                for i in 0..L {
                    hi[i] = larger(hi[i], h[i]);
                }
            }
            if PREV {
                for v in &mut p[..L] {
                    *v = *v * k;
                }
            }
            E::add_store_exp::<ARGS>(&mut acc, &mut args, c, &arg, o);
        };
        // `PREV` comes with `AHEAD` only: a loop of its own for it was split
        // into single lanes at AVX2.
        if AHEAD && PREV {
            let rows = (&mut xs).zip(&mut os).zip(ahead.chunks_exact(L));
            for (((c, o), h), p) in rows.zip(&mut ps) {
                chunk(c, o, h, p);
            }
        } else if AHEAD && ASK {
            // Each chunk asks for its line of the row `later` rows on, in
            // the logits (`later - 1` rows past `ahead`) and, to be
            // written, in the gradient: the addresses are only asked for,
            // never read, so `wrapping_add` whatever the caller's rows.
            let (read, write) = ((later - 1) * n, later * n);
            let own = can_ask_to_write();
            for ((c, o), h) in (&mut xs).zip(&mut os).zip(ahead.chunks_exact(L)) {
                ask_line::<T, false>(h.as_ptr().wrapping_add(read));
                let line = o.as_ptr().wrapping_add(write);
                if own {
                    // SAFETY: `can_ask_to_write` said the CPU has it.
                    unsafe { ask_line_to_write(line) };
                } else {
                    ask_line::<T, false>(line);
                }
                chunk(c, o, h, &mut []);
            }
        } else if AHEAD {
            for ((c, o), h) in (&mut xs).zip(&mut os).zip(ahead.chunks_exact(L)) {
                chunk(c, o, h, &mut []);
            }
        } else {
            for (c, o) in (&mut xs).zip(&mut os) {
                chunk(c, o, c, &mut []);
            }
        }
        // The previous row's values left over, one at a time: as an
        // overlapping chunk some would be scaled twice.
        for v in ps.into_remainder() {
            *v = *v * k;
        }
        let (mut acc, mut args) = (E::lanes(acc), E::lanes(args));
        let rem = xs.remainder();
        if n < L {
            let o = os.into_remainder();
            E::each_exp(rem, &arg, |i, a, e| {
                o[i] = e;
                acc[i] += e;
                if ARGS {
                    args[i] += a;
                }
            });
            if AHEAD {
                hi[0] = ahead.iter().fold(hi[0], |m, &v| larger(m, v));
            }
        } else if !rem.is_empty() {
            // As in `sum_of_exp`; the values seen twice are stored again,
            // the same bits.
            let (tail, seen) = overlapping_tail::<T, L>(x);
            let out_tail = &mut out[n - L..];
            E::each_exp(tail, &arg, |i, a, e| {
                out_tail[i] = e;
                acc[i] += if i >= seen { e } else { T::ZERO };
                if ARGS {
                    args[i] += if i >= seen { a } else { T::ZERO };
                }
            });
            if AHEAD {
                let (tail, _) = overlapping_tail::<T, L>(ahead);
                for i in 0..L {
                    hi[i] = larger(hi[i], tail[i]);
                }
            }
        }
        if AHEAD || ARGS {
            reduce_out_of_line::<T, ARGS, L>(acc, args, hi)
        } else {
            (
                sum_lanes(acc),
                if ARGS { sum_lanes(args) } else { T::ZERO },
                T::NEG_INFINITY,
            )
        }
    }

    #[inline(always)]
    pub fn exp_sum<T: Lane, E: LevelExp<T, L>, const L: usize>(x: &[T], shift: T) -> T {
        sum_of_exp::<T, E, false, L>(x, |v| v - shift).0
    }

    #[inline(always)]
    pub fn exp_into<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
        out: &mut [T],
    ) -> T {
        store_exp::<T, E, false, false, false, false, L>(x, out, &[], (&mut [], T::ZERO), 0, |v| {
            v - shift
        })
        .0
    }

    #[inline(always)]
    pub fn exp_sum_shifted<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
    ) -> (T, T) {
        sum_of_exp::<T, E, true, L>(x, |v| v - shift)
    }

    #[inline(always)]
    pub fn exp_into_shifted<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
        out: &mut [T],
    ) -> (T, T) {
        let (sum, args, _) = store_exp::<T, E, true, false, false, false, L>(
            x,
            out,
            &[],
            (&mut [], T::ZERO),
            0,
            |v| v - shift,
        );
        (sum, args)
    }

    #[inline(always)]
    pub fn exp_into_ahead<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
        out: &mut [T],
        ahead: &[T],
        later: usize,
    ) -> (T, T) {
        let (sum, _, max) = store_exp_ahead::<T, E, false, L>(x, out, ahead, later, |v| v - shift);
        (sum, max)
    }

    /// [`exp_into_ahead`] and in the same pass `prev_i *= k`: `(sum, max
    /// of ahead)`.
    #[inline(always)]
    pub fn exp_into_scaling<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
        out: &mut [T],
        ahead: &[T],
        prev: &mut [T],
        k: T,
    ) -> (T, T) {
        let (sum, _, max) =
            store_exp::<T, E, false, true, true, false, L>(x, out, ahead, (prev, k), 0, |v| {
                v - shift
            });
        (sum, max)
    }

    #[inline(always)]
    pub fn exp_into_shifted_ahead<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        shift: T,
        out: &mut [T],
        ahead: &[T],
        later: usize,
    ) -> (T, T, T) {
        store_exp_ahead::<T, E, true, L>(x, out, ahead, later, |v| v - shift)
    }

    /// [`store_exp`] reading `ahead`, asking for the lines `later` rows on
    /// when `later > 0`, each way its own instantiation: a runtime branch
    /// between the two loops of one instantiation left its chunk closure
    /// out of line, compiled without the level's instructions (7x the
    /// time at AVX-512).
    #[inline(always)]
    fn store_exp_ahead<T: Lane, E: LevelExp<T, L>, const ARGS: bool, const L: usize>(
        x: &[T],
        out: &mut [T],
        ahead: &[T],
        later: usize,
        arg: impl Fn(T) -> T,
    ) -> (T, T, T) {
        let none = (&mut [][..], T::ZERO);
        if later > 0 {
            store_exp::<T, E, ARGS, true, false, true, L>(x, out, ahead, none, later, arg)
        } else {
            store_exp::<T, E, ARGS, true, false, false, L>(x, out, ahead, none, 0, arg)
        }
    }

    #[inline(always)]
    pub fn scaled_exp_sum<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        scale: T,
        shift: T,
    ) -> T {
        sum_of_exp::<T, E, false, L>(x, |v| scale * v - shift).0
    }

    #[inline(always)]
    pub fn scaled_exp_into<T: Lane, E: LevelExp<T, L>, const L: usize>(
        x: &[T],
        scale: T,
        shift: T,
        out: &mut [T],
    ) -> T {
        store_exp::<T, E, false, false, false, false, L>(x, out, &[], (&mut [], T::ZERO), 0, |v| {
            scale * v - shift
        })
        .0
    }

    /// Classes whose exponentials a column sums in `T` before the sum
    /// moves into `f64` (see [`ColumnStats::sum`]), so that a long class
    /// axis keeps `T`'s accuracy.
    const CLASS_BLOCK: usize = 64;

    /// [`RowKernels::softmax_columns`], a strip of `L` positions (one
    /// vector) at a time, the last one padded. Strips of two vectors ran
    /// over 3x the time on a Zen 4 machine: the compiler built their
    /// gradient's loop in single lanes.
    ///
    /// [`RowKernels::softmax_columns`]: crate::base::float::RowKernels::softmax_columns
    #[inline(always)]
    pub fn softmax_columns<T: Lane, E: LevelExp<T, L>, const L: usize>(
        tile: ColumnTile<'_, T>,
        stats: ColumnStats<'_, T>,
        grad: Option<ColumnGrad<'_, T>>,
    ) {
        if tile.far {
            strips::<T, E, true, L>(tile, stats, grad);
        } else {
            strips::<T, E, false, L>(tile, stats, grad);
        }
    }

    /// [`softmax_columns`]' strips, asking for the rows' lines as `FAR`
    /// says ([`prefetch`]). The whole strips start where the logits' first
    /// row reaches a vector's boundary (a cache line at AVX-512), after a
    /// partial strip: a vector straddling two lines is read half by one
    /// strip and half by the next, and at a class stride of a multiple of
    /// 4 KiB (a 64 x 64 or 128 x 128 map) all the rows' lines share one
    /// first-level set, so the line was gone before the second half was
    /// read. A buffer from `malloc` starts 0, 16, 32 or 48 bytes past a
    /// line (a fresh large one, 16). On
    /// the Zen 4 machine (one thread, 40 alternating slices against
    /// starting at the buffer's first position; fastest slice, first
    /// quartile, median of the pairs' ratios): 8 x 21 x 128 x 128 0.75x,
    /// 0.78x and 0.90x the time, 1 x 21 x 64 x 64 (in the caches) 0.69x,
    /// 0.69x and 0.84x, 2 x 21 x 128 x 128 0.72x, 0.84x and 0.84x, 8 x 21 x
    /// 120 x 140 0.88x, 0.91x and 0.95x, 1 x 21 x 60 x 70 1.0x; two
    /// threads, 8 x 21 x 128 x 128 0.89x, 0.89x and 0.92x. A gradient
    /// buffer placed differently from the logits within a line keeps one
    /// of the two straddling (aligning to it instead, or writing it
    /// through a staging copy a vector at its own boundary, ran the same).
    #[inline(always)]
    fn strips<T: Lane, E: LevelExp<T, L>, const FAR: bool, const L: usize>(
        mut tile: ColumnTile<'_, T>,
        mut stats: ColumnStats<'_, T>,
        mut grad: Option<ColumnGrad<'_, T>>,
    ) {
        let width = tile.labels.len();
        let size = std::mem::size_of::<T>();
        let at = tile.x.as_ptr() as usize / size;
        let peel = ((L - at % L) % L).min(width);
        if peel > 0 {
            column_strip::<T, E, false, FAR, L>(&mut tile, (0, peel), &mut stats, grad.as_mut());
        }
        let whole = peel + (width - peel) / L * L;
        for j in (peel..whole).step_by(L) {
            let strip = (j, L);
            column_strip::<T, E, true, FAR, L>(&mut tile, strip, &mut stats, grad.as_mut());
        }
        if whole < width {
            let strip = (whole, width - whole);
            column_strip::<T, E, false, FAR, L>(&mut tile, strip, &mut stats, grad.as_mut());
        }
    }

    /// Stores `out`'s first `n` lanes at the start of `row`, less `fix`
    /// in the lanes whose label is `class`, and asks for `row`'s values
    /// ahead ([`prefetch`]).
    #[inline(always)]
    fn store_fixed<T: Lane, const FAR: bool, const L: usize>(
        mut out: [T; L],
        (labels, class, fix): (&[u32; L], u32, &[T; L]),
        row: &mut [T],
        n: usize,
    ) {
        for i in 0..L {
            if labels[i] == class {
                out[i] = out[i] - fix[i];
            }
        }
        prefetch::<T, FAR>(row);
        row[..n].copy_from_slice(&out[..n]);
    }

    /// Elements ahead in a class row that a strip asks for, as it reads
    /// the row's logits and as it writes its gradient, from a tile in the
    /// caches: four strips of `f32` at AVX-512, into the first-level
    /// cache. A strip's class rows are as many streams, too many for the
    /// hardware prefetchers to follow. On a Zen 4 machine (8 x 21 x 128 x
    /// 128 `f32`, one thread, alternating slices against the earlier
    /// design) 32 to 128 ran 0.67x its time, 512 0.8x and 2,048 0.95x;
    /// without asking for the gradient's lines, 0.81x; without asking at
    /// all, 1.0x.
    const AHEAD: usize = 64;

    /// [`AHEAD`] for a tile from beyond the second-level cache
    /// ([`ColumnTile::far`]), whose lines are asked into the second-level
    /// cache only. Into the first, their requests held the first level's
    /// few miss buffers through the memory's latency, and a class stride
    /// of a multiple of 4 KiB put every row's line in one of its sets.
    /// On the Zen 4 machine, alternating slices against [`AHEAD`] into the
    /// first level: one thread, 8 x 21 x 128 x 128 ran 0.86-0.92x the time
    /// (64, 128 or 256 elements ahead alike, 40 slices each), 8 x 21 x 120
    /// x 140 0.54-0.58x; two threads, the memory busy with both, 0.89-1.1x
    /// and 0.60-0.64x. A tile in the caches ran 1.25x the time this way
    /// (1 x 21 x 60 x 70), its lines no longer in the first level when
    /// read.
    ///
    /// [`ColumnTile::far`]: crate::base::float::ColumnTile::far
    const AHEAD_FAR: usize = 128;

    /// Asks for the cache line of `row[AHEAD]` (if `row` reaches it), or
    /// with `FAR` of `row[AHEAD_FAR]` into the second-level cache.
    #[inline(always)]
    fn prefetch<T, const FAR: bool>(row: &[T]) {
        if let Some(v) = row.get(if FAR { AHEAD_FAR } else { AHEAD }) {
            ask_line::<T, FAR>(std::ptr::from_ref(v));
        }
    }

    /// Asks for the cache line at `p` into the first-level cache, or with
    /// `FAR` into the second only. `p` may point anywhere: a prefetch
    /// reads nothing and never faults.
    #[inline(always)]
    pub fn ask_line<T, const FAR: bool>(p: *const T) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch has no effect on memory or program state, at
        // any address; SSE is part of x86-64.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
            if FAR {
                _mm_prefetch::<_MM_HINT_T1>(p.cast());
            } else {
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Asks for the cache line at `p` into the first-level cache, to be
    /// written (`prefetchw`). `p` may point anywhere.
    ///
    /// # Safety
    /// The CPU must have `prefetchw` ([`can_ask_to_write`]).
    #[inline(always)]
    pub unsafe fn ask_line_to_write<T>(p: *const T) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's CPU has `prefetchw`, which, as any
        // prefetch, has no effect on memory or program state.
        unsafe {
            std::arch::asm!(
                "prefetchw [{line}]",
                line = in(reg) p,
                options(nostack, preserves_flags, readonly)
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Whether the CPU has [`ask_line_to_write`]'s instruction, `prefetchw`
    /// (CPUID `0x8000_0001`, ECX bit 8, `3DNowPrefetch`/`PRFCHW`): `std`'s
    /// feature detection does not name it on stable Rust, nor does
    /// `target_feature` enable it, hence `asm!` there.
    #[inline(always)]
    pub fn can_ask_to_write() -> bool {
        #[cfg(target_arch = "x86_64")]
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        #[cfg(target_arch = "x86_64")]
        let has = *HAS.get_or_init(|| {
            use std::arch::x86_64::__cpuid;
            // Leaf 0x8000_0000 gives the highest extended leaf: 0x8000_0001
            // is read only where it exists.
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
        });
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        has
    }

    /// The `n` values of `v` (`n` long) as `L` lanes, padded with `pad`
    /// unless `FULL` (then `n` is `L`).
    #[inline(always)]
    fn lanes_of<V: Copy, const FULL: bool, const L: usize>(v: &[V], pad: V) -> [V; L] {
        // Not `array::from_fn`, which the compiler left as a call.
        let mut lanes = [pad; L];
        if FULL {
            lanes.copy_from_slice(&v[..L]);
        } else {
            lanes[..v.len()].copy_from_slice(v);
        }
        lanes
    }

    /// One strip of positions `j..j + n`: its max, then its exponentials,
    /// then its gradient, each pass a loop down the classes with the
    /// strip's per-position values in registers. The first pass copies the
    /// strip's logits into `tile.strip` (`L` lanes a class, contiguous),
    /// where the exponentials replace them, and only the last pass writes
    /// the gradient: with the exponentials stored in the gradient and read
    /// back from it, the kernel ran 3.3 ns a logit against 1.5 for the
    /// earlier design (8 x 21 x 128 x 128, one thread).
    #[inline(always)]
    fn column_strip<
        T: Lane,
        E: LevelExp<T, L>,
        const FULL: bool,
        const FAR: bool,
        const L: usize,
    >(
        tile: &mut ColumnTile<'_, T>,
        (j, n): (usize, usize),
        stats: &mut ColumnStats<'_, T>,
        grad: Option<&mut ColumnGrad<'_, T>>,
    ) {
        let (stride, classes) = (tile.stride, tile.classes);
        let local = &mut tile.strip[..classes * L];
        let labels: [u32; L] = lanes_of::<_, FULL, L>(&tile.labels[j..j + n], u32::MAX);
        let (mut max, mut at_label) = ([T::NEG_INFINITY; L], [T::ZERO; L]);
        let rows = tile.x[j..].chunks(stride);
        for (k, (row, local)) in rows.zip(local.chunks_exact_mut(L)).enumerate() {
            prefetch::<T, FAR>(row);
            let v: [T; L] = lanes_of::<_, FULL, L>(&row[..n], T::ZERO);
            let class = k as u32;
            for i in 0..L {
                max[i] = larger(max[i], v[i]);
                if labels[i] == class {
                    at_label[i] = v[i];
                }
            }
            local.copy_from_slice(&v);
        }
        // The exponentials, summed in `T` a block of classes at a time and
        // the blocks' sums in `f64` (with one block, the same bits as
        // summing in `T` alone).
        let mut wide = [0.0; L];
        let store = grad.is_some();
        for block in local.chunks_mut(CLASS_BLOCK * L) {
            let mut sum = [T::ZERO; L];
            if store {
                for e in block.chunks_exact_mut(L) {
                    let v: [T; L] = lanes_of::<_, true, L>(e, T::ZERO);
                    E::add_exp_diff(&v, &max, Some(e), &mut sum);
                }
            } else {
                for v in block.chunks_exact(L) {
                    E::add_exp_diff(v, &max, None, &mut sum);
                }
            }
            for i in 0..L {
                wide[i] += sum[i].widen();
            }
        }
        let mut sum = [T::ZERO; L];
        for i in 0..L {
            sum[i] = T::narrow(wide[i]);
        }
        stats.max[j..j + n].copy_from_slice(&max[..n]);
        stats.sum[j..j + n].copy_from_slice(&sum[..n]);
        stats.at_label[j..j + n].copy_from_slice(&at_label[..n]);
        let Some(gr) = grad else { return };
        let coef: [T; L] = lanes_of::<_, FULL, L>(&gr.coef[j..j + n], T::ZERO);
        let fix: [T; L] = lanes_of::<_, FULL, L>(&gr.fix[j..j + n], T::ZERO);
        let dense = gr
            .dense
            .map(|d| lanes_of::<_, FULL, L>(&d[j..j + n], T::ZERO));
        let mut k_of = [T::ZERO; L];
        for i in 0..L {
            k_of[i] = coef[i] / sum[i];
        }
        let rows = gr.g[j..].chunks_mut(stride).zip(local.chunks_exact(L));
        // The loops apart for `dense`, which the compiler did not take out
        // of one loop.
        match dense {
            Some(d) => {
                for (k, (row, e)) in rows.enumerate() {
                    let w = gr.weight.map_or(T::ONE, |w| w[k]);
                    let mut out = [T::ZERO; L];
                    for i in 0..L {
                        out[i] = k_of[i] * e[i] - w * d[i];
                    }
                    store_fixed::<T, FAR, L>(out, (&labels, k as u32, &fix), row, n);
                }
            }
            None => {
                for (k, (row, e)) in rows.enumerate() {
                    let mut out = [T::ZERO; L];
                    for i in 0..L {
                        out[i] = k_of[i] * e[i];
                    }
                    store_fixed::<T, FAR, L>(out, (&labels, k as u32, &fix), row, n);
                }
            }
        }
    }

    #[inline(always)]
    pub fn diff_axpy<T: Lane>(acc: &mut [T], a: T, x: &[T], m: &[T]) {
        for ((s, &v), &mv) in acc.iter_mut().zip(x).zip(m) {
            *s += a * (v - mv);
        }
    }

    #[inline(always)]
    pub fn logistic_parts<T: Lane, E: LevelExp<T, L>, const FMA: bool, const L: usize>(
        x: &[T],
        e: &mut [T],
        l: &mut [T],
    ) {
        // Two loops, not one: each step's chain of dependent operations is
        // long (a division and a polynomial each), and the out-of-order
        // window holds only so many operations, so a loop whose body is
        // one long chain leaves the pipes idle; two shorter bodies keep
        // more elements in flight.
        E::exp_neg_abs_into(x, e);
        for (l, &ev) in l.iter_mut().zip(e.iter()) {
            *l = ev.ln1p_unit::<FMA>();
        }
    }

    #[inline(always)]
    pub fn ln_into<T: Lane, const FMA: bool>(x: &[T], out: &mut [T]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.ln_pos::<FMA>();
        }
    }

    #[inline(always)]
    pub fn affine<T: Lane>(g: &mut [T], a: T, b: T) {
        for v in g.iter_mut() {
            *v = a * *v + b;
        }
    }

    #[inline(always)]
    pub fn affine_weighted<T: Lane>(g: &mut [T], a: T, b: T, w: &[T]) {
        for (v, &wc) in g.iter_mut().zip(w) {
            *v = a * *v + b * wc;
        }
    }

    /// The largest [`Lane::unit_key`] of each block of 256, one vector
    /// maximum a chunk (comparisons folded into a flag packed their masks
    /// into bytes, at twice the cost); the blocks stop at the first that
    /// fails.
    #[inline(always)]
    pub fn all_unit<T: Lane, const L: usize>(x: &[T]) -> bool {
        x.chunks(256).all(|block| {
            let mut acc = [T::ZERO_KEY; L];
            let mut chunks = block.chunks_exact(L);
            for c in &mut chunks {
                for i in 0..L {
                    acc[i] = acc[i].max(c[i].unit_key());
                }
            }
            let rest = chunks.remainder().iter().map(|v| v.unit_key());
            acc.into_iter().chain(rest).max() <= Some(T::ONE_KEY)
        })
    }

    #[inline(always)]
    pub fn scale<T: Lane>(g: &mut [T], a: T) {
        for v in g.iter_mut() {
            *v = a * *v;
        }
    }
}

/// One instantiation of every body for `$t` with `$lanes` lanes, at one
/// level.
macro_rules! level_fns {
    ($t:ty, $lanes:literal, $fma:literal, $exp:ty $(, $feature:literal)?) => {
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn row_max(x: &[$t]) -> $t {
            super::super::body::row_max::<$t, $lanes>(x)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn row_min_max(x: &[$t]) -> ($t, $t) {
            super::super::body::row_min_max::<$t, $lanes>(x)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn shifted_sum(x: &[$t], shift: $t) -> $t {
            super::super::body::shifted_sum::<$t, $lanes>(x, shift)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn shifted_dot(x: &[$t], shift: $t, w: &[$t]) -> $t {
            super::super::body::shifted_dot::<$t, $lanes>(x, shift, w)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_sum(x: &[$t], shift: $t) -> $t {
            super::super::body::exp_sum::<$t, $exp, $lanes>(x, shift)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_into(x: &[$t], shift: $t, out: &mut [$t]) -> $t {
            super::super::body::exp_into::<$t, $exp, $lanes>(x, shift, out)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_into_ahead(
            x: &[$t],
            shift: $t,
            out: &mut [$t],
            ahead: &[$t],
            later: usize,
        ) -> ($t, $t) {
            super::super::body::exp_into_ahead::<$t, $exp, $lanes>(x, shift, out, ahead, later)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_into_scaling(
            x: &[$t],
            shift: $t,
            out: &mut [$t],
            ahead: &[$t],
            prev: &mut [$t],
            k: $t,
        ) -> ($t, $t) {
            super::super::body::exp_into_scaling::<$t, $exp, $lanes>(x, shift, out, ahead, prev, k)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_into_shifted_ahead(
            x: &[$t],
            shift: $t,
            out: &mut [$t],
            ahead: &[$t],
            later: usize,
        ) -> ($t, $t, $t) {
            super::super::body::exp_into_shifted_ahead::<$t, $exp, $lanes>(x, shift, out, ahead, later)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_sum_shifted(x: &[$t], shift: $t) -> ($t, $t) {
            super::super::body::exp_sum_shifted::<$t, $exp, $lanes>(x, shift)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn exp_into_shifted(x: &[$t], shift: $t, out: &mut [$t]) -> ($t, $t) {
            super::super::body::exp_into_shifted::<$t, $exp, $lanes>(x, shift, out)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn scaled_exp_sum(x: &[$t], scale: $t, shift: $t) -> $t {
            super::super::body::scaled_exp_sum::<$t, $exp, $lanes>(x, scale, shift)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn scaled_exp_into(x: &[$t], scale: $t, shift: $t, out: &mut [$t]) -> $t {
            super::super::body::scaled_exp_into::<$t, $exp, $lanes>(x, scale, shift, out)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn softmax_columns(
            tile: crate::base::float::ColumnTile<'_, $t>,
            stats: crate::base::float::ColumnStats<'_, $t>,
            grad: Option<crate::base::float::ColumnGrad<'_, $t>>,
        ) {
            super::super::body::softmax_columns::<$t, $exp, $lanes>(tile, stats, grad)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn diff_axpy(acc: &mut [$t], a: $t, x: &[$t], m: &[$t]) {
            super::super::body::diff_axpy(acc, a, x, m)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn logistic_parts(x: &[$t], e: &mut [$t], l: &mut [$t]) {
            super::super::body::logistic_parts::<$t, $exp, $fma, $lanes>(x, e, l)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn ln_into(x: &[$t], out: &mut [$t]) {
            super::super::body::ln_into::<$t, $fma>(x, out)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn affine(g: &mut [$t], a: $t, b: $t) {
            super::super::body::affine(g, a, b)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn affine_weighted(g: &mut [$t], a: $t, b: $t, w: &[$t]) {
            super::super::body::affine_weighted(g, a, b, w)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn scale(g: &mut [$t], a: $t) {
            super::super::body::scale(g, a)
        }
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn all_unit(x: &[$t]) -> bool {
            super::super::body::all_unit::<$t, $lanes>(x)
        }
    };
}

/// The three levels of every kernel for `$t`, with `$wide` lanes (one
/// 512-bit vector) at AVX-512 and 8 below (see the module docs).
macro_rules! levels {
    ($m:ident, $t:ty, $wide:literal, $wide_exp:ty) => {
        mod $m {
            pub(crate) mod portable {
                level_fns!($t, 8, false, super::super::PerLane<false>);
            }
            #[cfg(target_arch = "x86_64")]
            pub(crate) mod avx2 {
                level_fns!($t, 8, true, super::super::PerLane<true>, "avx2,fma");
            }
            #[cfg(target_arch = "x86_64")]
            pub(crate) mod avx512 {
                level_fns!($t, $wide, true, $wide_exp, "avx512f");
            }
        }
    };
}

levels!(k32, f32, 16, super::super::TableAvx512);
levels!(k64, f64, 8, super::super::TableAvx512);

macro_rules! impl_row_kernels {
    ($t:ty, $m:ident) => {
        impl RowKernels for $t {
            #[inline]
            fn row_max(x: &[Self]) -> Self {
                dispatch!($m::row_max(x))
            }
            #[inline]
            fn row_min_max(x: &[Self]) -> (Self, Self) {
                dispatch!($m::row_min_max(x))
            }
            #[inline]
            fn shifted_sum(x: &[Self], shift: Self) -> Self {
                dispatch!($m::shifted_sum(x, shift))
            }
            #[inline]
            fn shifted_dot(x: &[Self], shift: Self, w: &[Self]) -> Self {
                dispatch!($m::shifted_dot(x, shift, w))
            }
            #[inline]
            fn exp_sum(x: &[Self], shift: Self) -> Self {
                dispatch!($m::exp_sum(x, shift))
            }
            #[inline]
            fn exp_into(x: &[Self], shift: Self, out: &mut [Self]) -> Self {
                dispatch!($m::exp_into(x, shift, out))
            }
            #[inline]
            fn exp_into_ahead(
                x: &[Self],
                shift: Self,
                out: &mut [Self],
                ahead: &[Self],
                later: usize,
            ) -> (Self, Self) {
                dispatch!($m::exp_into_ahead(x, shift, out, ahead, later))
            }
            #[inline]
            fn exp_into_scaling(
                x: &[Self],
                shift: Self,
                out: &mut [Self],
                ahead: &[Self],
                prev: &mut [Self],
                k: Self,
            ) -> (Self, Self) {
                dispatch!($m::exp_into_scaling(x, shift, out, ahead, prev, k))
            }
            #[inline]
            fn exp_into_shifted_ahead(
                x: &[Self],
                shift: Self,
                out: &mut [Self],
                ahead: &[Self],
                later: usize,
            ) -> (Self, Self, Self) {
                dispatch!($m::exp_into_shifted_ahead(x, shift, out, ahead, later))
            }
            #[inline]
            fn exp_sum_shifted(x: &[Self], shift: Self) -> (Self, Self) {
                dispatch!($m::exp_sum_shifted(x, shift))
            }
            #[inline]
            fn exp_into_shifted(x: &[Self], shift: Self, out: &mut [Self]) -> (Self, Self) {
                dispatch!($m::exp_into_shifted(x, shift, out))
            }
            #[inline]
            fn scaled_exp_sum(x: &[Self], scale: Self, shift: Self) -> Self {
                dispatch!($m::scaled_exp_sum(x, scale, shift))
            }
            #[inline]
            fn scaled_exp_into(x: &[Self], scale: Self, shift: Self, out: &mut [Self]) -> Self {
                dispatch!($m::scaled_exp_into(x, scale, shift, out))
            }
            #[inline]
            fn softmax_columns(
                tile: ColumnTile<'_, Self>,
                stats: ColumnStats<'_, Self>,
                grad: Option<ColumnGrad<'_, Self>>,
            ) {
                dispatch!($m::softmax_columns(tile, stats, grad))
            }
            #[inline]
            fn diff_axpy(acc: &mut [Self], a: Self, x: &[Self], m: &[Self]) {
                dispatch!($m::diff_axpy(acc, a, x, m))
            }
            #[inline]
            fn logistic_parts(x: &[Self], e: &mut [Self], l: &mut [Self]) {
                dispatch!($m::logistic_parts(x, e, l))
            }
            #[inline]
            fn ln_into(x: &[Self], out: &mut [Self]) {
                dispatch!($m::ln_into(x, out))
            }
            #[inline]
            fn affine(g: &mut [Self], a: Self, b: Self) {
                dispatch!($m::affine(g, a, b))
            }
            #[inline]
            fn affine_weighted(g: &mut [Self], a: Self, b: Self, w: &[Self]) {
                dispatch!($m::affine_weighted(g, a, b, w))
            }
            #[inline]
            fn scale(g: &mut [Self], a: Self) {
                dispatch!($m::scale(g, a))
            }
            #[inline]
            fn all_unit(x: &[Self]) -> bool {
                dispatch!($m::all_unit(x))
            }
        }
    };
}

impl_row_kernels!(f32, k32);
impl_row_kernels!(f64, k64);

#[cfg(test)]
mod tests {
    use super::RowKernels;
    use crate::Float;
    use crate::base::float::{ColumnGrad, ColumnStats, ColumnTile};

    fn row(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 40.0 - 20.0
            })
            .collect()
    }

    #[test]
    fn kernels_agree_with_scalar_loops_at_every_length() {
        for n in [1, 2, 15, 16, 17, 33, 100, 1000] {
            let x = row(n, n as u64);
            let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(f64::row_max(&x), max);
            let min = x.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(f64::row_min_max(&x), (min, max));
            let exact: f64 = x.iter().map(|&v| (v - max).exp()).sum();
            let mut out = vec![0.0; n];
            let s = f64::exp_into(&x, max, &mut out);
            assert!((s / exact - 1.0).abs() < 1e-14, "n = {n}");
            assert_eq!(f64::exp_sum(&x, max), s);
            let mut scaled = vec![0.0; n];
            let s2 = f64::scaled_exp_into(&x, 0.5, 0.5 * max, &mut scaled);
            let exact2: f64 = x.iter().map(|&v| (0.5 * v - 0.5 * max).exp()).sum();
            assert!((s2 / exact2 - 1.0).abs() < 1e-14, "n = {n}");
            assert_eq!(f64::scaled_exp_sum(&x, 0.5, 0.5 * max), s2);
            for (o, &v) in out.iter().zip(&x) {
                assert!((o / (v - max).exp() - 1.0).abs() < 1e-15);
            }
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let s32 = f32::exp_into(&x32, max as f32, &mut vec![0.0; n]);
            assert!((s32 as f64 / exact - 1.0).abs() < 1e-5, "n = {n}");
            let shifted: f64 = x.iter().map(|&v| v - max).sum();
            assert!((f64::shifted_sum(&x, max) - shifted).abs() < 1e-12 * n as f64);
            // The fused passes: the same exponentials and sum, bit for
            // bit, and the shifted sum.
            let mut fused = vec![0.0; n];
            let (s3, d3) = f64::exp_into_shifted(&x, max, &mut fused);
            assert_eq!((s3, &fused), (s, &out), "n = {n}");
            assert!((d3 - shifted).abs() < 1e-12 * n as f64, "n = {n}");
            assert_eq!(f64::exp_sum_shifted(&x, max), (s3, d3));
            let w: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
            let dot: f64 = x.iter().zip(&w).map(|(&v, &wc)| (v - max) * wc).sum();
            assert!((f64::shifted_dot(&x, max, &w) - dot).abs() < 1e-12 * n as f64);
        }
    }

    #[test]
    fn max_skips_nan_and_exp_sum_propagates_it() {
        let x = [1.0_f32, f32::NAN, 3.0];
        assert_eq!(f32::row_max(&x), 3.0);
        assert!(f32::exp_sum(&x, 3.0).is_nan());
    }

    /// Every position of a block (in the whole chunks and in the
    /// remainder, in the first block and a later one) can fail the check,
    /// by a value below, above, NaN or infinite; the bounds themselves and
    /// `-0.0` pass.
    #[test]
    fn all_unit_finds_a_bad_value_anywhere() {
        fn check<T: Float>() {
            for n in [1_usize, 15, 16, 17, 255, 256, 257, 600] {
                let mut x: Vec<T> = (0..n).map(|i| T::lit((i % 11) as f64 / 10.0)).collect();
                x[0] = T::lit(-0.0);
                assert!(T::all_unit(&x), "n = {n}");
                for at in [0, n / 2, n.saturating_sub(2), n - 1] {
                    for bad in [
                        -1e-30,
                        -1e-40,
                        1.0 + 1e-6,
                        f64::NAN,
                        -f64::NAN,
                        f64::INFINITY,
                        -f64::INFINITY,
                    ] {
                        let mut y = x.clone();
                        y[at] = T::lit(bad);
                        assert!(!T::all_unit(&y), "n = {n}, at {at}: {bad}");
                    }
                    // The negative number nearest 0, a subnormal.
                    let mut y = x.clone();
                    y[at] = -T::min_positive_value() * T::epsilon();
                    assert!(y[at] < T::zero() && !T::all_unit(&y), "n = {n}, at {at}");
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn affine_passes() {
        let mut g = vec![1.0_f64, 2.0, 3.0];
        f64::affine(&mut g, 2.0, -1.0);
        assert_eq!(g, [1.0, 3.0, 5.0]);
        f64::affine_weighted(&mut g, 1.0, 1.0, &[1.0, 0.0, -1.0]);
        assert_eq!(g, [2.0, 3.0, 4.0]);
        f64::scale(&mut g, 0.5);
        assert_eq!(g, [1.0, 1.5, 2.0]);
    }

    /// Every level the CPU has (portable always; AVX2 and AVX-512 where
    /// present), not only the one chosen at run time: each has its own
    /// lanes, so its own tails. At every length up to three chunks of 16
    /// and beyond, the max is exact, each stored exponential within 2 ulp
    /// of `std`'s, the sums within a few ulp of the exact sum, the summing
    /// and storing kernels give the same sum bit for bit, a row's leftover
    /// lanes and the column kernel (its strips and their padded tail) give
    /// the same exponentials as its chunks, the column kernel's gradient
    /// its formula's bits with and without the gradient, and the `[0, 1]`
    /// check finds one bad value.
    #[test]
    // The portable level's functions are safe to call; the others are not.
    #[allow(unused_unsafe)]
    fn every_level_agrees_with_scalar_loops_at_every_length() {
        macro_rules! check_level {
            ($t:ty, $m:ident, $level:ident, $tol:expr) => {{
                for n in (1..=50).chain([100, 1000, 1025]) {
                    let x: Vec<$t> = row(n, 7 * n as u64).iter().map(|&v| v as $t).collect();
                    let max = x.iter().copied().fold(<$t>::NEG_INFINITY, <$t>::max);
                    // SAFETY (each call below): the level was detected on
                    // this CPU before the calls (see the callers).
                    let m = unsafe { super::$m::$level::row_max(&x) };
                    assert_eq!(m, max, "{} n = {n}", stringify!($level));
                    let mut out = vec![0.0; n];
                    let stored = unsafe { super::$m::$level::exp_into(&x, max, &mut out) };
                    let summed = unsafe { super::$m::$level::exp_sum(&x, max) };
                    assert_eq!(stored.to_bits(), summed.to_bits(), "n = {n}");
                    let exact: f64 = x.iter().map(|&v| (v as f64 - max as f64).exp()).sum();
                    assert!(
                        (stored as f64 / exact - 1.0).abs() < $tol,
                        "n = {n}: {stored} vs {exact}"
                    );
                    // The same argument gives the same bits in a short
                    // row's leftover lanes and in the column kernels.
                    let k = n.min(5);
                    let mut short = vec![0.0; k];
                    unsafe { super::$m::$level::exp_into(&x[..k], max, &mut short) };
                    assert_eq!(short, out[..k], "n = {n}");
                    // A tile of two classes, `max` everywhere and `x`: each
                    // position's max is `max`, its sum `1 + out_j`, and its
                    // gradient `(coef / sum) out_j`, less `fix` at the label.
                    let tile_x: Vec<$t> = vec![max; n].into_iter().chain(x.clone()).collect();
                    let labels: Vec<u32> = (0..n as u32)
                        .map(|j| [1, 0, u32::MAX][j as usize % 3])
                        .collect();
                    let (coef, fix) = (vec![0.5; n], vec![0.25; n]);
                    let mut g = vec![0.0; 2 * n];
                    let mut stats = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
                    // Asking for the lines either way, and the logits
                    // starting anywhere in a cache line (the kernel's
                    // strips start at a vector's boundary, after a
                    // partial strip): the same bits.
                    let ways = [(true, false), (false, false), (true, true), (false, true)];
                    let shifts = (0..16).flat_map(|s| ways.map(|w| (w, s)));
                    for ((with_grad, far), shift) in shifts {
                        let mut strip = vec![0.0; 32];
                        if with_grad {
                            g.fill(<$t>::NAN);
                        }
                        let shifted: Vec<$t> = vec![0.0; shift]
                            .into_iter()
                            .chain(tile_x.iter().copied())
                            .collect();
                        let tile = ColumnTile {
                            x: &shifted[shift..],
                            classes: 2,
                            stride: n,
                            labels: &labels,
                            strip: &mut strip,
                            far,
                        };
                        let [m, s, at] = &mut stats;
                        let out_stats = ColumnStats {
                            max: m,
                            sum: s,
                            at_label: at,
                        };
                        let grad = with_grad.then(|| ColumnGrad {
                            g: &mut g,
                            coef: &coef,
                            fix: &fix,
                            dense: None,
                            weight: None,
                        });
                        unsafe { super::$m::$level::softmax_columns(tile, out_stats, grad) };
                        for j in 0..n {
                            let [m, s, at] = &stats;
                            assert_eq!(m[j], max, "n = {n}");
                            assert_eq!(s[j], 1.0 + out[j], "n = {n}, j = {j}");
                            let want_at = [x[j], max, 0.0][j % 3];
                            assert_eq!(at[j], want_at, "n = {n}, j = {j}");
                            let k = 0.5 / s[j];
                            let fixed =
                                |c: usize, v: $t| if labels[j] == c as u32 { v - 0.25 } else { v };
                            assert_eq!(g[j], fixed(0, k * 1.0), "n = {n}, j = {j}");
                            assert_eq!(g[n + j], fixed(1, k * out[j]), "n = {n}, j = {j}");
                        }
                    }
                    for (&o, &v) in out.iter().zip(&x) {
                        let e = (v - max).exp();
                        let ulps = (o.to_bits() as i64 - e.to_bits() as i64).abs();
                        assert!(ulps <= 2 || e < <$t>::MIN_POSITIVE, "n = {n}: {o} vs {e}");
                    }
                    // The next row's maximum, read in the same pass: the
                    // same bits as the row's own kernels (a NaN skipped,
                    // the largest value anywhere, the tail's included).
                    for at in [0, n / 2, n - 1] {
                        let mut ahead: Vec<$t> = x.iter().map(|&v| v - 3.0).collect();
                        ahead[at] = 50.0;
                        ahead[(at + 1) % n] = <$t>::NAN;
                        let want = unsafe { super::$m::$level::row_max(&ahead) };
                        let mut o2 = vec![0.0; n];
                        let (s2, m2) = unsafe {
                            super::$m::$level::exp_into_ahead(&x, max, &mut o2, &ahead, 0)
                        };
                        assert_eq!((s2.to_bits(), &o2), (stored.to_bits(), &out), "n = {n}");
                        assert_eq!(m2.to_bits(), want.to_bits(), "n = {n}, at {at}");
                        // Asking for later rows' lines (here, addresses
                        // past these buffers) changes nothing.
                        for later in [1, 3] {
                            o2.fill(0.0);
                            let asked = unsafe {
                                super::$m::$level::exp_into_ahead(&x, max, &mut o2, &ahead, later)
                            };
                            assert_eq!((asked.0.to_bits(), &o2), (stored.to_bits(), &out));
                            assert_eq!(asked.1.to_bits(), want.to_bits(), "n = {n}, at {at}");
                            o2.fill(0.0);
                            let (s5, d5, m5) = unsafe {
                                super::$m::$level::exp_into_shifted_ahead(
                                    &x, max, &mut o2, &ahead, later,
                                )
                            };
                            let plain = unsafe {
                                super::$m::$level::exp_into_shifted_ahead(
                                    &x,
                                    max,
                                    &mut o2.clone(),
                                    &ahead,
                                    0,
                                )
                            };
                            assert_eq!(
                                (s5.to_bits(), d5.to_bits()),
                                (plain.0.to_bits(), plain.1.to_bits())
                            );
                            assert_eq!((&o2, m5.to_bits()), (&out, want.to_bits()), "n = {n}");
                        }
                        assert_eq!(want, if n == 1 { <$t>::NEG_INFINITY } else { 50.0 });
                        let plain =
                            unsafe { super::$m::$level::exp_into_shifted(&x, max, &mut o2) };
                        let (s3, d3, m3) = unsafe {
                            super::$m::$level::exp_into_shifted_ahead(&x, max, &mut o2, &ahead, 0)
                        };
                        assert_eq!(
                            (s3.to_bits(), d3.to_bits()),
                            (plain.0.to_bits(), plain.1.to_bits())
                        );
                        assert_eq!((s3.to_bits(), &o2), (stored.to_bits(), &out), "n = {n}");
                        assert_eq!(m3.to_bits(), want.to_bits(), "n = {n}, at {at}");
                        // With the previous row scaled in the same pass:
                        // the same exponentials, and each product's bits.
                        let mut prev: Vec<$t> = ahead.iter().map(|&v| v * 0.37).collect();
                        let k: $t = -1.0 / 3.0;
                        let scaled: Vec<$t> = prev.iter().map(|&v| v * k).collect();
                        let (s4, m4) = unsafe {
                            super::$m::$level::exp_into_scaling(
                                &x, max, &mut o2, &ahead, &mut prev, k,
                            )
                        };
                        assert_eq!((s4.to_bits(), &o2), (stored.to_bits(), &out), "n = {n}");
                        assert_eq!(m4.to_bits(), want.to_bits(), "n = {n}, at {at}");
                        let bits = |v: &[$t]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&prev), bits(&scaled), "n = {n}");
                    }
                    // The sigmoid family's parts: `exp(-|x|)` within 1 ulp
                    // of std's below `|x| = 10`, 2 to 20 (the AVX-512 `f32`
                    // form's one-step reduction; see `exp_avx512`), and a
                    // short slice's leftover lanes the bits of a chunk's.
                    let (mut e1, mut l1) = (vec![0.0; n], vec![0.0; n]);
                    unsafe { super::$m::$level::logistic_parts(&x, &mut e1, &mut l1) };
                    for (&e, &v) in e1.iter().zip(&x) {
                        let want = (-v.abs()).exp();
                        let ulps = (e.to_bits() as i64 - want.to_bits() as i64).abs();
                        let allowed = if v.abs() < 10.0 { 1 } else { 2 };
                        assert!(ulps <= allowed, "n = {n}: exp(-|{v}|) = {e}, std {want}");
                    }
                    let (mut e2, mut l2) = (vec![0.0; k], vec![0.0; k]);
                    unsafe { super::$m::$level::logistic_parts(&x[..k], &mut e2, &mut l2) };
                    assert_eq!((&e2[..], &l2[..]), (&e1[..k], &l1[..k]), "n = {n}");
                    let mut unit: Vec<$t> = (0..n).map(|i| (i % 7) as $t / 6.0).collect();
                    assert!(unsafe { super::$m::$level::all_unit(&unit) }, "n = {n}");
                    unit[n / 2] = 1.5;
                    assert!(!unsafe { super::$m::$level::all_unit(&unit) }, "n = {n}");
                }
            }};
        }
        macro_rules! check_all_levels {
            ($level:ident) => {
                check_level!(f32, k32, $level, 1e-5);
                check_level!(f64, k64, $level, 1e-13);
            };
        }
        check_all_levels!(portable);
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                check_all_levels!(avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                check_all_levels!(avx512);
            }
        }
    }
}
