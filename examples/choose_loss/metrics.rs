//! Test-split metrics: accuracy, macro-F1, the worst class's recall and the
//! expected calibration error; for label sets, mean average precision,
//! micro- and macro-F1 at thresholds tuned on held-out data, and the
//! Hamming loss. Plain functions of predictions, so they are tested by
//! hand-computed cases.

use classloss::{
    ThresholdMode, Thresholds, ZeroDivision, average_precision, multiclass_f1, multilabel_f1,
    multilabel_predictions, pick_f1_thresholds,
};
use ndarray::{ArrayView1, ArrayView2};

/// `confusion[t][p]`: how many images of true class `t` were predicted `p`.
pub fn confusion(pred: &[usize], truth: &[usize], classes: usize) -> Vec<Vec<usize>> {
    assert_eq!(pred.len(), truth.len(), "pred and truth lengths differ");
    let mut m = vec![vec![0; classes]; classes];
    for (&p, &t) in pred.iter().zip(truth) {
        m[t][p] += 1;
    }
    m
}

/// The fraction of correct predictions (0 for no predictions).
pub fn accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    assert_eq!(pred.len(), truth.len(), "pred and truth lengths differ");
    if pred.is_empty() {
        return 0.0;
    }
    let right = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    right as f64 / pred.len() as f64
}

/// Recall of each class (`None` for a class absent from `truth`).
pub fn recalls(conf: &[Vec<usize>]) -> Vec<Option<f64>> {
    conf.iter()
        .enumerate()
        .map(|(c, row)| {
            let support: usize = row.iter().sum();
            (support > 0).then(|| row[c] as f64 / support as f64)
        })
        .collect()
}

/// The lowest recall over the classes present, and its class.
pub fn worst_recall(conf: &[Vec<usize>]) -> (f64, usize) {
    recalls(conf)
        .into_iter()
        .enumerate()
        .filter_map(|(c, r)| r.map(|r| (r, c)))
        .fold(
            (f64::INFINITY, 0),
            |best, x| if x.0 < best.0 { x } else { best },
        )
}

/// Expected calibration error (Guo et al., 2017) over `bins` equal-width
/// bins `((m - 1) / M, m / M]` of the confidence (a confidence of exactly 0
/// falls in the first): `sum_m |B_m| / n * |accuracy(B_m) - confidence(B_m)|`.
pub fn expected_calibration_error(confidence: &[f64], correct: &[bool], bins: usize) -> f64 {
    assert_eq!(confidence.len(), correct.len(), "lengths differ");
    assert!(bins > 0, "at least one bin");
    let n = confidence.len();
    if n == 0 {
        return 0.0;
    }
    let mut count = vec![0usize; bins];
    let mut conf_sum = vec![0.0; bins];
    let mut right = vec![0usize; bins];
    for (&p, &ok) in confidence.iter().zip(correct) {
        let b = ((p * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf_sum[b] += p;
        right[b] += usize::from(ok);
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (right[b] as f64 - conf_sum[b]).abs() / n as f64)
        .sum()
}

/// The unweighted mean of the classes' F1 (scikit-learn's macro-F1: over
/// the classes that are true or predicted at least once; a class never
/// right scores 0).
pub fn macro_f1(pred: &[usize], truth: &[usize], classes: usize) -> f64 {
    multiclass_f1(ArrayView1::from(truth), ArrayView1::from(pred), classes)
        .ok()
        .and_then(|f1| f1.macro_f1(ZeroDivision::Exclude))
        .unwrap_or(0.0)
}

/// The four numbers reported per run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    /// Fraction correct.
    pub accuracy: f64,
    /// Mean F1 over classes.
    pub macro_f1: f64,
    /// The lowest per-class recall.
    pub worst_recall: f64,
    /// Expected calibration error, 15 bins.
    pub ece: f64,
}

/// The reported bins of the calibration error.
pub const ECE_BINS: usize = 15;

/// All four metrics from predictions, their confidences and the truth.
pub fn scores(pred: &[usize], confidence: &[f64], truth: &[usize], classes: usize) -> Scores {
    let conf = confusion(pred, truth, classes);
    let correct: Vec<bool> = pred.iter().zip(truth).map(|(p, t)| p == t).collect();
    Scores {
        accuracy: accuracy(pred, truth),
        macro_f1: macro_f1(pred, truth, classes),
        worst_recall: worst_recall(&conf).0,
        ece: expected_calibration_error(confidence, &correct, ECE_BINS),
    }
}

/// The numbers reported per multi-label run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiScores {
    /// Mean over classes of the average precision of the scores.
    pub map: f64,
    /// F1 of all (sample, class) decisions pooled, at the tuned thresholds.
    pub micro_f1: f64,
    /// Mean over classes of each class's F1, at the tuned thresholds.
    pub macro_f1: f64,
    /// Fraction of wrong (sample, class) decisions, at the tuned thresholds.
    pub hamming: f64,
    /// Micro-F1 at the untuned threshold `sigmoid(x) = 0.5` (score 0).
    pub micro_f1_untuned: f64,
}

/// Every multi-label metric of one run: each class's threshold is the one
/// maximizing its F1 on `tune` (scores and 0/1 targets), then everything
/// is measured on `test`. The one place where the multi-label metrics are
/// called.
pub fn multi_label_scores(
    tune: (ArrayView2<'_, f32>, ArrayView2<'_, f32>),
    test: (ArrayView2<'_, f32>, ArrayView2<'_, f32>),
) -> classloss::Result<MultiScores> {
    let (scores, truth) = test;
    let picked = pick_f1_thresholds(tune.0, tune.1, ThresholdMode::PerClass)?;
    let tuned = multilabel_f1(truth, multilabel_predictions(scores, &picked)?.view())?;
    // Score 0 is probability 0.5 for the sigmoid losses.
    let at_half = multilabel_predictions(scores, &Thresholds::Shared(0.0))?;
    let untuned = multilabel_f1(truth, at_half.view())?;
    // The Hamming loss of these decisions from their counts: `Hamming`
    // itself decides by `sigmoid(x) > t`, where the picked thresholds are
    // met by `score >= t`.
    let wrong: usize = [tuned.false_positives(), tuned.false_negatives()]
        .iter()
        .flat_map(|v| v.iter())
        .sum();
    Ok(MultiScores {
        map: mean_average_precision(scores, truth)?,
        micro_f1: tuned.micro_f1().unwrap_or(0.0),
        macro_f1: tuned.macro_f1(ZeroDivision::Zero).unwrap_or(0.0),
        hamming: wrong as f64 / truth.len() as f64,
        micro_f1_untuned: untuned.micro_f1().unwrap_or(0.0),
    })
}

/// Mean over the classes with a positive of their average precision.
pub fn mean_average_precision(
    scores: ArrayView2<'_, f32>,
    truth: ArrayView2<'_, f32>,
) -> classloss::Result<f64> {
    Ok(average_precision(scores, truth)?
        .macro_average()
        .unwrap_or(f64::NAN))
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Truth 0,0,0,1,1,2 ; predictions 0,0,1,1,2,2.
    const TRUTH: [usize; 6] = [0, 0, 0, 1, 1, 2];
    const PRED: [usize; 6] = [0, 0, 1, 1, 2, 2];

    #[test]
    fn confusion_and_accuracy() {
        let m = confusion(&PRED, &TRUTH, 3);
        assert_eq!(m, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert!((accuracy(&PRED, &TRUTH) - 4.0 / 6.0).abs() < 1e-15);
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn recall_and_worst_class() {
        let m = confusion(&PRED, &TRUTH, 3);
        let r = recalls(&m);
        assert_eq!(r, vec![Some(2.0 / 3.0), Some(0.5), Some(1.0)]);
        assert_eq!(worst_recall(&m), (0.5, 1));
        // A class absent from the truth is not the worst class.
        let m = confusion(&[0, 1], &[0, 1], 3);
        assert_eq!(worst_recall(&m), (1.0, 0));
    }

    #[test]
    fn macro_f1_by_hand() {
        // class 0: tp 2 fp 0 fn 1 -> 4/5; class 1: tp 1 fp 1 fn 1 -> 1/2;
        // class 2: tp 1 fp 1 fn 0 -> 2/3.
        let expected = (0.8 + 0.5 + 2.0 / 3.0) / 3.0;
        assert!((macro_f1(&PRED, &TRUTH, 3) - expected).abs() < 1e-15);
        // A class never predicted scores 0, and perfection scores 1.
        assert_eq!(macro_f1(&[0, 0], &[0, 1], 2), (2.0 / 3.0) / 2.0);
        assert_eq!(macro_f1(&TRUTH, &TRUTH, 3), 1.0);
        // A class neither true nor predicted is left out of the mean.
        assert_eq!(macro_f1(&[0, 1], &[0, 1], 3), 1.0);
    }

    #[test]
    fn ece_by_hand() {
        // Perfectly calibrated bins: 0 error.
        let conf = [0.5, 0.5, 1.0, 1.0];
        let ok = [true, false, true, true];
        assert!(expected_calibration_error(&conf, &ok, 15).abs() < 1e-15);
        // One bin, confidence 0.9, accuracy 0.5: error 0.4.
        let e = expected_calibration_error(&[0.9, 0.9], &[true, false], 15);
        assert!((e - 0.4).abs() < 1e-15);
        // Two bins weighted by size: (3/4) * |1/3 - 0.6| + (1/4) * |1 - 0.95|.
        let conf = [0.6, 0.6, 0.6, 0.95];
        let ok = [true, false, false, true];
        let want = 0.75 * (0.6 - 1.0 / 3.0) + 0.25 * 0.05;
        assert!((expected_calibration_error(&conf, &ok, 15) - want).abs() < 1e-12);
    }

    #[test]
    fn ece_bin_edges_are_right_closed() {
        // 1/15 belongs to the first bin (0, 1/15], with 0.05: one bin of
        // mean confidence (1/15 + 0.05) / 2 and accuracy 1.
        let e = expected_calibration_error(&[1.0 / 15.0, 0.05], &[true, true], 15);
        assert!((e - (1.0 - (1.0 / 15.0 + 0.05) / 2.0)).abs() < 1e-12);
        // With 2 bins, 0.5 and 0.51 fall in different bins.
        let e = expected_calibration_error(&[0.5, 0.51], &[true, false], 2);
        assert!((e - (0.5 * 0.5 + 0.5 * 0.51)).abs() < 1e-12);
    }

    #[test]
    fn scores_gathers_the_four() {
        let conf = [0.9; 6];
        let s = scores(&PRED, &conf, &TRUTH, 3);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-15);
        assert_eq!(s.worst_recall, 0.5);
        assert!((s.ece - (0.9 - 4.0 / 6.0)).abs() < 1e-12);
    }

    #[test]
    fn multi_label_scores_tune_on_one_split_and_measure_on_the_other() {
        use ndarray::array;
        // Tuning: the best F1 keeps the top two scores (threshold 0.7).
        let tune_s = array![[0.9_f32], [0.7], [0.3], [0.2]];
        let tune_t = array![[1.0_f32], [1.0], [0.0], [0.0]];
        // Test: 0.8 -> yes (right), 0.6 -> no (a missed label), 0.75 on a
        // negative -> yes (a spurious one), -0.1 -> no (right).
        let test_s = array![[0.8_f32], [0.6], [0.75], [-0.1]];
        let test_t = array![[1.0_f32], [1.0], [0.0], [0.0]];
        let m = multi_label_scores(
            (tune_s.view(), tune_t.view()),
            (test_s.view(), test_t.view()),
        )
        .unwrap();
        // tp 1, fp 1, fn 1.
        assert!((m.micro_f1 - 0.5).abs() < 1e-12);
        assert!((m.macro_f1 - 0.5).abs() < 1e-12);
        assert!((m.hamming - 0.5).abs() < 1e-12);
        // Ranked 0.8 (+), 0.75 (-), 0.6 (+): AP = 1/2 * 1 + 1/2 * 2/3.
        assert!((m.map - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // At score 0 the three positive scores are predicted: tp 2, fp 1.
        assert!((m.micro_f1_untuned - 0.8).abs() < 1e-12);
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-15);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
    }
}
