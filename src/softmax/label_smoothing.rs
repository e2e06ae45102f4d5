//! Label-smoothed cross-entropy with a choice of smoothing convention.

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::softmax_labels::run_on_labels;
use crate::engine::softmax_rows::{smoothed_grad, term};
use crate::{Error, Float, Result};

/// How the smoothing mass `eps` is spread over the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SmoothingConvention {
    /// PyTorch's convention (`label_smoothing` of `nn.CrossEntropyLoss`):
    /// the target is `(1 - eps) one_hot + eps / C`, so the true class gets
    /// `1 - eps + eps / C` and every other class `eps / C`.
    #[default]
    Uniform,
    /// The convention of the source documents and of several papers: the
    /// true class gets `1 - eps` and every other class `eps / (C - 1)`.
    /// Needs at least 2 classes.
    OffTarget,
}

loss_options! {
    /// Cross-entropy against smoothed one-hot targets, in either convention.
    ///
    /// Use it against over-confidence: the model is never pushed to put all its
    /// probability on one class, which tends to improve calibration.
    /// [`SmoothingConvention::Uniform`] equals
    /// `CrossEntropy::new().with_label_smoothing(eps)` (without class weights);
    /// use `CrossEntropy` when you also need weights or `ignore_index`.
    ///
    /// # Formula
    /// ```text
    /// uniform:     q_c = (1 - eps) [c == y] + eps / C
    /// off_target:  q_c = (1 - eps) [c == y] + eps / (C - 1) [c != y]
    /// l_i = -sum_c q_c log p_c,  p = softmax(x_i)       dl_i/dx_c = p_c - q_c
    /// ```
    /// With `eps = 0.1` and `C = 5` the true class gets 0.92 (uniform) or 0.9
    /// (off_target), each other class 0.02 or 0.025.
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` in `0..C`; per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `epsilon`: in `[0, 1]`, default 0.1 (the documents' and Szegedy et
    ///   al.'s value; PyTorch's own default smoothing is 0, that is no smoothing).
    /// - `convention`: [`SmoothingConvention::Uniform`] (default) or
    ///   [`SmoothingConvention::OffTarget`].
    ///
    /// # Errors
    /// Logits not 2-D, an empty batch or class axis, labels of the wrong shape
    /// or out of range, `epsilon` outside `[0, 1]`, `OffTarget` with one class, a
    /// gradient buffer of the wrong shape.
    ///
    /// # Examples
    /// ```
    /// use classloss::{LabelSmoothing, Loss, SmoothingConvention};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, 1.0, 0.1]];
    /// let labels = array![0_usize];
    /// let uniform = LabelSmoothing::new().with_epsilon(0.1)?;
    /// let off = uniform.clone().with_convention(SmoothingConvention::OffTarget);
    /// let a = uniform.forward(logits.view(), labels.view())?;
    /// let b = off.forward(logits.view(), labels.view())?;
    /// assert!((a - 0.5136966829445004).abs() < 1e-12);
    /// assert!((b - 0.5620300162778338).abs() < 1e-12);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna, "Rethinking the
    /// Inception Architecture for Computer Vision", CVPR 2016,
    /// <https://arxiv.org/abs/1512.00567>. R. Müller, S. Kornblith, G. Hinton,
    /// "When Does Label Smoothing Help?", NeurIPS 2019,
    /// <https://arxiv.org/abs/1906.02629>.
    #[derive(PartialEq)]
    pub struct LabelSmoothing {
        /// The smoothing mass.
        epsilon: f64 = 0.1,
            /// Sets the smoothing mass `epsilon` in `[0, 1]` (default 0.1).
            set with_epsilon checked by unit_interval;
        /// The convention.
        convention: SmoothingConvention = SmoothingConvention::Uniform,
            /// Sets the convention (default [`SmoothingConvention::Uniform`]).
            set with_convention;
    }

    /// Mean reduction, `epsilon = 0.1`, the uniform (PyTorch) convention.
    fn new();
}

impl LabelSmoothing {
    /// The smoothed target of one row: `(on the label, on every other class)`.
    pub fn target_values(&self, num_classes: usize) -> Result<(f64, f64)> {
        let eps = self.epsilon;
        match self.convention {
            SmoothingConvention::Uniform => {
                let off = eps / num_classes as f64;
                Ok((1.0 - eps + off, off))
            }
            SmoothingConvention::OffTarget if num_classes >= 2 => {
                Ok((1.0 - eps, eps / (num_classes - 1) as f64))
            }
            SmoothingConvention::OffTarget => Err(Error::InvalidOption {
                name: "convention",
                value: format!("OffTarget with {num_classes} class"),
                expected: "at least 2 classes for the eps / (C - 1) convention",
            }),
        }
    }
}

impl<F: Float> Compute<F> for LabelSmoothing {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        // An empty class axis is reported (as such) by `run_on_labels`.
        let (on, off) = match call.input.ncols() {
            0 => (0.0, 0.0),
            classes => self.target_values(classes)?,
        };
        let (on, off) = (F::lit(on), F::lit(off));
        run_on_labels(self.reduction, call, &[], true, |y, row, g, scale| {
            // The target is off everywhere plus (on - off) on the label;
            // it sums to 1 in both conventions.
            if let Some(g) = g {
                smoothed_grad(g, scale, 1.0, off, None, Some((y, on - off)));
            }
            let nll_y = row.nll(y);
            if nll_y.is_finite() {
                term((on - off).as_f64(), nll_y) + term(off.as_f64(), row.nll_sum(None))
            } else {
                // Cold: -log p_y beyond f64 (f64 logits spanning more than
                // its range). With `on < off` (OffTarget, eps > (C-1)/C)
                // the fast form is -inf + inf; summed as on * nll_y plus
                // off times the other classes' terms it is exact.
                let others: f64 = (0..row.x.len())
                    .filter(|&c| c != y)
                    .map(|c| term(off.as_f64(), row.nll(c)))
                    .sum();
                term(on.as_f64(), nll_y) + others
            }
        })
    }
}
