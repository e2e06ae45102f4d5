//! Logit-adjusted cross-entropy (Menon et al. 2021).

use ndarray::Array1;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_shifted_cross_entropy;
use crate::{Error, Float, Result};

loss_options! {
    /// Logit-adjusted cross-entropy: cross-entropy of `x_c + tau log pi_c`,
    /// where `pi` is the training set's class prior. Adding the log prior
    /// during training makes the plain `argmax x` at test time the
    /// balanced-error classifier: the long-tail fix of Menon et al.
    /// (`tau = 1` is the balanced softmax of Ren et al. 2020).
    ///
    /// Use it on long-tailed data instead of re-weighting
    /// ([`crate::class_balanced_weights`]): it keeps every sample's weight
    /// and moves the decision boundary instead; predict with the raw
    /// logits.
    ///
    /// # Formula
    /// ```text
    /// pi_c = n_c / sum_k n_k        z_c = x_c + tau log pi_c
    /// l = -log softmax(z)_y         d l / d x = softmax(z) - onehot(y)
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
    /// - `tau`: finite, `>= 0` (default 1).
    ///
    /// # Errors
    /// A call without `samples_per_class` ([`crate::Error::InvalidOption`]
    /// naming it), counts of another length than `C`, and the input
    /// errors of [`crate::CrossEntropy`] on labels. A finite logit whose
    /// adjusted value passes `F` is [`crate::Error::Overflow`] naming it.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CrossEntropy, Differentiable, Labels, LogitAdjusted, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 0.5, -1.0]];
    /// let labels = array![2_i64];
    /// let la = LogitAdjusted::new().with_samples_per_class(array![80.0, 15.0, 5.0])?;
    /// // The rare class's logit is lowered by log(0.05): its loss is larger.
    /// let adjusted = array![[2.0 + 0.8f64.ln(), 0.5 + 0.15f64.ln(), -1.0 + 0.05f64.ln()]];
    /// let want = CrossEntropy::new().forward(adjusted.view(), Labels::from(&labels))?;
    /// let value = la.forward(logits.view(), Labels::from(&labels))?;
    /// assert!((value - want).abs() < 1e-12);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// A. K. Menon, S. Jayasumana, A. S. Rawat, H. Jain, A. Veit and S.
    /// Kumar, "Long-tail learning via logit adjustment", ICLR 2021,
    /// <https://arxiv.org/abs/2007.07314>. J. Ren et al., "Balanced
    /// meta-softmax for long-tailed visual recognition", NeurIPS 2020.
    pub struct LogitAdjusted<F: Float> {
        /// The training set's count of each class.
        samples_per_class: Option<Array1<f64>> = None,
            /// Sets the training set's count of each class (finite, `> 0`).
            set with_samples_per_class(Array1<f64>) checked by class_counts;
        /// The temperature of the adjustment.
        tau: f64 = 1.0,
            /// Sets `tau`, finite and `>= 0` (default 1; 1 is the balanced
            /// softmax).
            set with_tau checked by non_negative;
    }

    /// Logit-adjusted cross-entropy: mean reduction, `tau = 1`; set
    /// `samples_per_class` before use.
    fn new();
}

/// The class counts a long-tail loss needs, or the error that says they
/// were never set.
pub(super) fn required_counts(counts: Option<&Array1<f64>>) -> Result<&Array1<f64>> {
    counts.ok_or(Error::InvalidOption {
        name: "samples_per_class",
        value: "none".into(),
        expected: "the training set's count of each class",
    })
}

/// The log prior `log(n_c / sum_k n_k)`, as `ln n_c - ln m - ln sum_k (n_k
/// / m)` with `m` the largest count: every term is finite for any finite
/// positive counts (their sum may pass `f64`, and `n_c / sum` may
/// underflow to 0 where its logarithm is an ordinary number).
fn log_prior(counts: &Array1<f64>) -> Array1<f64> {
    let m = counts.fold(0.0_f64, |m, &n| m.max(n));
    let ln_total = m.ln() + counts.iter().map(|n| n / m).sum::<f64>().ln();
    counts.mapv(|n| n.ln() - ln_total)
}

impl<F: Float> Compute<F> for LogitAdjusted<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let prior = log_prior(required_counts(self.samples_per_class.as_ref())?);
        let tau = self.tau;
        let counts = [("samples_per_class", prior.len())];
        run_shifted_cross_entropy(self.reduction, call, &counts, 1.0, |_, c| tau * prior[c])
    }
}
