//! Poly-1: the contract under every option, properties (epsilon = 0 is
//! cross-entropy), errors, extreme `f32` logits. (Reference values:
//! `tests/conformance`.)

use crate::contract::{Case, check_contract};
use crate::labels::{
    assert_f32_close, assert_label_errors, close, logits_and_labels, random_labeled,
};
use classloss::{CrossEntropy, Differentiable, Error, Loss, Poly1, Reduction};
use ndarray::array;
use proptest::prelude::*;

#[test]
fn contract() {
    let args = random_labeled(7, 5, 11, 3.0);
    for eps in [-1.0, -0.5, 0.0, 1.0, 2.5] {
        let poly = Poly1::new().with_epsilon(eps).unwrap();
        check_contract(&poly, &Case::new(format!("epsilon={eps}"), args.clone()));
    }
}

#[test]
fn value_is_cross_entropy_plus_epsilon_times_one_minus_p() {
    // p_y = 0.25 exactly: CE = ln 4, 1 - p_y = 0.75.
    let x = array![[0.0_f64, 0.0, 0.0, 0.0]];
    let poly = Poly1::new().with_epsilon(2.0).unwrap();
    let v = poly.forward(x.view(), array![3].view()).unwrap();
    assert!((v - (4f64.ln() + 2.0 * 0.75)).abs() < 1e-15);
    // The gradient's factor over cross-entropy's is 1 + eps p_y = 1.5.
    let g = poly.backward(x.view(), array![3].view()).unwrap();
    assert!((g[[0, 0]] - 1.5 * 0.25).abs() < 1e-15);
    assert!((g[[0, 3]] - 1.5 * -0.75).abs() < 1e-15);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    let x = array![
        [1e30_f32, -1e30, 0.0],
        [-1e30, -1e30, -1e30],
        [1e30, -1e30, 0.0]
    ];
    let y = array![1_usize, 2, 0];
    let poly = Poly1::new().with_reduction(Reduction::None);
    let per = poly.per_sample(x.view(), y.view()).unwrap();
    assert_eq!(per[0], 2e30);
    assert!((per[1] - (3f32.ln() + 2.0 / 3.0)).abs() < 1e-6);
    assert_eq!(per[2], 0.0);
    let g = poly.backward(x.view(), y.view()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g.row(0).to_vec(), vec![1.0, -1.0, 0.0]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&Poly1::new());
    let e = Poly1::<f64>::new().with_epsilon(-1.5).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `epsilon`: expected a finite number >= -1, got -1.5"
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = Poly1::<f64>::new().with_epsilon(bad).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidOption {
                name: "epsilon",
                ..
            }
        ));
    }
    assert_eq!(
        Poly1::<f64>::new().with_epsilon(-1.0).unwrap().epsilon(),
        -1.0
    );
    assert_eq!(Poly1::<f64>::default().epsilon(), 1.0);
}

proptest! {
    #[test]
    fn epsilon_zero_equals_cross_entropy((x, y) in logits_and_labels()) {
        let poly = Poly1::new().with_epsilon(0.0).unwrap();
        let (a, ga) = poly.forward_backward(x.view(), y.view()).unwrap();
        let (b, gb) = CrossEntropy::new().forward_backward(x.view(), y.view()).unwrap();
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
        prop_assert!(close(&ga, &gb, 1e-12));
    }

    /// Every sample exceeds cross-entropy by exactly epsilon (1 - p_y).
    #[test]
    fn excess_over_cross_entropy_is_epsilon_one_minus_p((x, y) in logits_and_labels(), eps in -1.0f64..4.0) {
        let poly = Poly1::new().with_epsilon(eps).unwrap();
        let per = poly.per_sample(x.view(), y.view()).unwrap();
        let ce = CrossEntropy::new().per_sample(x.view(), y.view()).unwrap();
        for i in 0..per.len() {
            let p = (-ce[i]).exp();
            prop_assert!((per[i] - ce[i] - eps * (1.0 - p)).abs() <= 1e-12 * (1.0 + ce[i]));
        }
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), eps in -1.0f64..4.0) {
        let a = Poly1::<f64>::new().with_epsilon(eps).unwrap().forward_backward(x.view(), y.view()).unwrap();
        let x32 = x.mapv(|v| v as f32);
        let b = Poly1::<f32>::new().with_epsilon(eps).unwrap().forward_backward(x32.view(), y.view()).unwrap();
        assert_f32_close((a.0, &a.1), (b.0, &b.1), 1e-5)?;
    }
}
