//! Asymmetric loss (ASL): the contract away from its kinks, BCE with
//! logits at zero focusing and clip, the clip's discarded negatives, f32
//! extremes, errors. (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array};
use crate::contract::{Case, Paired, check_contract};
use classloss::{Asymmetric, BceWithLogits, Differentiable, Error, Loss, Reduction};
use ndarray::{Array2, Axis, array};

fn zero_one_targets(n: usize, c: usize, seed: u64) -> Array2<f64> {
    matrix(random_array(&[n, c], seed, 1.0).mapv(|v| if v > 0.3 { 1.0 } else { 0.0 }))
}

/// Logits kept 0.05 away from the clip's kink `sigmoid(x) = clip`.
fn logits(n: usize, c: usize, seed: u64, clip: f64) -> Array2<f64> {
    let kink = (clip / (1.0 - clip)).ln();
    matrix(random_array(&[n, c], seed, 4.0))
        .mapv(|x| if (x - kink).abs() < 0.05 { x + 0.1 } else { x })
}

#[test]
fn contract() {
    for (seed, (gn, gp, clip)) in [
        (1u64, (4.0, 1.0, 0.05)),
        (2, (2.0, 0.0, 0.0)),
        (3, (0.0, 2.0, 0.2)),
    ] {
        let x = logits(7, 4, seed, clip);
        let t = zero_one_targets(7, 4, seed + 10);
        let loss = Asymmetric::new()
            .with_gamma_neg(gn)
            .unwrap()
            .with_gamma_pos(gp)
            .unwrap()
            .with_clip(clip)
            .unwrap();
        let what = format!("gamma_neg={gn} gamma_pos={gp} clip={clip}");
        check_contract(&loss, &Case::new(what, Paired::new(x, t, "targets")));
    }
}

#[test]
fn without_focusing_or_clip_it_is_bce_with_logits_summed_over_classes() {
    let x = matrix(random_array(&[6, 5], 4, 3.0));
    let t = zero_one_targets(6, 5, 5);
    let asl = Asymmetric::new()
        .with_gamma_neg(0.0)
        .unwrap()
        .with_gamma_pos(0.0)
        .unwrap()
        .with_clip(0.0)
        .unwrap()
        .with_reduction(Reduction::None);
    let per = asl.per_sample(x.view(), t.view()).unwrap();
    let bce = BceWithLogits::new()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap()
        .sum_axis(Axis(1));
    for (a, b) in per.iter().zip(&bce) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

#[test]
fn negatives_below_the_clip_cost_nothing() {
    // sigmoid(-4) = 0.018 < 0.05: discarded; sigmoid(-2) = 0.12 is not.
    let x = array![[-4.0_f64, -2.0]];
    let t = array![[0.0, 0.0]];
    let asl = Asymmetric::new().with_reduction(Reduction::Sum);
    let (v, g) = asl.forward_backward(x.view(), t.view()).unwrap();
    assert_eq!(g[[0, 0]], 0.0);
    assert!(g[[0, 1]] > 0.0);
    let p: f64 = 1.0 / (1.0 + 2f64.exp());
    let want = -(p - 0.05).powi(4) * (1.0 - p + 0.05).ln();
    assert!((v - want).abs() < 1e-15, "{v} vs {want}");
}

#[test]
fn f32_logits_at_3e38_are_finite() {
    let x = array![[3e38_f32, -3e38], [-3e38, 3e38]];
    let t = array![[1.0_f32, 0.0], [1.0, 0.0]];
    let (v, g) = Asymmetric::new()
        .with_reduction(Reduction::Sum)
        .forward_backward(x.view(), t.view())
        .unwrap();
    // A missed positive costs -log(1e-8); a confident negative with the
    // clip, -(1 - 0.05)^4 log 0.05.
    let want = -(1e-8_f64).ln() - 0.95_f64.powi(4) * 0.05_f64.ln();
    assert!(((v as f64) - want).abs() < 1e-4, "{v} vs {want}");
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[0.5_f64, -1.0]];
    let e = Asymmetric::new()
        .forward(x.view(), array![[1.0, 0.5]].view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidTarget {
            what: "targets",
            ..
        }
    ));
    assert_eq!(e.to_string(), "targets[0, 1]: expected 0 or 1, got 0.5");
    let e = Asymmetric::<f64>::new().with_clip(1.5).unwrap_err();
    assert!(e.to_string().starts_with("option `clip`"), "{e}");
    let e = Asymmetric::<f64>::new().with_gamma_neg(-1.0).unwrap_err();
    assert!(e.to_string().starts_with("option `gamma_neg`"), "{e}");
}
