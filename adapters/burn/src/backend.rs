//! The op on burn's CPU backends, through burn's backend-extension
//! mechanism: one op for losses on one tensor, one for losses on two.
//!
//! On Flex and NdArray the op reads the tensors' own buffers as ndarray
//! views (any non-negative strides; Flex's negative strides are made
//! contiguous first) and moves the host arrays it computes into tensors
//! without a copy. Under `Autodiff` the forward runs the core's fused
//! value-and-gradient call once and keeps the gradients as the op's state;
//! the backward scales them by the upstream gradient (not at all when that
//! is 1, as for `loss.backward()`) and registers them for the inputs burn
//! tracks. burn stores a gradient registered first as it is, so nothing
//! is added or copied on the way to the parameters.

#![allow(deprecated)] // burn 0.22 deprecates its NdArray backend, which this op still serves.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::{
    Backend, TensorMetadata, backend_extension, tensor::FloatTensor, try_read_sync,
};
use burn::tensor::{DType, Shape, TensorData};

use crate::job::{Job, Outputs, Owned, View};

/// classloss's losses as burn backend ops.
#[backend_extension(Flex: cfg(feature = "flex"), NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait ClassLossBackend: Backend {
    /// The loss `job` on one tensor: its value, shape `[1]`.
    fn classloss_one(x: FloatTensor<Self>, job: &dyn Job<1>) -> FloatTensor<Self>;
    /// The loss `job` on two tensors: its value, shape `[1]`.
    fn classloss_two(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        job: &dyn Job<2>,
    ) -> FloatTensor<Self>;
}

/// A CPU backend whose float tensors the op reads and writes in place.
pub trait HostTensors: Backend {
    /// `f` on the tensor's data, viewed without a copy where the layout
    /// allows.
    fn with_view<R>(x: &FloatTensor<Self>, f: impl FnOnce(View<'_>) -> R) -> R;
    /// The host array as a tensor, without a copy.
    fn tensor(a: Owned) -> FloatTensor<Self>;
}

/// The value of `job` on plain (untracked) tensors; on a failure, which
/// the job keeps, a `[1]` zero that the public call never returns.
fn value_only<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
) -> FloatTensor<B> {
    run::<B, N>(xs, job, false).0
}

/// The value and, if `grad`, the gradients, as tensors.
fn run<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
    grad: bool,
) -> (FloatTensor<B>, Option<[FloatTensor<B>; N]>) {
    match on_views::<B, N>(xs, job, grad) {
        Some((value, grads)) => (B::tensor(value), grads.map(|g| g.map(B::tensor))),
        None => (B::tensor(Owned::F32(ndarray::ArrayD::zeros(vec![1]))), None),
    }
}

/// `job` on the views of one or two tensors.
fn on_views<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
    grad: bool,
) -> Option<Outputs<N>> {
    fn call<const N: usize>(
        job: &dyn Job<N>,
        views: Vec<View<'_>>,
        grad: bool,
    ) -> Option<Outputs<N>> {
        job.run(views.try_into().ok()?, grad)
    }
    match xs.as_slice() {
        [x] => B::with_view(x, |v| call(job, vec![v], grad)),
        [a, b] => B::with_view(a, |va| {
            B::with_view(b, |vb| call(job, vec![va.reborrow(), vb.reborrow()], grad))
        }),
        _ => None,
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use ndarray::{ArrayViewD, IxDyn, ShapeBuilder};

    use super::*;

    /// `buf` as the layout says: strides in elements, never negative here.
    fn strided<'a, T>(t: &FlexTensor, buf: &'a [T]) -> Option<ArrayViewD<'a, T>> {
        let layout = t.layout();
        let strides: Option<Vec<usize>> = layout
            .strides()
            .iter()
            .map(|&s| usize::try_from(s).ok())
            .collect();
        let shape = IxDyn(layout.shape().as_slice()).strides(IxDyn(&strides?));
        ArrayViewD::from_shape(shape, buf.get(layout.start_offset()..)?).ok()
    }

    impl HostTensors for Flex {
        fn with_view<R>(x: &FlexTensor, f: impl FnOnce(View<'_>) -> R) -> R {
            let view = match x.dtype() {
                DType::F32 => strided(x, x.storage::<f32>()).map(View::F32),
                DType::F64 => strided(x, x.storage::<f64>()).map(View::F64),
                other => Some(View::Other(other)),
            };
            match view {
                Some(v) => f(v),
                // Negative strides (a flipped tensor): read a contiguous
                // copy, which always has a view.
                None => {
                    let c = x.to_contiguous();
                    let v = match c.dtype() {
                        DType::F32 => strided(&c, c.storage::<f32>()).map(View::F32),
                        _ => strided(&c, c.storage::<f64>()).map(View::F64),
                    };
                    f(v.unwrap_or(View::Other(c.dtype())))
                }
            }
        }

        fn tensor(a: Owned) -> FlexTensor {
            FlexTensor::from_data(into_data(a))
        }
    }

    impl ClassLossBackend for Flex {
        fn classloss_one(x: FlexTensor, job: &dyn Job<1>) -> FlexTensor {
            value_only::<Self, 1>([&x], job)
        }
        fn classloss_two(a: FlexTensor, b: FlexTensor, job: &dyn Job<2>) -> FlexTensor {
            value_only::<Self, 2>([&a, &b], job)
        }
    }
}

#[cfg(feature = "ndarray")]
mod ndarray_backend {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayTensor;

    use super::*;

    impl HostTensors for NdArray {
        fn with_view<R>(x: &NdArrayTensor, f: impl FnOnce(View<'_>) -> R) -> R {
            match x {
                NdArrayTensor::F32(s) => f(View::F32(s.view())),
                NdArrayTensor::F64(s) => f(View::F64(s.view())),
                other => f(View::Other(other.dtype())),
            }
        }

        fn tensor(a: Owned) -> NdArrayTensor {
            match a {
                Owned::F32(a) => NdArrayTensor::from(a.into_shared()),
                Owned::F64(a) => NdArrayTensor::from(a.into_shared()),
            }
        }
    }

    impl ClassLossBackend for NdArray {
        fn classloss_one(x: NdArrayTensor, job: &dyn Job<1>) -> NdArrayTensor {
            value_only::<Self, 1>([&x], job)
        }
        fn classloss_two(a: NdArrayTensor, b: NdArrayTensor, job: &dyn Job<2>) -> NdArrayTensor {
            value_only::<Self, 2>([&a, &b], job)
        }
    }
}

/// A host array as burn's host data, without a copy (the arrays are in
/// standard layout).
pub(crate) fn into_data(a: Owned) -> TensorData {
    match a {
        Owned::F32(a) => {
            let shape = a.shape().to_vec();
            TensorData::new(a.into_raw_vec_and_offset().0, shape)
        }
        Owned::F64(a) => {
            let shape = a.shape().to_vec();
            TensorData::new(a.into_raw_vec_and_offset().0, shape)
        }
    }
}

/// The op's backward: the kept gradients times the upstream gradient.
#[derive(Debug)]
struct KeptGradients;

impl<B: Backend, const N: usize> Backward<B, N> for KeptGradients {
    type State = Option<[FloatTensor<B>; N]>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<B>(&ops.node);
        let Some(kept) = ops.state else { return };
        let scale = try_read_sync(B::float_into_data(upstream.clone()))
            .and_then(Result::ok)
            .and_then(|d| d.iter::<f64>().next());
        for (parent, grad) in ops.parents.into_iter().zip(kept) {
            let Some(parent) = parent else { continue };
            let grad = match scale {
                Some(1.0) => grad,
                _ => {
                    // `[1]` reshaped to the gradient's rank broadcasts.
                    let rank = grad.shape().num_dims();
                    let up = B::float_reshape(upstream.clone(), Shape::from(vec![1; rank]));
                    B::float_mul(grad, up)
                }
            };
            grads.register::<B>(parent.id, grad);
        }
    }
}

impl<B: ClassLossBackend + HostTensors, C: CheckpointStrategy> ClassLossBackend for Autodiff<B, C> {
    fn classloss_one(x: FloatTensor<Self>, job: &dyn Job<1>) -> FloatTensor<Self> {
        match Backward::<B, 1>::prepare::<C>(KeptGradients, [x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (value, grads) = run::<B, 1>([x.primitive()], job, true);
                prep.finish(grads, value)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::classloss_one(x.into_primitive(), job)),
        }
    }

    fn classloss_two(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        job: &dyn Job<2>,
    ) -> FloatTensor<Self> {
        match Backward::<B, 2>::prepare::<C>(KeptGradients, [a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (value, grads) = run::<B, 2>([a.primitive(), b.primitive()], job, true);
                prep.finish(grads, value)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::classloss_two(
                a.into_primitive(),
                b.into_primitive(),
                job,
            )),
        }
    }
}
