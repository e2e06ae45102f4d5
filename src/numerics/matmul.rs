//! Matrix products, on the `gemm` crate.
//!
//! The fused heads spend nearly all their time in three products per
//! chunk (the logits, `d hidden`, `d weight`). `gemm` was chosen over
//! ndarray's `matrixmultiply` and a BLAS by measurement on the head's own
//! shapes (`benches/compare_linear_ce.py`, README "Performance"): it is as
//! fast as `matrixmultiply` on one thread, faster on two, and needs no
//! system library.
//!
//! With the `rayon` feature a product runs on the current rayon pool's
//! threads. `gemm` splits the output into blocks and never the inner
//! dimension, so every output element is summed in the same order on any
//! number of threads: the results do not depend on the thread count (a
//! test checks it, bit for bit).

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::Float;

/// How many threads a product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// The calling thread only (a product inside a parallel loop).
    One,
    /// The current rayon pool (the calling thread only without `rayon`).
    Pool,
}

/// `c = alpha a b + beta c` for `a (m, k)`, `b (k, n)`, `c (m, n)` of any
/// strides. With `beta == 0`, `c` is overwritten and its contents (NaN
/// included) are never read.
///
/// # Panics
/// If the shapes do not agree: callers check their inputs first.
pub(crate) fn mat_mul<F: Float>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    c: &mut ArrayViewMut2<'_, F>,
    threads: Threads,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "mat_mul: ({m}, {k}) x ({k2}, {n}) into {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta == F::zero() {
            c.fill(F::zero());
        } else {
            *c *= beta;
        }
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let read_dst = beta != F::zero();
    // SAFETY: the pointers and strides come from live ndarray views of the
    // asserted shapes, `c` is borrowed mutably and cannot alias `a` or `b`,
    // and `F` is `f32` or `f64`, which `gemm` implements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            read_dst,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            // gemm's `alpha` scales the destination and `beta` the product.
            beta,
            alpha,
            false,
            false,
            false,
            parallelism(threads),
        );
    }
}

fn parallelism(threads: Threads) -> gemm::Parallelism {
    match threads {
        Threads::One => gemm::Parallelism::None,
        #[cfg(feature = "rayon")]
        Threads::Pool => match rayon::current_num_threads() {
            0 | 1 => gemm::Parallelism::None,
            n => gemm::Parallelism::Rayon(n),
        },
        #[cfg(not(feature = "rayon"))]
        Threads::Pool => gemm::Parallelism::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    fn filled(m: usize, n: usize, seed: u64) -> Array2<f64> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_simple_fn((m, n), || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
    }

    fn naive(
        alpha: f64,
        a: ArrayView2<f64>,
        b: ArrayView2<f64>,
        beta: f64,
        c: &Array2<f64>,
    ) -> Array2<f64> {
        Array2::from_shape_fn(c.dim(), |(i, j)| {
            alpha * (0..a.ncols()).map(|l| a[[i, l]] * b[[l, j]]).sum::<f64>() + beta * c[[i, j]]
        })
    }

    #[test]
    fn products_of_any_strides_match_the_definition() {
        let a = filled(7, 5, 1);
        let b = filled(9, 5, 2); // used transposed: (5, 9)
        let c0 = filled(7, 9, 3);
        for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
            let mut c = c0.clone();
            mat_mul(
                alpha,
                a.view(),
                b.t(),
                beta,
                &mut c.view_mut(),
                Threads::One,
            );
            let want = naive(alpha, a.view(), b.t(), beta, &c0);
            assert!(
                (&c - &want).iter().all(|d| d.abs() < 1e-14),
                "{alpha} {beta}"
            );
        }
        // Reversed and sliced views.
        let mut c = c0.clone();
        let a_rev = a.slice(s![..;-1, ..]);
        mat_mul(1.0, a_rev, b.t(), 0.0, &mut c.view_mut(), Threads::Pool);
        let want = naive(1.0, a_rev, b.t(), 0.0, &c0);
        assert!((&c - &want).iter().all(|d| d.abs() < 1e-14));
    }

    #[test]
    fn beta_zero_never_reads_the_destination() {
        let a = filled(3, 4, 4);
        let b = filled(4, 2, 5);
        let mut c = Array2::from_elem((3, 2), f64::NAN);
        mat_mul(
            1.0,
            a.view(),
            b.view(),
            0.0,
            &mut c.view_mut(),
            Threads::One,
        );
        assert!(c.iter().all(|v| v.is_finite()));
        let mut empty = Array2::from_elem((3, 2), f64::NAN);
        mat_mul(
            1.0,
            a.slice(s![.., ..0]),
            b.slice(s![..0, ..]),
            0.0,
            &mut empty.view_mut(),
            Threads::One,
        );
        assert!(empty.iter().all(|&v| v == 0.0));
    }

    #[cfg(feature = "rayon")]
    #[test]
    fn the_thread_count_does_not_change_a_bit() {
        let a = filled(300, 700, 6);
        let b = filled(700, 500, 7);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut c = Array2::zeros((300, 500));
                mat_mul(
                    1.0,
                    a.view(),
                    b.view(),
                    0.0,
                    &mut c.view_mut(),
                    Threads::Pool,
                );
                c
            })
        };
        let one = run(1);
        for threads in [2, 3, 4] {
            assert_eq!(one, run(threads), "{threads} threads");
        }
    }
}
