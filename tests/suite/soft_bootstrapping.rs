//! Soft bootstrapping: the contract under every option, properties (beta = 1
//! is cross-entropy, beta = 0 is the entropy), errors, extreme `f32` logits.
//! (Reference values: `tests/conformance`.)

use crate::common::assert_option_rejects;
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, contract_on_random_rows,
    logits_and_labels, on_extreme_rows,
};
use classloss::{CrossEntropy, Differentiable, Loss, Reduction, SoftBootstrapping};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

fn soft(beta: f64) -> SoftBootstrapping<f64> {
    SoftBootstrapping::new().with_beta(beta).unwrap()
}

/// The entropy of each row's softmax, computed directly.
fn entropies(x: &Array2<f64>) -> Array1<f64> {
    Array1::from_iter(x.rows().into_iter().map(|row| {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        -row.iter()
            .map(|v| {
                let lp = (v - m) - z.ln();
                lp.exp() * lp
            })
            .sum::<f64>()
    }))
}

#[test]
fn contract() {
    let betas = [0.0, 0.5, 0.8, 0.95, 1.0];
    contract_on_random_rows(51, betas.map(|b| (format!("beta={b}"), soft(b))));
}

/// The prediction term is trained (its gradient is not dropped): with
/// beta = 0 the loss is the entropy, whose gradient sharpens the softmax.
#[test]
fn prediction_term_has_a_gradient() {
    let x = array![[1.0_f64, 0.0, -1.0]];
    let g = soft(0.0).backward(x.view(), array![2].view()).unwrap();
    assert!(
        g[[0, 0]] < 0.0,
        "raising the top logit lowers the entropy: {g}"
    );
    assert!(g[[0, 2]] > 0.0, "{g}");
    assert!(g.sum().abs() < 1e-15);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    for beta in [0.0, 0.8, 1.0] {
        let loss = SoftBootstrapping::new()
            .with_beta(beta)
            .unwrap()
            .with_reduction(Reduction::None);
        let (per, g) = on_extreme_rows(&loss);
        assert_eq!(per[0], beta as f32 * 2e30, "beta={beta}");
        assert!((per[1] - 3f32.ln()).abs() < 1e-6, "beta={beta}: {per}");
        assert_eq!(per[2], 0.0);
        assert_eq!(g.row(2).to_vec(), vec![0.0, 0.0, 0.0]);
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&SoftBootstrapping::new());
    let bad = [(1.5, "1.5"), (-0.1, "-0.1"), (f64::NAN, "NaN")];
    let set = |b| SoftBootstrapping::<f64>::new().with_beta(b);
    assert_option_rejects("beta", "a number in [0, 1]", &bad, set);
    assert_eq!(SoftBootstrapping::<f64>::default().beta(), 0.95);
}

proptest! {
    #[test]
    fn beta_one_equals_cross_entropy((x, y) in logits_and_labels()) {
        assert_scaled_cross_entropy(&soft(1.0), &x, &y, 1.0)?;
    }

    /// Per sample: beta CE + (1 - beta) H(p).
    #[test]
    fn value_is_beta_ce_plus_entropy((x, y) in logits_and_labels(), beta in 0.0f64..1.0) {
        let per = soft(beta).per_sample(x.view(), y.view()).unwrap();
        let ce = CrossEntropy::new().per_sample(x.view(), y.view()).unwrap();
        let h = entropies(&x);
        for i in 0..per.len() {
            let expected = beta * ce[i] + (1.0 - beta) * h[i];
            prop_assert!((per[i] - expected).abs() <= 1e-12 * (1.0 + expected));
        }
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), beta in 0.0f64..1.0) {
        assert_f32_agrees(&soft(beta), &x, &y)?;
    }
}
