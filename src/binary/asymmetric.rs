//! The asymmetric loss for multi-label classification (Ridnik et al. 2021).

use crate::base::loss::{ByProbs, Call, Compute, Rows};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::rows::run_rows_on_targets;
use crate::numerics::logistic_terms;
use crate::{Float, Result};

/// The floor of the logarithms, as in the paper's code.
const EPS: f64 = 1e-8;

loss_options! {
    /// The asymmetric loss (ASL) for multi-label classification: focal
    /// weighting with separate exponents for positives and negatives, and
    /// a probability margin `clip` that discards easy negatives outright.
    ///
    /// Use it for multi-label data where each image has few of many labels
    /// (most terms are easy negatives): the negatives are down-weighted
    /// hard (`gamma_neg`, default 4) while the rare positives keep their
    /// weight (`gamma_pos`), and negatives predicted below `clip` cost
    /// nothing, which also discards some mislabeled negatives.
    ///
    /// # Formula
    /// ```text
    /// p = sigmoid(x)          p_m = min(1 - p + clip, 1)   (the negative's probability, shifted)
    /// l_i = -sum_c [ t (1 - p)^gamma_pos log max(p, 1e-8)
    ///              + (1 - t) (1 - p_m)^gamma_neg log max(p_m, 1e-8) ]
    /// ```
    /// The gradient flows through the focusing weights too (the paper's
    /// code detaches them only as an option). Computed in `f64` from
    /// `exp(-|x|)`, so every finite logit gives a finite value.
    ///
    /// # Shapes
    /// - logits `(N, C)`; targets `(N, C)`, 0 or 1, the logits' element
    ///   type.
    /// - per-sample `(N)`, the sum over classes; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `gamma_neg`: finite, `>= 0` (default 4).
    /// - `gamma_pos`: finite, `>= 0` (default 1).
    /// - `clip`: the probability margin, in `[0, 1]` (default 0.05; 0
    ///   turns it off).
    ///
    /// The defaults are those of the paper's code (`AsymmetricLoss`).
    /// With `gamma_neg = gamma_pos = 0` and `clip = 0` it is BCE with
    /// logits summed over classes (up to the `1e-8` floor).
    ///
    /// # Errors
    /// An empty batch or no classes, targets or a gradient buffer of
    /// another shape, a target other than 0 or 1
    /// ([`crate::Error::InvalidTarget`] naming `targets`); an option out of
    /// range at construction. Non-finite logits propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Asymmetric, Differentiable, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[3.0_f64, -4.0, -1.0]];
    /// let targets = array![[1.0, 0.0, 0.0]];
    /// let asl = Asymmetric::new();
    /// let (value, grad) = asl.forward_backward(logits.view(), targets.view())?;
    /// // The negative at -4 is below the clip: it costs nothing.
    /// assert_eq!(grad[[0, 1]], 0.0);
    /// assert!(value > 0.0 && grad[[0, 0]] < 0.0 && grad[[0, 2]] > 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M.
    /// Protter and L. Zelnik-Manor, "Asymmetric loss for multi-label
    /// classification", ICCV 2021, <https://arxiv.org/abs/2009.14119>.
    #[derive(PartialEq)]
    pub struct Asymmetric<F: Float> {
        /// The focusing exponent of the negatives.
        gamma_neg: f64 = 4.0,
            /// Sets the negatives' focusing exponent, finite and `>= 0` (default 4).
            set with_gamma_neg checked by non_negative;
        /// The focusing exponent of the positives.
        gamma_pos: f64 = 1.0,
            /// Sets the positives' focusing exponent, finite and `>= 0` (default 1).
            set with_gamma_pos checked by non_negative;
        /// The probability margin of the negatives.
        clip: f64 = 0.05,
            /// Sets the probability margin, in `[0, 1]` (default 0.05; 0 turns it off).
            set with_clip checked by unit_interval;
    }

    /// ASL with the paper's code defaults: `gamma_neg` 4, `gamma_pos` 1,
    /// `clip` 0.05, mean reduction.
    fn new();
}

/// `b^g` with `0^0 = 1`, and `g * b^(g - 1) * factor` written so that a
/// zero `g` or `factor` gives 0 (not `0 * inf`).
fn focusing(b: f64, g: f64) -> f64 {
    if g == 0.0 { 1.0 } else { b.powf(g) }
}

fn focusing_slope(b: f64, g: f64, factor: f64) -> f64 {
    if g == 0.0 || factor == 0.0 {
        0.0
    } else {
        g * b.powf(g - 1.0) * factor
    }
}

impl<F: Float> Asymmetric<F> {
    /// `(l, d l / d x)` of one element.
    fn term(&self, x: f64, positive: bool) -> (f64, f64) {
        let s = logistic_terms(x);
        let (p, q) = (s.sigmoid, s.sigmoid_neg); // q = 1 - p
        let dp = p * q; // d p / d x
        if positive {
            // -(1 - p)^g log max(p, eps); log p = -softplus(-x).
            let g = self.gamma_pos;
            let log = if p > EPS { -s.softplus_neg } else { EPS.ln() };
            let w = focusing(q, g);
            // d w / d x = -g (1-p)^(g-1) dp; d log / d x = (1 - p) where p > eps.
            let dw = -focusing_slope(q, g, dp);
            let dlog = if p > EPS { q } else { 0.0 };
            (-w * log, -(dw * log + w * dlog))
        } else {
            // p_m = min(1 - p + clip, 1): flat at 1 (no loss) where p <= clip.
            let clip = self.clip;
            if p <= clip {
                return (0.0, 0.0);
            }
            let g = self.gamma_neg;
            let pm = if clip == 0.0 { q } else { (q + clip).min(1.0) };
            let one_minus_pm = p - clip; // > 0 here
            let log = if pm > EPS { pm.ln() } else { EPS.ln() };
            let w = focusing(one_minus_pm, g);
            // d (1 - p_m) / d x = dp; d p_m / d x = -dp.
            let dw = focusing_slope(one_minus_pm, g, dp);
            let dlog = if pm > EPS { -dp / pm } else { 0.0 };
            (-w * log, -(dw * log + w * dlog))
        }
    }
}

impl<F: Float> Compute<F> for Asymmetric<F> {
    type Sig = Rows<ByProbs>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let zero_one = |v: F| v == F::zero() || v == F::one();
        run_rows_on_targets(
            self.reduction,
            call,
            &[],
            ("0 or 1", zero_one),
            |t, x, mut sink| {
                let mut value = 0.0_f64;
                for (k, (&x, &t)) in x.iter().zip(&t).enumerate() {
                    let (l, d) = self.term(x.as_f64(), t == F::one());
                    value += l;
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.set(k, d);
                    }
                }
                value
            },
        )
    }
}
