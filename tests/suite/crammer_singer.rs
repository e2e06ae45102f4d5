//! Crammer–Singer multi-class hinge: the contract away from the kinks,
//! the identity with the Weston–Watkins hinge for two classes, ties and
//! the kink, f32 logits whose difference passes f32, errors. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{CrammerSinger, Differentiable, Labels, Loss, MultiMargin, Reduction};
use ndarray::{Array1, Array2, array};

/// Logits and labels whose hinge (with the best rival) is not within 0.02
/// of its kink, and whose best rival is unique by at least 0.02.
fn batch(n: usize, c: usize, seed: u64, margin: f64) -> (Array2<f64>, Array1<usize>) {
    let mut x = matrix(random_array(&[n, c], seed, 2.0));
    let y = vector(random_labels(&[n], c, seed + 1));
    for i in 0..n {
        loop {
            let mut rivals: Vec<f64> = (0..c).filter(|&j| j != y[i]).map(|j| x[[i, j]]).collect();
            rivals.sort_by(|a, b| b.total_cmp(a));
            let z = margin + rivals[0] - x[[i, y[i]]];
            let tie = rivals.len() > 1 && rivals[0] - rivals[1] < 0.02;
            if z.abs() >= 0.02 && !tie {
                break;
            }
            x[[i, y[i]]] += 0.05;
        }
    }
    (x, y)
}

#[test]
fn contract() {
    for (seed, margin) in [(1u64, 1.0), (2, 0.4), (3, 0.0), (4, 2.5)] {
        let (x, y) = batch(7, 5, seed, margin);
        let loss = CrammerSinger::new().with_margin(margin).unwrap();
        check_contract(
            &loss,
            &Case::new(format!("margin={margin}"), Labeled::new(x, y)),
        );
    }
}

#[test]
fn with_two_classes_it_is_twice_the_weston_watkins_hinge() {
    // One rival: max over one class is that class; MultiMargin divides by C.
    let (x, y) = batch(9, 2, 5, 1.0);
    let labels = Labels::from(&y);
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let (v, g) = CrammerSinger::new()
            .with_reduction(reduction)
            .forward_backward(x.view(), labels.clone())
            .unwrap();
        let (vm, gm) = MultiMargin::new()
            .with_reduction(reduction)
            .forward_backward(x.view(), labels.clone())
            .unwrap();
        assert!((v - 2.0 * vm).abs() < 1e-14);
        for (a, b) in g.iter().zip(&gm) {
            assert!((a - 2.0 * b).abs() < 1e-15);
        }
    }
}

#[test]
fn ties_go_to_the_first_rival_and_the_kink_has_no_gradient() {
    let x = array![[0.0_f64, 2.0, 2.0], [1.0, 0.0, 0.0]];
    let y = array![0_usize, 0];
    let loss = CrammerSinger::new().with_reduction(Reduction::Sum);
    let (v, g) = loss.forward_backward(x.view(), Labels::from(&y)).unwrap();
    // Sample 0: 1 + 2 - 0 = 3, gradient to class 1 (the first of the tie);
    // sample 1: 1 + 0 - 1 = 0 exactly, on the kink: 0 and no gradient.
    assert_eq!(v, 3.0);
    assert_eq!(g, array![[-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]);
    // One class: no rival, no loss.
    let (v, g) = loss
        .forward_backward(array![[5.0_f64]].view(), Labels::from(&array![0_usize]))
        .unwrap();
    assert_eq!((v, g[[0, 0]]), (0.0, 0.0));
}

#[test]
fn an_f32_sample_beyond_f32_is_an_overflow_naming_it() {
    // 1 + 3e38 + 3e38 passes f32: an error naming the sample, not inf,
    // wherever that value is returned (the sum, the per-sample values); the
    // hinge itself is taken in f64, so the mean, which fits, is exact.
    let x = array![[0.0_f32, 0.5], [-3e38, 3e38]];
    let y = array![1_usize, 0];
    let loss = CrammerSinger::<f32>::new();
    let want = "logits[1]: the sample's loss overflows f32: expected at most 3.4028235e38, \
                got about 6.000e38";
    let sum = loss.clone().with_reduction(Reduction::Sum);
    assert_eq!(
        sum.forward(x.view(), Labels::from(&y))
            .unwrap_err()
            .to_string(),
        want
    );
    let per = loss.per_sample(x.view(), Labels::from(&y)).unwrap_err();
    assert_eq!(per.to_string(), want);
    let mean = loss.forward(x.view(), Labels::from(&y)).unwrap();
    assert_eq!(mean, ((0.5_f64 + (1.0 + 6e38)) / 2.0) as f32);
    // Just inside: 1.6e38 + 1.7e38 + 1 fits, and is exact to f32 rounding.
    let x = array![[-1.7e38_f32, 1.6e38]];
    let v = CrammerSinger::<f32>::new()
        .forward(x.view(), Labels::from(&array![0_usize]))
        .unwrap();
    assert_eq!(v, (1.6e38_f64 + 1.7e38 + 1.0) as f32);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[0.5_f64, -1.0], [2.0, 0.0]];
    let loss = CrammerSinger::<f64>::new();
    let e = loss
        .forward(x.view(), Labels::from(&array![0_usize, 2]))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("label 2 is out of range for 2 classes"),
        "{e}"
    );
    let e = CrammerSinger::<f64>::new().with_margin(-1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `margin`: expected a finite number >= 0, got -1"
    );
    let mut g = Array2::zeros((3, 2));
    let e = loss
        .forward_backward_into(x.view(), Labels::from(&array![0_usize, 1]), g.view_mut())
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [2, 2], got [3, 2]");
}
