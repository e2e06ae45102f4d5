//! Kullback-Leibler divergence from target probabilities to a softmax.

use crate::base::loss::{ByProbs, Call, Compute, Rows};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::{check_probabilities, check_scores, expect_shape};
use crate::engine::softmax_rows::{linear_target_grad, softmax_rows_2d};
use crate::{Float, Result};

loss_options! {
    /// KL divergence `KL(q || softmax(logits))` from target probabilities `q`,
    /// as PyTorch's `nn.KLDivLoss(reduction="batchmean")` applied to
    /// `log_softmax(logits)`.
    ///
    /// Use it to match a whole distribution rather than a label: knowledge
    /// distillation (a teacher's softened probabilities), soft or averaged
    /// annotations. Its gradient equals that of cross-entropy with
    /// probability targets ([`crate::ClassTarget::Probs`]); the value differs
    /// by the targets' entropy, so it is 0 when the prediction matches `q`.
    ///
    /// # Formula
    /// ```text
    /// log p_c = x_c - logsumexp(x)                  (log space)
    /// l_i = sum_c q_c (log q_c - log p_c),  where q_c log q_c = 0 if q_c = 0 (xlogy)
    /// dl_i/dx_c = Q p_c - q_c,  Q = sum_c q_c  (Q = 1 for normalized rows)
    /// ```
    ///
    /// # Shapes
    /// - logits: `(N, C)`; probs: `(N, C)`, each value in `[0, 1]`. Rows need
    ///   not sum to 1 (as in PyTorch); the formula above holds as written.
    /// - per-sample: `(N)`, the sum over classes of each row. (PyTorch's
    ///   `reduction="none"` keeps the `(N, C)` terms; their row sums are
    ///   these values.)
    /// - gradient: `(N, C)`.
    /// - `Mean` divides by `N`: PyTorch's `"batchmean"`, the true mean KL per
    ///   sample. PyTorch's plain `"mean"` divides by `N * C` instead; to
    ///   reproduce it, divide this loss (and its gradient) by `C`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default, batchmean), `Sum`, `None`.
    ///
    /// # Errors
    /// An empty batch or class axis, probs not of the logits' shape, a
    /// probability outside `[0, 1]` (or NaN), a gradient buffer not of shape
    /// `(N, C)`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, KlDivergence, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let kl = KlDivergence::new();
    /// let close = kl.forward(logits.view(), array![[0.7, 0.2, 0.1]].view())?;
    /// assert!((close - 0.005211463734495987).abs() < 1e-12);
    /// // A zero probability contributes nothing (0 log 0 = 0).
    /// let q = array![[0.5, 0.5, 0.0]];
    /// let (far, grad) = kl.forward_backward(logits.view(), q.view())?;
    /// assert!((far - 0.22388283571788803).abs() < 1e-12);
    /// assert!(grad.sum().abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// S. Kullback, R. A. Leibler, "On Information and Sufficiency", Annals of
    /// Mathematical Statistics 22(1), 1951,
    /// <https://doi.org/10.1214/aoms/1177729694>.
    /// PyTorch, `torch.nn.KLDivLoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.KLDivLoss.html>).
    /// Distillation: G. Hinton, O. Vinyals, J. Dean, "Distilling the Knowledge
    /// in a Neural Network", NIPS 2014 Deep Learning Workshop,
    /// <https://arxiv.org/abs/1503.02531>.
    pub struct KlDivergence<F: Float> {
    }

    /// KL divergence with mean (batchmean) reduction.
    fn new();
}

impl<F: Float> Compute<F> for KlDivergence<F> {
    type Sig = Rows<ByProbs>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: probs,
            grad,
            per,
        } = call;
        check_scores(&logits, &[], grad.as_ref())?;
        let shape = logits.shape();
        expect_shape("probs", probs.shape(), shape)?;
        check_probabilities("probs", &probs, "a probability in [0, 1]")?;
        let divisor = shape[0] as f64;
        let scale: F = self.reduction.grad_scale(divisor);
        let sum = softmax_rows_2d(
            logits,
            |i| probs.row(i),
            grad,
            per,
            false,
            |q, row, g| {
                let q = |c: usize| q[c];
                if let Some(g) = g {
                    let sum = (0..row.x.len()).fold(0.0, |acc, c| acc + q(c).as_f64());
                    linear_target_grad(g, scale, sum, q);
                }
                // Each term as q (log q - log p), so that a prediction close to
                // the target cancels term by term rather than between two sums.
                // Accumulated in f64: rows can be long.
                (0..row.x.len()).fold(0.0_f64, |acc, c| {
                    let qc = q(c);
                    if qc > F::zero() {
                        acc + qc.as_f64() * (qc.ln().as_f64() + row.nll(c))
                    } else {
                        acc
                    }
                })
            },
        );
        Ok(Totals {
            sum,
            divisor,
            what: "logits",
        })
    }
}
