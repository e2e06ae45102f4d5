//! KL divergence: the contract, properties (zero at the target,
//! cross-entropy's gradient), errors, extreme `f32` logits. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_probs};
use crate::contract::{Case, Paired, check_contract};
use classloss::{ClassTarget, CrossEntropy, Differentiable, Error, KlDivergence, Loss, Reduction};
use ndarray::{Array2, Axis, array};
use proptest::prelude::*;

fn case(n: usize, c: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let x = matrix(random_array(&[n, c], seed, 3.0));
    let q = matrix(random_probs(&[n, c], seed + 1));
    (x, q)
}

fn softmax(x: &Array2<f64>) -> Array2<f64> {
    let mut p = x.mapv(f64::exp);
    let sums = p.sum_axis(Axis(1)).insert_axis(Axis(1));
    p /= &sums;
    p
}

#[test]
fn contract() {
    let (x, q) = case(6, 4, 21);
    // with zeros in the target (0 log 0 = 0) and a row that does not sum to 1
    let mut q_sparse = q.clone();
    q_sparse[[0, 1]] = 0.0;
    q_sparse[[2, 0]] = 0.0;
    q_sparse[[2, 3]] = 0.0;
    q_sparse.row_mut(4).fill(0.5);
    for (name, target) in [("dense", q), ("sparse", q_sparse)] {
        let args = Paired::new(x.clone(), target, "probs");
        check_contract(&KlDivergence::new(), &Case::new(name, args));
    }
}

#[test]
fn known_value_and_pytorch_batchmean() {
    // KL([0.5, 0.5, 0] || softmax([2, 1, 0.1])), by hand:
    let lse = (2f64.exp() + 1f64.exp() + 0.1f64.exp()).ln();
    let by_hand = 0.5 * (0.5f64.ln() - (2.0 - lse)) + 0.5 * (0.5f64.ln() - (1.0 - lse));
    let x = array![[2.0_f64, 1.0, 0.1], [2.0, 1.0, 0.1]];
    let q = array![[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]];
    let mean = KlDivergence::new().forward(x.view(), q.view()).unwrap();
    assert!((mean - by_hand).abs() < 1e-15, "batchmean divides by N = 2");
    let sum = KlDivergence::new()
        .with_reduction(Reduction::Sum)
        .forward(x.view(), q.view())
        .unwrap();
    assert!((sum - 2.0 * by_hand).abs() < 1e-15);
}

#[test]
fn extreme_f32_logits_stay_finite() {
    let x = array![[1e30_f32, -1e30, 0.0], [-1e30, -1e30, -1e30]];
    let q = array![[0.0_f32, 0.5, 0.5], [0.2, 0.3, 0.5]];
    let kl = KlDivergence::new().with_reduction(Reduction::None);
    let per = kl.per_sample(x.view(), q.view()).unwrap();
    // Row 0: 0.5 (ln 0.5 + 2e30) + 0.5 (ln 0.5 + 1e30) = 1.5e30 in f32.
    assert!((per[0] / 1.5e30 - 1.0).abs() < 1e-6, "{}", per[0]);
    let uniform = 0.2 * (0.6f32).ln() + 0.3 * (0.9f32).ln() + 0.5 * (1.5f32).ln();
    assert!((per[1] - uniform).abs() < 1e-6);
    let g = kl.backward(x.view(), q.view()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g.row(0).to_vec(), vec![1.0, -0.5, -0.5]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let kl = KlDivergence::<f64>::new();
    let x = Array2::<f64>::zeros((2, 3));
    let msg = |r: classloss::Result<f64>| r.unwrap_err().to_string();
    assert_eq!(
        msg(kl.forward(x.view(), Array2::zeros((2, 2)).view())),
        "probs: expected shape [2, 3], got [2, 2]"
    );
    let q = array![[0.5, 0.5, 0.0], [1.5, 0.0, 0.0]];
    assert_eq!(
        msg(kl.forward(x.view(), q.view())),
        "probs[1, 0]: expected a probability in [0, 1], got 1.5"
    );
    let q = array![[0.5, 0.5, 0.0], [0.5, -0.5, 0.0]];
    assert_eq!(
        msg(kl.forward(x.view(), q.view())),
        "probs[1, 1]: expected a probability in [0, 1], got -0.5"
    );
    let q = array![[0.5, f64::NAN, 0.0], [0.5, 0.5, 0.0]];
    assert!(matches!(
        kl.forward(x.view(), q.view()).unwrap_err(),
        Error::InvalidTarget { what: "probs", .. }
    ));
    assert_eq!(
        msg(kl.forward(Array2::zeros((0, 3)).view(), Array2::zeros((0, 3)).view())),
        "logits: expected at least one sample, got an empty array of shape [0, 3]"
    );
    assert_eq!(
        msg(kl.forward(Array2::zeros((2, 0)).view(), Array2::zeros((2, 0)).view())),
        "logits: expected at least one class, got an empty array of shape [2, 0]"
    );
    let mut g = Array2::zeros((3, 3));
    assert_eq!(
        msg(kl.forward_backward_into(x.view(), Array2::zeros((2, 3)).view(), g.view_mut())),
        "grad: expected shape [2, 3], got [3, 3]"
    );
    assert!(
        kl.per_sample(x.view(), Array2::zeros((3, 3)).view())
            .is_err()
    );
}

fn logits_and_probs() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    (1usize..6, 2usize..7).prop_flat_map(|(n, c)| {
        (
            proptest::collection::vec(-30.0f64..30.0, n * c),
            proptest::collection::vec(0.0f64..1.0, n * c),
        )
            .prop_map(move |(v, w)| {
                let x = Array2::from_shape_vec((n, c), v).unwrap();
                let mut q = Array2::from_shape_vec((n, c), w).unwrap();
                // Sparse targets: drop the small entries, then normalize.
                q.mapv_inplace(|v| if v < 0.2 { 0.0 } else { v });
                for mut row in q.rows_mut() {
                    let s = row.sum();
                    if s == 0.0 {
                        row[0] = 1.0;
                    } else {
                        row /= s;
                    }
                }
                (x, q)
            })
    })
}

proptest! {
    #[test]
    fn non_negative_and_zero_at_the_target((x, q) in logits_and_probs()) {
        let kl = KlDivergence::new().with_reduction(Reduction::None);
        let per = kl.per_sample(x.view(), q.view()).unwrap();
        prop_assert!(per.iter().all(|&v| v >= -1e-12 && v.is_finite()));
        let p = softmax(&(&x / 10.0));
        let (at_p, g) = kl.forward_backward((&x / 10.0).view(), p.view()).unwrap();
        prop_assert!(at_p.abs() < 1e-12, "KL(p || p) = {}", at_p);
        prop_assert!(g.iter().all(|v| v.abs() < 1e-12));
    }

    /// KL = cross-entropy with probability targets minus the targets'
    /// entropy, so the gradients are equal (both means divide by N).
    #[test]
    fn gradient_equals_cross_entropy_with_probabilities((x, q) in logits_and_probs()) {
        let (kv, kg) = KlDivergence::new().forward_backward(x.view(), q.view()).unwrap();
        let (cv, cg) = CrossEntropy::new().forward_backward(x.view(), ClassTarget::Probs(q.view())).unwrap();
        let entropy = -q.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>() / x.nrows() as f64;
        prop_assert!((kv - (cv - entropy)).abs() <= 1e-11 * (1.0 + cv.abs()));
        prop_assert!(kg.iter().zip(cg.iter()).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn f32_agrees_with_f64((x, q) in logits_and_probs()) {
        let (a, ga) = KlDivergence::<f64>::new().forward_backward(x.view(), q.view()).unwrap();
        let (x32, q32) = (x.mapv(|v| v as f32), q.mapv(|v| v as f32));
        let (b, gb) = KlDivergence::<f32>::new().forward_backward(x32.view(), q32.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        prop_assert!(ga.iter().zip(gb.iter()).all(|(p, q)| (p - *q as f64).abs() < 1e-5));
    }
}
