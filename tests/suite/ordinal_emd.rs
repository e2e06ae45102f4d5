//! Ordinal EMD: the contract for both exponents, the CDF formula, labels
//! as one-hot probabilities, the ordering it rewards, errors. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{ClassTarget, Differentiable, Labels, Loss, OrdinalEmd, Reduction};
use ndarray::{Array2, array};

#[test]
fn contract() {
    for (seed, r) in [(1u64, 2), (2, 1), (3, 2)] {
        let x = matrix(random_array(&[7, 5], seed, 2.0));
        let y = vector(random_labels(&[7], 5, seed + 1));
        let loss = OrdinalEmd::new().with_r(r).unwrap();
        check_contract(&loss, &Case::new(format!("r={r}"), Labeled::new(x, y)));
    }
}

#[test]
fn labels_are_one_hot_probabilities_and_the_formula_holds() {
    let x = matrix(random_array(&[6, 4], 4, 2.0));
    let y = vector(random_labels(&[6], 4, 5));
    let one_hot = Array2::from_shape_fn((6, 4), |(i, k)| if y[i] == k { 1.0 } else { 0.0 });
    for r in [1, 2] {
        let loss = OrdinalEmd::new()
            .with_r(r)
            .unwrap()
            .with_reduction(Reduction::None);
        let by_label = loss.per_sample(x.view(), Labels::from(&y)).unwrap();
        let by_probs = loss
            .per_sample(x.view(), ClassTarget::Probs(one_hot.view()))
            .unwrap();
        for i in 0..6 {
            assert!((by_label[i] - by_probs[i]).abs() < 1e-15);
            let e: Vec<f64> = x.row(i).iter().map(|v| v.exp()).collect();
            let s: f64 = e.iter().sum();
            let (mut cp, mut ct, mut want) = (0.0, 0.0, 0.0);
            for k in 0..3 {
                cp += e[k] / s;
                ct += one_hot[[i, k]];
                let d: f64 = cp - ct;
                want += if r == 1 { d.abs() } else { d * d };
            }
            assert!((by_label[i] - want).abs() < 1e-12);
        }
        let g = OrdinalEmd::new()
            .with_r(r)
            .unwrap()
            .backward(x.view(), Labels::from(&y))
            .unwrap();
        let gp = OrdinalEmd::new()
            .with_r(r)
            .unwrap()
            .backward(x.view(), ClassTarget::Probs(one_hot.view()))
            .unwrap();
        assert_eq!(g, gp);
    }
}

#[test]
fn errors_name_the_option_and_the_values() {
    let e = OrdinalEmd::<f64>::new().with_r(3).unwrap_err();
    assert_eq!(e.to_string(), "option `r`: expected 1 or 2, got 3");
    let e = OrdinalEmd::<f64>::new()
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
    let e = OrdinalEmd::<f64>::new()
        .forward(
            array![[0.5_f64, 1.0]].view(),
            ClassTarget::Probs(array![[0.5, 1.5]].view()),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "probs[0, 1]: expected a probability in [0, 1], got 1.5"
    );
}
