//! Soft bootstrapping: cross-entropy toward a blend of the label and the
//! model's own prediction.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::term;
use crate::{Float, Result};

loss_options! {
    /// Soft bootstrapping: cross-entropy toward `beta one_hot(y) + (1 - beta) p`,
    /// where `p` is the model's own softmax, differentiated through `p` as well.
    ///
    /// Use it when some labels are wrong: the model's prediction takes a share
    /// `1 - beta` of the target, so a confident prediction that disagrees with
    /// a (likely wrong) label is penalized less. Since the prediction term is
    /// `(1 - beta)` times the entropy of `p`, this is cross-entropy plus an
    /// entropy penalty that rewards confident predictions. With `beta = 1` it
    /// is cross-entropy. See [`crate::HardBootstrapping`] for the variant that
    /// uses the predicted class instead of `p`.
    ///
    /// # Formula
    /// ```text
    /// log p_c = x_c - logsumexp(x)                            (log space)
    /// l_i = -sum_c (beta [c == y_i] + (1 - beta) p_c) log p_c
    ///     = beta (-log p_{y_i}) + (1 - beta) H(p),   H(p) = -sum_c p_c log p_c
    /// dl_i/dx_k = beta (p_k - [k == y_i]) - (1 - beta) p_k (log p_k + H(p))
    /// ```
    /// The gradient flows through the `p` in the target, as in the reference
    /// (PyTorch autograd without `detach`): with `p` held constant the
    /// prediction term's gradient, `sum_c p_c * p_k - p_k`, would be zero and
    /// the loss would be `beta` times cross-entropy as far as training sees.
    /// Terms with `p_c = 0` (underflow) contribute 0, as `0 log 0 = 0`.
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `beta`: the label's share of the target, in `[0, 1]` (default 0.95,
    ///   the paper's setting for soft bootstrapping).
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a gradient buffer not of shape `(N, C)`; from the setter, `beta` outside
    /// `[0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, SoftBootstrapping};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let labels = array![0_usize];
    /// // CE = 0.41703, H(p) = 0.84674: 0.95 * 0.41703 + 0.05 * 0.84674
    /// let soft = SoftBootstrapping::new();
    /// let (loss, grad) = soft.forward_backward(logits.view(), labels.view())?;
    /// assert!((loss - 0.43851542440195423).abs() < 1e-12);
    /// assert!(grad.sum().abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// S. Reed, H. Lee, D. Anguelov, C. Szegedy, D. Erhan, A. Rabinovich,
    /// "Training Deep Neural Networks on Noisy Labels with Bootstrapping",
    /// ICLR 2015 workshop, <https://arxiv.org/abs/1412.6596>.
    pub struct SoftBootstrapping<F: Float> {
        /// The label's share `beta`.
        beta: f64 = 0.95,
            /// Sets the label's share `beta` in `[0, 1]` (default 0.95).
            set with_beta checked by unit_interval;
    }

    /// Soft bootstrapping with mean reduction and `beta = 0.95`.
    fn new();
}

impl<F: Float> Compute<F> for SoftBootstrapping<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let beta = F::lit(self.beta);
        let rest = F::lit(1.0 - self.beta);
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            // From log p in both passes, so that the fused value equals
            // `forward` bit for bit.
            let entropy = (0..row.x.len()).fold(F::zero(), |acc, c| {
                let log_p = row.log_p(c);
                acc - p_log_p(log_p.exp(), log_p)
            });
            if let Some(g) = g {
                for (k, pk) in g.probs().iter_mut().enumerate() {
                    let p = *pk;
                    let label = if k == y { beta } else { F::zero() };
                    let prediction = p_log_p(p, row.log_p(k)) + p * entropy;
                    *pk = scale * (beta * p - label - rest * prediction);
                }
            }
            (rest * entropy).as_f64() + term(beta.as_f64(), row.nll(y))
        })
    }
}

/// `p * log_p`, 0 where `p` is 0 (even if `log_p` overflowed to `-inf`).
#[inline]
fn p_log_p<F: Float>(p: F, log_p: F) -> F {
    if p > F::zero() { p * log_p } else { F::zero() }
}
