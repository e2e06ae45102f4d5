//! Symmetric cross-entropy: cross-entropy plus reverse cross-entropy.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::{one_hot_grad_f64, term};
use crate::numerics::prob_and_complement;
use crate::{Float, Result};

loss_options! {
    /// Symmetric cross-entropy `alpha CE + beta RCE`: cross-entropy plus the
    /// reverse cross-entropy `-sum_c p_c log q_c` of the one-hot label `q`,
    /// with `log 0` replaced by the constant `log_zero`.
    ///
    /// Use it when labels are noisy: the reverse term is bounded and
    /// noise-tolerant and speeds up learning of the hard classes, while a
    /// smaller `alpha` keeps some of cross-entropy's fast fitting without
    /// letting it overfit the wrong labels.
    ///
    /// # Formula
    /// ```text
    /// log p_y = x_y - logsumexp(x)                   (log space)
    /// CE_i  = -log p_{y_i}
    /// RCE_i = -sum_c p_c log q_c = -log_zero (1 - p_{y_i})   (log q_y = log 1 = 0)
    /// l_i   = alpha CE_i + beta RCE_i,  1 - p_y = -expm1(log p_y)
    /// dl_i/dx_c = (alpha - beta log_zero p_y) (p_c - [c == y_i])
    /// ```
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `alpha`: the cross-entropy weight, finite and `>= 0` (default 0.1,
    ///   the paper's CIFAR-10 setting).
    /// - `beta`: the reverse cross-entropy weight, finite and `>= 0` (default
    ///   1.0, the paper's CIFAR-10 setting).
    /// - `log_zero`: the value `A` used for `log 0`, finite and `< 0` (default
    ///   -4, as in the paper). Widely copied versions of the authors' code
    ///   instead clamp the one-hot target at `1e-4`, that is
    ///   `log_zero = ln(1e-4) ≈ -9.21` (and also clamp `p` at `1e-7`, which
    ///   this loss does not); pass `1e-4_f64.ln()` to match that term.
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a gradient buffer not of shape `(N, C)`; from the setters, a negative
    /// or non-finite `alpha` or `beta`, a `log_zero` that is not finite and
    /// negative.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, SymmetricCrossEntropy};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let labels = array![0_usize];
    /// // CE = 0.41703, p_y = 0.65900: 0.1 * 0.41703 + 1.0 * 4 * (1 - 0.65900)
    /// let sce = SymmetricCrossEntropy::new();
    /// let loss = sce.forward(logits.view(), labels.view())?;
    /// assert!((loss - 1.4056984460839113).abs() < 1e-12);
    ///
    /// // The reference setting: alpha = 1, beta = 0.5, A = -6.
    /// let sce = SymmetricCrossEntropy::new()
    ///     .with_alpha(1.0)?
    ///     .with_beta(0.5)?
    ///     .with_log_zero(-6.0)?;
    /// let (loss, grad) = sce.forward_backward(logits.view(), labels.view())?;
    /// assert!((loss - (0.4170300162778333 + 3.0 * (1.0 - 0.659001138885968))).abs() < 1e-12);
    /// assert!(grad[[0, 0]] < 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// Y. Wang, X. Ma, Z. Chen, Y. Luo, J. Yi, J. Bailey, "Symmetric Cross
    /// Entropy for Robust Learning with Noisy Labels", ICCV 2019,
    /// <https://arxiv.org/abs/1908.06112>.
    pub struct SymmetricCrossEntropy<F: Float> {
        /// The cross-entropy weight `alpha`.
        alpha: f64 = 0.1,
            /// Sets the cross-entropy weight `alpha`, finite and `>= 0` (default 0.1).
            set with_alpha checked by non_negative;
        /// The reverse cross-entropy weight `beta`.
        beta: f64 = 1.0,
            /// Sets the reverse cross-entropy weight `beta`, finite and `>= 0`
            /// (default 1).
            set with_beta checked by non_negative;
        /// The stand-in for `log 0`.
        log_zero: f64 = -4.0,
            /// Sets `log_zero`, the stand-in for `log 0`, finite and `< 0`
            /// (default -4).
            set with_log_zero checked by negative;
    }

    /// Symmetric cross-entropy with mean reduction, `alpha = 0.1`,
    /// `beta = 1`, `log_zero = -4`.
    fn new();
}

impl<F: Float> Compute<F> for SymmetricCrossEntropy<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let (alpha, beta) = (self.alpha, self.beta);
        // The reverse term's weight on (1 - p_y) is beta (-log_zero),
        // positive since log_zero < 0; in f64 (alpha or beta may be beyond
        // F), as beta times (-log_zero) times p, so that a huge beta meets
        // a p of 0 as 0.
        let a_zero = -self.log_zero;
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            let nll = row.nll(y);
            let (p, q) = prob_and_complement(nll);
            if let Some(g) = g {
                one_hot_grad_f64(g, y, scale.as_f64() * (alpha + beta * (a_zero * p)));
            }
            beta * (a_zero * q) + term(alpha, nll)
        })
    }
}
