//! The contrastive loss on pairs of embeddings (Hadsell, Chopra, LeCun 2006).

use crate::base::loss::{Call, Compute};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::metric::pairs::{Pairs, check_pairs};
use crate::numerics::{clamp_below, l2_norm};
use crate::{Float, Result};

/// How the contrastive loss penalizes a distance: squared hinges (the
/// paper) or plain hinges (the metric-learning libraries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContrastiveForm {
    /// Hadsell, Chopra and LeCun's loss:
    /// `0.5 y [D - m_pos]_+^2 + 0.5 (1 - y) [m - D]_+^2` (with the default
    /// `m_pos = 0`, `0.5 y D^2 + ...`).
    #[default]
    Squared,
    /// pytorch-metric-learning's `ContrastiveLoss` on a distance:
    /// `y [D - m_pos]_+ + (1 - y) [m - D]_+`, without squares or halves.
    Hinge,
}

loss_options! {
    /// The contrastive loss: pulls similar pairs together and pushes dissimilar
    /// pairs at least a margin `m` apart, in Euclidean distance.
    ///
    /// Use it to train a siamese network from pair labels ("same" / "not the
    /// same") rather than class labels: signature or face verification,
    /// learning a mapping in which distance means dissimilarity.
    ///
    /// # Formula
    /// ```text
    /// D_i = |x1_i - x2_i|   (Euclidean)
    /// Squared (default): l_i = 0.5 y_i [D_i - m_pos]_+^2 + 0.5 (1 - y_i) [m - D_i]_+^2
    /// Hinge:             l_i =     y_i [D_i - m_pos]_+   +     (1 - y_i) [m - D_i]_+
    /// d l_i / d x1_i = l_i'(D_i) (x1_i - x2_i) / D_i,   d l_i / d x2_i = -d l_i / d x1_i
    /// ```
    /// `y_i = 1` marks a similar pair, `0` a dissimilar one; `[a]_+ = max(0, a)`.
    /// With the default `m_pos = 0` the squared form is the paper's
    /// `0.5 y D^2 + 0.5 (1 - y) max(0, m - D)^2`.
    ///
    /// **At `D = 0`** the direction `(x1 - x2) / D` is undefined. A similar pair
    /// there has reached its minimum and gets gradient zero (exact for the
    /// squared form, where the gradient is `x1 - x2`; the subgradient of the
    /// cone `D` for the hinge form). A dissimilar pair at distance 0, which the
    /// loss wants to separate in no particular direction, also gets **zero**:
    /// any direction would be arbitrary, and the value `0.5 m^2` (or `m`) is
    /// still reported. Separate identical embeddings by other means (noise,
    /// other pairs).
    ///
    /// # Shapes
    /// - input: [`crate::Pair`] `{ x1 (N, D), x2 (N, D) }`.
    /// - target: `similar` `(N)`, each exactly 0 or 1.
    /// - per-sample: `(N)`; gradient: [`crate::PairGrad`] `{ x1 (N, D), x2 (N, D) }`.
    /// - `Mean` divides by `N` (pytorch-metric-learning averages instead over
    ///   the pairs with a nonzero loss, positive and negative pairs separately).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin` `m` for dissimilar pairs: finite, `>= 0` (default 1).
    /// - `pos_margin` `m_pos` for similar pairs: finite, `>= 0` (default 0; a
    ///   similar pair closer than it costs nothing).
    /// - `form`: [`ContrastiveForm::Squared`] (default, the paper) or
    ///   [`ContrastiveForm::Hinge`] (pytorch-metric-learning, whose
    ///   `neg_margin` is `margin` here).
    ///
    /// # Errors
    /// An empty batch or feature axis; `x2` not shaped like `x1`; `similar` of
    /// the wrong length or with a value other than 0 or 1
    /// ([`Error::InvalidTarget`](crate::Error::InvalidTarget)); a gradient
    /// buffer of the wrong shape. Options: a negative or non-finite `margin` or
    /// `pos_margin`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Contrastive, Differentiable, Loss, Pair};
    /// use ndarray::array;
    ///
    /// let x1 = array![[0.0_f64, 0.0], [1.0, 1.0]];
    /// let x2 = array![[3.0, 4.0], [1.0, 1.5]];
    /// let similar = array![1.0, 0.0];
    /// let loss = Contrastive::new().with_margin(2.0)?;
    /// let pair = Pair { x1: x1.view(), x2: x2.view() };
    /// // similar at D = 5: 0.5 * 25; dissimilar at D = 0.5: 0.5 * 1.5^2; mean over 2
    /// let value = loss.forward(pair, similar.view())?;
    /// assert!((value - (12.5 + 1.125) / 2.0).abs() < 1e-12);
    ///
    /// let (_, grad) = loss.forward_backward(pair, similar.view())?;
    /// assert_eq!(grad.x1.row(0).to_vec(), vec![-1.5, -2.0]); // (x1 - x2) / 2
    /// assert_eq!(grad.x2, -&grad.x1);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// - R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning
    ///   an Invariant Mapping", CVPR 2006,
    ///   <http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf>.
    /// - K. Musgrave et al., pytorch-metric-learning, `ContrastiveLoss`
    ///   (`pos_margin`, `neg_margin`, unsquared hinges),
    ///   <https://kevinmusgrave.github.io/pytorch-metric-learning/losses/#contrastiveloss>.
    #[derive(PartialEq)]
    pub struct Contrastive {
        /// The margin `m` for dissimilar pairs.
        margin: f64 = 1.0,
            /// Sets the margin `m` dissimilar pairs must exceed, finite and `>= 0`
            /// (default 1).
            set with_margin checked by non_negative;
        /// The margin `m_pos` for similar pairs.
        pos_margin: f64 = 0.0,
            /// Sets the distance `m_pos` below which similar pairs cost nothing,
            /// finite and `>= 0` (default 0).
            set with_pos_margin checked by non_negative;
        /// The form of the penalty.
        form: ContrastiveForm = ContrastiveForm::Squared,
            /// Sets the form: squared (default) or plain hinges.
            set with_form;
    }

    /// The paper's squared contrastive loss: mean reduction, `margin` 1,
    /// `pos_margin` 0.
    fn new();
}

impl Contrastive {
    /// The loss of one pair at distance `d` and `d l / d D`.
    #[inline]
    fn pair_loss(&self, d: f64, similar: bool) -> (f64, f64) {
        let (m, m_pos) = (self.margin, self.pos_margin);
        match (self.form, similar) {
            (ContrastiveForm::Squared, true) => {
                let h = clamp_below(d - m_pos, 0.0);
                (0.5 * h * h, h)
            }
            (ContrastiveForm::Squared, false) => {
                let h = clamp_below(m - d, 0.0);
                (0.5 * h * h, -h)
            }
            (ContrastiveForm::Hinge, true) => {
                let h = clamp_below(d - m_pos, 0.0);
                (h, if h > 0.0 { 1.0 } else { 0.0 })
            }
            (ContrastiveForm::Hinge, false) => {
                let h = clamp_below(m - d, 0.0);
                (h, if h > 0.0 { -1.0 } else { 0.0 })
            }
        }
    }
}

impl<F: Float> Compute<F> for Contrastive {
    type Sig = Pairs;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: pair,
            target: similar,
            mut grad,
            mut per,
        } = call;
        let zero_one = |v: F| v == F::zero() || v == F::one();
        check_pairs(
            &pair,
            &similar,
            ("similar", "0 or 1"),
            zero_one,
            grad.as_ref(),
        )?;
        let (x1, x2) = (pair.x1, pair.x2);
        let n = x1.nrows();
        let scale = self.reduction.grad_scale::<f64>(n as f64);
        let mut sum = Sum::default();
        for (i, ((a, b), &y)) in x1
            .rows()
            .into_iter()
            .zip(x2.rows())
            .zip(&similar)
            .enumerate()
        {
            // In f64, with a scaled norm: the difference of two f32
            // embeddings can exceed f32 (a dissimilar pair 6e38 apart costs
            // 0), and the square of a subnormal one underflows (its
            // direction is still a unit vector).
            let diff = |(&p, &q): (&F, &F)| p.as_f64() - q.as_f64();
            let d = l2_norm(a.iter().zip(&b).map(diff));
            let similar = y == F::one();
            let (value, slope) = self.pair_loss(d, similar);
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                // d l / d x1 = slope (x1 - x2) / D. For the squared similar
                // term without a margin slope / D = 1 exactly, so D = 0 is
                // no special case there; elsewhere D = 0 gets zero (see the
                // type's docs), and so does a slope of 0 (at any D).
                let squared_similar =
                    self.form == ContrastiveForm::Squared && similar && self.pos_margin == 0.0;
                // The direction (x1 - x2) / D first, each entry at most 1:
                // 1 / D overflows f64 for a subnormal D.
                let (factor, over_d) = if squared_similar {
                    (scale, false)
                } else if d > 0.0 && slope != 0.0 {
                    (scale * slope, true)
                } else {
                    (0.0, false)
                };
                let mut g1 = g.x1.row_mut(i);
                let mut g2 = g.x2.row_mut(i);
                for (((g1, g2), p), q) in g1.iter_mut().zip(g2.iter_mut()).zip(&a).zip(&b) {
                    let v = if factor == 0.0 {
                        0.0
                    } else if over_d {
                        factor * (diff((p, q)) / d)
                    } else {
                        factor * diff((p, q))
                    };
                    *g1 = sum.grad_entry(i, v);
                    *g2 = -*g1;
                }
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "x1",
        })
    }
}
