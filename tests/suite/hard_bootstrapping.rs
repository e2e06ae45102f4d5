//! Hard bootstrapping: the contract under every option (away from argmax
//! ties, and one-sided at a tie), properties (beta = 1 is cross-entropy),
//! errors, extreme `f32` logits. (Reference values: `tests/conformance`.)

use crate::common::assert_option_rejects;
use crate::contract::{Case, Contract, Labeled};
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, logits_and_labels,
    on_extreme_rows, random_case,
};
use classloss::{Differentiable, HardBootstrapping, Loss, Reduction};
use ndarray::{Array2, array};
use proptest::prelude::*;

fn hard(beta: f64) -> HardBootstrapping<f64> {
    HardBootstrapping::new().with_beta(beta).unwrap()
}

/// The smallest gap between a row's largest logit and any other.
fn min_top_gap(x: &Array2<f64>) -> f64 {
    x.rows()
        .into_iter()
        .map(|row| {
            let mut v = row.to_vec();
            v.sort_by(|a, b| b.partial_cmp(a).unwrap());
            v[0] - v[1]
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn contract() {
    let (x, y) = random_case(7, 5, 61, 3.0);
    assert!(min_top_gap(&x) > 1e-3, "test point must be away from ties");
    // Some labels agree with the argmax and some do not.
    let z: Vec<usize> = x
        .rows()
        .into_iter()
        .map(|r| {
            (0..5)
                .max_by(|&a, &b| r[a].partial_cmp(&r[b]).unwrap())
                .unwrap()
        })
        .collect();
    assert!(z.iter().zip(&y).any(|(a, b)| a == b) && z.iter().zip(&y).any(|(a, b)| a != b));
    let args = Labeled::new(x, y);
    for beta in [0.0, 0.5, 0.8, 1.0] {
        hard(beta).check(&Case::new(format!("beta={beta}"), args.clone()));
    }
}

/// At a tie for the argmax the first tied class is taken: the gradient is
/// the one-sided derivative along every direction that keeps it on top,
/// and differs from the derivative on the other side (a kink).
#[test]
fn one_sided_gradient_at_an_argmax_tie() {
    let x = array![[1.0_f64, 0.2, 1.0]];
    let y = array![1_usize];
    let loss = hard(0.8).with_reduction(Reduction::Sum);
    let g = loss.backward(x.view(), y.view()).unwrap();
    let f = |u: [f64; 3], h: f64| {
        let shifted = &x + &(Array2::from(vec![u]) * h);
        (loss.forward(shifted.view(), y.view()).unwrap()
            - loss.forward(x.view(), y.view()).unwrap())
            / h
    };
    let along = |u: [f64; 3]| g[[0, 0]] * u[0] + g[[0, 1]] * u[1] + g[[0, 2]] * u[2];
    for u in [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, -1.0],
        [0.0, 1.0, 0.0],
        [0.5, -0.3, -0.2],
    ] {
        let numeric = f(u, 1e-7);
        assert!(
            (numeric - along(u)).abs() < 1e-6,
            "{u:?}: {numeric} vs {}",
            along(u)
        );
    }
    // Lowering x_0 hands the argmax to class 2: the other side's slope.
    let other_side = f([-1.0, 0.0, 0.0], 1e-7);
    assert!((other_side - along([-1.0, 0.0, 0.0])).abs() > 0.1);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    let (per, g) = on_extreme_rows(&HardBootstrapping::new().with_reduction(Reduction::None));
    assert!((per[0] / 1.6e30 - 1.0).abs() < 1e-6, "{per}");
    assert!((per[1] - 3f32.ln()).abs() < 1e-6, "{per}");
    assert_eq!(per[2], 0.0);
    let row0 = g.row(0).to_vec();
    assert!((row0[0] - 0.8).abs() < 1e-6 && (row0[1] + 0.8).abs() < 1e-6 && row0[2] == 0.0);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&HardBootstrapping::new());
    let bad = [(1.5, "1.5"), (-0.1, "-0.1"), (f64::NAN, "NaN")];
    let set = |b| HardBootstrapping::<f64>::new().with_beta(b);
    assert_option_rejects("beta", "a number in [0, 1]", &bad, set);
    assert_eq!(HardBootstrapping::<f64>::default().beta(), 0.8);
}

proptest! {
    #[test]
    fn beta_one_equals_cross_entropy((x, y) in logits_and_labels()) {
        assert_scaled_cross_entropy(&hard(1.0), &x, &y, 1.0)?;
    }

    /// Where every label is the predicted class, any beta gives
    /// cross-entropy.
    #[test]
    fn agreeing_labels_give_cross_entropy((x, _) in logits_and_labels(), beta in 0.0f64..1.0) {
        let z = ndarray::Array1::from_iter(x.rows().into_iter().map(|r| {
            let m = r.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            r.iter().position(|&v| v == m).unwrap()
        }));
        assert_scaled_cross_entropy(&hard(beta), &x, &z, 1.0)?;
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), beta in 0.0f64..1.0) {
        // Away from argmax ties, which f32 rounding could break differently.
        prop_assume!(min_top_gap(&x) > 1e-3);
        assert_f32_agrees(&hard(beta), &x, &y)?;
    }
}
