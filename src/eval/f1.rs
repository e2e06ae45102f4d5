//! F1 scores: per class, macro and micro, for multi-label decisions and
//! multi-class predictions.

use ndarray::{ArrayView1, ArrayView2, Axis};

use crate::base::labels::Labels;
use crate::base::validate::{check_option, expect_nonempty};
use crate::eval::per_class::PerClassMetric;
use crate::eval::target::{EvalTarget, check_scores};
use crate::eval::zero_one::argmax;
use crate::{Float, Result};

/// What a macro average counts for a class whose F1 is undefined (no
/// positive and nothing predicted: `tp + fp + fn = 0`), as sklearn's
/// `zero_division`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroDivision {
    /// The class counts as F1 0 (sklearn's default, `zero_division="warn"`
    /// or `0`).
    #[default]
    Zero,
    /// The class counts as F1 1 (sklearn's `zero_division=1`): predicting
    /// nothing for an absent class is right.
    One,
    /// The class is left out of the average (sklearn's
    /// `zero_division=np.nan`).
    Exclude,
}

/// F1 scores from the per-class counts of true positives, false positives
/// and false negatives: per class, macro average and micro average.
///
/// Made by [`multilabel_f1`] and [`multiclass_f1`].
///
/// # Formula
/// ```text
/// F1_c     = 2 tp_c / (2 tp_c + fp_c + fn_c)                 (undefined when the denominator is 0)
/// macro F1 = mean_c F1_c                                     (undefined classes per ZeroDivision)
/// micro F1 = 2 sum_c tp_c / (2 sum_c tp_c + sum_c fp_c + sum_c fn_c)
/// ```
/// Counts are exact integers; each ratio is one `f64` division.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct F1Scores {
    true_positives: Vec<usize>,
    false_positives: Vec<usize>,
    false_negatives: Vec<usize>,
}

impl F1Scores {
    fn zeros(classes: usize) -> Self {
        F1Scores {
            true_positives: vec![0; classes],
            false_positives: vec![0; classes],
            false_negatives: vec![0; classes],
        }
    }

    /// Counts one decision on class `c`.
    #[inline]
    fn count(&mut self, c: usize, predicted: bool, positive: bool) {
        match (predicted, positive) {
            (true, true) => self.true_positives[c] += 1,
            (true, false) => self.false_positives[c] += 1,
            (false, true) => self.false_negatives[c] += 1,
            (false, false) => {}
        }
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.true_positives.len()
    }

    /// True positives per class: positives predicted.
    pub fn true_positives(&self) -> &[usize] {
        &self.true_positives
    }

    /// False positives per class: negatives predicted.
    pub fn false_positives(&self) -> &[usize] {
        &self.false_positives
    }

    /// False negatives per class: positives not predicted.
    pub fn false_negatives(&self) -> &[usize] {
        &self.false_negatives
    }

    /// F1 of each class, `None` where undefined (no positive and nothing
    /// predicted); its [`PerClassMetric::macro_average`] is the macro F1
    /// with [`ZeroDivision::Exclude`].
    pub fn per_class(&self) -> PerClassMetric {
        PerClassMetric::new(
            (0..self.num_classes())
                .map(|c| {
                    f1_of(
                        self.true_positives[c],
                        self.false_positives[c],
                        self.false_negatives[c],
                    )
                })
                .collect(),
        )
    }

    /// The mean of the per-class F1, an undefined class counted as
    /// `zero_division` says; `None` only when every class is undefined and
    /// excluded.
    pub fn macro_f1(&self, zero_division: ZeroDivision) -> Option<f64> {
        let per = self.per_class();
        let fill = match zero_division {
            ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Exclude => return per.macro_average(),
        };
        let sum: f64 = per.per_class().iter().map(|v| v.unwrap_or(fill)).sum();
        Some(sum / self.num_classes() as f64)
    }

    /// F1 of the counts summed over classes; `None` when there is no
    /// positive and nothing is predicted in any class. For multi-class
    /// predictions (one label per sample) it equals the accuracy.
    pub fn micro_f1(&self) -> Option<f64> {
        let total = |v: &[usize]| v.iter().sum::<usize>();
        f1_of(
            total(&self.true_positives),
            total(&self.false_positives),
            total(&self.false_negatives),
        )
    }
}

/// `2 tp / (2 tp + fp + fn)`, `None` when that is `0 / 0`.
fn f1_of(tp: usize, fp: usize, fn_: usize) -> Option<f64> {
    let den = 2 * tp as u128 + fp as u128 + fn_ as u128;
    (den > 0).then(|| (2 * tp as u128) as f64 / den as f64)
}

/// F1 scores of multi-label decisions: each class of each sample predicted
/// or not, against the targets read one class against the rest.
///
/// Make the decisions from scores with [`crate::multilabel_predictions`]
/// (at thresholds picked by [`crate::pick_f1_thresholds`], or 0.5 on
/// probabilities), then read the per-class, macro and micro F1 from the
/// result.
///
/// # Formula
/// See [`F1Scores`]; `tp_c` counts the samples with `decisions[[i, c]]`
/// and a positive class `c`, `fp_c` the decisions on a negative, `fn_c`
/// the positives not decided.
///
/// # Shapes
/// - targets: [`EvalTarget`]: `(N, C)` 0/1 indicators, or `(N)` labels
///   (class `c` positive where the label is `c`).
/// - decisions: `(N, C)` booleans.
///
/// # Errors
/// Empty decisions, targets of another shape, a target other than 0 or 1,
/// a label out of `0..C`.
///
/// # Examples
/// ```
/// use classloss::{multilabel_f1, ZeroDivision};
/// use ndarray::array;
///
/// let targets = array![[1.0_f64, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]];
/// let decisions = array![[true, false, false], [false, true, false], [true, true, false]];
/// let f1 = multilabel_f1(&targets, decisions.view())?;
/// // Class 0: tp 1, fp 1, fn 1; class 1: tp 2; class 2: nothing at all.
/// assert_eq!(f1.per_class().per_class(), &[Some(0.5), Some(1.0), None]);
/// assert_eq!(f1.macro_f1(ZeroDivision::Zero), Some(0.5));
/// assert_eq!(f1.macro_f1(ZeroDivision::Exclude), Some(0.75));
/// // Summed: tp 3, fp 1, fn 1.
/// assert_eq!(f1.micro_f1(), Some(0.75));
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// C. J. van Rijsbergen, "Information Retrieval", 2nd ed., Butterworths
/// 1979, chapter 7; sklearn, `sklearn.metrics.f1_score`
/// (<https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html>).
pub fn multilabel_f1<'t, F: Float>(
    targets: impl Into<EvalTarget<'t, F>>,
    decisions: ArrayView2<'_, bool>,
) -> Result<F1Scores> {
    let targets = targets.into();
    expect_nonempty("decisions", decisions.shape(), 0, "sample")?;
    expect_nonempty("decisions", decisions.shape(), 1, "class")?;
    let (n, classes) = decisions.dim();
    targets.check(n, classes)?;
    let mut scores = F1Scores::zeros(classes);
    for ((i, c), &predicted) in decisions.indexed_iter() {
        scores.count(c, predicted, targets.is_positive(i, c));
    }
    Ok(scores)
}

/// F1 scores of multi-class predictions: one predicted label per sample
/// against one true label, each class read against the rest.
///
/// # Formula
/// See [`F1Scores`]: a correct prediction is a true positive of its class;
/// a wrong one a false positive of the predicted class and a false
/// negative of the true one. The micro F1 is therefore the accuracy.
///
/// # Shapes
/// - labels and predicted: `(N)`, any integer types, values in
///   `0..num_classes` (predict with [`argmax_predictions`] from scores).
/// - `num_classes`: `C`, which fixes the number of per-class values (a
///   class absent from both arrays is undefined, see [`ZeroDivision`]).
///
/// # Errors
/// `num_classes` 0, no labels, predictions of another length, a label or
/// prediction out of `0..num_classes` (naming `labels` or `predicted`).
///
/// # Examples
/// ```
/// use classloss::{multiclass_f1, ZeroDivision};
/// use ndarray::array;
///
/// let labels = array![0_i64, 0, 1, 2, 2, 2];
/// let predicted = array![0_i64, 1, 1, 2, 2, 0];
/// let f1 = multiclass_f1(&labels, &predicted, 4)?;
/// // Class 0: tp 1, fp 1, fn 1; class 1: tp 1, fp 1; class 2: tp 2, fn 1.
/// assert_eq!(f1.per_class().per_class(), &[Some(0.5), Some(2.0 / 3.0), Some(0.8), None]);
/// assert_eq!(f1.micro_f1(), Some(4.0 / 6.0));
/// let macro_f1 = f1.macro_f1(ZeroDivision::Exclude).unwrap();
/// assert!((macro_f1 - (0.5 + 2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-15);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// As [`multilabel_f1`]; sklearn's `f1_score(labels, predicted,
/// labels=range(C), average=...)`.
pub fn multiclass_f1<'l, 'p>(
    labels: impl Into<Labels<'l>>,
    predicted: impl Into<Labels<'p>>,
    num_classes: usize,
) -> Result<F1Scores> {
    let (labels, predicted) = (labels.into(), predicted.into());
    check_option(
        "num_classes",
        num_classes as f64,
        "at least 1 class",
        num_classes > 0,
    )?;
    expect_nonempty("labels", labels.shape(), 0, "sample")?;
    labels.check("labels", num_classes, None)?;
    predicted.expect_shape("predicted", labels.shape())?;
    predicted.check("predicted", num_classes, None)?;
    let mut scores = F1Scores::zeros(num_classes);
    for i in 0..labels.len() {
        let (y, p) = (labels.class(i), predicted.class(i));
        scores.count(p, true, y == p);
        if y != p {
            scores.count(y, false, true);
        }
    }
    Ok(scores)
}

/// The predicted class of each row of `(N, C)` scores: its argmax, the
/// first on a tie (as `torch.argmax` and [`crate::ZeroOne`]).
///
/// # Errors
/// Empty scores, a NaN or infinite score (naming `scores`).
///
/// # Examples
/// ```
/// use classloss::argmax_predictions;
/// use ndarray::array;
///
/// let logits = array![[0.1_f32, 2.0, -1.0], [3.0, 3.0, 0.0]];
/// assert_eq!(argmax_predictions(&logits)?, array![1_usize, 0]);
/// # Ok::<(), classloss::Error>(())
/// ```
pub fn argmax_predictions<'s, F: Float>(
    scores: impl Into<ArrayView2<'s, F>>,
) -> Result<ndarray::Array1<usize>> {
    let scores = scores.into();
    check_scores(&scores)?;
    Ok(scores
        .axis_iter(Axis(0))
        .map(|row: ArrayView1<'_, F>| argmax(row))
        .collect())
}
