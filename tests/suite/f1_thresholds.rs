//! F1 scores (multi-label and multi-class) and the F1 threshold picker:
//! sklearn's documented values, precision/recall oracles, the picker
//! against a sweep of every threshold, its tie-break, errors.

use classloss::{
    EvalTarget, ThresholdMode, Thresholds, ZeroDivision, argmax_predictions, multiclass_f1,
    multilabel_f1, multilabel_predictions, pick_f1_thresholds,
};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

/// sklearn's `f1_score` docs: y_true [0, 1, 2, 0, 1, 2], y_pred
/// [0, 2, 1, 0, 0, 1]: per class [0.8, 0, 0], macro 0.267, micro 0.333.
#[test]
fn sklearn_documented_multiclass_values() {
    let f1 = multiclass_f1(
        &array![0_i64, 1, 2, 0, 1, 2],
        &array![0_i64, 2, 1, 0, 0, 1],
        3,
    )
    .unwrap();
    assert_eq!(
        f1.per_class().per_class(),
        &[Some(0.8), Some(0.0), Some(0.0)]
    );
    assert!((f1.macro_f1(ZeroDivision::Zero).unwrap() - 0.8 / 3.0).abs() < 1e-15);
    assert_eq!(f1.micro_f1(), Some(2.0 / 6.0));
}

/// sklearn's `f1_score` docs, multi-label: y_true [[0, 0, 0], [1, 1, 1],
/// [0, 1, 1]], y_pred [[0, 0, 0], [1, 1, 1], [1, 1, 0]]: per class
/// [0.667, 1, 0.667].
#[test]
fn sklearn_documented_multilabel_values() {
    let targets = array![[0.0_f32, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]];
    let decisions = array![
        [false, false, false],
        [true, true, true],
        [true, true, false]
    ];
    let f1 = multilabel_f1(&targets, decisions.view()).unwrap();
    assert_eq!(
        f1.per_class().per_class(),
        &[Some(2.0 / 3.0), Some(1.0), Some(2.0 / 3.0)]
    );
    assert_eq!(f1.true_positives(), &[1, 2, 1]);
    assert_eq!(f1.false_positives(), &[1, 0, 0]);
    assert_eq!(f1.false_negatives(), &[0, 0, 1]);
}

#[test]
fn zero_division_decides_an_undefined_class() {
    // Class 1 has no positive and is never predicted.
    let targets = array![[1.0_f64, 0.0], [0.0, 0.0]];
    let decisions = array![[true, false], [true, false]];
    let f1 = multilabel_f1(&targets, decisions.view()).unwrap();
    assert_eq!(f1.per_class().per_class(), &[Some(2.0 / 3.0), None]);
    assert_eq!(f1.macro_f1(ZeroDivision::Zero), Some(1.0 / 3.0));
    assert_eq!(
        f1.macro_f1(ZeroDivision::One),
        Some((2.0 / 3.0 + 1.0) / 2.0)
    );
    assert_eq!(f1.macro_f1(ZeroDivision::Exclude), Some(2.0 / 3.0));
    // Nothing anywhere: every average undefined but the filled ones.
    let nothing = multilabel_f1(&array![[0.0_f64]], array![[false]].view()).unwrap();
    assert_eq!(nothing.micro_f1(), None);
    assert_eq!(nothing.macro_f1(ZeroDivision::Exclude), None);
    assert_eq!(nothing.macro_f1(ZeroDivision::One), Some(1.0));
}

#[test]
fn labels_as_targets_of_decisions_are_one_vs_rest() {
    let labels = array![2_u32, 0, 1];
    let decisions = array![
        [false, false, true],
        [true, true, false],
        [false, false, false]
    ];
    let one_hot = array![[0.0_f64, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    assert_eq!(
        multilabel_f1::<f64>(&labels, decisions.view()).unwrap(),
        multilabel_f1(&one_hot, decisions.view()).unwrap()
    );
}

#[test]
fn argmax_predictions_feed_multiclass_f1() {
    let logits = array![[0.1_f64, 2.0, -1.0], [3.0, 3.0, 0.0], [0.0, 0.0, 5.0]];
    let predicted = argmax_predictions(&logits).unwrap();
    assert_eq!(predicted, array![1, 0, 2]);
    let f1 = multiclass_f1(&array![1_i64, 1, 2], &predicted, 3).unwrap();
    assert_eq!(f1.micro_f1(), Some(2.0 / 3.0));
    let e = argmax_predictions(&array![[0.0_f32, f32::INFINITY]]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores[0, 1]: expected a finite score, got inf"
    );
}

#[test]
fn decisions_are_scores_at_or_above_the_threshold() {
    let scores = array![[0.5_f64, -1.0], [0.49, 0.0]];
    assert_eq!(
        multilabel_predictions(&scores, &Thresholds::Shared(0.5)).unwrap(),
        array![[true, false], [false, false]]
    );
    assert_eq!(
        multilabel_predictions(
            &scores,
            &Thresholds::PerClass(array![f64::INFINITY, f64::NEG_INFINITY])
        )
        .unwrap(),
        array![[false, true], [false, true]]
    );
}

#[test]
fn the_picker_prefers_the_higher_of_tied_thresholds_and_inf_without_positives() {
    // Class 0: at 0.9 F1 = 2/3 (tp 1, P 2), at 0.1 (all) 4/6 = 2/3: 0.9.
    // Class 1: no positive, so nothing is predicted.
    let scores = array![[0.9_f64, 0.3], [0.6, 0.2], [0.4, 0.7], [0.1, 0.1]];
    let targets = array![[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]];
    let picked = pick_f1_thresholds(&scores, &targets, ThresholdMode::PerClass).unwrap();
    assert_eq!(picked, Thresholds::PerClass(array![0.9, f64::INFINITY]));
    let none = pick_f1_thresholds(
        scores.column(1).insert_axis(ndarray::Axis(1)),
        targets.column(1).insert_axis(ndarray::Axis(1)),
        ThresholdMode::Shared,
    )
    .unwrap();
    assert_eq!(none, Thresholds::Shared(f64::INFINITY));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let scores = array![[0.5_f64, 0.1], [0.2, 0.3]];
    let e = multilabel_predictions(&scores, &Thresholds::PerClass(array![0.5])).unwrap_err();
    assert_eq!(e.to_string(), "thresholds: expected shape [2], got [1]");
    let e = multilabel_predictions(&scores, &Thresholds::Shared(f64::NAN)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `thresholds`: expected a number (not NaN; +inf predicts nothing, -inf everything), got NaN"
    );
    let e = pick_f1_thresholds(
        &scores,
        &array![[1.0, 0.5], [0.0, 1.0]],
        ThresholdMode::Shared,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "targets[0, 1]: expected 0 or 1, got 0.5");
    let e = pick_f1_thresholds(
        &array![[f64::NEG_INFINITY]],
        &array![[1.0]],
        ThresholdMode::PerClass,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "scores[0, 0]: expected a finite score, got -inf"
    );
    let e = multilabel_f1(&array![[1.0_f64, 0.0]], array![[true], [false]].view()).unwrap_err();
    assert_eq!(e.to_string(), "targets: expected shape [2, 1], got [1, 2]");
    let e = multilabel_f1(
        &array![[1.0_f64]],
        Array2::<bool>::from_elem((0, 1), false).view(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "decisions: expected at least one sample, got an empty array of shape [0, 1]"
    );
    let e = multiclass_f1(&array![0_i64, 1], &array![0_i64], 2).unwrap_err();
    assert_eq!(e.to_string(), "predicted: expected shape [2], got [1]");
    let e = multiclass_f1(&array![0_i64, 1], &array![0_i64, 3], 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "predicted[1]: label 3 is out of range for 2 classes (expected 0..=1)"
    );
    let e = multiclass_f1(&array![0_i64, -1], &array![0_i64, 1], 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[1]: label -1 is out of range for 2 classes (expected 0..=1)"
    );
    let e = multiclass_f1(&array![0_i64], &array![0_i64], 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `num_classes`: expected at least 1 class, got 0"
    );
    let e = multiclass_f1(&Array1::<i64>::zeros(0), &Array1::<i64>::zeros(0), 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels: expected at least one sample, got an empty array of shape [0]"
    );
}

/// F1 as the harmonic mean of precision and recall, from counts made here;
/// `None` when precision and recall are both undefined or both zero with
/// nothing to count.
fn harmonic_f1(tp: usize, fp: usize, fn_: usize) -> Option<f64> {
    if tp + fp + fn_ == 0 {
        return None;
    }
    if tp == 0 {
        return Some(0.0);
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    Some(2.0 * precision * recall / (precision + recall))
}

/// Both undefined, or both defined and equal but for rounding.
fn same_f1(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-12,
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The F1 of deciding `score >= t` on each listed column, pooled.
fn pooled_f1(
    scores: &Array2<f64>,
    targets: &Array2<f64>,
    columns: &[usize],
    t: f64,
) -> Option<f64> {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for &c in columns {
        for i in 0..scores.nrows() {
            match (scores[[i, c]] >= t, targets[[i, c]] == 1.0) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                _ => {}
            }
        }
    }
    harmonic_f1(tp, fp, fn_)
}

/// The picked threshold has the largest F1 of every candidate (each score,
/// and +inf), and no higher candidate has as large an F1.
fn assert_best(scores: &Array2<f64>, targets: &Array2<f64>, columns: &[usize], picked: f64) {
    let mut candidates: Vec<f64> = columns
        .iter()
        .flat_map(|&c| scores.column(c).to_vec())
        .collect();
    candidates.push(f64::INFINITY);
    let f1 = |t| pooled_f1(scores, targets, columns, t).unwrap_or(0.0);
    let best = candidates.iter().map(|&t| f1(t)).fold(0.0, f64::max);
    assert!(
        (f1(picked) - best).abs() < 1e-12,
        "{picked}: {} < {best}",
        f1(picked)
    );
    for &t in &candidates {
        if t > picked {
            assert!(f1(t) < best - 1e-12, "{t} > {picked} reaches {best} too");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Per class and micro F1 against precision and recall counted here;
    /// for multi-class the micro F1 is the accuracy.
    #[test]
    fn multiclass_f1_is_the_harmonic_mean(
        (labels, predicted, c) in (1usize..12, 1usize..5).prop_flat_map(|(n, c)| (
            proptest::collection::vec(0..c, n).prop_map(Array1::from),
            proptest::collection::vec(0..c, n).prop_map(Array1::from),
            Just(c),
        ))
    ) {
        let f1 = multiclass_f1(&labels, &predicted, c).unwrap();
        for k in 0..c {
            let count = |f: &dyn Fn(usize, usize) -> bool| {
                labels.iter().zip(&predicted).filter(|&(&y, &p)| f(y, p)).count()
            };
            let tp = count(&|y, p| y == k && p == k);
            let fp = count(&|y, p| y != k && p == k);
            let fn_ = count(&|y, p| y == k && p != k);
            let want = harmonic_f1(tp, fp, fn_);
            let got = f1.per_class().per_class()[k];
            prop_assert!(same_f1(got, want), "class {}: {:?} vs {:?}", k, got, want);
        }
        let accuracy = labels.iter().zip(&predicted).filter(|&(y, p)| y == p).count() as f64
            / labels.len() as f64;
        prop_assert!((f1.micro_f1().unwrap() - accuracy).abs() < 1e-12);
    }

    /// The picker against every threshold, per class and shared, on scores
    /// with many ties.
    #[test]
    fn picked_thresholds_maximize_f1(
        (scores, targets) in (1usize..10, 1usize..4).prop_flat_map(|(n, c)| (
            proptest::collection::vec(0u8..6, n * c)
                .prop_map(move |s| Array2::from_shape_fn((n, c), |(i, k)| s[i * c + k] as f64 - 2.5)),
            proptest::collection::vec(proptest::bool::ANY, n * c)
                .prop_map(move |t| Array2::from_shape_fn((n, c), |(i, k)| f64::from(u8::from(t[i * c + k]))))
        ))
    ) {
        let Thresholds::PerClass(per_class) =
            pick_f1_thresholds(&scores, &targets, ThresholdMode::PerClass).unwrap()
        else {
            panic!("per-class mode gives per-class thresholds");
        };
        for (c, &t) in per_class.iter().enumerate() {
            assert_best(&scores, &targets, &[c], t);
        }
        let Thresholds::Shared(shared) =
            pick_f1_thresholds(&scores, EvalTarget::Indicators(targets.view()), ThresholdMode::Shared).unwrap()
        else {
            panic!("shared mode gives one threshold");
        };
        let all: Vec<usize> = (0..scores.ncols()).collect();
        assert_best(&scores, &targets, &all, shared);
        // The decisions at the picked thresholds score that F1 through the
        // public path too.
        let picked = Thresholds::PerClass(per_class);
        let decisions = multilabel_predictions(&scores, &picked).unwrap();
        let f1 = multilabel_f1(&targets, decisions.view()).unwrap();
        for c in 0..scores.ncols() {
            let want = pooled_f1(&scores, &targets, &[c], picked.for_class(c).unwrap());
            let got = f1.per_class().per_class()[c];
            prop_assert!(same_f1(got, want), "class {}: {:?} vs {:?}", c, got, want);
        }
    }
}
