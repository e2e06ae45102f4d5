//! Inverse-frequency and square-root inverse-frequency class weights: the
//! invariants that define them, sklearn's "balanced" weights, the limit of
//! the class-balanced weights, use in a weighted mean, errors.

use classloss::{
    CrossEntropy, Loss, class_balanced_weights, inverse_frequency_weights,
    sqrt_inverse_frequency_weights,
};
use ndarray::{Array1, array};
use proptest::prelude::*;

type Weights = fn(&[usize]) -> classloss::Result<Array1<f64>>;

const BOTH: [(&str, Weights, f64); 2] = [
    ("inverse", inverse_frequency_weights::<f64>, 1.0),
    ("sqrt inverse", sqrt_inverse_frequency_weights::<f64>, 0.5),
];

#[test]
fn sklearn_balanced_weights_up_to_one_factor_and_the_same_weighted_mean() {
    // sklearn's compute_class_weight("balanced"): N / (C n_c).
    let counts = [6_usize, 3, 1];
    let (n, c) = (10.0, 3.0);
    let balanced = Array1::from_iter(counts.iter().map(|&k| n / (c * k as f64)));
    let w = inverse_frequency_weights::<f64>(&counts).unwrap();
    let ratio = &w / &balanced;
    assert!(
        ratio.iter().all(|r| (r - ratio[0]).abs() < 1e-15),
        "{ratio}"
    );
    // A weighted mean divides by the summed weights: the factor cancels.
    let logits = array![[1.0_f64, 0.2, -0.5], [0.1, 0.9, 0.0], [-1.0, 0.3, 2.0]];
    let labels = array![0_i64, 1, 2];
    let ours = CrossEntropy::new().with_weight(w).unwrap();
    let theirs = CrossEntropy::new().with_weight(balanced).unwrap();
    let (a, b) = (
        ours.forward(&logits, &labels).unwrap(),
        theirs.forward(&logits, &labels).unwrap(),
    );
    assert!((a - b).abs() < 1e-15, "{a} vs {b}");
}

#[test]
fn class_balanced_weights_approach_inverse_frequency_as_beta_goes_to_one() {
    let counts = [1_usize, 2, 4, 40];
    let near = class_balanced_weights::<f64>(&counts, 1.0 - 1e-10).unwrap();
    let inverse = inverse_frequency_weights::<f64>(&counts).unwrap();
    for (a, b) in near.iter().zip(&inverse) {
        assert!((a - b).abs() < 1e-7, "{near} vs {inverse}");
    }
}

#[test]
fn f32_result_is_the_rounded_f64_result() {
    let counts = [500_usize, 50, 5, 7];
    assert_eq!(
        inverse_frequency_weights::<f32>(&counts).unwrap(),
        inverse_frequency_weights::<f64>(&counts)
            .unwrap()
            .mapv(|v| v as f32)
    );
    assert_eq!(
        sqrt_inverse_frequency_weights::<f32>(&counts).unwrap(),
        sqrt_inverse_frequency_weights::<f64>(&counts)
            .unwrap()
            .mapv(|v| v as f32)
    );
}

#[test]
fn errors_are_those_of_class_balanced_weights() {
    for (name, weights, _) in BOTH {
        let e = weights(&[5, 0, 3]).unwrap_err();
        assert_eq!(
            e,
            class_balanced_weights::<f64>(&[5, 0, 3], 0.9).unwrap_err(),
            "{name}"
        );
        assert_eq!(
            e.to_string(),
            "samples_per_class[1]: expected a count >= 1, got 0"
        );
        let e = weights(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "samples_per_class: expected at least one class, got an empty array of shape [0]"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `n_c^p w_c` is the same for every class (p = 1 or 1/2), and the
    /// weights sum to C.
    #[test]
    fn weights_times_counts_to_the_power_are_constant(
        counts in proptest::collection::vec(1usize..1_000_000, 1..12),
    ) {
        for (name, weights, power) in BOTH {
            let w = weights(&counts).unwrap();
            let c = counts.len() as f64;
            prop_assert!((w.sum() - c).abs() <= 1e-12 * c, "{}: {}", name, w);
            let scaled: Vec<f64> = counts.iter().zip(&w).map(|(&n, &w)| (n as f64).powf(power) * w).collect();
            for s in &scaled {
                prop_assert!((s - scaled[0]).abs() <= 1e-12 * scaled[0], "{}: {:?}", name, scaled);
            }
        }
    }
}
