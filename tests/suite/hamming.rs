//! The Hamming loss: the value half of the contract, the threshold as a
//! probability, reductions, NaN, errors. (No gradient, by type.
//! Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array};
use crate::contract::{Case, Paired, check_value_contract};
use classloss::{Hamming, Loss, Reduction};
use ndarray::{Array2, array};

fn zero_one_targets(shape: &[usize], seed: u64) -> Array2<f64> {
    matrix(random_array(shape, seed, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 }))
}

#[test]
fn value_contract() {
    let x = matrix(random_array(&[9, 5], 1, 3.0));
    let t = zero_one_targets(&[9, 5], 2);
    for threshold in [0.5, 0.2, 0.9] {
        let loss = Hamming::new().with_threshold(threshold).unwrap();
        let case = Case::new(
            format!("threshold={threshold}"),
            Paired::new(x.clone(), t.clone(), "targets"),
        );
        check_value_contract(&loss, &case);
    }
}

#[test]
fn a_label_is_predicted_where_the_sigmoid_passes_the_threshold() {
    let x = matrix(random_array(&[20, 6], 3, 4.0));
    let t = zero_one_targets(&[20, 6], 4);
    for threshold in [0.5, 0.25, 0.8] {
        let per: Array2<f64> = Hamming::new()
            .with_threshold(threshold)
            .unwrap()
            .per_sample(x.view(), t.view())
            .unwrap();
        for ((i, k), &v) in per.indexed_iter() {
            let predicted = 1.0 / (1.0 + (-x[[i, k]]).exp()) > threshold;
            let want = if predicted != (t[[i, k]] == 1.0) {
                1.0
            } else {
                0.0
            };
            assert_eq!(v, want, "[{i}, {k}] at {threshold}");
        }
        let mean: f64 = Hamming::new()
            .with_threshold(threshold)
            .unwrap()
            .forward(x.view(), t.view())
            .unwrap();
        assert_eq!(mean, per.sum() / 120.0);
        let count: f64 = Hamming::new()
            .with_threshold(threshold)
            .unwrap()
            .with_reduction(Reduction::Sum)
            .forward(x.view(), t.view())
            .unwrap();
        assert_eq!(count, per.sum());
    }
}

#[test]
fn at_the_threshold_no_label_is_predicted_and_nan_predicts_none() {
    // sigmoid(0) = 0.5 is not > 0.5.
    let x = array![[0.0_f32, f32::NAN, 1e-3]];
    let t = array![[0.0_f32, 1.0, 1.0]];
    let per = Hamming::new().per_sample(x.view(), t.view()).unwrap();
    assert_eq!(per, array![[0.0_f32, 1.0, 0.0]]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[0.5_f64, -1.0], [2.0, 0.0]];
    let e = Hamming::new()
        .forward(x.view(), array![[1.0, 0.5], [0.0, 1.0]].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "targets[0, 1]: expected 0 or 1, got 0.5");
    let e = Hamming::new()
        .forward(x.view(), array![[1.0, 0.0]].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "targets: expected shape [2, 2], got [1, 2]");
    for bad in [0.0, 1.0, f64::NAN] {
        let e = Hamming::new().with_threshold(bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("option `threshold`: expected a probability in (0, 1)"),
            "{e}"
        );
    }
}
