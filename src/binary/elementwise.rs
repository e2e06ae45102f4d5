//! The one element loop every binary (sigmoid-family) loss runs through.
//!
//! A binary loss is a sum of independent per-element terms, so a loss only
//! supplies `f(x, t, w, pw) -> (loss, d loss / d x)` for one element; this
//! file owns the shared validation, the broadcasting of weights, the
//! iteration over any rank and layout, the optional gradient and per-element
//! outputs, and the `f64` accumulation.

use ndarray::{arr0, ArrayView, ArrayViewMut, Dimension, Zip};

use crate::validate::{check_values, expect_min_rank, expect_shape, fmt_shape, is_probability};
use crate::{Error, Float, Result};

/// Checks the shapes every binary loss requires: an input of rank `>= 1`
/// with at least one element, targets of the same shape, and a gradient
/// buffer (if any) of the same shape. `what` names the input.
pub(crate) fn check_shapes<F: Float, D: Dimension>(
    what: &'static str,
    input: &ArrayView<'_, F, D>,
    targets: &ArrayView<'_, F, D>,
    grad: Option<&ArrayViewMut<'_, F, D>>,
) -> Result<()> {
    let shape = input.shape();
    expect_min_rank(what, shape, 1)?;
    if input.is_empty() {
        return Err(Error::EmptyBatch {
            what,
            unit: "element",
            shape: fmt_shape(shape),
        });
    }
    expect_shape("targets", targets.shape(), shape)?;
    if let Some(g) = grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    Ok(())
}

/// Every target is a (soft) label in `[0, 1]`.
pub(crate) fn check_targets<F: Float, D: Dimension>(targets: &ArrayView<'_, F, D>) -> Result<()> {
    check_values("targets", targets, "a value in [0, 1]", is_probability)
}

/// Runs `f(x, t, w, pw)` on every element, where `w` and `pw` come from
/// views already broadcast to the input's shape (`None` reads as 1), and
/// returns the sum of the losses (accumulated in `f64`).
///
/// With `grad = Some((buffer, scale))` the buffer is overwritten with
/// `scale * d loss / d x`; with `per` the per-element losses are stored.
pub(crate) fn elementwise<F: Float, D: Dimension>(
    input: ArrayView<'_, F, D>,
    targets: ArrayView<'_, F, D>,
    weight: Option<ArrayView<'_, F, D>>,
    pos_weight: Option<ArrayView<'_, F, D>>,
    grad: Option<(ArrayViewMut<'_, F, D>, F)>,
    per: Option<ArrayViewMut<'_, F, D>>,
    f: impl Fn(F, F, F, F) -> (F, F),
) -> f64 {
    // A missing weight is a 0-d one broadcast with zero strides, so one loop
    // serves every combination of options.
    let one = arr0(F::one());
    let dim = input.raw_dim();
    let ones = || {
        one.broadcast(dim.clone())
            .expect("a 0-d array broadcasts to any shape")
    };
    let weight = weight.unwrap_or_else(ones);
    let pos_weight = pos_weight.unwrap_or_else(ones);
    let zip = Zip::from(&input)
        .and(&targets)
        .and(&weight)
        .and(&pos_weight);
    let mut total = 0.0_f64;
    match (grad, per) {
        (None, None) => zip.for_each(|&x, &t, &w, &pw| {
            total += f(x, t, w, pw).0.as_f64();
        }),
        (None, Some(mut per)) => zip.and(&mut per).for_each(|&x, &t, &w, &pw, o| {
            let (l, _) = f(x, t, w, pw);
            *o = l;
            total += l.as_f64();
        }),
        (Some((mut g, scale)), None) => zip.and(&mut g).for_each(|&x, &t, &w, &pw, g| {
            let (l, d) = f(x, t, w, pw);
            *g = scale * d;
            total += l.as_f64();
        }),
        (Some((mut g, scale)), Some(mut per)) => {
            zip.and(&mut g)
                .and(&mut per)
                .for_each(|&x, &t, &w, &pw, g, o| {
                    let (l, d) = f(x, t, w, pw);
                    *g = scale * d;
                    *o = l;
                    total += l.as_f64();
                })
        }
    }
    total
}
