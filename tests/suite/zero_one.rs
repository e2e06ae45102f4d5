//! The 0-1 loss: the value half of the contract, reductions, the argmax tie
//! and NaN rules, properties and errors. (It has no gradient: its rustdoc
//! holds the `compile_fail` test. Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_value_contract};
use crate::labels::{assert_label_errors_of_values, labeled_rows};
use classloss::{CrossEntropy, Loss, Reduction, ZeroOne};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

#[test]
fn reductions_give_rate_count_and_per_sample_flags() {
    let x = array![
        [0.1_f64, 0.7, 0.2],
        [2.0, -1.0, 0.0],
        [0.3, 0.3, 0.9],
        [-5.0, -4.0, -6.0]
    ];
    let y = array![1_usize, 2, 2, 0];
    let per = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
    assert_eq!(per, array![0.0, 1.0, 0.0, 1.0]);
    let mean: f64 = ZeroOne::new().forward(x.view(), y.view()).unwrap();
    assert_eq!(mean, 0.5);
    for r in [Reduction::Sum, Reduction::None] {
        let z = ZeroOne::new().with_reduction(r);
        assert_eq!(z.reduction(), r);
        let v: f64 = z.forward(x.view(), y.view()).unwrap();
        assert_eq!(v, 2.0, "{r}");
        // per_sample does not depend on the reduction.
        assert_eq!(z.per_sample(x.view(), y.view()).unwrap(), per);
    }
}

/// The per-sample values of the 0-1 loss.
fn flags<F: classloss::Float>(x: &Array2<F>, labels: &Array1<usize>) -> Array1<F> {
    ZeroOne::new().per_sample(x, labels).unwrap()
}

#[test]
fn ties_go_to_the_lowest_index() {
    let x = array![[1.0_f32, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]];
    let per = flags(&x, &array![0_usize, 1, 0]);
    assert_eq!(per, array![0.0, 0.0, 0.0]);
    let per = flags(&x, &array![1_usize, 2, 2]);
    assert_eq!(per, array![1.0, 1.0, 1.0]);
}

#[test]
fn a_nan_logit_is_the_prediction_as_in_torch_argmax() {
    let x = array![
        [1.0_f64, f64::NAN, 5.0, f64::NAN],
        [f64::NAN, 9.0, 1.0, 0.0]
    ];
    let hit = flags(&x, &array![1_usize, 0]);
    assert_eq!(hit, array![0.0, 0.0]);
    let miss = flags(&x, &array![2_usize, 1]);
    assert_eq!(miss, array![1.0, 1.0]);
}

#[test]
fn infinite_and_extreme_logits_are_ordinary_values() {
    let x = array![
        [f32::NEG_INFINITY, -f32::MAX],
        [f32::INFINITY, f32::INFINITY],
        [1e30, -1e30]
    ];
    let per = flags(&x, &array![1_usize, 0, 0]);
    assert_eq!(per, array![0.0, 0.0, 0.0]);
}

#[test]
fn agrees_with_argmax_on_random_rows() {
    let x = matrix(random_array(&[40, 7], 3, 5.0));
    let y = vector(random_labels(&[40], 7, 4));
    let per = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
    let mut errors = 0;
    for (i, row) in x.rows().into_iter().enumerate() {
        let best = (0..7)
            .max_by(|&a, &b| row[a].partial_cmp(&row[b]).unwrap())
            .unwrap();
        let wrong = best != y[i];
        errors += usize::from(wrong);
        assert_eq!(per[i], if wrong { 1.0 } else { 0.0 }, "row {i}");
    }
    // The fixture is not trivial: some rows right, some wrong.
    assert!(errors > 0 && errors < 40);
    let rate: f64 = ZeroOne::new().forward(x.view(), y.view()).unwrap();
    assert_eq!(rate, errors as f64 / 40.0);
}

/// The value half of the contract (no gradient), on random rows and on
/// rows with ties.
#[test]
fn contract() {
    let x = matrix(random_array(&[40, 7], 3, 5.0));
    let y = vector(random_labels(&[40], 7, 4));
    check_value_contract(&ZeroOne::new(), &Case::new("random", Labeled::new(x, y)));
    let ties = array![[1.0_f64, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]];
    let case = Case::new("ties", Labeled::new(ties, array![0_usize, 2, 1]));
    check_value_contract(&ZeroOne::new(), &case);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors_of_values(&ZeroOne::new());
    // and in f32
    let zeros = Array2::<f32>::zeros((2, 0));
    let e = ZeroOne::new().per_sample(zeros.view(), array![0_usize, 0].view());
    assert_eq!(
        e.unwrap_err().to_string(),
        "logits: expected at least one class, got an empty array of shape [2, 0]"
    );
}

fn logits_and_labels() -> impl Strategy<Value = (Array2<f64>, Array1<usize>)> {
    // Multiples of 1/8: exact in f32, and ties happen often.
    labeled_rows(1..8, 1..6, (-40i32..40).prop_map(|k| f64::from(k) / 8.0))
}

proptest! {
    #[test]
    fn reductions_agree_with_per_sample((x, y) in logits_and_labels()) {
        let per = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
        let sum: f64 = ZeroOne::new().with_reduction(Reduction::Sum).forward(x.view(), y.view()).unwrap();
        let none: f64 = ZeroOne::new().with_reduction(Reduction::None).forward(x.view(), y.view()).unwrap();
        let mean: f64 = ZeroOne::new().forward(x.view(), y.view()).unwrap();
        prop_assert!(per.iter().all(|&v| v == 0.0 || v == 1.0));
        prop_assert_eq!(per.sum(), sum);
        prop_assert_eq!(sum, none);
        prop_assert_eq!(mean, sum / x.nrows() as f64);
    }

    #[test]
    fn zero_exactly_when_the_label_is_the_first_maximum((x, y) in logits_and_labels()) {
        let per = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
        for (i, row) in x.rows().into_iter().enumerate() {
            let l = y[i];
            let is_first_max = row.iter().enumerate().all(|(j, &v)| {
                if j < l { v < row[l] } else { v <= row[l] }
            });
            prop_assert_eq!(per[i] == 0.0, is_first_max, "row {}", i);
        }
    }

    #[test]
    fn invariant_to_shifting_and_positive_scaling((x, y) in logits_and_labels(), k in 1i32..5, s in -16i32..16) {
        // Powers of two and multiples of 1/8 keep every value exact, ties included.
        let scaled = x.mapv(|v| v * f64::from(1 << k) + f64::from(s) / 8.0);
        let a = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
        let b = ZeroOne::new().per_sample(scaled.view(), y.view()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels()) {
        let x32 = x.mapv(|v| v as f32);
        let a = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
        let b = ZeroOne::new().per_sample(x32.view(), y.view()).unwrap();
        prop_assert!(a.iter().zip(b.iter()).all(|(p, q)| *p == f64::from(*q)));
    }

    #[test]
    fn a_right_answer_has_the_smallest_cross_entropy_of_its_row((x, y) in logits_and_labels()) {
        // Sanity link to the surrogate: where the 0-1 loss is 0, no other
        // label of the row has a smaller cross-entropy.
        let per = ZeroOne::new().per_sample(x.view(), y.view()).unwrap();
        let ce = CrossEntropy::new().with_reduction(Reduction::None);
        let c = x.ncols();
        for (i, &flag) in per.iter().enumerate() {
            if flag != 0.0 { continue; }
            let row = x.slice(ndarray::s![i..i + 1, ..]);
            let own = ce.per_sample(row, ndarray::array![y[i]].view()).unwrap()[0];
            for other in 0..c {
                let v = ce.per_sample(row, ndarray::array![other].view()).unwrap()[0];
                prop_assert!(own <= v + 1e-12);
            }
        }
    }
}
