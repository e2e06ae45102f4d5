//! Cross-entropy from logits, as PyTorch's `nn.CrossEntropyLoss`.

use std::marker::PhantomData;

use ndarray::{
    Array, Array1, ArrayView, ArrayView1, ArrayViewMut, Axis, Dimension, Ix1, Ix2, RemoveAxis,
};

use crate::base::validate::{
    check_labels, check_values, check_weights, expect_min_rank, expect_nonempty, expect_shape,
    finish_checked, is_probability, unit_interval,
};
use crate::engine::softmax_columns::{label_columns, LabelTerms};
use crate::engine::softmax_rows::{
    linear_target_grad, matrix_views, one_hot_grad, smoothed_grad, softmax_rows, softmax_rows_2d,
    Row, RowGrad,
};
use crate::{Differentiable, Error, Float, Loss, Reduction, Result};

/// What cross-entropy compares the logits with: hard class labels or a
/// probability per class.
///
/// For logits of shape `(N, C, d1, .., dk)`, labels have shape
/// `(N, d1, .., dk)` and probabilities the logits' shape.
#[derive(Debug)]
pub enum ClassTarget<'a, F, D: Dimension> {
    /// One class index in `0..C` per sample (or the `ignore_index`).
    Labels(ArrayView<'a, usize, D::Smaller>),
    /// A probability in `[0, 1]` for every class of every sample. Rows need
    /// not sum to 1 (as in PyTorch); the loss is `-sum_c w_c q_c log p_c`.
    Probs(ArrayView<'a, F, D>),
}

impl<F, D: Dimension> Clone for ClassTarget<'_, F, D> {
    fn clone(&self) -> Self {
        match self {
            ClassTarget::Labels(l) => ClassTarget::Labels(l.clone()),
            ClassTarget::Probs(p) => ClassTarget::Probs(p.clone()),
        }
    }
}

/// Cross-entropy between `softmax(logits)` and class labels or class
/// probabilities, with PyTorch's options and PyTorch's exact `mean`.
///
/// Use it for single-label classification: balanced data as it is, class
/// `weight`s for imbalance, `label_smoothing` against over-confidence,
/// `ignore_index` for unlabeled positions (segmentation borders, padding).
///
/// # Formula
/// ```text
/// log p_c  = x_c - logsumexp(x)                         (computed in log space)
/// labels:  l_i = (1 - eps) w_{y_i} (-log p_{y_i}) + (eps / C) sum_c w_c (-log p_c)
///          l_i = 0 where y_i == ignore_index
/// probs:   l_i = -sum_c w_c q'_c log p_c,  q' = (1 - eps) q + eps / C
/// gradient of l_i: dl_i/dx_c = A p_c - a_c, where l_i = -sum_c a_c log p_c, A = sum_c a_c
/// ```
/// `w` is 1 without class weights; `eps` is `label_smoothing`.
///
/// # Shapes
/// - logits: `(N, C)` with [`CrossEntropy::new`], or `(N, C, d1, .., dk)`
///   with [`CrossEntropy::spatial`] (class axis 1, as in PyTorch).
/// - target: [`ClassTarget::Labels`] `(N, d1, .., dk)` or
///   [`ClassTarget::Probs`] shaped like the logits.
/// - per-sample: `(N, d1, .., dk)`; gradient: the logits' shape.
/// - `Mean` divides, for labels, by the sum of `w_{y_i}` over the samples
///   that are not ignored (the count of them without weights); for
///   probabilities, by the number of positions `N * d1 * .. * dk`.
///   When that divisor is 0 (every label ignored, or every counted weight
///   zero) the mean is 0 with a zero gradient, where PyTorch returns NaN.
///
/// # Options
/// - `reduction`: `Mean` (default), `Sum`, `None`.
/// - `weight`: one finite weight `>= 0` per class (default: none).
/// - `ignore_index`: a label value whose samples count for nothing (default:
///   none; PyTorch's default of -100 never matches a `usize` label).
/// - `label_smoothing`: `eps` in `[0, 1]` (default 0), PyTorch's convention
///   `(1 - eps) one_hot + eps / C`. For the `eps / (C - 1)` convention see
///   [`crate::LabelSmoothing`].
///
/// # Errors
/// Rank below 2, an empty batch or class axis, labels or probabilities of
/// the wrong shape, a label `>= C` that is not the `ignore_index`, a
/// probability outside `[0, 1]`, a `weight` whose length is not `C`, a
/// gradient buffer of the wrong shape.
///
/// # Examples
/// ```
/// use classloss::{ClassTarget, CrossEntropy, Differentiable, Loss};
/// use ndarray::array;
///
/// let logits = array![[2.0_f64, 1.0, 0.1]];
/// let labels = array![0_usize];
/// let ce = CrossEntropy::new();
/// let loss = ce.forward(logits.view(), ClassTarget::Labels(labels.view()))?;
/// assert!((loss - 0.4170300162778335).abs() < 1e-12);
///
/// // Fused value and gradient into a reused buffer.
/// let mut grad = ndarray::Array2::zeros((1, 3));
/// let same = ce.forward_backward_into(logits.view(), ClassTarget::Labels(labels.view()), grad.view_mut())?;
/// assert_eq!(loss, same);
/// assert!(grad.sum().abs() < 1e-15); // rows of p - one_hot sum to zero
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// PyTorch, `torch.nn.CrossEntropyLoss`
/// (<https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>).
/// Label smoothing: C. Szegedy et al., "Rethinking the Inception
/// Architecture for Computer Vision", CVPR 2016, <https://arxiv.org/abs/1512.00567>.
#[derive(Clone, Debug)]
pub struct CrossEntropy<F, D = Ix2> {
    reduction: Reduction,
    weight: Option<Array1<F>>,
    ignore_index: Option<usize>,
    label_smoothing: f64,
    _rank: PhantomData<fn() -> D>,
}

impl<F: Float> CrossEntropy<F, Ix2> {
    /// Cross-entropy on `(N, C)` logits: mean reduction, no weights, no
    /// ignored label, no smoothing.
    pub fn new() -> Self {
        Self::spatial()
    }
}

impl<F: Float> Default for CrossEntropy<F, Ix2> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Float, D: RemoveAxis> CrossEntropy<F, D> {
    /// Cross-entropy on logits of any rank `>= 2` with the class axis at 1,
    /// `(N, C, d1, .., dk)`; pick the rank with the type, for example
    /// `CrossEntropy::<f32, ndarray::Ix4>::spatial()` for images or `IxDyn`.
    pub fn spatial() -> Self {
        CrossEntropy {
            reduction: Reduction::Mean,
            weight: None,
            ignore_index: None,
            label_smoothing: 0.0,
            _rank: PhantomData,
        }
    }

    /// Sets the reduction (default `Mean`).
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Sets one weight per class (finite, `>= 0`; default none).
    pub fn with_weight(mut self, weight: Array1<F>) -> Result<Self> {
        check_weights("weight", &weight.view())?;
        // Contiguous, so that the row kernels can read it as a slice.
        self.weight = Some(weight.as_standard_layout().into_owned());
        Ok(self)
    }

    /// Sets the label whose samples are ignored (default none).
    pub fn with_ignore_index(mut self, ignore_index: usize) -> Self {
        self.ignore_index = Some(ignore_index);
        self
    }

    /// Sets the label smoothing `eps` in `[0, 1]` (default 0).
    pub fn with_label_smoothing(mut self, eps: f64) -> Result<Self> {
        unit_interval("label_smoothing", eps)?;
        self.label_smoothing = eps;
        Ok(self)
    }

    /// The class weights, if any.
    pub fn weight(&self) -> Option<&Array1<F>> {
        self.weight.as_ref()
    }

    /// The ignored label, if any.
    pub fn ignore_index(&self) -> Option<usize> {
        self.ignore_index
    }

    /// The label smoothing `eps`.
    pub fn label_smoothing(&self) -> f64 {
        self.label_smoothing
    }

    /// Validates everything and runs the row loop; returns the reduced value.
    fn run(
        &self,
        logits: ArrayView<'_, F, D>,
        target: ClassTarget<'_, F, D>,
        mut grad: Option<ArrayViewMut<'_, F, D>>,
        mut per_row: Option<ArrayViewMut<'_, F, D::Smaller>>,
    ) -> Result<F> {
        let shape = logits.shape();
        expect_min_rank("logits", shape, 2)?;
        expect_nonempty("logits", shape, 0, "sample")?;
        expect_nonempty("logits", shape, 1, "class")?;
        let classes = shape[1];
        if let Some(w) = &self.weight {
            crate::base::validate::check_class_vector("weight", w.len(), classes)?;
        }
        if let Some(g) = &grad {
            expect_shape("grad", g.shape(), shape)?;
        }
        let positions = logits.len() / classes;
        if positions == 0 {
            return Err(Error::EmptyBatch {
                what: "logits",
                unit: "position",
                shape: crate::base::validate::fmt_shape(shape),
            });
        }

        let weight = self.weight.as_ref();
        let w = |c: usize| weight.map_or(F::one(), |w| w[c]);
        let eps = F::lit(self.label_smoothing);
        let hard = F::one() - eps;
        let off = eps / F::from_count(classes);

        match target {
            ClassTarget::Labels(labels) => {
                let row_shape = logits.raw_dim().remove_axis(Axis(1));
                expect_shape("labels", labels.shape(), row_shape.slice())?;
                check_labels("labels", &labels, classes, self.ignore_index)?;
                let ignore = self.ignore_index;
                let divisor: f64 = labels
                    .iter()
                    .filter(|&&y| Some(y) != ignore)
                    .map(|&y| w(y).as_f64())
                    .sum();
                // With tiny class weights (sub-normal ones, say) the mean's
                // factor 1 / divisor overflows, and the gradient would be
                // inf * 0. The mean is the same for weights scaled by any
                // power of two, and such a scaling is exact: rerun once with
                // the divisor brought into [1, 2). (Only the gradient needs
                // the factor; the rerun's divisor cannot overflow.)
                let inv = 1.0 / divisor;
                let overflows = !inv.is_finite() || !F::lit(inv).is_finite();
                if let (Reduction::Mean, true, true, Some(w)) =
                    (self.reduction, divisor > 0.0, overflows, weight)
                {
                    if grad.is_some() {
                        // Two factors: 2^e alone can overflow for e > 1023.
                        let e = -divisor.log2().floor();
                        let (k1, k2) = ((e / 2.0).floor().exp2(), (e - (e / 2.0).floor()).exp2());
                        let rescaled = CrossEntropy {
                            weight: Some(w.mapv(|v| F::lit(v.as_f64() * k1 * k2))),
                            ..self.clone()
                        };
                        let labels = ClassTarget::Labels(labels);
                        return rescaled.run(logits, labels, grad, per_row);
                    }
                }
                let scale: F = self.reduction.grad_scale(divisor);
                let w_sum = weight.map_or(F::from_count(classes), |w| w.sum());
                let w_slice = weight.and_then(|w| w.as_slice());
                let smoothing = self.label_smoothing > 0.0;
                // Kept for the overflow check after the loop.
                let per_sample_mode = per_row.is_some();
                let f = |y: usize, row: &Row<'_, F>, g: Option<RowGrad<'_, F>>| {
                    if Some(y) == ignore {
                        if let Some(g) = g {
                            g.zero();
                        }
                        return F::zero();
                    }
                    let wy = w(y);
                    if !smoothing {
                        if let Some(g) = g {
                            one_hot_grad(g, y, scale * wy);
                        }
                        return -wy * row.log_p(y);
                    }
                    // The target is off * w_c plus hard * w_y on the label.
                    let total = hard * wy + off * w_sum;
                    match (weight, w_slice) {
                        (Some(_), None) => {
                            // Not reached: `with_weight` stores the weights contiguously.
                            let coef =
                                |c: usize| off * w(c) + if c == y { hard * wy } else { F::zero() };
                            if let Some(g) = g {
                                linear_target_grad(g, scale, total, coef);
                            }
                            row.weighted_nll(coef)
                        }
                        (_, slice) => {
                            if let Some(g) = g {
                                smoothed_grad(g, scale, total, off, slice, (y, hard * wy));
                            }
                            let ws = slice.map(|s| (s, w_sum));
                            -hard * wy * row.log_p(y) + off * row.nll_sum(ws)
                        }
                    }
                };
                let matrix = matrix_views(&logits, &mut grad, &mut per_row);
                let labels_1d = labels.view().into_dimensionality::<Ix1>().ok();
                let total = match (matrix, labels_1d) {
                    (Some((l, g, p)), Some(y)) => softmax_rows_2d(l, |i| y[i], g, p, f),
                    _ => {
                        let terms = LabelTerms {
                            weight: w_slice,
                            w_sum,
                            ignore,
                            hard,
                            off,
                            smoothing,
                            scale,
                        };
                        let contiguous = (weight.is_none() || w_slice.is_some())
                            && grad.as_ref().is_none_or(|g| g.is_standard_layout())
                            && per_row.as_ref().is_none_or(|p| p.is_standard_layout());
                        match (contiguous, logits.as_slice(), labels.as_slice()) {
                            (true, Some(x), Some(y)) => label_columns(
                                x,
                                y,
                                grad.as_mut().and_then(|g| g.as_slice_mut()),
                                per_row.as_mut().and_then(|p| p.as_slice_mut()),
                                (classes, positions / shape[0]),
                                &terms,
                            ),
                            _ => softmax_rows(
                                logits.clone(),
                                labels.iter().copied(),
                                grad,
                                per_row,
                                f,
                            ),
                        }
                    }
                };
                finish_checked(
                    self.reduction,
                    total,
                    divisor,
                    "logits",
                    &logits,
                    per_sample_mode,
                )
            }
            ClassTarget::Probs(probs) => {
                expect_shape("probs", probs.shape(), shape)?;
                check_values("probs", &probs, "a probability in [0, 1]", is_probability)?;
                let divisor = positions as f64;
                let scale: F = self.reduction.grad_scale(divisor);
                // Kept for the overflow check after the loop.
                let per_sample_mode = per_row.is_some();
                let f = |q: ArrayView1<'_, F>, row: &Row<'_, F>, g: Option<RowGrad<'_, F>>| {
                    let coef = |c: usize| w(c) * (hard * q[c] + off);
                    if let Some(g) = g {
                        let sum = (0..classes).fold(F::zero(), |acc, c| acc + coef(c));
                        linear_target_grad(g, scale, sum, coef);
                    }
                    row.weighted_nll(coef)
                };
                let matrix = matrix_views(&logits, &mut grad, &mut per_row);
                let probs_2d = probs.view().into_dimensionality::<Ix2>().ok();
                let total = match (matrix, probs_2d) {
                    (Some((l, g, p)), Some(q)) => softmax_rows_2d(l, |i| q.row(i), g, p, f),
                    _ => {
                        let rows = probs.lanes(Axis(1)).into_iter();
                        softmax_rows(logits.clone(), rows, grad, per_row, f)
                    }
                };
                finish_checked(
                    self.reduction,
                    total,
                    divisor,
                    "logits",
                    &logits,
                    per_sample_mode,
                )
            }
        }
    }
}

impl<F: Float, D: RemoveAxis> Loss<F> for CrossEntropy<F, D> {
    type Input<'a> = ArrayView<'a, F, D>;
    type Target<'a> = ClassTarget<'a, F, D>;
    type PerSample = Array<F, D::Smaller>;

    fn reduction(&self) -> Reduction {
        self.reduction
    }

    fn per_sample(
        &self,
        logits: Self::Input<'_>,
        target: Self::Target<'_>,
    ) -> Result<Self::PerSample> {
        let dim = if logits.ndim() >= 2 {
            logits.raw_dim().remove_axis(Axis(1))
        } else {
            // Let `run` report the rank error.
            D::Smaller::zeros(logits.ndim().saturating_sub(1))
        };
        let mut out = Array::zeros(dim);
        self.run(logits, target, None, Some(out.view_mut()))?;
        Ok(out)
    }

    fn forward(&self, logits: Self::Input<'_>, target: Self::Target<'_>) -> Result<F> {
        self.run(logits, target, None, None)
    }
}

impl<F: Float, D: RemoveAxis> Differentiable<F> for CrossEntropy<F, D> {
    type Grad = Array<F, D>;
    type GradMut<'g> = ArrayViewMut<'g, F, D>;

    fn zeros_grad(&self, logits: Self::Input<'_>) -> Self::Grad {
        Array::zeros(logits.raw_dim())
    }

    fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
        grad.view_mut()
    }

    fn forward_backward_into(
        &self,
        logits: Self::Input<'_>,
        target: Self::Target<'_>,
        grad: Self::GradMut<'_>,
    ) -> Result<F> {
        self.run(logits, target, Some(grad), None)
    }
}
