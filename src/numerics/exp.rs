//! A branch-free polynomial `exp` for arguments `<= 0`, written so that a
//! loop over a slice compiles to vector code.
//!
//! Every exponential the losses take is of a non-positive number: `x - max`
//! in a softmax row, `-|x|` in the sigmoid family. On that domain the
//! function below needs no overflow handling, and its only special case,
//! underflow, is a select rather than a branch, so the compiler vectorizes a
//! loop that calls it (the `libm` `exp` is an opaque call per element).
//!
//! Method (Cephes' `expf`/`exp`): `x = n ln 2 + r` with `n = round(x / ln 2)`
//! and `|r| <= ln 2 / 2`, `ln 2` split into a high part exact in a product
//! with `n` and a low correction; `exp(r)` from a polynomial; `2^n` built in
//! the exponent bits. Error (measured by the tests over the whole domain
//! against the standard library): at most 2 ulp in `f32` and 2 ulp in `f64`
//! for normal results. Results that would be subnormal (`x < -87.34` in
//! `f32`, `x < -708.4` in `f64`) are 0: an absolute error below `1.2e-38`
//! (`2.3e-308`), which no loss can see next to the row's largest term, 1.
//!
//! The `FMA` parameter picks `mul_add` (one rounding, and one instruction
//! where the CPU has FMA) or a separate multiply and add (where it has not:
//! there `mul_add` would be a slow library call). The two round differently
//! in the last bit; both are within the bound above.

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn madd32<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn madd64<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The smallest `x` whose `exp` is a normal `f32` (`ln(2^-126)`).
pub(crate) const F32_MIN_ARG: f32 = -87.336_54;
/// The smallest `x` whose `exp` is a normal `f64` (`ln(2^-1022)`).
pub(crate) const F64_MIN_ARG: f64 = -708.396_418_532_264;

/// `exp(x)` for `x <= 0` (or NaN, which it returns); see the module docs.
#[inline(always)]
pub(crate) fn exp_nonpos_f32<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // A comparison, not `max`: NaN must pass through, not become the bound.
    let xc = if x < F32_MIN_ARG { F32_MIN_ARG } else { x };
    let z = madd32::<FMA>(xc, LOG2E, SHIFTER);
    let n = z - SHIFTER;
    let r = madd32::<FMA>(n, -LN2_HI, xc);
    let r = madd32::<FMA>(n, -LN2_LO, r);
    let mut p: f32 = 1.987_569_1e-4;
    p = madd32::<FMA>(p, r, 1.398_199_9e-3);
    p = madd32::<FMA>(p, r, 8.333_452e-3);
    p = madd32::<FMA>(p, r, 4.166_579_6e-2);
    p = madd32::<FMA>(p, r, 0.166_666_65);
    p = madd32::<FMA>(p, r, 0.5);
    let er = madd32::<FMA>(p, r * r, r) + 1.0;
    // n in [-126, 0]: the bits of 2^n are (n + 127) << 23.
    let n_bits = z.to_bits().wrapping_sub(SHIFTER.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let y = er * two_n;
    if x < F32_MIN_ARG {
        0.0
    } else {
        y
    }
}

/// `exp(x)` for `x <= 0` (or NaN, which it returns); see the module docs.
#[inline(always)]
pub(crate) fn exp_nonpos_f64<const FMA: bool>(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = 6.931_457_519_531_25e-1;
    const LN2_LO: f64 = 1.428_606_820_309_417_3e-6;
    let xc = if x < F64_MIN_ARG { F64_MIN_ARG } else { x };
    let z = madd64::<FMA>(xc, LOG2E, SHIFTER);
    let n = z - SHIFTER;
    let r = madd64::<FMA>(n, -LN2_HI, xc);
    let r = madd64::<FMA>(n, -LN2_LO, r);
    // Taylor to degree 13: the remainder is below 5e-18 for |r| <= ln2 / 2.
    const INV_FACT: [f64; 12] = [
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let mut p = INV_FACT[0];
    for &k in &INV_FACT[1..] {
        p = madd64::<FMA>(p, r, k);
    }
    let er = madd64::<FMA>(p, r * r, r) + 1.0;
    let n_bits = z.to_bits().wrapping_sub(SHIFTER.to_bits());
    let two_n = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    let y = er * two_n;
    if x < F64_MIN_ARG {
        0.0
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two positive floats.
    fn ulps32(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    fn ulps64(a: f64, b: f64) -> u64 {
        (a.to_bits() as i128 - b.to_bits() as i128).unsigned_abs() as u64
    }

    fn check_f32<const FMA: bool>() {
        let mut worst = (0, 0.0_f32);
        // Every 97th f32 in [F32_MIN_ARG, 0]: about 11 million arguments.
        let (lo, hi) = (0.0_f32.to_bits(), (-F32_MIN_ARG).to_bits());
        let mut bits = lo;
        while bits <= hi {
            let x = -f32::from_bits(bits).abs();
            let e = ulps32(exp_nonpos_f32::<FMA>(x), x.exp());
            if e > worst.0 {
                worst = (e, x);
            }
            bits += 97;
        }
        assert!(worst.0 <= 2, "f32 exp: {} ulp at {}", worst.0, worst.1);
    }

    fn check_f64<const FMA: bool>() {
        let mut worst = (0, 0.0_f64);
        let mut x = 0.0_f64;
        // A dense grid near 0 and a coarse one out to the underflow bound.
        while x > F64_MIN_ARG {
            let e = ulps64(exp_nonpos_f64::<FMA>(x), x.exp());
            if e > worst.0 {
                worst = (e, x);
            }
            x -= if x > -1.0 { 1.0e-6 } else { 3.1e-4 };
        }
        assert!(worst.0 <= 2, "f64 exp: {} ulp at {}", worst.0, worst.1);
    }

    #[test]
    fn f32_within_2_ulp_of_std_everywhere_on_the_domain() {
        check_f32::<false>();
        check_f32::<true>();
    }

    #[test]
    fn f64_within_2_ulp_of_std_everywhere_on_the_domain() {
        check_f64::<false>();
        check_f64::<true>();
    }

    #[test]
    fn edges_underflow_and_nan() {
        assert_eq!(exp_nonpos_f32::<false>(0.0), 1.0);
        assert_eq!(exp_nonpos_f64::<true>(0.0), 1.0);
        assert_eq!(exp_nonpos_f32::<true>(-1e30), 0.0);
        assert_eq!(exp_nonpos_f32::<true>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos_f64::<false>(-1e300), 0.0);
        assert!(exp_nonpos_f32::<true>(f32::NAN).is_nan());
        assert!(exp_nonpos_f64::<false>(f64::NAN).is_nan());
        // The smallest normal results are exact powers of two, not 0.
        let tiny = exp_nonpos_f32::<true>(F32_MIN_ARG);
        assert!(tiny >= f32::MIN_POSITIVE && tiny < 1.01 * f32::MIN_POSITIVE);
        let tiny = exp_nonpos_f64::<false>(F64_MIN_ARG);
        assert!(tiny >= f64::MIN_POSITIVE && tiny < 1.01 * f64::MIN_POSITIVE);
    }
}
