//! Sparsemax loss: the contract, the gradient as sparsemax minus the
//! one-hot label (a distribution with exact zeros), zero loss at margin
//! 1, shift invariance, f32 extremes, errors. (Reference values:
//! `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{Differentiable, Error, Labels, Loss, Reduction, Sparsemax};
use ndarray::{array, s};

#[test]
fn contract() {
    for (seed, scale) in [(1u64, 0.5), (2, 2.0), (3, 6.0)] {
        let x = matrix(random_array(&[8, 5], seed, scale));
        let y = vector(random_labels(&[8], 5, seed + 1));
        check_contract(
            &Sparsemax::new(),
            &Case::new(format!("scale={scale}"), Labeled::new(x, y)),
        );
    }
}

#[test]
fn the_gradient_plus_the_label_is_a_sparse_distribution() {
    let x = matrix(random_array(&[10, 6], 4, 3.0));
    let y = vector(random_labels(&[10], 6, 5));
    let g = Sparsemax::new()
        .with_reduction(Reduction::Sum)
        .backward(x.view(), Labels::from(&y))
        .unwrap();
    let mut zeros = 0;
    for (i, row) in g.rows().into_iter().enumerate() {
        let p: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(k, &v)| v + if k == y[i] { 1.0 } else { 0.0 })
            .collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p.iter().all(|&v| v >= 0.0));
        zeros += p.iter().filter(|&&v| v == 0.0).count();
    }
    assert!(zeros > 0, "sparsemax of spread logits has exact zeros");
}

#[test]
fn a_label_winning_by_one_costs_nothing_and_shifts_change_nothing() {
    let x = array![[2.0_f64, 1.0, -3.0], [0.2, 0.1, 0.0]];
    let y = array![0_usize, 2];
    let loss = Sparsemax::new().with_reduction(Reduction::None);
    let per = loss.per_sample(x.view(), Labels::from(&y)).unwrap();
    assert_eq!(per[0], 0.0);
    let shifted = &x + 1e3;
    let per_shifted = loss.per_sample(shifted.view(), Labels::from(&y)).unwrap();
    assert!((per[1] - per_shifted[1]).abs() < 1e-12);
}

#[test]
fn f32_logits_near_the_maximum_are_finite_or_an_overflow() {
    // Sample 0 loses by 6e38: beyond f32, an overflow naming it, never inf.
    let x = array![[3e38_f32, -3e38, 0.0], [-3e38, 3e38, 3e38]];
    let y = array![1_usize, 2];
    let e = Sparsemax::new()
        .with_reduction(Reduction::Sum)
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert!(
        matches!(e, Error::Overflow { ref index, .. } if index == &[0]),
        "{e}"
    );
    // Sample 1: a tie between classes 1 and 2 at 3e38, half and half.
    let (v, g) = Sparsemax::new()
        .forward_backward(x.slice(s![1..2, ..]), Labels::from(&array![2_usize]))
        .unwrap();
    assert_eq!(v, 0.25);
    assert_eq!(g, array![[0.0_f32, 0.5, -0.5]]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let e = Sparsemax::new()
        .forward(
            array![[0.5_f64, 1.0]].view(),
            Labels::from(&array![3_usize]),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("label 3 is out of range for 2 classes"),
        "{e}"
    );
}
