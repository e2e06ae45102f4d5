//! The label-distribution-aware margin loss (Cao et al. 2019).

use ndarray::Array1;

use super::logit_adjusted::required_counts;
use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_shifted_cross_entropy;
use crate::{Float, Result};

loss_options! {
    /// The LDAM loss: cross-entropy of `s (x - m_y onehot(y))`, with a
    /// larger margin `m_c` for rarer classes, `m_c ∝ n_c^(-1/4)`, the
    /// largest `max_margin`. Rare classes must win by more, which widens
    /// their decision region where data are scarce.
    ///
    /// Use it on long-tailed data, usually with the logits computed from
    /// normalized features and weights (cosines; `scale` then plays
    /// ArcFace's `s`), and in the paper with re-weighting deferred to the
    /// late epochs ([`crate::class_balanced_weights`]).
    ///
    /// # Formula
    /// ```text
    /// m_c = max_margin n_c^(-1/4) / max_k n_k^(-1/4)
    /// z_c = s (x_c - m_y [c = y])
    /// l = -log softmax(z)_y          d l / d x = s (softmax(z) - onehot(y))
    /// ```
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`).
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `samples_per_class`: the training set's count of each class
    ///   (required; finite, `> 0`; its length is checked against `C`).
    /// - `max_margin`: the rarest class's margin, finite and `>= 0`
    ///   (default 0.5).
    /// - `scale`: `s`, finite and `> 0` (default 30, the paper's).
    ///
    /// # Errors
    /// A call without `samples_per_class`, counts of another length than
    /// `C`, and the input errors of [`crate::CrossEntropy`] on labels. A
    /// finite logit whose scaled value passes `F` (`s x` with `x` near
    /// `F`'s maximum) is [`crate::Error::Overflow`] naming it.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Labels, Ldam, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[0.6_f64, 0.2], [0.1, 0.4]];
    /// let labels = array![0_i64, 1];
    /// let ldam = Ldam::new()
    ///     .with_samples_per_class(array![100.0, 1.0])?
    ///     .with_scale(10.0)?;
    /// // m = (0.5 / sqrt(sqrt(100)), 0.5): the rare class must win by 0.5.
    /// let (value, grad) = ldam.forward_backward(logits.view(), Labels::from(&labels))?;
    /// assert!(value > 0.0 && grad[[1, 1]] < 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// K. Cao, C. Wei, A. Gaidon, N. Arechiga and T. Ma, "Learning
    /// imbalanced datasets with label-distribution-aware margin loss",
    /// NeurIPS 2019, <https://arxiv.org/abs/1906.07413>.
    pub struct Ldam<F: Float> {
        /// The training set's count of each class.
        samples_per_class: Option<Array1<f64>> = None,
            /// Sets the training set's count of each class (finite, `> 0`).
            set with_samples_per_class(Array1<f64>) checked by class_counts;
        /// The largest margin, the rarest class's.
        max_margin: f64 = 0.5,
            /// Sets the rarest class's margin, finite and `>= 0` (default 0.5).
            set with_max_margin checked by non_negative;
        /// The scale `s` of the logits.
        scale: f64 = 30.0,
            /// Sets the scale `s`, finite and `> 0` (default 30).
            set with_scale checked by positive;
    }

    /// LDAM: mean reduction, `max_margin` 0.5, scale 30; set
    /// `samples_per_class` before use.
    fn new();
}

impl<F: Float> Ldam<F> {
    /// The margin of each class, `max_margin n_c^(-1/4) / max_k n_k^(-1/4)`.
    fn margins(&self) -> Result<Array1<f64>> {
        let counts = required_counts(self.samples_per_class.as_ref())?;
        let m = counts.mapv(|n| n.powf(-0.25));
        let largest = m.fold(0.0_f64, |a, &b| a.max(b));
        Ok(m.mapv(|v| self.max_margin * v / largest))
    }
}

impl<F: Float> Compute<F> for Ldam<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let margins = self.margins()?;
        let counts = [("samples_per_class", margins.len())];
        run_shifted_cross_entropy(self.reduction, call, &counts, self.scale, |y, c| {
            if c == y { -margins[y] } else { 0.0 }
        })
    }
}
