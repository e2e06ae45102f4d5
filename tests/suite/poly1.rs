//! Poly-1: the contract under every option, properties (epsilon = 0 is
//! cross-entropy), errors, extreme `f32` logits. (Reference values:
//! `tests/conformance`.)

use crate::common::assert_option_rejects;
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, contract_on_random_rows,
    logits_and_labels, on_extreme_rows,
};
use classloss::{CrossEntropy, Differentiable, Loss, Poly1, Reduction};
use ndarray::array;
use proptest::prelude::*;

#[test]
fn contract() {
    let poly = |eps| Poly1::<f64>::new().with_epsilon(eps).unwrap();
    let epsilons = [-1.0, -0.5, 0.0, 1.0, 2.5];
    contract_on_random_rows(11, epsilons.map(|e| (format!("epsilon={e}"), poly(e))));
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
    let (per, g) = on_extreme_rows(&Poly1::new().with_reduction(Reduction::None));
    assert_eq!(per[0], 2e30);
    assert!((per[1] - (3f32.ln() + 2.0 / 3.0)).abs() < 1e-6);
    assert_eq!(per[2], 0.0);
    assert_eq!(g.row(0).to_vec(), vec![1.0, -1.0, 0.0]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&Poly1::new());
    let bad = [
        (-1.5, "-1.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ];
    let expected = "a finite number >= -1";
    assert_option_rejects("epsilon", expected, &bad, |e| {
        Poly1::<f64>::new().with_epsilon(e)
    });
    assert_eq!(
        Poly1::<f64>::new().with_epsilon(-1.0).unwrap().epsilon(),
        -1.0
    );
    assert_eq!(Poly1::<f64>::default().epsilon(), 1.0);
}

proptest! {
    #[test]
    fn epsilon_zero_equals_cross_entropy((x, y) in logits_and_labels()) {
        assert_scaled_cross_entropy(&Poly1::new().with_epsilon(0.0).unwrap(), &x, &y, 1.0)?;
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
        assert_f32_agrees(&Poly1::new().with_epsilon(eps).unwrap(), &x, &y)?;
    }
}
