//! The sparsemax loss (Martins & Astudillo 2016).

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::rows::run_rows_on_labels;
use crate::{Float, Result};

loss_options! {
    /// The sparsemax loss: the loss whose gradient is `sparsemax(x) -
    /// onehot(y)`, as cross-entropy's is `softmax(x) - onehot(y)`.
    /// Sparsemax is the Euclidean projection of the logits onto the
    /// probability simplex: it gives exactly zero probability to classes
    /// far enough behind, so predictions are sparse.
    ///
    /// Use it where a sparse output distribution is wanted (attention,
    /// multi-label-like outputs, interpretable class sets); optax ships it
    /// as `sparsemax_loss`. A sample whose label is predicted alone with
    /// margin 1 costs exactly 0, unlike cross-entropy, which never does.
    ///
    /// # Formula
    /// ```text
    /// z sorted decreasing: k = max { k : 1 + k z_(k) > sum_{j <= k} z_(j) }
    /// tau = (sum_{j <= k} z_(j) - 1) / k          sparsemax(z)_c = max(z_c - tau, 0)
    /// l = -z_y + 1/2 sum_{c in S} (z_c^2 - tau^2) + 1/2,   S the support of sparsemax(z)
    /// d l / d z = sparsemax(z) - onehot(y)
    /// ```
    /// computed in `f64`, each row shifted by its maximum first (the loss
    /// and `sparsemax` are unchanged by a shift), so `f32` logits never
    /// overflow.
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`).
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    ///
    /// # Errors
    /// Those of [`crate::CrossEntropy`] on labels. Non-finite logits
    /// propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Labels, Loss, Sparsemax};
    /// use ndarray::array;
    ///
    /// let logits = array![[3.0_f64, 1.0, 0.0], [0.5, 0.4, -2.0]];
    /// let labels = array![0_i64, 1];
    /// let (value, grad) = Sparsemax::new().forward_backward(logits.view(), Labels::from(&labels))?;
    /// // Sample 0 wins by 2: sparsemax = (1, 0, 0), no loss and no gradient.
    /// assert_eq!(grad.row(0).to_vec(), vec![0.0, 0.0, 0.0]);
    /// // Sample 1: tau = (0.5 + 0.4 - 1) / 2 = -0.05, sparsemax = (0.55, 0.45, 0).
    /// assert!((grad[[1, 0]] - 0.55 / 2.0).abs() < 1e-12);
    /// assert!(value > 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// A. F. T. Martins and R. F. Astudillo, "From softmax to sparsemax: a
    /// sparse model of attention and multi-label classification", ICML
    /// 2016, <https://arxiv.org/abs/1602.02068>.
    #[derive(Copy, PartialEq, Eq)]
    pub struct Sparsemax {}

    /// The sparsemax loss: mean reduction.
    fn new();
}

impl<F: Float> Compute<F> for Sparsemax {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let c = call.input.ncols();
        run_rows_on_labels(self.reduction, call, |y, row, sink| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.as_f64()));
            let z = |k: usize| row[k].as_f64() - max;
            let mut sorted: Vec<f64> = (0..c).map(z).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            // The support size k and the threshold tau.
            let (mut k, mut prefix, mut tau_sum) = (0, 0.0_f64, 0.0_f64);
            for (j, &v) in sorted.iter().enumerate() {
                prefix += v;
                if 1.0 + (j + 1) as f64 * v > prefix {
                    k = j + 1;
                    tau_sum = prefix;
                }
            }
            let tau = (tau_sum - 1.0) / k.max(1) as f64;
            let mut value = 0.5 - z(y);
            for k in 0..c {
                let zk = z(k);
                if zk > tau {
                    value += 0.5 * (zk * zk - tau * tau);
                }
            }
            if row.iter().any(|v| !v.is_finite()) {
                value = f64::NAN;
            }
            if let Some(sink) = sink {
                for k in 0..c {
                    let p = (z(k) - tau).max(0.0);
                    sink.set(k, p - if k == y { 1.0 } else { 0.0 });
                }
            }
            value
        })
    }
}
