//! Symmetric cross-entropy: the contract under every option, properties
//! (beta = 0 is alpha CE; the reverse term is -log_zero (1 - p_y)), errors,
//! extreme `f32` logits. (Reference values: `tests/conformance`.)

use crate::contract::{Case, check_contract};
use crate::labels::{
    assert_f32_close, assert_label_errors, close, logits_and_labels, random_labeled,
};
use classloss::{CrossEntropy, Differentiable, Error, Loss, Reduction, SymmetricCrossEntropy};
use ndarray::array;
use proptest::prelude::*;

fn sce(alpha: f64, beta: f64, log_zero: f64) -> SymmetricCrossEntropy<f64> {
    SymmetricCrossEntropy::new()
        .with_alpha(alpha)
        .unwrap()
        .with_beta(beta)
        .unwrap()
        .with_log_zero(log_zero)
        .unwrap()
}

#[test]
fn contract() {
    let args = random_labeled(7, 5, 41, 3.0);
    for (alpha, beta, log_zero) in [
        (0.1, 1.0, -4.0),
        (1.0, 0.5, -6.0),
        (0.0, 1.0, -4.0),
        (1.0, 0.0, -4.0),
        (2.0, 3.0, 1e-4_f64.ln()),
    ] {
        let what = format!("alpha={alpha} beta={beta} A={log_zero}");
        check_contract(&sce(alpha, beta, log_zero), &Case::new(what, args.clone()));
    }
}

#[test]
fn reverse_term_is_bounded_by_minus_log_zero() {
    // alpha = 0 leaves beta * RCE, which is at most -beta A for a hopeless
    // sample and 0 for a certain one.
    let loss = sce(0.0, 2.0, -4.0).with_reduction(Reduction::None);
    let x = array![[-300.0_f64, 300.0], [300.0, -300.0], [0.0, 0.0]];
    let per = loss.per_sample(x.view(), array![0, 0, 0].view()).unwrap();
    assert_eq!(per.to_vec(), vec![8.0, 0.0, 4.0]);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    let x = array![
        [1e30_f32, -1e30, 0.0],
        [-1e30, -1e30, -1e30],
        [1e30, -1e30, 0.0]
    ];
    let y = array![1_usize, 2, 0];
    let loss = SymmetricCrossEntropy::new().with_reduction(Reduction::None);
    let per = loss.per_sample(x.view(), y.view()).unwrap();
    assert!((per[0] / (0.1 * 2e30) - 1.0).abs() < 1e-6, "{per}");
    let uniform = 0.1 * 3f32.ln() + 4.0 * (2.0 / 3.0);
    assert!((per[1] - uniform).abs() < 1e-6, "{per}");
    assert_eq!(per[2], 0.0);
    let g = loss.backward(x.view(), y.view()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g}");
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&SymmetricCrossEntropy::new());
    let e = SymmetricCrossEntropy::<f64>::new()
        .with_alpha(-1.0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `alpha`: expected a finite number >= 0, got -1"
    );
    let e = SymmetricCrossEntropy::<f64>::new()
        .with_beta(f64::NAN)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "beta", .. }));
    let e = SymmetricCrossEntropy::<f64>::new()
        .with_beta(-0.5)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `beta`: expected a finite number >= 0, got -0.5"
    );
    for (bad, shown) in [(0.0, "0"), (4.0, "4"), (f64::NEG_INFINITY, "-inf")] {
        let e = SymmetricCrossEntropy::<f64>::new()
            .with_log_zero(bad)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `log_zero`: expected a finite number < 0, got {shown}")
        );
    }
    let d = SymmetricCrossEntropy::<f64>::default();
    assert_eq!((d.alpha(), d.beta(), d.log_zero()), (0.1, 1.0, -4.0));
}

proptest! {
    /// beta = 0 leaves alpha times cross-entropy.
    #[test]
    fn beta_zero_is_scaled_cross_entropy((x, y) in logits_and_labels(), alpha in 0.0f64..3.0) {
        let (a, ga) = sce(alpha, 0.0, -4.0).forward_backward(x.view(), y.view()).unwrap();
        let (b, gb) = CrossEntropy::new().forward_backward(x.view(), y.view()).unwrap();
        prop_assert!((a - alpha * b).abs() <= 1e-12 * (1.0 + alpha * b));
        prop_assert!(close(&ga, &(&gb * alpha), 1e-12));
    }

    /// Per sample: alpha CE + beta (-A) (1 - p_y).
    #[test]
    fn value_is_alpha_ce_plus_beta_rce(
        (x, y) in logits_and_labels(), alpha in 0.0f64..3.0, beta in 0.0f64..3.0, a in 0.5f64..10.0,
    ) {
        let per = sce(alpha, beta, -a).per_sample(x.view(), y.view()).unwrap();
        let ce = CrossEntropy::new().per_sample(x.view(), y.view()).unwrap();
        for i in 0..per.len() {
            let expected = alpha * ce[i] + beta * a * (1.0 - (-ce[i]).exp());
            prop_assert!((per[i] - expected).abs() <= 1e-12 * (1.0 + expected));
        }
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), alpha in 0.0f64..2.0, beta in 0.0f64..2.0) {
        let a = sce(alpha, beta, -6.0).forward_backward(x.view(), y.view()).unwrap();
        let x32 = x.mapv(|v| v as f32);
        let l32 = SymmetricCrossEntropy::<f32>::new().with_alpha(alpha).unwrap()
            .with_beta(beta).unwrap().with_log_zero(-6.0).unwrap();
        let b = l32.forward_backward(x32.view(), y.view()).unwrap();
        assert_f32_close((a.0, &a.1), (b.0, &b.1), 1e-5)?;
    }
}
