//! How per-sample losses are combined into one number.

use std::fmt;

/// How a loss combines its per-sample values, as PyTorch's `reduction`.
///
/// | variant | `forward` returns | gradient is of |
/// | --- | --- | --- |
/// | [`Reduction::Mean`] (default) | the loss's mean (each loss documents its divisor) | the mean |
/// | [`Reduction::Sum`] | the sum of the per-sample values | the sum |
/// | [`Reduction::None`] | the sum (use `per_sample` for the unreduced values) | the sum |
///
/// `None` returns the sum from `forward` so that `forward`, the gradient and
/// the fused call always agree with each other: the gradient of a vector is
/// not defined, and PyTorch's `loss.sum().backward()` is what a user of
/// `reduction='none'` differentiates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Average over the samples (the divisor is documented per loss).
    #[default]
    Mean,
    /// Sum over the samples.
    Sum,
    /// No reduction: `per_sample` gives the values, `forward` their sum.
    None,
}

impl Reduction {
    /// The PyTorch spelling: `"mean"`, `"sum"` or `"none"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::None => "none",
        }
    }

    /// Parses the PyTorch spelling.
    ///
    /// ```
    /// use classloss::Reduction;
    /// assert_eq!(Reduction::parse("sum").unwrap(), Reduction::Sum);
    /// assert!(Reduction::parse("avg").is_err());
    /// ```
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "none" => Ok(Reduction::None),
            other => Err(crate::Error::InvalidOption {
                name: "reduction",
                value: format!("{other:?}"),
                expected: "\"mean\", \"sum\" or \"none\"",
            }),
        }
    }
}

impl Reduction {
    /// The factor each sample's gradient is multiplied by: `1 / divisor` for
    /// `Mean` (0 when the divisor is 0, see [`Reduction::finish`]), 1 otherwise.
    pub(crate) fn grad_scale<F: crate::Float>(self, divisor: f64) -> F {
        match self {
            Reduction::Mean if divisor > 0.0 => F::lit(1.0 / divisor),
            Reduction::Mean => F::zero(),
            Reduction::Sum | Reduction::None => F::one(),
        }
    }

    /// The reduced value from the sum of the per-sample values.
    ///
    /// A `Mean` over a divisor of 0 (every sample ignored, or every counted
    /// weight zero) is 0, where PyTorch returns NaN: a batch with nothing to
    /// learn from then contributes nothing instead of poisoning the weights.
    pub(crate) fn finish<F: crate::Float>(self, total: f64, divisor: f64) -> F {
        match self {
            Reduction::Mean if divisor > 0.0 => F::lit(total / divisor),
            Reduction::Mean => F::zero(),
            Reduction::Sum | Reduction::None => F::lit(total),
        }
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
