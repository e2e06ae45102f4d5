//! The Wasserstein loss to a label under a ground cost between classes.

use ndarray::Array2;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::{Error, Float, Result};

loss_options! {
    /// The Wasserstein (earth mover's) distance from the predicted
    /// distribution `softmax(x)` to the label, under a ground cost `M`
    /// between classes: the expected cost of the prediction,
    /// `sum_c p_c M[y, c]`.
    ///
    /// Use it when mistakes differ in cost (confusing two dog breeds is
    /// cheaper than a dog for a truck; a ground cost from a class tree or
    /// from embeddings' distances): the loss pays each wrong class its own
    /// cost. To a one-hot target the optimal transport is exact: all mass
    /// moves to `y`. Pair it with cross-entropy, since alone its gradient
    /// vanishes as the prediction concentrates on any one class. The
    /// gradient entries are bounded by the value, so they fit `F` whenever
    /// it does.
    ///
    /// # Formula
    /// ```text
    /// p = softmax(x)      l = sum_c p_c M[y, c]      d l / d x_c = p_c (M[y, c] - l)
    /// ```
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`); the
    ///   cost `(C, C)`.
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `cost`: the ground cost `M`, `(C, C)`, finite, `>= 0` (required;
    ///   its shape is checked against `C`). Only row `y` is read, so it
    ///   need not be symmetric.
    ///
    /// # Errors
    /// A call without `cost` or with a cost of another shape
    /// ([`crate::Error::InvalidOption`] / [`crate::Error::ShapeMismatch`]
    /// naming it), and the input errors of [`crate::CrossEntropy`] on
    /// labels.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Labels, Loss, Wasserstein};
    /// use ndarray::array;
    ///
    /// // Classes 0 and 1 are close, 2 is far from both.
    /// let cost = array![[0.0, 1.0, 5.0], [1.0, 0.0, 5.0], [5.0, 5.0, 0.0]];
    /// let w = Wasserstein::new().with_cost(cost)?;
    /// let near = w.forward(array![[0.0_f64, 3.0, 0.0]].view(), Labels::from(&array![0_i64]))?;
    /// let far = w.forward(array![[0.0_f64, 0.0, 3.0]].view(), Labels::from(&array![0_i64]))?;
    /// assert!(near < far);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo and T. Poggio,
    /// "Learning with a Wasserstein loss", NeurIPS 2015,
    /// <https://arxiv.org/abs/1506.05439>.
    pub struct Wasserstein {
        /// The ground cost between classes.
        cost: Option<Array2<f64>> = None,
            /// Sets the ground cost `M` between classes, `(C, C)`, finite and
            /// `>= 0`.
            set with_cost(Array2<f64>) checked by ground_cost;
    }

    /// The Wasserstein loss: mean reduction; set `cost` before use.
    fn new();
}

impl<F: Float> Compute<F> for Wasserstein {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let cost = self.cost.as_ref().ok_or(Error::InvalidOption {
            name: "cost",
            value: "none".into(),
            expected: "a (C, C) ground cost between classes",
        })?;
        let classes = call.input.ncols();
        if cost.dim() != (classes, classes) {
            return Err(Error::ShapeMismatch {
                what: "cost",
                expected: format!("{:?}", [classes, classes]),
                actual: format!("{:?}", cost.shape()),
            });
        }
        run_on_labels(self.reduction, call, &[], false, |y, row, g, scale| {
            let m = cost.row(y);
            let p = |c: usize| row.log_p(c).as_f64().exp();
            let value: f64 = (0..classes).map(|c| p(c) * m[c]).sum();
            if let Some(g) = g {
                let scale = scale.as_f64();
                for (c, v) in g.probs().iter_mut().enumerate() {
                    *v = F::lit(scale * v.as_f64() * (m[c] - value));
                }
            }
            value
        })
    }
}
