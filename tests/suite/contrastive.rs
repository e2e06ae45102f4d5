//! Contrastive loss: the contract (gradients for both embeddings) under
//! every option, symmetry, the distance-0 convention, one-sided checks at
//! the hinge, errors, f32. (Reference values: `tests/conformance`.)

use crate::common::{assert_grad_errors, matrix, pair_of, random_array};
use crate::contract::{Case, Pairs, check_contract};
use classloss::{Contrastive, ContrastiveForm, Differentiable, Error, Loss, PairGrad, Reduction};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

fn forms() -> [ContrastiveForm; 2] {
    [ContrastiveForm::Squared, ContrastiveForm::Hinge]
}

fn distances(x1: &Array2<f64>, x2: &Array2<f64>) -> Vec<f64> {
    (x1 - x2)
        .rows()
        .into_iter()
        .map(|r| r.dot(&r).sqrt())
        .collect()
}

#[test]
fn contract() {
    let x1 = matrix(random_array(&[8, 4], 1, 1.0));
    let x2 = matrix(random_array(&[8, 4], 2, 1.0));
    let similar = array![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
    let d = distances(&x1, &x2);
    let args = Pairs::new(x1, x2, similar.clone(), "similar");
    for form in forms() {
        for (margin, pos_margin) in [(1.0, 0.0), (2.5, 0.0), (1.8, 0.6)] {
            // Away from the kinks (hinges at margin and pos_margin) and
            // with both sides of each hinge present.
            for &di in &d {
                assert!((di - margin).abs() > 1e-3 && (di - pos_margin).abs() > 1e-3);
            }
            let loss = Contrastive::new()
                .with_form(form)
                .with_margin(margin)
                .unwrap()
                .with_pos_margin(pos_margin)
                .unwrap();
            let what = format!("{form:?} m={margin} m_pos={pos_margin}");
            check_contract(&loss, &Case::new(what, args.clone()));
        }
    }
    // The batch has dissimilar pairs on both sides of 1.8 and similar
    // pairs on both sides of 0.6, so every branch was checked.
    let distances_of = |flag: f64| -> Vec<f64> {
        let pairs = d.iter().zip(&similar);
        pairs
            .filter(|&(_, &y)| y == flag)
            .map(|(d, _)| *d)
            .collect()
    };
    let (dis, sim) = (distances_of(0.0), distances_of(1.0));
    assert!(
        dis.iter().any(|&v| v < 1.8) && dis.iter().any(|&v| v > 1.8),
        "{dis:?}"
    );
    assert!(
        sim.iter().any(|&v| v < 0.6) && sim.iter().any(|&v| v > 0.6),
        "{sim:?}"
    );
}

#[test]
fn worked_values_of_both_forms() {
    // D = 5 (similar), D = 0.5 (dissimilar), margin 2, pos_margin 1.
    let x1 = array![[0.0_f64, 0.0], [1.0, 1.0]];
    let x2 = array![[3.0, 4.0], [1.0, 1.5]];
    let similar = array![1.0, 0.0];
    let pair = pair_of(&x1, &x2);
    let base = Contrastive::new()
        .with_margin(2.0)
        .unwrap()
        .with_pos_margin(1.0)
        .unwrap()
        .with_reduction(Reduction::None);
    let sq = base.clone().per_sample(pair, similar.view()).unwrap();
    assert_eq!(sq.to_vec(), vec![0.5 * 16.0, 0.5 * 1.5 * 1.5]);
    let hinge = base.with_form(ContrastiveForm::Hinge);
    assert_eq!(
        hinge.per_sample(pair, similar.view()).unwrap().to_vec(),
        vec![4.0, 1.5]
    );
    let g = hinge.backward(pair, similar.view()).unwrap();
    // Unit direction, pulled together / pushed apart.
    let expected = array![[-0.6, -0.8], [0.0, 1.0]];
    assert!(
        g.x1.iter()
            .zip(&expected)
            .all(|(a, b)| (a - b).abs() < 1e-15),
        "{}",
        g.x1
    );
}

#[test]
fn distance_zero_has_the_documented_finite_gradient() {
    let x = array![[0.5_f64, -1.0, 2.0], [0.5, -1.0, 2.0]];
    let pair = pair_of(&x, &x);
    let similar = array![0.0, 1.0];
    for form in forms() {
        for m_pos in [0.0, 0.3] {
            let loss = Contrastive::new()
                .with_form(form)
                .with_margin(1.5)
                .unwrap()
                .with_pos_margin(m_pos)
                .unwrap()
                .with_reduction(Reduction::None);
            let per = loss.per_sample(pair, similar.view()).unwrap();
            let expected = match form {
                ContrastiveForm::Squared => 0.5 * 1.5 * 1.5,
                ContrastiveForm::Hinge => 1.5,
            };
            assert_eq!(per.to_vec(), vec![expected, 0.0]);
            let g = loss.backward(pair, similar.view()).unwrap();
            assert!(
                g.x1.iter().chain(g.x2.iter()).all(|&v| v == 0.0),
                "{form:?}"
            );
        }
    }
}

#[test]
fn one_sided_derivatives_at_the_hinges() {
    // A dissimilar pair at exactly D = m: the gradient given (zero) is the
    // derivative on the side where the pair is far enough; moving closer
    // costs at rate 1 (hinge) or 0 (squared, which is smooth there).
    let m = 2.0;
    let x1 = array![[0.0_f64, 0.0]];
    let x2 = array![[m, 0.0]];
    let similar = array![0.0];
    for form in forms() {
        let loss = Contrastive::new()
            .with_form(form)
            .with_margin(m)
            .unwrap()
            .with_reduction(Reduction::Sum);
        let f = |t: f64| {
            let a = array![[t, 0.0]];
            loss.forward(pair_of(&a, &x2), similar.view()).unwrap()
        };
        let pair = pair_of(&x1, &x2);
        let g = loss.backward(pair, similar.view()).unwrap();
        let h = 1e-7;
        // x1 moving to -h increases D: the side the gradient describes.
        let right = (f(-h) - f(0.0)) / -h;
        assert!((right - g.x1[[0, 0]]).abs() < 1e-6, "{form:?}");
        // x1 moving to +h decreases D below m.
        let left = (f(h) - f(0.0)) / h;
        let expected_left = match form {
            ContrastiveForm::Squared => 0.0,
            ContrastiveForm::Hinge => 1.0,
        };
        assert!((left - expected_left).abs() < 1e-6, "{form:?}: {left}");
    }
}

#[test]
fn huge_f32_distances_stay_finite_in_the_hinge_form() {
    // |x1 - x2|^2 overflows f32; the distance itself does not.
    let x1 = array![[3e30_f32, 4e30], [0.0, 0.0]];
    let x2 = array![[0.0_f32, 0.0], [3e-30, 4e-30]];
    let similar = array![1.0_f32, 0.0];
    let loss = Contrastive::new()
        .with_form(ContrastiveForm::Hinge)
        .with_reduction(Reduction::None);
    let pair = pair_of(&x1, &x2);
    let per = loss.per_sample(pair, similar.view()).unwrap();
    assert!((per[0] / 5e30 - 1.0).abs() < 1e-6);
    assert!((per[1] - 1.0).abs() < 1e-6);
    let g = loss.backward(pair, similar.view()).unwrap();
    assert!((g.x1[[0, 0]] - 0.6).abs() < 1e-6 && (g.x1[[0, 1]] - 0.8).abs() < 1e-6);
    // The tiny dissimilar pair still has its direction.
    assert!((g.x1[[1, 0]] - 0.6).abs() < 1e-6 && (g.x1[[1, 1]] - 0.8).abs() < 1e-6);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = Contrastive::new();
    let x1 = Array2::<f64>::zeros((2, 3));
    let pair = pair_of(&x1, &x1);
    let x2 = Array2::<f64>::zeros((2, 2));
    let err = loss
        .forward(pair_of(&x1, &x2), array![1.0, 0.0].view())
        .unwrap_err();
    assert_eq!(err.to_string(), "x2: expected shape [2, 3], got [2, 2]");
    let err = loss.forward(pair, array![1.0].view()).unwrap_err();
    assert_eq!(err.to_string(), "similar: expected shape [2], got [1]");
    let err = loss.forward(pair, array![1.0, 0.5].view()).unwrap_err();
    assert_eq!(err.to_string(), "similar[1]: expected 0 or 1, got 0.5");
    assert!(matches!(
        err,
        Error::InvalidTarget {
            what: "similar",
            ..
        }
    ));
    let err = loss.forward(pair, array![-1.0, 1.0].view()).unwrap_err();
    assert_eq!(err.to_string(), "similar[0]: expected 0 or 1, got -1");
    let empty = Array2::<f64>::zeros((0, 3));
    let err = loss
        .forward(pair_of(&empty, &empty), Array1::zeros(0).view())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "x1: expected at least one sample, got an empty array of shape [0, 3]"
    );
    let flat = Array2::<f64>::zeros((2, 0));
    let err = loss
        .forward(pair_of(&flat, &flat), array![1.0, 0.0].view())
        .unwrap_err();
    assert!(matches!(
        err,
        Error::EmptyBatch {
            unit: "feature",
            ..
        }
    ));
    let grad = |x1: (usize, usize), x2: (usize, usize)| PairGrad {
        x1: Array2::zeros(x1),
        x2: Array2::zeros(x2),
    };
    let cases = vec![
        (
            grad((2, 3), (3, 2)),
            "grad.x2: expected shape [2, 3], got [3, 2]",
        ),
        (
            grad((1, 3), (2, 3)),
            "grad.x1: expected shape [2, 3], got [1, 3]",
        ),
    ];
    assert_grad_errors(&loss, pair, array![1.0, 0.0].view(), cases);
    let err = Contrastive::new().with_margin(-1.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `margin`: expected a finite number >= 0, got -1"
    );
    let err = Contrastive::new().with_pos_margin(f64::NAN).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidOption {
            name: "pos_margin",
            ..
        }
    ));
}

fn pairs() -> impl Strategy<Value = (Array2<f64>, Array2<f64>, Vec<f64>)> {
    (1usize..6, 1usize..5).prop_flat_map(|(n, d)| {
        (
            proptest::collection::vec(-3.0f64..3.0, n * d),
            proptest::collection::vec(-3.0f64..3.0, n * d),
            proptest::collection::vec(prop_oneof![Just(0.0), Just(1.0)], n),
        )
            .prop_map(move |(a, b, y)| {
                (
                    Array2::from_shape_vec((n, d), a).unwrap(),
                    Array2::from_shape_vec((n, d), b).unwrap(),
                    y,
                )
            })
    })
}

fn any_form() -> impl Strategy<Value = ContrastiveForm> {
    prop_oneof![Just(ContrastiveForm::Squared), Just(ContrastiveForm::Hinge)]
}

proptest! {
    #[test]
    fn symmetric_in_x1_and_x2(
        (x1, x2, y) in pairs(), form in any_form(), m in 0.0f64..4.0, mp in 0.0f64..1.0,
    ) {
        let loss = Contrastive::new().with_form(form).with_margin(m).unwrap().with_pos_margin(mp).unwrap();
        let y = Array1::from(y);
        let (a, ga) = loss.forward_backward(pair_of(&x1, &x2), y.view()).unwrap();
        let (b, gb) = loss.forward_backward(pair_of(&x2, &x1), y.view()).unwrap();
        prop_assert_eq!(a, b);
        prop_assert_eq!(&ga.x1, &gb.x2);
        prop_assert_eq!(&ga.x2, &gb.x1);
        // Translation invariance: only x1 - x2 matters, so the two
        // gradients cancel.
        prop_assert!((&ga.x1 + &ga.x2).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((x1, x2, y) in pairs(), form in any_form()) {
        let y = Array1::from(y);
        let pair = pair_of(&x1, &x2);
        let loss = Contrastive::new().with_form(form).with_margin(2.0).unwrap().with_reduction(Reduction::Sum);
        let per = loss.per_sample(pair, y.view()).unwrap();
        let sum = loss.forward(pair, y.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        prop_assert!(per.iter().all(|&v| v >= 0.0));
        let mean = loss.with_reduction(Reduction::Mean).forward(pair, y.view()).unwrap();
        prop_assert!((mean * y.len() as f64 - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
    }

    #[test]
    fn f32_agrees_with_f64((x1, x2, y) in pairs(), form in any_form()) {
        let loss = Contrastive::new().with_form(form).with_margin(2.0).unwrap();
        let y = Array1::from(y);
        let d = distances(&x1, &x2);
        // The hinge's gradient jumps at D = m and at D = 0; f32 rounding
        // could land on either side.
        prop_assume!(d.iter().all(|&v| (v - 2.0).abs() > 1e-3 && v > 1e-3));
        let (a, ga) = loss.forward_backward(pair_of(&x1, &x2), y.view()).unwrap();
        let (x1f, x2f, yf) = (x1.mapv(|v| v as f32), x2.mapv(|v| v as f32), y.mapv(|v| v as f32));
        let (b, gb) = loss.forward_backward(pair_of(&x1f, &x2f), yf.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        for (p, q) in ga.x1.iter().zip(gb.x1.iter()) {
            prop_assert!((p - *q as f64).abs() <= 1e-4 * (1.0 + p.abs()));
        }
    }
}

/// Issue 10: an f32 similar pair `1e20` and `-1e20` has a loss of 2e40 in
/// the squared form: an overflow error naming the pair, never `Ok(inf)`.
#[test]
fn an_f32_loss_beyond_the_range_names_its_pair() {
    let x1 = array![[0.0_f32], [1e20]];
    let x2 = array![[0.0_f32], [-1e20]];
    let pair = pair_of(&x1, &x2);
    let similar = array![1.0_f32, 1.0];
    let expected = "x1[1]: the sample's loss overflows f32: expected at most \
                    3.4028235e38, got about 2.000e40";
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = Contrastive::new().with_reduction(reduction);
        let e = Loss::<f32>::forward(&loss, pair, &similar).unwrap_err();
        assert_eq!(e.to_string(), expected);
        let e = Differentiable::<f32>::backward(&loss, pair, &similar).unwrap_err();
        assert_eq!(e.to_string(), expected);
    }
    // The hinge form's loss, 2e20, fits.
    let hinge = Contrastive::new().with_form(ContrastiveForm::Hinge);
    let v: f32 = hinge.forward(pair, &similar).unwrap();
    assert!((v as f64 / 1e20 - 1.0).abs() < 1e-6);
}
