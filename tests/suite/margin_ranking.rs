//! Margin ranking loss: the contract away from the kink, the identity with
//! the hinge on the difference, PyTorch's gradient at the kink, f32
//! overflow, errors. (Reference values: `tests/conformance`.)

use crate::common::{random_array, vector};
use crate::contract::{Case, Pairs, check_contract};
use classloss::{Differentiable, Hinge, Loss, MarginRanking, Pair, Reduction};
use ndarray::{Array1, Ix1, array};

/// Scores and labels whose `z = margin - y (x1 - x2)` is at least 0.05
/// from the kink, with both sides present.
fn batch(n: usize, seed: u64, margin: f64) -> (Array1<f64>, Array1<f64>, Array1<f64>) {
    let x1 = vector(random_array(&[n], seed, 2.0));
    let mut x2 = vector(random_array(&[n], seed + 1, 2.0));
    let y: Array1<f64> = (0..n)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    for i in 0..n {
        while (margin - y[i] * (x1[i] - x2[i])).abs() < 0.05 {
            x2[i] += 0.1;
        }
    }
    (x1, x2, y)
}

#[test]
fn contract() {
    for (seed, margin) in [(1_u64, 0.0), (2, 0.5), (3, 2.0)] {
        let (x1, x2, y) = batch(9, seed, margin);
        let loss = MarginRanking::new().with_margin(margin).unwrap();
        let args: Pairs<f64, Ix1> = Pairs::new(x1, x2, y, "labels");
        check_contract(&loss, &Case::new(format!("margin={margin}"), args));
    }
}

#[test]
fn it_is_the_hinge_on_the_difference() {
    // max(0, margin - y (x1 - x2)) is the hinge of the score x1 - x2; its
    // gradient goes to x1 and, negated, to x2.
    let (x1, x2, y) = batch(12, 4, 0.7);
    let s = &x1 - &x2;
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let pair = Pair {
            x1: x1.view(),
            x2: x2.view(),
        };
        let loss = MarginRanking::new()
            .with_margin(0.7)
            .unwrap()
            .with_reduction(reduction);
        let (v, g) = loss.forward_backward(pair, y.view()).unwrap();
        let hinge = Hinge::new()
            .with_margin(0.7)
            .unwrap()
            .with_reduction(reduction);
        let (vh, gh) = hinge.forward_backward(s.view(), y.view()).unwrap();
        assert!((v - vh).abs() < 1e-14, "{v} vs {vh}");
        for i in 0..12 {
            assert!((g.x1[i] - gh[i]).abs() < 1e-15);
            assert_eq!(g.x2[i], -g.x1[i]);
        }
    }
}

#[test]
fn at_the_kink_the_gradient_passes_as_in_pytorch() {
    // margin 0, tied scores: z = 0, value 0, but clamp_min's gradient
    // passes at the bound, so the tie is pushed apart.
    let x = array![1.5_f64, -2.0];
    let y = array![1.0, -1.0];
    let pair = Pair {
        x1: x.view(),
        x2: x.view(),
    };
    let (v, g) = MarginRanking::new()
        .with_reduction(Reduction::Sum)
        .forward_backward(pair, y.view())
        .unwrap();
    assert_eq!(v, 0.0);
    assert_eq!(g.x1, array![-1.0, 1.0]);
    assert_eq!(g.x2, array![1.0, -1.0]);
}

#[test]
fn an_f32_sample_beyond_f32_is_an_overflow_and_f64_is_exact() {
    let x1 = array![-3e38_f32, 0.0];
    let x2 = array![3e38_f32, 1.0];
    let y = array![1.0_f32, 1.0];
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    let loss = MarginRanking::new().with_reduction(Reduction::Sum);
    let e = Loss::<f32>::forward(&loss, pair, y.view()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x1[0]: the sample's loss overflows f32"),
        "{e}"
    );
    // The mean, (6e38 + 1) / 2, fits.
    let mean = Loss::<f32>::forward(&MarginRanking::new(), pair, y.view()).unwrap();
    assert_eq!(mean, ((6e38_f64 + 1.0) / 2.0) as f32);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let (x1, x2) = (array![1.0_f64, 2.0], array![0.0_f64, 0.5]);
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    let loss = MarginRanking::new();
    let e = loss.forward(pair, array![1.0, 0.0].view()).unwrap_err();
    assert_eq!(e.to_string(), "labels[1]: expected -1 or +1, got 0");
    let short = array![0.0_f64];
    let e = loss
        .forward(
            Pair {
                x1: x1.view(),
                x2: short.view(),
            },
            array![1.0, 1.0].view(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "x2: expected shape [2], got [1]");
    let e = MarginRanking::new().with_margin(f64::NAN).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `margin`: expected a finite number >= 0, got NaN"
    );
}
