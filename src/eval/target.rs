//! What the evaluation metrics compare scores with: multi-label indicators
//! or multi-class labels, both read one class against the rest.

use ndarray::{ArrayBase, ArrayView1, ArrayView2, Data, Ix1, Ix2};

use crate::base::labels::{Label, Labels};
use crate::base::validate::{check_input_values, check_values, expect_nonempty, expect_shape};
use crate::{Float, Result};

/// The ground truth of an evaluation metric on `(N, C)` scores, read one
/// class against the rest: class `c` of sample `i` is a positive when
/// `targets[[i, c]] == 1` (multi-label) or when `labels[i] == c`
/// (multi-class).
///
/// Neither needs wrapping: an `(N, C)` array or view of the scores' float
/// type converts into [`EvalTarget::Indicators`], and an `(N)` array or
/// view of labels of any integer type into [`EvalTarget::Labels`], so
/// `roc_auc(&scores, &targets)` and `roc_auc(&scores, &labels)` both work.
#[derive(Debug)]
pub enum EvalTarget<'a, F> {
    /// Multi-label: `(N, C)`, each value 0 or 1 (1: the sample has the
    /// class).
    Indicators(ArrayView2<'a, F>),
    /// Multi-class: `(N)` labels in `0..C`, any integer type.
    Labels(Labels<'a, Ix1>),
}

impl<F> Clone for EvalTarget<'_, F> {
    fn clone(&self) -> Self {
        match self {
            EvalTarget::Indicators(t) => EvalTarget::Indicators(*t),
            EvalTarget::Labels(l) => EvalTarget::Labels(l.clone()),
        }
    }
}

impl<'a, F> From<ArrayView2<'a, F>> for EvalTarget<'a, F> {
    fn from(targets: ArrayView2<'a, F>) -> Self {
        EvalTarget::Indicators(targets)
    }
}

impl<'a, F, S: Data<Elem = F>> From<&'a ArrayBase<S, Ix2>> for EvalTarget<'a, F> {
    fn from(targets: &'a ArrayBase<S, Ix2>) -> Self {
        EvalTarget::Indicators(targets.view())
    }
}

impl<'a, F> From<Labels<'a, Ix1>> for EvalTarget<'a, F> {
    fn from(labels: Labels<'a, Ix1>) -> Self {
        EvalTarget::Labels(labels)
    }
}

impl<'a, F, L: Label> From<ArrayView1<'a, L>> for EvalTarget<'a, F> {
    fn from(labels: ArrayView1<'a, L>) -> Self {
        EvalTarget::Labels(labels.into())
    }
}

impl<'a, F, L: Label, S: Data<Elem = L>> From<&'a ArrayBase<S, Ix1>> for EvalTarget<'a, F> {
    fn from(labels: &'a ArrayBase<S, Ix1>) -> Self {
        EvalTarget::Labels(labels.into())
    }
}

impl<F: Float> EvalTarget<'_, F> {
    /// Checks the targets against `(rows, classes)`: indicators of that
    /// shape, each 0 or 1; or `rows` labels in `0..classes`.
    pub(crate) fn check(&self, rows: usize, classes: usize) -> Result<()> {
        match self {
            EvalTarget::Indicators(t) => {
                expect_shape("targets", t.shape(), &[rows, classes])?;
                check_values("targets", t, "0 or 1", |v| v == F::zero() || v == F::one())
            }
            EvalTarget::Labels(l) => l.check_rows(rows, classes),
        }
    }

    /// Whether class `c` of sample `i` is a positive, for checked targets.
    #[inline]
    pub(crate) fn is_positive(&self, i: usize, c: usize) -> bool {
        match self {
            EvalTarget::Indicators(t) => t[[i, c]] == F::one(),
            EvalTarget::Labels(l) => l.class(i) == c,
        }
    }
}

/// `(N, C)` scores with at least one sample and one class, every score
/// finite, and targets that fit them.
pub(crate) fn check_scores_and_targets<F: Float>(
    scores: &ArrayView2<'_, F>,
    targets: &EvalTarget<'_, F>,
) -> Result<()> {
    check_scores(scores)?;
    targets.check(scores.nrows(), scores.ncols())
}

/// `(N, C)` scores with at least one sample and one class, every score
/// finite: a NaN or infinite score is a bug upstream that a ranking would
/// otherwise hide (a NaN has no place in the order).
pub(crate) fn check_scores<F: Float>(scores: &ArrayView2<'_, F>) -> Result<()> {
    expect_nonempty("scores", scores.shape(), 0, "sample")?;
    expect_nonempty("scores", scores.shape(), 1, "class")?;
    check_input_values("scores", scores, "a finite score", |v| v.is_finite())
}
