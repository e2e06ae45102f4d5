//! The earth mover's distance between ordered classes (Hou et al. 2017).

use crate::base::loss::{Call, Compute, Scores};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::{check_probabilities, check_scores, expect_shape};
use crate::engine::softmax_rows::softmax_rows_2d;
use crate::softmax::cross_entropy::{ByClassTarget, ClassTarget};
use crate::{Float, Result};

loss_options! {
    /// The earth mover's distance between the predicted distribution and
    /// the target on classes that are ordered (ages, ratings, grades,
    /// severity levels), one unit apart: `sum_k |CDF_p(k) - CDF_t(k)|^r`.
    ///
    /// Use it for ordinal classification: predicting 4 stars for a
    /// 5-star review costs less than predicting 1, which cross-entropy
    /// cannot tell apart. `r = 1` is the Wasserstein-1 distance on the
    /// line; `r = 2` is Hou et al.'s squared EMD, smoother near the
    /// optimum (their recommendation). For costs that are not a line, see
    /// [`crate::Wasserstein`].
    ///
    /// # Formula
    /// ```text
    /// p = softmax(x)     CDF_p(k) = sum_{j <= k} p_j     CDF_t(k) = [k >= y] (or the target's)
    /// l = sum_{k < C-1} |CDF_p(k) - CDF_t(k)|^r
    /// d l / d x_c = p_c (G_c - sum_j p_j G_j),   G_j = sum_{j <= k < C-1} r |d_k|^(r-1) sign(d_k)
    /// ```
    /// With `r = 1` the derivative of `|d|` at `d = 0` is taken as 0.
    ///
    /// # Shapes
    /// - logits `(N, C)`; the target either labels `(N)` (any integer
    ///   type, in `0..C`) or probabilities `(N, C)` (a distribution per
    ///   row), as [`crate::ClassTarget`].
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `r`: 1 or 2 (default 2).
    ///
    /// # Errors
    /// Those of [`crate::CrossEntropy`] on labels or probabilities, and an
    /// `r` other than 1 or 2 at construction.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Labels, Loss, OrdinalEmd};
    /// use ndarray::array;
    ///
    /// // Five ordered classes, the label is 4: mass on 3 is a smaller
    /// // mistake than the same mass on 0.
    /// let emd = OrdinalEmd::new();
    /// let y = array![4_i64];
    /// let near = emd.forward(array![[0.0_f64, 0.0, 0.0, 5.0, 0.0]].view(), Labels::from(&y))?;
    /// let far = emd.forward(array![[5.0_f64, 0.0, 0.0, 0.0, 0.0]].view(), Labels::from(&y))?;
    /// assert!(near < far);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// L. Hou, C.-P. Yu and D. Samaras, "Squared earth mover's
    /// distance-based loss for training deep neural networks", NeurIPS
    /// 2016 workshop, <https://arxiv.org/abs/1611.05916>.
    #[derive(PartialEq)]
    pub struct OrdinalEmd<F: Float> {
        /// The exponent of the CDF differences.
        r: u32 = 2,
            /// Sets the exponent `r`, 1 or 2 (default 2).
            set with_r checked by one_or_two;
    }

    /// The squared EMD (`r = 2`): mean reduction.
    fn new();
}

impl<F: Float> Compute<F> for OrdinalEmd<F> {
    type Sig = Scores<ndarray::Ix2, ByClassTarget>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target,
            grad,
            per,
        } = call;
        check_scores(&logits, &[], grad.as_ref())?;
        let (n, c) = logits.dim();
        match &target {
            ClassTarget::Labels(labels) => labels.check_rows(n, c)?,
            ClassTarget::Probs(probs) => {
                expect_shape("probs", probs.shape(), logits.shape())?;
                check_probabilities("probs", probs, "a probability in [0, 1]")?;
            }
            ClassTarget::WeightedLabels { .. } => {
                return Err(crate::Error::UnsupportedTarget {
                    what: "target",
                    expected: "labels or probabilities",
                    actual: target.kind(),
                });
            }
        }
        let r = self.r;
        let scale = self.reduction.grad_scale::<f64>(n as f64);
        let sum = softmax_rows_2d(
            logits,
            |i| i,
            grad,
            per,
            false,
            |i, row, g| {
                let p: Vec<f64> = (0..c).map(|k| row.log_p(k).as_f64().exp()).collect();
                let target_mass = |k: usize| match &target {
                    ClassTarget::Labels(labels) => f64::from(u8::from(labels.class(i) == k)),
                    ClassTarget::Probs(probs) => probs[[i, k]].as_f64(),
                    // Rejected above.
                    ClassTarget::WeightedLabels { .. } => 0.0,
                };
                // The CDF differences d_k, k < C - 1, and the loss.
                let (mut cdf_p, mut cdf_t) = (0.0_f64, 0.0_f64);
                let d: Vec<f64> = (0..c.saturating_sub(1))
                    .map(|k| {
                        cdf_p += p[k];
                        cdf_t += target_mass(k);
                        cdf_p - cdf_t
                    })
                    .collect();
                let value: f64 = d
                    .iter()
                    .map(|&v| if r == 1 { v.abs() } else { v * v })
                    .sum();
                if let Some(g) = g {
                    // G_j: the suffix sums of d|d_k|^r / d d_k over k >= j.
                    let slope = |v: f64| {
                        if r == 1 {
                            v.signum() * f64::from(u8::from(v != 0.0))
                        } else {
                            2.0 * v
                        }
                    };
                    let mut big_g = vec![0.0_f64; c];
                    let mut acc = 0.0;
                    for k in (0..c).rev() {
                        if k < d.len() {
                            acc += slope(d[k]);
                        }
                        big_g[k] = acc;
                    }
                    let mean: f64 = p.iter().zip(&big_g).map(|(p, g)| p * g).sum();
                    for (k, v) in g.probs().iter_mut().enumerate() {
                        *v = F::lit(scale * p[k] * (big_g[k] - mean));
                    }
                }
                value
            },
        );
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "logits",
        })
    }
}
