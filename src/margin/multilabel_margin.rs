//! The multi-label ranking hinge, as PyTorch's `nn.MultiLabelMarginLoss`.

use std::cell::RefCell;

use crate::base::loss::{BySets, Call, Compute, Rows};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_scores;
use crate::engine::rows::run_rows;
use crate::{Float, Result};

loss_options! {
    /// The multi-label ranking hinge of PyTorch's `multilabel_margin_loss`:
    /// every class of a sample's label set must score at least 1 above
    /// every class outside it.
    ///
    /// Use it for multi-label classification when what matters is the
    /// ranking (the true labels above the rest, as mean average precision
    /// measures) rather than a calibrated probability per class; pick the
    /// labels by a threshold tuned on held-out scores, or by the top `k`.
    /// Each sample's target is a set of classes of any size, empty
    /// included ([`crate::LabelSets`]).
    ///
    /// # Formula
    /// ```text
    /// l_i = (1 / C) sum_{j in Y_i} sum_{k not in Y_i} max(0, 1 - (x_ij - x_ik))
    /// d l_i / d x_ij = -(1 / C) #{k not in Y_i : 1 - (x_ij - x_ik) > 0}   (j in Y_i)
    /// d l_i / d x_ik =  (1 / C) #{j in Y_i : 1 - (x_ij - x_ik) > 0}       (k not in Y_i)
    /// ```
    /// An empty set, or a set of all `C` classes, has no pair to rank and
    /// costs 0. At a kink (`x_ij - x_ik = 1` exactly) the pair is inactive
    /// and its subgradient 0, as PyTorch's strict `> 0`. The hinge is
    /// computed in `f64` as `1/C + (x_ik/C - x_ij/C)`: each term divided
    /// by `C` first, so that logits `1e308` apart in `f64` still give the
    /// finite value they have.
    ///
    /// # Shapes
    /// - logits `(N, C)`; label sets: `N` sets of distinct classes in
    ///   `0..C`, as lists (`&[Vec<usize>]`) or PyTorch's padded `(N, C)`
    ///   integer array, each row ended by its first `-1`.
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N` (samples with an empty set count).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    ///
    /// # Errors
    /// An empty batch or no classes; label sets for another number of
    /// samples (a padded array of another shape than the logits'); a class
    /// outside `0..C` (in the padded form, an entry below `-1`); a class
    /// twice in one set ([`crate::Error::InvalidTarget`] naming
    /// `label_sets` and the position); a gradient buffer of another shape.
    /// A sample's value beyond `F` is [`crate::Error::Overflow`];
    /// non-finite logits propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, LabelSets, Loss, MultiLabelMargin};
    /// use ndarray::array;
    ///
    /// // PyTorch's documentation example: classes 3 and 0 are the labels.
    /// let logits = array![[0.1_f64, 0.2, 0.4, 0.8]];
    /// let padded = array![[3_i64, 0, -1, 1]];
    /// let loss = MultiLabelMargin::new();
    /// let value = loss.forward(logits.view(), LabelSets::from(&padded))?;
    /// // ((1-(0.1-0.2)) + (1-(0.1-0.4)) + (1-(0.8-0.2)) + (1-(0.8-0.4))) / 4
    /// assert!((value - 0.85).abs() < 1e-12);
    ///
    /// // The same sets as lists; a sample may have no label.
    /// let sets = vec![vec![3, 0], vec![]];
    /// let logits = array![[0.1_f64, 0.2, 0.4, 0.8], [1.0, 2.0, 3.0, 4.0]];
    /// let (value, grad) = loss.forward_backward(logits.view(), LabelSets::from(&sets))?;
    /// assert!((value - 0.85 / 2.0).abs() < 1e-12);
    /// assert_eq!(grad.row(0).to_vec(), vec![-0.25, 0.25, 0.25, -0.25]);
    /// assert_eq!(grad.row(1).to_vec(), vec![0.0; 4]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.MultiLabelMarginLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.MultiLabelMarginLoss.html>.
    /// The pairwise ranking objective is BP-MLL's with a hinge in place of
    /// the exponential: M.-L. Zhang and Z.-H. Zhou, "Multilabel Neural
    /// Networks with Applications to Functional Genomics and Text
    /// Categorization", IEEE TKDE 18(10):1338-1351, 2006.
    #[derive(Copy, PartialEq, Eq)]
    pub struct MultiLabelMargin {}

    /// The multi-label ranking hinge: mean reduction.
    fn new();
}

impl<F: Float> Compute<F> for MultiLabelMargin {
    type Sig = Rows<BySets>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: sets,
            grad,
            per,
        } = call;
        check_scores(&logits, &[], grad.as_ref())?;
        let c = logits.ncols();
        sets.check(logits.nrows(), c)?;
        let inv_c = 1.0 / c as f64;
        // Buffers reused across rows: the set, class membership, the
        // active-pair counts that make the gradient.
        let scratch = RefCell::new((Vec::new(), vec![false; c], vec![0_i64; c]));
        Ok(run_rows(
            self.reduction,
            logits,
            grad,
            per,
            |i, row, sink| {
                let (set, member, count) = &mut *scratch.borrow_mut();
                sets.read(i, set);
                set.iter().for_each(|&j| member[j] = true);
                count.iter_mut().for_each(|n| *n = 0);
                let mut value = 0.0;
                for &j in set.iter() {
                    let xj = row[j].as_f64() * inv_c;
                    for (k, &xk) in row.iter().enumerate() {
                        if member[k] {
                            continue;
                        }
                        let z = inv_c + (xk.as_f64() * inv_c - xj);
                        // A NaN pair counts, so that the NaN propagates.
                        if z > 0.0 || z.is_nan() {
                            value += z;
                            count[j] -= 1;
                            count[k] += 1;
                        }
                    }
                }
                if let Some(sink) = sink {
                    for (k, &n) in count.iter().enumerate() {
                        sink.set(k, n as f64 * inv_c);
                    }
                }
                set.iter().for_each(|&j| member[j] = false);
                value
            },
        ))
    }
}
