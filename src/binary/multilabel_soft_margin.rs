//! PyTorch's multi-label soft margin loss.

use ndarray::Array1;

use crate::base::loss::{ByProbs, Call, Compute, Rows};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::is_probability;
use crate::engine::rows::run_rows_on_targets;
use crate::numerics::logistic_terms;
use crate::{Float, Result};

loss_options! {
    /// The multi-label soft margin loss: per sample, the class-weighted
    /// mean over classes of binary cross-entropy with logits. PyTorch's
    /// `nn.MultiLabelSoftMarginLoss`.
    ///
    /// Use it for multi-label classification (each sample may carry any
    /// set of the `C` labels) where one value per sample is wanted: it is
    /// [`crate::BceWithLogits`] averaged over each row instead of over all
    /// elements, so the per-sample values are comparable across samples
    /// (for mining or per-sample weighting) and `Mean` is over samples.
    /// For long-tailed label sets, [`crate::SigmoidFocal`] or an
    /// asymmetric loss down-weight the easy negatives.
    ///
    /// # Formula
    /// ```text
    /// l_i = (1/C) sum_c w_c [t_ic softplus(-x_ic) + (1 - t_ic) softplus(x_ic)]
    ///     = -(1/C) sum_c w_c [t_ic log sigmoid(x_ic) + (1 - t_ic) log sigmoid(-x_ic)]
    /// d l_i / d x_ic = w_c (sigmoid(x_ic) - t_ic) / C
    /// ```
    /// computed in `f64` from `exp(-|x|)`, so no finite logit overflows.
    ///
    /// # Shapes
    /// - logits `(N, C)`; targets `(N, C)` in `[0, 1]` (0/1 for label
    ///   sets), the logits' element type.
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `weight`: one weight per class (finite, `>= 0`; default none,
    ///   i.e. 1). Its length is checked against `C` at each call.
    ///
    /// # Errors
    /// An empty batch or no classes, targets or a gradient buffer of
    /// another shape, a target outside `[0, 1]`
    /// ([`crate::Error::InvalidTarget`] naming `targets`), weights of
    /// another length than `C`. Non-finite logits propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, MultiLabelSoftMargin};
    /// use ndarray::array;
    ///
    /// let logits = array![[0.0_f64, 2.0], [-1.0, 0.0]];
    /// let targets = array![[1.0, 0.0], [0.0, 1.0]];
    /// let loss = MultiLabelSoftMargin::new();
    /// let softplus = |z: f64| z.exp().ln_1p();
    /// let want = ((softplus(0.0) + softplus(2.0)) / 2.0 + (softplus(-1.0) + softplus(0.0)) / 2.0) / 2.0;
    /// let (value, grad) = loss.forward_backward(logits.view(), targets.view())?;
    /// assert!((value - want).abs() < 1e-15);
    /// // (sigmoid(0) - 1) / C / N
    /// assert!((grad[[0, 0]] + 0.125).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.MultiLabelSoftMarginLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelSoftMarginLoss.html>.
    pub struct MultiLabelSoftMargin<F: Float> {
        /// The class weights, if any.
        weight: Option<Array1<F>> = None,
            /// Sets one weight per class (finite, `>= 0`; default none).
            set with_weight(Array1<F>) checked by weights;
    }

    /// The multi-label soft margin loss: mean reduction, no weights.
    fn new();
}

impl<F: Float> Compute<F> for MultiLabelSoftMargin<F> {
    type Sig = Rows<ByProbs>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let weight_len = self.weight.as_ref().map(|w| ("weight", w.len()));
        let classes = call.input.ncols() as f64;
        let weight = |k: usize| self.weight.as_ref().map_or(1.0, |w| w[k].as_f64());
        let targets = ("a value in [0, 1]", is_probability);
        run_rows_on_targets(
            self.reduction,
            call,
            weight_len.as_slice(),
            targets,
            |t, x, mut sink| {
                let mut value = 0.0_f64;
                for (k, (&x, &t)) in x.iter().zip(&t).enumerate() {
                    let (x, t, w) = (x.as_f64(), t.as_f64(), weight(k));
                    if w == 0.0 && x.is_finite() {
                        // A class of weight 0 costs nothing, even next to a
                        // term beyond f64 (0 * inf would be NaN).
                        if let Some(sink) = sink.as_deref_mut() {
                            sink.set(k, 0.0);
                        }
                        continue;
                    }
                    let s = logistic_terms(x);
                    value += w * (t * s.softplus_neg + (1.0 - t) * s.softplus);
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.set(k, w * (s.sigmoid - t) / classes);
                    }
                }
                value / classes
            },
        )
    }
}
