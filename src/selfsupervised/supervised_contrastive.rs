//! The supervised contrastive loss (Khosla et al. 2020).

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::expect_samples_and_features;
use crate::selfsupervised::engine::contrast;
use crate::{Float, Result};

loss_options! {
    /// The supervised contrastive loss (SupCon, the paper's `L_out`): each
    /// embedding is pulled toward every other embedding of its label and
    /// pushed from the rest of the batch.
    ///
    /// Use it to pre-train an encoder with labels (then fit a linear
    /// classifier on top), or as an auxiliary loss beside cross-entropy;
    /// batches of several views per example work as they are (give each
    /// view its example's label). Without labels, [`crate::NtXent`] is the
    /// same loss with one positive per row.
    ///
    /// # Formula
    /// ```text
    /// u_i  = z_i / max(|z_i|, 1e-12)                 (PyTorch's F.normalize)
    /// s_ik = u_i . u_k / tau
    /// P(i) = { p != i : y_p = y_i }
    /// l_i  = -1/|P(i)| sum_{p in P(i)} ( s_ip - log sum_{k != i} exp(s_ik) )
    /// ```
    /// The mean over the positives is outside the log (`L_out`, the form
    /// the paper finds better). An anchor without a positive (the only one
    /// of its label in the batch) is left out: value 0, no gradient.
    /// Computed in `f64` in log space, every exponential at most 1 (see
    /// [`crate::NtXent`]); the gradient goes through the normalization.
    /// The official code's extra factor `tau / base_temperature` is 1 here
    /// (its default `base_temperature = temperature`).
    ///
    /// # Shapes
    /// - input: `embeddings` `(N, D)`; target: labels `(N)` of any integer
    ///   type ([`crate::Labels`]), compared only for equality (any value,
    ///   negative ones included).
    /// - per-sample: `(N)`, 0 for an anchor without a positive; gradient:
    ///   `(N, D)`.
    /// - `Mean` divides by the number of anchors with at least one positive.
    ///   When no anchor has one, `Mean` is 0 with a zero gradient, as
    ///   cross-entropy's `Mean` over a batch whose every label is ignored
    ///   (PyTorch would give NaN).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `temperature` `tau`: finite, `> 0` (default 0.07, the official
    ///   `SupConLoss`).
    ///
    /// # Errors
    /// No sample or no feature ([`crate::Error::EmptyBatch`]); labels of
    /// another length ([`crate::Error::ShapeMismatch`] naming `labels`); a
    /// gradient buffer of another shape (naming `grad`); a temperature that
    /// is not finite and `> 0` at construction. A finite batch whose value
    /// or gradient does not fit the float type (a temperature near 0) is
    /// [`crate::Error::Overflow`], never an infinite value.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, Reduction, SupervisedContrastive};
    /// use ndarray::array;
    ///
    /// let z = array![[1.0_f64, 0.0], [2.0, 0.0], [0.0, 1.0]];
    /// let labels = array![7_i64, 7, -1];
    /// let loss = SupervisedContrastive::new().with_temperature(1.0)?;
    /// // Anchors 0 and 1: cosine 1 with the positive, 0 with the other row.
    /// // Anchor 2 has no positive and is left out of the mean.
    /// let value = loss.forward(&z, &labels)?;
    /// assert!((value - (1.0 + (-1.0_f64).exp()).ln()).abs() < 1e-12);
    /// let per = loss.with_reduction(Reduction::None).per_sample(&z, &labels)?;
    /// assert_eq!(per[2], 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
    /// <https://arxiv.org/abs/2004.11362>.
    #[derive(PartialEq)]
    pub struct SupervisedContrastive {
        /// The temperature `tau`.
        temperature: f64 = 0.07,
            /// Sets the temperature `tau`, finite and `> 0` (default 0.07).
            set with_temperature checked by positive;
    }

    /// The supervised contrastive loss: mean over the anchors with a
    /// positive, temperature 0.07.
    fn new();
}

impl<F: Float> Compute<F> for SupervisedContrastive {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: z,
            target: labels,
            grad,
            per,
        } = call;
        expect_samples_and_features("embeddings", z.shape())?;
        labels.expect_shape("labels", &z.shape()[..1])?;
        let groups: Vec<i128> = labels.iter().collect();
        contrast(z, &groups, self.temperature, self.reduction, grad, per)
    }
}
