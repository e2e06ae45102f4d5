//! The `choose_loss` example's pure pieces (PRNG, data parsing, stratified
//! split, long-tail subsampling, label noise, multi-label composites,
//! metrics), included from the example's sources so that plain `cargo
//! test` runs their tests too (tests inside an example only run with
//! `cargo test --examples`).

#[allow(dead_code)]
#[path = "../../examples/choose_loss/data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../../examples/choose_loss/metrics.rs"]
mod metrics;
#[allow(dead_code)]
#[path = "../../examples/choose_loss/rng.rs"]
mod rng;

use data::{
    CLASSES, class_counts, long_tail_counts, long_tail_subsample, stratified_split, symmetric_noise,
};
use metrics::{confusion, expected_calibration_error, macro_f1, scores, worst_recall};
use rng::Rng;

/// The example's whole data pipeline on the bundled file: the split is
/// stratified and fixed, the long tail is 100:1, the noise touches only the
/// training labels.
#[test]
fn bundled_digits_through_the_three_regimes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/digits.csv.gz");
    let all = data::read_digits_gz(&path).unwrap();
    assert_eq!(all.len(), 1797);
    let (train, test) = stratified_split(&all.labels, CLASSES, 0.3, &mut Rng::new(2024));
    assert_eq!(train.len() + test.len(), 1797);
    let per_class = class_counts(&all.labels, CLASSES);
    let test_counts = class_counts(
        &test.iter().map(|&i| all.labels[i]).collect::<Vec<_>>(),
        CLASSES,
    );
    for c in 0..CLASSES {
        assert_eq!(test_counts[c], (0.3 * per_class[c] as f64).round() as usize);
    }
    assert_eq!(
        stratified_split(&all.labels, CLASSES, 0.3, &mut Rng::new(2024)).1,
        test
    );

    let counts = long_tail_counts(100, 100.0, CLASSES);
    let rank: Vec<usize> = (0..CLASSES).rev().collect();
    let kept = long_tail_subsample(&train, &all.labels, &counts, &rank, &mut Rng::new(1));
    assert!(kept.iter().all(|i| train.binary_search(i).is_ok()));
    let mut got = class_counts(
        &kept.iter().map(|&i| all.labels[i]).collect::<Vec<_>>(),
        CLASSES,
    );
    assert_eq!(got[9], 100);
    assert_eq!(got[0], 1);
    got.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(got, counts);

    let clean: Vec<usize> = train.iter().map(|&i| all.labels[i]).collect();
    let noisy = symmetric_noise(&clean, CLASSES, 0.4, &mut Rng::new(1));
    let flipped = clean.iter().zip(&noisy).filter(|(a, b)| a != b).count();
    assert_eq!(flipped, (0.4 * clean.len() as f64).round() as usize);
}

#[test]
fn metrics_on_a_hand_checked_case() {
    // Truth: four of class 0, two of class 1. Predictions: one class-0
    // image called 1, one class-1 image called 0.
    let truth = [0, 0, 0, 0, 1, 1];
    let pred = [0, 0, 0, 1, 1, 0];
    let conf = [0.9, 0.9, 0.9, 0.6, 0.6, 0.9];
    let m = confusion(&pred, &truth, 2);
    assert_eq!(m, vec![vec![3, 1], vec![1, 1]]);
    // F1: class 0 = 6/8, class 1 = 2/4.
    assert!((macro_f1(&pred, &truth, 2) - 0.625).abs() < 1e-15);
    assert_eq!(worst_recall(&m), (0.5, 1));
    // Bin (0.8667, 0.9333]: 4 images at 0.9, 3 right; bin (0.5333, 0.6]: 2
    // images at 0.6, 1 right.
    let correct: Vec<bool> = pred.iter().zip(&truth).map(|(p, t)| p == t).collect();
    let want = 4.0 / 6.0 * (0.9_f64 - 0.75).abs() + 2.0 / 6.0 * (0.6_f64 - 0.5).abs();
    assert!((expected_calibration_error(&conf, &correct, 15) - want).abs() < 1e-12);
    let s = scores(&pred, &conf, &truth, 2);
    assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-15);
    assert!((s.ece - want).abs() < 1e-12);
}
