//! The exponential loss of AdaBoost.

use crate::base::loss::{Call, Compute};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::signed_margins::{LabelConvention, ScoresAndSigns, run_signed};
use crate::{Float, Result};

loss_options! {
    /// The exponential loss `exp(-y s)` of a real score `s` and a label `y` in
    /// `{-1, +1}`: the loss AdaBoost minimizes.
    ///
    /// Use it to reproduce boosting (each sample's gradient `-y exp(-y s)` is
    /// AdaBoost's sample weight), or where misclassified samples must dominate.
    /// It grows exponentially with the violation, so one mislabeled point with
    /// a confident wrong score can outweigh the whole batch; on noisy labels a
    /// logistic or hinge loss is the safer choice. It is smooth and convex.
    ///
    /// # Formula
    /// ```text
    /// l_i = exp(-y_i s_i)        d l_i / d s_i = -y_i exp(-y_i s_i)
    /// ```
    ///
    /// # Shapes
    /// - scores: `(N)`; labels: `(N)`, the same element type as the scores.
    /// - per-sample: `(N)`; gradient: `(N)`, with respect to the scores.
    /// - `Mean` divides by `N`.
    ///
    /// # Overflow
    /// `exp(-y s)` exceeds the largest finite value for `y s` below about
    /// `-88.72` in `f32` and `-709.78` in `f64`. Such a value cannot be
    /// returned correctly, and returning `inf` (or saturating to the largest
    /// finite value) would pass a wrong number or a non-finite gradient into
    /// training, so the call returns [`crate::Error::Overflow`] naming the
    /// sample, for example `scores[1]: exp(-y * s) overflows f32: expected at
    /// most 3.4028235e38, got exp(100), about 2.688e43`. This holds whatever the
    /// reduction (a `Mean` is defined through the per-sample values). A `Sum`
    /// of finite per-sample values beyond the range is the same error with an
    /// empty index. The gradient `-y exp(-y s)` is finite whenever the value
    /// is, so a returned gradient never holds `inf` or NaN for finite scores;
    /// after an error the gradient buffer may be partly written. For large
    /// positive `y s` the loss and gradient round to 0 (or a subnormal), the
    /// nearest representable values. Non-finite scores are not checked and
    /// propagate.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `label_convention`: [`LabelConvention::PlusMinusOne`] (default) or
    ///   [`LabelConvention::ZeroOne`] (0/1 labels, `0` read as `-1`).
    ///
    /// # Errors
    /// An empty batch, labels whose length is not `N`, a label outside the
    /// convention's two values ([`crate::Error::InvalidTarget`] naming
    /// `labels`), a gradient buffer whose length is not `N`, and overflow as
    /// described above.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Exponential, Loss};
    /// use ndarray::array;
    ///
    /// let scores = array![0.0_f64, 2.0];
    /// let labels = array![1.0, -1.0];
    /// let exp_loss = Exponential::new();
    /// // (exp(0) + exp(2)) / 2
    /// let (loss, grad) = exp_loss.forward_backward(scores.view(), labels.view())?;
    /// assert!((loss - (1.0 + 2f64.exp()) / 2.0).abs() < 1e-15);
    /// assert!((grad[1] - 2f64.exp() / 2.0).abs() < 1e-15);
    ///
    /// // A score far on the wrong side is an error, not `inf`.
    /// let err = Exponential::<f32>::new()
    ///     .forward(array![-100.0_f32].view(), array![1.0_f32].view())
    ///     .unwrap_err();
    /// assert!(matches!(err, classloss::Error::Overflow { .. }));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// Y. Freund and R. E. Schapire, "A decision-theoretic generalization of
    /// on-line learning and an application to boosting", Journal of Computer
    /// and System Sciences 55(1):119-139, 1997,
    /// <https://doi.org/10.1006/jcss.1997.1504>.
    /// AdaBoost as stagewise minimization of `exp(-y s)`: J. Friedman,
    /// T. Hastie and R. Tibshirani, "Additive logistic regression: a
    /// statistical view of boosting", Annals of Statistics 28(2):337-407, 2000,
    /// <https://doi.org/10.1214/aos/1016218223>.
    pub struct Exponential<F: Float> {
        /// How labels are written.
        label_convention: LabelConvention = LabelConvention::PlusMinusOne,
            /// Sets how labels are written (default [`LabelConvention::PlusMinusOne`]).
            set with_label_convention;
    }

    /// The exponential loss: mean reduction, labels in `{-1, +1}`.
    fn new();
}

impl<F: Float> Compute<F> for Exponential<F> {
    type Sig = ScoresAndSigns;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        run_signed(self.reduction, self.label_convention, call, |y, s| {
            // In f64, where exp of an f32 exponent fits (and the gradient,
            // divided by N, may fit F where exp(-y s) does not).
            let e = (-y * s).as_f64().exp();
            (e, -y.as_f64() * e)
        })
    }
}
