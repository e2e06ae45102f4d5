//! Class-balanced weights: values against the formula, limits in beta,
//! properties, errors, and use as a loss's class weights. (Reference
//! values: `tests/conformance`.)

use classloss::{CrossEntropy, Error, Loss, Reduction, SoftmaxFocal, class_balanced_weights};
use ndarray::{Array1, array};
use proptest::prelude::*;

/// The paper's formula, written plainly (fine where beta^n is not close
/// to 1).
fn naive(counts: &[usize], beta: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| (1.0 - beta) / (1.0 - beta.powi(n as i32)))
        .collect();
    let s: f64 = raw.iter().sum();
    raw.iter().map(|w| w * counts.len() as f64 / s).collect()
}

#[test]
fn matches_the_formula() {
    for (counts, beta) in [
        (vec![500_usize, 50, 5], 0.999),
        (vec![1000, 10, 1], 0.99),
        (vec![3, 7, 7, 20], 0.5),
    ] {
        let w = class_balanced_weights::<f64>(&counts, beta).unwrap();
        for (got, want) in w.iter().zip(naive(&counts, beta)) {
            assert!(
                (got - want).abs() < 1e-12 * want,
                "{counts:?} {beta}: {got} vs {want}"
            );
        }
        assert!((w.sum() - counts.len() as f64).abs() < 1e-12);
    }
}

#[test]
fn limits_in_beta() {
    // beta = 0: every class counts the same.
    let w = class_balanced_weights::<f64>(&[1, 10, 1000], 0.0).unwrap();
    assert_eq!(w, array![1.0, 1.0, 1.0]);
    // beta -> 1: inverse frequency (normalized to sum to C).
    let w = class_balanced_weights::<f64>(&[1, 2, 4], 1.0 - 1e-9).unwrap();
    let inv = [4.0 / 7.0 * 3.0, 2.0 / 7.0 * 3.0, 1.0 / 7.0 * 3.0];
    for (got, want) in w.iter().zip(inv) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    // Equal counts: equal weights, whatever beta.
    let w = class_balanced_weights::<f64>(&[10, 10, 10], 0.99).unwrap();
    assert!(w.iter().all(|&v| (v - 1.0).abs() < 1e-15));
}

/// For beta near 1 and small counts, 1 - beta^n computed naively loses
/// digits; the effective number n (1 - (n - 1)(1 - beta)/2 + ...) is kept.
#[test]
fn accurate_for_beta_close_to_one() {
    let beta = 1.0 - 1e-12;
    let w = class_balanced_weights::<f64>(&[1, 2], beta).unwrap();
    // E_1 = 1, E_2 = 1 + beta: weights 1 and 1 / (1 + beta), normalized.
    let raw = [1.0, 1.0 / (1.0 + beta)];
    let s = raw[0] + raw[1];
    assert!((w[0] - 2.0 * raw[0] / s).abs() < 1e-14, "{w}");
    assert!((w[1] - 2.0 * raw[1] / s).abs() < 1e-14, "{w}");
}

#[test]
fn f32_result_is_the_rounded_f64_result() {
    let w64 = class_balanced_weights::<f64>(&[500, 50, 5], 0.999).unwrap();
    let w32 = class_balanced_weights::<f32>(&[500, 50, 5], 0.999).unwrap();
    assert_eq!(w32, w64.mapv(|v| v as f32));
}

#[test]
fn weights_plug_into_cross_entropy_and_focal() {
    let w = class_balanced_weights::<f64>(&[90, 9, 1], 0.99).unwrap();
    let x = array![[1.0_f64, 0.0, -1.0], [0.0, 0.0, 2.0]];
    let y = array![0_usize, 2];
    let ce = CrossEntropy::new()
        .with_weight(w.clone())
        .unwrap()
        .with_reduction(Reduction::Sum);
    let focal = SoftmaxFocal::new()
        .with_gamma(0.0)
        .unwrap()
        .with_class_alpha(w.clone())
        .unwrap()
        .with_reduction(Reduction::Sum);
    let a = ce.forward(x.view(), y.view()).unwrap();
    let b = focal.forward(x.view(), y.view()).unwrap();
    assert!((a - b).abs() < 1e-14);
    // The rare class's sample now outweighs the common one's.
    let per = ce.per_sample(x.view(), y.view()).unwrap();
    let plain = CrossEntropy::new()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), y.view())
        .unwrap();
    assert!(per[1] / plain[1] > 10.0 * per[0] / plain[0]);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    for (bad, shown) in [(1.0, "1"), (-0.1, "-0.1"), (f64::NAN, "NaN"), (1.5, "1.5")] {
        let e = class_balanced_weights::<f64>(&[1, 2], bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `beta`: expected a number in [0, 1), got {shown}")
        );
    }
    let e = class_balanced_weights::<f64>(&[5, 0, 3], 0.9).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidTarget {
            what: "samples_per_class",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "samples_per_class[1]: expected a count >= 1, got 0"
    );
    let e = class_balanced_weights::<f64>(&[], 0.9).unwrap_err();
    assert_eq!(
        e.to_string(),
        "samples_per_class: expected at least one class, got an empty array of shape [0]"
    );
}

proptest! {
    /// Weights sum to C, lie in the normalized range, and fewer samples
    /// never get a smaller weight.
    #[test]
    fn normalized_and_monotone(
        counts in proptest::collection::vec(1usize..100_000, 1..12),
        beta in 0.0f64..0.99999,
    ) {
        let w: Array1<f64> = class_balanced_weights(&counts, beta).unwrap();
        let c = counts.len() as f64;
        prop_assert!((w.sum() - c).abs() <= 1e-12 * c);
        prop_assert!(w.iter().all(|&v| v > 0.0 && v.is_finite()));
        for i in 0..counts.len() {
            for j in 0..counts.len() {
                if counts[i] < counts[j] {
                    prop_assert!(w[i] >= w[j] * (1.0 - 1e-12), "{:?} -> {}", counts, w);
                }
            }
        }
    }
}
