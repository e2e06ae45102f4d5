//! Cross-entropy from logits, as PyTorch's `nn.CrossEntropyLoss`.

use ndarray::{
    Array1, ArrayBase, ArrayView, ArrayView1, ArrayViewMut, Axis, Data, Dimension, Ix1, Ix2,
    RemoveAxis,
};

use crate::base::labels::{Label, Labels};
use crate::base::loss::{Call, Compute, Lanes, ScoreTarget, Scores};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{
    about_pow10, check_values, expect_min_rank, expect_nonempty, expect_shape, is_probability,
    overflow,
};
use crate::engine::softmax_columns::{LabelTerms, label_columns};
use crate::engine::softmax_rows::{
    Row, RowGrad, linear_target_grad, matrix_views, one_hot_grad, smoothed_grad,
    smoothed_grad_fits, smoothed_label_term, softmax_rows, softmax_rows_2d, term,
};
use crate::numerics::times_pow2;
use crate::{Error, Float, Reduction, Result};

/// What cross-entropy compares the logits with: hard class labels or a
/// probability per class.
///
/// For logits of shape `(N, C, d1, .., dk)`, labels have shape
/// `(N, d1, .., dk)` and probabilities the logits' shape.
///
/// Labels need no wrapping: an array or view of labels of any integer type
/// converts into this, so `ce.forward(&logits, &labels)` works; write
/// probabilities as `ClassTarget::Probs(q.view())`.
#[derive(Debug)]
pub enum ClassTarget<'a, F, D: Dimension> {
    /// One class index in `0..C` per sample (or the `ignore_index`).
    Labels(Labels<'a, D::Smaller>),
    /// A probability in `[0, 1]` for every class of every sample. Rows need
    /// not sum to 1 (as in PyTorch); the loss is `-sum_c w_c q_c log p_c`.
    Probs(ArrayView<'a, F, D>),
}

impl<'a, F, D: Dimension> From<Labels<'a, D::Smaller>> for ClassTarget<'a, F, D> {
    fn from(labels: Labels<'a, D::Smaller>) -> Self {
        ClassTarget::Labels(labels)
    }
}

impl<'a, F, D: Dimension, L: Label> From<ArrayView<'a, L, D::Smaller>> for ClassTarget<'a, F, D> {
    fn from(labels: ArrayView<'a, L, D::Smaller>) -> Self {
        ClassTarget::Labels(labels.into())
    }
}

impl<'a, F, D, L, S> From<&'a ArrayBase<S, D::Smaller>> for ClassTarget<'a, F, D>
where
    D: Dimension,
    L: Label,
    S: Data<Elem = L>,
{
    fn from(labels: &'a ArrayBase<S, D::Smaller>) -> Self {
        ClassTarget::Labels(labels.into())
    }
}

impl<F, D: Dimension> Clone for ClassTarget<'_, F, D> {
    fn clone(&self) -> Self {
        match self {
            ClassTarget::Labels(l) => ClassTarget::Labels(l.clone()),
            ClassTarget::Probs(p) => ClassTarget::Probs(p.clone()),
        }
    }
}

loss_options! {
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
    /// - `ignore_index`: a label value, of any integer type, whose samples
    ///   count for nothing (default: none, unlike PyTorch's -100: write
    ///   `with_ignore_index(-100)` to ignore PyTorch's padding label).
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
    /// let labels = array![0_i64]; // any integer type: i64 as from PyTorch, u32, usize, ...
    /// let ce = CrossEntropy::new();
    /// let loss = ce.forward(&logits, &labels)?;
    /// assert!((loss - 0.4170300162778335).abs() < 1e-12);
    ///
    /// // Fused value and gradient into a reused buffer.
    /// let mut grad = ndarray::Array2::zeros((1, 3));
    /// let same = ce.forward_backward_into(&logits, &labels, &mut grad)?;
    /// assert_eq!(loss, same);
    /// assert!(grad.sum().abs() < 1e-15); // rows of p - one_hot sum to zero
    ///
    /// // PyTorch's ignore_index, and probabilities as the target.
    /// let ce = CrossEntropy::new().with_ignore_index(-100);
    /// assert_eq!(ce.forward(&logits, &array![-100_i64])?, 0.0);
    /// let q = array![[1.0, 0.0, 0.0]];
    /// assert_eq!(CrossEntropy::new().forward(&logits, ClassTarget::Probs(q.view()))?, loss);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.CrossEntropyLoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>).
    /// Label smoothing: C. Szegedy et al., "Rethinking the Inception
    /// Architecture for Computer Vision", CVPR 2016, <https://arxiv.org/abs/1512.00567>.
    pub struct CrossEntropy<F: Float, D: RemoveAxis = Ix2> {
        /// The class weights, if any.
        weight: Option<Array1<F>> = None,
            /// Sets one weight per class (finite, `>= 0`; default none).
            set with_weight(Array1<F>) checked by contiguous_weights;
        ignore_index: Option<i128> = None;
        /// The label smoothing `eps`.
        label_smoothing: f64 = 0.0,
            /// Sets the label smoothing `eps` in `[0, 1]` (default 0).
            set with_label_smoothing checked by unit_interval;
    }

    /// Cross-entropy on logits of any rank `>= 2` with the class axis at 1,
    /// `(N, C, d1, .., dk)`; pick the rank with the type, for example
    /// `CrossEntropy::<f32, ndarray::Ix4>::spatial()` for images or `IxDyn`.
    fn spatial();
    /// Cross-entropy on `(N, C)` logits: mean reduction, no weights, no
    /// ignored label, no smoothing.
    fn new() at Ix2;
}

impl<F: Float, D: RemoveAxis> CrossEntropy<F, D> {
    /// Sets the label whose samples are ignored (default none), of any
    /// integer type: PyTorch's `-100` can be written as it is.
    pub fn with_ignore_index(mut self, ignore_index: impl Label) -> Self {
        self.ignore_index = Some(ignore_index.to_i128());
        self
    }

    /// The ignored label, if any (widened to `i128`, which holds every
    /// label type).
    pub fn ignore_index(&self) -> Option<i128> {
        self.ignore_index
    }
}

/// Cross-entropy's target: a [`ClassTarget`] per lane of the class axis.
pub struct ByClassTarget;

impl<F: Float, D: RemoveAxis> ScoreTarget<F, D> for ByClassTarget {
    type View<'a> = ClassTarget<'a, F, D>;
    type Axes = Lanes;
}

impl<F: Float, D: RemoveAxis> Compute<F> for CrossEntropy<F, D> {
    type Sig = Scores<D, ByClassTarget>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target,
            mut grad,
            mut per,
        } = call;
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

        // `with_weight` stores the weights contiguously.
        let w_slice = self.weight.as_ref().and_then(|w| w.as_slice());
        let w = |c: usize| w_slice.map_or(F::one(), |w| w[c]);
        let eps = F::lit(self.label_smoothing);
        let smoothing = self.label_smoothing > 0.0;
        let hard = F::one() - eps;
        let off = eps / F::from_count(classes);

        let (sum, divisor) = match target {
            ClassTarget::Labels(labels) => {
                let row_shape = logits.raw_dim().remove_axis(Axis(1));
                labels.expect_shape("labels", row_shape.slice())?;
                let ignore = self.ignore_index;
                labels.check("labels", classes, ignore)?;
                let divisor = labels.sum_over_classes(ignore, |y| w(y).as_f64());
                // With tiny class weights (sub-normal ones, say) the mean's
                // factor 1 / divisor overflows, so the gradient would be
                // inf * 0, and each `w_y * nll` is a subnormal with few
                // significant bits, so the mean itself is wrong (1 for
                // `[5e-324, 0, 0]` where it is ln 3). The mean is the same
                // for weights scaled by any power of two, and such a scaling
                // is exact: rerun once with the divisor brought out of `tiny`,
                // for the value and the gradient alike (the per-sample
                // values are the weighted ones, so not for those).
                let inv = 1.0 / divisor;
                let tiny = divisor < f64::MIN_POSITIVE.sqrt();
                let overflows = tiny || !inv.is_finite() || !F::lit(inv).is_finite();
                let cold = divisor > 0.0 && overflows;
                if cold && F::max_value().as_f64() < f64::MAX {
                    // f32: its weights are normal numbers in f64, where
                    // no rescale is needed, and a weight no label uses,
                    // which a rescale could push beyond f32, keeps its
                    // value. The per-sample values too come from f64 (under
                    // every reduction, so that they are the same under
                    // each), and agree with the mean.
                    return self.compute_in_f64(logits, labels, grad, per);
                }
                let mean = self.reduction == Reduction::Mean;
                if let (true, true, Some(w), true) = (mean, cold, &self.weight, per.is_none()) {
                    // The smallest power of two that brings the divisor out
                    // of `tiny` (into [2^-510, 2^-509)): a larger one would
                    // push the weight of a class no label uses past f64
                    // sooner, which, with smoothing, changes the value.
                    let e = -510 - divisor.log2().floor() as i32;
                    let mut scaled = Vec::with_capacity(w.len());
                    for (c, v) in w.iter().enumerate() {
                        let v = times_pow2(v.as_f64(), e);
                        if v.is_finite() {
                            scaled.push(F::lit(v));
                        } else if !smoothing {
                            // Without smoothing the weight of a class no
                            // label uses does not enter the loss.
                            scaled.push(F::max_value());
                        } else {
                            // w_c / divisor beyond 2^1534: with smoothing
                            // the loss is that ratio times eps / C times
                            // the class's nll, out of f64's range unless
                            // the nll is below 2^-510 / (eps / C).
                            let ratio = w[c].as_f64().log10() - divisor.log10();
                            return Err(overflow::<F>(
                                "weight",
                                vec![c],
                                "the class weight over the mean's divisor (the labels' weight sum), with label smoothing",
                                about_pow10(ratio),
                            ));
                        }
                    }
                    let rescaled = CrossEntropy {
                        weight: Some(Array1::from(scaled)),
                        ..self.clone()
                    };
                    let target = ClassTarget::Labels(labels);
                    return rescaled.compute(Call {
                        input: logits,
                        target,
                        grad,
                        per,
                    });
                }
                let scale: F = self.reduction.grad_scale(divisor);
                // In f64: weights near F's maximum add up beyond it.
                let w_sum = w_slice.map_or(classes as f64, |w| w.iter().map(|v| v.as_f64()).sum());
                let w_max =
                    w_slice.map_or(1.0, |w| w.iter().fold(0.0, |m: f64, v| m.max(v.as_f64())));
                let f = |y: Option<usize>, row: &Row<'_, F>, g: Option<RowGrad<'_, F>>| {
                    let Some(y) = y else {
                        if let Some(g) = g {
                            g.zero();
                        }
                        return 0.0;
                    };
                    let wy = w(y);
                    if !smoothing {
                        if let Some(g) = g {
                            one_hot_grad(g, y, scale * wy);
                        }
                        return term(wy.as_f64(), row.nll(y));
                    }
                    // The target is off * w_c plus hard * w_y on the label.
                    let ws = w_slice.map(|s| (s, w_sum));
                    if let Some(g) = g {
                        // An `off` of 0 (eps / C below the smallest float) times a
                        // weight sum beyond f64 is 0.
                        let total = hard.as_f64() * wy.as_f64() + term(off.as_f64(), w_sum);
                        let weights = w_slice.map(|s| (s, w_max));
                        smoothed_grad(g, scale, total, off, weights, (y, hard * wy));
                    }
                    let (hard, off) = (hard.as_f64(), off.as_f64());
                    smoothed_label_term(wy.as_f64(), hard, row.nll(y), off, row.nll_sum(ws))
                };
                let matrix = matrix_views(&logits, &mut grad, &mut per);
                let sum = match (matrix, labels.clone().into_dimensionality::<Ix1>()) {
                    (Some((l, g, p)), Some(y)) => {
                        softmax_rows_2d(l, |i| y.class_or_ignored(i, ignore), g, p, f)
                    }
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
                        // The column path forms the gradient in F: with
                        // smoothing it takes the inputs on which every row
                        // would pass `smoothed_grad`'s fast path (the
                        // largest w_y standing for each row's; without
                        // smoothing the entries are at most `scale w_y`,
                        // within F). It asks with the larger of Mean's and
                        // Sum's scales, so that every reduction, and
                        // `forward` and the fused call, take the same path
                        // (the same bits).
                        let worst_scale = if divisor > 0.0 {
                            (1.0 / divisor).max(1.0)
                        } else {
                            1.0
                        };
                        let at_y = hard.as_f64() * w_max;
                        let total = at_y + off.as_f64() * w_sum;
                        let fits =
                            smoothed_grad_fits::<F>(worst_scale, total, off.as_f64(), w_max, at_y);
                        let contiguous = grad.as_ref().is_none_or(|g| g.is_standard_layout())
                            && per.as_ref().is_none_or(|p| p.is_standard_layout())
                            && (!smoothing || fits);
                        match (contiguous, logits.as_slice(), labels.as_slice()) {
                            (true, Some(x), Some(y)) => label_columns(
                                x,
                                y,
                                grad.as_mut().and_then(|g| g.as_slice_mut()),
                                per.as_mut().and_then(|p| p.as_slice_mut()),
                                (classes, positions / shape[0]),
                                &terms,
                            ),
                            _ => softmax_rows(logits.clone(), labels.classes(ignore), grad, per, f),
                        }
                    }
                };
                (sum, divisor)
            }
            ClassTarget::Probs(probs) => {
                expect_shape("probs", probs.shape(), shape)?;
                check_values("probs", &probs, "a probability in [0, 1]", is_probability)?;
                let divisor = positions as f64;
                let scale: F = self.reduction.grad_scale(divisor);
                let f = |q: ArrayView1<'_, F>, row: &Row<'_, F>, g: Option<RowGrad<'_, F>>| {
                    let coef = |c: usize| w(c) * (hard * q[c] + off);
                    if let Some(g) = g {
                        // In f64: with weights near F's maximum the sum
                        // does not fit F, though the gradient does.
                        let sum = (0..classes).fold(0.0, |acc, c| acc + coef(c).as_f64());
                        linear_target_grad(g, scale, sum, coef);
                    }
                    row.weighted_nll(coef)
                };
                let matrix = matrix_views(&logits, &mut grad, &mut per);
                let probs_2d = probs.view().into_dimensionality::<Ix2>().ok();
                let sum = match (matrix, probs_2d) {
                    (Some((l, g, p)), Some(q)) => softmax_rows_2d(l, |i| q.row(i), g, p, f),
                    _ => {
                        let rows = probs.lanes(Axis(1)).into_iter();
                        softmax_rows(logits.clone(), rows, grad, per, f)
                    }
                };
                (sum, divisor)
            }
        };
        Ok(Totals {
            sum,
            divisor,
            what: "logits",
        })
    }
}

impl<F: Float, D: RemoveAxis> CrossEntropy<F, D> {
    /// The labels' loss of `f32` logits computed in `f64` (cold: class
    /// weights so small that the mean's factor overflows `f32`), the
    /// gradient converted back with its entries beyond `F` reported.
    fn compute_in_f64(
        &self,
        logits: ArrayView<'_, F, D>,
        labels: Labels<'_, D::Smaller>,
        grad: Option<ArrayViewMut<'_, F, D>>,
        per: Option<ArrayViewMut<'_, F, D::Smaller>>,
    ) -> Result<Totals> {
        let wide = CrossEntropy::<f64, D> {
            weight: self.weight.as_ref().map(|w| w.mapv(|v| v.as_f64())),
            reduction: self.reduction,
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            ..CrossEntropy::spatial()
        };
        let x = logits.mapv(|v| v.as_f64());
        let mut g64 = grad.as_ref().map(|_| ndarray::Array::zeros(x.raw_dim()));
        let mut per64 = per.as_ref().map(|p| ndarray::Array::zeros(p.raw_dim()));
        let mut totals = wide.compute(Call {
            input: x.view(),
            target: ClassTarget::Labels(labels),
            grad: g64.as_mut().map(|g| g.view_mut()),
            per: per64.as_mut().map(|p| p.view_mut()),
        })?;
        // The f64 run checked its values against f64's range: F's now.
        let mut sum = Sum::default();
        match (per, per64) {
            (Some(mut per), Some(per64)) => {
                for (i, (p, &v)) in per.iter_mut().zip(per64.iter()).enumerate() {
                    sum.add::<F>(i, v);
                    *p = F::lit(v);
                }
            }
            _ => sum.total = totals.sum.total,
        }
        if let (Some(mut grad), Some(g64)) = (grad, g64) {
            let classes = x.shape()[1];
            let positions = x.len() / x.shape()[0] / classes;
            for (k, (g, &v)) in grad.iter_mut().zip(g64.iter()).enumerate() {
                // Logical order: sample n, class c, position s.
                let (n, s) = (k / (classes * positions), k % positions);
                *g = sum.grad_entry::<F>(n * positions + s, v);
            }
        }
        totals.sum = sum;
        Ok(totals)
    }
}
