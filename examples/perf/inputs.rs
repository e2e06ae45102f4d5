//! Fixed-seed inputs: a xorshift64* generator and the arrays built from it.
//!
//! The distributions are simple enough to reproduce in any language
//! (`benches/compare_pytorch.py` draws the same ones with torch): logits
//! uniform in `[-4, 4)`, cosines uniform in `[-0.99, 0.99)`, labels uniform
//! in `0..C`, binary targets 1 with probability 0.1. Timings do not depend
//! on the exact values, only on their range.

use classloss::Float;
use ndarray::{Array1, Array2, Array3, Array4};

/// xorshift64* (Vigna, 2016): one word of state, fast, plenty for inputs.
pub struct XorShift(u64);

impl XorShift {
    /// A stream fixed by `seed` (any value, including 0).
    pub fn new(seed: u64) -> Self {
        // Spread the seed and keep the state nonzero.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`, 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `(n, c)` values uniform in `[lo, hi)`.
fn uniform<F: Float>(n: usize, c: usize, lo: f64, hi: f64, seed: u64) -> Array2<F> {
    let mut rng = XorShift::new(seed);
    Array2::from_shape_simple_fn((n, c), || F::lit(lo + (hi - lo) * rng.uniform()))
}

/// Logits uniform in `[-4, 4)`.
pub fn logits<F: Float>(n: usize, c: usize) -> Array2<F> {
    uniform(n, c, -4.0, 4.0, 1)
}

/// `(n, c, h, w)` logits uniform in `[-4, 4)`: the values of
/// `logits(n, c * h * w)`, each sample's `(c, h, w)` in standard order.
pub fn spatial_logits<F: Float>(n: usize, c: usize, (h, w): (usize, usize)) -> Array4<F> {
    logits(n, c * h * w)
        .into_shape_with_order((n, c, h, w))
        .expect("same length")
}

/// `(n, h, w)` class labels uniform in `0..c`: the values of `labels(n * h * w, c)`.
pub fn spatial_labels(n: usize, c: usize, (h, w): (usize, usize)) -> Array3<usize> {
    labels(n * h * w, c)
        .into_shape_with_order((n, h, w))
        .expect("same length")
}

/// Cosines uniform in `[-0.99, 0.99)`, away from the margin's ±1 edge cases.
pub fn cosines<F: Float>(n: usize, c: usize) -> Array2<F> {
    uniform(n, c, -0.99, 0.99, 2)
}

/// Class labels uniform in `0..c` (the modulo bias is irrelevant here).
pub fn labels(n: usize, c: usize) -> Array1<usize> {
    let mut rng = XorShift::new(3);
    Array1::from_shape_simple_fn(n, || (rng.next_u64() % c as u64) as usize)
}

/// Binary targets: 1 with probability 0.1, else 0 (sparse positives, as in
/// detection and multi-label data).
pub fn binary_targets<F: Float>(n: usize, c: usize) -> Array2<F> {
    let mut rng = XorShift::new(4);
    Array2::from_shape_simple_fn((n, c), || {
        if rng.uniform() < 0.1 {
            F::one()
        } else {
            F::zero()
        }
    })
}
