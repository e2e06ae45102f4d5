//! The multi-class hinge loss, as PyTorch's `nn.MultiMarginLoss`.

use ndarray::{Array1, ArrayView1, ArrayViewMut1};

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{about_pow10, check_scores, overflow};
use crate::{Float, Result};

loss_options! {
    /// The multi-class hinge loss of PyTorch's `multi_margin_loss`: every
    /// class `j` whose logit comes within `margin` of the true class's logit
    /// costs `max(0, margin - x_y + x_j)^p`, averaged over the classes.
    ///
    /// Use it for a multi-class SVM objective (one score per class, the
    /// Weston-Watkins formulation), or as a cross-entropy alternative that
    /// stops pushing once the true class leads every other by `margin`: a
    /// sample classified with that lead costs nothing and has a zero gradient.
    /// It gives no probabilities.
    ///
    /// # Formula
    /// ```text
    /// z_ij = margin - x_{i,y_i} + x_ij                   (j != y_i)
    /// l_i  = (1 / C) sum_{j != y_i} w_{y_i} max(0, z_ij)^p
    /// d l_i / d x_ij     =  (1 / C) w_{y_i} h_ij          (j != y_i)
    /// d l_i / d x_{i,y_i} = -(1 / C) w_{y_i} sum_{j != y_i} h_ij
    /// h_ij = [z_ij > 0] for p = 1,  2 z_ij [z_ij > 0] for p = 2
    /// ```
    /// `w` is 1 without class weights. As in PyTorch's kernel, the weight of
    /// the sample's true class multiplies each term after the power (it is
    /// `w max(0, z)^2`, not `(w max(0, z))^2`), and every sample is divided by
    /// `C` (the number of classes, including the true one), not by `C - 1`.
    /// At a kink `z_ij = 0` the term is treated as inactive (PyTorch's strict
    /// `z > 0`), so the subgradient there is 0 for `p = 1`; for `p = 2` the
    /// loss is differentiable and that is its gradient.
    ///
    /// `z` is computed as `margin + (x_j - x_y)`: the difference of the
    /// logits first, which is exact when they are close. PyTorch computes
    /// `(margin - x_y) + x_j`, which loses the margin once the logits are
    /// large (at `x_y = x_j = 1e30` it gives 0 where the loss is
    /// `margin / C`); elsewhere the two agree to rounding.
    ///
    /// # Shapes
    /// - logits: `(N, C)`; labels: `(N)` with values in `0..C`.
    /// - per-sample: `(N)`; gradient: `(N, C)`.
    /// - `Mean` divides by `N`, with or without weights (PyTorch's rule for
    ///   this loss, unlike cross-entropy's weighted mean).
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `p`: 1 (default) or 2, the power of each hinge term.
    /// - `margin`: a finite number `>= 0` (default 1).
    /// - `weight`: one finite weight `>= 0` per class (default: none).
    ///
    /// # Errors
    /// An empty batch or class axis, labels whose length is not `N`, a label
    /// `>= C`, a `weight` whose length is not `C`, a negative or non-finite
    /// `margin`, a `p` other than 1 or 2, a negative or non-finite weight, a
    /// gradient buffer whose shape is not `(N, C)`.
    ///
    /// Each row is computed in the input's float type, as PyTorch does. Where
    /// that overflows for a finite row (`z^2` passes the `f32` range for logits
    /// about `1.8e19` apart, while the loss, divided by `C`, may still fit), the
    /// row is computed again in `f64` (whose range holds every intermediate of
    /// an `f32` row), and only a loss or gradient beyond the float type's range
    /// is an error: [`crate::Error::Overflow`] naming the row, for example
    /// logits `1e20` apart with `p = 2` in `f32`. A `Sum` of finite
    /// per-sample values beyond the range is the same error with an empty
    /// index. After an error the gradient buffer may be partly written.
    /// Non-finite logits are not checked and propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, MultiMargin};
    /// use ndarray::array;
    ///
    /// // The example of PyTorch's documentation.
    /// let logits = array![[0.1_f64, 0.2, 0.4, 0.8]];
    /// let labels = array![3_usize];
    /// let loss = MultiMargin::new();
    /// // ((1 - 0.8 + 0.1) + (1 - 0.8 + 0.2) + (1 - 0.8 + 0.4)) / 4
    /// let (value, grad) = loss.forward_backward(logits.view(), labels.view())?;
    /// assert!((value - 0.325).abs() < 1e-15);
    /// assert_eq!(grad, array![[0.25, 0.25, 0.25, -0.75]]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.MultiMarginLoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.MultiMarginLoss.html>).
    /// J. Weston and C. Watkins, "Support Vector Machines for Multi-Class
    /// Pattern Recognition", ESANN 1999, pp. 219-224,
    /// <https://www.esann.org/sites/default/files/proceedings/legacy/es1999-461.pdf>
    /// (the sum over `j != y`). K. Crammer and Y. Singer, "On the Algorithmic
    /// Implementation of Multiclass Kernel-based Vector Machines", JMLR
    /// 2:265-292, 2001, <https://www.jmlr.org/papers/v2/crammer01a.html>, take
    /// the largest term instead of the sum; that variant is not offered here.
    /// Both build on C. Cortes and V. Vapnik, "Support-vector networks",
    /// Machine Learning 20(3):273-297, 1995.
    pub struct MultiMargin<F: Float> {
        /// The power of each hinge term.
        p: u32 = 1,
            /// Sets the power of each hinge term, 1 or 2 (default 1).
            set with_p checked by one_or_two;
        /// The margin.
        margin: f64 = 1.0,
            /// Sets the margin, a finite number `>= 0` (default 1).
            set with_margin checked by non_negative;
        /// The class weights, if any.
        weight: Option<Array1<F>> = None,
            /// Sets one weight per class (finite, `>= 0`; default none).
            set with_weight(Array1<F>) checked by weights;
    }

    /// The multi-class hinge: mean reduction, `p = 1`, margin 1, no weights.
    fn new();
}

impl<F: Float> MultiMargin<F> {
    /// One row again in `f64`, for a row whose computation in `F`
    /// overflowed: an intermediate (`z`, `z^2`, the sum over classes) can
    /// overflow `f32` while the loss itself, divided by `C`, fits. Writes
    /// the row's gradient (with per-term factor `g`) into `grad_row` when
    /// given and returns the loss and the true class's gradient.
    fn row_f64(
        &self,
        row: ArrayView1<'_, F>,
        y: usize,
        g: f64,
        grad_row: Option<&mut ArrayViewMut1<'_, F>>,
    ) -> (f64, f64) {
        let wy = self.weight.as_ref().map_or(1.0, |w| w[y].as_f64());
        let xy = row[y].as_f64();
        let (mut sum, mut grad_y) = (0.0, 0.0);
        let mut grad_row = grad_row;
        for (j, &xj) in row.iter().enumerate() {
            if j == y {
                continue;
            }
            let z = self.margin + (xj.as_f64() - xy);
            let h = if z > 0.0 {
                sum += wy * z.powi(self.p as i32);
                wy * g * if self.p == 1 { 1.0 } else { 2.0 * z }
            } else {
                0.0
            };
            grad_y -= h;
            if let Some(gr) = grad_row.as_mut() {
                gr[j] = F::lit(h);
            }
        }
        if let Some(gr) = grad_row {
            gr[y] = F::lit(grad_y);
        }
        (sum / row.len() as f64, grad_y)
    }
}

impl<F: Float> Compute<F> for MultiMargin<F> {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: labels,
            mut grad,
            mut per,
        } = call;
        let weight_len = self.weight.as_ref().map(|w| ("weight", w.len()));
        check_scores(&logits, weight_len.as_slice(), grad.as_ref())?;
        let (n, c) = logits.dim();
        labels.check_rows(n, c)?;

        let margin = F::lit(self.margin);
        let classes = F::from_count(c);
        let squared = self.p == 2;
        let two = F::lit(2.0);
        // PyTorch's per-term gradient factor: 1 / (N C) for the mean, 1 / C otherwise.
        let g64 = self.reduction.grad_scale::<f64>(n as f64) / c as f64;
        let g = F::lit(g64);
        let mut total = Sum::default();
        for (i, row) in logits.rows().into_iter().enumerate() {
            let y = labels.class(i);
            let wy = self.weight.as_ref().map_or(F::one(), |w| w[y]);
            if wy == F::zero() && row.iter().all(|x| x.is_finite()) {
                // A class of weight 0 costs nothing, even where its terms
                // overflow (0 * inf would be NaN).
                if let Some(mut gr) = grad.as_mut().map(|g| g.row_mut(i)) {
                    gr.fill(F::zero());
                }
                if let Some(p) = per.as_mut() {
                    p[i] = F::zero();
                }
                continue;
            }
            let xy = row[y];
            let mut sum = F::zero();
            let mut grad_y = F::zero();
            let mut grad_row = grad.as_mut().map(|g| g.row_mut(i));
            for (j, &xj) in row.iter().enumerate() {
                if j == y {
                    continue;
                }
                // The difference first (see the type's docs).
                let z = margin + (xj - xy);
                // NaN takes the active branch so that it propagates.
                let active = z > F::zero() || z.is_nan();
                if active {
                    sum += (if squared { z * z } else { z }) * wy;
                }
                if let Some(gr) = grad_row.as_mut() {
                    gr[j] = if active {
                        let h = (if squared { two * g * z } else { g }) * wy;
                        grad_y -= h;
                        h
                    } else {
                        F::zero()
                    };
                }
            }
            let value = sum / classes;
            let mut value64 = value.as_f64();
            if let Some(gr) = grad_row.as_mut() {
                gr[y] = grad_y;
            }
            let finite_row = || row.iter().all(|x| x.is_finite());
            if !(value.is_finite() && grad_y.is_finite()) && finite_row() {
                // Overflow of a finite row: f64 holds every intermediate of
                // an f32 row; a value beyond F is the reducer's overflow.
                let (v64, gy64) = self.row_f64(row, y, g64, grad_row.as_mut());
                value64 = v64;
                if grad_row.is_some() && !F::lit(gy64).is_finite() {
                    let actual = about_pow10(gy64.abs().log10());
                    let quantity = "the gradient of the sample's loss";
                    return Err(overflow::<F>("logits", vec![i], quantity, actual));
                }
            }
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value64);
            }
            total.add::<F>(i, value64);
        }
        Ok(Totals {
            sum: total,
            divisor: n as f64,
            what: "logits",
        })
    }
}
