//! A branch-free polynomial `exp` for arguments `<= 0` (and `ln(1 + e)` on
//! `[0, 1]`), written so that a loop over a slice compiles to vector code.
//!
//! Every exponential the losses take is of a non-positive number: `x - max`
//! in a softmax row, `-|x|` in the sigmoid family. On that domain the
//! function below needs no overflow handling, and its only special case,
//! underflow, is a clamp or a select rather than a branch, so the compiler
//! vectorizes a loop that calls it (the `libm` `exp` is an opaque call per element).
//!
//! Method: `x = n ln 2 + r` with `n = round(x / ln 2)` and
//! `|r| <= ln 2 / 2` (Cody and Waite's reduction, as Cephes' `expf`/`exp`:
//! `ln 2` split into a high part exact in a product with `n` and a low
//! correction); `exp(r) = 1 + r + r^2 q(r)` from a Remez fit in Horner form
//! (six fused multiply-adds in `f32`, eleven in `f64`); `2^n` built in the
//! exponent bits. Error, measured by the tests over the whole domain
//! against the standard library (every 97th `f32` argument, a dense grid of
//! `f64` ones): at most 1 ulp in `f32` and in `f64`, subnormal results
//! included, with and without fused multiply-adds. The polynomials
//! themselves are within `3.1e-9` (`f32`) and `7.7e-18` (`f64`) of
//! `exp(r)`, relative: the rounding of the steps is all the error there is.
//!
//! With `SUBNORMAL = true`, `2^n` is built as `2^(n + 64)` (`2^(n + 128)`
//! in `f64`), a normal number, and the product scaled by `2^-64` after, so
//! that subnormal results (a sigmoid of `-88` is one in `f32`) round once,
//! correctly; the argument is clamped where the result is 0.
//!
//! With `SUBNORMAL = false` (the softmax rows' form) `2^n` is one factor
//! whose bits are the low bits of the rounding sum itself (the exponent
//! bias is added with the rounding constant), and the argument is clamped
//! where that factor is `+0`: results below the smallest normal number
//! (`1.2e-38` in `f32`, `2.2e-308` in `f64`) are 0, or, down to a factor
//! `sqrt 2` below it, the same correctly rounded subnormal as the full
//! form's. Two
//! operations fewer than the full form's select and integer arithmetic, and
//! no subnormal arithmetic in the rows' later passes, which is slow on many
//! CPUs (a row of ArcFace logits with scale 64 has many such terms); a term
//! below `1e-38` is invisible next to the row's largest exponential, 1.
//!
//! The `FMA` parameter picks `mul_add` (one rounding, and one instruction
//! where the CPU has FMA) or a separate multiply and add (where it has not:
//! there `mul_add` would be a slow library call). The two round differently
//! in the last bit; both are within the bound above.

/// `x`, or `lo` where `x` is below it. A comparison, not `max`: NaN must
/// pass through, not become the bound. In the exponentials it keeps the
/// reduction's input in range (`n` fits the exponent bits; below `lo` the
/// result is replaced by 0 at the end); elsewhere it is `max(0, a)` that
/// keeps NaN (contrastive's hinges).
#[inline(always)]
pub(crate) fn clamp_below<T: PartialOrd>(x: T, lo: T) -> T {
    if x < lo { lo } else { x }
}

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn madd32<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn madd64<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The full form's clamp in `f32`, well below `ln(2^-150) = -103.97`,
/// under which `exp` rounds to 0: every result from here down is 0
/// (`n = -159`).
const F32_ZERO_ARG: f32 = -110.0;
/// The full form's clamp in `f64`, well below `ln(2^-1075) = -745.13`
/// (`n = -1140`).
const F64_ZERO_ARG: f64 = -790.0;
/// The flushing form's clamp in `f32`: here `round(x / ln 2) = -127`, whose
/// power-of-two factor built in the exponent bits is `+0`.
const F32_FLUSH_ARG: f32 = -88.0;
/// The flushing form's clamp in `f64`: `round(x / ln 2) = -1023`.
const F64_FLUSH_ARG: f64 = -709.0;

/// `exp(r)` for `|r| <= ln 2 / 2` in `f32`: `1 + r + r^2 q(r)` in Horner
/// form, `q` of degree 4 fitted to the relative error by Remez exchange
/// (constant and linear terms held at 1, so that `exp(0) = 1` exactly and
/// tiny `r` keep every bit). Relative error of the polynomial itself
/// `3.1e-9`, a twentieth of an `f32` ulp; six fused multiply-adds, against
/// eight operations for Cephes' degree-7 form.
#[inline(always)]
fn exp_reduced_f32<const FMA: bool>(r: f32) -> f32 {
    let mut p: f32 = 1.381_461_4e-3;
    p = madd32::<FMA>(p, r, 8.368_71e-3);
    p = madd32::<FMA>(p, r, 4.166_838_7e-2);
    p = madd32::<FMA>(p, r, 0.166_665_21);
    p = madd32::<FMA>(p, r, 0.499_999_93);
    p = madd32::<FMA>(p, r, 1.0);
    madd32::<FMA>(p, r, 1.0)
}

/// `exp(r)` for `|r| <= ln 2 / 2` in `f64`: as [`exp_reduced_f32`], `q` of
/// degree 9; relative error of the polynomial `7.7e-18`, a fourteenth of an
/// `f64` ulp; eleven fused multiply-adds (Taylor to degree 13 took fifteen
/// operations).
#[inline(always)]
fn exp_reduced_f64<const FMA: bool>(r: f64) -> f64 {
    const Q: [f64; 10] = [
        2.511_003_829_672_724_3e-8,
        2.763_264_067_543_023_6e-7,
        2.755_724_236_744_966e-6,
        2.480_148_736_602_567_6e-5,
        1.984_126_988_656_380_2e-4,
        1.388_888_894_778_552_3e-3,
        8.333_333_333_322_216e-3,
        4.166_666_666_652_210_6e-2,
        0.166_666_666_666_666_75,
        0.500_000_000_000_001,
    ];
    let mut p = Q[0];
    for &k in &Q[1..] {
        p = madd64::<FMA>(p, r, k);
    }
    p = madd64::<FMA>(p, r, 1.0);
    madd64::<FMA>(p, r, 1.0)
}

/// `exp(x)` for `x <= 0` (or NaN, which it returns); see the module docs.
#[inline(always)]
pub(crate) fn exp_nonpos_f32<const FMA: bool, const SUBNORMAL: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa
    // bits, here `n + BIAS` (at most 9 bits, which the shift keeps).
    const SHIFTER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // The full form: `2^(n + 64)` (normal for `n >= -190`, which the clamp
    // ensures) times `2^-64`, so that a subnormal result rounds once. The
    // flushing form: `2^n` itself, `+0` for `n = -127`, which the clamp
    // gives every smaller argument.
    let (bias, clamp) = if SUBNORMAL {
        (127.0 + 64.0, F32_ZERO_ARG)
    } else {
        (127.0, F32_FLUSH_ARG)
    };
    let biased = SHIFTER + bias;
    let xc = clamp_below(x, clamp);
    let z = madd32::<FMA>(xc, LOG2E, biased);
    let n = z - biased;
    let r = madd32::<FMA>(n, -LN2_HI, xc);
    let r = madd32::<FMA>(n, -LN2_LO, r);
    let y = exp_reduced_f32::<FMA>(r) * f32::from_bits(z.to_bits() << 23);
    if SUBNORMAL {
        y * f32::from_bits((127 - 64) << 23)
    } else {
        y
    }
}

/// `exp(x)` for `x <= 0` (or NaN, which it returns); see the module docs.
#[inline(always)]
pub(crate) fn exp_nonpos_f64<const FMA: bool, const SUBNORMAL: bool>(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52; `n + BIAS` takes at most 12 bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = 6.931_457_519_531_25e-1;
    const LN2_LO: f64 = 1.428_606_820_309_417_3e-6;
    // As in `exp_nonpos_f32`, with `2^(n + 128)` (normal for `n >= -1150`)
    // times `2^-128` in the full form.
    let (bias, clamp) = if SUBNORMAL {
        (1023.0 + 128.0, F64_ZERO_ARG)
    } else {
        (1023.0, F64_FLUSH_ARG)
    };
    let biased = SHIFTER + bias;
    let xc = clamp_below(x, clamp);
    let z = madd64::<FMA>(xc, LOG2E, biased);
    let n = z - biased;
    let r = madd64::<FMA>(n, -LN2_HI, xc);
    let r = madd64::<FMA>(n, -LN2_LO, r);
    let y = exp_reduced_f64::<FMA>(r) * f64::from_bits(z.to_bits() << 52);
    if SUBNORMAL {
        y * f64::from_bits((1023 - 128) << 52)
    } else {
        y
    }
}

/// `ln(1 + e)` for `e` in `[0, 1]` (the softplus of `-|x|`, from
/// `e = exp(-|x|)`), within 2 ulp of the standard library's `ln_1p`
/// (tested, with and without fused multiply-adds).
///
/// `ln(1 + e) = e + e^2 q(e)`, `q` of degree 7 fitted to the result's
/// relative error over `[0, 1]` by iterated reweighted least squares
/// (Lawson): `3.3e-8` relative, about half an ulp, before rounding. With
/// fused multiply-adds, 2% of arguments (every 7th `f32` of `(0, 1]`,
/// against `f64` rounded once) are 1 ulp from the correctly rounded
/// result and none further; without, one in a million is 2 ulp. The
/// `e^2 q` term is at most a third of the result, so its rounding counts
/// a third; tiny `e` keep every bit (`e + e^2 q` is `e`). Nine multiplies
/// and adds, no division: the `atanh` form (`2 atanh(e / (2 + e))`, as
/// in `f64` below) took one, and a loop of it waited on the divider (on
/// a Zen 4 machine, a binary cross-entropy call with the division
/// replaced by a product ran 0.81-0.85x the time). Degree 8 (`5.1e-9`,
/// 0.5% of arguments 1 ulp off) took a multiply-add more; the binary
/// losses' element loops are bound by those.
#[inline(always)]
pub(crate) fn ln1p_unit_f32<const FMA: bool>(e: f32) -> f32 {
    const Q: [f32; 8] = [
        0.005_364_739,
        -0.030_065_45,
        0.079_203_986,
        -0.137_537_55,
        0.191_536_34,
        -0.248_571_57,
        0.333_213_2,
        -0.499_996_48,
    ];
    let mut q = Q[0];
    for &k in &Q[1..] {
        q = madd32::<FMA>(q, e, k);
    }
    madd32::<FMA>(e * e, q, e)
}

/// `ln(1 + e)` for `e` in `[0, 1]`; see [`ln1p_unit_f32`].
#[inline(always)]
pub(crate) fn ln1p_unit_f64<const FMA: bool>(e: f64) -> f64 {
    let s = e / (2.0 + e);
    let z = s * s;
    // 1 / (2k + 1) for k = 15 down to 1: the remainder, z^16 / 33 + ... with
    // z <= 1/9, is below 2e-17 relative (a sixth of an ulp); the last term
    // kept, z^15 / 31, is up to 1.6e-16 (an ulp), so none is spare.
    let mut p: f64 = 1.0 / 31.0;
    let mut k = 29.0_f64;
    while k >= 3.0 {
        p = madd64::<FMA>(p, z, 1.0 / k);
        k -= 2.0;
    }
    let two_s = s + s;
    madd64::<FMA>(two_s * z, p, two_s)
}

/// `ln(x)` for a positive normal `x` (NaN returns NaN; 0, subnormals,
/// negatives and infinity are outside the domain), within 2 ulp of the
/// standard library's.
///
/// `x = 2^k m` with `m` in `[sqrt(1/2), sqrt 2)`, from the bits (the
/// bits of `sqrt(1/2)` subtracted, so that `k` is the shifted difference
/// and `m` its low bits over `sqrt(1/2)`'s exponent); `ln m = 2 atanh(s)`
/// with `s = (m - 1) / (m + 1)` in `[-0.172, 0.172]`, an odd series in `s`
/// with terms falling by 34x each (five in `f32`, ten in `f64`); `k ln 2`
/// added in two parts, the high one exact in the product.
#[inline(always)]
pub(crate) fn ln_pos_f32<const FMA: bool>(x: f32) -> f32 {
    const SQRT_HALF_BITS: u32 = 0x3f35_04f3;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let adj = x.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let k = (adj as i32 >> 23) as f32;
    let m = f32::from_bits((adj & 0x007f_ffff) + SQRT_HALF_BITS);
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    // The remainder, z^5 / 11 + ... with z <= 0.0295, is below 3e-9
    // relative: a twentieth of an ulp.
    let mut p: f32 = 1.0 / 9.0;
    for k in [7.0_f32, 5.0, 3.0] {
        p = madd32::<FMA>(p, z, 1.0 / k);
    }
    let two_s = s + s;
    let ln_m = madd32::<FMA>(two_s * z, p, two_s);
    let y = madd32::<FMA>(k, LN2_HI, madd32::<FMA>(k, LN2_LO, ln_m));
    if x.is_nan() { x } else { y }
}

/// `ln(x)` for a positive normal `x`; see [`ln_pos_f32`].
#[inline(always)]
pub(crate) fn ln_pos_f64<const FMA: bool>(x: f64) -> f64 {
    const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;
    const LN2_HI: f64 = 6.931_457_519_531_25e-1;
    const LN2_LO: f64 = 1.428_606_820_309_417_3e-6;
    let adj = x.to_bits().wrapping_sub(SQRT_HALF_BITS);
    let k = (adj as i64 >> 52) as f64;
    let m = f64::from_bits((adj & 0x000f_ffff_ffff_ffff) + SQRT_HALF_BITS);
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    // The remainder, z^10 / 21 + ... with z <= 0.0295, is below 3e-17
    // relative: a quarter of an ulp.
    let mut p: f64 = 1.0 / 19.0;
    let mut k2 = 17.0_f64;
    while k2 >= 3.0 {
        p = madd64::<FMA>(p, z, 1.0 / k2);
        k2 -= 2.0;
    }
    let two_s = s + s;
    let ln_m = madd64::<FMA>(two_s * z, p, two_s);
    let y = madd64::<FMA>(k, LN2_HI, madd64::<FMA>(k, LN2_LO, ln_m));
    if x.is_nan() { x } else { y }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below this, `exp` is subnormal in `f32` (just above `ln(2^-126)`).
    const F32_MIN_NORMAL_ARG: f32 = -87.336_54;
    /// Below this, `exp` is subnormal in `f64` (just above `ln(2^-1022)`).
    const F64_MIN_NORMAL_ARG: f64 = -708.396_418_532_264;

    /// Distance in units in the last place between two positive floats.
    fn ulps32(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    fn ulps64(a: f64, b: f64) -> u64 {
        (a.to_bits() as i128 - b.to_bits() as i128).unsigned_abs() as u64
    }

    fn check_f32<const FMA: bool>() {
        let mut worst = (0, 0.0_f32);
        // Every 97th f32 in [-120, 0] (to below the clamp, through the
        // range where the result rounds to 0): about 11 million arguments.
        let (lo, hi) = (0.0_f32.to_bits(), 120.0_f32.to_bits());
        let mut bits = lo;
        while bits <= hi {
            let x = -f32::from_bits(bits).abs();
            let e = ulps32(exp_nonpos_f32::<FMA, true>(x), x.exp());
            if e > worst.0 {
                worst = (e, x);
            }
            bits += 97;
        }
        assert!(worst.0 <= 1, "f32 exp: {} ulp at {}", worst.0, worst.1);
    }

    fn check_f64<const FMA: bool>() {
        let mut worst = (0, 0.0_f64);
        let mut x = 0.0_f64;
        // A dense grid near 0 and a coarse one out to the underflow bound.
        while x > -800.0 {
            let e = ulps64(exp_nonpos_f64::<FMA, true>(x), x.exp());
            if e > worst.0 {
                worst = (e, x);
            }
            x -= if x > -1.0 { 1.0e-6 } else { 3.1e-4 };
        }
        assert!(worst.0 <= 1, "f64 exp: {} ulp at {}", worst.0, worst.1);
    }

    #[test]
    fn f32_within_1_ulp_of_std_everywhere_on_the_domain() {
        check_f32::<false>();
        check_f32::<true>();
    }

    #[test]
    fn f64_within_1_ulp_of_std_everywhere_on_the_domain() {
        check_f64::<false>();
        check_f64::<true>();
    }

    #[test]
    fn ln1p_within_2_ulp_of_std_on_the_unit_interval() {
        let mut worst32 = (0, 0.0_f32);
        let mut worst64 = (0, 0.0_f64);
        let mut e = 1.0_f64;
        while e > 1e-300 {
            for fma in [false, true] {
                let (a32, a64) = if fma {
                    (ln1p_unit_f32::<true>(e as f32), ln1p_unit_f64::<true>(e))
                } else {
                    (ln1p_unit_f32::<false>(e as f32), ln1p_unit_f64::<false>(e))
                };
                if e > 1e-37 {
                    let u = ulps32(a32, (e as f32).ln_1p());
                    if u > worst32.0 {
                        worst32 = (u, e as f32);
                    }
                }
                let u = ulps64(a64, e.ln_1p());
                if u > worst64.0 {
                    worst64 = (u, e);
                }
            }
            e *= 0.999_9;
        }
        assert!(
            worst32.0 <= 2,
            "f32 ln1p: {} ulp at {}",
            worst32.0,
            worst32.1
        );
        assert!(
            worst64.0 <= 2,
            "f64 ln1p: {} ulp at {}",
            worst64.0,
            worst64.1
        );
        assert_eq!(ln1p_unit_f32::<true>(0.0), 0.0);
    }

    /// The flushing form equals the full one wherever it is not 0, is 0
    /// only where the full one is below the smallest normal number, and is
    /// 0 below the flush clamp, for every fused/unfused combination.
    fn check_flushing_f32<const FMA: bool>() {
        let mut x = 0.0_f32;
        while x > -200.0 {
            let (full, flushed) = (
                exp_nonpos_f32::<FMA, true>(x),
                exp_nonpos_f32::<FMA, false>(x),
            );
            if flushed != 0.0 || x >= F32_MIN_NORMAL_ARG {
                assert_eq!(full, flushed, "{x}");
            } else {
                assert!(full < f32::MIN_POSITIVE, "{x}");
            }
            if x <= F32_FLUSH_ARG {
                assert_eq!(flushed.to_bits(), 0, "{x}");
            }
            x -= if (-89.0..-87.0).contains(&x) {
                1.0e-3
            } else {
                0.013
            };
        }
    }

    fn check_flushing_f64<const FMA: bool>() {
        let mut x = -700.0_f64;
        while x > -800.0 {
            let (full, flushed) = (
                exp_nonpos_f64::<FMA, true>(x),
                exp_nonpos_f64::<FMA, false>(x),
            );
            if flushed != 0.0 || x >= F64_MIN_NORMAL_ARG {
                assert_eq!(full, flushed, "{x}");
            } else {
                assert!(full < f64::MIN_POSITIVE, "{x}");
            }
            if x <= F64_FLUSH_ARG {
                assert_eq!(flushed.to_bits(), 0, "{x}");
            }
            x -= 1.0e-3;
        }
    }

    #[test]
    fn flushing_form_agrees_on_normal_results_and_flushes_the_rest() {
        check_flushing_f32::<false>();
        check_flushing_f32::<true>();
        check_flushing_f64::<false>();
        check_flushing_f64::<true>();
        for x in [f32::NEG_INFINITY, -1e30, f32::MIN] {
            assert_eq!(exp_nonpos_f32::<true, false>(x).to_bits(), 0);
        }
        for x in [f64::NEG_INFINITY, -1e300, f64::MIN] {
            assert_eq!(exp_nonpos_f64::<false, false>(x).to_bits(), 0);
        }
        assert!(exp_nonpos_f64::<false, false>(F64_MIN_NORMAL_ARG) >= f64::MIN_POSITIVE);
        assert!(exp_nonpos_f32::<false, false>(F32_MIN_NORMAL_ARG) >= f32::MIN_POSITIVE);
        assert!(exp_nonpos_f32::<true, false>(f32::NAN).is_nan());
        assert!(exp_nonpos_f64::<true, false>(f64::NAN).is_nan());
        assert_eq!(exp_nonpos_f32::<true, false>(0.0), 1.0);
        assert_eq!(exp_nonpos_f64::<false, false>(0.0), 1.0);
    }

    #[test]
    fn edges_underflow_and_nan() {
        assert_eq!(exp_nonpos_f32::<false, true>(0.0), 1.0);
        assert_eq!(exp_nonpos_f64::<true, true>(0.0), 1.0);
        assert_eq!(exp_nonpos_f32::<true, true>(-1e30), 0.0);
        assert_eq!(exp_nonpos_f32::<true, true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos_f64::<false, true>(-1e300), 0.0);
        assert!(exp_nonpos_f32::<true, true>(f32::NAN).is_nan());
        assert!(exp_nonpos_f64::<false, true>(f64::NAN).is_nan());
        // Subnormal results keep their digits down to the last bits.
        assert_eq!(exp_nonpos_f32::<true, true>(-88.0), (-88.0_f32).exp());
        assert_eq!(exp_nonpos_f64::<false, true>(-720.0), (-720.0_f64).exp());
        assert_eq!(exp_nonpos_f32::<true, true>(-104.0), 0.0);
        assert_eq!(exp_nonpos_f64::<false, true>(-746.0), 0.0);
    }

    #[test]
    fn ln_within_2_ulp_of_std_on_positive_normals() {
        fn f32_worst<const FMA: bool>() -> (u32, f32) {
            let mut worst = (0, 0.0_f32);
            // Every 61st f32 from the smallest normal to the largest.
            let mut bits = f32::MIN_POSITIVE.to_bits();
            while bits < f32::MAX.to_bits() {
                let x = f32::from_bits(bits);
                let e = (ln_pos_f32::<FMA>(x).to_bits() as i64 - x.ln().to_bits() as i64)
                    .unsigned_abs() as u32;
                if e > worst.0 {
                    worst = (e, x);
                }
                bits += 61;
            }
            worst
        }
        fn f64_worst<const FMA: bool>() -> (u64, f64) {
            let mut worst = (0, 0.0_f64);
            let mut x = f64::MIN_POSITIVE;
            while x < f64::MAX / 1.001 {
                for y in [x, 1.0 + (x - 1.0) * 1e-3, 1.0 - 1e-3 * x.min(1.0)] {
                    let e = ulps64(ln_pos_f64::<FMA>(y), y.ln());
                    if e > worst.0 {
                        worst = (e, y);
                    }
                }
                x *= 1.000_7;
            }
            worst
        }
        for (worst, name) in [
            (f32_worst::<false>(), "f32"),
            (f32_worst::<true>(), "f32 fma"),
        ] {
            assert!(worst.0 <= 2, "{name} ln: {} ulp at {}", worst.0, worst.1);
        }
        for (worst, name) in [
            (f64_worst::<false>(), "f64"),
            (f64_worst::<true>(), "f64 fma"),
        ] {
            assert!(worst.0 <= 2, "{name} ln: {} ulp at {}", worst.0, worst.1);
        }
        assert_eq!(ln_pos_f32::<true>(1.0), 0.0);
        assert_eq!(ln_pos_f64::<false>(1.0), 0.0);
        assert!(ln_pos_f32::<true>(f32::NAN).is_nan());
        assert!(ln_pos_f64::<true>(f64::NAN).is_nan());
    }
}
