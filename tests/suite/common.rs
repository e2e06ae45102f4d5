//! Helpers of the test modules: the finite-difference gradient check,
//! deterministic random inputs, and the angular-margin losses' `f32`-vs-`f64`
//! comparison.

use ndarray::{ArrayD, IxDyn};

/// Checks `analytic` against central differences of `f` at `x` (any shape),
/// element by element and along random directions, and panics with the
/// checker's message on a mismatch.
pub fn assert_gradient(
    what: &str,
    f: impl Fn(&ArrayD<f64>) -> f64,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
) {
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let x = x.as_standard_layout().into_owned();
    let g = analytic.as_standard_layout().into_owned();
    let shape = x.raw_dim();
    let flat = |v: &[f64]| f(&ArrayD::from_shape_vec(shape.clone(), v.to_vec()).unwrap());
    if let Err(e) = classloss::gradcheck::GradCheck::default().check(
        flat,
        x.as_slice().unwrap(),
        g.as_slice().unwrap(),
    ) {
        panic!("{what}: {e}");
    }
}

/// A deterministic pseudo-random array in `[-scale, scale]`, for test inputs
/// away from ties.
pub fn random_array(shape: &[usize], seed: u64, scale: f64) -> ArrayD<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
    })
}

/// Deterministic labels in `0..classes`.
pub fn random_labels(shape: &[usize], classes: usize, seed: u64) -> ArrayD<usize> {
    random_array(shape, seed, 1.0)
        .mapv(|v| (((v + 1.0) / 2.0 * classes as f64) as usize).min(classes - 1))
}

/// Deterministic probability rows along axis 1 (each row sums to 1).
pub fn random_probs(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut a = random_array(shape, seed, 1.0).mapv(|v| v.exp());
    let sums = a.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    a /= &sums;
    a
}

/// Embeddings `(2, d)`, class weights `(3, d)` and labels `[0, 1]` where
/// sample 0 is at the angle `theta` from its class weight (which points
/// anywhere) and sample 1 is random; every entry is an `f32` value, so that
/// `f32` and `f64` runs see the same inputs. For the angular-margin losses'
/// precision near `theta = 0`.
pub fn near_parallel_batch(
    theta: f64,
    d: usize,
    seed: u64,
) -> (
    ndarray::Array2<f64>,
    ndarray::Array2<f64>,
    ndarray::Array1<usize>,
) {
    use ndarray::{Array1, Array2, Ix2};
    let mut w: Array2<f64> = random_array(&[3, d], seed, 3.0)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let mut e: Array2<f64> = random_array(&[2, d], seed + 1, 3.0)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let w0 = w.row(0).to_owned();
    let w_hat = &w0 / w0.dot(&w0).sqrt();
    let mut p: Array1<f64> = random_array(&[d], seed + 2, 1.0)
        .into_dimensionality()
        .unwrap();
    p = &p - &w_hat * p.dot(&w_hat);
    p /= p.dot(&p).sqrt();
    let length = 0.5 + 2.0 * (random_array(&[1], seed + 3, 1.0)[[0]]).abs();
    e.row_mut(0)
        .assign(&((&w_hat * theta.cos() + &p * theta.sin()) * length));
    e.mapv_inplace(|v| v as f32 as f64);
    w.mapv_inplace(|v| v as f32 as f64);
    (e, w, ndarray::array![0, 1])
}

/// The largest `|a - b| / (1 + |a|)` over the value and both gradients of
/// an angular-margin loss, `a` computed in `f64` and `b` in `f32` on the
/// same (`f32`-representable) inputs.
pub fn f32_vs_f64_error<L>(
    loss: &L,
    e: &ndarray::Array2<f64>,
    w: &ndarray::Array2<f64>,
    labels: &ndarray::Array1<usize>,
) -> f64
where
    for<'a> L: classloss::Differentiable<
            f64,
            Input<'a> = classloss::Embeddings<'a, f64>,
            Target<'a> = classloss::Labels<'a>,
            Grad = classloss::EmbeddingsGrad<f64>,
        > + classloss::Differentiable<
            f32,
            Input<'a> = classloss::Embeddings<'a, f32>,
            Target<'a> = classloss::Labels<'a>,
            Grad = classloss::EmbeddingsGrad<f32>,
        >,
{
    use classloss::{Differentiable, Embeddings};
    let (e32, w32) = (e.mapv(|v| v as f32), w.mapv(|v| v as f32));
    let (a, ga) = Differentiable::<f64>::forward_backward(
        loss,
        Embeddings {
            embeddings: e.view(),
            weight: w.view(),
        },
        labels.view(),
    )
    .unwrap();
    let (b, gb) = Differentiable::<f32>::forward_backward(
        loss,
        Embeddings {
            embeddings: e32.view(),
            weight: w32.view(),
        },
        labels.view(),
    )
    .unwrap();
    let grads64 = ga.embeddings.iter().chain(ga.weight.iter());
    let grads32 = gb.embeddings.iter().chain(gb.weight.iter());
    std::iter::once((a, b))
        .chain(grads64.copied().zip(grads32.copied()))
        .map(|(x, y)| (x - y as f64).abs() / (1.0 + x.abs()))
        .fold(0.0, f64::max)
}
