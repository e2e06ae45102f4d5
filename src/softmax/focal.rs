//! Softmax (multi-class) focal loss.

use ndarray::Array1;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::{check_weights, non_negative};
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::{one_hot_grad_f64, term};
use crate::numerics::prob_and_complement;
use crate::{Float, Result};

/// The factor `alpha` of [`SoftmaxFocal`]: one number for every class, or
/// one per class.
#[derive(Clone, Debug, PartialEq)]
pub enum FocalAlpha<F> {
    /// The same factor for every class (the default is 1). In the softmax
    /// form a scalar only scales the loss and its gradient; it is not the
    /// `alpha` / `1 - alpha` balance of the sigmoid focal loss.
    Scalar(f64),
    /// `alpha[y]` for a sample of class `y`: a class weight, for example
    /// from [`crate::class_balanced_weights`].
    PerClass(Array1<F>),
}

loss_options! {
    /// Softmax focal loss: cross-entropy scaled down by `(1 - p_y)^gamma` on
    /// samples the model already gets right, so that training focuses on the
    /// hard ones.
    ///
    /// Use it for single-label classification with many easy samples (heavy
    /// class imbalance, a dominant background class); `gamma = 2` is the usual
    /// start, and per-class `alpha` adds class weighting on top. With
    /// `gamma = 0` it is (weighted) cross-entropy, except that `Mean` always
    /// divides by `N`.
    ///
    /// # Formula
    /// ```text
    /// log p_y = x_y - logsumexp(x)                 (log space)
    /// 1 - p_y = -expm1(log p_y)                    (no cancellation near p_y = 1)
    /// l_i     = -alpha_{y_i} (1 - p_{y_i})^gamma log p_{y_i}
    /// dl_i/dx_c = G (p_c - [c == y_i]),
    ///   G = alpha_y (1 - p_y)^gamma (1 - gamma p_y log(p_y) / (1 - p_y))
    /// ```
    /// `G` is finite for every finite logit and every `gamma >= 0`. Where
    /// `p_y` rounds to exactly 1 (a very confident correct row) the factor
    /// `log(p_y) / (1 - p_y)` takes its limit `-1`; so for `gamma > 0` the
    /// value and the gradient there are exactly 0, their limits, even for
    /// `gamma < 1` where `d(1 - p)^gamma / dp` itself diverges at `p = 1`.
    /// For `gamma = 0` the factor `(1 - p_y)^0` is 1 (`0^0 = 1`), so the loss
    /// equals cross-entropy there too.
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`, whatever `alpha` is (unlike weighted
    ///   [`crate::CrossEntropy`], which divides by the sum of the label weights).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `gamma`: the focusing exponent, finite and `>= 0` (default 2, as in
    ///   Lin et al.).
    /// - `alpha`: [`FocalAlpha::Scalar`] (finite, `>= 0`; default 1) via
    ///   [`SoftmaxFocal::with_alpha`], or [`FocalAlpha::PerClass`] (`C` finite
    ///   weights `>= 0`) via [`SoftmaxFocal::with_class_alpha`].
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a per-class `alpha` whose length is not `C`, a gradient buffer not of
    /// shape `(N, C)`; from the setters, a negative or non-finite `gamma` or
    /// `alpha`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, SoftmaxFocal};
    /// use ndarray::array;
    ///
    /// // p_y = 0.3: -(1 - 0.3)^2 ln 0.3 = 0.49 * 1.2040 (a hard sample keeps
    /// // half its cross-entropy) ...
    /// let focal = SoftmaxFocal::new().with_gamma(2.0)?;
    /// let hard = focal.forward(array![[0.3_f64.ln(), 0.7_f64.ln()]].view(), array![0].view())?;
    /// assert!((hard - 0.5899466741197086).abs() < 1e-12);
    /// // ... p_y = 0.8: 0.04 * 0.2231, an easy sample keeps 4% of it.
    /// let easy = focal.forward(array![[0.8_f64.ln(), 0.2_f64.ln()]].view(), array![0].view())?;
    /// assert!((easy - 0.00892574205256839).abs() < 1e-12);
    ///
    /// // Per-class alpha, and the gradient into a buffer.
    /// let focal = SoftmaxFocal::new().with_class_alpha(array![0.25, 0.75])?;
    /// let mut grad = ndarray::Array2::zeros((1, 2));
    /// let loss = focal.forward_backward_into(
    ///     array![[0.0_f64, 0.0]].view(), array![1].view(), grad.view_mut())?;
    /// assert!((loss - 0.75 * 0.25 * 2f64.ln()).abs() < 1e-12);
    /// assert!(grad[[0, 1]] < 0.0 && (grad[[0, 0]] + grad[[0, 1]]).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for
    /// Dense Object Detection", ICCV 2017, <https://arxiv.org/abs/1708.02002>
    /// (the paper states the binary form and notes that the multi-class
    /// extension is straightforward; this is that extension on the softmax).
    pub struct SoftmaxFocal<F: Float> {
        /// The focusing exponent `gamma`.
        gamma: f64 = 2.0,
            /// Sets the focusing exponent `gamma`, finite and `>= 0` (default 2).
            set with_gamma checked by non_negative;
        alpha: FocalAlpha<F> = FocalAlpha::Scalar(1.0);
    }

    /// Softmax focal loss with mean reduction, `gamma = 2`, `alpha = 1`.
    fn new();
}

impl<F: Float> SoftmaxFocal<F> {
    /// Sets one `alpha` for every class, finite and `>= 0` (default 1).
    pub fn with_alpha(mut self, alpha: f64) -> Result<Self> {
        non_negative("alpha", alpha)?;
        self.alpha = FocalAlpha::Scalar(alpha);
        Ok(self)
    }

    /// Sets one `alpha` per class (finite, `>= 0`; its length must be the
    /// logits' `C`, checked at each call).
    pub fn with_class_alpha(mut self, alpha: Array1<F>) -> Result<Self> {
        check_weights("alpha", &alpha.view())?;
        self.alpha = FocalAlpha::PerClass(alpha);
        Ok(self)
    }

    /// The factor `alpha`.
    pub fn alpha(&self) -> &FocalAlpha<F> {
        &self.alpha
    }
}

impl<F: Float> Compute<F> for SoftmaxFocal<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let (scalar, per_class) = match &self.alpha {
            FocalAlpha::Scalar(a) => (*a, None),
            FocalAlpha::PerClass(a) => (1.0, Some(a)),
        };
        let alpha_len = per_class.map(|a| ("alpha", a.len()));
        let alpha = |y: usize| per_class.map_or(scalar, |a| a[y].as_f64());
        let gamma = self.gamma;
        run_on_labels(
            self.reduction,
            call,
            alpha_len.as_slice(),
            false,
            |y, row, g, scale| {
                // One row's scalars, in f64: an alpha or gamma beyond F's
                // range (1e39 in f32) times a modulator of 0 is 0, not NaN.
                let a = alpha(y);
                let nll = row.nll(y);
                let (modulator, slope) = focal_modulator(nll, gamma);
                if let Some(g) = g {
                    let coef = scale.as_f64() * a * (modulator + slope);
                    one_hot_grad_f64(g, y, coef);
                }
                term(a * modulator, nll)
            },
        )
    }
}

/// `(1 - p)^gamma` and `gamma p (-log p) (1 - p)^(gamma - 1)` from
/// `nll = -log p`: the modulator and the term its derivative adds to the
/// gradient's coefficient (`d/dz_y [-(1 - p)^gamma log p]` is
/// `(modulator + slope) (p - 1)`).
///
/// A whole `gamma` up to 4 (2, the paper's, is the common one) takes the
/// modulator as a product of `1 - p`s, as PyTorch's `pow` does; any other
/// in log space, so that neither a huge `gamma` nor a `p` close to 0 or 1
/// makes `0 * inf`: `ln(1 - p)` is `ln_1p(-p)` for small `p` and
/// `ln(-expm1(log p))` near 1. The slope is `gamma p r (1 - p)^gamma` with
/// `r = -log p / (1 - p)`, which tends to 1 as `p -> 1`.
fn focal_modulator(nll: f64, gamma: f64) -> (f64, f64) {
    if gamma == 0.0 {
        return (1.0, 0.0);
    }
    let (p, q) = prob_and_complement(nll);
    let q = q.max(0.0);
    let modulator = if gamma == 1.0 {
        q
    } else if gamma == 2.0 {
        q * q
    } else if gamma == 3.0 {
        q * q * q
    } else if gamma == 4.0 {
        (q * q) * (q * q)
    } else {
        let ln_q = if p < 0.5 { (-p).ln_1p() } else { q.ln() };
        (gamma * ln_q).exp()
    };
    let r = if q > 0.0 { nll / q } else { 1.0 };
    // p (-log p) tends to 0 with p: at p = 0 (a -log p beyond f64) the
    // slope is 0, not 0 * inf.
    let slope = if p > 0.0 {
        gamma * p * r * modulator
    } else {
        0.0
    };
    (modulator, slope)
}
