//! Ranking metrics, one class against the rest: ROC AUC and average
//! precision, exact with tied scores.

use ndarray::ArrayView2;

use crate::eval::per_class::PerClassMetric;
use crate::eval::sweep::{TieGroup, class_groups, totals};
use crate::eval::target::{EvalTarget, check_scores_and_targets};
use crate::{Float, Result};

/// The area under the ROC curve of each class, one against the rest, and
/// their macro average: the probability that a random positive of the
/// class scores above a random negative, a tie counting one half.
///
/// Use it to compare rankings independently of any threshold. It is the
/// Mann-Whitney statistic, computed exactly: the scores of a class are
/// sorted once, and equal scores form one group (the trapezoid of the ROC
/// curve through a tie is its diagonal step).
///
/// # Formula
/// ```text
/// AUC_c = ( sum_{i pos, j neg} [s_ic > s_jc] + 1/2 [s_ic = s_jc] ) / (P_c N_c)
/// ```
/// with `P_c` and `N_c` the positives and negatives of class `c`, counted
/// exactly in integers (the one rounding is the final division, in `f64`).
///
/// # Shapes
/// - scores `(N, C)`: any scores whose order ranks the samples per class
///   (logits, probabilities, margins).
/// - targets: [`EvalTarget`]: `(N, C)` 0/1 indicators (multi-label) or
///   `(N)` labels (multi-class, one-vs-rest as sklearn's
///   `multi_class="ovr"`).
/// - result: one value per class, and the macro average
///   ([`PerClassMetric::macro_average`]).
///
/// A class without a positive or without a negative has no ROC curve: its
/// value is `None`, and the macro average is over the other classes. (sklearn
/// raises `ValueError` for it instead.)
///
/// Multi-label scores may be logits or probabilities alike (the sigmoid is
/// increasing). One-vs-rest on multi-class logits is not the same as on
/// softmax probabilities, since the softmax of a column depends on the
/// other columns: pass probabilities to match sklearn, which requires them.
///
/// # Errors
/// Empty scores, a NaN or infinite score ([`crate::Error::InvalidInput`]
/// naming `scores` and its position), targets of another shape, a target
/// other than 0 or 1, a label out of `0..C`.
///
/// # Examples
/// ```
/// use classloss::roc_auc;
/// use ndarray::array;
///
/// let scores = array![[0.9_f64, 0.2], [0.4, 0.4], [0.4, 0.7], [0.1, 0.8]];
/// let targets = array![[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]];
/// let auc = roc_auc(&scores, &targets)?;
/// // Class 0: positives 0.9 and 0.4, negatives 0.4 and 0.1: of the four
/// // pairs three are won and one tied, (3 + 1/2) / 4.
/// assert_eq!(auc.per_class()[0], Some(0.875));
/// // Class 1: the negative 0.2 is below all three positives.
/// assert_eq!(auc.per_class()[1], Some(1.0));
/// assert_eq!(auc.macro_average(), Some(0.9375));
///
/// // Multi-class labels, one against the rest: class 2 has no sample, so
/// // no positive and no AUC.
/// let probs = array![[0.7_f64, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1]];
/// let auc = roc_auc(&probs, &array![0_i64, 1, 1])?;
/// assert_eq!(auc.per_class(), &[Some(1.0), Some(1.0), None]);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// J. A. Hanley and B. J. McNeil, "The meaning and use of the area under a
/// receiver operating characteristic (ROC) curve", Radiology 143(1), 1982;
/// sklearn, `sklearn.metrics.roc_auc_score`
/// (<https://scikit-learn.org/stable/modules/generated/sklearn.metrics.roc_auc_score.html>).
pub fn roc_auc<'s, 't, F: Float>(
    scores: impl Into<ArrayView2<'s, F>>,
    targets: impl Into<EvalTarget<'t, F>>,
) -> Result<PerClassMetric> {
    per_class(scores.into(), targets.into(), auc_of_groups)
}

/// Average precision of each class, one against the rest, and their mean
/// (mAP): sklearn's definition, the precision at each threshold weighted by
/// the recall it adds.
///
/// Use it to rank multi-label or detection-style outputs where positives
/// are rare: unlike ROC AUC it is not lifted by the many easy negatives.
///
/// # Formula
/// ```text
/// AP_c = sum_n (R_n - R_{n-1}) P_n
/// ```
/// over the thresholds `n` from the highest score down, `P_n` and `R_n`
/// the precision and recall of predicting the samples scoring `>= s_n`.
/// Equal scores are one threshold (sklearn's `precision_recall_curve`), so
/// a group of tied samples adds its positives' recall at the precision of
/// the whole group; there is no interpolation.
///
/// # Shapes
/// - scores `(N, C)`, targets [`EvalTarget`] (`(N, C)` 0/1 indicators or
///   `(N)` labels), as [`roc_auc`].
/// - result: one value per class; the mean average precision is
///   [`PerClassMetric::macro_average`].
///
/// A class without a positive has no recall: its value is `None`, and the
/// mean is over the other classes. (sklearn warns and returns 0 for it.) A
/// class without a negative has average precision 1.
///
/// # Errors
/// As [`roc_auc`].
///
/// # Examples
/// ```
/// use classloss::average_precision;
/// use ndarray::array;
///
/// let scores = array![[0.9_f64], [0.8], [0.8], [0.3]];
/// let targets = array![[1.0], [0.0], [1.0], [1.0]];
/// let ap = average_precision(&scores, &targets)?;
/// // Thresholds 0.9 (recall 1/3, precision 1), 0.8 (the tie: recall 2/3,
/// // precision 2/3), 0.3 (recall 1, precision 3/4).
/// let want = (1.0 + 2.0 / 3.0 + 3.0 / 4.0) / 3.0;
/// assert!((ap.per_class()[0].unwrap() - want).abs() < 1e-15);
/// assert_eq!(ap.macro_average(), ap.per_class()[0]);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// sklearn, `sklearn.metrics.average_precision_score`
/// (<https://scikit-learn.org/stable/modules/generated/sklearn.metrics.average_precision_score.html>);
/// M. Zhu, "Recall, precision and average precision", University of
/// Waterloo, 2004.
pub fn average_precision<'s, 't, F: Float>(
    scores: impl Into<ArrayView2<'s, F>>,
    targets: impl Into<EvalTarget<'t, F>>,
) -> Result<PerClassMetric> {
    per_class(scores.into(), targets.into(), average_precision_of_groups)
}

/// `metric` of each class's tie groups, after the checks.
fn per_class<F: Float>(
    scores: ArrayView2<'_, F>,
    targets: EvalTarget<'_, F>,
    metric: fn(&[TieGroup<F>]) -> Option<f64>,
) -> Result<PerClassMetric> {
    check_scores_and_targets(&scores, &targets)?;
    Ok(PerClassMetric::new(
        (0..scores.ncols())
            .map(|c| metric(&class_groups(&scores, &targets, c)))
            .collect(),
    ))
}

/// The Mann-Whitney statistic over `P N`; `None` without a positive or a
/// negative.
fn auc_of_groups<F>(groups: &[TieGroup<F>]) -> Option<f64> {
    let (pos, neg) = totals(groups);
    if pos == 0 || neg == 0 {
        return None;
    }
    // Twice the statistic is an integer: each tie adds p n / 2.
    let mut twice_wins: u128 = 0;
    let mut negatives_above = 0_usize;
    for g in groups {
        let below = neg - negatives_above - g.negatives;
        twice_wins +=
            2 * g.positives as u128 * below as u128 + g.positives as u128 * g.negatives as u128;
        negatives_above += g.negatives;
    }
    Some(twice_wins as f64 / (2 * pos as u128 * neg as u128) as f64)
}

/// `sum_n (R_n - R_{n-1}) P_n`; `None` without a positive.
fn average_precision_of_groups<F>(groups: &[TieGroup<F>]) -> Option<f64> {
    let (pos, _) = totals(groups);
    if pos == 0 {
        return None;
    }
    let (mut tp, mut predicted) = (0_usize, 0_usize);
    let mut sum = 0.0;
    for g in groups {
        tp += g.positives;
        predicted += g.positives + g.negatives;
        if g.positives > 0 {
            sum += g.positives as f64 * (tp as f64 / predicted as f64);
        }
    }
    Some(sum / pos as f64)
}
