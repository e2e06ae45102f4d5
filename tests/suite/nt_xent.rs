//! NT-Xent: the contract, the formula against a direct computation, the
//! supervised loss with one positive per row, row norms, temperatures near
//! 0, zero rows, errors. (Reference values: `tests/conformance`.)

use crate::common::{assert_grad_errors, assert_option_rejects, matrix, random_array};
use crate::contract::{Case, Unlabeled, check_contract};
use classloss::{Differentiable, Error, Labels, Loss, NtXent, Reduction, SupervisedContrastive};
use ndarray::{Array1, Array2, Axis, array};

/// The per-row losses straight from the definition (the supervised
/// loss's direct computation, each row's positive the other view), no
/// shifts.
fn direct(z: &Array2<f64>, temperature: f64) -> Vec<f64> {
    let m = z.nrows() as i64;
    let pairs: Vec<i64> = (0..m).map(|i| i % (m / 2)).collect();
    let per = crate::supervised_contrastive::direct(z, &pairs, temperature);
    per.into_iter().map(|v| v.unwrap()).collect()
}

/// `result` is an `Overflow` naming the embeddings.
pub fn assert_overflow<T: std::fmt::Debug>(result: classloss::Result<T>) {
    let e = result.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Overflow {
                what: "embeddings",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn contract() {
    for (seed, rows, temperature) in [(1, 8, 0.5), (2, 6, 0.1), (3, 2, 1.0), (4, 10, 2.0)] {
        let x = matrix(random_array(&[rows, 4], seed, 1.0));
        let loss = NtXent::new().with_temperature(temperature).unwrap();
        let case = Case::new(format!("{rows} rows, tau={temperature}"), Unlabeled { x });
        check_contract(&loss, &case);
    }
}

#[test]
fn values_follow_the_definition() {
    let z = matrix(random_array(&[8, 5], 5, 2.0));
    for temperature in [0.07, 0.5, 3.0] {
        let loss = NtXent::new()
            .with_temperature(temperature)
            .unwrap()
            .with_reduction(Reduction::None);
        let per = loss.per_sample(&z, ()).unwrap();
        for (i, want) in direct(&z, temperature).into_iter().enumerate() {
            assert!(
                (per[i] - want).abs() < 1e-12 * want.max(1.0),
                "{i}: {} vs {want}",
                per[i]
            );
        }
        let mean = loss
            .with_reduction(Reduction::Mean)
            .forward(&z, ())
            .unwrap();
        assert!((mean - per.sum() / 8.0).abs() < 1e-13);
    }
}

/// NT-Xent is the supervised loss with the two views of an example as the
/// only rows of their label: value and gradient.
#[test]
fn it_is_the_supervised_loss_with_one_positive_per_row() {
    let z = matrix(random_array(&[6, 3], 6, 1.0));
    let labels = array![10_i32, -3, 4, 10, -3, 4];
    for r in [Reduction::Mean, Reduction::Sum] {
        let ours = NtXent::new()
            .with_temperature(0.2)
            .unwrap()
            .with_reduction(r);
        let sup = SupervisedContrastive::new()
            .with_temperature(0.2)
            .unwrap()
            .with_reduction(r);
        let (v, g) = ours.forward_backward(&z, ()).unwrap();
        let (vs, gs) = sup.forward_backward(&z, Labels::from(&labels)).unwrap();
        assert!((v - vs).abs() < 1e-14, "{v} vs {vs}");
        assert!(g.iter().zip(&gs).all(|(a, b)| (a - b).abs() < 1e-14));
    }
}

/// Each row's norm is ignored (the gradient scales as its inverse), from
/// rows near 1e-9 (above F.normalize's floor of 1e-12) to rows near 1e300,
/// whose squares pass f64.
#[test]
fn row_norms_do_not_matter() {
    let z = matrix(random_array(&[6, 3], 7, 1.0));
    let scales = Array1::from(vec![1e300, 1e-9, 3.0, 0.25, 1e150, 1.0]);
    let scaled = &z * &scales.view().insert_axis(Axis(1));
    let loss = NtXent::new();
    let (v, g) = loss.forward_backward(&z, ()).unwrap();
    let (vs, gs) = loss.forward_backward(&scaled, ()).unwrap();
    assert!((v - vs).abs() < 1e-14, "{v} vs {vs}");
    for ((i, k), a) in g.indexed_iter() {
        let back = gs[[i, k]] * scales[i];
        assert!(
            (a - back).abs() < 1e-12 * a.abs().max(1e-3),
            "{i}: {a} vs {back}"
        );
    }
}

/// Near `tau = 0`: where each row's positive is its nearest row, the loss
/// is 0 with a zero gradient (no `0 * inf`); where it is not, the value is
/// about `1 / tau`, an `Overflow` once that passes the float type, never
/// `inf` or NaN.
#[test]
fn temperatures_near_zero_give_a_value_or_an_overflow() {
    let easy = array![[1.0_f64, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 5.0]];
    for tau in [1e-300, 5e-324] {
        let loss = NtXent::new().with_temperature(tau).unwrap();
        let (v, g) = loss.forward_backward(&easy, ()).unwrap();
        assert_eq!(v, 0.0);
        assert!(g.iter().all(|&x| x == 0.0), "{g}");
    }
    // Row 0's positive (row 2) is orthogonal to it, row 3 parallel.
    let hard = array![[1.0_f64, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]];
    let loss = NtXent::new().with_temperature(1e-300).unwrap();
    let (v, g) = loss.forward_backward(&hard, ()).unwrap();
    assert!((v / 1e300 - 1.0).abs() < 1e-12, "{v}");
    assert!(g.iter().all(|x| x.is_finite()));
    for tau in [1e-310, 5e-324] {
        let loss = NtXent::new().with_temperature(tau).unwrap();
        assert_overflow(loss.forward(&hard, ()));
        assert_overflow(loss.forward_backward(&hard, ()));
    }
    // In f32 the value (about 1e39) fits f64 but not f32.
    let loss = NtXent::new().with_temperature(1e-39).unwrap();
    assert_overflow(loss.forward(&hard.mapv(|v| v as f32), ()));
    assert!(loss.forward(&hard, ()).unwrap().is_finite());
    // Exact ties: rows 0 and 3 split their softmax between two rows at
    // 45 degrees, one of them the positive: the value (ln 2 / 2) fits, the
    // gradient (about 1 / tau) fits f64 but not f32.
    let ties = array![[1.0_f64, 0.0], [0.0, -1.0], [1.0, 1.0], [1.0, -1.0]];
    let loss = NtXent::new().with_temperature(1e-40).unwrap();
    let (v, g) = loss.forward_backward(&ties, ()).unwrap();
    assert!((v - 2f64.ln() / 2.0).abs() < 1e-15, "{v}");
    assert!(g.iter().any(|x| x.abs() > 1e39) && g.iter().all(|x| x.is_finite()));
    let ties32 = ties.mapv(|v| v as f32);
    assert!((loss.forward(&ties32, ()).unwrap() as f64 - v).abs() < 1e-7);
    assert_overflow(loss.forward_backward(&ties32, ()));
}

/// A zero row is PyTorch's: cosine 0 with every row (F.normalize leaves it
/// 0), a finite gradient.
#[test]
fn a_zero_row_has_cosine_zero() {
    let z = array![[0.0_f64, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
    let loss = NtXent::new().with_temperature(1.0).unwrap();
    let per = loss
        .clone()
        .with_reduction(Reduction::None)
        .per_sample(&z, ())
        .unwrap();
    // Row 0: every logit 0 among 3 rows.
    assert!((per[0] - 3f64.ln()).abs() < 1e-15);
    let g = loss.backward(&z, ()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert!(g.row(0).iter().any(|&v| v != 0.0));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = NtXent::new();
    let odd = Array2::<f64>::ones((3, 2));
    let e = loss.forward(&odd, ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "embeddings: expected shape [2N, 2] (an even number of rows), got [3, 2]"
    );
    let e = loss.forward(&Array2::<f64>::zeros((0, 2)), ()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::EmptyBatch {
                what: "embeddings",
                unit: "sample",
                ..
            }
        ),
        "{e}"
    );
    let e = loss.forward(&Array2::<f32>::zeros((2, 0)), ()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::EmptyBatch {
                what: "embeddings",
                unit: "feature",
                ..
            }
        ),
        "{e}"
    );
    let z = Array2::<f64>::ones((4, 2));
    assert_grad_errors(
        &loss,
        z.view(),
        (),
        vec![(
            Array2::zeros((4, 3)),
            "grad: expected shape [4, 2], got [4, 3]",
        )],
    );
    assert_option_rejects(
        "temperature",
        "a finite number > 0",
        &[
            (0.0, "0"),
            (-0.5, "-0.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
        ],
        |t| NtXent::new().with_temperature(t),
    );
}
