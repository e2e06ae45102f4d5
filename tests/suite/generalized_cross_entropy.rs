//! Generalized cross-entropy: the contract under every option, properties (q
//! -> 0 is cross-entropy, q = 1 is MAE), errors, extreme `f32` logits.
//! (Reference values: `tests/conformance`.)

use crate::common::assert_option_rejects;
use crate::labels::{
    assert_f32_agrees, assert_label_errors, contract_on_random_rows, logits_and_labels,
    on_extreme_rows,
};
use classloss::{CrossEntropy, Differentiable, GeneralizedCrossEntropy, Loss, Reduction};
use ndarray::array;
use proptest::prelude::*;

#[test]
fn contract() {
    let gce = |q| GeneralizedCrossEntropy::<f64>::new().with_q(q).unwrap();
    let qs = [1e-3, 0.05, 0.3, 0.7, 1.0];
    contract_on_random_rows(31, qs.map(|q| (format!("q={q}"), gce(q))));
}

#[test]
fn known_value_and_bounded_loss() {
    // p_y = 0.25: (1 - 0.25^0.5) / 0.5 = 1.
    let x = array![[0.0_f64, 0.0, 0.0, 0.0]];
    let gce = GeneralizedCrossEntropy::new().with_q(0.5).unwrap();
    let v = gce.forward(x.view(), array![1].view()).unwrap();
    assert!((v - 1.0).abs() < 1e-15);
    // A hopeless sample costs at most 1/q, where cross-entropy grows without
    // bound: that is the robustness to wrong labels.
    let x = array![[-200.0_f64, 200.0]];
    let v = gce.forward(x.view(), array![0].view()).unwrap();
    assert!((v - 2.0).abs() < 1e-15);
    let g = gce.backward(x.view(), array![0].view()).unwrap();
    assert!(g.iter().all(|v| v.abs() < 1e-80), "{g}");
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    for q in [1e-3, 0.7, 1.0] {
        let gce = GeneralizedCrossEntropy::new()
            .with_q(q)
            .unwrap()
            .with_reduction(Reduction::None);
        let (per, g) = on_extreme_rows(&gce);
        assert!((per[0] - 1.0 / q as f32).abs() < 1e-3, "q={q}: {per}");
        let third = (1.0 - (1.0_f64 / 3.0).powf(q)) / q;
        assert!((per[1] as f64 - third).abs() < 1e-6, "q={q}: {per}");
        assert_eq!(per[2], 0.0);
        assert_eq!(g.row(0).to_vec(), vec![0.0, 0.0, 0.0]);
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&GeneralizedCrossEntropy::new());
    let bad = [(0.0, "0"), (1.5, "1.5"), (-0.1, "-0.1"), (f64::NAN, "NaN")];
    let set = |q| GeneralizedCrossEntropy::<f64>::new().with_q(q);
    assert_option_rejects("q", "a number in (0, 1]", &bad, set);
    assert_eq!(GeneralizedCrossEntropy::<f64>::default().q(), 0.7);
    assert_eq!(
        GeneralizedCrossEntropy::<f64>::new()
            .with_q(1.0)
            .unwrap()
            .q(),
        1.0
    );
}

proptest! {
    /// As q -> 0 the loss tends to cross-entropy: with a = -log p_y,
    /// (1 - e^{-q a}) / q lies in [a - q a^2 / 2, a], and the gradient is
    /// cross-entropy's times p_y^q = e^{-q a}, in [1 - q a, 1].
    #[test]
    fn small_q_tends_to_cross_entropy((x, y) in logits_and_labels(), k in 2i32..7) {
        let q = 10f64.powi(-k);
        let gce = GeneralizedCrossEntropy::new().with_q(q).unwrap().with_reduction(Reduction::None);
        let ce = CrossEntropy::new().with_reduction(Reduction::None);
        let t = y.view();
        let per = gce.per_sample(x.view(), y.view()).unwrap();
        let ce_per = ce.per_sample(x.view(), t).unwrap();
        let g = gce.backward(x.view(), y.view()).unwrap();
        let ce_g = ce.backward(x.view(), t).unwrap();
        for i in 0..per.len() {
            let a = ce_per[i];
            let slack = 1e-12 * (1.0 + a);
            prop_assert!(per[i] <= a + slack, "row {}: {} > CE {}", i, per[i], a);
            prop_assert!(per[i] >= a - q * a * a / 2.0 - slack, "row {}: {} vs CE {}", i, per[i], a);
            for c in 0..x.ncols() {
                let (gg, cg) = (g[[i, c]], ce_g[[i, c]]);
                prop_assert!((gg - cg).abs() <= q * a * cg.abs() + 1e-15, "grad [{}, {}]", i, c);
            }
        }
    }

    /// q = 1 is the mean absolute error 1 - p_y.
    #[test]
    fn q_one_is_one_minus_p((x, y) in logits_and_labels()) {
        let per = GeneralizedCrossEntropy::new().with_q(1.0).unwrap()
            .per_sample(x.view(), y.view()).unwrap();
        let ce = CrossEntropy::new().per_sample(x.view(), y.view()).unwrap();
        for i in 0..per.len() {
            prop_assert!((per[i] - (1.0 - (-ce[i]).exp())).abs() < 1e-15);
        }
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), q in 0.01f64..1.0) {
        assert_f32_agrees(&GeneralizedCrossEntropy::new().with_q(q).unwrap(), &x, &y)?;
    }
}
