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
    about_pow10, check_probabilities, check_values, expect_min_rank, expect_nonempty, expect_shape,
    overflow,
};
use crate::engine::softmax_columns::{
    LabelTerms, SMALL_CLASSES, label_columns, label_rows_by_columns,
};
use crate::engine::softmax_rows::{
    Row, RowGrad, lanes_lse, linear_target_grad, matrix_views, one_hot_grad, smoothed_grad,
    smoothed_grad_fits, smoothed_label_term, softmax_rows, softmax_rows_2d, term,
};
use crate::numerics::{soft_cap, soft_cap_slope, times_pow2, z_square};
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
    /// Labels as [`ClassTarget::Labels`] and one weight per sample (per
    /// token), finite and `>= 0`: sample `i` counts `t_i` times, on top of
    /// its class weight. Its value is `t_i l_i`, its gradient `t_i` times
    /// its own, and `Mean` divides by `sum_i t_i w_{y_i}` over the samples
    /// that are not ignored (`sum_i t_i` without class weights), so 0/1
    /// weights are a loss mask. Not in PyTorch (there: `reduction='none'`,
    /// then weight and divide by hand).
    WeightedLabels {
        /// One class index in `0..C` per sample (or the `ignore_index`).
        labels: Labels<'a, D::Smaller>,
        /// One weight per sample, shaped like the labels.
        weights: ArrayView<'a, F, D::Smaller>,
    },
}

impl<F, D: Dimension> ClassTarget<'_, F, D> {
    /// The kind of target, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ClassTarget::Labels(_) => "labels",
            ClassTarget::Probs(_) => "probabilities",
            ClassTarget::WeightedLabels { .. } => "weighted labels",
        }
    }
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
            ClassTarget::WeightedLabels { labels, weights } => ClassTarget::WeightedLabels {
                labels: labels.clone(),
                weights: weights.clone(),
            },
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
    /// # Large-model options
    /// For language models and other large class counts, two options from
    /// the large-model recipes (both off by default; off, the loss is the
    /// plain one bit for bit):
    /// ```text
    /// soft cap (Gemma 2):  x_c <- cap tanh(x_c / cap)     first, before everything else
    /// z-loss (PaLM):       l_i <- l_i + z w_i lse_i^2,    lse_i = logsumexp(x_i) (of the capped x_i)
    ///                      w_i = w_{y_i} for labels (0 for an ignored row), 1 for probabilities
    /// gradient:            dl_i/dx_c = (A + 2 z w_i lse_i) p_c - a_c, then times
    ///                      1 - tanh^2(x_c / cap) = sech^2(x_c / cap) with the soft cap
    /// ```
    /// - The z-loss pulls each row's log-partition `lse_i` towards 0, which
    ///   keeps the logits from drifting in bf16/f32 training. The class
    ///   weight of the row's label multiplies its z term as it multiplies
    ///   its cross-entropy, so a row's total is `w_{y_i} (ce_i + z lse_i^2)`
    ///   (without smoothing) and `Mean`, dividing by the same sum of
    ///   `w_{y_i}` as cross-entropy, stays the weighted average of the rows'
    ///   totals. Ignored rows contribute nothing. With probabilities every
    ///   position counts with weight 1 and `Mean` divides by their number.
    /// - The soft cap bounds every logit by `cap` smoothly; label smoothing,
    ///   class weights and the z-loss all see the capped logits, and the
    ///   gradient is carried back through the cap. It is computed in `f64`
    ///   and saturates cleanly: huge logits give `±cap` and a slope of 0
    ///   (never NaN), and a huge cap leaves the logits as they are.
    /// - In `f32` the row's `lse` and `z lse^2` are computed in `f64`, so a
    ///   row of logits near `1e19` (where `lse^2` is beyond `f32`) is an
    ///   [`Error::Overflow`] only when its true loss or gradient is.
    /// - These options make spatial inputs run row by row (the plain loss
    ///   keeps its column kernels), and the soft cap holds a capped copy of
    ///   the logits for the call.
    ///
    /// # Shapes
    /// - logits: `(N, C)` with [`CrossEntropy::new`], or `(N, C, d1, .., dk)`
    ///   with [`CrossEntropy::spatial`] (class axis 1, as in PyTorch).
    /// - target: [`ClassTarget::Labels`] `(N, d1, .., dk)`,
    ///   [`ClassTarget::WeightedLabels`] (labels and one weight per sample,
    ///   both `(N, d1, .., dk)`), or [`ClassTarget::Probs`] shaped like the
    ///   logits.
    /// - per-sample: `(N, d1, .., dk)`; gradient: the logits' shape.
    /// - `Mean` divides, for labels, by the sum of `w_{y_i}` over the samples
    ///   that are not ignored (the count of them without weights); for
    ///   weighted labels, by the sum of `t_i w_{y_i}`; for probabilities, by
    ///   the number of positions `N * d1 * .. * dk`.
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
    /// - `z_loss`: `z`, finite and `>= 0` (default 0: none), PaLM's auxiliary
    ///   loss (1e-4 in PaLM).
    /// - `softcap`: `Some(cap)`, finite and `> 0`, or `None` (default),
    ///   Gemma 2's logit soft cap (30 on Gemma 2's final logits).
    ///
    /// # Errors
    /// Rank below 2, an empty batch or class axis, labels or probabilities of
    /// the wrong shape, a label `>= C` that is not the `ignore_index`, a
    /// probability outside `[0, 1]`, a `weight` whose length is not `C`, a
    /// gradient buffer of the wrong shape. An option out of its range is
    /// [`Error::InvalidOption`] from its setter (`z_loss` negative or not
    /// finite, `softcap` not finite or `<= 0`). A finite input whose loss or
    /// gradient is beyond the float type is [`Error::Overflow`].
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
    /// // (The same loss to the last bit or so: labels on few classes run
    /// // down the columns, with a vectorized logarithm.)
    /// let q = array![[1.0, 0.0, 0.0]];
    /// let from_probs = CrossEntropy::new().forward(&logits, ClassTarget::Probs(q.view()))?;
    /// assert!((from_probs - loss).abs() < 1e-15);
    ///
    /// // PaLM's z-loss adds z * logsumexp(x)^2 = 1e-4 * 2.41703^2 to the row.
    /// let ce = CrossEntropy::new().with_z_loss(1e-4)?;
    /// assert!((ce.forward(&logits, &labels)? - 0.4176142196877921).abs() < 1e-12);
    /// // Gemma 2's soft cap: the loss of 1.0 * tanh(logits / 1.0).
    /// let ce = CrossEntropy::new().with_softcap(Some(1.0))?;
    /// assert!((ce.forward(&logits, &labels)? - 0.805610376509774).abs() < 1e-12);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.CrossEntropyLoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html>).
    /// Label smoothing: C. Szegedy et al., "Rethinking the Inception
    /// Architecture for Computer Vision", CVPR 2016, <https://arxiv.org/abs/1512.00567>.
    /// z-loss: A. Chowdhery et al., "PaLM: Scaling Language Modeling with
    /// Pathways", 2022, section 5, <https://arxiv.org/abs/2204.02311>.
    /// Soft cap: Gemma Team, "Gemma 2: Improving Open Language Models at a
    /// Practical Size", 2024, <https://arxiv.org/abs/2408.00118>.
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
        /// The z-loss coefficient `z` (0: none).
        z_loss: f64 = 0.0,
            /// Sets the z-loss coefficient `z`, finite and `>= 0` (default
            /// 0, no z-loss): each counted row's loss gains
            /// `z w logsumexp(x_i)^2` (see *Large-model options*).
            set with_z_loss checked by non_negative;
        /// The logit soft cap, if any.
        softcap: Option<f64> = None,
            /// Sets the logit soft cap `cap`, finite and `> 0`, or `None` for
            /// none (default): the logits become `cap tanh(x / cap)` before
            /// anything else (see *Large-model options*).
            set with_softcap checked by optional_positive;
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

    /// The fused value and gradient, as
    /// [`forward_backward_into`](crate::Differentiable::forward_backward_into),
    /// and each row's log-sum-exp `lse_i = logsumexp_c x_ic` (of the capped
    /// logits under `softcap`, as the loss and its z-loss see them) written
    /// into `lse`, shaped like the labels `(N, d1, .., dk)`: what a
    /// large-model trainer logs to watch the z-loss's target, or keeps for
    /// a second loss on the same logits.
    ///
    /// It costs one more pass over the logits (a max and a sum of
    /// exponentials per row) after the fused call.
    ///
    /// # Errors
    /// Those of the fused call; `lse` of another shape than the labels'
    /// ([`Error::ShapeMismatch`] naming `lse`), checked before anything is
    /// written. The log-sum-exp itself is always finite (`max + ln_sum`,
    /// `ln_sum <= ln C`).
    ///
    /// ```
    /// use classloss::CrossEntropy;
    /// use ndarray::{Array1, Array2, array};
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1], [0.0, 0.0, 0.0]];
    /// let labels = array![0_i64, 2];
    /// let (mut grad, mut lse) = (Array2::zeros((2, 3)), Array1::zeros(2));
    /// let ce = CrossEntropy::new().with_z_loss(1e-4)?;
    /// let loss = ce.forward_backward_lse_into(&logits, &labels, &mut grad, &mut lse)?;
    /// assert!((lse[0] - 2.4170300162778335).abs() < 1e-12);
    /// assert!((lse[1] - 3f64.ln()).abs() < 1e-15);
    /// # let _ = loss;
    /// # Ok::<(), classloss::Error>(())
    /// ```
    pub fn forward_backward_lse_into<'i, 't, 'g, 'l>(
        &self,
        logits: impl Into<ArrayView<'i, F, D>>,
        target: impl Into<ClassTarget<'t, F, D>>,
        grad: impl Into<ArrayViewMut<'g, F, D>>,
        lse: impl Into<ArrayViewMut<'l, F, D::Smaller>>,
    ) -> Result<F> {
        let (logits, lse) = (logits.into(), lse.into());
        if logits.ndim() >= 2 {
            let rows = logits.raw_dim().remove_axis(Axis(1));
            expect_shape("lse", lse.shape(), rows.slice())?;
        }
        let value =
            crate::Differentiable::forward_backward_into(self, logits.clone(), target, grad)?;
        lanes_lse(logits, self.softcap, lse);
        Ok(value)
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
        let Some(cap) = self.softcap else {
            return self.compute_uncapped(self.reduction, call);
        };
        // The soft cap: the loss of the capped logits, whose gradient the
        // chain rule then carries back to the logits (a factor in (0, 1]
        // per entry, so no entry grows).
        let Call {
            input: logits,
            target,
            mut grad,
            per,
        } = call;
        let capped = logits.mapv(|x| F::lit(soft_cap(x.as_f64(), cap)));
        let totals = self.compute_uncapped(
            self.reduction,
            Call {
                input: capped.view(),
                target,
                grad: grad.as_mut().map(|g| g.view_mut()),
                per,
            },
        )?;
        if let Some(g) = grad {
            ndarray::Zip::from(g).and(&logits).for_each(|g, &x| {
                *g = F::lit(g.as_f64() * soft_cap_slope(x.as_f64(), cap));
            });
        }
        Ok(totals)
    }
}

impl<F: Float, D: RemoveAxis> CrossEntropy<F, D> {
    /// This loss with its class weights times `2^e`, for a mean over tiny
    /// weights (`divisor`, their labels' sum, is only for the error; `what`
    /// names the weights there). The mean is the same for weights scaled by
    /// a power of two, and the scaling is exact. A weight that leaves `F`
    /// belongs to a class no label uses (each used one is at most the
    /// divisor): without smoothing it does not enter the loss; with
    /// smoothing the loss is `w_c / divisor` times `eps / C` times the
    /// class's nll, beyond `F`.
    pub(crate) fn with_weights_times_pow2(
        &self,
        e: i32,
        divisor: f64,
        what: &'static str,
    ) -> Result<Self> {
        let Some(w) = &self.weight else {
            return Ok(self.clone());
        };
        let smoothing = self.label_smoothing > 0.0;
        let mut scaled = Vec::with_capacity(w.len());
        for (c, v) in w.iter().enumerate() {
            let s = F::lit(times_pow2(v.as_f64(), e));
            if s.is_finite() {
                scaled.push(s);
            } else if !smoothing {
                scaled.push(F::max_value());
            } else {
                let ratio = v.as_f64().log10() - divisor.log10();
                return Err(overflow::<F>(
                    what,
                    vec![c],
                    "the class weight over the mean's divisor (the labels' weight sum), with label smoothing",
                    about_pow10(ratio),
                ));
            }
        }
        Ok(CrossEntropy {
            weight: Some(Array1::from(scaled)),
            ..self.clone()
        })
    }
}

impl<F: Float, D: RemoveAxis> CrossEntropy<F, D> {
    /// The loss without the soft cap (of logits already capped), under
    /// `reduction` (the loss's own, or `Sum` for the per-token weights).
    fn compute_uncapped(
        &self,
        reduction: Reduction,
        call: Call<'_, '_, '_, F, Scores<D, ByClassTarget>>,
    ) -> Result<Totals> {
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
        // The z-loss of a row: its value `z lse^2` and its gradient's factor
        // `2 z lse` on `p` (both times the row's weight), in `f64`.
        let z = self.z_loss;
        let z_on = z > 0.0;
        let z_of = |row: &Row<'_, F>| {
            let lse = row.lse();
            (z_square(z, lse), 2.0 * z * lse)
        };

        let (sum, divisor) = match target {
            ClassTarget::WeightedLabels { labels, weights } => {
                self.token_weighted(reduction, logits, labels, weights, grad, per)?
            }
            ClassTarget::Labels(labels) => {
                let row_shape = logits.raw_dim().remove_axis(Axis(1));
                labels.expect_shape("labels", row_shape.slice())?;
                let ignore = self.ignore_index;
                labels.check("labels", classes, ignore)?;
                let divisor = labels.weight_sum(ignore, self.weight.as_ref());
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
                    return self.compute_in_f64(reduction, logits, labels, grad, per);
                }
                let mean = reduction == Reduction::Mean;
                if let (true, true, Some(_), true) = (mean, cold, &self.weight, per.is_none()) {
                    // The smallest power of two that brings the divisor out
                    // of `tiny` (into [2^-510, 2^-509)): a larger one would
                    // push the weight of a class no label uses past f64
                    // sooner, which, with smoothing, changes the value.
                    let e = -510 - divisor.log2().floor() as i32;
                    let rescaled = self.with_weights_times_pow2(e, divisor, "weight")?;
                    let target = ClassTarget::Labels(labels);
                    return rescaled.compute_uncapped(
                        reduction,
                        Call {
                            input: logits,
                            target,
                            grad,
                            per,
                        },
                    );
                }
                let scale: F = reduction.grad_scale(divisor);
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
                    if !smoothing && !z_on {
                        if let Some(g) = g {
                            one_hot_grad(g, y, scale * wy);
                        }
                        return term(wy.as_f64(), row.nll(y));
                    }
                    // The z-loss: the row's weight times `z lse^2`, whose
                    // gradient `2 z lse p` adds to the factor on `p`.
                    let (z_value, z_grad) = if z_on { z_of(row) } else { (0.0, 0.0) };
                    if !smoothing {
                        if let Some(g) = g {
                            let total = wy.as_f64() * (1.0 + z_grad);
                            smoothed_grad(g, scale, total, F::zero(), None, Some((y, wy)));
                        }
                        return term(wy.as_f64(), row.nll(y) + z_value);
                    }
                    // The target is off * w_c plus hard * w_y on the label.
                    let ws = w_slice.map(|s| (s, w_sum));
                    if let Some(g) = g {
                        // An `off` of 0 (eps / C below the smallest float) times a
                        // weight sum beyond f64 is 0.
                        let mut total = hard.as_f64() * wy.as_f64() + term(off.as_f64(), w_sum);
                        if z_on {
                            total += term(wy.as_f64(), z_grad);
                        }
                        let weights = w_slice.map(|s| (s, w_max));
                        smoothed_grad(g, scale, total, off, weights, Some((y, hard * wy)));
                    }
                    let (hard, off) = (hard.as_f64(), off.as_f64());
                    let ce =
                        smoothed_label_term(wy.as_f64(), hard, row.nll(y), off, row.nll_sum(ws));
                    if z_on {
                        ce + term(wy.as_f64(), z_value)
                    } else {
                        ce
                    }
                };
                let terms = LabelTerms {
                    weight: w_slice,
                    w_sum,
                    ignore,
                    hard,
                    off,
                    smoothing,
                    scale,
                };
                // The column path forms the gradient in F: with smoothing
                // it takes the inputs on which every row would pass
                // `smoothed_grad`'s fast path (the largest w_y standing for
                // each row's; without smoothing the entries are at most
                // `scale w_y`, within F). It asks with the larger of Mean's
                // and Sum's scales, so that every reduction, and `forward`
                // and the fused call, take the same path (the same bits).
                let worst_scale = if divisor > 0.0 {
                    (1.0 / divisor).max(1.0)
                } else {
                    1.0
                };
                let at_y = hard.as_f64() * w_max;
                let total = at_y + off.as_f64() * w_sum;
                let fits = smoothed_grad_fits::<F>(worst_scale, total, off.as_f64(), w_max, at_y);
                // The z-loss runs on the rows (the column kernels are the
                // plain loss's).
                let contiguous = !z_on
                    && grad.as_ref().is_none_or(|g| g.is_standard_layout())
                    && per.as_ref().is_none_or(|p| p.is_standard_layout())
                    && (!smoothing || fits);
                // `(N, C)` rows of few classes run down the columns too.
                let rows = shape.len() == 2;
                // The column kernels take labels as `u32`.
                let columns = contiguous
                    && (!rows || classes <= SMALL_CLASSES)
                    && classes < u32::MAX as usize;
                let sum = match (columns, logits.as_slice(), labels.as_slice()) {
                    (true, Some(x), Some(y)) if rows => label_rows_by_columns(
                        x,
                        y,
                        grad.as_mut().and_then(|g| g.as_slice_mut()),
                        per.as_mut().and_then(|p| p.as_slice_mut()),
                        classes,
                        &terms,
                    ),
                    (true, Some(x), Some(y)) => label_columns(
                        x,
                        y,
                        grad.as_mut().and_then(|g| g.as_slice_mut()),
                        per.as_mut().and_then(|p| p.as_slice_mut()),
                        (classes, positions / shape[0]),
                        &terms,
                    ),
                    _ => {
                        let matrix = matrix_views(&logits, &mut grad, &mut per);
                        match (matrix, labels.clone().into_dimensionality::<Ix1>()) {
                            (Some((l, g, p)), Some(y)) => {
                                // Smoothing without class weights sums
                                // `x - max` with the exponentials.
                                let shifted = smoothing && w_slice.is_none();
                                let y = |i| y.class_or_ignored(i, ignore);
                                softmax_rows_2d(l, y, g, p, shifted, f)
                            }
                            _ => softmax_rows(logits.clone(), labels.classes(ignore), grad, per, f),
                        }
                    }
                };
                (sum, divisor)
            }
            ClassTarget::Probs(probs) => {
                expect_shape("probs", probs.shape(), shape)?;
                check_probabilities("probs", &probs, "a probability in [0, 1]")?;
                let divisor = positions as f64;
                let scale: F = reduction.grad_scale(divisor);
                let f = |q: ArrayView1<'_, F>, row: &Row<'_, F>, g: Option<RowGrad<'_, F>>| {
                    let coef = |c: usize| w(c) * (hard * q[c] + off);
                    // The z-loss of a position (weight 1: no label picks a
                    // class weight).
                    let (z_value, z_grad) = if z_on { z_of(row) } else { (0.0, 0.0) };
                    if let Some(g) = g {
                        // In f64: with weights near F's maximum the sum
                        // does not fit F, though the gradient does.
                        let sum = (0..classes).fold(0.0, |acc, c| acc + coef(c).as_f64());
                        let total = if z_on { sum + z_grad } else { sum };
                        linear_target_grad(g, scale, total, coef);
                    }
                    let ce = row.weighted_nll(coef);
                    if z_on { ce + z_value } else { ce }
                };
                let matrix = matrix_views(&logits, &mut grad, &mut per);
                let probs_2d = probs.view().into_dimensionality::<Ix2>().ok();
                let sum = match (matrix, probs_2d) {
                    (Some((l, g, p)), Some(q)) => softmax_rows_2d(l, |i| q.row(i), g, p, false, f),
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
    /// The loss on labels with per-token weights `t`: the labels' loss
    /// under `Sum` (each sample's value and the gradient of their sum),
    /// then each sample's value times `t_i` and its gradient times
    /// `t_i` and the reduction's factor. Returns the sum and the `Mean`'s
    /// divisor `sum_i t_i w_{y_i}`.
    fn token_weighted(
        &self,
        reduction: Reduction,
        logits: ArrayView<'_, F, D>,
        labels: Labels<'_, D::Smaller>,
        weights: ArrayView<'_, F, D::Smaller>,
        mut grad: Option<ArrayViewMut<'_, F, D>>,
        per: Option<ArrayViewMut<'_, F, D::Smaller>>,
    ) -> Result<(Sum, f64)> {
        let row_shape = logits.raw_dim().remove_axis(Axis(1));
        labels.expect_shape("labels", row_shape.slice())?;
        expect_shape("token_weights", weights.shape(), row_shape.slice())?;
        check_values("token_weights", &weights, "a finite weight >= 0", |t: F| {
            t.is_finite() && t >= F::zero()
        })?;
        let mut own = None;
        let mut per = match per {
            Some(p) => p,
            None => own.insert(ndarray::Array::zeros(row_shape)).view_mut(),
        };
        let unweighted = self.compute_uncapped(
            Reduction::Sum,
            Call {
                input: logits,
                target: ClassTarget::Labels(labels.clone()),
                grad: grad.as_mut().map(|g| g.view_mut()),
                per: Some(per.view_mut()),
            },
        )?;
        let class_weight = |y: usize| self.weight.as_ref().map_or(1.0, |w| w[y].as_f64());
        let divisor: f64 = labels
            .classes(self.ignore_index)
            .zip(weights.iter())
            .map(|(y, t)| y.map_or(0.0, |y| t.as_f64() * class_weight(y)))
            .sum();
        let scale = match reduction {
            Reduction::Mean if divisor > 0.0 => 1.0 / divisor,
            Reduction::Mean => 0.0,
            Reduction::Sum | Reduction::None => 1.0,
        };
        let mut sum = Sum::default();
        for (i, (p, t)) in per.iter_mut().zip(weights.iter()).enumerate() {
            let t = t.as_f64();
            // A sample of weight 0 counts for nothing, even one whose own
            // value is beyond F.
            let value = if t == 0.0 { 0.0 } else { t * p.as_f64() };
            *p = F::lit(value);
            sum.add::<F>(i, value);
        }
        if let Some(g) = grad.as_mut() {
            let lanes = g.lanes_mut(Axis(1)).into_iter().zip(weights.iter());
            for (i, (mut lane, t)) in lanes.enumerate() {
                let factor = t.as_f64() * scale;
                if factor == 1.0 {
                    continue;
                }
                let f = F::lit(factor);
                for v in lane.iter_mut() {
                    let scaled = *v * f;
                    if !scaled.is_finite() {
                        sum.grad_beyond(i, v.as_f64().abs() * factor);
                    }
                    *v = scaled;
                }
            }
            if let Some((i, m)) = unweighted.sum.grad_overflow {
                let t = weights.iter().nth(i).map_or(1.0, |t| t.as_f64());
                if t * scale != 0.0 {
                    sum.grad_beyond(i, m * t * scale);
                }
            }
        }
        Ok((sum, divisor))
    }

    /// The labels' loss of `f32` logits computed in `f64` (cold: class
    /// weights so small that the mean's factor overflows `f32`), the
    /// gradient converted back with its entries beyond `F` reported.
    fn compute_in_f64(
        &self,
        reduction: Reduction,
        logits: ArrayView<'_, F, D>,
        labels: Labels<'_, D::Smaller>,
        grad: Option<ArrayViewMut<'_, F, D>>,
        per: Option<ArrayViewMut<'_, F, D::Smaller>>,
    ) -> Result<Totals> {
        let wide = CrossEntropy::<f64, D> {
            weight: self.weight.as_ref().map(|w| w.mapv(|v| v.as_f64())),
            reduction,
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            z_loss: self.z_loss,
            // The caller's logits are already capped.
            softcap: None,
            ..CrossEntropy::spatial()
        };
        let x = logits.mapv(|v| v.as_f64());
        let mut g64 = grad.as_ref().map(|_| ndarray::Array::zeros(x.raw_dim()));
        let mut per64 = per.as_ref().map(|p| ndarray::Array::zeros(p.raw_dim()));
        let mut totals = wide.compute_uncapped(
            reduction,
            Call {
                input: x.view(),
                target: ClassTarget::Labels(labels),
                grad: g64.as_mut().map(|g| g.view_mut()),
                per: per64.as_mut().map(|p| p.view_mut()),
            },
        )?;
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
