//! The binary hinge loss of support-vector machines, and its square.

use crate::base::loss::{Call, Compute};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::signed_margins::{LabelConvention, ScoresAndSigns, run_signed};
use crate::{Float, Result};

loss_options! {
    /// The hinge loss `max(0, margin - y s)` of a real score `s` and a label
    /// `y` in `{-1, +1}`, optionally squared.
    ///
    /// Use it to train a linear or kernel classifier as a soft-margin SVM, or
    /// any binary scorer for which a confident correct score should cost
    /// nothing: samples with `y s >= margin` contribute neither loss nor
    /// gradient, so training concentrates on the ones near or across the
    /// boundary. It gives no probabilities; for those use a logistic loss. The
    /// squared variant is smooth (its gradient is continuous) and punishes
    /// large violations more.
    ///
    /// # Formula
    /// ```text
    /// z_i = margin - y_i s_i
    /// l_i = max(0, z_i)          d l_i / d s_i = -y_i  if z_i > 0, else 0
    /// squared:
    /// l_i = max(0, z_i)^2        d l_i / d s_i = -2 y_i z_i  if z_i > 0, else 0
    /// ```
    /// At the kink `z_i = 0` (`y s = margin`) the plain hinge is not
    /// differentiable; the gradient returned there is the subgradient 0, the
    /// choice of PyTorch's `relu` and of its `multi_margin_loss` kernel
    /// (a strict `z > 0`). Where the hinge is inactive the gradient is
    /// `-y * 0`, a signed zero (`-0.0` for `y = +1`), exactly as the reference
    /// cases have it. The squared hinge is differentiable everywhere.
    ///
    /// # Shapes
    /// - scores: `(N)`; labels: `(N)`, the same element type as the scores.
    /// - per-sample: `(N)`; gradient: `(N)`, with respect to the scores.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin`: a finite number `>= 0` (default 1). `margin = 0` gives the
    ///   perceptron loss `max(0, -y s)`.
    /// - `squared`: use `max(0, z)^2` (default `false`).
    /// - `label_convention`: [`LabelConvention::PlusMinusOne`] (default) or
    ///   [`LabelConvention::ZeroOne`] (0/1 labels, `0` read as `-1`).
    ///
    /// # Errors
    /// An empty batch, labels whose length is not `N`, a label outside the
    /// convention's two values ([`crate::Error::InvalidTarget`] naming
    /// `labels`), a negative or non-finite `margin`, a gradient buffer whose
    /// length is not `N`. A finite score whose loss is beyond the float type's
    /// range (the squared hinge of `|s|` above about `1.8e19` in `f32`), or a
    /// `Sum` of per-sample values beyond it, is an [`crate::Error::Overflow`]
    /// (and the gradient buffer may then be partly written). Non-finite scores
    /// are not checked and propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Hinge, Loss};
    /// use ndarray::array;
    ///
    /// let scores = array![0.5_f64, -2.0, 1.5];
    /// let labels = array![1.0, -1.0, -1.0];
    /// let hinge = Hinge::new();
    /// // max(0, 1 - 0.5) = 0.5, max(0, 1 - 2) = 0, max(0, 1 + 1.5) = 2.5
    /// let (loss, grad) = hinge.forward_backward(scores.view(), labels.view())?;
    /// assert!((loss - 1.0).abs() < 1e-15);
    /// assert_eq!(grad, array![-1.0 / 3.0, 0.0, 1.0 / 3.0]);
    ///
    /// let squared = Hinge::new().with_squared(true);
    /// assert!((squared.forward(scores.view(), labels.view())? - 6.5 / 3.0).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// C. Cortes and V. Vapnik, "Support-vector networks", Machine Learning
    /// 20(3):273-297, 1995, <https://doi.org/10.1007/BF00994018>.
    /// The squared hinge is the loss of the L2-loss SVM, see R.-E. Fan et al.,
    /// "LIBLINEAR: A Library for Large Linear Classification", JMLR 9:1871-1874,
    /// 2008, <https://www.jmlr.org/papers/v9/fan08a.html>.
    pub struct Hinge<F: Float> {
        /// The margin.
        margin: f64 = 1.0,
            /// Sets the margin, a finite number `>= 0` (default 1).
            set with_margin checked by non_negative;
        /// Whether the hinge is squared.
        squared: bool = false,
            /// Squares the hinge, `max(0, margin - y s)^2` (default `false`).
            set with_squared;
        /// How labels are written.
        label_convention: LabelConvention = LabelConvention::PlusMinusOne,
            /// Sets how labels are written (default [`LabelConvention::PlusMinusOne`]).
            set with_label_convention;
    }

    /// The hinge loss: mean reduction, margin 1, not squared, labels in
    /// `{-1, +1}`.
    fn new();
}

impl<F: Float> Compute<F> for Hinge<F> {
    type Sig = ScoresAndSigns;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let (margin, squared) = (self.margin, self.squared);
        run_signed(self.reduction, self.label_convention, call, |y, s| {
            // In f64: a margin beyond f32 (1e39) fits, and z^2 of an f32 z
            // cannot overflow.
            let y = y.as_f64();
            let z = margin - y * s.as_f64();
            // NaN takes the active branch so that it propagates.
            if z > 0.0 || z.is_nan() {
                if squared {
                    (z * z, -y * (2.0 * z))
                } else {
                    (z, -y)
                }
            } else {
                (0.0, -y * 0.0)
            }
        })
    }
}
