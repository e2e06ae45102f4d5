//! The one element loop every binary (sigmoid-family) loss runs through.
//!
//! A binary loss is a sum of independent per-element terms, so a loss only
//! supplies `f(x, t, w, pw) -> (loss, d loss / d x)` for one element; this
//! file owns the shared validation, the broadcasting of weights, the
//! iteration over any rank and layout, the optional gradient and per-element
//! outputs, and the `f64` accumulation.

use ndarray::{ArrayD, ArrayView, ArrayViewMut, Dimension, Zip, arr0};

use crate::base::loss::{Call, Elementwise};
use crate::base::reduction::{LaneSum, Sum, Totals};
use crate::base::validate::{
    broadcast_to, check_probabilities, expect_min_rank, expect_shape, fmt_shape,
};
use crate::engine::parallel::map_blocks;
use crate::numerics::simd::dispatch;
use crate::numerics::{LogisticTerms, logistic_from_parts};
use crate::{Error, Float, Reduction, Result};

/// Checks the shapes every binary loss requires: an input of rank `>= 1`
/// with at least one element, targets of the same shape, and a gradient
/// buffer (if any) of the same shape. `[what, targets_name]` name the
/// input and the targets.
fn check_shapes<F: Float, D: Dimension>(
    [what, targets_name]: [&'static str; 2],
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
    expect_shape(targets_name, targets.shape(), shape)?;
    if let Some(g) = grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    Ok(())
}

/// A binary loss's call after the checks of [`run_binary`], for its loop.
pub(crate) struct Elements<'a, F, D> {
    /// The input (probabilities or logits).
    pub input: ArrayView<'a, F, D>,
    /// The targets, shaped like the input (not yet checked for range).
    pub targets: ArrayView<'a, F, D>,
    /// The element weights broadcast to the input, if any.
    pub weight: Option<ArrayView<'a, F, D>>,
    /// The gradient buffer with the reduction's factor, for the fused call.
    pub grad: Option<(ArrayViewMut<'a, F, D>, F)>,
    /// The per-element buffer, for `per_sample`.
    pub per: Option<ArrayViewMut<'a, F, D>>,
}

/// The shell of every binary loss: checks the shapes ([`check_shapes`];
/// `names` are the input's and the targets'), broadcasts the element
/// `weight` to the input,
/// then runs `body`, which makes the loss's own checks and runs the element
/// loop; `Mean` divides by the number of elements.
pub(crate) fn run_binary<F: Float, D: Dimension>(
    names: [&'static str; 2],
    reduction: Reduction,
    call: Call<'_, '_, '_, F, Elementwise<D>>,
    weight: Option<&ArrayD<F>>,
    body: impl FnOnce(Elements<'_, F, D>) -> Result<Sum>,
) -> Result<Totals> {
    let Call {
        input,
        target: targets,
        grad,
        per,
    } = call;
    check_shapes(names, &input, &targets, grad.as_ref())?;
    let [what, _] = names;
    let weight = weight
        .map(|w| broadcast_to("weight", w, &input.raw_dim()))
        .transpose()?;
    let divisor = input.len() as f64;
    let scale: F = reduction.grad_scale(divisor);
    let sum = body(Elements {
        input,
        targets,
        weight,
        grad: grad.map(|g| (g, scale)),
        per,
    })?;
    Ok(Totals { sum, divisor, what })
}

/// Every target is a (soft) label in `[0, 1]`.
pub(crate) fn check_targets<F: Float, D: Dimension>(targets: &ArrayView<'_, F, D>) -> Result<()> {
    check_probabilities("targets", targets, "a value in [0, 1]")
}

/// Runs `f(x, t, w, pw)` on every element, where `w` and `pw` come from
/// views already broadcast to the input's shape (`None` reads as 1), and
/// returns the sum of the losses (accumulated in `f64`; an element whose
/// loss overflowed is found by a second, logical-order pass).
///
/// `f` returns the element's loss and derivative in `f64` (with weights
/// near `F`'s maximum they may not fit `F`, and a weight of 0 times an
/// infinity would be NaN); the derivative is scaled in `f64` too.
///
/// With `grad = Some((buffer, scale))` the buffer is overwritten with
/// `scale * d loss / d x`; with `per` (and no gradient) the per-element
/// losses are stored.
pub(crate) fn elementwise<F: Float, D: Dimension>(
    input: ArrayView<'_, F, D>,
    targets: ArrayView<'_, F, D>,
    weight: Option<ArrayView<'_, F, D>>,
    pos_weight: Option<ArrayView<'_, F, D>>,
    grad: Option<(ArrayViewMut<'_, F, D>, F)>,
    per: Option<ArrayViewMut<'_, F, D>>,
    f: impl Fn(F, F, F, F) -> (f64, f64),
) -> Sum {
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
    let max = F::max_value().as_f64();
    let scale = grad.as_ref().map_or(0.0, |(_, s)| s.as_f64());
    // Whether a gradient entry is beyond F (an f64 weight near F's maximum
    // times a derivative above 1); which one is found below, in order.
    let mut grad_beyond = false;
    let mut write_grad = |g: &mut F, d: f64| {
        let v = scale * d;
        grad_beyond |= v.abs() > max;
        *g = F::lit(v);
    };
    match (grad, per) {
        (None, None) => zip.for_each(|&x, &t, &w, &pw| {
            total += f(x, t, w, pw).0;
        }),
        (None, Some(mut per)) => zip.and(&mut per).for_each(|&x, &t, &w, &pw, o| {
            let (l, _) = f(x, t, w, pw);
            *o = F::lit(l);
            total += l;
        }),
        (Some((mut g, _)), per) => {
            // No call asks for both: `per_sample` wants no gradient, and
            // the gradient calls want no per-sample values.
            debug_assert!(per.is_none(), "a gradient and per-sample values");
            zip.and(&mut g).for_each(|&x, &t, &w, &pw, g| {
                let (l, d) = f(x, t, w, pw);
                write_grad(g, d);
                total += l;
            })
        }
    }
    let mut sum = Sum {
        total,
        ..Sum::default()
    };
    if total > max || total.is_nan() || grad_beyond {
        // Cold: the first element (in logical order) whose loss is beyond F
        // (only a total beyond F can hide one: losses are never negative),
        // and the first whose gradient is.
        let flat = input
            .iter()
            .zip(&targets)
            .zip(weight.iter().zip(&pos_weight));
        for (i, ((&x, &t), (&w, &pw))) in flat.enumerate() {
            let (l, d) = f(x, t, w, pw);
            if l.abs() > max && sum.overflow.is_none() {
                sum.overflow = Some((i, l));
            }
            if grad_beyond && (scale * d).abs() > max {
                sum.grad_beyond(i, scale * d);
            }
        }
    }
    sum
}

/// `exp(-|x|)`, `ln(1 + exp(-|x|))` and the [`LogisticTerms`] of one logit.
#[derive(Clone, Copy)]
pub(crate) struct Logistic<F> {
    /// `exp(-|x|)`.
    pub e: F,
    /// `ln(1 + e)`, the softplus of `-|x|`.
    pub log1p_e: F,
    /// `sigmoid(±x)` and `softplus(±x)`.
    pub terms: LogisticTerms<F>,
}

impl<F: Float> Logistic<F> {
    /// The parts of `x` from `e = exp(-|x|)` and `ln(1 + e)`.
    #[inline(always)]
    pub fn of_parts(x: F, e: F, log1p_e: F) -> Self {
        Logistic {
            e,
            log1p_e,
            terms: logistic_from_parts(x, e, log1p_e),
        }
    }

    /// The binary cross-entropy of the logit `x` with the negative class
    /// weighted `a` and the positive class `b` (`a = 1 - t`, `b = t` for a
    /// target `t`; `b = pw t` with a positive weight): the loss
    /// `a softplus(x) + b softplus(-x)` and its derivative
    /// `a sigmoid(x) - b sigmoid(-x)`.
    ///
    /// Written from the parts, with `(p, q) = (a, b)` for `x >= 0` and
    /// `(b, a)` below: the loss is `(a + b) ln(1 + e) + p |x|` and the
    /// derivative `±(p - q e) / (1 + e)`. Every term of the loss is
    /// non-negative (no cancellation, whatever the target), and the form
    /// needs no `sigmoid(±x)` of its own. `(1 - t) + t` rounds to exactly 1
    /// for every `t` in `[0, 1]`, so a plain target's factor is exact.
    #[inline(always)]
    pub fn cross_entropy(&self, x: F, a: F, b: F) -> (F, F) {
        self.cross_entropy_with_mass(x, a, b, a + b)
    }

    /// [`Logistic::cross_entropy`] of a target `t` in `[0, 1]` (`a = 1 - t`,
    /// `b = t`), whose `a + b` is exactly 1: the same bits, two operations
    /// fewer.
    #[inline(always)]
    pub fn cross_entropy_of_target(&self, x: F, t: F) -> (F, F) {
        self.cross_entropy_with_mass(x, F::one() - t, t, F::one())
    }

    /// [`Logistic::cross_entropy`] given `mass = a + b`.
    #[inline(always)]
    fn cross_entropy_with_mass(&self, x: F, a: F, b: F, mass: F) -> (F, F) {
        let positive = x >= F::zero();
        // Selects, not a branch on the sign (see `logistic_from_parts`).
        let (p, q) = if positive { (a, b) } else { (b, a) };
        let loss = mass * self.log1p_e + p * x.abs();
        let r = (p - q * self.e) / (F::one() + self.e);
        (loss, if positive { r } else { -r })
    }
}

/// Elements per block of the vectorized path: its buffers stay on the stack.
const BLOCK: usize = 256;

/// A binary loss of logits, as one element's loss and derivative written
/// once for any float type `T`, with the element weight `w` and positive
/// weight `pw` (1 when absent) and the [`Logistic`] parts of `x`.
///
/// `Copy`, so that the vectorized loop holds its own copy of the options:
/// read through a reference, they would be reloaded (and the loop not
/// vectorized) at every element, the compiler unable to rule out that the
/// loop's stores change them.
pub(crate) trait LogitTerm: Copy + Sync {
    /// Whether the targets are (soft) labels in `[0, 1]`, which
    /// [`elementwise_logits`] then checks: on the vectorized path in the
    /// loop of the terms, which reads the targets anyway (two comparisons
    /// a vector), where a pass of its own before it took 7% of BCE with
    /// logits' time.
    const TARGETS_IN_UNIT: bool;

    /// `(loss, d loss / d x)` of one element.
    fn term<T: Float>(&self, x: T, t: T, w: T, pw: T, logistic: Logistic<T>) -> (T, T);
}

/// [`elementwise`] for losses of logits, given as a [`LogitTerm`], after
/// the check of [`LogitTerm::TARGETS_IN_UNIT`] (an `InvalidTarget` naming
/// the first target outside `[0, 1]`; the gradient buffer's contents are
/// then unspecified).
///
/// Without element or positive weights, and with every array contiguous,
/// the term is evaluated in `F`, with the exponentials and logarithms
/// computed a block at a time by the vectorized kernels (the common case:
/// `(N, K)` logits and targets; without weights every term is bounded by
/// about `|x|`, so `F` holds it). Otherwise it is evaluated element by
/// element in `f64`, from `f64` logistic parts: weights near `F`'s maximum
/// (`pw t softplus(-x)`, `w` of 0 next to a huge logit) fit there.
pub(crate) fn elementwise_logits<F: Float, D: Dimension, T: LogitTerm>(
    input: ArrayView<'_, F, D>,
    targets: ArrayView<'_, F, D>,
    weight: Option<ArrayView<'_, F, D>>,
    pos_weight: Option<ArrayView<'_, F, D>>,
    mut grad: Option<(ArrayViewMut<'_, F, D>, F)>,
    mut per: Option<ArrayViewMut<'_, F, D>>,
    term: &T,
) -> Result<Sum> {
    let plain = weight.is_none() && pos_weight.is_none();
    let slices = (input.to_slice(), targets.to_slice());
    let grad_ok = grad.as_ref().is_none_or(|(g, _)| g.is_standard_layout());
    let per_ok = per.as_ref().is_none_or(|p| p.is_standard_layout());
    if let (true, true, true, (Some(x), Some(t))) = (plain, grad_ok, per_ok, slices) {
        let g = grad
            .as_mut()
            .and_then(|(g, s)| g.as_slice_mut().map(|g| (g, *s)));
        let p = per.as_mut().and_then(|p| p.as_slice_mut());
        // The weights' 1 written in the closure, not captured: the loop runs
        // in a function of its own (per instruction set), where a captured
        // value is not a constant and its products would not fold away.
        let term = *term;
        let f = move |x: F, t: F, l: Logistic<F>| term.term(x, t, F::one(), F::one(), l);
        if let Some(sum) = logits_in_parallel(x, t, g, p, T::TARGETS_IN_UNIT, &f) {
            return Ok(sum);
        }
        // A block's targets failed the vectorized check: the general path's
        // check below names the first, in logical order.
    }
    if T::TARGETS_IN_UNIT {
        check_targets(&targets)?;
    }
    Ok(elementwise(
        input,
        targets,
        weight,
        pos_weight,
        grad,
        per,
        |x, t, w, pw| {
            let x = x.as_f64();
            let e = (-x.abs()).exp();
            let logistic = Logistic::of_parts(x, e, e.ln_1p());
            term.term(x, t.as_f64(), w.as_f64(), pw.as_f64(), logistic)
        },
    ))
}

/// Elements per unit of parallel work (a whole number of blocks).
const PARALLEL_CHUNK: usize = 64 * BLOCK;

/// The contiguous path, cut into fixed chunks that run in parallel with the
/// `rayon` feature; the chunks' sums are added in order, so the result does
/// not depend on the thread count. `None` if `check_unit` and a target is
/// outside `[0, 1]`.
fn logits_in_parallel<F: Float, L: Fn(F, F, Logistic<F>) -> (F, F) + Sync>(
    x: &[F],
    t: &[F],
    grad: Option<(&mut [F], F)>,
    per: Option<&mut [F]>,
    check_unit: bool,
    f: &L,
) -> Option<Sum> {
    type Chunk<'a, F> = (
        &'a [F],
        &'a [F],
        Option<(&'a mut [F], F)>,
        Option<&'a mut [F]>,
    );
    let mut grads = grad.map(|(g, s)| g.chunks_mut(PARALLEL_CHUNK).map(move |c| (c, s)));
    let mut pers = per.map(|p| p.chunks_mut(PARALLEL_CHUNK));
    let chunks: Vec<Chunk<'_, F>> = x
        .chunks(PARALLEL_CHUNK)
        .zip(t.chunks(PARALLEL_CHUNK))
        .map(|(xc, tc)| {
            let g = grads.as_mut().and_then(|it| it.next());
            let p = pers.as_mut().and_then(|it| it.next());
            (xc, tc, g, p)
        })
        .collect();
    let sums = map_blocks(chunks, x.len(), |(xc, tc, g, p)| {
        logits_at_level(xc, tc, g, p, check_unit, f)
    });
    // Each chunk counted its elements from 0.
    let shifted = sums.into_iter().enumerate().map(|(c, s)| {
        s.map(|s| Sum {
            overflow: s.overflow.map(|(i, v)| (c * PARALLEL_CHUNK + i, v)),
            ..s
        })
    });
    shifted.collect::<Option<Vec<_>>>().map(Sum::of_blocks)
}

/// [`logits_in_blocks`] compiled for the CPU's [`SimdLevel`]: the loss's
/// own per-element formula (inlined into it) then also runs on wide
/// vectors, with blends where the formula selects on a sign.
///
/// [`SimdLevel`]: crate::numerics::SimdLevel
fn logits_at_level<F: Float, L: Fn(F, F, Logistic<F>) -> (F, F)>(
    x: &[F],
    t: &[F],
    grad: Option<(&mut [F], F)>,
    per: Option<&mut [F]>,
    check_unit: bool,
    f: &L,
) -> Option<Sum> {
    dispatch!(levels::blocks(x, t, grad, per, check_unit, f))
}

/// [`logits_in_blocks`] at one level, for [`dispatch!`].
macro_rules! blocks_at_level {
    ($($feature:literal)?) => {
        $(#[target_feature(enable = $feature)])?
        pub(crate) fn blocks<F: crate::Float, L>(
            x: &[F],
            t: &[F],
            grad: Option<(&mut [F], F)>,
            per: Option<&mut [F]>,
            check_unit: bool,
            f: &L,
        ) -> Option<crate::base::reduction::Sum>
        where
            L: Fn(F, F, super::super::Logistic<F>) -> (F, F),
        {
            super::super::logits_in_blocks(x, t, grad, per, check_unit, f)
        }
    };
}

/// The element loop compiled once per [`SimdLevel`](crate::numerics::SimdLevel).
mod levels {
    pub(crate) mod portable {
        blocks_at_level!();
    }
    #[cfg(target_arch = "x86_64")]
    pub(crate) mod avx2 {
        blocks_at_level!("avx2,fma");
    }
    #[cfg(target_arch = "x86_64")]
    pub(crate) mod avx512 {
        blocks_at_level!("avx512f");
    }
}

/// The vectorized path of [`elementwise_logits`] on contiguous slices.
///
/// Each block runs as straight loops: the logistic parts into stack
/// buffers ([`RowKernels::logistic_parts`]), then `f`, writing the scaled
/// derivatives straight into the gradient and the losses into a stack
/// buffer, then the per-element outputs; its losses are added to `f64`
/// lanes that last the whole slice ([`LaneSum`]). With `check_unit`, the
/// terms' loop also checks that every target is in `[0, 1]` (`None` after
/// a block with one that is not; its terms are then garbage, not a
/// panic). The parts are a pass of their own (two, inside the kernel)
/// because each is a long chain of dependent operations: fused into one
/// loop with `f`, the chains outgrow the out-of-order window and the loop
/// ran slower, with fewer instructions.
///
/// [`RowKernels::logistic_parts`]: crate::base::float::RowKernels::logistic_parts
#[inline(always)]
fn logits_in_blocks<F: Float>(
    x: &[F],
    t: &[F],
    mut grad: Option<(&mut [F], F)>,
    mut per: Option<&mut [F]>,
    check_unit: bool,
    f: &impl Fn(F, F, Logistic<F>) -> (F, F),
) -> Option<Sum> {
    let mut e_buf = [F::zero(); BLOCK];
    let mut l_buf = [F::zero(); BLOCK];
    let mut loss_buf = [F::zero(); BLOCK];
    let mut sum = LaneSum::new();
    for (b, (xb, tb)) in x.chunks(BLOCK).zip(t.chunks(BLOCK)).enumerate() {
        let n = xb.len();
        let (e, l) = (&mut e_buf[..n], &mut l_buf[..n]);
        let losses = &mut loss_buf[..n];
        F::logistic_parts(xb, e, l);
        let parts = e.iter().zip(l.iter()).zip(xb.iter().zip(tb));
        let start = b * BLOCK;
        let in_unit = |t: F| (t >= F::zero()) & (t <= F::one());
        let mut all_in = true;
        match grad.as_mut() {
            Some((g, s)) => {
                // Copied out of the reference: read through it, the factor
                // would be reloaded after every store to the gradient.
                let s = *s;
                let g = &mut g[start..start + n];
                for ((loss, g), ((&e, &l), (&x, &t))) in losses.iter_mut().zip(g).zip(parts) {
                    let (value, d) = f(x, t, Logistic::of_parts(x, e, l));
                    *loss = value;
                    *g = s * d;
                    all_in &= in_unit(t);
                }
            }
            None => {
                for (loss, ((&e, &l), (&x, &t))) in losses.iter_mut().zip(parts) {
                    *loss = f(x, t, Logistic::of_parts(x, e, l)).0;
                    all_in &= in_unit(t);
                }
            }
        }
        if check_unit && !all_in {
            return None;
        }
        if let Some(p) = per.as_mut() {
            p[start..start + n].copy_from_slice(losses);
        }
        sum.add_block::<F, F>(start, losses);
    }
    Some(sum.finish())
}

#[cfg(test)]
mod tests {
    use super::{BLOCK, Logistic, PARALLEL_CHUNK, logits_in_parallel};

    /// The vectorized path names the first element whose loss is beyond `F`
    /// by its position in the whole slice (chunks of `PARALLEL_CHUNK`,
    /// blocks of `BLOCK`). The sigmoid family's losses never exceed `F`
    /// alone on this path (at most `|x| + ln 2`), so a loss formula that
    /// does (an infinity) stands in.
    #[test]
    fn the_block_path_names_an_overflowing_element_by_its_position() {
        let n = PARALLEL_CHUNK + 3 * BLOCK + 10;
        let x = vec![0.0_f32; n];
        let mut t = vec![0.0_f32; n];
        let at = PARALLEL_CHUNK + 2 * BLOCK + 7;
        t[at] = 1.0;
        t[n - 1] = 1.0;
        let f = |_: f32, t: f32, _: Logistic<f32>| (if t == 1.0 { f32::INFINITY } else { 1.0 }, t);
        let sum = logits_in_parallel(&x, &t, None, None, false, &f).expect("no check");
        assert_eq!(sum.overflow, Some((at, f64::INFINITY)));
        assert_eq!(sum.total, f64::INFINITY);
        // The gradient (scaled) and the per-element values land at their
        // own positions.
        let (mut g, mut per) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        let with_buffers =
            logits_in_parallel(&x, &t, Some((&mut g, 0.5)), Some(&mut per), false, &f)
                .expect("no check");
        assert_eq!(with_buffers.overflow, sum.overflow);
        for i in 0..n {
            let (dg, dp) = if t[i] == 1.0 {
                (0.5, f32::INFINITY)
            } else {
                (0.0, 1.0)
            };
            assert_eq!((g[i], per[i]), (dg, dp), "element {i}");
        }
    }
}
