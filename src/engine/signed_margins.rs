//! What the binary margin losses share: the label convention and the loop
//! over `(score, label)` pairs. (The soft margin loss, elementwise over
//! any rank, uses the convention on the logistic engine instead.)
//!
//! [`crate::Hinge`] and [`crate::Exponential`] are both a function of the
//! signed margin `y * s` of each sample, so they share one shell
//! ([`run_signed`]: the validation and the loop); each supplies only its
//! per-sample value and derivative.

use ndarray::Ix1;

use crate::base::loss::{Call, Elementwise};
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{check_values, expect_nonempty, expect_shape};
use crate::{Float, Reduction, Result};

/// How the labels of the binary margin losses ([`crate::Hinge`],
/// [`crate::Exponential`]) are written.
///
/// The formulas are written for `y` in `{-1, +1}`; with
/// [`LabelConvention::ZeroOne`] a label `0` is read as `y = -1`. A label
/// outside the convention's two values is an error, never rounded or
/// thresholded: a `0` under the default convention is far more often a
/// mistake (0/1 data passed unconverted) than an intended value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LabelConvention {
    /// `-1` for the negative class, `+1` for the positive (default): the
    /// convention of SVMs and AdaBoost, and of the reference cases.
    #[default]
    PlusMinusOne,
    /// `0` for the negative class, `1` for the positive (the convention of
    /// binary cross-entropy targets); `0` is read as `-1`.
    ZeroOne,
}

impl LabelConvention {
    /// The two label values, as the error message states them.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            LabelConvention::PlusMinusOne => "-1 or +1 (0/1 labels need LabelConvention::ZeroOne)",
            LabelConvention::ZeroOne => "0 or 1 (LabelConvention::ZeroOne)",
        }
    }

    pub(crate) fn accepts<F: Float>(self, v: F) -> bool {
        match self {
            LabelConvention::PlusMinusOne => v == F::one() || v == -F::one(),
            LabelConvention::ZeroOne => v == F::zero() || v == F::one(),
        }
    }

    /// The sign `y` of an accepted label.
    #[inline]
    pub(crate) fn sign<F: Float>(self, v: F) -> F {
        match self {
            LabelConvention::PlusMinusOne => v,
            LabelConvention::ZeroOne if v == F::zero() => -F::one(),
            LabelConvention::ZeroOne => F::one(),
        }
    }
}

/// The binary margin losses' signature: scores and labels `(N)`.
pub(crate) type ScoresAndSigns = Elementwise<Ix1>;

/// Checks the scores, the labels (under `convention`) and the gradient
/// buffer of a binary margin loss, then runs `loss(y, s) -> (value,
/// d value / d s)` on every sample (both in `f64`, so that a value beyond
/// `F` keeps its magnitude, and a derivative beyond `F` whose scaled
/// gradient fits is exact); `Mean` divides by `N`.
///
/// Stores each value in `call.per` and the reduction's scale times the
/// derivative in `call.grad` when given.
pub(crate) fn run_signed<F: Float>(
    reduction: Reduction,
    convention: LabelConvention,
    call: Call<'_, '_, '_, F, ScoresAndSigns>,
    loss: impl Fn(F, F) -> (f64, f64),
) -> Result<Totals> {
    let Call {
        input: scores,
        target: labels,
        mut grad,
        mut per,
    } = call;
    expect_nonempty("scores", scores.shape(), 0, "sample")?;
    expect_shape("labels", labels.shape(), scores.shape())?;
    check_values("labels", &labels, convention.expected(), |v| {
        convention.accepts(v)
    })?;
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), scores.shape())?;
    }
    let divisor = scores.len() as f64;
    let scale: f64 = reduction.grad_scale(divisor);
    let mut sum = Sum::default();
    for (i, (&s, &label)) in scores.iter().zip(labels.iter()).enumerate() {
        let y = convention.sign(label);
        let (value, slope) = loss(y, s);
        if let Some(g) = grad.as_mut() {
            g[i] = sum.grad_entry(i, slope * scale);
        }
        if let Some(p) = per.as_mut() {
            p[i] = F::lit(value);
        }
        sum.add::<F>(i, value);
    }
    Ok(Totals {
        sum,
        divisor,
        what: "scores",
    })
}
