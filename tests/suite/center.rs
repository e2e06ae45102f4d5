//! Center loss: the contract (the features' gradient), the center update
//! (against the paper's formula, toward each class mean, absent classes
//! untouched), errors, f32. (Reference values: `tests/conformance`.)

use crate::common::random_batch;
use crate::contract::{Case, Centered, check_contract};
use classloss::{CenterInput, CenterLoss, Differentiable, Error, Loss, Reduction};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

fn batch(n: usize, c: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    random_batch(n, c, d, seed, 1.0)
}

/// The paper's update, written as it reads.
fn paper_update(
    x: &Array2<f64>,
    labels: &Array1<usize>,
    centers: &Array2<f64>,
    alpha: f64,
) -> Array2<f64> {
    let mut out = centers.clone();
    for j in 0..centers.nrows() {
        let mut delta = Array1::<f64>::zeros(centers.ncols());
        let mut n = 0.0;
        for (i, &y) in labels.iter().enumerate() {
            if y == j {
                delta = delta + (&centers.row(j) - &x.row(i));
                n += 1.0;
            }
        }
        let step = delta * (alpha / (1.0 + n));
        let new = &centers.row(j) - &step;
        out.row_mut(j).assign(&new);
    }
    out
}

#[test]
fn contract() {
    let (features, centers, labels) = batch(7, 3, 4, 1);
    let args = Centered {
        features,
        centers,
        labels,
    };
    for alpha in [0.5, 1.0] {
        let loss = CenterLoss::new().with_alpha(alpha).unwrap();
        check_contract(&loss, &Case::new(format!("alpha={alpha}"), args.clone()));
    }
}

#[test]
fn update_matches_the_papers_formula() {
    let (x, centers, labels) = batch(9, 4, 3, 7);
    for alpha in [0.1, 0.5, 1.0] {
        let loss = CenterLoss::new().with_alpha(alpha).unwrap();
        let mut c = centers.clone();
        loss.update_centers(x.view(), labels.view(), c.view_mut())
            .unwrap();
        let expected = paper_update(&x, &labels, &centers, alpha);
        for (a, b) in c.iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-14, "alpha={alpha}: {a} vs {b}");
        }
    }
}

#[test]
fn worked_value_and_gradient() {
    let x = array![[1.0_f64, 2.0], [0.0, 0.0], [3.0, 3.0]];
    let centers = array![[1.0, 0.0], [3.0, 4.0]];
    let labels = array![0_usize, 1, 1];
    let input = CenterInput {
        features: x.view(),
        centers: centers.view(),
    };
    let loss = CenterLoss::new();
    let (v, g) = loss.forward_backward(input, labels.view()).unwrap();
    // 0.5 * (4 + 25 + 1) / 3
    assert!((v - 5.0).abs() < 1e-15);
    assert_eq!(g, array![[0.0, 2.0], [-3.0, -4.0], [0.0, -1.0]] / 3.0);
    let per = loss
        .with_reduction(Reduction::None)
        .per_sample(input, labels.view())
        .unwrap();
    assert_eq!(per.to_vec(), vec![2.0, 12.5, 0.5]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = CenterLoss::new();
    let x = Array2::<f64>::zeros((2, 4));
    let centers = Array2::<f64>::zeros((3, 5));
    let labels = array![0_usize, 1];
    let err = loss
        .forward(
            CenterInput {
                features: x.view(),
                centers: centers.view(),
            },
            labels.view(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "centers: expected shape [3, 4], got [3, 5]"
    );
    let centers = Array2::<f64>::ones((3, 4));
    let input = CenterInput {
        features: x.view(),
        centers: centers.view(),
    };
    let err = loss.forward(input, array![0_usize, 3].view()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "labels[1]: label 3 is out of range for 3 classes (expected 0..=2)"
    );
    let err = loss.forward(input, array![0_usize].view()).unwrap_err();
    assert_eq!(err.to_string(), "labels: expected shape [2], got [1]");
    let err = loss
        .forward(
            CenterInput {
                features: Array2::<f64>::zeros((0, 4)).view(),
                centers: centers.view(),
            },
            Array1::<usize>::zeros(0).view(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "features: expected at least one sample, got an empty array of shape [0, 4]"
    );
    let err = loss
        .forward(
            CenterInput {
                features: x.view(),
                centers: Array2::<f64>::zeros((0, 4)).view(),
            },
            labels.view(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::EmptyBatch {
            what: "centers",
            unit: "class",
            ..
        }
    ));
    let mut g = Array2::zeros((2, 3));
    let err = loss
        .forward_backward_into(input, labels.view(), g.view_mut())
        .unwrap_err();
    assert_eq!(err.to_string(), "grad: expected shape [2, 4], got [2, 3]");
    // The update validates the same way and leaves the centers alone.
    let mut c = centers.clone();
    let err = loss
        .update_centers(x.view(), array![0_usize, 7].view(), c.view_mut())
        .unwrap_err();
    assert!(matches!(err, Error::LabelOutOfRange { label: 7, .. }));
    assert_eq!(c, centers);
    let mut narrow = Array2::<f64>::zeros((3, 2));
    let err = loss
        .update_centers(x.view(), labels.view(), narrow.view_mut())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "centers: expected shape [3, 4], got [3, 2]"
    );
    // alpha outside (0, 1]
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = CenterLoss::new().with_alpha(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { name: "alpha", .. }));
    }
    assert_eq!(
        CenterLoss::new().with_alpha(0.0).unwrap_err().to_string(),
        "option `alpha`: expected a number in (0, 1], got 0"
    );
}

fn center_batch() -> impl Strategy<Value = (Array2<f64>, Array2<f64>, Vec<usize>)> {
    (1usize..8, 1usize..5, 1usize..4).prop_flat_map(|(n, c, d)| {
        (
            proptest::collection::vec(-5.0f64..5.0, n * d),
            proptest::collection::vec(-5.0f64..5.0, c * d),
            proptest::collection::vec(0..c, n),
        )
            .prop_map(move |(x, cs, l)| {
                (
                    Array2::from_shape_vec((n, d), x).unwrap(),
                    Array2::from_shape_vec((c, d), cs).unwrap(),
                    l,
                )
            })
    })
}

proptest! {
    #[test]
    fn update_moves_centers_toward_their_class_mean_and_leaves_absent_ones(
        (x, centers, l) in center_batch(), alpha in 0.01f64..=1.0,
    ) {
        let loss = CenterLoss::new().with_alpha(alpha).unwrap();
        let labels = Array1::from(l);
        let mut c = centers.clone();
        loss.update_centers(x.view(), labels.view(), c.view_mut()).unwrap();
        for j in 0..centers.nrows() {
            let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == j).collect();
            if members.is_empty() {
                prop_assert_eq!(c.row(j), centers.row(j));
                continue;
            }
            let n = members.len() as f64;
            let mean = members.iter().fold(Array1::<f64>::zeros(x.ncols()), |acc, &i| acc + x.row(i)) / n;
            let before = (&centers.row(j) - &mean).mapv(|v| v * v).sum().sqrt();
            let after = (&c.row(j) - &mean).mapv(|v| v * v).sum().sqrt();
            // The center moves a fraction alpha n / (1 + n) of the way.
            let keep = 1.0 - alpha * n / (1.0 + n);
            prop_assert!((after - keep * before).abs() <= 1e-9 * (1.0 + before));
            prop_assert!(after <= before + 1e-12);
        }
    }

    #[test]
    fn loss_is_zero_exactly_at_the_centers((x, centers, l) in center_batch()) {
        // Features equal to their centers: zero loss and zero gradient.
        let labels = Array1::from(l);
        let at = Array2::from_shape_fn(x.raw_dim(), |(i, k)| centers[[labels[i], k]]);
        let loss = CenterLoss::new();
        let (v, g) = loss
            .forward_backward(CenterInput { features: at.view(), centers: centers.view() }, labels.view())
            .unwrap();
        prop_assert_eq!(v, 0.0);
        prop_assert!(g.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((x, centers, l) in center_batch()) {
        let labels = Array1::from(l);
        let input = CenterInput { features: x.view(), centers: centers.view() };
        let loss = CenterLoss::new().with_reduction(Reduction::Sum);
        let per = loss.per_sample(input, labels.view()).unwrap();
        let sum = loss.forward(input, labels.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum));
        let mean = loss.with_reduction(Reduction::Mean).forward(input, labels.view()).unwrap();
        prop_assert!((mean * labels.len() as f64 - sum).abs() <= 1e-12 * (1.0 + sum));
    }

    #[test]
    fn f32_agrees_with_f64((x, centers, l) in center_batch()) {
        let labels = Array1::from(l);
        let loss = CenterLoss::new();
        let (x32, c32) = (x.mapv(|v| v as f32), centers.mapv(|v| v as f32));
        let (a, ga) = loss
            .forward_backward(CenterInput { features: x.view(), centers: centers.view() }, labels.view())
            .unwrap();
        let (b, gb) = loss
            .forward_backward(CenterInput { features: x32.view(), centers: c32.view() }, labels.view())
            .unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a));
        for (p, q) in ga.iter().zip(gb.iter()) {
            prop_assert!((p - *q as f64).abs() <= 1e-5 * (1.0 + p.abs()));
        }
        let mut c64 = centers.clone();
        let mut c32 = c32;
        loss.update_centers(x.view(), labels.view(), c64.view_mut()).unwrap();
        loss.update_centers(x32.view(), labels.view(), c32.view_mut()).unwrap();
        for (p, q) in c64.iter().zip(c32.iter()) {
            prop_assert!((p - *q as f64).abs() <= 1e-5 * (1.0 + p.abs()));
        }
    }
}

/// Issue 10: f32 features `1e20` from a center at `-1e20` have a loss of
/// about 2e40: an overflow error naming the sample, never `Ok(inf)`.
#[test]
fn an_f32_loss_beyond_the_range_names_its_sample() {
    let features = array![[0.0_f32, 0.0], [1e20, -1e20]];
    let centers = array![[0.0_f32, 0.0], [-1e20, 1e20]];
    let input = CenterInput {
        features: features.view(),
        centers: centers.view(),
    };
    let labels = array![0_u32, 1];
    let expected = "features[1]: the sample's loss overflows f32: expected at most \
                    3.4028235e38, got about 4.000e40";
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = CenterLoss::new().with_reduction(reduction);
        let e = Loss::<f32>::forward(&loss, input, &labels).unwrap_err();
        assert_eq!(e.to_string(), expected);
        let e = Differentiable::<f32>::backward(&loss, input, &labels).unwrap_err();
        assert_eq!(e.to_string(), expected);
        let e = Loss::<f32>::per_sample(&loss, input, &labels).unwrap_err();
        assert_eq!(e.to_string(), expected);
    }
}
