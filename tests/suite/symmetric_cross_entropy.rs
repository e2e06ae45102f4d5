//! Symmetric cross-entropy: the contract under every option, properties
//! (beta = 0 is alpha CE; the reverse term is -log_zero (1 - p_y)), errors,
//! extreme `f32` logits. (Reference values: `tests/conformance`.)

use crate::common::assert_option_rejects;
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, contract_on_random_rows,
    logits_and_labels, on_extreme_rows,
};
use classloss::{CrossEntropy, Loss, Reduction, SymmetricCrossEntropy};
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
    let options = [
        (0.1, 1.0, -4.0),
        (1.0, 0.5, -6.0),
        (0.0, 1.0, -4.0),
        (1.0, 0.0, -4.0),
        (2.0, 3.0, 1e-4_f64.ln()),
    ];
    let losses = options.map(|(alpha, beta, log_zero)| {
        let what = format!("alpha={alpha} beta={beta} A={log_zero}");
        (what, sce(alpha, beta, log_zero))
    });
    contract_on_random_rows(41, losses);
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
    let loss = SymmetricCrossEntropy::new().with_reduction(Reduction::None);
    let (per, _) = on_extreme_rows(&loss);
    assert!((per[0] / (0.1 * 2e30) - 1.0).abs() < 1e-6, "{per}");
    let uniform = 0.1 * 3f32.ln() + 4.0 * (2.0 / 3.0);
    assert!((per[1] - uniform).abs() < 1e-6, "{per}");
    assert_eq!(per[2], 0.0);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&SymmetricCrossEntropy::new());
    let new = SymmetricCrossEntropy::<f64>::new;
    let non_negative = "a finite number >= 0";
    assert_option_rejects("alpha", non_negative, &[(-1.0, "-1")], |a| {
        new().with_alpha(a)
    });
    let bad = [(f64::NAN, "NaN"), (-0.5, "-0.5")];
    assert_option_rejects("beta", non_negative, &bad, |b| new().with_beta(b));
    let bad = [(0.0, "0"), (4.0, "4"), (f64::NEG_INFINITY, "-inf")];
    let set = |a| new().with_log_zero(a);
    assert_option_rejects("log_zero", "a finite number < 0", &bad, set);
    let d = SymmetricCrossEntropy::<f64>::default();
    assert_eq!((d.alpha(), d.beta(), d.log_zero()), (0.1, 1.0, -4.0));
}

proptest! {
    /// beta = 0 leaves alpha times cross-entropy.
    #[test]
    fn beta_zero_is_scaled_cross_entropy((x, y) in logits_and_labels(), alpha in 0.0f64..3.0) {
        assert_scaled_cross_entropy(&sce(alpha, 0.0, -4.0), &x, &y, alpha)?;
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
        assert_f32_agrees(&sce(alpha, beta, -6.0), &x, &y)?;
    }
}
