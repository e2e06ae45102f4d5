//! Helpers of the test modules: deterministic random inputs, and the
//! angular-margin losses' cosines, contract and `f32`-vs-`f64` comparison.

use crate::contract::{Angular, Args, Case, Contract, Labeled};
use classloss::{
    AngularMargin, ArcFace, CosFace, Differentiable, Embeddings, EmbeddingsGrad, Error, Float,
    Labels, Loss, OnCosines, Pair,
};
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2, IxDyn};
use proptest::prelude::*;

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

/// Deterministic soft targets in `[0, 1]` with some exact 0s and 1s.
pub fn soft_targets(shape: &[usize], seed: u64) -> ArrayD<f64> {
    random_array(shape, seed, 0.8).mapv(|v| (v + 0.5).clamp(0.0, 1.0))
}

/// A shape, its seed, and the weights to check a loss with on it.
pub type WeightedShape = (Vec<usize>, u64, Vec<Option<ArrayD<f64>>>);

/// The shapes the element-wise losses are checked on, each with a seed and
/// its weights: none, and weights in `[0.1, 1.9]` of each shape that
/// broadcasts to it (per column, per element, per row).
pub fn weighted_shapes() -> Vec<WeightedShape> {
    let shapes = [
        (vec![6, 5], vec![vec![5], vec![6, 5], vec![6, 1]], 1),
        (
            vec![3, 4, 2],
            vec![vec![2], vec![3, 4, 2], vec![3, 1, 1]],
            2,
        ),
        (vec![7], vec![vec![7], vec![1]], 3),
    ];
    let weight = |(k, w): (usize, &Vec<usize>), seed: u64| {
        Some(random_array(w, seed + 20 + k as u64, 0.9).mapv(|v| v + 1.0))
    };
    shapes
        .into_iter()
        .map(|(shape, ws, seed)| {
            let weights = ws.iter().enumerate().map(|kw| weight(kw, seed));
            (shape, seed, std::iter::once(None).chain(weights).collect())
        })
        .collect()
}

/// `(N, K)` inputs drawn from `x` and targets drawn from `t`, `N` and `K`
/// in `1..6`.
pub fn inputs_and_targets<S, T>(x: S, t: T) -> impl Strategy<Value = (Array2<f64>, Array2<f64>)>
where
    S: Strategy<Value = f64> + Clone,
    T: Strategy<Value = f64> + Clone,
{
    (1usize..6, 1usize..6).prop_flat_map(move |(n, k)| {
        let (x, t) = (x.clone(), t.clone());
        (
            proptest::collection::vec(x, n * k),
            proptest::collection::vec(t, n * k),
        )
            .prop_map(move |(x, t)| {
                let shaped = |v| Array2::from_shape_vec((n, k), v).unwrap();
                (shaped(x), shaped(t))
            })
    })
}

/// `a` as a matrix.
pub fn matrix<A>(a: ArrayD<A>) -> Array2<A> {
    a.into_dimensionality().unwrap()
}

/// `a` as a vector.
pub fn vector<A>(a: ArrayD<A>) -> Array1<A> {
    a.into_dimensionality().unwrap()
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
    let mut w = matrix(random_array(&[3, d], seed, 3.0));
    let mut e = matrix(random_array(&[2, d], seed + 1, 3.0));
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
    let (a, ga) =
        Differentiable::<f64>::forward_backward(loss, embeddings(e, w), labels.view()).unwrap();
    let (b, gb) =
        Differentiable::<f32>::forward_backward(loss, embeddings(&e32, &w32), labels.view())
            .unwrap();
    let grads64 = ga.embeddings.iter().chain(ga.weight.iter());
    let grads32 = gb.embeddings.iter().chain(gb.weight.iter());
    std::iter::once((a, b))
        .chain(grads64.copied().zip(grads32.copied()))
        .map(|(x, y)| (x - y as f64).abs() / (1.0 + x.abs()))
        .fold(0.0, f64::max)
}

/// Rows `(n, d)` in `[-2, 2]`, class rows `(c, d)` in `[-class_scale,
/// class_scale]` and labels in `0..c` (seeds `seed`, `+ 1`, `+ 2`): the
/// embeddings, class weights and labels of the angular margins, the
/// features, centers and labels of the center loss.
pub fn random_batch(
    n: usize,
    c: usize,
    d: usize,
    seed: u64,
    class_scale: f64,
) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    let e = matrix(random_array(&[n, d], seed, 2.0));
    let w = matrix(random_array(&[c, d], seed + 1, class_scale));
    let labels = random_labels(&[n], c, seed + 2);
    (e, w, labels.into_dimensionality().unwrap())
}

/// The case `f32_agrees_with_f64` of ArcFace shrank to (kept in
/// `arcface.txt` of the proptest regressions): embeddings, class weights
/// and labels where sample 0 is 0.0024 rad from its class weight.
pub fn nearly_parallel_case() -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    let e = ndarray::array![
        [1.5257825155880125, 2.611065421331003],
        [0.0, 1.7299236671671467],
        [0.0, 1.7724210899393413]
    ];
    let w = ndarray::array![
        [1.288430351663985, 2.2169252302825417],
        [0.0, 1.75044493430982],
        [0.0, 1.4656500357172364]
    ];
    (e, w, ndarray::array![0, 0, 0])
}

/// `e` and `w` as the angular margins' input.
pub fn embeddings<'a, F>(e: &'a Array2<F>, w: &'a Array2<F>) -> Embeddings<'a, F> {
    Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    }
}

/// `x1` and `x2` as the contrastive loss's input.
pub fn pair_of<'a, F>(x1: &'a Array2<F>, x2: &'a Array2<F>) -> Pair<'a, F> {
    Pair {
        x1: x1.view(),
        x2: x2.view(),
    }
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
    let value = loss.forward(embeddings(e, w), labels).unwrap();
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

/// Each `(value, shown)` of the option `name`, set by `set`, is
/// `Error::InvalidOption` naming it, with the message "option `name`:
/// expected {expected}, got {shown}".
pub fn assert_option_rejects<T: std::fmt::Debug>(
    name: &str,
    expected: &str,
    bad: &[(f64, &str)],
    set: impl Fn(f64) -> classloss::Result<T>,
) {
    for &(value, shown) in bad {
        let e = set(value).unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { name: n, .. } if n == name),
            "{e}"
        );
        let message = format!("option `{name}`: expected {expected}, got {shown}");
        assert_eq!(e.to_string(), message);
    }
}

/// A class-weight option `name` set by `set` rejects a negative weight
/// (with the message "option `name`: expected finite weights >= 0, got an
/// array containing -1"), a NaN and an infinite one.
pub fn assert_weights_rejected<T: std::fmt::Debug>(
    name: &str,
    set: impl Fn(Array1<f64>) -> classloss::Result<T>,
) {
    let e = set(ndarray::array![1.0, -1.0]).unwrap_err();
    let message =
        format!("option `{name}`: expected finite weights >= 0, got an array containing -1");
    assert_eq!(e.to_string(), message);
    for bad in [
        ndarray::array![1.0, f64::NAN],
        ndarray::array![f64::INFINITY],
    ] {
        let e = set(bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { name: n, .. } if n == name),
            "{e}"
        );
    }
}

/// Each gradient buffer of `cases` is rejected by the fused call with its
/// message.
pub fn assert_grad_errors<'i, L: Differentiable<f64>>(
    loss: &L,
    input: L::Input<'i>,
    target: L::Target<'i>,
    cases: Vec<(L::Grad, &str)>,
) {
    for (mut grad, message) in cases {
        let buffer = L::grad_view_mut(&mut grad);
        let e = loss.forward_backward_into(input.clone(), target.clone(), buffer);
        assert_eq!(e.unwrap_err().to_string(), message);
    }
}

/// The largest `error` (of a loss's `f32` results against its `f64` ones,
/// [`f32_vs_f64_error`]) over [`near_parallel_batch`]es at the angle `theta`
/// (dimensions 2, 5, 16; 20 seeds each).
pub fn worst_near_parallel_error(
    theta: f64,
    error: impl Fn(&Array2<f64>, &Array2<f64>, &Array1<usize>) -> f64,
) -> f64 {
    let mut worst: f64 = 0.0;
    for d in [2, 5, 16] {
        for seed in 0..20 {
            let (e, w, labels) = near_parallel_batch(theta, d, 100 * seed + d as u64);
            worst = worst.max(error(&e, &w, &labels));
        }
    }
    worst
}

/// The errors of the binary losses' shared shell, with their messages, for
/// a loss on `(2, 3)` inputs named `what` (`logits` or `probs`), valid at
/// `input`: targets of another shape, a target outside `[0, 1]` and a NaN
/// one, an empty batch, a gradient buffer of another shape. Each loss's own
/// errors (options, weights, rank 0) stay in its module.
pub fn assert_binary_shell_errors<L>(loss: &L, what: &str, input: &Array2<f64>)
where
    L: for<'a> classloss::Differentiable<
            f64,
            Input<'a> = ArrayView2<'a, f64>,
            Target<'a> = ArrayView2<'a, f64>,
            GradMut<'a> = ndarray::ArrayViewMut2<'a, f64>,
        >,
{
    let msg = |e: classloss::Error| e.to_string();
    let t = ndarray::array![[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
    let e = loss.forward(input, &Array2::zeros((3, 2))).unwrap_err();
    assert_eq!(msg(e), "targets: expected shape [2, 3], got [3, 2]");
    let bad = ndarray::array![[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]];
    let e = loss.forward(input, &bad).unwrap_err();
    assert!(matches!(
        e,
        classloss::Error::InvalidTarget {
            what: "targets",
            ..
        }
    ));
    assert_eq!(msg(e), "targets[1, 1]: expected a value in [0, 1], got 2");
    let bad = ndarray::array![[1.0, 0.0, 1.0], [0.0, -0.5, 0.0]];
    let e = loss.forward(input, &bad).unwrap_err();
    assert_eq!(
        msg(e),
        "targets[1, 1]: expected a value in [0, 1], got -0.5"
    );
    let bad = ndarray::array![[f64::NAN, 0.0, 1.0], [0.0, 1.0, 0.0]];
    let e = loss.forward(input, &bad).unwrap_err();
    assert_eq!(msg(e), "targets[0, 0]: expected a value in [0, 1], got NaN");
    let e = loss
        .forward(&Array2::zeros((0, 3)), &Array2::zeros((0, 3)))
        .unwrap_err();
    assert_eq!(
        msg(e),
        format!("{what}: expected at least one element, got an empty array of shape [0, 3]")
    );
    let e = loss
        .forward(&Array2::zeros((2, 0)), &Array2::zeros((2, 0)))
        .unwrap_err();
    assert_eq!(
        msg(e),
        format!("{what}: expected at least one element, got an empty array of shape [2, 0]")
    );
    let mut g = Array2::zeros((2, 4));
    let e = loss.forward_backward_into(input, &t, &mut g).unwrap_err();
    assert_eq!(msg(e), "grad: expected shape [2, 3], got [2, 4]");
}

/// `|a - b| <= tol (1 + max |b|)` entry by entry.
pub fn assert_close<F: Float>(what: &str, a: &[F], b: &[F], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = 1.0 + b.iter().fold(0.0_f64, |m, v| m.max(v.as_f64().abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let err = (x.as_f64() - y.as_f64()).abs();
        assert!(err <= tol * scale, "{what}[{i}]: {x} vs {y} (err {err:e})");
    }
}

/// The fuzz case of CosFace at `s = 3e38` (Sum over 5 samples, every label
/// 0): embeddings `(5, 4)`, class weights `(3, 4)` and the loss, whose
/// gradients with respect to the cosines are up to `3e38` each, so that
/// the backward products pass `f32` unless formed at a smaller scale.
pub fn cosface_near_f32_max_case() -> (Array2<f32>, Array2<f32>, CosFace) {
    let e = ndarray::array![
        [11.375_f32, -0.125, -66.078125, 0.0],
        [0.0, 0.0, 0.0, -63.8125],
        [119.84375, 119.78125, -14.75, -0.125],
        [0.0625, 0.0, 119.84375, -14.25],
        [3.375, 3.796875, -0.125, -0.125]
    ];
    let w = ndarray::array![
        [119.84375_f32, -3.385_423_7e-36, -3.385_423_7e-36, -38.65625],
        [
            -117_902_137_098_240.0,
            14.75,
            -3.385_423_7e-36,
            -1.762_066e-35
        ],
        [-48_884_067_860_480.0, 0.0, 1.4e-45, 1.4e-45]
    ];
    let loss = CosFace::new()
        .with_scale(3e38)
        .unwrap()
        .with_margin(0.259_765_6)
        .unwrap()
        .with_reduction(classloss::Reduction::Sum);
    (e, w, loss)
}

/// The fuzz case of ArcFace at `s = 3e38` (every label 2): embeddings
/// `(4, 4)`, one row of norm `1.4e-38`, class weights `(4, 4)` and the
/// loss.
pub fn arcface_tiny_row_case() -> (Array2<f32>, Array2<f32>, ArcFace) {
    let e = ndarray::array![
        [-8.375_f32, -0.125, 0.0, -1.102_026e-38],
        [-101.953125, 1.4e-45, 1.4e-45, 63.0],
        [1.4e-45, -1.170_902_6e-38, 0.0, 7.071_333e-39],
        [-99.59375, -101.25, -64.59375, 0.0]
    ];
    let w = ndarray::array![
        [1.0_f32, 47.609375, -1.625, -0.125],
        [-1.0, -0.125, -0.125, -0.125],
        [-99.59375, -99.59375, -8.375, 49.984375],
        [4.40625, 0.0, 3.9375, 0.0]
    ];
    let loss = ArcFace::new()
        .with_scale(3e38)
        .unwrap()
        .with_margin(0.999_999_999_999)
        .unwrap();
    (e, w, loss)
}
