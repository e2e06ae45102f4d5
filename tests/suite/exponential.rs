//! Exponential loss: the contract, properties, errors, and the overflow
//! rule. (Reference values: `tests/conformance`.)

use crate::common::{random_array, vector};
use crate::contract::{Case, Paired, REDUCTIONS, check_contract};
use classloss::{Differentiable, Error, Exponential, LabelConvention, Loss, Reduction};
use ndarray::{Array1, array};
use proptest::prelude::*;

fn signs(n: usize, seed: u64) -> Array1<f64> {
    vector(random_array(&[n], seed, 1.0)).mapv(|v| if v < 0.0 { -1.0 } else { 1.0 })
}

#[test]
fn contract() {
    for (seed, scale) in [(1u64, 1.0), (2, 3.0), (3, 8.0)] {
        let s = vector(random_array(&[9], seed, scale));
        let y = signs(9, seed + 50);
        for convention in [LabelConvention::PlusMinusOne, LabelConvention::ZeroOne] {
            let labels = match convention {
                LabelConvention::PlusMinusOne => y.clone(),
                LabelConvention::ZeroOne => y.mapv(|v| if v < 0.0 { 0.0 } else { 1.0 }),
            };
            let loss = Exponential::new().with_label_convention(convention);
            let what = format!("scale={scale} {convention:?}");
            check_contract(
                &loss,
                &Case::new(what, Paired::new(s.clone(), labels, "labels")),
            );
        }
    }
}

#[test]
fn worked_example() {
    // y s = 0 costs exp(0) = 1; a wrong-side score of 2 costs e^2.
    let loss = Exponential::new().with_reduction(Reduction::None);
    let s = array![0.0_f64, 2.0, 2.0];
    let y = array![1.0, -1.0, 1.0];
    let per = loss.per_sample(s.view(), y.view()).unwrap();
    assert_eq!(per, array![1.0, 2f64.exp(), (-2f64).exp()]);
    let g = loss.backward(s.view(), y.view()).unwrap();
    assert_eq!(g, array![-1.0, 2f64.exp(), -(-2f64).exp()]);
}

/// Right up to the edge of the float range the value and gradient are
/// finite and correct; one step beyond, the call fails with `Overflow`.
#[test]
fn overflow_boundary_in_f32_and_f64() {
    // f32: ln(f32::MAX) = 88.7228...
    let loss = Exponential::<f32>::new().with_reduction(Reduction::Sum);
    let y = array![1.0_f32];
    let (v, g) = loss
        .forward_backward(array![-88.7_f32].view(), y.view())
        .unwrap();
    assert!(v.is_finite() && (v as f64 / 88.7_f64.exp() - 1.0).abs() < 1e-5);
    assert!(g[0].is_finite() && g[0] == -v);
    let e = loss
        .forward(array![-88.8_f32].view(), y.view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Overflow {
            what: "scores",
            dtype: "f32",
            ..
        }
    ));
    // f64: ln(f64::MAX) = 709.78...
    let loss = Exponential::<f64>::new().with_reduction(Reduction::Sum);
    let y = array![-1.0_f64];
    let (v, g) = loss
        .forward_backward(array![709.7_f64].view(), y.view())
        .unwrap();
    assert!(v.is_finite() && (v / 709.7_f64.exp() - 1.0).abs() < 1e-12);
    assert_eq!(g[0], v);
    let e = loss
        .forward(array![709.8_f64].view(), y.view())
        .unwrap_err();
    assert!(matches!(e, Error::Overflow { dtype: "f64", .. }));
}

#[test]
fn overflow_messages_name_the_sample_and_the_true_value() {
    let y = array![1.0_f32, 1.0, -1.0];
    let s = array![0.5_f32, -100.0, 2.0];
    for reduction in REDUCTIONS {
        let loss = Exponential::<f32>::new().with_reduction(reduction);
        for e in [
            loss.forward(s.view(), y.view()).unwrap_err(),
            loss.per_sample(s.view(), y.view()).unwrap_err(),
            loss.backward(s.view(), y.view()).unwrap_err(),
        ] {
            assert_eq!(
                e.to_string(),
                "scores[1]: the sample's loss overflows f32: expected at most 3.4028235e38, \
                 got about 2.688e43"
            );
        }
    }
    // Beyond f64 itself the sample is named, the magnitude only bounded.
    let e = Exponential::<f64>::new()
        .forward(array![800.0].view(), array![-1.0].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores[0]: the sample's loss overflows f64: expected at most 1.7976931348623157e308, \
         got a value beyond the range of f64"
    );
    // A Sum of representable values beyond the range.
    let e = Exponential::<f32>::new()
        .with_reduction(Reduction::Sum)
        .forward(
            array![-88.0_f32, -88.0, -88.0].view(),
            array![1.0_f32, 1.0, 1.0].view(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Overflow { ref index, .. } if index.is_empty()));
    assert_eq!(
        e.to_string(),
        "scores[]: the sum of the per-sample losses overflows f32: expected at most \
         3.4028235e38, got about 4.955e38"
    );
    // ... whose Mean is representable.
    let mean = Exponential::<f32>::new()
        .forward(
            array![-88.0_f32, -88.0, -88.0].view(),
            array![1.0_f32, 1.0, 1.0].view(),
        )
        .unwrap();
    assert!((mean as f64 / 88f64.exp() - 1.0).abs() < 1e-6);
}

#[test]
fn confident_correct_scores_underflow_to_zero_without_nan() {
    let loss = Exponential::<f32>::new().with_reduction(Reduction::None);
    let s = array![1e30_f32, -1e30, 200.0];
    let y = array![1.0_f32, -1.0, 1.0];
    let per = loss.per_sample(s.view(), y.view()).unwrap();
    assert_eq!(per, array![0.0_f32, 0.0, 0.0]);
    let g = loss.backward(s.view(), y.view()).unwrap();
    assert!(g.iter().all(|v| *v == 0.0 && !v.is_nan()));
}

#[test]
fn non_finite_scores_propagate() {
    let loss = Exponential::new().with_reduction(Reduction::None);
    let per = loss
        .per_sample(
            array![f64::NAN, f64::INFINITY, f64::NEG_INFINITY].view(),
            array![1.0, 1.0, 1.0].view(),
        )
        .unwrap();
    assert!(per[0].is_nan());
    assert_eq!(per[1], 0.0);
    assert_eq!(per[2], f64::INFINITY);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = Exponential::<f64>::new();
    let s = array![0.5, -1.0, 2.0];
    let e = loss.forward(s.view(), array![1.0].view()).unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [3], got [1]");
    let e = loss
        .forward(s.view(), array![1.0, -1.0, 2.0].view())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { what: "labels", .. }));
    assert_eq!(
        e.to_string(),
        "labels[2]: expected -1 or +1 (0/1 labels need LabelConvention::ZeroOne), got 2"
    );
    let zo = Exponential::<f64>::new().with_label_convention(LabelConvention::ZeroOne);
    let e = zo
        .forward(s.view(), array![0.0, 1.0, -1.0].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[2]: expected 0 or 1 (LabelConvention::ZeroOne), got -1"
    );
    let empty = Array1::<f64>::zeros(0);
    let e = loss.forward(empty.view(), empty.view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores: expected at least one sample, got an empty array of shape [0]"
    );
    let mut g = Array1::zeros(4);
    let e = loss
        .forward_backward_into(s.view(), array![1.0, 1.0, -1.0].view(), g.view_mut())
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [3], got [4]");
}

fn scores_and_signs() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    (1usize..12).prop_flat_map(|n| {
        (
            proptest::collection::vec(-30.0f64..30.0, n),
            proptest::collection::vec(prop_oneof![Just(-1.0), Just(1.0)], n),
        )
    })
}

proptest! {
    #[test]
    fn gradient_is_minus_y_times_the_value((s, y) in scores_and_signs()) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let loss = Exponential::new().with_reduction(Reduction::None);
        let per = loss.per_sample(s.view(), y.view()).unwrap();
        let g = loss.backward(s.view(), y.view()).unwrap();
        for i in 0..s.len() {
            prop_assert!(per[i] > 0.0);
            prop_assert_eq!(g[i], -y[i] * per[i]);
        }
    }

    #[test]
    fn per_sample_values_sum_to_sum_and_average_to_mean((s, y) in scores_and_signs()) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let per = Exponential::new().with_reduction(Reduction::None).per_sample(s.view(), y.view()).unwrap();
        let sum = Exponential::new().with_reduction(Reduction::Sum).forward(s.view(), y.view()).unwrap();
        let mean = Exponential::new().forward(s.view(), y.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * sum);
        prop_assert!((sum / s.len() as f64 - mean).abs() <= 1e-12 * mean);
    }

    #[test]
    fn exp_loss_bounds_the_zero_one_loss((s, y) in scores_and_signs()) {
        // exp(-y s) >= 1 exactly when the sample is misclassified (y s <= 0).
        let (s, y) = (Array1::from(s), Array1::from(y));
        let per = Exponential::new().with_reduction(Reduction::None).per_sample(s.view(), y.view()).unwrap();
        for i in 0..s.len() {
            prop_assert_eq!(per[i] >= 1.0, y[i] * s[i] <= 0.0);
        }
    }

    #[test]
    fn zero_one_labels_equal_the_signed_labels((s, y) in scores_and_signs()) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let zero_one = y.mapv(|v| if v < 0.0 { 0.0 } else { 1.0 });
        let a = Exponential::new().forward_backward(s.view(), y.view()).unwrap();
        let b = Exponential::new()
            .with_label_convention(LabelConvention::ZeroOne)
            .forward_backward(s.view(), zero_one.view())
            .unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn f32_agrees_with_f64((s, y) in scores_and_signs()) {
        let (s, y) = (Array1::from(s), Array1::from(y));
        let (s32, y32) = (s.mapv(|v| v as f32), y.mapv(|v| v as f32));
        let (a, ga) = Exponential::new().forward_backward(s.view(), y.view()).unwrap();
        let (b, gb) = Exponential::<f32>::new().forward_backward(s32.view(), y32.view()).unwrap();
        // exp amplifies the f32 rounding of s (|s| <= 30) by up to 30 ulps.
        prop_assert!((a - b as f64).abs() <= 1e-5 * a.abs());
        for (p, q) in ga.iter().zip(&gb) {
            prop_assert!((p - *q as f64).abs() <= 1e-5 * p.abs() + 1e-30);
        }
    }
}
