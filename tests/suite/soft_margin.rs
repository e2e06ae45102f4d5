//! Soft margin loss: the contract under both label conventions and
//! several ranks, the identity with BCE with logits, extremes, errors.
//! (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array};
use crate::contract::{Case, Paired, check_contract};
use classloss::{
    BceWithLogits, Differentiable, Error, LabelConvention, Loss, Reduction, SoftMargin,
};
use ndarray::{ArrayD, IxDyn, array};
use proptest::prelude::*;

/// Labels in `{-1, +1}` of the given shape.
fn signs(shape: &[usize], seed: u64) -> ArrayD<f64> {
    random_array(shape, seed, 1.0).mapv(|v| if v < 0.0 { -1.0 } else { 1.0 })
}

#[test]
fn contract() {
    for (shape, seed) in [(vec![7], 1u64), (vec![4, 3], 2), (vec![2, 3, 4], 3)] {
        for (scale, convention) in [
            (1.0, LabelConvention::PlusMinusOne),
            (6.0, LabelConvention::PlusMinusOne),
            (3.0, LabelConvention::ZeroOne),
        ] {
            let y = signs(&shape, seed + 20);
            let labels = match convention {
                LabelConvention::PlusMinusOne => y,
                LabelConvention::ZeroOne => y.mapv(|v| v.max(0.0)),
            };
            let x = random_array(&shape, seed, scale);
            let loss = SoftMargin::<f64, IxDyn>::spatial().with_label_convention(convention);
            let what = format!("{shape:?} scale={scale} {convention:?}");
            check_contract(&loss, &Case::new(what, Paired::new(x, labels, "labels")));
        }
    }
}

#[test]
fn worked_example() {
    // softplus(-y x): y x = 0 costs ln 2; a right score of 2 costs
    // ln(1 + e^-2); a wrong one, ln(1 + e^2).
    let loss = SoftMargin::new().with_reduction(Reduction::None);
    let x = array![[0.0_f64, 2.0, 2.0]];
    let y = array![[1.0, 1.0, -1.0]];
    let per = loss.per_sample(x.view(), y.view()).unwrap();
    let want = array![[2f64.ln(), (-2f64).exp().ln_1p(), 2f64.exp().ln_1p()]];
    for (a, b) in per.iter().zip(&want) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
    let g = loss.backward(x.view(), y.view()).unwrap();
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let want = array![[-0.5, -sigmoid(-2.0), sigmoid(2.0)]];
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
}

proptest! {
    /// It is BCE with logits on the target `(1 + y) / 2`, value and gradient.
    #[test]
    fn equals_bce_with_logits_on_zero_one_targets(
        xs in proptest::collection::vec(-40.0f64..40.0, 1..24),
        seed in 0u64..1000,
    ) {
        let n = xs.len();
        let x = ndarray::Array2::from_shape_vec((n, 1), xs).unwrap();
        let y = matrix(signs(&[n, 1], seed));
        let t = y.mapv(|v| (1.0 + v) / 2.0);
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let (v, g) = SoftMargin::new()
                .with_reduction(reduction)
                .forward_backward(x.view(), y.view())
                .unwrap();
            let (vb, gb) = BceWithLogits::new()
                .with_reduction(reduction)
                .forward_backward(x.view(), t.view())
                .unwrap();
            prop_assert!((v - vb).abs() <= 1e-14 * (1.0 + vb.abs()));
            for (a, b) in g.iter().zip(&gb) {
                prop_assert!((a - b).abs() <= 1e-15 * (1.0 + b.abs()));
            }
        }
    }
}

#[test]
fn f32_scores_up_to_1e30_are_finite_and_exact() {
    let loss = SoftMargin::<f32>::new().with_reduction(Reduction::None);
    let x = array![[1e30_f32, -1e30, 1e30, -1e30, 88.0]];
    let y = array![[1.0_f32, -1.0, -1.0, 1.0, -1.0]];
    let per = loss.per_sample(x.view(), y.view()).unwrap();
    assert_eq!(per, array![[0.0_f32, 0.0, 1e30, 1e30, 88.0]]);
    let g = loss.backward(x.view(), y.view()).unwrap();
    assert_eq!(g, array![[0.0_f32, 0.0, 1.0, -1.0, 1.0]]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = SoftMargin::<f64>::new();
    let x = array![[0.5, -1.0], [2.0, 0.0]];
    let e = loss
        .forward(x.view(), array![[1.0, -1.0]].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [2, 2], got [1, 2]");
    let e = loss
        .forward(x.view(), array![[1.0, -1.0], [0.0, 1.0]].view())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { what: "labels", .. }));
    assert_eq!(
        e.to_string(),
        "labels[1, 0]: expected -1 or +1 (0/1 labels need LabelConvention::ZeroOne), got 0"
    );
    let zo = SoftMargin::<f64>::new().with_label_convention(LabelConvention::ZeroOne);
    let e = zo
        .forward(x.view(), array![[1.0, 0.0], [-1.0, 1.0]].view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[1, 0]: expected 0 or 1 (LabelConvention::ZeroOne), got -1"
    );
    let empty = ndarray::Array2::<f64>::zeros((0, 2));
    let e = loss.forward(empty.view(), empty.view()).unwrap_err();
    assert!(
        e.to_string().starts_with("scores: expected at least one"),
        "{e}"
    );
    let mut g = ndarray::Array2::zeros((3, 2));
    let e = loss
        .forward_backward_into(
            x.view(),
            array![[1.0, 1.0], [-1.0, 1.0]].view(),
            g.view_mut(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [2, 2], got [3, 2]");
}
