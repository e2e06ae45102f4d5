//! Label smoothing: the contract, the two conventions, properties, errors.

use crate::common::{assert_option_rejects, matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract, scaled};
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_scaled_cross_entropy, labeled_rows,
};
use classloss::{
    CrossEntropy, Differentiable, Error, LabelSmoothing, Loss, Reduction, SmoothingConvention,
};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

const CONVENTIONS: [SmoothingConvention; 2] =
    [SmoothingConvention::Uniform, SmoothingConvention::OffTarget];

#[test]
fn contract() {
    let x = matrix(random_array(&[6, 5], 21, 3.0));
    let labels = vector(random_labels(&[6], 5, 22));
    let args = Labeled::new(x, labels);
    for convention in CONVENTIONS {
        for eps in [0.0, 0.1, 0.7, 1.0] {
            let ls = LabelSmoothing::new()
                .with_convention(convention)
                .with_epsilon(eps)
                .unwrap();
            // Not up to f32::MAX / 2: the smoothing term overflows there
            // (`smoothing_term_of_huge_f32_logits_fits`).
            let extremes = vec![scaled(&args, 1e30), scaled(&args, -1e30)];
            let case = Case::new(format!("{convention:?} eps={eps}"), args.clone());
            check_contract(&ls, &case.extremes(extremes));
        }
    }
}

#[test]
fn the_two_conventions_put_the_documented_mass_on_each_class() {
    let ls = LabelSmoothing::new().with_epsilon(0.1).unwrap();
    let (on, off) = ls.target_values(5).unwrap();
    assert!((on - 0.92).abs() < 1e-15 && (off - 0.02).abs() < 1e-15);
    let (on, off) = ls
        .with_convention(SmoothingConvention::OffTarget)
        .target_values(5)
        .unwrap();
    assert!((on - 0.9).abs() < 1e-15 && (off - 0.025).abs() < 1e-15);
}

#[test]
fn extreme_f32_logits_stay_finite() {
    let x = array![[1e30_f32, -1e30, 0.0], [-1e30, 1e30, 1e30]];
    let labels = array![1_usize, 0];
    for convention in CONVENTIONS {
        let ls = LabelSmoothing::new().with_convention(convention);
        let (v, g) = ls.forward_backward(x.view(), labels.view()).unwrap();
        assert!(v.is_finite() && v > 1e29, "{convention:?}: {v}");
        assert!(g.iter().all(|e| e.is_finite()));
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&LabelSmoothing::new());
    let set = |eps| LabelSmoothing::new().with_epsilon(eps);
    assert_option_rejects("epsilon", "a number in [0, 1]", &[(-0.1, "-0.1")], set);
    let one_class = Array2::<f64>::zeros((2, 1));
    let e = LabelSmoothing::new()
        .with_convention(SmoothingConvention::OffTarget)
        .forward(one_class.view(), array![0_usize, 0].view())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidOption {
                name: "convention",
                ..
            }
        ),
        "{e}"
    );
}

/// Logits in `[-20, 20]` and labels.
fn logits_and_labels() -> impl Strategy<Value = (Array2<f64>, Array1<usize>)> {
    labeled_rows(1..6, 2..7, -20.0f64..20.0)
}

proptest! {
    #[test]
    fn zero_epsilon_equals_plain_cross_entropy((x, labels) in logits_and_labels()) {
        for convention in CONVENTIONS {
            let ls = LabelSmoothing::new().with_epsilon(0.0).unwrap().with_convention(convention);
            assert_scaled_cross_entropy(&ls, &x, &labels, 1.0)?;
        }
    }

    #[test]
    fn uniform_convention_equals_cross_entropy_smoothing((x, labels) in logits_and_labels(), eps in 0.0f64..=1.0) {
        let ce = CrossEntropy::new().with_label_smoothing(eps).unwrap();
        let ls = LabelSmoothing::new().with_epsilon(eps).unwrap();
        let (a, ga) = ce.forward_backward(x.view(), labels.view()).unwrap();
        let (b, gb) = ls.forward_backward(x.view(), labels.view()).unwrap();
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
        prop_assert!(ga.iter().zip(gb.iter()).all(|(p, q)| (p - q).abs() < 1e-12));
    }

    #[test]
    fn gradient_rows_sum_to_zero((x, labels) in logits_and_labels(), eps in 0.0f64..=1.0) {
        for convention in CONVENTIONS {
            let ls = LabelSmoothing::new().with_epsilon(eps).unwrap().with_convention(convention).with_reduction(Reduction::Sum);
            let g = ls.backward(x.view(), labels.view()).unwrap();
            for row in g.rows() {
                prop_assert!(row.sum().abs() < 1e-12);
            }
        }
    }

    #[test]
    fn f32_agrees_with_f64((x, labels) in logits_and_labels(), eps in 0.0f64..=1.0) {
        let ls = LabelSmoothing::new().with_epsilon(eps).unwrap().with_convention(SmoothingConvention::OffTarget);
        assert_f32_agrees(&ls, &x, &labels)?;
    }
}

/// Found by the contract and fixed (was a bug in `src`) (the row's smoothing term, the sum
/// of `x_c - max` over the classes, is added up in `f32` and overflows):
/// for f32 logits about `3e38` apart, with `epsilon = 0` the per-sample
/// value is `Ok(NaN)` (0 times an infinite term) where it is 0, and the mean
/// an overflow error; with `epsilon = 0.1` a loss of `2.2e37` or `3.2e37`,
/// which fits in `f32`, is an overflow of "a value beyond the range of f64".
#[test]
fn smoothing_term_of_huge_f32_logits_fits() {
    let x = array![[1.7e38_f32, -1.6e38, -1.5e38]];
    let y = array![0_usize];
    for convention in CONVENTIONS {
        for eps in [0.0, 0.1] {
            let ls = LabelSmoothing::new()
                .with_convention(convention)
                .with_epsilon(eps)
                .unwrap();
            let exact = ls.per_sample(&x.mapv(f64::from), &y).unwrap()[0];
            let per = ls.per_sample(&x, &y);
            let what = format!("{convention:?} eps={eps}: {per:?}, exactly {exact}");
            let per = f64::from(per.unwrap()[0]);
            assert!((per - exact).abs() <= 1e-6 * exact, "{what}");
        }
    }
}
