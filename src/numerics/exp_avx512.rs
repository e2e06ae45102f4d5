//! The softmax rows' `exp` at the AVX-512 level in `f32`: sixteen lanes at
//! once, from a table of `2^(j/16)`, in seven fused multiply-adds and
//! multiplies a vector where the polynomial of [`super::exp`] takes ten.
//!
//! On a Zen 4 core a softmax row's exponentials' pass is bound by the two
//! multiply-add pipes (the exponential is most of its operations; the
//! loads, stores, additions and comparisons go to other pipes). Two
//! multiply-adds fewer a vector took cross-entropy 256 x 1000 to 0.90x the
//! time; this form takes three fewer. The table lookup is a lane permute
//! (`vpermd`: sixteen entries are one register), which the compiler does
//! not build from scalar code, hence intrinsics.
//!
//! Method, for `x <= 0`:
//! - `n = round(16 x / ln 2)`, by adding a shifter (`1.5 * 2^23 + 2032`)
//!   whose sum's low bits hold `m = n + 2032`: its low four bits are
//!   `j = n mod 16`, the next eight `k + 127` with `k = floor(n / 16)`;
//! - `r = x - n ln 2 / 16` in two steps (`ln 2 / 16` split as in
//!   [`super::exp`]), `|r| <= ln 2 / 32`;
//! - `s = r + r^2 (c2 + c3 r)`, `expm1(r)` within `1.6e-9` (fitted to the
//!   relative error of `1 + s` by iterated reweighted least squares);
//! - `t = 2^k 2^(j/16)`: the table entry's bits plus `m << 19`, one integer
//!   addition (the entry holds `2^(j/16)`'s bits less the `j << 19` and
//!   `127 << 23` that the shifted `m` brings), a normal number for every
//!   `x` kept below;
//! - `exp(x) = t + t s`, one rounding.
//!
//! Accuracy: the table's entries are `2^(j/16)` rounded to `f32` (at most
//! half an ulp off), the polynomial adds a fiftieth of an ulp and the last
//! multiply-add half an ulp, so the result is within 1.03 ulp of `exp(x)`
//! and so within 1 ulp of the correctly rounded result. The test checks
//! that bound against the standard library at every 97th `f32` of
//! `[-120, 0]`, where 1.6% of the results are 1 ulp from its.
//!
//! Results whose value is below the smallest normal number (`x` below
//! `ln 2^-126 = -87.3365`, `-inf` included) are 0: the lanes are selected
//! by a comparison that NaN passes, so NaN stays NaN. The polynomial form
//! at the other levels (`exp_flush`) gives 0 below `-88` and a subnormal
//! between; a row's term below `1.2e-38` is invisible next to its largest,
//! `1`.

use std::arch::x86_64::{
    __m512, __m512i, _CMP_NLT_UQ, _mm512_add_epi32, _mm512_castps_si512, _mm512_castsi512_ps,
    _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_maskz_fmadd_ps, _mm512_mul_ps,
    _mm512_permutexvar_epi32, _mm512_set1_ps, _mm512_slli_epi32, _mm512_sub_ps,
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
/// `ln 2 / 16` in two parts; the high one (9 significant bits) times any
/// `n` here (11 bits) is exact.
const LN2_16_HI: f32 = 0.693_359_4 / 16.0;
const LN2_16_LO: f32 = -2.121_944_4e-4 / 16.0;
/// The polynomial's `r^2` and `r^3` coefficients.
const C2: f32 = 0.500_016_15;
const C3: f32 = 0.166_667_18;
/// `ln 2^-126`, rounded up to an `f32`: from here up `exp` is a normal
/// number, and `n >= -2016`, so `k >= -126` and the table's product is
/// normal; below it the result is 0.
pub(crate) const MIN_NORMAL_ARG: f32 = -87.336_54;

/// `exp` of sixteen arguments `<= 0` (or NaN); see the module docs.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp_flush_x16(x: __m512) -> __m512 {
    // SAFETY: 64 bytes either way, and every bit pattern is a valid value
    // of both.
    let table: __m512i = unsafe { std::mem::transmute::<[i32; 16], __m512i>(TABLE_BITS) };
    let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(MIN_NORMAL_ARG));
    let z = _mm512_fmadd_ps(x, _mm512_set1_ps(SIXTEEN_LOG2E), _mm512_set1_ps(SHIFTER));
    let n = _mm512_sub_ps(z, _mm512_set1_ps(SHIFTER));
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_16_HI), x);
    let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_16_LO), r);
    let q = _mm512_fmadd_ps(_mm512_set1_ps(C3), r, _mm512_set1_ps(C2));
    let s = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
    let m = _mm512_castps_si512(z);
    let t = _mm512_castsi512_ps(_mm512_add_epi32(
        _mm512_permutexvar_epi32(m, table),
        _mm512_slli_epi32::<19>(m),
    ));
    _mm512_maskz_fmadd_ps(keep, t, s, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls [`exp_flush_x16`] on sixteen arguments at a time.
    fn exp_all(x: &[f32]) -> Vec<f32> {
        x.chunks(16)
            .flat_map(|c| {
                let mut a = [0.0_f32; 16];
                a[..c.len()].copy_from_slice(c);
                // SAFETY: the callers run only where the CPU has AVX-512F;
                // 64 bytes either way, every bit pattern valid in both.
                let e = unsafe {
                    std::mem::transmute::<__m512, [f32; 16]>(exp_flush_x16(std::mem::transmute::<
                        [f32; 16],
                        __m512,
                    >(a)))
                };
                e[..c.len()].to_vec()
            })
            .collect()
    }

    #[test]
    fn within_1_ulp_of_std_and_0_exactly_below_the_smallest_normal_result() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // Every 97th f32 in [-120, 0]: about 11 million arguments, from
        // 1 down through the subnormal results to where `exp` rounds to 0.
        let x: Vec<f32> = (0..=120.0_f32.to_bits())
            .step_by(97)
            .map(|b| -f32::from_bits(b))
            .collect();
        let mut worst = (0_i64, 0.0_f32);
        let mut off = 0;
        for (&v, &e) in x.iter().zip(&exp_all(&x)) {
            let want = v.exp();
            if v < MIN_NORMAL_ARG {
                assert_eq!(e.to_bits(), 0, "exp({v}) = {e}");
                assert!(want < f32::MIN_POSITIVE, "exp({v}) = {want} is normal");
                continue;
            }
            assert!(want >= f32::MIN_POSITIVE, "exp({v}) = {want} is subnormal");
            let ulps = (e.to_bits() as i64 - want.to_bits() as i64).abs();
            if ulps > worst.0 {
                worst = (ulps, v);
            }
            off += (ulps > 0) as usize;
        }
        assert!(worst.0 <= 1, "{} ulp at {}", worst.0, worst.1);
        // 1.6% measured; a polynomial coefficient off by 1e-4 gives 2.7%.
        assert!(
            off * 50 <= x.len(),
            "{off} of {} results 1 ulp off",
            x.len()
        );
        // The threshold is the last argument whose result is normal.
        let below = f32::from_bits(MIN_NORMAL_ARG.to_bits() + 1);
        assert!(below.exp() < f32::MIN_POSITIVE && MIN_NORMAL_ARG.exp() >= f32::MIN_POSITIVE);
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
