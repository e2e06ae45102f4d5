//! The soft margin loss: the two-class logistic loss on signed labels.

use ndarray::{Dimension, Ix2};

use crate::base::loss::{Call, Compute, Elementwise};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_values;
use crate::engine::sigmoid_elementwise::{Logistic, LogitTerm, elementwise_logits, run_binary};
use crate::engine::signed_margins::LabelConvention;
use crate::{Float, Result};

loss_options! {
    /// The soft margin loss `log(1 + exp(-y x))` of a real score `x` and a
    /// label `y` in `{-1, +1}`, element by element: PyTorch's
    /// `nn.SoftMarginLoss`, the logistic loss written for signed labels.
    ///
    /// It is BCE with logits on the target `(1 + y) / 2`: smooth, convex,
    /// growing linearly (not exponentially, as [`crate::Exponential`]) with
    /// the violation, so one wrong confident score does not swamp a batch.
    /// Use it where the data's labels are `-1`/`+1` (SVM-style data, the
    /// margin losses' convention); with 0/1 targets and class weights,
    /// [`crate::BceWithLogits`] says the same with more options.
    ///
    /// # Formula
    /// ```text
    /// l = log(1 + exp(-y x)) = softplus(-y x)      d l / d x = -y sigmoid(-y x)
    /// ```
    /// computed from `exp(-|x|)`, so no finite score overflows.
    ///
    /// # Shapes
    /// - scores: any shape with at least one element, `(N, K)` for
    ///   [`SoftMargin::new`]; labels: the scores' shape and element type.
    /// - per-sample: one value per element; gradient: the scores' shape.
    /// - `Mean` divides by the number of elements (PyTorch's mean).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `label_convention`: [`LabelConvention::PlusMinusOne`] (default) or
    ///   [`LabelConvention::ZeroOne`] (0/1 labels, `0` read as `-1`).
    ///
    /// # Errors
    /// An empty input, labels or a gradient buffer of another shape, and a
    /// label outside the convention's two values
    /// ([`crate::Error::InvalidTarget`] naming `labels` and its position).
    /// Non-finite scores are not checked and propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, SoftMargin};
    /// use ndarray::array;
    ///
    /// let scores = array![[0.0_f64, 2.0], [-1.0, 3.0]];
    /// let labels = array![[1.0, -1.0], [-1.0, 1.0]];
    /// let loss = SoftMargin::new();
    /// let softplus = |z: f64| z.exp().ln_1p();
    /// let want = (softplus(0.0) + softplus(2.0) + softplus(-1.0) + softplus(-3.0)) / 4.0;
    /// let (value, grad) = loss.forward_backward(scores.view(), labels.view())?;
    /// assert!((value - want).abs() < 1e-15);
    /// // d/dx of softplus(-y x) / 4 at x = 0, y = 1: -sigmoid(0) / 4.
    /// assert!((grad[[0, 0]] + 0.125).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.SoftMarginLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.SoftMarginLoss.html>.
    /// The logistic loss of a margin: T. Hastie, R. Tibshirani and J.
    /// Friedman, *The Elements of Statistical Learning*, 2nd ed., Springer,
    /// 2009, section 10.6.
    pub struct SoftMargin<F: Float, D: Dimension = Ix2> {
        /// How labels are written.
        label_convention: LabelConvention = LabelConvention::PlusMinusOne,
            /// Sets how labels are written (default [`LabelConvention::PlusMinusOne`]).
            set with_label_convention;
    }

    /// The soft margin loss on scores of any rank `>= 1`, picked with the
    /// type, for example `SoftMargin::<f32, ndarray::Ix1>::spatial()`. Mean
    /// reduction, labels in `{-1, +1}`.
    fn spatial();
    /// The soft margin loss on `(N, K)` scores: mean reduction, labels in
    /// `{-1, +1}`.
    fn new() at Ix2;
}

impl<F: Float, D: Dimension> Compute<F> for SoftMargin<F, D> {
    type Sig = Elementwise<D>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let convention = self.label_convention;
        run_binary(["scores", "labels"], self.reduction, call, None, |e| {
            check_values("labels", &e.targets, convention.expected(), |v| {
                convention.accepts(v)
            })?;
            elementwise_logits(
                e.input,
                e.targets,
                e.weight,
                None,
                e.grad,
                e.per,
                &SoftMarginTerm(convention),
            )
        })
    }
}

/// One element of the soft margin loss: `softplus(-y x)`.
#[derive(Clone, Copy)]
struct SoftMarginTerm(LabelConvention);

impl LogitTerm for SoftMarginTerm {
    /// Labels of `±1` (or `0`/`1`), which [`SoftMargin`] checks itself.
    const TARGETS_IN_UNIT: bool = false;

    #[inline(always)]
    fn term<T: Float>(&self, _x: T, label: T, w: T, _pw: T, logistic: Logistic<T>) -> (T, T) {
        let s = logistic.terms;
        if self.0.sign(label) > T::zero() {
            (w * s.softplus_neg, -(w * s.sigmoid_neg))
        } else {
            (w * s.softplus, w * s.sigmoid)
        }
    }
}
