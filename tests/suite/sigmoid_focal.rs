//! The sigmoid focal loss: the contract under every option (including `gamma
//! < 1`), agreement with torchvision's formula and with BCE-with-logits at
//! `gamma = 0`, finiteness where `1 - p_t` vanishes, properties, errors, and
//! `f32` extremes. (Reference values: `tests/conformance`.)

use crate::common::{
    assert_binary_shell_errors, inputs_and_targets, matrix, random_array, soft_targets,
};
use crate::contract::{Case, Paired, check_contract};
use classloss::gradcheck::GradCheck;
use classloss::{BceWithLogits, Differentiable, Error, Loss, Reduction, SigmoidFocal};
use ndarray::{Array2, ArrayD, IxDyn, array};
use proptest::prelude::*;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// torchvision's code, transcribed; accurate in `f64` for moderate logits.
fn torchvision(x: f64, t: f64, gamma: f64, alpha: Option<f64>) -> f64 {
    let p = sigmoid(x);
    let ce = -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
    let p_t = p * t + (1.0 - p) * (1.0 - t);
    let loss = ce * (1.0 - p_t).powf(gamma);
    match alpha {
        Some(a) => (a * t + (1.0 - a) * (1.0 - t)) * loss,
        None => loss,
    }
}

fn hard_targets(shape: &[usize], seed: u64) -> ArrayD<f64> {
    random_array(shape, seed, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 })
}

#[test]
fn defaults_are_torchvisions() {
    let focal = SigmoidFocal::<f64>::new();
    assert_eq!(focal.gamma(), 2.0);
    assert_eq!(focal.alpha(), Some(0.25));
    assert_eq!(focal.reduction(), Reduction::Mean);
}

#[test]
fn contract() {
    for (shape, seed) in [(vec![5, 4], 1u64), (vec![2, 3, 3], 2), (vec![6], 3)] {
        let x = random_array(&shape, seed, 4.0);
        for (kind, targets) in [
            ("soft", soft_targets(&shape, seed + 10)),
            ("hard", hard_targets(&shape, seed + 20)),
        ] {
            let args = Paired::new(x.clone(), targets, "targets");
            for gamma in [0.0, 0.3, 1.0, 2.0, 3.5] {
                for alpha in [None, Some(0.25), Some(0.8)] {
                    let focal = SigmoidFocal::<f64, IxDyn>::spatial()
                        .with_gamma(gamma)
                        .unwrap()
                        .with_alpha(alpha)
                        .unwrap();
                    let what = format!("{shape:?} {kind} gamma={gamma} alpha={alpha:?}");
                    check_contract(&focal, &Case::new(what, args.clone()));
                }
            }
        }
    }
}

#[test]
fn values_match_torchvisions_formula() {
    let x = matrix(random_array(&[6, 4], 4, 5.0));
    let t = matrix(soft_targets(&[6, 4], 5));
    for gamma in [0.0, 0.5, 2.0, 3.0] {
        for alpha in [None, Some(0.25), Some(1.0)] {
            let per = SigmoidFocal::new()
                .with_gamma(gamma)
                .unwrap()
                .with_alpha(alpha)
                .unwrap()
                .with_reduction(Reduction::None)
                .per_sample(x.view(), t.view())
                .unwrap();
            for ((i, k), &v) in per.indexed_iter() {
                let e = torchvision(x[[i, k]], t[[i, k]], gamma, alpha);
                assert!(
                    (v - e).abs() <= 1e-12 * (1.0 + e.abs()),
                    "gamma={gamma} alpha={alpha:?} [{i}, {k}]: {v} vs {e}"
                );
            }
        }
    }
}

#[test]
fn gradient_keeps_relative_accuracy_where_the_prediction_is_confident() {
    // Here 1 - p_t is ~1e-9..1e-13: torchvision's `1 - p_t` loses most of
    // its digits, ours keeps them, so even a relative-only check passes.
    let check = GradCheck {
        atol: 0.0,
        rtol: 1e-5,
        ..GradCheck::default()
    };
    for gamma in [0.25, 0.5, 0.99, 2.0] {
        for (x0, t0) in [(20.0, 1.0), (-20.0, 0.0), (30.0, 1.0), (-30.0, 0.0)] {
            let focal = SigmoidFocal::<f64, IxDyn>::spatial()
                .with_reduction(Reduction::Sum)
                .with_gamma(gamma)
                .unwrap();
            let x = ArrayD::from_elem(IxDyn(&[1]), x0);
            let t = ArrayD::from_elem(IxDyn(&[1]), t0);
            let g = focal.backward(x.view(), t.view()).unwrap();
            assert!(g[[0]] != 0.0);
            let f = |v: &[f64]| {
                let z = ArrayD::from_elem(IxDyn(&[1]), v[0]);
                focal.forward(z.view(), t.view()).unwrap()
            };
            if let Err(e) = check.check(f, &[x0], &[g[[0]]]) {
                panic!("gamma={gamma} x={x0} t={t0}: {e}");
            }
        }
    }
}

#[test]
fn gamma_below_one_stays_finite_where_one_minus_p_t_underflows() {
    // Hard targets with |x| beyond exp's range: 1 - p_t is exactly 0 in
    // floating point, where (1 - p_t)^(gamma - 1) would be infinite.
    let x = array![[800.0_f64, -800.0, 1e300, -1e300, 745.5, 40.0]];
    let t = array![[1.0_f64, 0.0, 1.0, 0.0, 1.0, 1.0]];
    for gamma in [0.0, 1e-3, 0.5, 0.999, 1.0, 2.0] {
        for alpha in [None, Some(0.25)] {
            let focal = SigmoidFocal::new()
                .with_gamma(gamma)
                .unwrap()
                .with_alpha(alpha)
                .unwrap()
                .with_reduction(Reduction::None);
            let per = focal.per_sample(x.view(), t.view()).unwrap();
            let g = focal.backward(x.view(), t.view()).unwrap();
            assert!(
                per.iter().chain(g.iter()).all(|v| v.is_finite()),
                "gamma={gamma}: {per} {g}"
            );
            // The limit: no loss and no gradient for a confident right answer.
            for k in 0..5 {
                assert_eq!(per[[0, k]], 0.0, "gamma={gamma} [{k}]");
                assert_eq!(g[[0, k]], 0.0, "gamma={gamma} [{k}]");
            }
            // Not yet underflowed: small, positive loss and a negative gradient.
            if gamma < 1.0 {
                assert!(per[[0, 5]] > 0.0 && g[[0, 5]] < 0.0);
            }
        }
    }
    // The wrong side: the loss grows like |x|, the gradient tends to the
    // BCE one scaled by a_t.
    let x = array![[-1e300_f64, 1e300]];
    let per = SigmoidFocal::new()
        .with_gamma(0.5)
        .unwrap()
        .with_reduction(Reduction::None);
    let v = per
        .per_sample(x.view(), t.slice(ndarray::s![.., 0..2]))
        .unwrap();
    assert_eq!(v, array![[0.25 * 1e300, 0.75 * 1e300]]);
    let g = per
        .backward(x.view(), t.slice(ndarray::s![.., 0..2]))
        .unwrap();
    assert_eq!(g, array![[-0.25, 0.75]]);
}

#[test]
fn f32_logits_up_to_1e30_are_finite_and_correct() {
    let x = array![
        [1e30_f32, -1e30, 1e30, -1e30, 1e30],
        [88.0, -88.0, 120.0, -17.0, 0.0]
    ];
    let t = array![[0.0_f32, 1.0, 1.0, 0.0, 0.5], [1.0, 1.0, 1.0, 0.0, 1.0]];
    for gamma in [0.0, 0.5, 2.0] {
        for alpha in [None, Some(0.25)] {
            let f32_loss = SigmoidFocal::new()
                .with_gamma(gamma)
                .unwrap()
                .with_alpha(alpha)
                .unwrap()
                .with_reduction(Reduction::None);
            let f64_loss = SigmoidFocal::new()
                .with_gamma(gamma)
                .unwrap()
                .with_alpha(alpha)
                .unwrap()
                .with_reduction(Reduction::None);
            let per = f32_loss.per_sample(x.view(), t.view()).unwrap();
            let g = f32_loss.backward(x.view(), t.view()).unwrap();
            assert!(per.iter().chain(g.iter()).all(|v| v.is_finite()));
            let x64 = x.mapv(f64::from);
            let t64 = t.mapv(f64::from);
            let per64 = f64_loss.per_sample(x64.view(), t64.view()).unwrap();
            let g64 = f64_loss.backward(x64.view(), t64.view()).unwrap();
            for (a, b) in per.iter().zip(per64.iter()) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-6 * b.abs() + 1e-30,
                    "gamma={gamma} alpha={alpha:?}: {a} vs {b}"
                );
            }
            for (a, b) in g.iter().zip(g64.iter()) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-6 * b.abs() + 1e-30,
                    "gamma={gamma} alpha={alpha:?}: grad {a} vs {b}"
                );
            }
        }
    }
    // The confidently wrong logits: l = a_t |x| (1 - p_t = 1).
    let per = SigmoidFocal::new()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap();
    assert!((per[[0, 0]] / 0.75e30 - 1.0).abs() < 1e-6);
    assert!((per[[0, 1]] / 0.25e30 - 1.0).abs() < 1e-6);
    // A soft target at +1e30: 1 - p_t = 1/2, a_t = 1/2, ce = x/2.
    assert_eq!(per[[0, 4]], 0.5 * 0.25 * 0.5e30);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    // invalid options
    let e = SigmoidFocal::<f64>::new().with_gamma(-1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `gamma`: expected a finite number >= 0, got -1"
    );
    for bad in [f64::NAN, f64::INFINITY] {
        let e = SigmoidFocal::<f64>::new().with_gamma(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidOption { name: "gamma", .. }));
    }
    let e = SigmoidFocal::<f64>::new()
        .with_alpha(Some(1.5))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `alpha`: expected a number in [0, 1], got 1.5"
    );
    let e = SigmoidFocal::<f64>::new()
        .with_alpha(Some(-0.25))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `alpha`: expected a number in [0, 1], got -0.25"
    );
    let e = SigmoidFocal::<f64>::new()
        .with_alpha(Some(f64::NAN))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `alpha`: expected a number in [0, 1], got NaN"
    );
    // a gamma that f32 cannot hold
    let e = SigmoidFocal::<f32>::new()
        .with_gamma(1e39)
        .unwrap()
        .forward(array![[0.5_f32]].view(), array![[1.0_f32]].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `gamma`: expected a number >= 0 that is finite in the element type, got 1000000000000000000000000000000000000000"
    );
    // shapes and values
    let focal = SigmoidFocal::<f64>::new();
    let x = Array2::<f64>::zeros((2, 3));
    assert_binary_shell_errors(&focal, "logits", &x);
    let e = focal
        .forward(x.view(), array![[1.0, 0.0, 1.0], [0.0, 1.0, 1.01]].view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidTarget {
            what: "targets",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "targets[1, 2]: expected a value in [0, 1], got 1.01"
    );
    let scalar = ArrayD::<f64>::zeros(IxDyn(&[]));
    let e = SigmoidFocal::<f64, IxDyn>::spatial()
        .forward(scalar.view(), scalar.view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits: expected at least 1 dimensions, got 0 (shape [])"
    );
}

/// Logits in `[-range, range]` and targets, with exact 0s and 1s.
fn logits_and_targets(range: f64) -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    inputs_and_targets(
        -range..range,
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
    )
}

proptest! {
    #[test]
    fn gamma_zero_without_alpha_is_bce_with_logits((x, t) in logits_and_targets(60.0)) {
        let focal = SigmoidFocal::new().with_gamma(0.0).unwrap().with_alpha(None).unwrap();
        let bce = BceWithLogits::new();
        let (a, ga) = focal.forward_backward(x.view(), t.view()).unwrap();
        let (b, gb) = bce.forward_backward(x.view(), t.view()).unwrap();
        // Same terms in the same order: equal to the last bit.
        prop_assert_eq!(a, b);
        prop_assert_eq!(ga, gb);
    }

    #[test]
    fn focusing_only_lowers_the_loss((x, t) in logits_and_targets(20.0), gamma in 0.0f64..5.0) {
        // (1 - p_t)^gamma <= 1, and alpha_t <= max(alpha, 1 - alpha).
        let focal = SigmoidFocal::new().with_gamma(gamma).unwrap().with_alpha(None).unwrap()
            .with_reduction(Reduction::None);
        let bce = BceWithLogits::new().with_reduction(Reduction::None);
        let lf = focal.per_sample(x.view(), t.view()).unwrap();
        let lb = bce.per_sample(x.view(), t.view()).unwrap();
        for (f, b) in lf.iter().zip(lb.iter()) {
            prop_assert!(*f >= 0.0 && *f <= b * (1.0 + 1e-14));
        }
    }

    #[test]
    fn finite_for_every_logit_and_gamma(
        (x, t) in logits_and_targets(1e300), gamma in prop_oneof![0.0f64..1.0, 0.0f64..10.0],
        alpha in proptest::option::of(0.0f64..=1.0),
    ) {
        let focal = SigmoidFocal::new().with_gamma(gamma).unwrap().with_alpha(alpha).unwrap()
            .with_reduction(Reduction::Sum);
        let (v, g) = focal.forward_backward(x.view(), t.view()).unwrap();
        prop_assert!(v.is_finite() && v >= 0.0);
        prop_assert!(g.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((x, t) in logits_and_targets(30.0), gamma in 0.0f64..4.0) {
        let focal = SigmoidFocal::new().with_gamma(gamma).unwrap();
        let per = focal.clone().with_reduction(Reduction::None).per_sample(x.view(), t.view()).unwrap();
        let sum = focal.clone().with_reduction(Reduction::Sum).forward(x.view(), t.view()).unwrap();
        let mean = focal.forward(x.view(), t.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        prop_assert!((mean - sum / x.len() as f64).abs() <= 1e-12 * (1.0 + mean.abs()));
    }

    #[test]
    fn f32_agrees_with_f64((x, t) in logits_and_targets(30.0), gamma in 0.0f64..4.0) {
        let x32 = x.mapv(|v| v as f32);
        let t32 = t.mapv(|v| v as f32);
        let x64 = x32.mapv(f64::from);
        let t64 = t32.mapv(f64::from);
        let (a, ga) = SigmoidFocal::new().with_gamma(gamma).unwrap()
            .forward_backward(x64.view(), t64.view()).unwrap();
        let (b, gb) = SigmoidFocal::new().with_gamma(gamma).unwrap()
            .forward_backward(x32.view(), t32.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        for (p, q) in ga.iter().zip(gb.iter()) {
            prop_assert!((p - *q as f64).abs() <= 1e-5 * (1e-2 + p.abs()), "{} vs {}", p, q);
        }
    }
}

/// A sum beyond `f32` is an overflow error, as for BCE with logits, not `inf`.
#[test]
fn a_sum_beyond_f32_is_an_overflow_error() {
    let x = ndarray::array![[3e38_f32, 3e38]];
    let t = ndarray::array![[0.0_f32, 0.0]];
    for gamma in [0.0, 2.0] {
        let loss = SigmoidFocal::new()
            .with_gamma(gamma)
            .unwrap()
            .with_reduction(classloss::Reduction::Sum);
        let e = loss.forward(x.view(), t.view()).unwrap_err();
        assert!(matches!(e, classloss::Error::Overflow { .. }), "{e}");
    }
}

/// Column-major logits and targets take the element-by-element path (not
/// the vectorized one): the same value, per-sample values and gradient as
/// their row-major copies, the focal term's `exp(-|x|)` included.
#[test]
fn column_major_inputs_give_the_row_major_result() {
    let x = matrix(random_array(&[4, 3], 41, 6.0));
    let t = matrix(soft_targets(&[4, 3], 42));
    let column_major = |a: &Array2<f64>| a.t().as_standard_layout().into_owned().reversed_axes();
    let (x_f, t_f) = (column_major(&x), column_major(&t));
    assert!(x_f.as_slice().is_none() && x_f == x && t_f == t);
    for gamma in [0.5, 2.0] {
        let loss = SigmoidFocal::new().with_gamma(gamma).unwrap();
        let (v, g) = loss.forward_backward(&x, &t).unwrap();
        let (v_f, g_f) = loss.forward_backward(&x_f, &t_f).unwrap();
        assert!(
            (v - v_f).abs() <= 1e-14 * v.abs(),
            "gamma {gamma}: {v} vs {v_f}"
        );
        for (a, b) in g.iter().zip(g_f.iter()) {
            assert!(
                (a - b).abs() <= 1e-14 * (1.0 + a.abs()),
                "gamma {gamma}: {g} vs {g_f}"
            );
        }
        let p = loss.per_sample(&x, &t).unwrap();
        let p_f = loss.per_sample(&x_f, &t_f).unwrap();
        for (a, b) in p.iter().zip(p_f.iter()) {
            assert!(
                (a - b).abs() <= 1e-14 * (1.0 + a.abs()),
                "gamma {gamma}: {p} vs {p_f}"
            );
        }
    }
}
