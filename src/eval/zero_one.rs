//! The 0-1 loss: whether the predicted class (the argmax) is wrong.

use ndarray::{ArrayView1, Axis};

use crate::base::loss::{Call, Compute, NoGradient, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::check_scores;
use crate::{Float, Result};

loss_options! {
    /// The 0-1 loss of a classifier: 1 for each sample whose highest logit is
    /// not at its label, 0 otherwise; its mean is the error rate.
    ///
    /// Use it to evaluate, not to train: it is piecewise constant in the
    /// logits, so it has no useful gradient, and it deliberately does not
    /// implement [`crate::Differentiable`]. Train with a surrogate
    /// ([`crate::CrossEntropy`], a margin loss) and report this one.
    ///
    /// # Formula
    /// ```text
    /// l_i = 0 if argmax_c x_ic == y_i, else 1
    /// ```
    /// Ties go to the lowest index, as `torch.argmax`: a row `[1, 1, 0]`
    /// predicts class 0, so it is an error for label 1. A NaN logit counts as
    /// the largest value, also as `torch.argmax` (the first NaN of a row is its
    /// prediction), so a row with a NaN is an error unless its label is there.
    ///
    /// # Shapes
    /// - logits: `(N, C)` (any scores whose argmax is the prediction:
    ///   logits, probabilities, margins).
    /// - labels: `(N)`, values in `0..C`.
    /// - per-sample: `(N)` of 0s and 1s.
    /// - `Mean` divides by `N` (the error rate); `Sum` is the number of errors;
    ///   `None` gives the 0/1 values from `per_sample` and their sum (the
    ///   count) from `forward`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    ///
    /// # Errors
    /// An empty batch or class axis, labels of a length other than `N`, a label
    /// `>= C`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Loss, Reduction, ZeroOne};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0]];
    /// let labels = array![0_usize, 1, 2];
    /// // Row 1 ties between classes 0 and 1: class 0 wins, so it is an error.
    /// let rate = ZeroOne::new().forward(logits.view(), labels.view())?;
    /// assert!((rate - 2.0 / 3.0).abs() < 1e-15);
    /// let per = ZeroOne::new().per_sample(logits.view(), labels.view())?;
    /// assert_eq!(per, array![0.0, 1.0, 1.0]);
    /// let count: f64 = ZeroOne::new().with_reduction(Reduction::Sum).forward(logits.view(), labels.view())?;
    /// assert_eq!(count, 2.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// It has no gradient; asking for one does not compile:
    /// ```compile_fail,E0599
    /// use classloss::{Differentiable, ZeroOne};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0]];
    /// let labels = array![0_usize];
    /// let _grad = ZeroOne::new().backward(logits.view(), labels.view());
    /// ```
    ///
    /// # References
    /// The error rate of a classifier; see for example T. Hastie, R. Tibshirani,
    /// J. Friedman, "The Elements of Statistical Learning", 2nd ed., Springer
    /// 2009, section 2.4 (<https://hastie.su.domains/ElemStatLearn/>). Argmax tie
    /// rule: PyTorch, `torch.argmax`
    /// (<https://pytorch.org/docs/stable/generated/torch.argmax.html>).
    #[derive(Copy, PartialEq, Eq)]
    pub struct ZeroOne {}

    /// The 0-1 loss with mean reduction (the error rate). It works with
    /// `f32` and `f64` logits alike: it has no options of the element type.
    fn new();
}

impl<F: Float> Compute<F> for ZeroOne {
    type Sig = ScoresAndLabels<NoGradient>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: labels,
            grad: _no_grad,
            mut per,
        } = call;
        check_scores(&logits, &[], None)?;
        labels.check_rows(logits.nrows(), logits.ncols())?;
        let mut errors = 0_usize;
        for (i, row) in logits.axis_iter(Axis(0)).enumerate() {
            let wrong = argmax(row) != labels.class(i);
            errors += usize::from(wrong);
            if let Some(p) = per.as_mut() {
                p[i] = if wrong { F::one() } else { F::zero() };
            }
        }
        Ok(Totals {
            sum: Sum {
                total: errors as f64,
                ..Sum::default()
            },
            divisor: logits.nrows() as f64,
            what: "logits",
        })
    }
}

/// The index of the largest value of a non-empty row: the first one on a
/// tie, the first NaN if there is one (both as `torch.argmax`).
pub(crate) fn argmax<F: Float>(row: ArrayView1<'_, F>) -> usize {
    let mut best = 0;
    let mut best_value = row[0];
    for (j, &v) in row.iter().enumerate().skip(1) {
        if best_value.is_nan() {
            break;
        }
        if v > best_value || v.is_nan() {
            best = j;
            best_value = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::argmax;
    use ndarray::array;

    #[test]
    fn argmax_takes_the_first_maximum_and_the_first_nan() {
        assert_eq!(argmax(array![1.0_f64, 3.0, 3.0, 2.0].view()), 1);
        assert_eq!(argmax(array![5.0_f32].view()), 0);
        assert_eq!(argmax(array![1.0_f64, f64::NAN, 9.0, f64::NAN].view()), 1);
        assert_eq!(argmax(array![f64::NAN, 9.0].view()), 0);
        assert_eq!(argmax(array![-f64::INFINITY, -1e300].view()), 1);
    }
}
