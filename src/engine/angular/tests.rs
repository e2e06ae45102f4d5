//! The margin's numerics near |cos| = 1, the rounding of parallel rows,
//! and the gradient's power-of-two scale.

use super::Spec;
use super::margin::{PARALLEL_EPS, Perp, sin_from_cos};
use super::norms::grad_shift;
use crate::numerics::l2_norm;
use crate::{Float, Reduction};
use ndarray::{Array1, array};

/// A linear congruential generator's next value in `[0, 1)`.
pub(crate) fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// The largest residual norm, in units of eps, of rows exactly parallel
/// or antiparallel (`e = k w` computed exactly: small integers) or
/// parallel up to the rounding of `k w` (real entries).
fn worst_parallel_residual<F: Float>(integers: bool) -> f64 {
    let mut seed = 7;
    let mut worst: f64 = 0.0;
    for d in 1..40 {
        for _ in 0..100 {
            let w: Array1<F> = (0..d)
                .map(|_| {
                    let x = lcg(&mut seed) * 2000.0 - 1000.0;
                    F::lit(if integers { x.round() } else { x / 100.0 })
                })
                .collect();
            let k = lcg(&mut seed) * 30.0 + 0.01;
            let k = if integers { k.round() + 1.0 } else { k };
            let sign = if lcg(&mut seed) < 0.5 { -1.0 } else { 1.0 };
            let e = w.mapv(|v| v * F::lit(sign * k));
            let (ne, nw) = (l2_norm(e.iter().copied()), l2_norm(w.iter().copied()));
            if nw == F::zero() {
                continue;
            }
            for p in [
                Perp::new(e.view(), ne, w.view(), nw),
                Perp::new(w.view(), nw, e.view(), ne),
            ] {
                worst = worst.max((p.norm() / F::epsilon()).as_f64());
            }
        }
    }
    worst
}

#[test]
fn the_parallel_threshold_is_above_the_rounding_of_parallel_rows() {
    // Measured at about 0.9 eps; the threshold keeps a factor 2 at least.
    for worst in [
        worst_parallel_residual::<f32>(true),
        worst_parallel_residual::<f32>(false),
        worst_parallel_residual::<f64>(true),
        worst_parallel_residual::<f64>(false),
    ] {
        assert!(worst > 0.0 && worst < PARALLEL_EPS / 2.0, "{worst}");
    }
}

#[test]
fn the_residual_gives_sin_theta_where_the_cosine_has_lost_it() {
    // An f32 pair 3e-4 rad apart: the f32 cosine rounds to 1 (its
    // sqrt(1 - c^2) is 0), the residual keeps the angle to ~eps / theta.
    let theta = 3e-4_f64;
    let w = array![1.0_f64, 0.0, 0.0];
    let e = array![theta.cos(), theta.sin() * 0.6, theta.sin() * 0.8];
    let (w32, e32) = (w.mapv(|v| v as f32), e.mapv(|v| v as f32));
    let exact = {
        let (e, w) = (e32.mapv(f64::from), w32.mapv(f64::from));
        let c = e.dot(&w) / e.dot(&e).sqrt();
        (1.0 - c * c).sqrt()
    };
    let n = |x: &Array1<f32>| l2_norm(x.iter().copied());
    let p = Perp::new(e32.view(), n(&e32), w32.view(), n(&w32));
    assert_eq!(sin_from_cos(p.cos), 0.0);
    let sin = p.norm() as f64;
    assert!(
        (sin - exact).abs() < 4.0 * f32::EPSILON as f64,
        "{sin} vs {exact}"
    );
}

#[test]
fn grad_shift_is_the_smallest_power_of_two_within_the_bound() {
    // The bound 4 f s n max(m1, 1)^2 (f the reduction's factor) must come
    // within MAX / 16 once divided by 2^t. Cases at 0.9 and 1.1 times a
    // power of two of the room, so that a bound off by any factor above
    // 1.25 gives another t.
    let spec = |reduction, scale, m1| Spec {
        reduction,
        scale,
        m1,
        m2: 0.0,
        m3: 0.0,
        easy_margin: false,
    };
    let expected = |room: f64, reduction, s: f64, m1: f64, n: usize| {
        let factor = if reduction == Reduction::Mean {
            1.0 / n as f64
        } else {
            1.0
        };
        let bound = 4.0 * factor * s * n as f64 * m1.max(1.0).powi(2);
        let mut t = 0;
        while bound / 2f64.powi(t) > room {
            t += 1;
        }
        t
    };
    let room32 = f64::from(f32::MAX) / 16.0;
    let room64 = f64::MAX / 16.0;
    for (reduction, s, m1, n) in [
        (Reduction::Sum, 64.0, 1.0, 10),
        (Reduction::Sum, 0.9 * 8.0 * room32 / 16.0, 1.0, 4),
        (Reduction::Sum, 1.1 * 8.0 * room32 / 16.0, 1.0, 4),
        (Reduction::Mean, 0.9 * 4.0 * room32 / 4.0, 1.0, 5),
        (
            Reduction::Sum,
            0.9 * 64.0 * room32 / (4.0 * 3.0 * 6.25),
            2.5,
            3,
        ),
    ] {
        let want = expected(room32, reduction, s, m1, n);
        assert_eq!(
            grad_shift::<f32>(&spec(reduction, s, m1), n, 1.0),
            want,
            "{s:e} {m1} {n}"
        );
    }
    let s = 0.9 * 16.0 * room64 / (4.0 * 2.0);
    assert_eq!(grad_shift::<f64>(&spec(Reduction::Sum, s, 1.0), 2, 1.0), 4);
    assert_eq!(expected(room64, Reduction::Sum, s, 1.0, 2), 4);
    // A bound beyond f64 (8e308 = 2^1026.15) still gives its t: the
    // smallest with 2^(1026.15 - t) within the room 2^1020 (it was
    // i32::MAX); and `extra` multiplies the bound.
    assert_eq!(
        grad_shift::<f64>(&spec(Reduction::Sum, 1e308, 1.0), 2, 1.0),
        7
    );
    assert_eq!(
        grad_shift::<f32>(&spec(Reduction::Sum, 64.0, 1.0), 10, 0.9 * room32 / 2560.0),
        0
    );
    assert_eq!(
        grad_shift::<f32>(&spec(Reduction::Sum, 64.0, 1.0), 10, 1.1 * room32 / 2560.0),
        1
    );
}
