//! The softmax rows' `exp` at the AVX-512 level: a vector at once (sixteen
//! `f32` lanes, eight `f64`), from a table of `2^(j/16)`, in six fused
//! multiply-adds and multiplies a vector in `f32` where the polynomial of
//! [`super::exp`] takes ten, and ten in `f64` where it takes fifteen.
//!
//! On a Zen 4 core a softmax row's exponentials' pass is bound by the two
//! multiply-add pipes (the exponential is most of its operations; the
//! loads, stores, additions and comparisons go to other pipes). Two
//! multiply-adds fewer a vector took cross-entropy 256 x 1000 to 0.90x the
//! time; this form takes four fewer. The table lookup is a lane permute
//! (`vpermd`: sixteen `f32` entries are one register; `vpermt2q` picks from
//! two for `f64`), which the compiler does not build from scalar code,
//! hence intrinsics.
//!
//! Method, for `x <= 0` (in `f32`; `f64`'s numbers after the semicolons):
//! - `n = round(16 x / ln 2)`, by adding a shifter (`1.5 * 2^23 + 2032`;
//!   `1.5 * 2^52 + 16368`) whose sum's low bits hold `m = n + 16 bias`
//!   (`bias` 127; 1023): its low four bits are `j = n mod 16`, the next
//!   ones `k + bias` with `k = floor(n / 16)`;
//! - `r = x - n ln 2 / 16`, `|r| <= ln 2 / 32`: in `f64` in two steps
//!   (`ln 2 / 16` split as in [`super::exp`]); in `f32` in one, with `ln 2
//!   / 16` rounded to an `f32`, whose error `n` times over (`2.75e-9 |x|`
//!   relative) is the price of the multiply-add saved;
//! - `s = r + r^2 q(r)`, `expm1(r)` within `1.6e-9` with `q` of degree 1
//!   (`1.2e-17` with degree 4), fitted to the relative error of `1 + s` by
//!   iterated reweighted least squares;
//! - `t = 2^k 2^(j/16)`: the table entry's bits plus `m << 19` (`m << 48`),
//!   one integer addition (the entry holds `2^(j/16)`'s bits less the
//!   `j << 19` and `bias << 23` that the shifted `m` brings), a normal
//!   number for every `x` kept below;
//! - `exp(x) = t + t s`, one rounding.
//!
//! Accuracy: the table's entries are `2^(j/16)` correctly rounded (at most
//! half an ulp off), the polynomial adds a fiftieth of an ulp in `f32` (a
//! twentieth in `f64`) and the last multiply-add half an ulp: within 1.05
//! ulp of `exp(x)`, in `f32` plus the one-step reduction's `2.75e-9 |x|`
//! relative. In `f64` that is within 1 ulp of the correctly rounded
//! result. In `f32` it is within 1 ulp from -10 up (where a softmax row's
//! terms show next to its largest, `1`: `e^-10` is `4.5e-5` of it), 2 ulp
//! to -40, 4 at worst; measured against the standard library at every 97th
//! `f32` of `[-120, 0]` (`1 + ceil(2.75e-9 |x| 2^24)` ulp allowed, 4 at
//! -66.5) and of `[-10, 0]` (1 ulp allowed). A softmax probability's
//! error stays below `2.75e-9 |x| e^x <= 1e-9` of the row's largest term.
//! Against the reduction in two steps (seven operations), cross-entropy
//! 256 x 1000 ran 0.93-1.0x the time, 4096 x 1000 0.87-0.93x and binary
//! cross-entropy with logits 4096 x 80 0.95-0.98x (one thread, 40
//! alternating slices), every conformance case's error unchanged. The
//! entries' rounding shows in how often a result is off: on 3 million
//! evenly spaced `f32` arguments of `[-87, 0]`, 20% of the results 1 ulp
//! off against 6.3% for the polynomial. In `f64` each entry's
//! rounding error is added back to `expm1(r)` (a second permute and an
//! addition, off the multiply-add pipes that bound that loop): 3.6% of the
//! test's results against the polynomial's 5.7%. In `f32` the same
//! correction took the 20% to 1.0% but cross-entropy 256 x 1000 to
//! 1.03-1.07x the time (its loop is near the issue bound of all four
//! pipes), so `f32` goes without.
//!
//! Results whose value is below the smallest normal number (`x` below
//! `ln 2^-126 = -87.3365`; `ln 2^-1022 = -708.396`; `-inf` included) are
//! 0: the lanes are selected by a comparison that NaN passes, so NaN stays
//! NaN. The polynomial form at the other levels (`exp_flush`) gives 0 below
//! `-88` (`-709`) and a subnormal between; a row's term below the smallest
//! normal number is invisible next to its largest, `1`.
//!
//! The sigmoid family's `exp(-|x|)` keeps subnormal results
//! ([`exp_subnormal_x16`], `f32` only): the same table and polynomial with
//! the product formed `2^64` times larger, then one multiplication back.
//! Binary cross-entropy with logits 4096 x 80 ran 0.96-0.98x the time of
//! the polynomial form (16 alternating slices, one thread): the
//! exponentials are a smaller part of its time than of a softmax row's.

use std::arch::x86_64::{
    __m512, __m512d, __m512i, _CMP_NLT_UQ, _mm512_add_epi32, _mm512_add_epi64, _mm512_add_pd,
    _mm512_castpd_si512, _mm512_castps_si512, _mm512_castsi512_pd, _mm512_castsi512_ps,
    _mm512_cmp_pd_mask, _mm512_cmp_ps_mask, _mm512_fmadd_pd, _mm512_fmadd_ps,
    _mm512_maskz_fmadd_pd, _mm512_maskz_fmadd_ps, _mm512_max_ps, _mm512_mul_pd, _mm512_mul_ps,
    _mm512_permutex2var_epi64, _mm512_permutex2var_pd, _mm512_permutexvar_epi32, _mm512_set1_pd,
    _mm512_set1_ps, _mm512_slli_epi32, _mm512_slli_epi64, _mm512_sub_pd, _mm512_sub_ps,
};

/// `2^(j/16)` for `j = 0..16`, each rounded to the nearest `f32` (the
/// shortest digits that parse to it; a test checks that each is the
/// nearest).
const POW2_SIXTEENTHS: [f32; 16] = [
    1.0,
    1.044_273_7,
    1.090_507_7,
    1.138_788_6,
    1.189_207_1,
    1.241_857_8,
    1.296_839_6,
    1.354_255_6,
    std::f32::consts::SQRT_2,
    1.476_826_2,
    1.542_210_8,
    1.610_490_3,
    1.681_792_9,
    1.756_252_2,
    1.834_008_1,
    1.915_206_6,
];

/// The entries as the integers that `m << 19` completes to `2^k 2^(j/16)`'s
/// bits: each entry's bits less `1.0`'s (`127 << 23`, which `m`'s high
/// bits bring back as `k + 127`) and less `j << 19` (which `m`'s low four
/// bits bring).
const TABLE_BITS: [i32; 16] = {
    let mut t = [0_i32; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = POW2_SIXTEENTHS[j].to_bits() as i32 - 0x3f80_0000 - ((j as i32) << 19);
        j += 1;
    }
    t
};

/// `16 / ln 2`.
const SIXTEEN_LOG2E: f32 = 16.0 * std::f32::consts::LOG2_E;
/// `1.5 * 2^23 + 127 * 16`: the sum's low bits are `n + 2032` (see the
/// module docs), and `ulp = 1` rounds the product to an integer.
const SHIFTER: f32 = 12_584_944.0;
/// `ln 2 / 16` rounded to an `f32`, `1.19e-10` (`2.75e-9` relative) above
/// the exact value: `r` is reduced in one multiply-add, its error `n` times
/// that (see the module docs).
const LN2_16: f32 = std::f32::consts::LN_2 / 16.0;
/// The polynomial's `r^2` and `r^3` coefficients.
const C2: f32 = 0.500_016_15;
const C3: f32 = 0.166_667_18;
/// `ln 2^-126`, rounded up to an `f32`: from here up `exp` is a normal
/// number, and `n >= -2016`, so `k >= -126` and the table's product is
/// normal; below it the result is 0.
pub(crate) const MIN_NORMAL_ARG: f32 = -87.336_54;

/// `2^(j/16)` for `j = 0..16`, each rounded to the nearest `f64`.
const POW2_SIXTEENTHS_F64: [f64; 16] = [
    1.0,
    1.044_273_782_427_413_8,
    1.090_507_732_665_257_7,
    1.138_788_634_756_691_6,
    1.189_207_115_002_721,
    1.241_857_812_073_484,
    1.296_839_554_651_009_6,
    1.354_255_546_936_892_7,
    std::f64::consts::SQRT_2,
    1.476_826_145_939_499_3,
    1.542_210_825_407_940_7,
    1.610_490_331_949_254_3,
    1.681_792_830_507_429,
    1.756_252_160_373_299_5,
    1.834_008_086_409_342_4,
    1.915_206_561_397_147_4,
];

/// As [`TABLE_BITS`], in `f64`: each entry's bits less `1.0`'s
/// (`1023 << 52`) and less `j << 48`.
const TABLE_BITS_F64: [i64; 16] = {
    let mut t = [0_i64; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = POW2_SIXTEENTHS_F64[j].to_bits() as i64 - 0x3ff0_0000_0000_0000 - ((j as i64) << 48);
        j += 1;
    }
    t
};

/// `(2^(j/16) - T_j) / T_j` for the entries `T_j` above, rounded: added
/// to `expm1(r)`, they make `T_j (1 + s)` the exact power's product up to
/// `2e-18` relative. Without them 23% of the results on the test's grid of
/// `[-708, 0]` were 1 ulp from the standard library's (the entries'
/// rounding, up to half an ulp, comes through whole), against 5.7% for the
/// polynomial of the other levels; with them, 3.6%. Two operations a vector
/// more (a permute and an addition), neither on the multiply-add pipes
/// that bound the `f64` loop (see the module docs for `f32`).
const POW2_SIXTEENTHS_F64_ERR: [f64; 16] = [
    0.0,
    8.189_317_638_195_515e-17,
    -2.793_911_485_951_573_3e-17,
    7.826_573_258_636_076e-17,
    3.348_462_333_625_152_4e-17,
    3.750_854_201_303_127e-17,
    1.957_258_529_311_203_6e-17,
    5.686_480_957_911_74e-17,
    -6.835_808_657_661_922e-17,
    -2.359_109_477_085_005_3e-17,
    5.154_830_117_078_678_3e-17,
    1.534_141_005_360_372_3e-17,
    4.875_160_526_227_062e-17,
    1.685_487_290_628_973e-17,
    1.790_126_907_604_513e-17,
    -5.545_065_618_639_427e-17,
];

/// `f64`'s constants, as the `f32` ones above: the shifter is
/// `1.5 * 2^52 + 1023 * 16`; `ln 2 / 16`'s high part has 15 significant
/// bits, `n` at most 14.
const SIXTEEN_LOG2E_F64: f64 = 16.0 * std::f64::consts::LOG2_E;
const SHIFTER_F64: f64 = 6_755_399_441_072_112.0;
const LN2_16_HI_F64: f64 = 6.931_457_519_531_25e-1 / 16.0;
const LN2_16_LO_F64: f64 = 1.428_606_820_309_417_3e-6 / 16.0;
/// `q`'s coefficients, from `r^0` up.
const Q_F64: [f64; 5] = [
    0.499_999_999_999_996,
    0.166_666_666_644_089_3,
    0.041_666_666_693_358_05,
    0.008_333_472_198_868_17,
    0.001_388_859_345_060_824_6,
];
/// `ln 2^-1022`, rounded up to an `f64`.
pub(crate) const MIN_NORMAL_ARG_F64: f64 = -708.396_418_532_264_1;

/// `exp(x) = t (1 + s)` for sixteen arguments: the table's `t = 2^k
/// 2^(j/16)` (times `2^(16 (bias - 127))` for a shifter that holds `n + 16
/// bias`) and `s = expm1(r)`; see the module docs.
#[inline]
#[target_feature(enable = "avx512f")]
fn table_parts_x16(x: __m512, shifter: f32) -> (__m512, __m512) {
    // SAFETY: 64 bytes either way, and every bit pattern is a valid value
    // of both.
    let table: __m512i = unsafe { std::mem::transmute::<[i32; 16], __m512i>(TABLE_BITS) };
    let z = _mm512_fmadd_ps(x, _mm512_set1_ps(SIXTEEN_LOG2E), _mm512_set1_ps(shifter));
    let n = _mm512_sub_ps(z, _mm512_set1_ps(shifter));
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_16), x);
    let q = _mm512_fmadd_ps(_mm512_set1_ps(C3), r, _mm512_set1_ps(C2));
    let s = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
    let m = _mm512_castps_si512(z);
    let t = _mm512_castsi512_ps(_mm512_add_epi32(
        _mm512_permutexvar_epi32(m, table),
        _mm512_slli_epi32::<19>(m),
    ));
    (t, s)
}

/// `exp` of sixteen arguments `<= 0` (or NaN); see the module docs.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_flush_x16(x: __m512) -> __m512 {
    let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(MIN_NORMAL_ARG));
    let (t, s) = table_parts_x16(x, SHIFTER);
    _mm512_maskz_fmadd_ps(keep, t, s, t)
}

/// `1.5 * 2^23 + 191 * 16`: as [`SHIFTER`], with the table's products
/// scaled by `2^64` ([`exp_subnormal_x16`]).
const SHIFTER_UP_64: f32 = 12_585_968.0;
/// Below this `exp` rounds to 0 (it is under half the smallest subnormal
/// number, `2^-150`, from `-103.972` down).
const ZERO_BELOW: f32 = -104.0;

/// `exp` of sixteen arguments `<= 0` (or NaN), as [`exp_flush_x16`] but
/// with results below the smallest normal number kept (subnormal), for
/// the sigmoid family's `exp(-|x|)`: the table's product is formed
/// `2^64` times larger (a normal number down to `x = -104`, below which
/// the arguments are taken as `-104` and the result is 0), then scaled
/// back by one multiplication, which rounds a subnormal result a second
/// time: within 1 ulp of the correctly rounded one there (a subnormal's
/// ulp is far above the reduction's relative error), a normal result the
/// flushing form's bits. Seven operations on the multiply-add pipes,
/// against thirteen for the polynomial form of the other levels.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_subnormal_x16(x: __m512) -> __m512 {
    // The bound first: `max` returns its second operand when one is NaN.
    let x = _mm512_max_ps(_mm512_set1_ps(ZERO_BELOW), x);
    let (t, s) = table_parts_x16(x, SHIFTER_UP_64);
    _mm512_mul_ps(
        _mm512_fmadd_ps(t, s, t),
        _mm512_set1_ps(f32::from_bits(0x1f80_0000)),
    )
}

/// `exp` of eight `f64` arguments `<= 0` (or NaN); see the module docs.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_flush_x8(x: __m512d) -> __m512d {
    // SAFETY: 64 bytes either way, and every bit pattern is a valid value
    // of both.
    let [lo, hi]: [__m512i; 2] =
        unsafe { std::mem::transmute::<[i64; 16], [__m512i; 2]>(TABLE_BITS_F64) };
    // SAFETY: as above.
    let [err_lo, err_hi]: [__m512d; 2] =
        unsafe { std::mem::transmute::<[f64; 16], [__m512d; 2]>(POW2_SIXTEENTHS_F64_ERR) };
    let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(x, _mm512_set1_pd(MIN_NORMAL_ARG_F64));
    let z = _mm512_fmadd_pd(
        x,
        _mm512_set1_pd(SIXTEEN_LOG2E_F64),
        _mm512_set1_pd(SHIFTER_F64),
    );
    let n = _mm512_sub_pd(z, _mm512_set1_pd(SHIFTER_F64));
    let r = _mm512_fmadd_pd(n, _mm512_set1_pd(-LN2_16_HI_F64), x);
    let r = _mm512_fmadd_pd(n, _mm512_set1_pd(-LN2_16_LO_F64), r);
    let mut q = _mm512_set1_pd(Q_F64[4]);
    for &c in Q_F64[..4].iter().rev() {
        q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(c));
    }
    let m = _mm512_castpd_si512(z);
    let s = _mm512_add_pd(
        _mm512_fmadd_pd(_mm512_mul_pd(r, r), q, r),
        _mm512_permutex2var_pd(err_lo, m, err_hi),
    );
    let t = _mm512_castsi512_pd(_mm512_add_epi64(
        _mm512_permutex2var_epi64(lo, m, hi),
        _mm512_slli_epi64::<48>(m),
    ));
    _mm512_maskz_fmadd_pd(keep, t, s, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` of each of `$x` (`&[$t]`) through `$f`, `$l` lanes at a time.
    macro_rules! exp_all {
        ($f:ident, $t:ty, $l:literal, $v:ty, $x:expr) => {
            $x.chunks($l)
                .flat_map(|c| {
                    let mut a = [0.0 as $t; $l];
                    a[..c.len()].copy_from_slice(c);
                    // SAFETY: the callers run only where the CPU has
                    // AVX-512F; 64 bytes either way, every bit pattern
                    // valid in both.
                    let e = unsafe {
                        std::mem::transmute::<$v, [$t; $l]>($f(
                            std::mem::transmute::<[$t; $l], $v>(a),
                        ))
                    };
                    e[..c.len()].to_vec()
                })
                .collect::<Vec<$t>>()
        };
    }

    /// Every 97th `f32` of `[-limit, 0]`, from `-0` down.
    fn every_97th_f32_down_to(limit: f32) -> Vec<f32> {
        (0..=limit.to_bits())
            .step_by(97)
            .map(|b| -f32::from_bits(b))
            .collect()
    }

    fn exp_all(x: &[f32]) -> Vec<f32> {
        exp_all!(exp_flush_x16, f32, 16, __m512, x)
    }

    fn exp_all_f64(x: &[f64]) -> Vec<f64> {
        exp_all!(exp_flush_x8, f64, 8, __m512d, x)
    }

    /// Checks `exp` (`$exp`) on the arguments `$x` of type `$t` against the
    /// standard library: exactly 0 below `$min` (where std's result is
    /// subnormal), within `$ulps(x)` ulp from there up (std's normal), and
    /// at most `1 / $share` of the results off by any; and that `$min` is
    /// the last argument whose result is normal.
    macro_rules! check_against_std {
        ($exp:ident, $t:ty, $min:expr, $share:expr, $ulps:expr, $x:expr) => {{
            let x: &[$t] = &$x;
            let allowed: fn($t) -> i64 = $ulps;
            // The largest excess over the bound, with its ulp and argument.
            let mut worst = (i64::MIN, 0_i64, 0.0 as $t);
            let mut off = 0;
            for (&v, &e) in x.iter().zip(&$exp(x)) {
                let want = v.exp();
                if v < $min {
                    assert_eq!(e.to_bits(), 0, "exp({v}) = {e}");
                    assert!(want < <$t>::MIN_POSITIVE, "exp({v}) = {want} is normal");
                    continue;
                }
                assert!(want >= <$t>::MIN_POSITIVE, "exp({v}) = {want} is subnormal");
                let ulps = (e.to_bits() as i64 - want.to_bits() as i64).abs();
                if ulps - allowed(v) > worst.0 {
                    worst = (ulps - allowed(v), ulps, v);
                }
                off += (ulps > 0) as usize;
            }
            assert!(worst.0 <= 0, "{} ulp at {}", worst.1, worst.2);
            assert!(off * $share <= x.len(), "{off} of {} results off", x.len());
            let below = <$t>::from_bits($min.to_bits() + 1);
            assert!(below.exp() < <$t>::MIN_POSITIVE && $min.exp() >= <$t>::MIN_POSITIVE);
        }};
    }

    /// The `f32` forms' bound in ulp at `x`: 1, plus the one-step
    /// reduction's relative error `2.75e-9 |x|` (see the module docs) in
    /// ulp of a result (at least `2^-24` of it), rounded up; `|x|` taken
    /// at most 104, below which every result is 0 (and `-inf` would make
    /// the bound overflow).
    fn f32_ulps(x: f32) -> i64 {
        let x = f64::from(x).abs().min(104.0);
        1 + (x * 2.75e-9 * 2f64.powi(24)).ceil() as i64
    }

    #[test]
    fn within_its_bound_of_std_and_0_exactly_below_the_smallest_normal_result() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // Every 97th f32 in [-120, 0]: about 11 million arguments, from
        // 1 down through the subnormal results to where `exp` rounds to 0.
        let x = every_97th_f32_down_to(120.0);
        // 3.0% of the results off, 4 ulp at worst (-66.5; most of these
        // arguments are tiny, their results from the exact entry 1); above
        // -10, where a softmax row's terms show next to its largest (1),
        // within 1 ulp and 1.3% off.
        check_against_std!(exp_all, f32, MIN_NORMAL_ARG, 30, f32_ulps, x);
        let near = every_97th_f32_down_to(10.0);
        check_against_std!(exp_all, f32, MIN_NORMAL_ARG, 50, |_| 1, near);
    }

    #[test]
    fn f64_within_1_ulp_of_std_and_0_exactly_below_the_smallest_normal_result() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // A dense grid near 0 and a coarse one out to below the underflow
        // bound, each step perturbed so that the low bits vary.
        let mut x = Vec::new();
        let mut v = 0.0_f64;
        while v > -800.0 {
            x.push(v);
            v -= if v > -1.0 { 1.0e-6 } else { 3.1e-4 } * (1.0 + 1e-3 * (x.len() % 7) as f64);
        }
        // 3.6% of the results 1 ulp off (the polynomial's: 5.7%); without
        // the entries' corrections 23%.
        check_against_std!(exp_all_f64, f64, MIN_NORMAL_ARG_F64, 20, |_| 1, x);
        let ends = exp_all_f64(&[0.0, -0.0, f64::NAN, f64::NEG_INFINITY, -f64::MAX, -1e-300]);
        assert_eq!(&ends[..2], [1.0, 1.0]);
        assert!(ends[2].is_nan());
        assert_eq!(&ends[3..], [0.0, 0.0, 1.0]);
    }

    /// The form with subnormal results: within [`f32_ulps`] of the
    /// standard library's everywhere (a subnormal's ulp is the smallest
    /// subnormal), 0 where std's is, NaN kept, and the normal results the
    /// bits of the flushing form's.
    #[test]
    fn the_subnormal_form_is_within_its_bound_of_std_down_to_0() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut x = every_97th_f32_down_to(110.0);
        x.extend([f32::NEG_INFINITY, -f32::MAX, -103.972, -103.97, -104.0]);
        let e = exp_all!(exp_subnormal_x16, f32, 16, __m512, x);
        let flushed = exp_all(&x);
        // The largest excess over the bound, with its ulp and argument.
        let mut worst = (i64::MIN, 0_i64, 0.0_f32);
        for ((&v, &got), &flush) in x.iter().zip(&e).zip(&flushed) {
            let want = v.exp();
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            if ulps - f32_ulps(v) > worst.0 {
                worst = (ulps - f32_ulps(v), ulps, v);
            }
            if want >= f32::MIN_POSITIVE {
                assert_eq!(got.to_bits(), flush.to_bits(), "exp({v})");
            }
        }
        assert!(worst.0 <= 0, "{} ulp at {}", worst.1, worst.2);
        let subnormal = x
            .iter()
            .zip(&e)
            .filter(|(v, e)| **e > 0.0 && v.exp() < f32::MIN_POSITIVE);
        assert!(subnormal.count() > 1000);
        let ends = exp_all!(
            exp_subnormal_x16,
            f32,
            16,
            __m512,
            [f32::NAN, 0.0, -0.0, -1e-30]
        );
        assert!(ends[0].is_nan());
        assert_eq!(&ends[1..], [1.0, 1.0, 1.0]);
    }

    #[test]
    fn keeps_nan_and_maps_the_ends_exactly() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let x = [
            0.0,
            -0.0,
            f32::NAN,
            f32::NEG_INFINITY,
            -f32::MAX,
            MIN_NORMAL_ARG,
            -1e-30,
            -f32::from_bits(1),
        ];
        let e = exp_all(&x);
        assert_eq!(&e[..2], [1.0, 1.0]);
        assert!(e[2].is_nan());
        assert_eq!(&e[3..5], [0.0, 0.0]);
        assert!(e[5] >= f32::MIN_POSITIVE);
        assert_eq!(&e[6..], [1.0, 1.0]);
    }

    #[test]
    fn the_f64_table_holds_the_nearest_f64_to_each_power() {
        // 2^(j/16) = 2^(j/32) squared: the f64 entry is the nearest if the
        // exact value lies within half an ulp of it, checked in f64 with
        // the error of the f64 `exp2` (under 1 ulp) allowed for: an entry
        // one ulp off fails.
        for (j, &t) in POW2_SIXTEENTHS_F64.iter().enumerate() {
            let near = (j as f64 / 16.0).exp2();
            let ulps = (t.to_bits() as i64 - near.to_bits() as i64).abs();
            assert!(ulps <= 1, "j = {j}: {t} against {near}");
        }
    }

    #[test]
    fn the_table_holds_the_nearest_f32_to_each_power() {
        for (j, &t) in POW2_SIXTEENTHS.iter().enumerate() {
            let exact = (j as f64 / 16.0).exp2();
            let below = f32::from_bits(t.to_bits() - 1) as f64;
            let above = f32::from_bits(t.to_bits() + 1) as f64;
            let err = (t as f64 - exact).abs();
            assert!(
                err <= (exact - below).abs() && err <= (above - exact).abs(),
                "j = {j}"
            );
        }
    }
}
