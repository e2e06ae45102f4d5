//! The combined margin: equal to ArcFace and CosFace at their settings, the
//! contract for multiplicative margins (on embeddings and cosines), the
//! limits at cos = ±1, errors.

use crate::common::{
    angular_contract, assert_option_rejects, cosines, embedding_batch, embeddings,
    f32_vs_f64_error, nearly_parallel_case, random_batch, worst_near_parallel_error,
};
use classloss::{
    AngularMargin, ArcFace, CombinedMargin, CosFace, Differentiable, Error, Loss, Reduction,
};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;
use std::f64::consts::PI;

fn batch(n: usize, c: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    let (mut e, w, labels) = random_batch(n, c, d, seed, 1.5);
    // Sample 0 points away from its class: deep in the fallback region.
    let flipped = -&w.row(labels[0]) * 1.3;
    e.row_mut(0).assign(&flipped);
    e[[0, 0]] += 0.2;
    (e, w, labels)
}

/// `theta_t = (pi - m2) / m1`, below which no fallback applies.
fn threshold(m1: f64, m2: f64) -> Option<f64> {
    let t = (PI - m2) / m1;
    (t < PI).then(|| t.cos())
}

#[test]
fn contract() {
    let (e, w, labels) = batch(7, 4, 5, 51);
    let cos = cosines(&e, &w);
    let mut fallback_seen = false;
    for (m1, m2, m3) in [
        (1.35, 0.0, 0.0),
        (0.9, 0.4, 0.15),
        (1.2, 0.3, 0.1),
        (1.0, 0.3, 0.2),
        (2.0, 0.0, 0.0),
    ] {
        let loss = CombinedMargin::new()
            .with_scale(6.0)
            .unwrap()
            .with_margins(m1, m2, m3)
            .unwrap();
        if let Some(th) = threshold(m1, m2) {
            for (i, &y) in labels.iter().enumerate() {
                assert!((cos[[i, y]] - th).abs() > 1e-3, "sample {i} at the kink");
                fallback_seen |= cos[[i, y]] <= th;
            }
        }
        angular_contract(&format!("({m1}, {m2}, {m3})"), &loss, &e, &w, &labels);
    }
    assert!(fallback_seen, "no case exercised the fallback");
    // The easy margin, away from its kink at cos = 0.
    let (e, w, labels) = batch(6, 3, 4, 61);
    let cos = cosines(&e, &w);
    for (i, &y) in labels.iter().enumerate() {
        assert!(cos[[i, y]].abs() > 1e-3);
    }
    let easy = CombinedMargin::new()
        .with_scale(5.0)
        .unwrap()
        .with_margins(1.3, 0.2, 0.1)
        .unwrap()
        .with_easy_margin(true);
    angular_contract("easy margin", &easy, &e, &w, &labels);
}

#[test]
fn angular_margin_with_a_cosine_margin_subtracts_m3() {
    // m1 = 1, m2 = 0.3, m3 = 0.2: the target logit is s (cos(theta + m2)
    // - m3), and its derivative in c is cos m2 + c sin m2 / sin(theta).
    let (s, m2, m3) = (4.0, 0.3, 0.2);
    let loss = CombinedMargin::new()
        .with_margins(1.0, m2, m3)
        .unwrap()
        .with_scale(s)
        .unwrap()
        .with_reduction(Reduction::Sum)
        .on_cosines();
    let c = array![[0.6_f64, 0.1, -0.2]];
    let (v, g) = loss
        .forward_backward(c.view(), array![0_usize].view())
        .unwrap();
    let z = [
        s * ((0.6_f64).acos() + m2).cos() - s * m3,
        s * 0.1,
        s * -0.2,
    ];
    let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
    assert!((v - (lse - z[0])).abs() < 1e-13, "{v} vs {}", lse - z[0]);
    let p0 = (z[0] - lse).exp();
    let sin = (1.0 - 0.36_f64).sqrt();
    let slope = m2.cos() + 0.6 * m2.sin() / sin;
    assert!((g[[0, 0]] - s * (p0 - 1.0) * slope).abs() < 1e-12, "{g}");
}

#[test]
fn fallback_formula_generalizes_arcfaces() {
    // (m1, m2, m3) = (1.5, 0.2, 0.1): theta_t = (pi - 0.2) / 1.5; beyond it
    // the target logit is cos - (pi - theta_t) sin(theta_t) - m3.
    let (m1, m2, m3, s) = (1.5, 0.2, 0.1, 3.0);
    let theta_t = (PI - m2) / m1;
    let c = (theta_t + 0.1).cos();
    let loss = CombinedMargin::new()
        .with_scale(s)
        .unwrap()
        .with_margins(m1, m2, m3)
        .unwrap()
        .on_cosines();
    let v = loss
        .forward(array![[c, 0.0]].view(), array![0_usize].view())
        .unwrap();
    let t = s * (c - (PI - theta_t) * theta_t.sin() - m3);
    assert!((v - (1.0 + (-t).exp()).ln()).abs() < 1e-12);
    // Just inside: the margin formula.
    let c = (theta_t - 0.1).cos();
    let v = loss
        .forward(array![[c, 0.0]].view(), array![0_usize].view())
        .unwrap();
    let t = s * ((m1 * (theta_t - 0.1) + m2).cos() - m3);
    assert!((v - (1.0 + (-t).exp()).ln()).abs() < 1e-12);
}

#[test]
fn slopes_at_plus_minus_one_are_the_documented_limits() {
    // m2 = 0: d cos(m1 theta) / d cos -> m1^2 at cos = 1 (the true limit).
    let m1 = 1.7_f64;
    let s = 1.0;
    let loss = CombinedMargin::new()
        .with_scale(s)
        .unwrap()
        .with_margins(m1, 0.0, 0.0)
        .unwrap()
        .with_reduction(Reduction::Sum)
        .on_cosines();
    let labels = array![0_usize];
    let slope_at = |c: f64| {
        // The target entry of the gradient is s (p - 1) phi'(c); divide out s (p - 1).
        let g = loss
            .backward(array![[c, 0.0]].view(), labels.view())
            .unwrap();
        let phi = (m1 * c.clamp(-1.0, 1.0).acos()).cos();
        let p = 1.0 / (1.0 + (-s * phi).exp());
        g[[0, 0]] / (s * (p - 1.0))
    };
    assert!((slope_at(1.0) - m1 * m1).abs() < 1e-12);
    assert!((slope_at(1.0 - 1e-8) - m1 * m1).abs() < 1e-3);
    // A margin whose theta_t is beyond pi reaches cos = -1 without fallback:
    // there the slope is -m1^2 cos(m1 pi + m2).
    let (m1, m2) = (0.8, 0.3);
    assert!(threshold(m1, m2).is_none());
    let loss = CombinedMargin::new()
        .with_scale(s)
        .unwrap()
        .with_margins(m1, m2, 0.0)
        .unwrap()
        .with_reduction(Reduction::Sum)
        .on_cosines();
    let g = loss
        .backward(array![[-1.0_f64, 0.0]].view(), labels.view())
        .unwrap();
    let phi = (m1 * PI + m2).cos();
    let p = 1.0 / (1.0 + (-s * phi).exp());
    let slope = g[[0, 0]] / (s * (p - 1.0));
    assert!((slope - (-m1 * m1 * (m1 * PI + m2).cos())).abs() < 1e-12);
}

/// ArcFace's shrunk `f32_agrees_with_f64` case (sample 0 is 0.0024 rad
/// from its class weight) under multiplicative margins: `acos` and
/// `sqrt(1 - cos^2)` of an f32 cosine made that sample's gradient off by
/// up to 6% (units of `1 + |g|`: 7e-3).
#[test]
fn f32_gradient_of_a_nearly_parallel_target_matches_f64() {
    let (e, w, labels) = nearly_parallel_case();
    for (m1, m2, m3) in [(1.2, 0.3, 0.1), (0.9, 0.4, 0.15), (2.0, 0.0, 0.0)] {
        let loss = CombinedMargin::new()
            .with_scale(16.0)
            .unwrap()
            .with_margins(m1, m2, m3)
            .unwrap();
        let err = f32_vs_f64_error(&loss, &e, &w, &labels);
        assert!(err < 1e-5, "({m1}, {m2}, {m3}): {err:e}");
    }
}

#[test]
fn f32_error_near_plus_minus_one_grows_only_like_eps_over_sin_theta() {
    // Near theta = 0, and near theta = pi for margins without fallback
    // (theta_t >= pi): the documented relative error of a few eps / sin theta.
    let eps = f32::EPSILON as f64;
    for (m1, m2, m3) in [(1.2, 0.3, 0.1), (0.8, 0.3, 0.0), (1.0, 0.5, 0.0)] {
        let loss = CombinedMargin::new()
            .with_scale(4.0)
            .unwrap()
            .with_margins(m1, m2, m3)
            .unwrap();
        let near_pi = threshold(m1, m2).is_none();
        for delta in [1e-1, 1e-2, 1e-3, 1e-4] {
            let thetas = if near_pi {
                vec![delta, PI - delta]
            } else {
                vec![delta]
            };
            for theta in thetas {
                let worst =
                    worst_near_parallel_error(theta, |e, w, l| f32_vs_f64_error(&loss, e, w, l));
                let bound = 1e-5 + 20.0 * eps / delta;
                assert!(
                    worst < bound,
                    "({m1}, {m2}, {m3}) theta={theta:e}: {worst:e} >= {bound:e}"
                );
            }
        }
    }
}

#[test]
fn errors_name_the_option() {
    let new = CombinedMargin::new;
    let set = |m1, m2, m3| new().with_margins(m1, m2, m3);
    assert_option_rejects(
        "m1",
        "a number in (0, 100]",
        &[(0.0, "0"), (100.5, "100.5"), (f64::NAN, "NaN")],
        |m| set(m, 0.5, 0.0),
    );
    assert!(set(100.0, 0.5, 0.0).is_ok());
    let radians = "a number in [0, pi) (radians)";
    assert_option_rejects("m2", radians, &[(3.5, "3.5")], |m| set(1.0, m, 0.0));
    let non_negative = "a finite number >= 0";
    assert_option_rejects("m3", non_negative, &[(-0.1, "-0.1")], |m| set(1.0, 0.5, m));
    assert!(matches!(
        CombinedMargin::new().with_scale(f64::NAN).unwrap_err(),
        Error::InvalidOption { name: "scale", .. }
    ));
    // The defaults are ArcFace's.
    assert_eq!(CombinedMargin::new().margins(), (1.0, 0.5, 0.0));
    assert_eq!(CombinedMargin::new().scale(), 64.0);
}

proptest! {
    #[test]
    fn one_m_zero_is_arcface(
        (e, w, l) in embedding_batch(), m in 0.0f64..1.5, s in 1.0f64..64.0, easy in any::<bool>(),
    ) {
        let l = Array1::from(l);
        let input = embeddings(&e, &w);
        let arc = ArcFace::new().with_scale(s).unwrap().with_margin(m).unwrap().with_easy_margin(easy);
        let comb = CombinedMargin::new()
            .with_scale(s).unwrap()
            .with_margins(1.0, m, 0.0).unwrap()
            .with_easy_margin(easy);
        let (a, ga) = arc.forward_backward(input, l.view()).unwrap();
        let (b, gb) = comb.forward_backward(input, l.view()).unwrap();
        prop_assert_eq!(a, b);
        prop_assert_eq!(ga, gb);
    }

    #[test]
    fn one_zero_m_is_cosface((e, w, l) in embedding_batch(), m in 0.0f64..1.0, s in 1.0f64..64.0) {
        let l = Array1::from(l);
        let input = embeddings(&e, &w);
        let cf = CosFace::new().with_scale(s).unwrap().with_margin(m).unwrap();
        let comb = CombinedMargin::new().with_scale(s).unwrap().with_margins(1.0, 0.0, m).unwrap();
        let (a, ga) = cf.forward_backward(input, l.view()).unwrap();
        let (b, gb) = comb.forward_backward(input, l.view()).unwrap();
        prop_assert_eq!(a, b);
        prop_assert_eq!(ga, gb);
        let cos = cosines(&e, &w);
        let (c, gc) = cf.on_cosines().forward_backward(cos.view(), l.view()).unwrap();
        let (d, gd) = comb.on_cosines().forward_backward(cos.view(), l.view()).unwrap();
        prop_assert_eq!(c, d);
        prop_assert_eq!(gc, gd);
    }

    #[test]
    fn f32_agrees_with_f64(
        (e, w, l) in embedding_batch(),
        margins in prop_oneof![Just((1.2, 0.3, 0.1)), Just((0.9, 0.4, 0.15)), Just((0.8, 0.3, 0.0)), Just((2.0, 0.0, 0.0))],
        easy in any::<bool>(),
    ) {
        let (m1, m2, m3) = margins;
        let loss = CombinedMargin::new()
            .with_scale(16.0).unwrap()
            .with_margins(m1, m2, m3).unwrap()
            .with_easy_margin(easy);
        let l = Array1::from(l);
        let cos = cosines(&e, &w);
        // The value jumps at the fallback threshold (and the slope at 0 with
        // the easy margin); f32 rounding may land on the other side.
        let kink = if easy { Some(0.0) } else { threshold(m1, m2) };
        if let Some(k) = kink {
            prop_assume!(l.iter().enumerate().all(|(i, &y)| (cos[[i, y]] - k).abs() > 1e-4));
        }
        // Within 1e-3 of sin theta = 0 the documented relative error, a few
        // eps / sin theta (see CombinedMargin's "Precision near theta = 0"),
        // approaches the tolerance; that region has its own bound in
        // `f32_error_near_plus_minus_one_grows_only_like_eps_over_sin_theta`.
        prop_assume!(l.iter().enumerate().all(|(i, &y)| (1.0 - cos[[i, y]].powi(2)).sqrt() > 1e-3));
        let err = f32_vs_f64_error(&loss, &e, &w, &l);
        prop_assert!(err <= 1e-3, "{}", err);
    }

    #[test]
    fn values_and_gradients_are_finite_for_any_margins(
        (e, w, l) in embedding_batch(), m1 in 0.1f64..4.0, m2 in 0.0f64..3.1, m3 in 0.0f64..1.0,
    ) {
        let l = Array1::from(l);
        let input = embeddings(&e, &w);
        let comb = CombinedMargin::new().with_margins(m1, m2, m3).unwrap();
        let (v, g) = comb.forward_backward(input, l.view()).unwrap();
        prop_assert!(v.is_finite());
        prop_assert!(g.embeddings.iter().chain(g.weight.iter()).all(|x| x.is_finite()));
    }
}
