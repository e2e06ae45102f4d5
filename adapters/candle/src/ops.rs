//! The custom ops: one for losses on one differentiable tensor and a
//! target, one for losses on two differentiable tensors and a target.
//!
//! The forward runs the core's fused call once when candle will ask for a
//! gradient (an input is a variable or comes from a tracked op) and keeps
//! the gradient for the backward, which only scales it by the upstream
//! gradient; otherwise it runs the core's `forward`, without a gradient.
//! Caching beats computing the gradient in the backward: that would read
//! the inputs a second time (the bench's `recompute` column).

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use classloss::{Float, Reduction};
use classloss_adapter_kit::{ScoresLoss, TwoInputLoss};
use ndarray::{ArrayViewMut, Dimension, Ix2};

use crate::spare;
use crate::storage::{FromStorage, ReadsTarget, core_error, float_view};

/// The loss value as candle's rank-0 storage.
fn scalar<F: WithDType>(value: F) -> (CpuStorage, Shape) {
    (F::to_cpu_storage_owned(vec![value]), Shape::from(()))
}

/// A gradient tensor of `shape` (a spare one when there is one), and the
/// value `fused` returns after writing the gradient into it.
fn gradient<F, D, R>(
    shape: D,
    fused: impl FnOnce(ArrayViewMut<'_, F, D>) -> Result<R>,
) -> Result<(Tensor, R)>
where
    F: Float + WithDType,
    D: Dimension,
{
    let t = spare::take::<F>(shape.slice())?;
    let r = spare::write(&t, |data: &mut [F]| {
        fused(ArrayViewMut::from_shape(shape, data).map_err(candle_core::Error::wrap)?)
    })?;
    Ok((t, r))
}

/// `grad` times the upstream gradient (a rank-0 tensor); as it is when that
/// is 1, as for `loss.backward()`.
fn scaled<F: Float + WithDType>(grad: &Tensor, upstream: &Tensor) -> Result<Tensor> {
    let s = upstream.to_scalar::<F>()?;
    if s == F::one() {
        Ok(grad.clone())
    } else {
        grad.broadcast_mul(upstream)
    }
}

/// The gradient kept from the forward, or the error that says it is
/// missing (candle calls `bwd` only after `cpu_fwd`).
fn kept<T>(slot: &OnceLock<T>) -> Result<&T> {
    slot.get().ok_or_else(|| {
        candle_core::Error::Msg(
            "classloss: the backward ran without a gradient from the forward".into(),
        )
    })
}

/// [`ScoresLoss`] as a candle op: input, target.
pub(crate) struct ScoresOp<L, F, D> {
    pub(crate) loss: L,
    pub(crate) want_grad: bool,
    pub(crate) grad: OnceLock<Tensor>,
    pub(crate) _types: std::marker::PhantomData<fn() -> (F, D)>,
}

impl<L, F, D> CustomOp2 for ScoresOp<L, F, D>
where
    F: Float + WithDType,
    D: Dimension,
    L: ScoresLoss<F, D> + ReadsTarget<F>,
{
    fn name(&self) -> &'static str {
        "classloss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = float_view::<F, D>("input", s1, l1)?;
        let target: L::Target<'_> = FromStorage::from_storage("target", s2, l2)?;
        // Under `Reduction::None` the output is the unreduced values, as
        // PyTorch's `reduction='none'`; the fused gradient is then that of
        // their sum, each sample's own in its row.
        let unreduced = (self.loss.reduction() == Reduction::None)
            .then(|| self.loss.unreduced(x.clone(), target.clone()))
            .transpose()
            .map_err(core_error)?;
        let value = if !self.want_grad {
            match unreduced {
                Some(_) => F::zero(),
                None => self.loss.forward(x, target).map_err(core_error)?,
            }
        } else {
            let (grad, value) = gradient(x.raw_dim(), |g| {
                self.loss
                    .forward_backward_into(x, target, g)
                    .map_err(core_error)
            })?;
            let _ = self.grad.set(grad);
            value
        };
        Ok(match unreduced {
            Some(values) => {
                let shape = Shape::from(values.shape());
                // The core's per-sample array is new, in standard layout.
                (
                    F::to_cpu_storage_owned(values.into_raw_vec_and_offset().0),
                    shape,
                )
            }
            None => scalar(value),
        })
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        upstream: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !self.want_grad {
            // Only the target is tracked: targets get no gradient.
            return Ok((None, None));
        }
        let grad = kept(&self.grad)?;
        if upstream.rank() == 0 {
            return Ok((Some(scaled::<F>(grad, upstream)?), None));
        }
        // Unreduced values: one per sample (or position, or element); each
        // scales its own row. A per-sample upstream lacks the class axis.
        let upstream = if upstream.rank() < grad.rank() {
            upstream.unsqueeze(1)?
        } else {
            upstream.clone()
        };
        Ok((Some(grad.broadcast_mul(&upstream)?), None))
    }
}

/// [`TwoInputLoss`] as a candle op: `a`, `b`, target.
pub(crate) struct TwoInputOp<L, F> {
    pub(crate) loss: L,
    /// Whether candle tracks each input.
    pub(crate) track: [bool; 2],
    pub(crate) grads: OnceLock<(Tensor, Tensor)>,
    pub(crate) _types: std::marker::PhantomData<fn() -> F>,
}

impl<L, F> CustomOp3 for TwoInputOp<L, F>
where
    F: Float + WithDType,
    L: TwoInputLoss<F> + ReadsTarget<F>,
{
    fn name(&self) -> &'static str {
        "classloss"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let [na, nb] = L::NAMES;
        let a = float_view::<F, Ix2>(na, s1, l1)?;
        let b = float_view::<F, Ix2>(nb, s2, l2)?;
        let target: L::Target<'_> = FromStorage::from_storage("target", s3, l3)?;
        if self.track == [false, false] {
            let value = self.loss.forward(L::input(a, b), target);
            return Ok(scalar(value.map_err(core_error)?));
        }
        let (grad_a, (grad_b, value)) = gradient(a.raw_dim(), |ga| {
            gradient(b.raw_dim(), |gb| {
                (self.loss)
                    .forward_backward_into(a, b, target, ga, gb)
                    .map_err(core_error)
            })
        })?;
        let _ = self.grads.set((grad_a, grad_b));
        Ok(scalar(value))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        upstream: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [track_a, track_b] = self.track;
        if !(track_a || track_b) {
            // Only the target is tracked: targets get no gradient.
            return Ok((None, None, None));
        }
        let (ga, gb) = kept(&self.grads)?;
        // An untracked input gets none: candle would store it for nothing.
        let ga = track_a.then(|| scaled::<F>(ga, upstream)).transpose()?;
        let gb = track_b.then(|| scaled::<F>(gb, upstream)).transpose()?;
        Ok((ga, gb, None))
    }
}

/// An op that is dropped can no longer be asked for its gradient: the
/// tensor goes back to the spare ones ([`spare`]).
impl<L, F, D> Drop for ScoresOp<L, F, D> {
    fn drop(&mut self) {
        if let Some(grad) = self.grad.take() {
            spare::give(grad);
        }
    }
}

impl<L, F> Drop for TwoInputOp<L, F> {
    fn drop(&mut self) {
        if let Some((a, b)) = self.grads.take() {
            spare::give(a);
            spare::give(b);
        }
    }
}
