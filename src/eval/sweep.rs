//! The one sweep behind ROC AUC, average precision and the F1 threshold
//! picker: scores sorted once, highest first, equal scores gathered into
//! one group (one threshold), with the positives and negatives of each.

use std::cmp::Ordering;

use ndarray::ArrayView2;

use crate::Float;
use crate::eval::target::EvalTarget;

/// The samples that share one score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TieGroup<F> {
    /// The score they share.
    pub score: F,
    /// How many of them are positives.
    pub positives: usize,
    /// How many of them are negatives.
    pub negatives: usize,
}

/// Groups of equal scores, highest score first, from `(score, positive)`
/// pairs of finite scores.
pub(crate) fn tie_groups<F: Float>(mut pairs: Vec<(F, bool)>) -> Vec<TieGroup<F>> {
    // partial_cmp, not total_cmp: -0.0 and 0.0 are one score, one group.
    pairs.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
    let mut groups: Vec<TieGroup<F>> = Vec::new();
    for (score, positive) in pairs {
        match groups.last_mut() {
            Some(g) if g.score == score => {
                g.positives += usize::from(positive);
                g.negatives += usize::from(!positive);
            }
            _ => groups.push(TieGroup {
                score,
                positives: usize::from(positive),
                negatives: usize::from(!positive),
            }),
        }
    }
    groups
}

/// The tie groups of class `c`'s column, for checked scores and targets.
pub(crate) fn class_groups<F: Float>(
    scores: &ArrayView2<'_, F>,
    targets: &EvalTarget<'_, F>,
    c: usize,
) -> Vec<TieGroup<F>> {
    tie_groups(
        scores
            .column(c)
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, targets.is_positive(i, c)))
            .collect(),
    )
}

/// The positives and negatives over all groups.
pub(crate) fn totals<F>(groups: &[TieGroup<F>]) -> (usize, usize) {
    groups
        .iter()
        .fold((0, 0), |(p, n), g| (p + g.positives, n + g.negatives))
}
