//! The multi-class hinge of Crammer and Singer.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::rows::run_rows_on_labels;
use crate::{Float, Result};

loss_options! {
    /// The multi-class hinge of Crammer and Singer: the true class's score
    /// must beat the best other class's by a margin,
    /// `max(0, margin + max_{j != y} x_j - x_y)`.
    ///
    /// Where [`crate::MultiMargin`] (Weston–Watkins, PyTorch's
    /// `MultiMarginLoss`) sums a hinge over every wrong class, this one
    /// charges only the most violating class, so a sample costs at most one
    /// hinge however many classes there are: the multi-class SVM of
    /// Crammer and Singer (and of `sklearn`'s `LinearSVC(multi_class=
    /// "crammer_singer")`).
    ///
    /// # Formula
    /// ```text
    /// j* = argmax_{j != y} x_j        z = margin + x_{j*} - x_y
    /// l  = max(0, z)                  d l / d x_{j*} = 1, d l / d x_y = -1 where z > 0 (0 elsewhere)
    /// ```
    /// On a tie for `j*` the gradient goes to the first such class; at
    /// `z = 0` exactly it is 0. With one class there is no rival and the
    /// loss is 0.
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`).
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin`: finite, `>= 0` (default 1).
    ///
    /// # Errors
    /// An empty batch or no classes, labels of another length or out of
    /// range, a gradient buffer of another shape; a negative or non-finite
    /// margin at construction. The hinge is computed in `f64`, so finite
    /// `f32` logits never overflow it; a sample beyond `F` is
    /// [`crate::Error::Overflow`]. Non-finite logits propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CrammerSinger, Differentiable, Labels, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.5, -1.0], [0.0, 3.0, 1.0]];
    /// let labels = array![0_i64, 1];
    /// let loss = CrammerSinger::new();
    /// // Sample 0: 1 + 1.5 - 2 = 0.5; sample 1: 1 + 1 - 3 < 0, so 0.
    /// let (value, grad) = loss.forward_backward(logits.view(), Labels::from(&labels))?;
    /// assert_eq!(value, 0.25);
    /// assert_eq!(grad.row(0).to_vec(), vec![-0.5, 0.5, 0.0]);
    /// assert_eq!(grad.row(1).to_vec(), vec![0.0, 0.0, 0.0]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// K. Crammer and Y. Singer, "On the algorithmic implementation of
    /// multiclass kernel-based vector machines", Journal of Machine
    /// Learning Research 2:265-292, 2001,
    /// <https://www.jmlr.org/papers/v2/crammer01a.html>.
    #[derive(PartialEq)]
    pub struct CrammerSinger<F: Float> {
        /// The margin the true class must win by.
        margin: f64 = 1.0,
            /// Sets the margin, finite and `>= 0` (default 1).
            set with_margin checked by non_negative;
    }

    /// The Crammer–Singer hinge: mean reduction, margin 1.
    fn new();
}

impl<F: Float> Compute<F> for CrammerSinger<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let c = call.input.ncols();
        run_rows_on_labels(self.reduction, call, |y, row, sink| {
            // The first best rival; a NaN wins, so that it propagates.
            let rival = row.iter().enumerate().filter(|&(j, _)| j != y).fold(
                None,
                |best: Option<(usize, f64)>, (j, &x)| {
                    let x = x.as_f64();
                    match best {
                        Some((_, b)) if b.is_nan() || !(x > b || x.is_nan()) => best,
                        _ => Some((j, x)),
                    }
                },
            );
            // In f64: the difference of two f32 logits can pass f32.
            let (value, active) = match rival {
                None => (0.0, None),
                Some((j, xj)) => {
                    let z = self.margin + (xj - row[y].as_f64());
                    if z > 0.0 || z.is_nan() {
                        (z, Some(j))
                    } else {
                        (0.0, None)
                    }
                }
            };
            if let Some(sink) = sink {
                for k in 0..c {
                    let d = match active {
                        Some(j) if k == j => 1.0,
                        Some(_) if k == y => -1.0,
                        _ => 0.0,
                    };
                    sink.set(k, d);
                }
            }
            value
        })
    }
}
