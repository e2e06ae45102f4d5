//! Hinge: the contract (away from the kink), gradients one-sided at the
//! kink, properties, errors, overflow. (Reference values:
//! `tests/conformance`.)

use crate::common::{random_array, vector};
use crate::contract::{Case, Paired, REDUCTIONS, check_contract};
use classloss::gradcheck::GradCheck;
use classloss::{Differentiable, Error, Hinge, LabelConvention, Loss, Reduction};
use ndarray::{Array1, ArrayView1, array};
use proptest::prelude::*;

/// Deterministic scores in `[-3, 3]` and labels in `{-1, +1}` with every
/// `margin - y s` at least 0.05 from the kink at 0.
fn batch(n: usize, seed: u64, margin: f64) -> (Array1<f64>, Array1<f64>) {
    let s = vector(random_array(&[n], seed, 3.0));
    let y = vector(random_array(&[n], seed + 100, 1.0)).mapv(|v| if v < 0.0 { -1.0 } else { 1.0 });
    let s = Array1::from_iter(s.iter().zip(&y).map(|(&s, &y)| {
        if (margin - y * s).abs() < 0.05 {
            s + 0.1
        } else {
            s
        }
    }));
    (s, y)
}

fn hinge(reduction: Reduction, margin: f64, squared: bool) -> Hinge<f64> {
    Hinge::new()
        .with_reduction(reduction)
        .with_margin(margin)
        .unwrap()
        .with_squared(squared)
}

#[test]
fn contract() {
    for (seed, margin) in [(1u64, 1.0), (2, 0.5), (3, 0.0), (4, 2.3)] {
        let (s, y) = batch(9, seed, margin);
        // Both sides of the kink must be exercised for the check to mean anything.
        let active = s
            .iter()
            .zip(&y)
            .filter(|&(&s, &y)| margin - y * s > 0.0)
            .count();
        assert!(
            active > 0 && active < s.len(),
            "seed {seed}: {active} active"
        );
        for squared in [false, true] {
            for convention in [LabelConvention::PlusMinusOne, LabelConvention::ZeroOne] {
                let labels = match convention {
                    LabelConvention::PlusMinusOne => y.clone(),
                    LabelConvention::ZeroOne => y.mapv(|v| if v < 0.0 { 0.0 } else { 1.0 }),
                };
                let loss =
                    hinge(Reduction::Mean, margin, squared).with_label_convention(convention);
                let what = format!("margin={margin} squared={squared} {convention:?}");
                check_contract(
                    &loss,
                    &Case::new(what, Paired::new(s.clone(), labels, "labels")),
                );
            }
        }
    }
}

/// At `y s = margin` the plain hinge has left and right derivatives that
/// differ; the documented subgradient 0 lies between them (it is the right
/// derivative for `y = +1` and the left one for `y = -1`).
#[test]
fn subgradient_at_the_kink_is_zero_and_between_the_one_sided_derivatives() {
    for margin in [1.0, 0.5, 0.0] {
        for (y, expect_left, expect_right) in [(1.0, -1.0, 0.0), (-1.0, 0.0, 1.0)] {
            // The middle sample sits exactly on the kink: y * s == margin.
            let s = array![2.7, y * margin, -1.9];
            let labels = array![-1.0, y, 1.0];
            let loss = hinge(Reduction::Sum, margin, false);
            let grad = loss.backward(s.view(), labels.view()).unwrap();
            assert_eq!(grad[1], 0.0, "margin={margin} y={y}");
            let f = |t: f64| {
                let mut z = s.clone();
                z[1] = t;
                loss.forward(z.view(), labels.view()).unwrap()
            };
            let h = 1e-6;
            let left = (f(s[1]) - f(s[1] - h)) / h;
            let right = (f(s[1] + h) - f(s[1])) / h;
            assert!((left - expect_left).abs() < 1e-6, "left {left}");
            assert!((right - expect_right).abs() < 1e-6, "right {right}");
            assert!(left <= grad[1] && grad[1] <= right);
        }
    }
}

/// The squared hinge is differentiable at the kink: an ordinary two-sided
/// check passes there with gradient 0. (Its second derivative jumps, so the
/// central difference is off by `h / 2`: the step is smaller than usual.)
#[test]
fn squared_hinge_is_differentiable_at_the_kink() {
    let s = array![1.0, -0.5, 0.2];
    let labels = array![1.0, -1.0, 1.0];
    let check = GradCheck {
        step: 1e-8,
        ..GradCheck::default()
    };
    for reduction in REDUCTIONS {
        let loss = hinge(reduction, 1.0, true);
        let grad = loss.backward(s.view(), labels.view()).unwrap();
        assert_eq!(grad[0], 0.0);
        let f = |z: &[f64]| loss.forward(ArrayView1::from(z), labels.view()).unwrap();
        if let Err(e) = check.check(f, s.as_slice().unwrap(), grad.as_slice().unwrap()) {
            panic!("squared at the kink, {reduction}: {e}");
        }
    }
}

#[test]
fn inactive_samples_get_the_signed_zero_of_the_reference() {
    let s = array![3.0, -3.0];
    let labels = array![1.0, -1.0];
    for squared in [false, true] {
        let g = hinge(Reduction::Mean, 1.0, squared)
            .backward(s.view(), labels.view())
            .unwrap();
        assert!(g[0] == 0.0 && g[0].is_sign_negative(), "{g}");
        assert!(g[1] == 0.0 && g[1].is_sign_positive(), "{g}");
    }
}

#[test]
fn strided_views_give_the_same_result() {
    let (s, y) = batch(10, 8, 1.0);
    let loss = hinge(Reduction::Sum, 1.0, true);
    let every_other = s.slice(ndarray::s![..;2]);
    let labels = y.slice(ndarray::s![..;2]);
    let (a, ga) = loss.forward_backward(every_other, labels).unwrap();
    let (b, gb) = loss
        .forward_backward(every_other.to_owned().view(), labels.to_owned().view())
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(ga, gb);
    let mut wide = Array1::from_elem(10, 9.0);
    loss.forward_backward_into(every_other, labels, wide.slice_mut(ndarray::s![1..;2]))
        .unwrap();
    assert_eq!(wide.slice(ndarray::s![1..;2]), gb);
    assert!(wide.slice(ndarray::s![..;2]).iter().all(|&v| v == 9.0));
}

#[test]
fn worked_example() {
    // Cortes & Vapnik's soft-margin slack: xi = max(0, 1 - y s).
    let loss = Hinge::new().with_reduction(Reduction::None);
    let per = loss
        .per_sample(
            array![0.5_f64, -2.0, 1.5, 1.0].view(),
            array![1.0, -1.0, -1.0, 1.0].view(),
        )
        .unwrap();
    assert_eq!(per, array![0.5, 0.0, 2.5, 0.0]);
}

#[test]
fn extreme_f32_scores_stay_finite_and_correct() {
    let s = array![3e38_f32, -3e38, 1e19, -1e19];
    let labels = array![-1.0_f32, -1.0, 1.0, 1.0];
    let loss = Hinge::new().with_reduction(Reduction::None);
    let per = loss.per_sample(s.view(), labels.view()).unwrap();
    assert_eq!(per, array![3e38_f32, 0.0, 0.0, 1e19]);
    let g = loss.backward(s.view(), labels.view()).unwrap();
    assert_eq!(g, array![1.0_f32, 0.0, 0.0, -1.0]);
    // Squared, 1e19^2 = 1e38 still fits f32.
    let sq = Hinge::new()
        .with_squared(true)
        .with_reduction(Reduction::None);
    let per = sq
        .per_sample(s.slice(ndarray::s![2..]), labels.slice(ndarray::s![2..]))
        .unwrap();
    assert!((per[1] / 1e38 - 1.0).abs() < 1e-6);
    let g = sq
        .backward(s.slice(ndarray::s![2..]), labels.slice(ndarray::s![2..]))
        .unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn overflow_is_an_error_naming_the_sample() {
    let sq = Hinge::<f32>::new().with_squared(true);
    let s = array![0.0_f32, -1e20];
    let labels = array![1.0_f32, 1.0];
    let e = sq.forward(s.view(), labels.view()).unwrap_err();
    assert!(matches!(e, Error::Overflow { what: "scores", ref index, .. } if index == &vec![1]));
    assert_eq!(
        e.to_string(),
        "scores[1]: the sample's loss overflows f32: expected at most 3.4028235e38, \
         got about 1.000e40"
    );
    // Also from per_sample and the fused call.
    assert!(sq.per_sample(s.view(), labels.view()).is_err());
    assert!(sq.backward(s.view(), labels.view()).is_err());
    // A Sum of representable values that is not representable.
    let s = array![-1.5e19_f32, -1.5e19];
    let sum = Hinge::<f32>::new()
        .with_squared(true)
        .with_reduction(Reduction::Sum);
    let e = sum.forward(s.view(), labels.view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores[]: the sum of the per-sample losses overflows f32: expected at most \
         3.4028235e38, got about 4.500e38"
    );
    // The per-sample values and the Mean are representable.
    assert!(sum.per_sample(s.view(), labels.view()).is_ok());
    let mean = Hinge::<f32>::new().with_squared(true);
    let (v, g) = mean.forward_backward(s.view(), labels.view()).unwrap();
    assert!((v / 2.25e38 - 1.0).abs() < 1e-6);
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn non_finite_scores_propagate() {
    let loss = Hinge::new().with_reduction(Reduction::None);
    let per = loss
        .per_sample(
            array![f64::NAN, f64::NEG_INFINITY, f64::INFINITY].view(),
            array![1.0, 1.0, 1.0].view(),
        )
        .unwrap();
    assert!(per[0].is_nan());
    assert_eq!(per[1], f64::INFINITY);
    assert_eq!(per[2], 0.0);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = Hinge::<f64>::new();
    let s = array![0.5, -1.0, 2.0];
    // labels shape
    let e = loss
        .forward(s.view(), array![1.0, -1.0].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [3], got [2]");
    // labels not -1 / +1
    let e = loss
        .forward(s.view(), array![1.0, 0.0, 1.0].view())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { what: "labels", .. }));
    assert_eq!(
        e.to_string(),
        "labels[1]: expected -1 or +1 (0/1 labels need LabelConvention::ZeroOne), got 0"
    );
    let e = loss
        .forward(s.view(), array![1.0, -1.0, f64::NAN].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[2]: expected -1 or +1 (0/1 labels need LabelConvention::ZeroOne), got NaN"
    );
    let e = loss
        .forward(s.view(), array![0.99, -1.0, 1.0].view())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { value, .. } if value == 0.99));
    // 0/1 convention: -1 is now the mistake.
    let zo = Hinge::<f64>::new().with_label_convention(LabelConvention::ZeroOne);
    let e = zo
        .forward(s.view(), array![1.0, -1.0, 0.0].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[1]: expected 0 or 1 (LabelConvention::ZeroOne), got -1"
    );
    // margin
    let e = Hinge::<f64>::new().with_margin(-1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `margin`: expected a finite number >= 0, got -1"
    );
    let e = Hinge::<f64>::new().with_margin(f64::NAN).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `margin`: expected a finite number >= 0, got NaN"
    );
    let e = Hinge::<f64>::new().with_margin(f64::INFINITY).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { name: "margin", .. }));
    // empty batch
    let empty = Array1::<f64>::zeros(0);
    let e = loss.forward(empty.view(), empty.view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores: expected at least one sample, got an empty array of shape [0]"
    );
    // gradient buffer
    let mut g = Array1::zeros(2);
    let e = loss
        .forward_backward_into(s.view(), array![1.0, 1.0, -1.0].view(), g.view_mut())
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [3], got [2]");
}

fn scores_and_signs() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(-20.0f64..20.0, n),
            proptest::collection::vec(prop_oneof![Just(-1.0), Just(1.0)], n),
        )
    })
}

proptest! {
    #[test]
    fn zero_loss_and_gradient_beyond_the_margin((s, y) in scores_and_signs(), margin in 0.0f64..3.0, squared: bool) {
        let loss = hinge(Reduction::None, margin, squared);
        let (s, y) = (Array1::from(s), Array1::from(y));
        let per = loss.per_sample(s.view(), y.view()).unwrap();
        let g = loss.backward(s.view(), y.view()).unwrap();
        for i in 0..s.len() {
            if y[i] * s[i] >= margin {
                prop_assert_eq!(per[i], 0.0);
                prop_assert_eq!(g[i], 0.0);
            } else {
                prop_assert!(per[i] > 0.0);
            }
        }
    }

    #[test]
    fn squared_hinge_is_the_square_of_the_hinge((s, y) in scores_and_signs(), margin in 0.0f64..3.0) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let plain = hinge(Reduction::None, margin, false).per_sample(s.view(), y.view()).unwrap();
        let sq = hinge(Reduction::None, margin, true).per_sample(s.view(), y.view()).unwrap();
        for (p, q) in plain.iter().zip(&sq) {
            prop_assert_eq!(p * p, *q);
        }
    }

    #[test]
    fn per_sample_values_sum_to_sum_and_average_to_mean((s, y) in scores_and_signs(), squared: bool) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let per = hinge(Reduction::None, 1.0, squared).per_sample(s.view(), y.view()).unwrap();
        let sum = hinge(Reduction::Sum, 1.0, squared).forward(s.view(), y.view()).unwrap();
        let mean = hinge(Reduction::Mean, 1.0, squared).forward(s.view(), y.view()).unwrap();
        let none = hinge(Reduction::None, 1.0, squared).forward(s.view(), y.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum));
        prop_assert!((sum / s.len() as f64 - mean).abs() <= 1e-12 * (1.0 + mean));
        prop_assert_eq!(none, sum);
    }

    #[test]
    fn zero_one_labels_equal_the_signed_labels((s, y) in scores_and_signs(), squared: bool) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let zero_one = y.mapv(|v| if v < 0.0 { 0.0 } else { 1.0 });
        let a = hinge(Reduction::Mean, 0.7, squared).forward_backward(s.view(), y.view()).unwrap();
        let b = hinge(Reduction::Mean, 0.7, squared)
            .with_label_convention(LabelConvention::ZeroOne)
            .forward_backward(s.view(), zero_one.view())
            .unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn f32_agrees_with_f64((s, y) in scores_and_signs(), squared: bool) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let (s32, y32) = (s.mapv(|v| v as f32), y.mapv(|v| v as f32));
        let (a, ga) = hinge(Reduction::Mean, 1.0, squared).forward_backward(s.view(), y.view()).unwrap();
        let loss32 = Hinge::<f32>::new().with_squared(squared);
        let (b, gb) = loss32.forward_backward(s32.view(), y32.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        for (p, q) in ga.iter().zip(&gb) {
            prop_assert!((p - *q as f64).abs() <= 1e-5 * (1.0 + p.abs()));
        }
    }
}

/// A per-sample loss of exactly `f32::MAX` fits `f32`: it is returned, not
/// an overflow (only a value beyond the maximum is one).
#[test]
fn a_loss_of_exactly_f32_max_is_no_overflow() {
    let s = array![-f32::MAX, 0.5];
    let labels = array![1.0_f32, 1.0];
    let loss = Hinge::<f32>::new()
        .with_margin(0.0)
        .unwrap()
        .with_reduction(Reduction::None);
    let per = loss.per_sample(s.view(), labels.view()).unwrap();
    assert_eq!(per.to_vec(), vec![f32::MAX, 0.0]);
    assert_eq!(loss.forward(s.view(), labels.view()).unwrap(), f32::MAX);
}
