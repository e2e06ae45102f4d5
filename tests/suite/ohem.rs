//! OHEM cross-entropy: the contract (Mean divides by the kept count),
//! cross-entropy at keep ratio 1, the selection and its ties, errors.
//! (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{CrossEntropy, Differentiable, Labels, Loss, OhemCrossEntropy, Reduction};
use ndarray::array;

#[test]
fn contract() {
    for (seed, ratio, kept) in [
        (1u64, 0.5, 5.0),
        (2, 0.25, 3.0),
        (3, 1.0, 9.0),
        (4, 0.01, 1.0),
    ] {
        let x = matrix(random_array(&[9, 4], seed, 3.0));
        let y = vector(random_labels(&[9], 4, seed + 1));
        let loss = OhemCrossEntropy::new().with_keep_ratio(ratio).unwrap();
        let case = Case::new(format!("keep_ratio={ratio}"), Labeled::new(x, y)).divisor(kept);
        check_contract(&loss, &case);
    }
}

#[test]
fn keeping_everything_is_cross_entropy() {
    let x = matrix(random_array(&[7, 5], 5, 2.0));
    let y = vector(random_labels(&[7], 5, 6));
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let (v, g) = OhemCrossEntropy::new()
            .with_keep_ratio(1.0)
            .unwrap()
            .with_reduction(reduction)
            .forward_backward(x.view(), Labels::from(&y))
            .unwrap();
        let (vc, gc) = CrossEntropy::new()
            .with_reduction(reduction)
            .forward_backward(x.view(), Labels::from(&y))
            .unwrap();
        assert!((v - vc).abs() < 1e-12);
        assert!(g.iter().zip(&gc).all(|(a, b)| (a - b).abs() < 1e-15));
    }
}

#[test]
fn the_hardest_are_kept_and_ties_keep_the_earlier_sample() {
    // Rows 1 and 3 are identical and the hardest; with k = 1 row 1 stays.
    let x = array![[2.0_f64, 0.0], [0.0, 3.0], [1.0, 0.5], [0.0, 3.0]];
    let y = array![0_usize, 0, 0, 0];
    let ohem = OhemCrossEntropy::new()
        .with_keep_ratio(0.25)
        .unwrap()
        .with_reduction(Reduction::None);
    let per = ohem.per_sample(x.view(), Labels::from(&y)).unwrap();
    let ce = CrossEntropy::new()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), Labels::from(&y))
        .unwrap();
    assert_eq!(per, array![0.0, ce[1], 0.0, 0.0]);
    let g = ohem.backward(x.view(), Labels::from(&y)).unwrap();
    assert!(g.row(3).iter().all(|&v| v == 0.0) && g.row(1).iter().any(|&v| v != 0.0));
}

#[test]
fn errors_name_the_option_and_the_values() {
    for bad in [0.0, 1.5, f64::NAN] {
        let e = OhemCrossEntropy::<f64>::new()
            .with_keep_ratio(bad)
            .unwrap_err();
        assert!(e.to_string().starts_with("option `keep_ratio`"), "{e}");
    }
    let e = OhemCrossEntropy::<f64>::new()
        .forward(
            array![[0.5_f64, 1.0]].view(),
            Labels::from(&array![2_usize]),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("label 2 is out of range for 2 classes"),
        "{e}"
    );
}
