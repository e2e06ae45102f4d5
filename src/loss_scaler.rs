//! Dynamic loss scaling, with PyTorch `GradScaler`'s semantics, for any
//! loss's fused gradient.
//!
//! A tool beside the losses, like the class weights of `weighting.rs`, not
//! a loss family: it never computes a loss, it scales and checks the
//! gradient buffers a loss (and the model's backward after it) fills.

use ndarray::{ArrayBase, ArrayViewMut, DataMut, Dimension, Ix1, IxDyn};

use crate::base::validate::{check_option, positive};
use crate::{
    EmbeddingsGrad, EmbeddingsGradMut, Float, PairGrad, PairGradMut, Result, TripletGrad,
    TripletGradMut,
};

/// Gradient buffers the [`LossScaler`] scales, checks and unscales: one
/// array, a loss's multi-buffer gradient ([`PairGrad`], [`TripletGrad`], [`EmbeddingsGrad`]
/// and their mutable views), or a collection of them (a slice, `Vec` or
/// array of buffers, or a tuple of up to four buffers of any ranks, such
/// as a model's `(dw1, db1, dw2, db2)`).
///
/// Implement it for a struct of a model's parameter gradients by calling
/// `f` on each buffer.
pub trait GradBuffers<F: Float> {
    /// Calls `f` once on every buffer.
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>));
}

impl<F: Float, S: DataMut<Elem = F>, D: Dimension> GradBuffers<F> for ArrayBase<S, D> {
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
        f(self.view_mut().into_dyn());
    }
}

/// The multi-buffer gradients of the losses, buffer by buffer.
macro_rules! field_buffers {
    ($($ty:ty => $($field:ident),+;)+) => {$(
        impl<F: Float> GradBuffers<F> for $ty {
            fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
                $(self.$field.for_each_buffer(f);)+
            }
        }
    )+};
}

field_buffers! {
    PairGrad<F> => x1, x2;
    PairGradMut<'_, F> => x1, x2;
    PairGrad<F, Ix1> => x1, x2;
    PairGradMut<'_, F, Ix1> => x1, x2;
    TripletGrad<F> => anchor, positive, negative;
    TripletGradMut<'_, F> => anchor, positive, negative;
    EmbeddingsGrad<F> => embeddings, weight;
    EmbeddingsGradMut<'_, F> => embeddings, weight;
}

impl<F: Float, T: GradBuffers<F>> GradBuffers<F> for [T] {
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
        for buffer in self {
            buffer.for_each_buffer(f);
        }
    }
}

impl<F: Float, T: GradBuffers<F>> GradBuffers<F> for Vec<T> {
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
        self.as_mut_slice().for_each_buffer(f);
    }
}

impl<F: Float, T: GradBuffers<F>, const N: usize> GradBuffers<F> for [T; N] {
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
        self.as_mut_slice().for_each_buffer(f);
    }
}

impl<F: Float, T: GradBuffers<F> + ?Sized> GradBuffers<F> for &mut T {
    fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
        (**self).for_each_buffer(f);
    }
}

/// Tuples of buffers of different ranks.
macro_rules! tuple_buffers {
    ($($t:ident . $i:tt),+) => {
        impl<F: Float, $($t: GradBuffers<F>),+> GradBuffers<F> for ($($t,)+) {
            fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, F, IxDyn>)) {
                $(self.$i.for_each_buffer(f);)+
            }
        }
    };
}

tuple_buffers!(A.0, B.1);
tuple_buffers!(A.0, B.1, C.2);
tuple_buffers!(A.0, B.1, C.2, D.3);

/// Whether [`LossScaler::unscale_and_update`] found the gradients finite.
#[must_use = "a skipped step must not update the parameters"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDecision {
    /// Every gradient was finite and is now unscaled: apply the step.
    Apply,
    /// A gradient overflowed (inf or NaN): skip this step; the scale has
    /// been backed off and the buffers are left as they were.
    Skip,
}

/// A dynamic loss scaler with the semantics of PyTorch's
/// `torch.amp.GradScaler`: multiply the loss's gradient by a scale before
/// the backward pass through the model, then check the parameter
/// gradients, skip the step and halve the scale on an overflow, and
/// double the scale after `growth_interval` steps without one.
///
/// # What it is for, in a CPU library
/// Loss scaling exists for half precision: in `f16` a gradient below
/// `6e-5` is subnormal and below `6e-8` it is zero, so the small gradients
/// of a deep network vanish on the way back. Here the element types are
/// `f32` and `f64`, where this matters far less: in `f32`, values below
/// `1.2e-38` are subnormal (fewer significant bits, and much slower on many
/// CPUs) and below `1.4e-45` zero, which a chain of small factors in a
/// long backward pass can reach; scaling by `2^16` keeps that chain in the
/// normal range, and unscaling (by a power of two: exact) gives the
/// parameter gradients their true value. In `f64` it is never needed. Use
/// it to run a training loop with PyTorch's AMP dynamics (the same scales,
/// the same skipped steps), for example with buffers a framework keeps in
/// half precision, and as the overflow guard it also is: a step whose
/// gradient is inf or NaN is skipped, not applied.
///
/// The scale is applied to the gradient the fused call wrote
/// (`forward_backward_into`), which is the gradient of the scaled loss:
/// every loss's gradient is linear in the loss. What rounding to the
/// element type already lost in that buffer stays lost; what the scale
/// protects is the model's backward after it.
///
/// # Use
/// ```text
/// loss.forward_backward_into(input, target, &mut grad)    the gradient of the loss
/// scaler.scale_grads(&mut grad)                           that of scale * loss
/// backward through the model into param_grads             (all scaled)
/// match scaler.unscale_and_update(&mut param_grads) {     checks, unscales, updates the scale
///     Apply => optimizer step, Skip => no step }
/// ```
///
/// # Dynamics (PyTorch's `_amp_update_scale_`)
/// ```text
/// any gradient non-finite (scaled, or once unscaled):
///                          scale <- scale * backoff_factor, good_steps <- 0, Skip
/// otherwise:               gradients <- gradients / scale, good_steps += 1, Apply;
///                          if good_steps = growth_interval: scale <- scale * growth_factor
///                          (unless that is beyond the element type), good_steps <- 0
/// ```
/// Defaults: `init_scale = 2^16`, `growth_factor = 2`, `backoff_factor =
/// 0.5`, `growth_interval = 2000`. The scale is kept in `f64` and converted
/// to the gradients' type when applied; unscaling multiplies by `1 /
/// scale` as PyTorch does (exact for powers of two). Unlike PyTorch, which
/// checks only the scaled values, a step whose unscaled gradient would be
/// inf or NaN is skipped too (below a scale of 1 a finite scaled entry
/// near the type's maximum unscales past it), so that `Apply` always
/// leaves finite gradients. A gradient that is
/// non-finite at every scale (a NaN from the model, not an overflow) makes
/// every step skip and the scale shrink: watch for a run of `Skip`.
///
/// # Examples
/// A step of a linear model `logits = x w` in `f32`, then a deliberate
/// overflow:
/// ```
/// use classloss::{CrossEntropy, Differentiable, LossScaler, StepDecision};
/// use ndarray::{array, Array2};
///
/// let x = array![[1.0_f32, 2.0], [0.5, -1.0]];
/// let w = array![[0.1_f32, -0.2], [0.3, 0.0]];
/// let labels = array![0_i64, 1];
/// let mut scaler = LossScaler::new();
///
/// let logits = x.dot(&w);
/// let mut grad = Array2::zeros(logits.raw_dim());
/// CrossEntropy::new().forward_backward_into(&logits, &labels, &mut grad)?;
/// let unscaled_dw = x.t().dot(&grad);
/// scaler.scale_grads(&mut grad); // now the gradient of 65536 * loss
/// let mut dw = x.t().dot(&grad);
/// assert_eq!(scaler.unscale_and_update(&mut dw), StepDecision::Apply);
/// assert_eq!(dw, unscaled_dw); // a power of two: unscaled exactly
///
/// // A gradient of 1e34 times 65536 is beyond f32: the step is skipped
/// // and the scale backs off.
/// let mut huge = array![1e34_f32, 1.0];
/// scaler.scale_grads(&mut huge);
/// assert!(huge[0].is_infinite());
/// assert_eq!(scaler.unscale_and_update(&mut huge), StepDecision::Skip);
/// assert_eq!(scaler.scale(), 32768.0);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// P. Micikevicius et al., "Mixed precision training", ICLR 2018,
/// <https://arxiv.org/abs/1710.03740>; PyTorch, `torch.amp.GradScaler`
/// (<https://pytorch.org/docs/stable/amp.html#gradient-scaling>).
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    scale: f64,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u32,
    good_steps: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}

impl LossScaler {
    /// PyTorch's defaults: scale `2^16`, growth factor 2, backoff factor
    /// 0.5, growth interval 2000.
    pub fn new() -> Self {
        LossScaler {
            scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            good_steps: 0,
        }
    }

    /// Sets the initial scale, finite and `> 0` (default `2^16`).
    pub fn with_init_scale(mut self, init_scale: f64) -> Result<Self> {
        positive("init_scale", init_scale)?;
        self.scale = init_scale;
        Ok(self)
    }

    /// Sets the factor the scale grows by, finite and `> 1` (default 2).
    pub fn with_growth_factor(mut self, growth_factor: f64) -> Result<Self> {
        check_option(
            "growth_factor",
            growth_factor,
            "a finite number > 1",
            growth_factor.is_finite() && growth_factor > 1.0,
        )?;
        self.growth_factor = growth_factor;
        Ok(self)
    }

    /// Sets the factor the scale backs off by, in `(0, 1)` (default 0.5).
    pub fn with_backoff_factor(mut self, backoff_factor: f64) -> Result<Self> {
        check_option(
            "backoff_factor",
            backoff_factor,
            "a number in (0, 1)",
            backoff_factor > 0.0 && backoff_factor < 1.0,
        )?;
        self.backoff_factor = backoff_factor;
        Ok(self)
    }

    /// Sets the number of consecutive finite steps after which the scale
    /// grows, at least 1 (default 2000).
    pub fn with_growth_interval(mut self, growth_interval: u32) -> Result<Self> {
        check_option(
            "growth_interval",
            growth_interval as f64,
            "at least 1 step",
            growth_interval >= 1,
        )?;
        self.growth_interval = growth_interval;
        Ok(self)
    }

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The factor the scale grows by.
    pub fn growth_factor(&self) -> f64 {
        self.growth_factor
    }

    /// The factor the scale backs off by.
    pub fn backoff_factor(&self) -> f64 {
        self.backoff_factor
    }

    /// The number of consecutive finite steps after which the scale grows.
    pub fn growth_interval(&self) -> u32 {
        self.growth_interval
    }

    /// The consecutive finite steps since the scale last changed
    /// (PyTorch's growth tracker).
    pub fn good_steps(&self) -> u32 {
        self.good_steps
    }

    /// Multiplies the loss's gradient buffers by the scale, in place,
    /// making them the gradient of `scale * loss`. Call it after the fused
    /// `forward_backward_into`, before the backward through the model. An
    /// entry beyond the element type becomes infinite, which
    /// [`LossScaler::unscale_and_update`] then finds.
    pub fn scale_grads<F: Float, G: GradBuffers<F> + ?Sized>(&self, grads: &mut G) {
        multiply(grads, F::lit(self.scale));
    }

    /// Checks the (scaled) gradients: if any entry is inf or NaN, or would
    /// be once unscaled (an entry near the type's maximum with a scale
    /// below 1, or any entry when `1 / scale` is beyond the type), backs
    /// the scale off and returns [`StepDecision::Skip`], leaving the
    /// buffers as they are; otherwise divides them by the scale in place,
    /// counts a good step (growing the scale after `growth_interval` of
    /// them) and returns [`StepDecision::Apply`].
    ///
    /// Pass every gradient the step will use (typically the model's
    /// parameter gradients), all at once: an overflow in one skips the
    /// step for all, as PyTorch's `found_inf` does.
    pub fn unscale_and_update<F: Float, G: GradBuffers<F> + ?Sized>(
        &mut self,
        grads: &mut G,
    ) -> StepDecision {
        // The check is on the unscaled values (not written yet): below a
        // scale of 1 a finite scaled entry near `F::MAX` unscales to inf,
        // and so does every entry when `1 / scale` is beyond `F`.
        let inv = F::lit(1.0 / self.scale);
        let mut finite = true;
        grads.for_each_buffer(&mut |b| finite &= b.iter().all(|&v| (v * inv).is_finite()));
        if !finite {
            self.scale *= self.backoff_factor;
            self.good_steps = 0;
            return StepDecision::Skip;
        }
        multiply(grads, inv);
        self.good_steps += 1;
        if self.good_steps >= self.growth_interval {
            let grown = self.scale * self.growth_factor;
            if F::lit(grown).is_finite() {
                self.scale = grown;
            }
            self.good_steps = 0;
        }
        StepDecision::Apply
    }
}

/// `g <- factor g` in every buffer.
fn multiply<F: Float, G: GradBuffers<F> + ?Sized>(grads: &mut G, factor: F) {
    grads.for_each_buffer(&mut |mut b| match b.as_slice_memory_order_mut() {
        Some(s) => F::scale(s, factor),
        None => b.mapv_inplace(|v| v * factor),
    });
}
