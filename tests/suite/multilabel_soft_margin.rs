//! Multi-label soft margin loss: the contract with and without class
//! weights, the identity with BCE with logits, f32 logits up to 1e30,
//! errors. (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, soft_targets};
use crate::contract::{Case, Paired, check_contract};
use classloss::{BceWithLogits, Differentiable, Error, Loss, MultiLabelSoftMargin, Reduction};
use ndarray::{Array1, Array2, Axis, array};

#[test]
fn contract() {
    for (seed, scale) in [(1u64, 1.0), (2, 4.0)] {
        let x = matrix(random_array(&[6, 4], seed, scale));
        let t = matrix(soft_targets(&[6, 4], seed + 10));
        let args = Paired::new(x, t, "targets");
        for w in [None, Some(array![0.5, 2.0, 0.0, 1.5])] {
            let mut loss = MultiLabelSoftMargin::new();
            if let Some(w) = &w {
                loss = loss.with_weight(w.clone()).unwrap();
            }
            let mut case = Case::new(format!("scale={scale} weight={w:?}"), args.clone());
            if w.is_some() {
                case = case.misshapen("weight", args.with_extra_class());
            }
            check_contract(&loss, &case);
        }
    }
}

#[test]
fn it_is_bce_with_logits_averaged_over_each_row() {
    let x = matrix(random_array(&[5, 3], 3, 5.0));
    let t = matrix(soft_targets(&[5, 3], 4));
    let w = array![0.3, 1.0, 2.0];
    let per = MultiLabelSoftMargin::new()
        .with_weight(w.clone())
        .unwrap()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap();
    let bce = BceWithLogits::new()
        .with_weight(w.clone())
        .unwrap()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap();
    let want: Array1<f64> = bce.mean_axis(Axis(1)).unwrap();
    for (a, b) in per.iter().zip(&want) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
    // The gradient of the mean over samples: BCE's over all elements.
    let g = MultiLabelSoftMargin::new()
        .with_weight(w.clone())
        .unwrap()
        .backward(x.view(), t.view())
        .unwrap();
    let gb: Array2<f64> = BceWithLogits::new()
        .with_weight(w)
        .unwrap()
        .backward(x.view(), t.view())
        .unwrap();
    for (a, b) in g.iter().zip(&gb) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
}

#[test]
fn f32_logits_up_to_1e30_are_finite() {
    let loss = MultiLabelSoftMargin::<f32>::new().with_reduction(Reduction::None);
    let x = array![[1e30_f32, -1e30], [-1e30, 1e30]];
    let t = array![[1.0_f32, 0.0], [1.0, 0.0]];
    let per = loss.per_sample(x.view(), t.view()).unwrap();
    assert_eq!(per, array![0.0_f32, 1e30]);
    let g = loss.backward(x.view(), t.view()).unwrap();
    assert_eq!(g, array![[0.0_f32, 0.0], [-0.5, 0.5]]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[0.5_f64, -1.0], [2.0, 0.0]];
    let loss = MultiLabelSoftMargin::<f64>::new();
    let e = loss
        .forward(x.view(), array![[1.0, 0.0]].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "targets: expected shape [2, 2], got [1, 2]");
    let e = loss
        .forward(x.view(), array![[1.0, 0.0], [2.0, 1.0]].view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidTarget {
            what: "targets",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "targets[1, 0]: expected a value in [0, 1], got 2"
    );
    let e = MultiLabelSoftMargin::<f64>::new()
        .with_weight(array![1.0, 2.0, 3.0])
        .unwrap()
        .forward(x.view(), array![[1.0, 0.0], [0.0, 1.0]].view())
        .unwrap_err();
    assert!(e.to_string().starts_with("weight"), "{e}");
    let e = MultiLabelSoftMargin::<f64>::new()
        .with_weight(array![1.0, -2.0])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `weight`: expected finite weights >= 0, got an array containing -2"
    );
}
