//! The custom ops: one for losses on one differentiable tensor and a
//! target, one for losses on two differentiable tensors and a target.
//!
//! The forward runs the core's fused call once when candle will ask for a
//! gradient (an input is a variable or comes from a tracked op) and keeps
//! the gradient for the backward, which only scales it by the upstream
//! gradient; otherwise it runs the core's `forward`, without a gradient.

use std::sync::OnceLock;

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor, WithDType,
};
use classloss::{Differentiable, Float, Loss};
use ndarray::{Array, Array2, ArrayView, ArrayView2, ArrayViewMut, Dimension};

use crate::storage::{FromStorage, core_error, float_view};

/// A loss on one differentiable tensor (scores, logits, probabilities) of
/// rank `D` and a target read from candle's storage, with a gradient
/// shaped like the input.
pub trait ScoresLoss<F: Float, D: Dimension>:
    for<'a> Differentiable<
        F,
        Input<'a> = ArrayView<'a, F, D>,
        Target<'a>: FromStorage<'a>,
        Grad = Array<F, D>,
        GradMut<'a> = ArrayViewMut<'a, F, D>,
    >
{
}

impl<F: Float, D: Dimension, T> ScoresLoss<F, D> for T where
    T: for<'a> Differentiable<
            F,
            Input<'a> = ArrayView<'a, F, D>,
            Target<'a>: FromStorage<'a>,
            Grad = Array<F, D>,
            GradMut<'a> = ArrayViewMut<'a, F, D>,
        >
{
}

/// A loss on two differentiable `(rows, D)` tensors (embeddings and class
/// weights, the two sides of pairs, features and centers) and a target,
/// with a gradient for each.
pub trait TwoInputLoss<F: Float>: for<'a> Loss<F, Target<'a>: FromStorage<'a>> {
    /// The names of the two inputs, as the core's errors name them.
    const NAMES: [&'static str; 2];
    /// The core's input from the two views.
    fn input<'a>(a: ArrayView2<'a, F>, b: ArrayView2<'a, F>) -> Self::Input<'a>;
    /// The value and the gradients with respect to `a` and `b`.
    fn fused<'a>(
        &self,
        a: ArrayView2<'a, F>,
        b: ArrayView2<'a, F>,
        target: Self::Target<'a>,
    ) -> classloss::Result<(F, Array2<F>, Array2<F>)>;
}

/// The loss value as candle's rank-0 storage.
fn scalar<F: WithDType>(value: F) -> (CpuStorage, Shape) {
    (F::to_cpu_storage_owned(vec![value]), Shape::from(()))
}

/// An owned array as a CPU tensor of the same shape, without a copy.
fn to_tensor<F: Float + WithDType, D: Dimension>(a: Array<F, D>) -> Result<Tensor> {
    let shape = a.shape().to_vec();
    // `zeros` arrays are in standard layout, so the raw vector is in order.
    let (data, _) = a.into_raw_vec_and_offset();
    Tensor::from_vec(data, shape, &Device::Cpu)
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
    L: ScoresLoss<F, D>,
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
        if !self.want_grad {
            return Ok(scalar(self.loss.forward(x, target).map_err(core_error)?));
        }
        let mut grad = Array::<F, D>::zeros(x.raw_dim());
        let value = self
            .loss
            .forward_backward_into(x, target, grad.view_mut())
            .map_err(core_error)?;
        let _ = self.grad.set(to_tensor(grad)?);
        Ok(scalar(value))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        upstream: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(scaled::<F>(kept(&self.grad)?, upstream)?), None))
    }
}

/// [`TwoInputLoss`] as a candle op: `a`, `b`, target.
pub(crate) struct TwoInputOp<L, F> {
    pub(crate) loss: L,
    pub(crate) want_grad: bool,
    pub(crate) grads: OnceLock<(Tensor, Tensor)>,
    pub(crate) _types: std::marker::PhantomData<fn() -> F>,
}

impl<L, F> CustomOp3 for TwoInputOp<L, F>
where
    F: Float + WithDType,
    L: TwoInputLoss<F>,
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
        let a = float_view::<F, ndarray::Ix2>(na, s1, l1)?;
        let b = float_view::<F, ndarray::Ix2>(nb, s2, l2)?;
        let target: L::Target<'_> = FromStorage::from_storage("target", s3, l3)?;
        if !self.want_grad {
            let value = self.loss.forward(L::input(a, b), target);
            return Ok(scalar(value.map_err(core_error)?));
        }
        let (value, ga, gb) = self.loss.fused(a, b, target).map_err(core_error)?;
        let _ = self.grads.set((to_tensor(ga)?, to_tensor(gb)?));
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
        let (ga, gb) = kept(&self.grads)?;
        Ok((
            Some(scaled::<F>(ga, upstream)?),
            Some(scaled::<F>(gb, upstream)?),
            None,
        ))
    }
}
