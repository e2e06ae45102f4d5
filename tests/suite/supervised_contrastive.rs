//! Supervised contrastive loss: the contract (with anchors left out), the
//! `L_out` formula against a direct computation, anchors without a
//! positive, labels of any integer type and value, permutations, errors.
//! (Reference values: `tests/conformance`.)

use crate::common::{assert_grad_errors, assert_option_rejects, matrix, random_array};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{Differentiable, Error, Labels, Loss, Reduction, SupervisedContrastive};
use ndarray::{Array1, Array2, array};

/// The per-anchor losses straight from the paper's `L_out`: `exp` of the
/// scaled cosines, no shifts; `None` for an anchor without a positive.
pub fn direct(z: &Array2<f64>, labels: &[i64], temperature: f64) -> Vec<Option<f64>> {
    let m = z.nrows();
    let unit: Vec<_> = z
        .rows()
        .into_iter()
        .map(|r| &r / r.dot(&r).sqrt())
        .collect();
    let s = |i: usize, k: usize| unit[i].dot(&unit[k]) / temperature;
    (0..m)
        .map(|i| {
            let den: f64 = (0..m).filter(|&k| k != i).map(|k| s(i, k).exp()).sum();
            let pos: Vec<usize> = (0..m)
                .filter(|&p| p != i && labels[p] == labels[i])
                .collect();
            let terms: f64 = pos.iter().map(|&p| (s(i, p).exp() / den).ln()).sum();
            (!pos.is_empty()).then(|| -terms / pos.len() as f64)
        })
        .collect()
}

#[test]
fn contract() {
    // Groups of 3, 2 and 1 (the lone anchor is left out), and all-positive.
    let cases = [
        (vec![0, 1, 0, 2, 1, 0], 5.0, 0.1),
        (vec![3, 3, 3, 3], 4.0, 0.5),
        (vec![0, 1, 2, 0, 1, 2, 0, 1], 8.0, 1.0),
    ];
    for (seed, (labels, anchors, temperature)) in cases.into_iter().enumerate() {
        let x = matrix(random_array(&[labels.len(), 3], seed as u64 + 11, 1.0));
        let loss = SupervisedContrastive::new()
            .with_temperature(temperature)
            .unwrap();
        let args = Labeled::new(x, Array1::from(labels.clone()));
        let case = Case::new(format!("labels {labels:?}"), args).divisor(anchors);
        check_contract(&loss, &case);
    }
}

#[test]
fn values_follow_the_l_out_formula() {
    let z = matrix(random_array(&[9, 4], 21, 2.0));
    let labels = [5_i64, -2, 5, 7, -2, 5, 9, 7, 7];
    for temperature in [0.07, 0.3, 2.0] {
        let loss = SupervisedContrastive::new()
            .with_temperature(temperature)
            .unwrap()
            .with_reduction(Reduction::None);
        let y = Array1::from(labels.to_vec());
        let per = loss.per_sample(&z, &y).unwrap();
        let want = direct(&z, &labels, temperature);
        for (i, w) in want.iter().enumerate() {
            let w = w.unwrap_or(0.0);
            assert!(
                (per[i] - w).abs() < 1e-12 * w.max(1.0),
                "{i}: {} vs {w}",
                per[i]
            );
        }
        // Anchor 6 (label 9) is alone: Mean divides by the other 8.
        let mean = loss
            .with_reduction(Reduction::Mean)
            .forward(&z, &y)
            .unwrap();
        assert!((mean - per.sum() / 8.0).abs() < 1e-13);
    }
}

/// With no anchor that has a positive there is nothing to learn from:
/// `Mean` is 0 with a zero gradient (as cross-entropy over ignored labels),
/// `Sum` is 0.
#[test]
fn a_batch_without_positives_costs_nothing() {
    let z = matrix(random_array(&[4, 3], 22, 1.0));
    let labels = array![0_u8, 1, 2, 3];
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = SupervisedContrastive::new().with_reduction(r);
        let (v, g) = loss.forward_backward(&z, &labels).unwrap();
        assert_eq!(v, 0.0);
        assert!(g.iter().all(|&x| x == 0.0));
        assert!(
            loss.per_sample(&z, &labels)
                .unwrap()
                .iter()
                .all(|&x| x == 0.0)
        );
    }
    let one = array![[1.0_f32, 2.0]];
    let loss = SupervisedContrastive::new();
    assert_eq!(loss.forward(&one, &array![4_i64]).unwrap(), 0.0);
}

/// Labels are compared only for equality: any integer type, any value
/// (negative, beyond `i64`), with the same result.
#[test]
fn labels_are_groups_of_any_integer_type() {
    let z = matrix(random_array(&[5, 3], 23, 1.0));
    let loss = SupervisedContrastive::new();
    let (v, g) = loss
        .forward_backward(&z, &array![0_usize, 1, 0, 1, 1])
        .unwrap();
    let others = [
        loss.forward_backward(&z, &array![-7_i8, 3, -7, 3, 3])
            .unwrap(),
        loss.forward_backward(&z, &array![u64::MAX, 0, u64::MAX, 0, 0])
            .unwrap(),
        loss.forward_backward(&z, &array![i64::MIN, 9, i64::MIN, 9, 9])
            .unwrap(),
    ];
    for (vo, go) in others {
        assert_eq!(v.to_bits(), vo.to_bits());
        assert_eq!(g, go);
    }
}

/// Reordering the batch reorders the per-sample values and the gradient's
/// rows (the loss does not depend on where a sample sits).
#[test]
fn permuting_the_batch_permutes_the_results() {
    let z = matrix(random_array(&[6, 4], 24, 1.0));
    let labels = array![1_i64, 2, 1, 3, 2, 1];
    let order = [4, 0, 5, 2, 1, 3];
    let zp = Array2::from_shape_fn((6, 4), |(i, k)| z[[order[i], k]]);
    let lp = Array1::from_shape_fn(6, |i| labels[order[i]]);
    let loss = SupervisedContrastive::new().with_temperature(0.3).unwrap();
    let none = loss.clone().with_reduction(Reduction::None);
    let (per, perp) = (
        none.per_sample(&z, &labels).unwrap(),
        none.per_sample(&zp, &lp).unwrap(),
    );
    let (g, gp) = (
        loss.backward(&z, &labels).unwrap(),
        loss.backward(&zp, &lp).unwrap(),
    );
    for (i, &o) in order.iter().enumerate() {
        assert!((per[o] - perp[i]).abs() < 1e-13);
        for k in 0..4 {
            assert!((g[[o, k]] - gp[[i, k]]).abs() < 1e-13);
        }
    }
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let z = Array2::<f64>::ones((3, 2));
    let loss = SupervisedContrastive::new();
    let e = loss.forward(&z, &array![0_i64, 1]).unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [3], got [2]");
    let e = loss
        .forward(&Array2::<f64>::zeros((0, 2)), &Array1::<i64>::zeros(0))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::EmptyBatch {
                what: "embeddings",
                ..
            }
        ),
        "{e}"
    );
    let labels = array![0_i64, 1, 0];
    assert_grad_errors(
        &loss,
        z.view(),
        Labels::from(&labels),
        vec![(
            Array2::zeros((2, 2)),
            "grad: expected shape [3, 2], got [2, 2]",
        )],
    );
    assert_option_rejects(
        "temperature",
        "a finite number > 0",
        &[(0.0, "0"), (-1.0, "-1"), (f64::INFINITY, "inf")],
        |t| SupervisedContrastive::new().with_temperature(t),
    );
    // A temperature near 0 with a positive that is not the nearest row.
    let z = array![[1.0_f64, 0.0], [0.0, 1.0], [1.0, 0.1]];
    let tiny = SupervisedContrastive::new()
        .with_temperature(1e-310)
        .unwrap();
    crate::nt_xent::assert_overflow(tiny.forward(&z, &array![0_i64, 0, 1]));
}
