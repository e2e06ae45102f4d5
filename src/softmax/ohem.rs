//! Online hard example mining on cross-entropy (Shrivastava et al. 2016).

use ndarray::Array1;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_scores;
use crate::engine::softmax_rows::{one_hot_grad, softmax_rows_2d};
use crate::{Float, Result};

loss_options! {
    /// Cross-entropy over the hardest samples of the batch only: online
    /// hard example mining (OHEM). The `k = max(1, ceil(keep_ratio N))`
    /// samples with the largest cross-entropy are kept; the others cost
    /// nothing and get no gradient.
    ///
    /// Use it when most samples are easy and swamp the gradient (detection
    /// proposals, segmentation pixels, heavy class imbalance), as a hard
    /// selection where [`crate::SoftmaxFocal`] down-weights smoothly. It
    /// also keeps the hardest mislabeled samples, so on noisy labels
    /// prefer the robust losses ([`crate::GeneralizedCrossEntropy`]).
    ///
    /// # Formula
    /// ```text
    /// l_i = -log softmax(x_i)_{y_i}       K = the k indices of the largest l_i
    /// loss = (1/k) sum_{i in K} l_i (Mean), sum_{i in K} l_i (Sum)
    /// ```
    /// Ties in `l_i` keep the earlier sample. The selection is not
    /// differentiated: the gradient is cross-entropy's on the kept rows, 0
    /// elsewhere.
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`).
    /// - per-sample `(N)`: `l_i` for a kept sample, 0 for a dropped one;
    ///   gradient `(N, C)`.
    /// - `Mean` divides by `k`, the number kept.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `keep_ratio`: in `(0, 1]` (default 0.5; 1 is cross-entropy).
    ///
    /// # Errors
    /// Those of [`crate::CrossEntropy`] on labels, and a `keep_ratio`
    /// outside `(0, 1]` at construction.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CrossEntropy, Differentiable, Labels, Loss, OhemCrossEntropy, Reduction};
    /// use ndarray::array;
    ///
    /// let logits = array![[4.0_f64, 0.0], [0.0, 0.5], [-2.0, 3.0], [1.0, 1.0]];
    /// let labels = array![0_i64, 0, 0, 1];
    /// let ohem = OhemCrossEntropy::new().with_keep_ratio(0.5)?;
    /// let per = CrossEntropy::new()
    ///     .with_reduction(Reduction::None)
    ///     .per_sample(logits.view(), Labels::from(&labels))?;
    /// // The two hardest: samples 2 and 1.
    /// let (value, grad) = ohem.forward_backward(logits.view(), Labels::from(&labels))?;
    /// assert!((value - (per[2] + per[1]) / 2.0).abs() < 1e-12);
    /// assert_eq!(grad.row(0).to_vec(), vec![0.0, 0.0]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// A. Shrivastava, A. Gupta and R. Girshick, "Training region-based
    /// object detectors with online hard example mining", CVPR 2016,
    /// <https://arxiv.org/abs/1604.03540>.
    #[derive(PartialEq)]
    pub struct OhemCrossEntropy<F: Float> {
        /// The fraction of the batch kept.
        keep_ratio: f64 = 0.5,
            /// Sets the fraction of the batch kept, in `(0, 1]` (default 0.5).
            set with_keep_ratio checked by positive_at_most_one;
    }

    /// OHEM cross-entropy: mean over the kept half of the batch.
    fn new();
}

impl<F: Float> OhemCrossEntropy<F> {
    /// How many of `n` samples are kept.
    fn kept(&self, n: usize) -> usize {
        ((self.keep_ratio * n as f64).ceil() as usize).clamp(1, n)
    }
}

impl<F: Float> Compute<F> for OhemCrossEntropy<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: labels,
            grad,
            per,
        } = call;
        check_scores(&logits, &[], grad.as_ref())?;
        let (n, c) = logits.dim();
        labels.check_rows(n, c)?;
        // Pass 1: every sample's cross-entropy, to rank them.
        let mut nll = Array1::<f64>::zeros(n);
        {
            let mut rank = Array1::<F>::zeros(n);
            softmax_rows_2d(
                logits,
                |i| labels.class(i),
                None,
                Some(rank.view_mut()),
                false,
                |y, row, _| row.nll(y),
            );
            nll.zip_mut_with(&rank, |a, &b| *a = b.as_f64());
        }
        let k = self.kept(n);
        let mut order: Vec<usize> = (0..n).collect();
        // Largest first; equal losses keep the earlier sample (a stable sort).
        order.sort_by(|&a, &b| nll[b].total_cmp(&nll[a]));
        let mut keep = vec![false; n];
        for &i in &order[..k] {
            keep[i] = true;
        }
        // Pass 2: the value and gradient of the kept rows.
        let divisor = k as f64;
        let scale: F = self.reduction.grad_scale(divisor);
        let sum = softmax_rows_2d(
            logits,
            |i| (labels.class(i), keep[i]),
            grad,
            per,
            false,
            |(y, kept), row, g| {
                let factor = if kept { scale } else { F::zero() };
                if let Some(g) = g {
                    one_hot_grad(g, y, factor);
                }
                if kept { row.nll(y) } else { 0.0 }
            },
        );
        Ok(Totals {
            sum,
            divisor,
            what: "logits",
        })
    }
}
