//! ROC AUC and average precision: sklearn's documented values, brute-force
//! oracles over all pairs and all thresholds (with many ties), labels as
//! one-hot indicators, undefined classes, f32, errors.

use classloss::{Error, EvalTarget, average_precision, roc_auc};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

/// The AUC of one column by its definition: every (positive, negative)
/// pair, a win 1 and a tie 1/2.
fn brute_force_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &si) in scores.iter().enumerate() {
        for (j, &sj) in scores.iter().enumerate() {
            if positive[i] && !positive[j] {
                pairs += 1.0;
                wins += if si > sj {
                    1.0
                } else if si == sj {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    (pairs > 0.0).then(|| wins / pairs)
}

/// Average precision by its definition: every distinct score as a
/// threshold (predict `>=`), from the highest down, each recall step
/// weighted by the precision there.
fn brute_force_average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let total = positive.iter().filter(|&&p| p).count() as f64;
    if total == 0.0 {
        return None;
    }
    let mut thresholds = scores.to_vec();
    thresholds.sort_by(|a, b| b.partial_cmp(a).unwrap());
    thresholds.dedup();
    let (mut ap, mut last_recall) = (0.0, 0.0);
    for t in thresholds {
        let predicted = scores.iter().filter(|&&s| s >= t).count() as f64;
        let tp = scores
            .iter()
            .zip(positive)
            .filter(|&(&s, &p)| s >= t && p)
            .count() as f64;
        let recall = tp / total;
        ap += (recall - last_recall) * (tp / predicted);
        last_recall = recall;
    }
    Some(ap)
}

type Oracle = fn(&[f64], &[bool]) -> Option<f64>;

/// Each column of `scores` against `targets` by `oracle`.
fn columns(scores: &Array2<f64>, targets: &Array2<f64>, oracle: Oracle) -> Vec<Option<f64>> {
    (0..scores.ncols())
        .map(|c| {
            let positive: Vec<bool> = targets.column(c).iter().map(|&t| t == 1.0).collect();
            oracle(&scores.column(c).to_vec(), &positive)
        })
        .collect()
}

fn close(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12,
            (None, None) => true,
            _ => false,
        })
}

/// sklearn's user guide: `roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35,
/// 0.8])` is 0.75 and `average_precision_score` of the same is 0.8333.
#[test]
fn sklearn_documented_values() {
    let scores = array![[0.1_f64], [0.4], [0.35], [0.8]];
    let targets = array![[0.0], [0.0], [1.0], [1.0]];
    assert_eq!(
        roc_auc(&scores, &targets).unwrap().per_class(),
        &[Some(0.75)]
    );
    let ap = average_precision(&scores, &targets).unwrap().per_class()[0].unwrap();
    // Thresholds 0.8 (precision 1, recall 1/2), 0.4 (no recall added),
    // 0.35 (precision 2/3, recall 1): (1 + 2/3) / 2.
    assert!((ap - 5.0 / 6.0).abs() < 1e-15, "{ap}");
}

#[test]
fn a_tie_counts_one_half_and_is_one_threshold() {
    // One positive and one negative with the same score: a coin flip.
    let scores = array![[0.5_f64], [0.5]];
    let targets = array![[1.0], [0.0]];
    assert_eq!(
        roc_auc(&scores, &targets).unwrap().per_class(),
        &[Some(0.5)]
    );
    // Both predicted at once: recall 1 at precision 1/2.
    assert_eq!(
        average_precision(&scores, &targets).unwrap().per_class(),
        &[Some(0.5)]
    );
    // Every score equal: AUC 1/2, AP the positive rate.
    let scores = Array2::from_elem((5, 1), 3.0_f64);
    let targets = array![[1.0], [0.0], [1.0], [0.0], [0.0]];
    assert_eq!(
        roc_auc(&scores, &targets).unwrap().per_class(),
        &[Some(0.5)]
    );
    assert_eq!(
        average_precision(&scores, &targets).unwrap().per_class(),
        &[Some(0.4)]
    );
}

#[test]
fn negative_and_positive_zero_are_one_score() {
    let scores = array![[-0.0_f64], [0.0]];
    let targets = array![[0.0], [1.0]];
    assert_eq!(
        roc_auc(&scores, &targets).unwrap().per_class(),
        &[Some(0.5)]
    );
}

#[test]
fn undefined_classes_are_none_and_left_out_of_the_average() {
    // Class 0 lacks negatives, class 1 positives, class 2 is fine.
    let scores = array![[0.3_f64, 0.1, 0.9], [0.6, 0.8, 0.2], [0.1, 0.5, 0.4]];
    let targets = array![[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]];
    let auc = roc_auc(&scores, &targets).unwrap();
    assert_eq!(auc.per_class(), &[None, None, Some(1.0)]);
    assert_eq!((auc.defined(), auc.num_classes()), (1, 3));
    assert_eq!(auc.macro_average(), Some(1.0));
    // AP needs positives only: a class of positives only has AP 1.
    let ap = average_precision(&scores, &targets).unwrap();
    assert_eq!(ap.per_class(), &[Some(1.0), None, Some(1.0)]);
    assert_eq!(ap.macro_average(), Some(1.0));
    // Nothing defined: no average.
    let none = roc_auc(&array![[0.5_f64]], &array![[1.0]]).unwrap();
    assert_eq!(none.macro_average(), None);
}

#[test]
fn perfect_and_reversed_rankings() {
    let scores = array![[4.0_f64], [3.0], [2.0], [1.0]];
    let good = array![[1.0], [1.0], [0.0], [0.0]];
    let bad = array![[0.0], [0.0], [1.0], [1.0]];
    assert_eq!(roc_auc(&scores, &good).unwrap().per_class(), &[Some(1.0)]);
    assert_eq!(roc_auc(&scores, &bad).unwrap().per_class(), &[Some(0.0)]);
    assert_eq!(
        average_precision(&scores, &good).unwrap().per_class(),
        &[Some(1.0)]
    );
    // Positives last: precisions 1/3 and 2/4 at recalls 1/2 and 1.
    let ap = average_precision(&scores, &bad).unwrap().per_class()[0].unwrap();
    assert!((ap - (1.0 / 3.0 + 0.5) / 2.0).abs() < 1e-15);
}

#[test]
fn f32_scores_rank_as_f64_scores() {
    let scores = array![[0.25_f32, 1.0], [0.5, -2.0], [0.25, 0.0], [-1.0, 3.0]];
    let targets = array![[1.0_f32, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]];
    let wide = scores.mapv(f64::from);
    let wide_targets = targets.mapv(f64::from);
    assert_eq!(roc_auc(&scores, &targets), roc_auc(&wide, &wide_targets));
    assert_eq!(
        average_precision(&scores, &targets),
        average_precision(&wide, &wide_targets)
    );
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let scores = array![[0.5_f64, 0.1], [0.2, f64::NAN]];
    let targets = array![[1.0, 0.0], [0.0, 1.0]];
    let e = roc_auc(&scores, &targets).unwrap_err();
    assert!(
        matches!(e, Error::InvalidInput { what: "scores", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "scores[1, 1]: expected a finite score, got NaN"
    );
    let scores = array![[0.5_f64, 0.1], [0.2, 0.3]];
    let e = average_precision(&scores, &array![[1.0, 0.0], [0.0, 2.0]]).unwrap_err();
    assert_eq!(e.to_string(), "targets[1, 1]: expected 0 or 1, got 2");
    let e = roc_auc(&scores, &array![[1.0, 0.0]]).unwrap_err();
    assert_eq!(e.to_string(), "targets: expected shape [2, 2], got [1, 2]");
    let e = roc_auc(&scores, &array![0_i64, 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[1]: label 2 is out of range for 2 classes (expected 0..=1)"
    );
    let e = roc_auc(&scores, &array![0_i64]).unwrap_err();
    assert_eq!(e.to_string(), "labels: expected shape [2], got [1]");
    let empty = Array2::<f64>::zeros((0, 3));
    let e = roc_auc(&empty, &Array2::<f64>::zeros((0, 3))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores: expected at least one sample, got an empty array of shape [0, 3]"
    );
    let e = average_precision(&Array2::<f64>::zeros((2, 0)), &array![0_i64, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores: expected at least one class, got an empty array of shape [2, 0]"
    );
}

/// `(N, C)` scores drawn from five values (many ties) and 0/1 targets.
fn tied_scores_and_targets() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    (1usize..10, 1usize..4).prop_flat_map(|(n, c)| {
        (
            proptest::collection::vec(0u8..5, n * c),
            proptest::collection::vec(proptest::bool::ANY, n * c),
        )
            .prop_map(move |(s, t)| {
                let scores = Array2::from_shape_fn((n, c), |(i, k)| s[i * c + k] as f64 / 4.0);
                let targets =
                    Array2::from_shape_fn((n, c), |(i, k)| if t[i * c + k] { 1.0 } else { 0.0 });
                (scores, targets)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn auc_is_the_pairwise_count((scores, targets) in tied_scores_and_targets()) {
        let got = roc_auc(&scores, &targets).unwrap();
        let want = columns(&scores, &targets, brute_force_auc);
        prop_assert!(close(got.per_class(), &want), "{:?} vs {:?}", got, want);
        let defined: Vec<f64> = want.iter().flatten().copied().collect();
        let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
        prop_assert!(close(&[got.macro_average()], &[mean]));
    }

    #[test]
    fn average_precision_is_the_threshold_sum((scores, targets) in tied_scores_and_targets()) {
        let got = average_precision(&scores, &targets).unwrap();
        let want = columns(&scores, &targets, brute_force_average_precision);
        prop_assert!(close(got.per_class(), &want), "{:?} vs {:?}", got, want);
    }

    /// Multi-class labels are read as their one-hot indicators.
    #[test]
    fn labels_are_one_hot_indicators(
        (scores, labels) in (1usize..10, 1usize..5).prop_flat_map(|(n, c)| (
            proptest::collection::vec(0u8..5, n * c)
                .prop_map(move |s| Array2::from_shape_fn((n, c), |(i, k)| s[i * c + k] as f64)),
            proptest::collection::vec(0..c, n).prop_map(Array1::from),
        ))
    ) {
        let one_hot = Array2::from_shape_fn(scores.raw_dim(), |(i, k)| if labels[i] == k { 1.0 } else { 0.0 });
        prop_assert_eq!(roc_auc(&scores, &labels).unwrap(), roc_auc(&scores, &one_hot).unwrap());
        prop_assert_eq!(
            average_precision(&scores, EvalTarget::Labels(labels.view().into())).unwrap(),
            average_precision(&scores, one_hot.view()).unwrap()
        );
    }
}
