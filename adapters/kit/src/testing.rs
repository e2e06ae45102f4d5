//! Deterministic inputs the adapters' tests and benchmarks share (feature
//! `testing`).

use classloss::Float;
use ndarray::{Array, Array1, Array2, Axis, Dimension, ShapeBuilder};

/// Deterministic values in `[-scale, scale]` of the given shape (an LCG
/// from `seed`).
pub fn filled<D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    shape: Sh,
    seed: u64,
    scale: f64,
) -> Array<f64, D> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array::from_shape_fn(shape, |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
    })
}

/// The array in `F`.
pub fn to<F: Float, D: Dimension>(a: &Array<f64, D>) -> Array<F, D> {
    a.mapv(F::lit)
}

/// Probabilities of shape `(n, c)`, each row summing to 1.
pub fn probs(n: usize, c: usize, seed: u64) -> Array2<f64> {
    let mut p = filled((n, c), seed, 1.0).mapv(f64::abs);
    for mut row in p.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    p
}

/// The centers' gradient of the center loss from the features' gradient,
/// written out as the test's oracle: `d/dc_k = -sum_{i: y_i = k} dL/dx_i`.
pub fn centers_gradient<F: Float>(
    features_grad: &Array2<F>,
    labels: &[usize],
    classes: usize,
) -> Array2<F> {
    let mut gc = Array2::<F>::zeros((classes, features_grad.ncols()));
    for (i, &k) in labels.iter().enumerate() {
        let row = features_grad.index_axis(Axis(0), i).to_owned();
        let mut center = gc.row_mut(k);
        center -= &row;
    }
    gc
}

/// The benchmarks' inputs: fixed pseudo-random logits in `[-4, 4]` of
/// shape `(n, c)` and labels below `c` (xorshift).
pub fn bench_inputs(n: usize, c: usize) -> (Array2<f32>, Array1<i64>) {
    let mut s = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x = Array2::from_shape_simple_fn((n, c), || {
        ((next() >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
    });
    let y = Array1::from_shape_simple_fn(n, || (next() % c as u64) as i64);
    (x, y)
}
