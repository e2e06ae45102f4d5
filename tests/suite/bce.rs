//! Binary cross-entropy on probabilities: the contract, the clamp at exact 0
//! and 1, broadcasting weights, properties, errors, and `f32` extremes.
//! (Reference values: `tests/conformance`.)

use crate::common::{
    assert_binary_shell_errors, assert_weights_rejected, inputs_and_targets, matrix, random_array,
    soft_targets, weighted_shapes,
};
use crate::contract::{Args, Case, Paired, check_contract};
use classloss::{Bce, Differentiable, Error, Loss, Reduction};
use ndarray::{Array1, Array2, ArrayD, IxDyn, array};
use proptest::prelude::*;

/// Probabilities in `[0.05, 0.95]`, away from the clamp.
fn probs(shape: &[usize], seed: u64) -> ArrayD<f64> {
    random_array(shape, seed, 0.45).mapv(|v| v + 0.5)
}

/// Naive `-w [t ln p + (1 - t) ln(1 - p)]`, exact where nothing is clamped.
fn naive(p: f64, t: f64, w: f64) -> f64 {
    -w * (t * p.ln() + (1.0 - t) * (1.0 - p).ln())
}

/// Subnormal, tiny, almost-one and exact 0 and 1 probabilities (in `f32`),
/// for the contract's extreme inputs.
const EXTREME_PROBS: [f64; 8] = [1e-45, 1e-38, 1e-30, 0.0, 1.0 - 6e-8, 0.5, 1.0, 1e-7];

#[test]
fn contract() {
    for (shape, seed, weights) in weighted_shapes() {
        let targets = soft_targets(&shape, seed + 10);
        let args = Paired::new(probs(&shape, seed), targets, "targets");
        let n = args.x.len();
        let extreme: Vec<f64> = (0..n).map(|i| EXTREME_PROBS[i % 8]).collect();
        let extremes = vec![args.with_params(&extreme)];
        for w in weights {
            let what = format!(
                "{shape:?} weight={:?}",
                w.as_ref().map(|w| w.shape().to_vec())
            );
            let bce = match w {
                Some(w) => Bce::<f64, IxDyn>::spatial().with_weight(w).unwrap(),
                None => Bce::spatial(),
            };
            check_contract(
                &bce,
                &Case::new(what, args.clone()).extremes(extremes.clone()),
            );
        }
    }
}

#[test]
fn values_match_the_naive_formula_and_mean_divides_by_elements() {
    let p = probs(&[4, 3], 5);
    let t = soft_targets(&[4, 3], 6);
    let w = array![0.5, 2.0, 1.25];
    let bce = Bce::new()
        .with_weight(w.clone())
        .unwrap()
        .with_reduction(Reduction::None);
    let p2 = matrix(p.clone());
    let t2 = matrix(t.clone());
    let per = bce.per_sample(p2.view(), t2.view()).unwrap();
    let mut sum = 0.0;
    for ((i, k), &v) in per.indexed_iter() {
        let expected = naive(p2[[i, k]], t2[[i, k]], w[k]);
        assert!(
            (v - expected).abs() < 1e-14,
            "[{i}, {k}]: {v} vs {expected}"
        );
        sum += expected;
    }
    let mean = Bce::new()
        .with_weight(w)
        .unwrap()
        .forward(p2.view(), t2.view())
        .unwrap();
    // Divided by the 12 elements, not by the sum of the weights.
    assert!((mean - sum / 12.0).abs() < 1e-14);
}

#[test]
fn exact_zero_and_one_are_clamped_as_in_pytorch() {
    let p = array![[0.0_f64, 1.0, 0.0, 1.0]];
    let t = array![[1.0, 0.0, 0.0, 1.0]];
    let bce = Bce::new().with_reduction(Reduction::None);
    let per = bce.per_sample(p.view(), t.view()).unwrap();
    assert_eq!(per, array![[100.0, 100.0, 0.0, 0.0]]);
    // PyTorch's backward: (p - t) / max(p (1 - p), 1e-12 as an f32 constant).
    let eps = 1e-12_f32 as f64;
    let g = bce.backward(p.view(), t.view()).unwrap();
    assert_eq!(g, array![[-1.0 / eps, 1.0 / eps, 0.0, 0.0]]);
    // A soft target at an exact 0: both clamped terms count.
    let half = bce
        .per_sample(array![[0.0]].view(), array![[0.25]].view())
        .unwrap();
    assert_eq!(half[[0, 0]], 25.0);
    // Just inside the clamp the log is exact: ln(1e-40) = -92.1 > -100.
    let tiny = bce
        .per_sample(array![[1e-40]].view(), array![[1.0]].view())
        .unwrap();
    assert!((tiny[[0, 0]] - 40.0 * 10f64.ln()).abs() < 1e-12);
}

#[test]
fn gradient_is_zero_where_the_probability_equals_the_target() {
    let t = array![[0.2_f64, 0.5, 0.9]];
    let g = Bce::new().backward(t.view(), t.view()).unwrap();
    assert!(g.iter().all(|&v| v == 0.0), "{g}");
}

#[test]
fn weights_broadcast_like_their_explicit_tiling() {
    let p = matrix(probs(&[4, 3], 7));
    let t = matrix(soft_targets(&[4, 3], 8));
    let per_class = array![0.5, 2.0, 1.5];
    let per_row = array![[1.0], [0.0], [3.0], [0.25]];
    let tiled_class = Array2::from_shape_fn((4, 3), |(_, k)| per_class[k]);
    let tiled_row = Array2::from_shape_fn((4, 3), |(i, _)| per_row[[i, 0]]);
    for (short, full) in [
        (per_class.into_dyn(), tiled_class),
        (per_row.into_dyn(), tiled_row),
    ] {
        let a = Bce::new().with_weight(short).unwrap();
        let b = Bce::new().with_weight(full).unwrap();
        let (va, ga) = a.forward_backward(p.view(), t.view()).unwrap();
        let (vb, gb) = b.forward_backward(p.view(), t.view()).unwrap();
        assert_eq!(va, vb);
        assert_eq!(ga, gb);
    }
}

#[test]
fn transposed_inputs_give_transposed_results() {
    let p = matrix(probs(&[3, 5], 11));
    let t = matrix(soft_targets(&[3, 5], 12));
    let bce = Bce::new().with_reduction(Reduction::None);
    let per = bce.per_sample(p.view(), t.view()).unwrap();
    let per_t = bce.per_sample(p.t(), t.t()).unwrap();
    assert_eq!(per.t(), per_t);
    let g = bce.backward(p.view(), t.view()).unwrap();
    let mut g_t = Array2::zeros((5, 3));
    bce.forward_backward_into(p.t(), t.t(), g_t.view_mut())
        .unwrap();
    assert_eq!(g.t(), g_t);
}

#[test]
fn extreme_f32_probabilities_stay_finite_and_correct() {
    // Subnormal, tiny and almost-one probabilities, and exact 0 and 1.
    let p = array![[1e-45_f32, 1e-38, 1e-30, 0.0], [1.0 - 6e-8, 0.5, 1.0, 1e-7]];
    let t = array![[1.0_f32, 1.0, 0.0, 0.0], [0.0, 0.5, 1.0, 1.0]];
    let bce = Bce::new().with_reduction(Reduction::None);
    let per = bce.per_sample(p.view(), t.view()).unwrap();
    let g = bce.backward(p.view(), t.view()).unwrap();
    assert!(per.iter().chain(g.iter()).all(|v| v.is_finite()));
    // ln(1e-45) = -103.6 is clamped to -100.
    assert_eq!(per[[0, 0]], 100.0);
    assert!((per[[0, 1]] - 87.498_2).abs() < 1e-3);
    assert!((per[[1, 0]] as f64 - -(1.0 - (1.0 - 6e-8_f32) as f64).ln()).abs() < 1e-4);
    assert_eq!(per[[1, 2]], 0.0);
    assert!((per[[1, 1]] - std::f32::consts::LN_2).abs() < 1e-6);
    // f32 agrees with f64 on the same (f32-representable) inputs.
    let p64 = p.mapv(f64::from);
    let t64 = t.mapv(f64::from);
    let per64 = Bce::new()
        .with_reduction(Reduction::None)
        .per_sample(p64.view(), t64.view())
        .unwrap();
    for (a, b) in per.iter().zip(per64.iter()) {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{a} vs {b}"
        );
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let bce = Bce::<f64>::new();
    let p = array![[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]];
    let t = array![[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
    assert_binary_shell_errors(&bce, "probs", &p);
    // weight shape (checked at call time)
    let e = Bce::new()
        .with_weight(array![1.0, 2.0])
        .unwrap()
        .forward(p.view(), t.view())
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { what: "weight", .. }));
    assert_eq!(
        e.to_string(),
        "weight: expected shape broadcastable to [2, 3], got [2]"
    );
    let e = Bce::new()
        .with_weight(Array2::<f64>::ones((3, 3)))
        .unwrap()
        .forward(p.view(), t.view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "weight: expected shape broadcastable to [2, 3], got [3, 3]"
    );
    // probabilities out of [0, 1], and NaN
    let bad = array![[0.5, 1.5, 0.5], [0.5, 0.5, 0.5]];
    let e = bce.forward(bad.view(), t.view()).unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { what: "probs", .. }));
    assert_eq!(
        e.to_string(),
        "probs[0, 1]: expected a probability in [0, 1], got 1.5"
    );
    let bad = array![[0.5, 0.5, 0.5], [0.5, 0.5, f64::NAN]];
    let e = bce.forward(bad.view(), t.view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "probs[1, 2]: expected a probability in [0, 1], got NaN"
    );
    let bad = array![[-1e-300, 0.5, 0.5], [0.5, 0.5, 0.5]];
    assert!(bce.forward(bad.view(), t.view()).is_err());
    // invalid weights
    assert_weights_rejected("weight", |w| Bce::<f64>::new().with_weight(w));
    let e = Bce::<f64>::new()
        .with_weight(array![[f64::INFINITY]])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "weight", .. }));
    // rank 0
    let scalar = ArrayD::<f64>::from_elem(IxDyn(&[]), 0.5);
    let e = Bce::<f64, IxDyn>::spatial()
        .forward(scalar.view(), scalar.view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "probs: expected at least 1 dimensions, got 0 (shape [])"
    );
}

fn probs_and_targets() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    inputs_and_targets(0.001f64..0.999, 0.0f64..=1.0)
}

proptest! {
    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((p, t) in probs_and_targets()) {
        let w = Array1::linspace(0.5, 1.5, p.ncols());
        let bce = Bce::new().with_weight(w).unwrap();
        let per = bce.clone().with_reduction(Reduction::None).per_sample(p.view(), t.view()).unwrap();
        let sum = bce.clone().with_reduction(Reduction::Sum).forward(p.view(), t.view()).unwrap();
        let none = bce.clone().with_reduction(Reduction::None).forward(p.view(), t.view()).unwrap();
        let mean = bce.forward(p.view(), t.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        prop_assert_eq!(sum, none);
        prop_assert!((mean - sum / p.len() as f64).abs() <= 1e-12 * (1.0 + mean.abs()));
        prop_assert!(per.iter().all(|&v| v.is_finite() && v >= -1e-15));
    }

    #[test]
    fn loss_is_smallest_where_the_probability_is_the_target((p, t) in probs_and_targets()) {
        // Gibbs: -[t ln p + (1-t) ln(1-p)] >= -[t ln t + (1-t) ln(1-t)].
        let bce = Bce::new().with_reduction(Reduction::None);
        let at_p = bce.per_sample(p.view(), t.view()).unwrap();
        let t_inner = t.mapv(|v| v.clamp(1e-3, 1.0 - 1e-3));
        let at_t = bce.per_sample(t_inner.view(), t_inner.view()).unwrap();
        let at_p_inner = bce.per_sample(p.view(), t_inner.view()).unwrap();
        prop_assert!(at_p.iter().all(|v| v.is_finite()));
        for (a, b) in at_p_inner.iter().zip(at_t.iter()) {
            prop_assert!(a >= &(b - 1e-12));
        }
    }

    #[test]
    fn f32_agrees_with_f64((p, t) in probs_and_targets()) {
        let p32 = p.mapv(|v| v as f32);
        let t32 = t.mapv(|v| v as f32);
        // Compare on the same (f32-representable) inputs.
        let p64 = p32.mapv(f64::from);
        let t64 = t32.mapv(f64::from);
        let (a, ga) = Bce::new().forward_backward(p64.view(), t64.view()).unwrap();
        let (b, gb) = Bce::new().forward_backward(p32.view(), t32.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        for (x, y) in ga.iter().zip(gb.iter()) {
            prop_assert!((x - *y as f64).abs() <= 1e-5 * (1.0 + x.abs()), "{} vs {}", x, y);
        }
    }
}
