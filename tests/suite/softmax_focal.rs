//! Softmax focal loss: the contract under every option, properties (gamma =
//! 0 is cross-entropy), errors, and extreme `f32` logits. (Reference values:
//! `tests/conformance`.)

use crate::common::{assert_option_rejects, assert_weights_rejected};
use crate::contract::{Case, Labeled, check_contract};
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, assert_shift_invariant,
    close, logits_and_labels, random_labeled,
};
use classloss::{CrossEntropy, Differentiable, FocalAlpha, Loss, Reduction, SoftmaxFocal};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

const GAMMAS: [f64; 6] = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0];

fn alphas() -> Vec<(&'static str, SoftmaxFocal<f64>)> {
    let base = SoftmaxFocal::new();
    vec![
        ("alpha=1", base.clone()),
        ("alpha=0.25", base.clone().with_alpha(0.25).unwrap()),
        (
            "alpha per class",
            base.with_class_alpha(array![0.3, 1.7, 0.0, 1.2, 0.5])
                .unwrap(),
        ),
    ]
}

#[test]
fn contract() {
    let args = random_labeled(7, 5, 1, 3.0);
    for gamma in GAMMAS {
        for (name, focal) in alphas() {
            let focal = focal.with_gamma(gamma).unwrap();
            let mut case = Case::new(format!("gamma={gamma} {name}"), args.clone());
            if let FocalAlpha::PerClass(_) = focal.alpha() {
                case = case.misshapen("alpha", args.with_extra_class());
            }
            check_contract(&focal, &case);
        }
    }
    // Confident correct rows (p_y from 0.9 to 1 - 1e-9): for gamma < 1 the
    // derivative of (1 - p)^gamma in p blows up there, but the gradient in
    // the logits stays finite and still matches finite differences.
    let x = array![[3.0_f64, 0.0, -1.0], [9.0, 0.5, 0.0], [21.0, 0.0, 0.3]];
    let confident = Labeled::new(x, array![0_usize, 0, 0]);
    for gamma in [0.1, 0.5, 0.9, 2.0] {
        let focal = SoftmaxFocal::new().with_gamma(gamma).unwrap();
        check_contract(
            &focal,
            &Case::new(format!("confident gamma={gamma}"), confident.clone()),
        );
    }
}

/// Where p_y rounds to exactly 1, the value and gradient are their limits:
/// 0 for gamma > 0, and cross-entropy's for gamma = 0.
#[test]
fn certain_rows_give_the_limit_not_nan() {
    let x = array![[60.0_f64, 0.0, 0.0]];
    let y = array![0_usize];
    for gamma in [0.1, 0.5, 1.0, 2.0] {
        let focal = SoftmaxFocal::new().with_gamma(gamma).unwrap();
        let (v, g) = focal.forward_backward(x.view(), y.view()).unwrap();
        assert_eq!(v, 0.0, "gamma={gamma}");
        assert!(g.iter().all(|&e| e == 0.0), "gamma={gamma}: {g}");
    }
    let focal = SoftmaxFocal::new().with_gamma(0.0).unwrap();
    let (v, g) = focal.forward_backward(x.view(), y.view()).unwrap();
    let (cv, cg) = CrossEntropy::new()
        .forward_backward(x.view(), y.view())
        .unwrap();
    assert_eq!(v, cv);
    assert!(close(&g, &cg, 1e-15));
    assert!(g[[0, 1]] > 0.0, "gamma = 0 keeps cross-entropy's tiny pull");
    // Approaching certainty, the gradient shrinks smoothly to that limit.
    let focal = SoftmaxFocal::<f64>::new().with_gamma(0.5).unwrap();
    let mut last = f64::INFINITY;
    for margin in [5.0, 10.0, 20.0, 30.0, 36.0, 40.0] {
        let g = focal
            .backward(array![[margin, 0.0, 0.0]].view(), y.view())
            .unwrap();
        let size = g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        assert!(size.is_finite() && size < last, "margin {margin}: {size}");
        last = size;
    }
}

#[test]
fn the_modulator_keeps_its_relative_precision_at_both_ends() {
    // The modulator (1 - p)^gamma is the loss over the gamma = 0 loss, the
    // row's nll (alpha 1). Near p = 1, 1 - p must come from expm1(-nll)
    // (at logits [13, 0], 1 - p = 2.3e-6, the rounding of p alone is 5e-11
    // of it); near p = 0, ln(1 - p) must come from ln_1p (ln of 1 - p
    // rounded is off by 1e-16, which gamma = 1e6 makes 1e-10).
    let near = |a: f64, b: f64, rel: f64| {
        assert!((a - b).abs() <= rel * b.abs(), "{a:e} vs {b:e}");
    };
    let y = array![0_usize];
    for (x, gamma, rel) in [([13.0_f64, 0.0], 2.0, 1e-13), ([0.0, 23.0], 1e6, 1e-13)] {
        let x = array![x];
        let nll: f64 = SoftmaxFocal::new()
            .with_gamma(0.0)
            .unwrap()
            .forward(x.view(), y.view())
            .unwrap();
        let focal = SoftmaxFocal::new().with_gamma(gamma).unwrap();
        let v = focal.forward(x.view(), y.view()).unwrap();
        let ln_q = if nll < 1.0 {
            (-(-nll).exp_m1()).ln()
        } else {
            (-(-nll).exp()).ln_1p()
        };
        near(v / nll, (gamma * ln_q).exp(), rel);
    }
}

#[test]
fn worked_example_of_the_documents() {
    // alpha = 1, gamma = 2: p = 0.3 -> 0.49 * 1.204, p = 0.8 -> 0.04 * 0.223
    // (first document): the easy sample is cut far more than the hard one.
    let focal = SoftmaxFocal::new()
        .with_gamma(2.0)
        .unwrap()
        .with_reduction(Reduction::None);
    let x = array![[0.3_f64.ln(), 0.7_f64.ln()], [0.8_f64.ln(), 0.2_f64.ln()]];
    let per = focal.per_sample(x.view(), array![0, 0].view()).unwrap();
    assert!((per[0] - 0.49 * -(0.3_f64.ln())).abs() < 1e-12);
    assert!((per[1] - 0.04 * -(0.8_f64.ln())).abs() < 1e-12);
    assert!((per[0] - 0.5899466741197086).abs() < 1e-12);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    let x = array![
        [1e30_f32, -1e30, 0.0],
        [-1e30, -1e30, -1e30],
        [3e29, 3e29, -2e29],
        [1e30, -1e30, 0.0]
    ];
    let y = array![1_usize, 2, 0, 0];
    for gamma in [0.0_f64, 0.5, 2.0] {
        let focal = SoftmaxFocal::new()
            .with_gamma(gamma)
            .unwrap()
            .with_reduction(Reduction::None);
        let per = focal.per_sample(x.view(), y.view()).unwrap();
        let g32 = gamma as f32;
        assert_eq!(per[0], 2e30, "gamma={gamma}");
        let third = (2.0_f32 / 3.0).powf(g32) * 3f32.ln();
        assert!((per[1] - third).abs() < 1e-6, "gamma={gamma}: {}", per[1]);
        let half = 0.5_f32.powf(g32) * 2f32.ln();
        assert!((per[2] - half).abs() < 1e-6, "gamma={gamma}: {}", per[2]);
        assert_eq!(per[3], 0.0);
        let g = focal.backward(x.view(), y.view()).unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "gamma={gamma}: {g}");
        assert_eq!(g.row(0).to_vec(), vec![1.0, -1.0, 0.0]);
        assert_eq!(g.row(3).to_vec(), vec![0.0, 0.0, 0.0]);
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    for (_, focal) in alphas() {
        // The per-class alpha has 5 entries; use matching logits for it.
        if let FocalAlpha::Scalar(_) = focal.alpha() {
            assert_label_errors(&focal);
        }
    }
    // alpha of the wrong length
    let focal = SoftmaxFocal::new()
        .with_class_alpha(array![1.0, 2.0])
        .unwrap();
    let e = focal
        .forward(Array2::<f64>::zeros((2, 3)).view(), array![0, 1].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "alpha: expected shape [3], got [2]");
    // invalid options
    let new = SoftmaxFocal::<f64>::new;
    let non_negative = "a finite number >= 0";
    let bad = [(-1.0, "-1"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")];
    assert_option_rejects("gamma", non_negative, &bad, |g| new().with_gamma(g));
    assert_option_rejects("alpha", non_negative, &[(-0.5, "-0.5")], |a| {
        new().with_alpha(a)
    });
    assert_weights_rejected("alpha", |w| new().with_class_alpha(w));
}

#[test]
fn getters_return_the_options() {
    let focal = SoftmaxFocal::<f64>::default();
    assert_eq!(focal.gamma(), 2.0);
    assert_eq!(focal.alpha(), &FocalAlpha::Scalar(1.0));
    assert_eq!(focal.reduction(), Reduction::Mean);
    let focal = focal.with_class_alpha(array![0.5, 2.0]).unwrap();
    assert_eq!(focal.alpha(), &FocalAlpha::PerClass(array![0.5, 2.0]));
}

proptest! {
    /// gamma = 0 is cross-entropy: scalar alpha scales it, per-class alpha
    /// is CE's class weight (compared with `Sum`, since weighted CE's mean
    /// divides by the weights instead of N).
    #[test]
    fn gamma_zero_equals_cross_entropy((x, y) in logits_and_labels(), a in 0.0f64..3.0) {
        let c = x.ncols();
        let focal = SoftmaxFocal::new().with_gamma(0.0).unwrap();
        assert_scaled_cross_entropy(&focal, &x, &y, 1.0)?;
        assert_scaled_cross_entropy(&focal.clone().with_alpha(a).unwrap(), &x, &y, a)?;

        let w = Array1::from_shape_fn(c, |k| a + k as f64 * 0.5);
        let per_class = focal.with_class_alpha(w.clone()).unwrap().with_reduction(Reduction::Sum);
        let weighted = CrossEntropy::new().with_weight(w).unwrap().with_reduction(Reduction::Sum);
        let (pv, pg) = per_class.forward_backward(x.view(), y.view()).unwrap();
        let (wv, wg) = weighted.forward_backward(x.view(), y.view()).unwrap();
        prop_assert!((pv - wv).abs() <= 1e-12 * (1.0 + wv.abs()));
        prop_assert!(close(&pg, &wg, 1e-12));
    }

    /// The modulating factor only ever shrinks the loss, more with larger
    /// gamma.
    #[test]
    fn focusing_shrinks_every_sample((x, y) in logits_and_labels(), g1 in 0.0f64..5.0, dg in 0.0f64..3.0) {
        let per = |gamma: f64| SoftmaxFocal::new().with_gamma(gamma).unwrap()
            .per_sample(x.view(), y.view()).unwrap();
        let (a, b, ce) = (per(g1), per(g1 + dg), per(0.0));
        for i in 0..a.len() {
            prop_assert!(a[i] >= 0.0 && a[i] <= ce[i] * (1.0 + 1e-12));
            prop_assert!(b[i] <= a[i] * (1.0 + 1e-12) + 1e-300);
        }
    }

    #[test]
    fn shifting_a_row_changes_nothing((x, y) in logits_and_labels(), shift in -50.0f64..50.0, gamma in 0.0f64..4.0) {
        assert_shift_invariant(&SoftmaxFocal::new().with_gamma(gamma).unwrap(), &x, &y, shift)?;
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), gamma in 0.0f64..4.0) {
        assert_f32_agrees(&SoftmaxFocal::new().with_gamma(gamma).unwrap(), &x, &y)?;
    }
}

/// Found by the contract and fixed (was a bug in `src`): a sample's loss beyond `f32`
/// (`4e38` here) is reported with the magnitude "a value beyond the range
/// of f64" instead of its value, which f64 holds (cross-entropy and Poly-1
/// report "about 4.000e38"); and the mean, `2e38`, is an error too, where
/// cross-entropy and Poly-1 return it.
#[test]
fn a_sample_beyond_f32_is_reported_with_its_magnitude() {
    let x = array![[-2e38_f32, 2e38], [0.0, 1.0]];
    let y = array![0_usize, 0];
    let focal = SoftmaxFocal::new().with_gamma(0.0).unwrap();
    let e = focal.per_sample(&x, &y).unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits[0]: the sample's loss overflows f32: expected at most 3.4028235e38, \
         got about 4.000e38"
    );
    let poly = classloss::Poly1::new().with_epsilon(0.0).unwrap();
    assert_eq!(
        focal.forward(&x, &y).unwrap(),
        poly.forward(&x, &y).unwrap()
    );
}
