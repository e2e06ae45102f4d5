//! Poly-1: cross-entropy plus a tunable first polynomial term.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::one_hot_grad_f64;
use crate::numerics::prob_and_complement;
use crate::{Float, Result};

loss_options! {
    /// Poly-1 loss: cross-entropy plus `epsilon (1 - p_y)`, the first term of
    /// cross-entropy's expansion `sum_j (1 - p_y)^j / j` with its coefficient
    /// moved from 1 to `1 + epsilon`.
    ///
    /// Use it as a drop-in replacement for cross-entropy with one extra knob:
    /// `epsilon > 0` keeps pushing on samples that are already right,
    /// `epsilon < 0` lets them go. With `epsilon = 0` it is cross-entropy.
    ///
    /// # Formula
    /// ```text
    /// log p_y = x_y - logsumexp(x)                 (log space)
    /// l_i     = -log p_{y_i} + epsilon (1 - p_{y_i}),   1 - p_y = -expm1(log p_y)
    /// dl_i/dx_c = (1 + epsilon p_y) (p_c - [c == y_i])
    /// ```
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `epsilon`: finite and `>= -1` (default 1; the paper tunes it per
    ///   task, positive for image classification). At `-1` the leading
    ///   gradient term `(1 - p_y)` of cross-entropy is cancelled; below it the
    ///   loss would reward lowering `p_y` near `p_y = 1`, so it is rejected.
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a gradient buffer not of shape `(N, C)`; from the setter, an `epsilon`
    /// below -1 or not finite.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, Poly1};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let labels = array![0_usize];
    /// // CE = 0.41703, p_y = 0.65900: 0.41703 + 1 * (1 - 0.65900)
    /// let poly = Poly1::new();
    /// let loss = poly.forward(logits.view(), labels.view())?;
    /// assert!((loss - 0.7580288773918653).abs() < 1e-12);
    /// let grad = poly.backward(logits.view(), labels.view())?;
    /// assert!(grad.sum().abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov,
    /// "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
    /// Functions", ICLR 2022, <https://arxiv.org/abs/2204.12511>.
    pub struct Poly1<F: Float> {
        /// The coefficient `epsilon`.
        epsilon: f64 = 1.0,
            /// Sets `epsilon`, finite and `>= -1` (default 1).
            set with_epsilon checked by at_least_minus_one;
    }

    /// Poly-1 with mean reduction and `epsilon = 1`.
    fn new();
}

impl<F: Float> Compute<F> for Poly1<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let eps = self.epsilon;
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            // The row's scalars in f64: epsilon may be beyond F (1e39 in
            // f32), and the gradient's factor with it.
            let nll = row.nll(y);
            let (p, q) = prob_and_complement(nll);
            if let Some(g) = g {
                one_hot_grad_f64(g, y, scale.as_f64() * (1.0 + eps * p));
            }
            eps * q + nll
        })
    }
}
