//! Multi-label decisions from scores and thresholds, and the thresholds
//! that maximize F1 on held-out scores ("BCE with thresholding").

use ndarray::{Array1, Array2, ArrayView2, Zip};

use crate::base::validate::{check_class_vector, check_option};
use crate::eval::sweep::{TieGroup, class_groups, tie_groups, totals};
use crate::eval::target::{EvalTarget, check_scores, check_scores_and_targets};
use crate::{Float, Result};

/// Decision thresholds in the scores' units: a class is predicted where
/// `score >= threshold`.
#[derive(Clone, Debug, PartialEq)]
pub enum Thresholds<F> {
    /// One threshold for every class.
    Shared(F),
    /// One threshold per class, `(C)`.
    PerClass(Array1<F>),
}

impl<F: Float> Thresholds<F> {
    /// The threshold of class `c`; `None` for a class beyond a per-class
    /// array.
    pub fn for_class(&self, c: usize) -> Option<F> {
        match self {
            Thresholds::Shared(t) => Some(*t),
            Thresholds::PerClass(t) => t.get(c).copied(),
        }
    }

    /// One threshold per class for `classes` classes, none NaN.
    fn check(&self, classes: usize) -> Result<()> {
        let first_nan = match self {
            Thresholds::Shared(t) => Some(*t).filter(|t| t.is_nan()),
            Thresholds::PerClass(t) => {
                check_class_vector("thresholds", t.len(), classes)?;
                t.iter().copied().find(|t| t.is_nan())
            }
        };
        first_nan.map_or(Ok(()), |t| {
            check_option(
                "thresholds",
                t.as_f64(),
                "a number (not NaN; +inf predicts nothing, -inf everything)",
                false,
            )
        })
    }
}

/// How [`pick_f1_thresholds`] picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThresholdMode {
    /// One threshold per class, each maximizing its class's F1 (together
    /// they maximize the macro F1 over per-class thresholds).
    #[default]
    PerClass,
    /// One threshold for all classes, maximizing the micro F1 (the F1 of
    /// all labels pooled).
    Shared,
}

/// Multi-label decisions: class `c` of sample `i` is predicted where
/// `scores[[i, c]] >= threshold_c`.
///
/// The thresholds are in the scores' units: probabilities (0.5 is the
/// usual default) or logits (0 is the same decision as probability 0.5).
/// `>=` is sklearn's convention for `precision_recall_curve`, under which
/// the thresholds [`pick_f1_thresholds`] returns are scores of the
/// held-out set. (The Hamming loss, [`crate::Hamming`], predicts where
/// `sigmoid(x) > threshold`: a score exactly at the threshold is
/// predicted here and not there.)
///
/// # Shapes
/// scores `(N, C)`; thresholds shared or `(C)`; result `(N, C)`.
///
/// # Errors
/// Empty scores, a NaN or infinite score, per-class thresholds of a length
/// other than `C`, a NaN threshold.
///
/// # Examples
/// ```
/// use classloss::{multilabel_predictions, Thresholds};
/// use ndarray::array;
///
/// let probs = array![[0.9_f64, 0.4], [0.5, 0.7]];
/// let at_half = multilabel_predictions(&probs, &Thresholds::Shared(0.5))?;
/// assert_eq!(at_half, array![[true, false], [true, true]]);
/// let per_class = multilabel_predictions(&probs, &Thresholds::PerClass(array![0.95, 0.3]))?;
/// assert_eq!(per_class, array![[false, true], [false, true]]);
/// # Ok::<(), classloss::Error>(())
/// ```
pub fn multilabel_predictions<'s, F: Float>(
    scores: impl Into<ArrayView2<'s, F>>,
    thresholds: &Thresholds<F>,
) -> Result<Array2<bool>> {
    let scores = scores.into();
    check_scores(&scores)?;
    thresholds.check(scores.ncols())?;
    let mut decisions = Array2::from_elem(scores.raw_dim(), false);
    for (c, (mut out, column)) in decisions
        .columns_mut()
        .into_iter()
        .zip(scores.columns())
        .enumerate()
    {
        let t = thresholds.for_class(c).unwrap_or(F::infinity());
        Zip::from(&mut out)
            .and(&column)
            .for_each(|o, &s| *o = s >= t);
    }
    Ok(decisions)
}

/// The thresholds that maximize F1 on held-out scores and targets, exactly:
/// "BCE with thresholding" for a multi-label model trained with
/// [`crate::BceWithLogits`] (or any per-class scores).
///
/// Pick on a validation split, then predict on new data with
/// [`multilabel_predictions`] and score with [`crate::multilabel_f1`]. The
/// thresholds are in the scores' units: pass logits and get logit
/// thresholds, or probabilities and get probability thresholds (the
/// decisions are the same, as the sigmoid is increasing).
///
/// # Method
/// Every distinct score `s` is a candidate threshold (predict the samples
/// scoring `>= s`), and these are all the decisions a threshold can make
/// but predicting nothing. The scores are sorted once, highest first, and
/// swept, counting true and false positives; equal scores are one
/// candidate. F1 values are compared exactly, as fractions of integers:
/// ```text
/// F1(s) = 2 tp(s) / (tp(s) + fp(s) + P)       P = the positives
/// ```
/// Tie-break: of the candidates with the same (maximal) F1, the highest
/// threshold, the one that predicts least. A class without a positive
/// (and, in `Shared` mode, a held-out set without one) gets threshold
/// `+inf`: every threshold that predicts something has F1 0 there, so the
/// pick predicts nothing.
///
/// # Shapes
/// - scores `(N, C)`; targets [`EvalTarget`]: `(N, C)` 0/1 indicators, or
///   `(N)` labels read one class against the rest.
/// - result: [`Thresholds::PerClass`] `(C)` or [`Thresholds::Shared`], by
///   `mode`.
///
/// # Errors
/// Empty scores, a NaN or infinite score, targets of another shape, a
/// target other than 0 or 1, a label out of `0..C`.
///
/// # Examples
/// ```
/// use classloss::{multilabel_f1, multilabel_predictions, pick_f1_thresholds, ThresholdMode, Thresholds};
/// use ndarray::array;
///
/// let logits = array![[2.2_f64, 0.3], [1.4, -0.5], [-0.4, 1.1], [-2.2, -1.0]];
/// let targets = array![[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]];
/// let picked = pick_f1_thresholds(&logits, &targets, ThresholdMode::PerClass)?;
/// // Class 0: at 2.2, F1 = 2 / (1 + 0 + 2) = 2/3; at -2.2 (everything), 4 / 6 = 2/3
/// // too: the tie goes to the higher threshold. Class 1: at -0.5,
/// // F1 = 4 / (2 + 1 + 2) = 0.8.
/// assert_eq!(picked, Thresholds::PerClass(array![2.2, -0.5]));
/// let decisions = multilabel_predictions(&logits, &picked)?;
/// let f1 = multilabel_f1(&targets, decisions.view())?;
/// assert_eq!(f1.per_class().per_class(), &[Some(2.0 / 3.0), Some(0.8)]);
/// assert_eq!(f1.micro_f1(), Some(0.75));
///
/// // One threshold for all maximizes the micro F1 of the pooled labels:
/// // here predicting everything, 8 / 12, below the per-class pick's 6 / 8.
/// let shared = pick_f1_thresholds(&logits, &targets, ThresholdMode::Shared)?;
/// assert_eq!(shared, Thresholds::Shared(-2.2));
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// Z. C. Lipton, C. Elkan and B. Naryanaswamy, "Optimal thresholding of
/// classifiers to maximize F1 measure", ECML PKDD 2014,
/// <https://arxiv.org/abs/1402.1892>; R.-E. Fan and C.-J. Lin, "A study on
/// threshold selection for multi-label classification", 2007.
pub fn pick_f1_thresholds<'s, 't, F: Float>(
    scores: impl Into<ArrayView2<'s, F>>,
    targets: impl Into<EvalTarget<'t, F>>,
    mode: ThresholdMode,
) -> Result<Thresholds<F>> {
    let (scores, targets) = (scores.into(), targets.into());
    check_scores_and_targets(&scores, &targets)?;
    Ok(match mode {
        ThresholdMode::PerClass => Thresholds::PerClass(
            (0..scores.ncols())
                .map(|c| best_f1_threshold(&class_groups(&scores, &targets, c)))
                .collect(),
        ),
        ThresholdMode::Shared => {
            let pooled = scores
                .indexed_iter()
                .map(|((i, c), &s)| (s, targets.is_positive(i, c)))
                .collect();
            Thresholds::Shared(best_f1_threshold(&tie_groups(pooled)))
        }
    })
}

/// The highest score among those whose `>=` decision has the largest F1;
/// `+inf` without a positive.
fn best_f1_threshold<F: Float>(groups: &[TieGroup<F>]) -> F {
    let (positives, _) = totals(groups);
    // (threshold, 2 tp, tp + fp + P): predicting nothing has F1 0.
    let mut best = (F::infinity(), 0_u128, 1_u128);
    let (mut tp, mut fp) = (0_u128, 0_u128);
    for g in groups {
        tp += g.positives as u128;
        fp += g.negatives as u128;
        let (num, den) = (2 * tp, tp + fp + positives as u128);
        // Strictly better only: on a tie the earlier, higher threshold stays.
        if num * best.2 > best.1 * den {
            best = (g.score, num, den);
        }
    }
    best.0
}
