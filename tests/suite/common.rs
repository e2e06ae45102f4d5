//! Helpers of the test modules: deterministic random inputs, and the
//! angular-margin losses' cosines, contract and `f32`-vs-`f64` comparison.

use classloss::{
    AngularMargin, Differentiable, Embeddings, EmbeddingsGrad, Labels, Loss, OnCosines,
};
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2, IxDyn};
use proptest::prelude::*;

use crate::contract::{Angular, Args, Case, Contract, Labeled};

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
    let sums = a.sum_axis(Axis(1)).insert_axis(Axis(1));
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
) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
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
    e: &Array2<f64>,
    w: &Array2<f64>,
    labels: &Array1<usize>,
) -> f64
where
    for<'a> L: Differentiable<
            f64,
            Input<'a> = Embeddings<'a, f64>,
            Target<'a> = Labels<'a>,
            Grad = EmbeddingsGrad<f64>,
        > + Differentiable<
            f32,
            Input<'a> = Embeddings<'a, f32>,
            Target<'a> = Labels<'a>,
            Grad = EmbeddingsGrad<f32>,
        >,
{
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

/// The cosine matrix of the rows of `e` and `w`, computed independently of
/// the crate.
pub fn cosines(e: &Array2<f64>, w: &Array2<f64>) -> Array2<f64> {
    let norm = |x: &Array2<f64>| {
        let n = x.map_axis(Axis(1), |r| r.dot(&r).sqrt());
        x / &n.insert_axis(Axis(1))
    };
    norm(e).dot(&norm(w).t())
}

/// Embeddings `(N, D)`, class weights `(C, D)` and labels, every row with a
/// direction (`|row|^2 > 0.01`).
pub fn embedding_batch() -> impl Strategy<Value = (Array2<f64>, Array2<f64>, Vec<usize>)> {
    (1usize..6, 2usize..5, 2usize..5).prop_flat_map(|(n, c, d)| {
        (
            proptest::collection::vec(-3.0f64..3.0, n * d),
            proptest::collection::vec(-3.0f64..3.0, c * d),
            proptest::collection::vec(0..c, n),
        )
            .prop_filter_map("rows need a direction", move |(e, w, l)| {
                let e = Array2::from_shape_vec((n, d), e).unwrap();
                let w = Array2::from_shape_vec((c, d), w).unwrap();
                let ok = |x: &Array2<f64>| x.rows().into_iter().all(|r| r.dot(&r) > 1e-2);
                (ok(&e) && ok(&w)).then_some((e, w, l))
            })
    })
}

/// An angular-margin loss's contract on embeddings and, through
/// `on_cosines`, on their cosine matrix (extreme `f32` cosines: exactly
/// ±1, 0 and tiny); and the two values agree.
pub fn angular_contract<L>(
    what: &str,
    loss: &L,
    e: &Array2<f64>,
    w: &Array2<f64>,
    labels: &Array1<usize>,
) where
    L: Contract<Angular<f64>>
        + AngularMargin
        + Clone
        + for<'a> Loss<f64, Input<'a> = Embeddings<'a, f64>, Target<'a> = Labels<'a>>,
    OnCosines<L>: Contract<Labeled<f64, Ix2>>
        + for<'a> Loss<f64, Input<'a> = ArrayView2<'a, f64>, Target<'a> = Labels<'a>>,
{
    let args = Angular {
        e: e.clone(),
        w: w.clone(),
        labels: labels.clone(),
    };
    let cos = Labeled::new(cosines(e, w), labels.clone());
    let on_cosines = loss.clone().on_cosines();
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    let value = loss.forward(input, labels).unwrap();
    let on_cos = on_cosines.forward(&cos.x, labels).unwrap();
    assert!(
        (value - on_cos).abs() <= 1e-12 * (1.0 + value.abs()),
        "{what}: {value} on embeddings, {on_cos} on their cosines"
    );
    let corners = [1.0, -1.0, 0.0, 1e-38];
    let extreme: Vec<f64> = (0..cos.x.len()).map(|i| corners[i % 4]).collect();
    let extremes = vec![cos.with_params(&extreme)];
    loss.check(&Case::new(format!("{what}, embeddings"), args));
    on_cosines.check(&Case::new(format!("{what}, cosines"), cos).extremes(extremes));
}
