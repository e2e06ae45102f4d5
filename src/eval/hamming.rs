//! The Hamming loss of multi-label predictions.

use ndarray::{Ix2, Zip};

use crate::base::loss::{ByElement, Call, Compute, NoGradient, Scores};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{check_values, expect_min_rank, expect_shape};
use crate::{Error, Float, Result};

loss_options! {
    /// The Hamming loss: the fraction (or, with `Sum`, the count) of
    /// labels a multi-label prediction gets wrong, a label being predicted
    /// where `sigmoid(x) > threshold`. A measure to report, like
    /// [`crate::ZeroOne`]: it has no gradient (the type has no
    /// `backward`), since it is piecewise constant.
    ///
    /// Use it beside a multi-label loss ([`crate::MultiLabelSoftMargin`],
    /// [`crate::BceWithLogits`], [`crate::SigmoidFocal`]) to report how
    /// many labels are wrong; it counts a missed label and a spurious one
    /// alike, so with rare labels a model predicting none scores well:
    /// report F1 or average precision as well.
    ///
    /// # Formula
    /// ```text
    /// predicted_ic = sigmoid(x_ic) > threshold   (as x_ic > ln(threshold / (1 - threshold)))
    /// l_ic = [predicted_ic != (t_ic = 1)]
    /// ```
    ///
    /// # Shapes
    /// - logits `(N, C)` with at least one element; targets `(N, C)`, 0 or
    ///   1, the logits' element type.
    /// - per-sample: one 0/1 value per label, `(N, C)`.
    /// - `Mean` divides by the number of labels `N C` (the Hamming loss);
    ///   `Sum` is the count of wrong labels.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `threshold`: a probability strictly between 0 and 1 (default 0.5).
    ///
    /// # Errors
    /// An empty input, targets of another shape, a target other than 0 or
    /// 1 ([`crate::Error::InvalidTarget`] naming `targets`); a threshold
    /// outside `(0, 1)` at construction. A NaN logit predicts no label.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Hamming, Loss, Reduction};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, -1.0, 0.1], [-3.0, 0.5, 4.0]];
    /// let targets = array![[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]];
    /// // Wrong: (0, 1) missed, (0, 2) spurious.
    /// assert_eq!(Hamming::new().forward(logits.view(), targets.view())?, 2.0 / 6.0);
    /// let count = Hamming::new().with_reduction(Reduction::Sum);
    /// assert_eq!(count.forward(logits.view(), targets.view())?, 2.0);
    /// // A stricter threshold predicts fewer labels: sigmoid(0.1) < 0.6, so
    /// // (0, 2) is no longer predicted, and no longer wrong.
    /// let strict = Hamming::new().with_threshold(0.6)?;
    /// assert_eq!(strict.forward(logits.view(), targets.view())?, 1.0 / 6.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// R. E. Schapire and Y. Singer, "BoosTexter: a boosting-based system
    /// for text categorization", Machine Learning 39:135-168, 2000;
    /// G. Tsoumakas and I. Katakis, "Multi-label classification: an
    /// overview", IJDWM 3(3):1-13, 2007.
    #[derive(PartialEq)]
    pub struct Hamming {
        /// The probability above which a label is predicted.
        threshold: f64 = 0.5,
            /// Sets the threshold, a probability strictly between 0 and 1
            /// (default 0.5).
            set with_threshold checked by open_unit_interval;
    }

    /// The Hamming loss: the fraction of wrong labels, threshold 0.5.
    fn new();
}

impl<F: Float> Compute<F> for Hamming {
    type Sig = Scores<Ix2, ByElement, NoGradient>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: logits,
            target: targets,
            grad: _no_grad,
            mut per,
        } = call;
        expect_min_rank("logits", logits.shape(), 1)?;
        if logits.is_empty() {
            return Err(Error::EmptyBatch {
                what: "logits",
                unit: "element",
                shape: format!("{:?}", logits.shape()),
            });
        }
        expect_shape("targets", targets.shape(), logits.shape())?;
        check_values("targets", &targets, "0 or 1", |v| {
            v == F::zero() || v == F::one()
        })?;
        // sigmoid(x) > t exactly where x > logit(t), compared in f64.
        let cut = (self.threshold / (1.0 - self.threshold)).ln();
        let miss = |x: F, t: F| (x.as_f64() > cut) != (t == F::one());
        let mut wrong = 0_usize;
        match per.as_mut() {
            Some(p) => Zip::from(p)
                .and(&logits)
                .and(&targets)
                .for_each(|o, &x, &t| {
                    let m = miss(x, t);
                    wrong += usize::from(m);
                    *o = if m { F::one() } else { F::zero() };
                }),
            None => Zip::from(&logits).and(&targets).for_each(|&x, &t| {
                wrong += usize::from(miss(x, t));
            }),
        }
        Ok(Totals {
            sum: Sum {
                total: wrong as f64,
                ..Sum::default()
            },
            divisor: logits.len() as f64,
            what: "logits",
        })
    }
}
