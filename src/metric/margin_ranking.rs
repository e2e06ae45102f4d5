//! The margin ranking loss on pairs of scores.

use ndarray::Ix1;

use crate::base::loss::{Call, Compute};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::metric::pairs::{Pairs, check_signed_pairs};
use crate::{Float, Result};

loss_options! {
    /// The margin ranking loss of pairs of scores: PyTorch's
    /// `nn.MarginRankingLoss`. A label `y = 1` says `x1` should rank above
    /// `x2`, `y = -1` below, each by at least `margin`.
    ///
    /// Use it to learn a scoring function from preferences (learning to
    /// rank, RankNet-style pairs with a hinge): only the order of the two
    /// scores matters, not their values.
    ///
    /// # Formula
    /// ```text
    /// z_i = margin - y_i (x1_i - x2_i)
    /// l_i = max(0, z_i)
    /// d l_i / d x1_i = -y_i [z_i >= 0],   d l_i / d x2_i = y_i [z_i >= 0]
    /// ```
    /// The difference `x1 - x2` is taken first, in `f64`. At the kink
    /// (`z = 0`) the gradient is that of the active side, as PyTorch's
    /// (`clamp_min`'s gradient passes at the bound): with `margin = 0`, a
    /// tied pair still gets the push that breaks the tie.
    ///
    /// # Shapes
    /// - input: [`crate::Pair`] of `x1`, `x2`, both `(N)` (a
    ///   `Pair<'_, F, Ix1>`); labels `(N)` in `{-1, +1}`, the scores'
    ///   element type.
    /// - per-sample `(N)`; gradient: [`crate::PairGrad`] of two `(N)`
    ///   arrays.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin`: finite, `>= 0` (default 0, PyTorch's).
    ///
    /// # Errors
    /// An empty batch; `x2`, labels or gradient buffers of another shape; a
    /// label other than `-1` or `+1` ([`crate::Error::InvalidTarget`]
    /// naming `labels`); a negative or non-finite margin at construction.
    /// A sample's value beyond `F` (scores about `F::MAX` apart) is
    /// [`crate::Error::Overflow`]; non-finite scores propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, MarginRanking, Pair};
    /// use ndarray::array;
    ///
    /// let x1 = array![2.0_f64, 0.5, 1.0];
    /// let x2 = array![1.0_f64, 1.0, 1.0];
    /// let labels = array![1.0, 1.0, -1.0];
    /// let loss = MarginRanking::new().with_margin(0.5)?;
    /// let pair = Pair { x1: x1.view(), x2: x2.view() };
    /// // Ranked by 1 >= 0.5: 0; wrong by 0.5: 0.5 + 0.5; tied: 0.5.
    /// let (value, grad) = loss.forward_backward(pair, labels.view())?;
    /// assert_eq!(value, 0.5);
    /// assert_eq!(grad.x1.to_vec(), vec![0.0, -1.0 / 3.0, 1.0 / 3.0]);
    /// assert_eq!(grad.x2.to_vec(), vec![0.0, 1.0 / 3.0, -1.0 / 3.0]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.MarginRankingLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.MarginRankingLoss.html>.
    /// R. Herbrich, T. Graepel, K. Obermayer, "Large Margin Rank Boundaries
    /// for Ordinal Regression", in Advances in Large Margin Classifiers,
    /// MIT Press, 2000.
    #[derive(PartialEq)]
    pub struct MarginRanking {
        /// The margin by which the preferred score must lead.
        margin: f64 = 0.0,
            /// Sets the margin, finite and `>= 0` (default 0).
            set with_margin checked by non_negative;
    }

    /// The margin ranking loss: mean reduction, margin 0.
    fn new();
}

impl<F: Float> Compute<F> for MarginRanking {
    type Sig = Pairs<Ix1>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: pair,
            target: labels,
            mut grad,
            mut per,
        } = call;
        check_signed_pairs(&pair, &labels, grad.as_ref())?;
        let n = labels.len();
        let scale = self.reduction.grad_scale::<f64>(n as f64);
        let mut sum = Sum::default();
        for (i, ((&a, &b), &y)) in pair.x1.iter().zip(&pair.x2).zip(&labels).enumerate() {
            let y = y.as_f64();
            let z = self.margin - y * (a.as_f64() - b.as_f64());
            // PyTorch's clamp_min: the bound itself is on the active side;
            // a NaN stays a NaN.
            let active = z >= 0.0 || z.is_nan();
            let value = if active { z } else { 0.0 };
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                let d = if active { scale * y } else { 0.0 };
                g.x1[i] = sum.grad_entry(i, -d);
                g.x2[i] = sum.grad_entry(i, d);
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "x1",
        })
    }
}
