//! Cosine embedding loss: the contract, PyTorch's formula, scale
//! invariance, rows near zero and beyond `1e150`, errors. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array};
use crate::contract::{Case, Pairs, check_contract};
use classloss::{CosineEmbedding, Differentiable, Error, Loss, Pair, Reduction};
use ndarray::{Array1, Array2, array};

fn cosines(x1: &Array2<f64>, x2: &Array2<f64>) -> Vec<f64> {
    x1.rows()
        .into_iter()
        .zip(x2.rows())
        .map(|(a, b)| a.dot(&b) / (a.dot(&a) * b.dot(&b)).sqrt())
        .collect()
}

#[test]
fn contract() {
    let x1 = matrix(random_array(&[8, 4], 1, 1.0));
    let x2 = matrix(random_array(&[8, 4], 2, 1.0));
    let labels = array![1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0];
    let cos = cosines(&x1, &x2);
    for margin in [0.0, 0.3, -0.4] {
        // Away from the hinge at the margin, with both sides present.
        assert!(cos.iter().all(|c| (c - margin).abs() > 1e-3));
        let loss = CosineEmbedding::new().with_margin(margin).unwrap();
        let args = Pairs::new(x1.clone(), x2.clone(), labels.clone(), "labels");
        check_contract(&loss, &Case::new(format!("margin={margin}"), args));
    }
}

#[test]
fn values_follow_pytorchs_formula() {
    let x1 = matrix(random_array(&[6, 3], 3, 2.0));
    let x2 = matrix(random_array(&[6, 3], 4, 2.0));
    let labels = array![1.0, -1.0, -1.0, 1.0, -1.0, 1.0];
    let loss = CosineEmbedding::new()
        .with_margin(0.1)
        .unwrap()
        .with_reduction(Reduction::None);
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    let per = loss.per_sample(pair, labels.view()).unwrap();
    for (i, c) in cosines(&x1, &x2).into_iter().enumerate() {
        let want = if labels[i] > 0.0 {
            1.0 - c
        } else {
            (c - 0.1).max(0.0)
        };
        assert!((per[i] - want).abs() < 1e-12, "{i}: {} vs {want}", per[i]);
    }
}

#[test]
fn the_loss_ignores_the_norms() {
    let x1 = matrix(random_array(&[5, 4], 5, 1.0));
    let x2 = matrix(random_array(&[5, 4], 6, 1.0));
    let labels = array![1.0, -1.0, 1.0, -1.0, 1.0];
    let loss = CosineEmbedding::new();
    let at = |k1: f64, k2: f64| {
        let (a, b) = (&x1 * k1, &x2 * k2);
        let pair = Pair {
            x1: a.view(),
            x2: b.view(),
        };
        loss.forward_backward(pair, labels.view()).unwrap()
    };
    let (v, g) = at(1.0, 1.0);
    let (vk, gk) = at(8.0, 0.25);
    assert!((v - vk).abs() < 1e-12);
    // The gradient scales as 1 / norm.
    // (Up to PyTorch's eps of 1e-12 in the squared norms.)
    for (a, b) in g.x1.iter().zip(&gk.x1) {
        assert!((a - 8.0 * b).abs() < 1e-10, "{a} vs {b}");
    }
    for (a, b) in g.x2.iter().zip(&gk.x2) {
        assert!((a - 0.25 * b).abs() < 1e-10, "{a} vs {b}");
    }
}

#[test]
fn rows_beyond_1e150_and_near_zero_stay_finite() {
    // Squares of 1e200 pass f64: the row is scaled first, the cosine and
    // the gradient's direction unchanged.
    let x1 = array![[3e200_f64, 4e200], [3.0, 4.0], [1e-320, 0.0]];
    let x2 = array![[4e200, -3e200], [4.0, -3.0], [1.0, 1.0]];
    let labels = array![-1.0, -1.0, 1.0];
    let loss = CosineEmbedding::new()
        .with_margin(-0.5)
        .unwrap()
        .with_reduction(Reduction::Sum);
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    let per = loss
        .clone()
        .with_reduction(Reduction::None)
        .per_sample(pair, labels.view())
        .unwrap();
    assert!((per[0] - 0.5).abs() < 1e-15 && (per[1] - 0.5).abs() < 1e-15);
    // A subnormal row: PyTorch's eps makes its cosine 0, the loss 1.
    assert_eq!(per[2], 1.0);
    let (_, g) = loss.forward_backward(pair, labels.view()).unwrap();
    assert!(g.x1.iter().chain(&g.x2).all(|v| v.is_finite()));
    // Same direction as for the small row, divided by 1e200.
    for k in 0..2 {
        let ratio = g.x1[[0, k]] * 1e200 / g.x1[[1, k]];
        assert!((ratio - 1.0).abs() < 1e-12, "{ratio}");
    }
    // Near zero the eps keeps the gradient finite, as in PyTorch:
    // -(x2 / sqrt(2 eps)).
    let want = -1.0 / (2e-12_f64).sqrt();
    assert!((g.x1[[2, 0]] / want - 1.0).abs() < 1e-9, "{}", g.x1[[2, 0]]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[1.0_f64, 0.0], [0.0, 1.0]];
    let pair = Pair {
        x1: x.view(),
        x2: x.view(),
    };
    let loss = CosineEmbedding::new();
    let e = loss.forward(pair, array![1.0, 0.0].view()).unwrap_err();
    assert!(matches!(e, Error::InvalidTarget { what: "labels", .. }));
    assert_eq!(e.to_string(), "labels[1]: expected -1 or +1, got 0");
    let e = loss.forward(pair, array![1.0].view()).unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [2], got [1]");
    let e = CosineEmbedding::new().with_margin(1.5).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `margin`: expected a cosine in [-1, 1], got 1.5"
    );
    let empty = Array2::<f64>::zeros((0, 2));
    let e = loss
        .forward(
            Pair {
                x1: empty.view(),
                x2: empty.view(),
            },
            Array1::zeros(0).view(),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x1: expected at least one sample"),
        "{e}"
    );
}
