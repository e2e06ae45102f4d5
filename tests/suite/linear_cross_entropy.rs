//! The fused linear + cross-entropy head: equal to `CrossEntropy` on the
//! materialized logits for every option and their combinations (value,
//! per-sample values, and the gradients by the chain rule), in `f64` and
//! `f32`; the same results for every chunk size; finite-difference checks
//! of the three gradients; errors. (Reference values: `tests/conformance`.)

use crate::common::{assert_close, matrix, random_array, random_labels, vector};
use crate::contract::{Case, Linear, check_contract};
use classloss::gradcheck::GradCheck;
use classloss::{
    ClassTarget, CrossEntropy, Differentiable, Error, Float, LinearCrossEntropy, LinearGrad,
    LinearGradMut, LinearInput, Loss, Reduction,
};
use ndarray::{Array1, Array2, Axis};

/// A batch: hidden `(N, D)`, weight `(V, D)`, bias `(V)`, labels `(N)`
/// (`i64`), and the same labels with `-100` at positions 1, 5, 9, ... for
/// `ignore_index`.
pub struct Batch<F> {
    pub hidden: Array2<F>,
    pub weight: Array2<F>,
    pub bias: Array1<F>,
    pub labels: Array1<i64>,
    pub padded: Array1<i64>,
}

pub fn batch<F: Float>(n: usize, d: usize, v: usize, seed: u64) -> Batch<F> {
    let cast = |a: Array2<f64>| a.mapv(F::lit);
    let labels = vector(random_labels(&[n], v, seed + 3)).mapv(|y| y as i64);
    Batch {
        hidden: cast(matrix(random_array(&[n, d], seed, 1.5))),
        weight: cast(matrix(random_array(&[v, d], seed + 1, 1.0))),
        bias: vector(random_array(&[v], seed + 2, 0.5)).mapv(F::lit),
        padded: Array1::from_iter(
            labels
                .iter()
                .enumerate()
                .map(|(i, &y)| if i % 4 == 1 { -100 } else { y }),
        ),
        labels,
    }
}

impl<F: Float> Batch<F> {
    /// The labels for options `o`: padded where `o` ignores `-100`.
    pub fn labels(&self, o: Opts) -> &Array1<i64> {
        if o.ignore { &self.padded } else { &self.labels }
    }

    pub fn input(&self, bias: bool) -> LinearInput<'_, F> {
        LinearInput {
            hidden: self.hidden.view(),
            weight: self.weight.view(),
            bias: bias.then(|| self.bias.view()),
        }
    }
}

/// The options of a case, applied alike to `CrossEntropy` and the head.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub weights: bool,
    pub ignore: bool,
    pub smoothing: f64,
    pub z: f64,
    pub cap: Option<f64>,
}

pub fn all_opts() -> Vec<Opts> {
    let plain = Opts {
        weights: false,
        ignore: false,
        smoothing: 0.0,
        z: 0.0,
        cap: None,
    };
    let mut out = vec![plain];
    out.push(Opts {
        weights: true,
        ..plain
    });
    out.push(Opts {
        ignore: true,
        ..plain
    });
    out.push(Opts {
        smoothing: 0.1,
        ..plain
    });
    out.push(Opts { z: 1e-2, ..plain });
    out.push(Opts {
        cap: Some(3.0),
        ..plain
    });
    out.push(Opts {
        weights: true,
        ignore: true,
        smoothing: 0.2,
        ..plain
    });
    out.push(Opts {
        weights: true,
        ignore: true,
        smoothing: 0.1,
        z: 1e-2,
        cap: Some(3.0),
    });
    out
}

pub fn class_weights<F: Float>(v: usize) -> Array1<F> {
    Array1::from_shape_fn(v, |c| F::lit(0.5 + 0.25 * (c % 5) as f64))
}

pub fn losses<F: Float>(
    o: Opts,
    v: usize,
    r: Reduction,
) -> (CrossEntropy<F>, LinearCrossEntropy<F>) {
    let mut ce = CrossEntropy::<F>::new().with_reduction(r);
    let mut head = LinearCrossEntropy::<F>::new().with_reduction(r);
    if o.weights {
        ce = ce.with_weight(class_weights(v)).unwrap();
        head = head.with_class_weight(class_weights(v)).unwrap();
    }
    if o.ignore {
        ce = ce.with_ignore_index(-100_i64);
        head = head.with_ignore_index(-100_i64);
    }
    let ce = ce
        .with_label_smoothing(o.smoothing)
        .and_then(|ce| ce.with_z_loss(o.z))
        .and_then(|ce| ce.with_softcap(o.cap))
        .unwrap();
    let head = head
        .with_label_smoothing(o.smoothing)
        .and_then(|h| h.with_z_loss(o.z))
        .and_then(|h| h.with_softcap(o.cap))
        .unwrap();
    (ce, head)
}

/// CrossEntropy on the materialized logits: value, per-sample values and
/// the three gradients by the chain rule.
fn reference<F: Float>(
    ce: &CrossEntropy<F>,
    b: &Batch<F>,
    labels: &Array1<i64>,
    bias: bool,
) -> (F, Array1<F>, LinearGrad<F>) {
    let mut logits = b.hidden.dot(&b.weight.t());
    if bias {
        logits += &b.bias;
    }
    let per = ce.per_sample(&logits, labels).unwrap();
    let (value, g) = ce.forward_backward(&logits, labels).unwrap();
    (value, per, chain_rule(&g, b, bias))
}

/// The head's gradients from `g = dL/dZ` of the materialized logits.
fn chain_rule<F: Float>(g: &Array2<F>, b: &Batch<F>, bias: bool) -> LinearGrad<F> {
    LinearGrad {
        hidden: g.dot(&b.weight),
        weight: g.t().dot(&b.hidden),
        bias: bias.then(|| g.sum_axis(Axis(0))),
    }
}

pub fn assert_grads_close<F: Float>(what: &str, a: &LinearGrad<F>, b: &LinearGrad<F>, tol: f64) {
    let flat = |x: &Array2<F>| x.iter().copied().collect::<Vec<_>>();
    assert_close(
        &format!("{what} d hidden"),
        &flat(&a.hidden),
        &flat(&b.hidden),
        tol,
    );
    assert_close(
        &format!("{what} d weight"),
        &flat(&a.weight),
        &flat(&b.weight),
        tol,
    );
    match (&a.bias, &b.bias) {
        (Some(x), Some(y)) => assert_close(
            &format!("{what} d bias"),
            x.as_slice().unwrap(),
            y.as_slice().unwrap(),
            tol,
        ),
        (None, None) => {}
        _ => panic!("{what}: a bias gradient on one side only"),
    }
}

fn equals_cross_entropy<F: Float>(tol: f64) {
    let (n, d, v) = (10, 6, 13);
    let b = batch::<F>(n, d, v, 11);
    for o in all_opts() {
        for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            for bias in [false, true] {
                for chunk in [None, Some(3)] {
                    let what = format!("{o:?} {r} bias {bias} chunk {chunk:?}");
                    let (ce, mut head) = losses::<F>(o, v, r);
                    if let Some(c) = chunk {
                        head = head.with_chunk_rows(c).unwrap();
                    }
                    let labels = b.labels(o);
                    let (value, per, grad) = reference(&ce, &b, labels, bias);
                    let input = b.input(bias);
                    let got = head.forward(input, labels).unwrap();
                    assert_close(&format!("{what} value"), &[got], &[value], tol);
                    let got_per = head.per_sample(input, labels).unwrap();
                    assert_close(
                        &format!("{what} per-sample"),
                        got_per.as_slice().unwrap(),
                        per.as_slice().unwrap(),
                        tol,
                    );
                    let (fused, got_grad) = head.forward_backward(input, labels).unwrap();
                    assert_eq!(fused, got, "{what}: fused value differs from forward");
                    assert_grads_close(&what, &got_grad, &grad, tol);
                }
            }
        }
    }
}

#[test]
fn equals_cross_entropy_on_the_materialized_logits_f64() {
    equals_cross_entropy::<f64>(1e-12);
}

#[test]
fn equals_cross_entropy_on_the_materialized_logits_f32() {
    equals_cross_entropy::<f32>(2e-5);
}

#[test]
fn results_are_the_same_for_every_chunk_size() {
    let (n, d, v) = (12, 5, 9);
    let b = batch::<f64>(n, d, v, 21);
    let o = all_opts()[7];
    let labels = b.labels(o);
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let (_, head) = losses::<f64>(o, v, r);
        let whole = head.clone().with_chunk_rows(n).unwrap();
        let input = b.input(true);
        let value = whole.forward(input, labels).unwrap();
        let per = whole.per_sample(input, labels).unwrap();
        let grad = whole.backward(input, labels).unwrap();
        // 1, a divisor of N, a non-divisor, N, more than N, the default.
        for chunk in [Some(1), Some(4), Some(5), Some(n), Some(100), None] {
            let what = format!("{r} chunk {chunk:?}");
            let head = match chunk {
                Some(c) => head.clone().with_chunk_rows(c).unwrap(),
                None => head.clone(),
            };
            let (fused, g) = head.forward_backward(input, labels).unwrap();
            assert_close(&format!("{what} value"), &[fused], &[value], 1e-13);
            let p = head.per_sample(input, labels).unwrap();
            assert_close(
                &format!("{what} per-sample"),
                p.as_slice().unwrap(),
                per.as_slice().unwrap(),
                1e-13,
            );
            assert_grads_close(&what, &g, &grad, 1e-13);
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (n, d, v) = (6, 4, 7);
    let b = batch::<f64>(n, d, v, 31);
    for (k, o) in all_opts().into_iter().enumerate() {
        for r in [Reduction::Mean, Reduction::Sum] {
            let (_, head) = losses::<f64>(o, v, r);
            let head = head.with_chunk_rows(1 + k % 4).unwrap();
            let (lh, lw) = (b.hidden.len(), b.weight.len());
            let params: Vec<f64> = b
                .hidden
                .iter()
                .chain(&b.weight)
                .chain(&b.bias)
                .copied()
                .collect();
            let f = |x: &[f64]| {
                let hidden = Array2::from_shape_vec((n, d), x[..lh].to_vec()).unwrap();
                let weight = Array2::from_shape_vec((v, d), x[lh..lh + lw].to_vec()).unwrap();
                let bias = Array1::from(x[lh + lw..].to_vec());
                let input = LinearInput {
                    hidden: hidden.view(),
                    weight: weight.view(),
                    bias: Some(bias.view()),
                };
                head.forward(input, b.labels(o)).unwrap()
            };
            let g = head.backward(b.input(true), b.labels(o)).unwrap();
            let analytic: Vec<f64> = g
                .hidden
                .iter()
                .chain(&g.weight)
                .chain(g.bias.as_ref().unwrap())
                .copied()
                .collect();
            GradCheck::default()
                .check(f, &params, &analytic)
                .unwrap_or_else(|e| panic!("{o:?} {r}: {e}"));
        }
    }
}

#[test]
fn fills_the_callers_buffers_whatever_they_held() {
    let (n, d, v) = (7, 3, 5);
    let b = batch::<f64>(n, d, v, 41);
    let head = LinearCrossEntropy::new().with_chunk_rows(2).unwrap();
    let expected = head.backward(b.input(true), &b.labels).unwrap();
    let mut hidden = Array2::from_elem((n, d), f64::NAN);
    let mut weight = Array2::from_elem((v, d), f64::NAN);
    let mut bias = Array1::from_elem(v, f64::NAN);
    let value = head
        .forward_backward_into(
            b.input(true),
            &b.labels,
            LinearGradMut {
                hidden: hidden.view_mut(),
                weight: weight.view_mut(),
                bias: Some(bias.view_mut()),
            },
        )
        .unwrap();
    assert_eq!(value, head.forward(b.input(true), &b.labels).unwrap());
    assert_eq!(hidden, expected.hidden);
    assert_eq!(weight, expected.weight);
    assert_eq!(Some(bias.clone()), expected.bias);
    // Without a bias, a bias buffer receives the gradient of a zero bias.
    let mut grad = head.zeros_grad(b.input(false));
    assert!(grad.bias.is_none());
    grad.bias = Some(Array1::from_elem(v, f64::NAN));
    head.forward_backward_into(b.input(false), &b.labels, &mut grad)
        .unwrap();
    let zero = Array1::zeros(v);
    let with_zero_bias = LinearInput {
        bias: Some(zero.view()),
        ..b.input(false)
    };
    let expected = head.backward(with_zero_bias, &b.labels).unwrap();
    assert_eq!(grad, expected);
}

#[test]
fn options_and_default_chunk() {
    let head = LinearCrossEntropy::<f32>::new();
    assert_eq!(head.chunk_rows(), None);
    // 48 MiB of f32 logits at V = 128,256: 98 rows (47.9 MiB).
    assert_eq!(head.chunk_rows_for(128_256), 98);
    assert_eq!(LinearCrossEntropy::<f64>::new().chunk_rows_for(128_256), 64);
    // At least 64 tokens, however many classes.
    assert_eq!(head.chunk_rows_for(usize::MAX / 2), 64);
    assert_eq!(head.chunk_rows_for(1_000_000), 64);
    assert_eq!(head.chunk_rows_for(196_608), 64);
    assert_eq!(head.chunk_rows_for(196_607), 64);
    assert_eq!(head.chunk_rows_for(100_000), 125);
    let head = head.with_chunk_rows(7).unwrap();
    assert_eq!(
        (head.chunk_rows(), head.chunk_rows_for(128_256)),
        (Some(7), 7)
    );
    let e = LinearCrossEntropy::<f32>::new()
        .with_chunk_rows(0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `chunk_rows`: expected an integer >= 1, got 0"
    );
    let head = LinearCrossEntropy::<f64>::new()
        .with_ignore_index(-100_i32)
        .with_label_smoothing(0.1)
        .and_then(|h| h.with_z_loss(1e-4))
        .and_then(|h| h.with_softcap(Some(30.0)))
        .and_then(|h| h.with_class_weight(ndarray::array![1.0, 2.0]))
        .unwrap();
    assert_eq!(head.ignore_index(), Some(-100));
    assert_eq!((head.label_smoothing(), head.z_loss()), (0.1, 1e-4));
    assert_eq!(head.softcap(), Some(30.0));
    assert_eq!(head.class_weight().unwrap().len(), 2);
    assert!(
        LinearCrossEntropy::<f64>::new()
            .with_label_smoothing(1.5)
            .is_err()
    );
    assert!(LinearCrossEntropy::<f64>::new().with_z_loss(-1.0).is_err());
    assert!(
        LinearCrossEntropy::<f64>::new()
            .with_softcap(Some(0.0))
            .is_err()
    );
    assert!(
        LinearCrossEntropy::<f64>::new()
            .with_class_weight(ndarray::array![1.0, -1.0])
            .is_err()
    );
}

#[test]
fn every_label_ignored_gives_zero() {
    let b = batch::<f64>(3, 2, 4, 51);
    let labels = ndarray::array![-100_i64, -100, -100];
    let head = LinearCrossEntropy::new().with_ignore_index(-100_i64);
    let (value, g) = head.forward_backward(b.input(true), &labels).unwrap();
    assert_eq!(value, 0.0);
    assert!(g.hidden.iter().chain(&g.weight).all(|&x| x == 0.0));
    assert!(g.bias.unwrap().iter().all(|&x| x == 0.0));
}

#[test]
fn errors_name_the_argument() {
    let b = batch::<f64>(4, 3, 5, 61);
    let head = LinearCrossEntropy::new().with_ignore_index(-100_i64);
    let err = |input: LinearInput<'_, f64>, labels: &Array1<i64>| {
        head.forward(input, labels).unwrap_err().to_string()
    };
    let narrow = Array2::<f64>::zeros((5, 2));
    assert_eq!(
        err(
            LinearInput {
                weight: narrow.view(),
                ..b.input(true)
            },
            &b.labels
        ),
        "weight: expected shape [5, 3], got [5, 2]"
    );
    let short = Array1::<f64>::zeros(4);
    assert_eq!(
        err(
            LinearInput {
                bias: Some(short.view()),
                ..b.input(true)
            },
            &b.labels
        ),
        "bias: expected shape [5], got [4]"
    );
    assert_eq!(
        err(b.input(true), &ndarray::array![0_i64, 1, 2]),
        "labels: expected shape [4], got [3]"
    );
    assert_eq!(
        err(b.input(true), &ndarray::array![0_i64, 5, 2, 1]),
        "labels[1]: label 5 is out of range for 5 classes (expected 0..=4)"
    );
    let empty = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        err(
            LinearInput {
                hidden: empty.view(),
                ..b.input(true)
            },
            &Array1::zeros(0)
        ),
        "hidden: expected at least one sample, got an empty array of shape [0, 3]"
    );
    let no_classes = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        err(
            LinearInput {
                weight: no_classes.view(),
                bias: None,
                ..b.input(true)
            },
            &b.labels
        ),
        "weight: expected at least one class, got an empty array of shape [0, 3]"
    );
    let weighted = LinearCrossEntropy::new()
        .with_class_weight(ndarray::array![1.0, 2.0])
        .unwrap();
    assert_eq!(
        weighted
            .forward(b.input(true), &b.labels.mapv(|y| y.max(0)))
            .unwrap_err()
            .to_string(),
        "class_weight: expected shape [5], got [2]"
    );
    // Gradient buffers of the wrong shape: named, and left untouched.
    let mut hidden = Array2::from_elem((4, 2), 7.0);
    let mut weight = Array2::zeros((5, 3));
    let e = head
        .forward_backward_into(
            b.input(true),
            &b.labels,
            LinearGradMut {
                hidden: hidden.view_mut(),
                weight: weight.view_mut(),
                bias: None,
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "grad.hidden: expected shape [4, 3], got [4, 2]"
    );
    assert!(hidden.iter().all(|&x| x == 7.0));
    let mut grad = head.zeros_grad(b.input(true));
    grad.weight = Array2::zeros((4, 3));
    let e = head
        .forward_backward_into(b.input(true), &b.labels, &mut grad)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "grad.weight: expected shape [5, 3], got [4, 3]"
    );
    let mut grad = head.zeros_grad(b.input(true));
    grad.bias = Some(Array1::zeros(6));
    let e = head
        .forward_backward_into(b.input(true), &b.labels, &mut grad)
        .unwrap_err();
    assert_eq!(e.to_string(), "grad.bias: expected shape [5], got [6]");
}

#[test]
fn f32_logits_beyond_the_float_type_are_an_overflow() {
    let hidden = ndarray::array![[1e20_f32, 0.0], [0.0, 1.0]];
    let weight = ndarray::array![[1e20_f32, 0.0], [0.0, 1.0]];
    let input = LinearInput {
        hidden: hidden.view(),
        weight: weight.view(),
        bias: None,
    };
    let labels = ndarray::array![1_u32, 0];
    let head = LinearCrossEntropy::<f32>::new();
    let e = head.forward(input, &labels).unwrap_err().to_string();
    assert!(e.starts_with("hidden[0]:"), "{e}");
    assert!(e.contains("about 1.000e40"), "{e}");
    assert!(head.per_sample(input, &labels).is_err());
    assert!(head.backward(input, &labels).is_err());
    // Non-finite inputs pass through, as PyTorch.
    let nan = ndarray::array![[f32::NAN, 0.0], [0.0, 1.0]];
    let input = LinearInput {
        hidden: nan.view(),
        ..input
    };
    assert!(head.forward(input, &labels).unwrap().is_nan());
}

#[test]
fn contract() {
    for (k, o) in all_opts().into_iter().enumerate() {
        let (n, d, v) = (6, 3, 5);
        let b = batch::<f64>(n, d, v, 71 + k as u64);
        let labels = b.labels(o).clone();
        let (_, head) = losses::<f64>(o, v, Reduction::Mean);
        let head = head.with_chunk_rows(1 + k % 3).unwrap();
        let w = class_weights::<f64>(v);
        // Every other case with per-token weights (one of them 0).
        let tokens = (k % 2 == 1).then(|| Array1::from_shape_fn(n, |i| [0.5, 2.0, 0.0][i % 3]));
        let divisor: f64 = labels
            .iter()
            .enumerate()
            .filter(|(_, y)| **y >= 0)
            .map(|(i, &y)| {
                let w_y = if o.weights { w[y as usize] } else { 1.0 };
                w_y * tokens.as_ref().map_or(1.0, |t| t[i])
            })
            .sum();
        let args = Linear {
            hidden: b.hidden,
            weight: b.weight,
            bias: b.bias,
            labels,
            token_weights: tokens,
        };
        check_contract(&head, &Case::new(format!("{o:?}"), args).divisor(divisor));
    }
}

/// Tiny class weights: the mean is the same for weights scaled by any
/// power of two, so subnormal weights (f64) or weights whose sum's
/// reciprocal passes f32 give the value and gradient of weights 1, with
/// smoothing too. Before the rescale, 1 / divisor overflowed (a NaN or
/// infinite gradient) and the chunks' `w nll` lost their bits (a wrong
/// value).
fn tiny_weights_are_exact<F: Float>(tiny: f64, tol: f64) {
    let (n, d, v) = (9, 4, 6);
    let b = batch::<F>(n, d, v, 31);
    for smoothing in [0.0, 0.1] {
        let head = |w: f64| {
            LinearCrossEntropy::<F>::new()
                .with_class_weight(Array1::from_elem(v, F::lit(w)))
                .unwrap()
                .with_label_smoothing(smoothing)
                .unwrap()
                .with_chunk_rows(4)
                .unwrap()
        };
        let y = classloss::Labels::from(&b.labels);
        let (v1, g1) = head(1.0)
            .forward_backward(b.input(true), y.clone())
            .unwrap();
        let (vt, gt) = head(tiny)
            .forward_backward(b.input(true), y.clone())
            .unwrap();
        let ft = head(tiny).forward(b.input(true), y.clone()).unwrap();
        assert_close("value", &[vt, ft], &[v1, v1], tol);
        assert_grads_close(&format!("tiny {tiny:e}"), &gt, &g1, tol);
    }
}

#[test]
fn tiny_class_weights_give_the_mean_of_weights_one() {
    tiny_weights_are_exact::<f64>(5e-324, 1e-13);
    tiny_weights_are_exact::<f64>(1e-310, 1e-13);
    tiny_weights_are_exact::<f32>(1e-45, 1e-5);
    tiny_weights_are_exact::<f32>(1e-40, 1e-5);
}

#[test]
fn results_are_the_same_bits_on_any_thread_count() {
    // Large enough for the products and the row blocks to be split across
    // threads (gemm splits above its own thresholds).
    // V spans three of the products' blocks of classes (2,048 each).
    let b = batch::<f32>(150, 96, 4500, 41);
    let o = Opts {
        weights: true,
        ignore: true,
        smoothing: 0.1,
        z: 1e-3,
        cap: None,
    };
    let (_, head) = losses::<f32>(o, 4500, Reduction::Mean);
    let head = head.with_chunk_rows(64).unwrap();
    let labels = b.labels(o);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| {
                let (value, grad) = head.forward_backward(b.input(true), labels).unwrap();
                let per = head.per_sample(b.input(true), labels).unwrap();
                (value.to_bits(), grad, per)
            })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert_eq!(one, run(threads), "{threads} threads");
    }
}

/// Per-token weights and the per-row log-sum-exp: the same as
/// `CrossEntropy` with `ClassTarget::WeightedLabels` and its
/// `forward_backward_lse_into` on the materialized logits.
fn token_weights_and_lse_equal_cross_entropy<F: Float>(tol: f64) {
    let (n, d, v) = (10, 6, 13);
    let b = batch::<F>(n, d, v, 13);
    let t = Array1::from_shape_fn(n, |i| F::lit([0.5, 2.0, 0.0, 1.25][i % 4]));
    let mut logits = b.hidden.dot(&b.weight.t());
    logits += &b.bias;
    for o in all_opts() {
        for r in [Reduction::Mean, Reduction::Sum] {
            let what = format!("{o:?} {r}");
            let (ce, head) = losses::<F>(o, v, r);
            let head = head.with_chunk_rows(3).unwrap();
            let labels = b.labels(o);
            let target = || ClassTarget::WeightedLabels {
                labels: labels.into(),
                weights: t.view(),
            };
            let (mut g, mut lse) = (Array2::<F>::zeros((n, v)), Array1::<F>::zeros(n));
            let value = ce
                .forward_backward_lse_into(&logits, target(), &mut g, &mut lse)
                .unwrap();
            let mut grad = head.zeros_grad(b.input(true));
            let mut got_lse = Array1::<F>::zeros(n);
            let got = head
                .forward_backward_lse_into(b.input(true), target(), &mut grad, &mut got_lse)
                .unwrap();
            assert_close(&format!("{what} value"), &[got], &[value], tol);
            assert_close(
                &format!("{what} lse"),
                got_lse.as_slice().unwrap(),
                lse.as_slice().unwrap(),
                tol,
            );
            assert_grads_close(&what, &grad, &chain_rule(&g, &b, true), tol);
            let per = ce.per_sample(&logits, target()).unwrap();
            let got_per = head.per_sample(b.input(true), target()).unwrap();
            assert_close(
                &format!("{what} per-sample"),
                got_per.as_slice().unwrap(),
                per.as_slice().unwrap(),
                tol,
            );
        }
    }
}

#[test]
fn token_weights_and_lse_equal_cross_entropy_f64() {
    token_weights_and_lse_equal_cross_entropy::<f64>(1e-12);
}

#[test]
fn token_weights_and_lse_equal_cross_entropy_f32() {
    token_weights_and_lse_equal_cross_entropy::<f32>(2e-5);
}

#[test]
fn probabilities_and_a_misshapen_lse_are_errors() {
    let b = batch::<f64>(4, 3, 5, 17);
    let head = LinearCrossEntropy::<f64>::new();
    let probs = Array2::from_elem((4, 5), 0.2);
    let e = head
        .forward(b.input(true), ClassTarget::Probs(probs.view()))
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedTarget { .. }), "{e}");
    let mut grad = head.zeros_grad(b.input(true));
    let mut lse = Array1::zeros(3);
    let e = head
        .forward_backward_lse_into(b.input(true), &b.labels, &mut grad, &mut lse)
        .unwrap_err();
    assert!(e.to_string().starts_with("lse"), "{e}");
    let short = Array1::from_elem(3, 1.0);
    let e = head
        .forward(
            b.input(true),
            ClassTarget::WeightedLabels {
                labels: (&b.labels).into(),
                weights: short.view(),
            },
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("token_weights"), "{e}");
}

#[test]
fn many_classes_span_several_blocks_of_the_products() {
    // V = 4,500: the logits and d W run in blocks of 2,048 classes.
    let (n, d, v) = (12, 5, 4500);
    let b = batch::<f64>(n, d, v, 43);
    for o in [all_opts()[0], all_opts()[7]] {
        let (ce, head) = losses::<f64>(o, v, Reduction::Mean);
        let head = head.with_chunk_rows(5).unwrap();
        let labels = b.labels(o);
        let (value, per, grad) = reference(&ce, &b, labels, true);
        let (got, got_grad) = head.forward_backward(b.input(true), labels).unwrap();
        assert_close("value", &[got], &[value], 1e-12);
        let got_per = head.per_sample(b.input(true), labels).unwrap();
        assert_close(
            "per",
            got_per.as_slice().unwrap(),
            per.as_slice().unwrap(),
            1e-12,
        );
        assert_grads_close(&format!("{o:?}"), &got_grad, &grad, 1e-12);
    }
}
