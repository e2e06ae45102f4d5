//! Wasserstein loss to a label: the contract, the expected cost, the
//! 0-1 cost as one minus the label's probability, errors. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{Labels, Loss, Reduction, Wasserstein};
use ndarray::{Array2, array};

fn cost(c: usize, seed: u64) -> Array2<f64> {
    let a = matrix(random_array(&[c, c], seed, 2.0)).mapv(f64::abs);
    let mut m = &a + &a.t();
    m.diag_mut().fill(0.0);
    m
}

#[test]
fn contract() {
    for seed in [1u64, 2, 3] {
        let x = matrix(random_array(&[7, 5], seed, 3.0));
        let y = vector(random_labels(&[7], 5, seed + 1));
        let loss = Wasserstein::new().with_cost(cost(5, seed + 2)).unwrap();
        let args = Labeled::new(x, y);
        let case = Case::new(format!("seed={seed}"), args.clone())
            .misshapen("cost", args.with_extra_class());
        check_contract(&loss, &case);
    }
}

#[test]
fn it_is_the_expected_cost_and_with_0_1_costs_one_minus_the_labels_probability() {
    let x = matrix(random_array(&[6, 4], 4, 2.0));
    let y = vector(random_labels(&[6], 4, 5));
    let softmax = |i: usize| {
        let e: Vec<f64> = x.row(i).iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(move |v| v / s)
    };
    let m = cost(4, 6);
    let per = Wasserstein::new()
        .with_cost(m.clone())
        .unwrap()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), Labels::from(&y))
        .unwrap();
    for i in 0..6 {
        let want: f64 = softmax(i).enumerate().map(|(c, p)| p * m[[y[i], c]]).sum();
        assert!((per[i] - want).abs() < 1e-12);
    }
    let zero_one = Array2::from_shape_fn((4, 4), |(a, b)| if a == b { 0.0 } else { 1.0 });
    let per = Wasserstein::new()
        .with_cost(zero_one)
        .unwrap()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), Labels::from(&y))
        .unwrap();
    for i in 0..6 {
        let p_y = softmax(i).nth(y[i]).unwrap();
        assert!((per[i] - (1.0 - p_y)).abs() < 1e-12);
    }
}

#[test]
fn errors_name_the_option_and_the_values() {
    let x = array![[0.5_f64, -1.0], [2.0, 0.0]];
    let y = array![0_usize, 1];
    let e = Wasserstein::new()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `cost`: expected a (C, C) ground cost between classes, got none"
    );
    let e = Wasserstein::new()
        .with_cost(array![[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
        .unwrap()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert_eq!(e.to_string(), "cost: expected shape [2, 2], got [3, 3]");
    let e = Wasserstein::new()
        .with_cost(array![[0.0, -1.0], [1.0, 0.0]])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `cost`: expected costs that are finite and >= 0, got -1"
    );
    let e = Wasserstein::new()
        .with_cost(array![[0.0, 1.0]])
        .unwrap_err();
    assert!(e.to_string().contains("a square (C, C) matrix"), "{e}");
}
