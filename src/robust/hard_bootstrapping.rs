//! Hard bootstrapping: cross-entropy toward a blend of the label and the
//! model's predicted class.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::{sparse_target_grad, term};
use crate::{Float, Result};

loss_options! {
    /// Hard bootstrapping: cross-entropy toward
    /// `beta one_hot(y) + (1 - beta) one_hot(z)`, where `z = argmax p` is the
    /// model's predicted class, held constant.
    ///
    /// Use it when some labels are wrong: a share `1 - beta` of the target
    /// follows the model's own decision, so a confident prediction that
    /// disagrees with a (likely wrong) label is pulled toward the label less.
    /// With `beta = 1`, or where the prediction already equals the label, it
    /// is cross-entropy. See [`crate::SoftBootstrapping`] for the variant that
    /// uses the whole distribution `p`.
    ///
    /// # Formula
    /// ```text
    /// log p_c = x_c - logsumexp(x)                            (log space)
    /// z_i = argmax_c x_c       (the first one on ties, as torch.argmax)
    /// l_i = -beta log p_{y_i} - (1 - beta) log p_{z_i}
    /// dl_i/dx_c = p_c - beta [c == y_i] - (1 - beta) [c == z_i]
    /// ```
    /// `z` is treated as a constant: the loss is continuous where the argmax
    /// changes (the tied log-probabilities are equal) but has a kink there;
    /// the gradient returned at a tie is the one-sided gradient of the side
    /// where the first tied class wins.
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `beta`: the label's share of the target, in `[0, 1]` (default 0.8,
    ///   the paper's setting for hard bootstrapping).
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a gradient buffer not of shape `(N, C)`; from the setter, `beta` outside
    /// `[0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, HardBootstrapping, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let hard = HardBootstrapping::new();
    /// // The model predicts class 0, the label says 2:
    /// // 0.8 * (-log p_2) + 0.2 * (-log p_0)
    /// let (loss, grad) = hard.forward_backward(logits.view(), array![2].view())?;
    /// assert!((loss - 1.9370300162778333).abs() < 1e-12);
    /// assert!(grad[[0, 0]] > 0.0 && grad[[0, 2]] < 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// S. Reed, H. Lee, D. Anguelov, C. Szegedy, D. Erhan, A. Rabinovich,
    /// "Training Deep Neural Networks on Noisy Labels with Bootstrapping",
    /// ICLR 2015 workshop, <https://arxiv.org/abs/1412.6596>.
    pub struct HardBootstrapping<F: Float> {
        /// The label's share `beta`.
        beta: f64 = 0.8,
            /// Sets the label's share `beta` in `[0, 1]` (default 0.8).
            set with_beta checked by unit_interval;
    }

    /// Hard bootstrapping with mean reduction and `beta = 0.8`.
    fn new();
}

impl<F: Float> Compute<F> for HardBootstrapping<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let beta = F::lit(self.beta);
        let rest = F::lit(1.0 - self.beta);
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            let z = first_argmax(row.x);
            if let Some(g) = g {
                // The coefficients sum to beta + (1 - beta) = 1.
                sparse_target_grad(g, scale, &[(y, beta), (z, rest)]);
            }
            term(beta.as_f64(), row.nll(y)) + term(rest.as_f64(), row.nll(z))
        })
    }
}

/// The index of the first largest value of a non-empty row.
fn first_argmax<F: Float>(x: &[F]) -> usize {
    let mut best = 0;
    for (c, &v) in x.iter().enumerate().skip(1) {
        if v > x[best] {
            best = c;
        }
    }
    best
}
