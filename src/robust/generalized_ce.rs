//! Generalized cross-entropy (the Lq loss on the softmax).

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::one_hot_grad;
use crate::numerics::prob_and_complement;
use crate::{Float, Result};

loss_options! {
    /// Generalized cross-entropy `(1 - p_y^q) / q`: a loss between
    /// cross-entropy (`q -> 0`) and the mean absolute error `1 - p_y` (`q = 1`)
    /// that is robust to noisy labels.
    ///
    /// Use it when a fraction of the labels is wrong. Cross-entropy's gradient
    /// weights every sample by `1 / p_y`, so mislabeled samples (small `p_y`)
    /// dominate; here the weight is `p_y^q`, which bounds their pull, while a
    /// small `q` keeps cross-entropy's fast training. The authors use
    /// `q = 0.7`.
    ///
    /// # Formula
    /// ```text
    /// log p_y = x_y - logsumexp(x)                       (log space)
    /// l_i     = (1 - p_{y_i}^q) / q = -expm1(q log p_{y_i}) / q
    /// dl_i/dx_c = p_y^q (p_c - [c == y_i])
    /// ```
    /// The `expm1` form keeps full precision for small `q` and for `p_y`
    /// near 1, and tends to cross-entropy `-log p_y` as `q -> 0`.
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `q`: in `(0, 1]` (default 0.7, as in the paper). For `q -> 0` use
    ///   [`crate::CrossEntropy`], the limit.
    ///
    /// # Errors
    /// An empty batch or class axis, labels not of shape `(N)`, a label `>= C`,
    /// a gradient buffer not of shape `(N, C)`; from the setter, `q` outside
    /// `(0, 1]`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, GeneralizedCrossEntropy, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let labels = array![0_usize];
    /// // p_y = 0.65900: (1 - 0.65900^0.7) / 0.7
    /// let gce = GeneralizedCrossEntropy::new();
    /// let loss = gce.forward(logits.view(), labels.view())?;
    /// assert!((loss - 0.36167496498808893).abs() < 1e-12);
    ///
    /// // q = 1 is the mean absolute error 1 - p_y.
    /// let mae = GeneralizedCrossEntropy::new().with_q(1.0)?;
    /// let loss = mae.forward(logits.view(), labels.view())?;
    /// assert!((loss - (1.0 - 0.659001138885968)).abs() < 1e-12);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// Z. Zhang, M. R. Sabuncu, "Generalized Cross Entropy Loss for Training
    /// Deep Neural Networks with Noisy Labels", NeurIPS 2018,
    /// <https://arxiv.org/abs/1805.07836>.
    pub struct GeneralizedCrossEntropy<F: Float> {
        /// The exponent `q`.
        q: f64 = 0.7,
            /// Sets the exponent `q` in `(0, 1]` (default 0.7).
            set with_q checked by positive_at_most_one;
    }

    /// Generalized cross-entropy with mean reduction and `q = 0.7`.
    fn new();
}

impl<F: Float> Compute<F> for GeneralizedCrossEntropy<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let q = self.q;
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            // In f64: q may be below F's smallest value (5e-324 in f32).
            let nll = row.nll(y);
            let q_nll = q * nll;
            // p^q and 1 - p^q, one library call where p^q < 1/2.
            let (p_q, one_minus) = prob_and_complement(q_nll);
            if let Some(g) = g {
                one_hot_grad(g, y, scale * F::lit(p_q));
            }
            if q_nll < f64::MIN_POSITIVE {
                // q log p underflowed: the limit -log p (cross-entropy).
                nll
            } else {
                one_minus / q
            }
        })
    }
}
