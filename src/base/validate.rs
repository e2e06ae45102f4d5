//! Shared checks of shapes, targets and options.
//!
//! Every loss validates through these helpers so that the same mistake
//! gives the same message whichever loss it is made with.

use ndarray::{
    Array, Array1, ArrayD, ArrayView, ArrayView2, ArrayViewMut2, Dimension, IntoDimension,
};

use crate::{Error, Float, Result};

/// Formats a shape as `[a, b, c]`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// `what` must have exactly `expected` as its shape.
pub(crate) fn expect_shape(what: &'static str, actual: &[usize], expected: &[usize]) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            expected: fmt_shape(expected),
            actual: fmt_shape(actual),
        })
    }
}

/// `what` must have at least `rank` dimensions.
pub(crate) fn expect_min_rank(what: &'static str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() >= rank {
        Ok(())
    } else {
        Err(Error::RankMismatch {
            what,
            expected: format!("at least {rank}"),
            actual: shape.len(),
            shape: fmt_shape(shape),
        })
    }
}

/// Axis `axis` of `what` must be non-empty; `unit` names what it counts.
pub(crate) fn expect_nonempty(
    what: &'static str,
    shape: &[usize],
    axis: usize,
    unit: &'static str,
) -> Result<()> {
    if shape.get(axis).copied().unwrap_or(0) > 0 {
        Ok(())
    } else {
        Err(Error::EmptyBatch {
            what,
            unit,
            shape: fmt_shape(shape),
        })
    }
}

/// A `(N, D)` matrix of `what` with at least one sample and one feature.
pub(crate) fn expect_samples_and_features(what: &'static str, shape: &[usize]) -> Result<()> {
    expect_nonempty(what, shape, 0, "sample")?;
    expect_nonempty(what, shape, 1, "feature")
}

/// Every value satisfies `ok`; otherwise an `InvalidTarget` naming the first
/// that does not.
pub(crate) fn check_values<F: Float, D: Dimension>(
    what: &'static str,
    values: &ArrayView<'_, F, D>,
    expected: &'static str,
    ok: impl Fn(F) -> bool,
) -> Result<()> {
    // Blocks without early exit inside, so that the common case (every
    // value fine) runs as vector compares; the indexed scan only on failure.
    let all_ok = match values.as_slice_memory_order() {
        Some(s) => s
            .chunks(256)
            .all(|c| c.iter().fold(true, |acc, &v| acc & ok(v))),
        None => values.iter().all(|&v| ok(v)),
    };
    if all_ok {
        return Ok(());
    }
    let Some((index, &value)) = values.indexed_iter().find(|(_, v)| !ok(**v)) else {
        return Ok(());
    };
    Err(Error::InvalidTarget {
        what,
        index: index.into_dimension().slice().to_vec(),
        value: value.as_f64(),
        expected,
    })
}

/// Every value is in `[0, 1]` ([`is_probability`]); otherwise an
/// `InvalidTarget` naming the first that is not. The contiguous case runs
/// on the vectorized kernels (a pass over every target of a binary loss,
/// a fifth of its cost in scalar code).
pub(crate) fn check_probabilities<F: Float, D: Dimension>(
    what: &'static str,
    values: &ArrayView<'_, F, D>,
    expected: &'static str,
) -> Result<()> {
    if let Some(s) = values.as_slice_memory_order()
        && F::all_unit(s)
    {
        return Ok(());
    }
    check_values(what, values, expected, is_probability)
}

/// Every input value satisfies `ok`; otherwise an `InvalidInput` naming the
/// first that does not (as [`check_values`], for inputs rather than targets).
pub(crate) fn check_input_values<F: Float, D: Dimension>(
    what: &'static str,
    values: &ArrayView<'_, F, D>,
    expected: &'static str,
    ok: impl Fn(F) -> bool,
) -> Result<()> {
    check_values(what, values, expected, ok).map_err(|e| match e {
        Error::InvalidTarget {
            what,
            index,
            value,
            expected,
        } => Error::InvalidInput {
            what,
            index,
            value,
            expected,
        },
        other => other,
    })
}

/// `v` is a finite probability in `[0, 1]`.
pub(crate) fn is_probability<F: Float>(v: F) -> bool {
    // `&`, not `&&`: no branch, so a scan over many values vectorizes.
    (v >= F::zero()) & (v <= F::one())
}

/// An option that must satisfy `ok`.
pub(crate) fn check_option(
    name: &'static str,
    value: f64,
    expected: &'static str,
    ok: bool,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            name,
            value: value.to_string(),
            expected,
        })
    }
}

/// A count option `>= 1` (rows per chunk, classes).
pub(crate) fn at_least_one_count(name: &'static str, value: usize) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            name,
            value: value.to_string(),
            expected: "an integer >= 1",
        })
    }
}

/// A finite option `>= 0`.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a finite number >= 0",
        value.is_finite() && value >= 0.0,
    )
}

/// A probability strictly between 0 and 1.
pub(crate) fn open_unit_interval(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a probability in (0, 1)",
        value > 0.0 && value < 1.0,
    )
}

/// A cosine: a number in `[-1, 1]`.
pub(crate) fn cosine(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a cosine in [-1, 1]",
        (-1.0..=1.0).contains(&value),
    )
}

/// A finite option `> 0`.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a finite number > 0",
        value.is_finite() && value > 0.0,
    )
}

/// An optional finite option `> 0` (`None` passes).
pub(crate) fn optional_positive(name: &'static str, value: Option<f64>) -> Result<()> {
    value.map_or(Ok(()), |v| positive(name, v))
}

/// An option in `[0, 1]`.
pub(crate) fn unit_interval(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a number in [0, 1]",
        (0.0..=1.0).contains(&value),
    )
}

/// An option in `(0, 1]`.
pub(crate) fn positive_at_most_one(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a number in (0, 1]",
        value > 0.0 && value <= 1.0,
    )
}

/// An optional option in `[0, 1]` (`None` passes).
pub(crate) fn optional_unit_interval(name: &'static str, value: Option<f64>) -> Result<()> {
    value.map_or(Ok(()), |v| unit_interval(name, v))
}

/// A finite option `< 0`.
pub(crate) fn negative(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a finite number < 0",
        value.is_finite() && value < 0.0,
    )
}

/// A finite option `>= -1`.
pub(crate) fn at_least_minus_one(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a finite number >= -1",
        value.is_finite() && value >= -1.0,
    )
}

/// A finite option `>= 1` (the degree of a norm).
pub(crate) fn at_least_one(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a finite number >= 1",
        value.is_finite() && value >= 1.0,
    )
}

/// An angle option in radians, in `[0, pi)`.
pub(crate) fn angle(name: &'static str, value: f64) -> Result<()> {
    check_option(
        name,
        value,
        "a number in [0, pi) (radians)",
        (0.0..std::f64::consts::PI).contains(&value),
    )
}

/// An integer option that is 1 or 2.
pub(crate) fn one_or_two(name: &'static str, value: u32) -> Result<()> {
    check_option(name, value as f64, "1 or 2", value == 1 || value == 2)
}

/// A weight array whose entries are all finite and `>= 0`.
pub(crate) fn check_weights<F: Float, D: Dimension>(
    name: &'static str,
    weights: &ArrayView<'_, F, D>,
) -> Result<()> {
    match weights
        .iter()
        .find(|w| !(w.is_finite() && **w >= F::zero()))
    {
        None => Ok(()),
        Some(w) => Err(Error::InvalidOption {
            name,
            value: format!("an array containing {w}"),
            expected: "finite weights >= 0",
        }),
    }
}

/// `(N, C)` scores with at least one sample and one class, per-class
/// option vectors (`(name, length)`) of length `C`, and a gradient buffer
/// (if any) of the scores' shape.
pub(crate) fn check_scores<F>(
    scores: &ArrayView2<'_, F>,
    class_vectors: &[(&'static str, usize)],
    grad: Option<&ArrayViewMut2<'_, F>>,
) -> Result<()> {
    let shape = scores.shape();
    expect_nonempty("logits", shape, 0, "sample")?;
    expect_nonempty("logits", shape, 1, "class")?;
    for &(name, len) in class_vectors {
        check_class_vector(name, len, shape[1])?;
    }
    if let Some(g) = grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    Ok(())
}

/// Class counts (the samples per class of a training set): at least one,
/// each finite and `> 0`.
pub(crate) fn class_counts(name: &'static str, counts: Array1<f64>) -> Result<Array1<f64>> {
    if counts.is_empty() {
        return Err(Error::InvalidOption {
            name,
            value: "[]".into(),
            expected: "one count per class",
        });
    }
    if let Some(&bad) = counts.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(Error::InvalidOption {
            name,
            value: bad.to_string(),
            expected: "counts that are finite and > 0",
        });
    }
    Ok(counts)
}

/// A ground cost between classes: a square matrix, finite and `>= 0`.
pub(crate) fn ground_cost(
    name: &'static str,
    cost: ndarray::Array2<f64>,
) -> Result<ndarray::Array2<f64>> {
    if cost.nrows() != cost.ncols() || cost.is_empty() {
        return Err(Error::InvalidOption {
            name,
            value: format!("a matrix of shape {:?}", cost.shape()),
            expected: "a square (C, C) matrix",
        });
    }
    if let Some(&bad) = cost.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::InvalidOption {
            name,
            value: bad.to_string(),
            expected: "costs that are finite and >= 0",
        });
    }
    Ok(cost)
}

/// A class tree from parent indices ([`crate::ClassTree::new`]'s checks).
pub(crate) fn class_tree(
    _name: &'static str,
    parents: Vec<Option<usize>>,
) -> Result<crate::ClassTree> {
    crate::ClassTree::new(parents)
}

/// Weights (finite, `>= 0`), stored as given.
pub(crate) fn weights<F: Float>(name: &'static str, weights: Array1<F>) -> Result<Array1<F>> {
    check_weights(name, &weights.view())?;
    Ok(weights)
}

/// Weights (finite, `>= 0`), stored contiguous so that the row kernels can
/// read them as a slice.
pub(crate) fn contiguous_weights<F: Float>(
    name: &'static str,
    weights: Array1<F>,
) -> Result<Array1<F>> {
    check_weights(name, &weights.view())?;
    Ok(weights.as_standard_layout().into_owned())
}

/// Element weights (finite, `>= 0`) of any rank, stored as `ArrayD`.
pub(crate) fn element_weights<F: Float, E: Dimension>(
    name: &'static str,
    weights: Array<F, E>,
) -> Result<ArrayD<F>> {
    check_weights(name, &weights.view())?;
    Ok(weights.into_dyn())
}

/// A per-class option array of length `num_classes`.
pub(crate) fn check_class_vector(name: &'static str, len: usize, num_classes: usize) -> Result<()> {
    if len == num_classes {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what: name,
            expected: fmt_shape(&[num_classes]),
            actual: fmt_shape(&[len]),
        })
    }
}

/// A magnitude known by its base-10 logarithm, written as `about 2.688e43`.
/// An infinite logarithm means the magnitude overflowed where it was
/// computed.
pub(crate) fn about_pow10(log10: f64) -> String {
    if !log10.is_finite() {
        return "a value beyond the range of f64".to_string();
    }
    let mut k = log10.floor();
    let mut m = 10f64.powf(log10 - k);
    // `{:.3}` would print 9.9996 as 10.000.
    if m >= 9.9995 {
        m /= 10.0;
        k += 1.0;
    }
    format!("about {m:.3}e{k}")
}

/// An [`Error::Overflow`] for `what[index]` in the float type `F`.
pub(crate) fn overflow<F: Float>(
    what: &'static str,
    index: Vec<usize>,
    quantity: &'static str,
    actual: String,
) -> Error {
    Error::Overflow {
        what,
        index,
        quantity,
        dtype: std::any::type_name::<F>(),
        max: format!("{:e}", F::max_value()),
        actual,
    }
}

/// A view of `array` broadcast (numpy rules: trailing axes aligned, size-1
/// axes stretched) to `shape`, or a `ShapeMismatch` naming `what`.
pub(crate) fn broadcast_to<'a, F, D: Dimension>(
    what: &'static str,
    array: &'a ArrayD<F>,
    shape: &D,
) -> Result<ArrayView<'a, F, D>> {
    array
        .broadcast(shape.clone())
        .ok_or_else(|| Error::ShapeMismatch {
            what,
            expected: format!("broadcastable to {}", fmt_shape(shape.slice())),
            actual: fmt_shape(array.shape()),
        })
}

#[cfg(test)]
mod tests {
    use super::about_pow10;

    /// Three decimals of the mantissa; a mantissa that would print as
    /// `10.000` carries into the exponent.
    #[test]
    fn about_pow10_carries_a_rounded_up_mantissa_into_the_exponent() {
        assert_eq!(about_pow10(43.0 + 2.688_f64.log10()), "about 2.688e43");
        assert_eq!(about_pow10(9.99996e43_f64.log10()), "about 1.000e44");
        assert_eq!(about_pow10(9.9994e43_f64.log10()), "about 9.999e43");
        assert_eq!(about_pow10(-3.0), "about 1.000e-3");
        assert_eq!(
            about_pow10(f64::INFINITY),
            "a value beyond the range of f64"
        );
    }
}
