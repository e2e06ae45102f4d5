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
    fn finish<F: crate::Float>(self, total: f64, divisor: f64) -> F {
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

/// The running sum of a batch's per-sample values, in `f64`, and the first
/// sample whose value the float type cannot hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sum {
    /// The sum of the values.
    pub total: f64,
    /// The first sample (position in the per-sample array, in logical
    /// order) whose value overflows the float type, and that value
    /// (infinite when it overflowed `f64` too, or was computed in `F`).
    pub overflow: Option<(usize, f64)>,
    /// The first sample with a gradient entry beyond the float type (the
    /// entry's magnitude), where an engine can tell: the gradient paths
    /// whose factors are computed in `f64` (options or weights near the
    /// float maximum) report it; the vectorized paths, whose entries are
    /// bounded, need not.
    pub grad_overflow: Option<(usize, f64)>,
}

impl Sum {
    /// Adds sample `i`'s value (computed in `f64` where it can exceed `F`).
    #[inline]
    pub fn add<F: crate::Float>(&mut self, i: usize, value: f64) {
        self.total += value;
        if value.abs() > F::max_value().as_f64() && self.overflow.is_none() {
            self.overflow = Some((i, value));
        }
    }

    /// Records that sample `i`'s gradient has an entry of magnitude
    /// `magnitude`, beyond `F` (the first such sample is kept).
    #[cold]
    pub fn grad_beyond(&mut self, i: usize, magnitude: f64) {
        if self.grad_overflow.is_none() {
            self.grad_overflow = Some((i, magnitude));
        }
    }

    /// Sample `i`'s gradient entry `v` (computed in `f64`) in `F`, recorded
    /// by [`Sum::grad_beyond`] when it is beyond `F`.
    #[inline]
    pub fn grad_entry<F: crate::Float>(&mut self, i: usize, v: f64) -> F {
        if v.abs() > F::max_value().as_f64() {
            self.grad_beyond(i, v);
        }
        F::lit(v)
    }

    /// The sum of `self` followed by `later` (blocks added in order).
    pub fn then(self, later: Sum) -> Sum {
        Sum {
            total: self.total + later.total,
            overflow: self.overflow.or(later.overflow),
            grad_overflow: self.grad_overflow.or(later.grad_overflow),
        }
    }

    /// The sum of a block whose samples start at `first` in the whole
    /// batch, its samples (numbered from 0 in the block) renumbered.
    pub fn shifted(self, first: usize) -> Sum {
        Sum {
            total: self.total,
            overflow: self.overflow.map(|(i, v)| (i + first, v)),
            grad_overflow: self.grad_overflow.map(|(i, v)| (i + first, v)),
        }
    }

    /// The sum of blocks' sums, in order.
    pub fn of_blocks(blocks: impl IntoIterator<Item = Sum>) -> Sum {
        blocks.into_iter().fold(Sum::default(), Sum::then)
    }
}

/// What a loss's computation hands to the reducer.
#[derive(Clone, Copy, Debug)]
pub struct Totals {
    /// The sum of the per-sample values.
    pub sum: Sum,
    /// What `Mean` divides by.
    pub divisor: f64,
    /// The input argument's name, for an overflow error.
    pub what: &'static str,
}

/// The reduced value of `totals`, under the crate's one overflow rule.
///
/// A finite input whose true loss exceeds the float type is an
/// [`Error::Overflow`](crate::Error::Overflow), never an infinite value: the
/// error names the first sample whose value overflows (with its magnitude,
/// computed in `f64` where it fits), or no sample when only the sum does.
/// With `per_sample` the caller wants the unreduced values, so only a
/// sample's overflow counts. A gradient entry beyond the float type
/// (reported by the engines in [`Sum::grad_overflow`]) is the same error,
/// naming the sample, when the value itself fits. Inputs that are not all finite
/// (`inputs_finite` is asked only on overflow, so the common path costs
/// nothing) pass their inf/NaN through as PyTorch does.
pub(crate) fn reduce<F: crate::Float>(
    reduction: Reduction,
    totals: Totals,
    samples: &[usize],
    per_sample: bool,
    inputs_finite: impl FnOnce() -> bool,
) -> crate::Result<F> {
    let Totals { sum, divisor, what } = totals;
    let value: F = reduction.finish(sum.total, divisor);
    let overflowed = if per_sample {
        sum.overflow.is_some()
    } else {
        !value.is_finite()
    };
    if !overflowed {
        return match sum.grad_overflow {
            Some((i, magnitude)) if inputs_finite() => Err(crate::base::validate::overflow::<F>(
                what,
                unravel(i, samples),
                "the gradient of the sample's loss",
                crate::base::validate::about_pow10(magnitude.abs().log10()),
            )),
            _ => Ok(value),
        };
    }
    if !inputs_finite() {
        return Ok(value);
    }
    let (index, quantity, magnitude) = match (sum.overflow, reduction) {
        (Some((i, v)), _) => (unravel(i, samples), "the sample's loss", v),
        (None, Reduction::Mean) => (
            Vec::new(),
            "the mean of the per-sample losses",
            sum.total / divisor,
        ),
        (None, _) => (Vec::new(), "the sum of the per-sample losses", sum.total),
    };
    Err(crate::base::validate::overflow::<F>(
        what,
        index,
        quantity,
        crate::base::validate::about_pow10(magnitude.abs().log10()),
    ))
}

/// The multi-index of the `i`-th element (logical order) of an array of
/// shape `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (k, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            index[k] = i % n;
            i /= n;
        }
    }
    index
}

/// Lanes of a [`LaneSum`]: four vectors of `f64` at AVX-512, eight at
/// AVX2, so that four or more independent chains of additions run at once.
const LANES: usize = 32;

/// A [`Sum`] under way of blocks of non-negative values (losses), kept in
/// [`LANES`] `f64` lanes that are added together once, by
/// [`LaneSum::finish`]. Value `i` of a block goes to lane `i % LANES`, so
/// the order depends only on the blocks' lengths (the shape), not on the
/// thread count or the instruction set.
///
/// Why lanes that last across blocks: a block's own total, reduced to
/// one `f64` at every block of 256, was one chain of dependent additions
/// (a vector's lanes, then the lanes one by one), and took a quarter of
/// BCE with logits' time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LaneSum {
    lanes: [f64; LANES],
    overflow: Option<(usize, f64)>,
}

impl LaneSum {
    /// An empty sum.
    pub fn new() -> Self {
        LaneSum {
            lanes: [0.0; LANES],
            overflow: None,
        }
    }

    /// Adds the values of samples `first..`; only a lane beyond `F` (or
    /// NaN) costs a scan of the block for the first value beyond `F`.
    /// Always inlined: in a kernel compiled for a vector instruction set,
    /// the sum is then compiled for it too.
    #[inline(always)]
    pub fn add_block<F: crate::Float, V: crate::Float>(&mut self, first: usize, values: &[V]) {
        let mut chunks = values.chunks_exact(LANES);
        for c in &mut chunks {
            for (lane, &v) in self.lanes.iter_mut().zip(c) {
                *lane += v.as_f64();
            }
        }
        for (lane, &r) in self.lanes.iter_mut().zip(chunks.remainder()) {
            *lane += r.as_f64();
        }
        let max = F::max_value().as_f64();
        // The values are never negative, so a value beyond F (or NaN)
        // leaves its lane beyond F (or NaN).
        let beyond = self
            .lanes
            .iter()
            .fold(false, |b, &l| b | (l > max) | l.is_nan());
        if beyond && self.overflow.is_none() {
            self.scan::<F, V>(first, values);
        }
    }

    /// The first of `values` beyond `F`, if any, as the overflow.
    #[cold]
    fn scan<F: crate::Float, V: crate::Float>(&mut self, first: usize, values: &[V]) {
        let max = F::max_value().as_f64();
        let found = values.iter().position(|v| v.as_f64().abs() > max);
        self.overflow = found.map(|i| (first + i, values[i].as_f64()));
    }

    /// The total (the lanes added in order) and the first value beyond
    /// `F`.
    pub fn finish(self) -> Sum {
        Sum {
            total: self.lanes.iter().sum(),
            overflow: self.overflow,
            grad_overflow: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LANES, LaneSum};

    /// A block's total beyond `F` makes it look for the first value beyond
    /// `F`, named by its position in the whole array; a later block keeps
    /// the first one found; values that fit, with a total that does not,
    /// name none. (The losses on the block path today never exceed `F`
    /// alone: this is the rule for those that could.)
    #[test]
    fn add_block_names_the_first_value_beyond_the_float_type() {
        let inf = f32::INFINITY;
        let mut sum = LaneSum::new();
        sum.add_block::<f32, f32>(0, &[1.0, 2.0]);
        assert_eq!((sum.finish().total, sum.finish().overflow), (3.0, None));
        sum.add_block::<f32, f32>(2, &[1.0, inf, inf]);
        assert_eq!(sum.finish().overflow, Some((3, f64::INFINITY)));
        sum.add_block::<f32, f32>(5, &[inf]);
        assert_eq!(sum.finish().overflow, Some((3, f64::INFINITY)));
        // A NaN is no value beyond F: the total says it.
        let mut nan = LaneSum::new();
        nan.add_block::<f32, f32>(0, &[1.0, 2.0, f32::NAN]);
        assert_eq!(nan.finish().overflow, None);
        assert!(nan.finish().total.is_nan());
        let mut fits = LaneSum::new();
        fits.add_block::<f32, f64>(0, &[3e38, 3e38]);
        assert_eq!((fits.finish().total, fits.finish().overflow), (6e38, None));
        // Two values in one lane beyond f32 together, neither alone, name
        // none; a later block's value beyond f32 is still found.
        let mut lane = LaneSum::new();
        let mut block = vec![0.0_f64; LANES + 1];
        (block[0], block[LANES]) = (3e38, 3e38);
        lane.add_block::<f32, f64>(0, &block);
        assert_eq!(lane.finish().overflow, None);
        lane.add_block::<f32, f64>(LANES + 1, &[1.0, 4e38]);
        assert_eq!(lane.finish().overflow, Some((LANES + 2, 4e38)));
        // Values computed in f64 name one beyond f32.
        let mut wide = LaneSum::new();
        wide.add_block::<f32, f64>(4, &[1.0, 5e38, 1.0]);
        assert_eq!(wide.finish().overflow, Some((5, 5e38)));
        assert_eq!(wide.finish().total, 5e38 + 2.0);
    }

    /// Value `i` of a block goes to lane `i % LANES`, and the lanes are
    /// added in order at the end: the total is that sum exactly, not the
    /// values' sum in order (they differ here).
    #[test]
    fn the_lanes_fix_the_order_of_the_additions() {
        let mut values = vec![0.0_f64; 2 * LANES];
        (values[0], values[1], values[LANES]) = (1e-16, 1.0, 1e-16);
        let mut sum = LaneSum::new();
        sum.add_block::<f64, f64>(0, &values);
        let in_lanes = (1e-16 + 1e-16) + 1.0;
        let in_order: f64 = values.iter().sum();
        assert_ne!(in_lanes, in_order);
        assert_eq!(sum.finish().total, in_lanes);
    }
}
