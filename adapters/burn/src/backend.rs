//! The op on burn's CPU backends, through burn's backend-extension
//! mechanism: one op for losses on one tensor, one for losses on two.
//!
//! On Flex and NdArray the op reads the tensors' own buffers as ndarray
//! views (any non-negative strides; Flex's negative strides are made
//! contiguous first). Under `Autodiff` the forward runs the core's fused
//! value-and-gradient call once, writing the gradients into tensors (ones
//! an earlier call made, once no one else holds them: [`Spare`]), and
//! keeps them as the op's state;
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

use std::sync::Mutex;

use crate::job::{Job, Owned, View, ViewMut};

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
    /// A gradient buffer that becomes a tensor without a copy.
    type Buffer;
    /// `f` on the tensor's data, viewed without a copy where the layout
    /// allows.
    fn with_view<R>(x: &FloatTensor<Self>, f: impl FnOnce(View<'_>) -> R) -> R;
    /// A buffer of `dtype` (`f32` or `f64`) and `shape` to overwrite: one
    /// an earlier call made that no one else holds any more, or a new one.
    fn buffer(dtype: DType, shape: &[usize]) -> Option<Self::Buffer>;
    /// The buffer's data, to write (copied first if, against
    /// [`HostTensors::buffer`]'s check, someone else holds it).
    fn buffer_view(b: &mut Self::Buffer) -> ViewMut<'_>;
    /// The buffer as a tensor; the buffer is also kept for a later call,
    /// which writes it again only once no one holds the tensor.
    fn buffer_tensor(b: Self::Buffer) -> FloatTensor<Self>;
    /// The host array as a tensor, without a copy.
    fn tensor(a: Owned) -> FloatTensor<Self>;
}

/// The value of `job` on plain (untracked) tensors; on a failure, which
/// the job keeps, a `[1]` zero that the public call never returns.
fn value_only<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
) -> FloatTensor<B> {
    B::tensor(on_views::<B, N>(xs, job, None).unwrap_or_else(failed))
}

/// The op's output after a failure (kept in the job, and returned by the
/// public call instead).
fn failed() -> Owned {
    Owned::F32(ndarray::ArrayD::zeros(vec![1]))
}

/// The value and the gradients, written into buffers (spare ones where
/// there are), as tensors; the value alone if the inputs are of a type no
/// loss takes (the job keeps that error).
fn with_gradients<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
) -> (FloatTensor<B>, Option<[FloatTensor<B>; N]>) {
    let buffers: Option<Vec<B::Buffer>> = xs
        .iter()
        .map(|x| B::buffer(x.dtype(), x.shape().as_slice()))
        .collect();
    let Some(mut buffers) = buffers.and_then(|b| <[B::Buffer; N]>::try_from(b).ok()) else {
        return (value_only::<B, N>(xs, job), None);
    };
    let views: Vec<ViewMut<'_>> = buffers.iter_mut().map(B::buffer_view).collect();
    let value = <[ViewMut<'_>; N]>::try_from(views)
        .ok()
        .and_then(|views| on_views::<B, N>(xs, job, Some(views)));
    let grads = value.is_some().then(|| buffers.map(B::buffer_tensor));
    (B::tensor(value.unwrap_or_else(failed)), grads)
}

/// `job` on the views of one or two tensors.
fn on_views<B: HostTensors, const N: usize>(
    xs: [&FloatTensor<B>; N],
    job: &dyn Job<N>,
    grads: Option<[ViewMut<'_>; N]>,
) -> Option<Owned> {
    fn call<const N: usize>(
        job: &dyn Job<N>,
        views: Vec<View<'_>>,
        grads: Option<[ViewMut<'_>; N]>,
    ) -> Option<Owned> {
        job.run(views.try_into().ok()?, grads)
    }
    match xs.as_slice() {
        [x] => B::with_view(x, |v| call(job, vec![v], grads)),
        [a, b] => B::with_view(a, |va| {
            B::with_view(b, |vb| call(job, vec![va.reborrow(), vb.reborrow()], grads))
        }),
        _ => None,
    }
}

/// Gradient tensors kept from earlier calls. Each stays here while burn
/// (the user's gradients, an optimizer) holds it too, and is written
/// again only once its reference count says no one else does: a large
/// gradient written into new memory costs a page fault per page (three
/// times the loss itself at 1024 x 32000).
struct Spare<T>(Mutex<Vec<T>>);

/// At most this many are kept (the oldest goes first): the two gradients
/// of a two-input loss at two batch sizes.
const KEEP: usize = 4;

impl<T> Spare<T> {
    const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first kept buffer `reusable` accepts, taken out.
    fn take(&self, mut reusable: impl FnMut(&mut T) -> bool) -> Option<T> {
        let mut kept = self.lock();
        let at = kept.iter_mut().position(&mut reusable)?;
        Some(kept.remove(at))
    }

    fn keep(&self, t: T) {
        let mut kept = self.lock();
        if kept.len() == KEEP {
            kept.remove(0);
        }
        kept.push(t);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// Frees the gradient buffers kept for later calls (at most four per
/// backend, each the size of a loss input): for a program that has
/// finished training and wants the memory back. Later calls allocate
/// again.
pub fn release_spare_gradients() {
    #[cfg(feature = "flex")]
    flex::SPARE.clear();
    #[cfg(feature = "ndarray")]
    ndarray_backend::SPARE.clear();
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};

    use super::*;

    pub(super) static SPARE: Spare<FlexTensor> = Spare::new();

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
        type Buffer = FlexTensor;

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

        fn buffer(dtype: DType, shape: &[usize]) -> Option<FlexTensor> {
            let reusable = |t: &mut FlexTensor| {
                t.dtype() == dtype && t.layout().shape().as_slice() == shape && t.is_unique()
            };
            SPARE
                .take(reusable)
                .or_else(|| Owned::zeros(dtype, shape).map(Self::tensor))
        }

        fn buffer_view(t: &mut FlexTensor) -> ViewMut<'_> {
            // `buffer` makes contiguous f32 or f64 tensors only.
            let shape = IxDyn(&t.layout().shape().to_vec());
            let whole = "a contiguous buffer of its own shape";
            if t.dtype() == DType::F64 {
                ViewMut::F64(ArrayViewMutD::from_shape(shape, t.storage_mut::<f64>()).expect(whole))
            } else {
                ViewMut::F32(ArrayViewMutD::from_shape(shape, t.storage_mut::<f32>()).expect(whole))
            }
        }

        fn buffer_tensor(t: FlexTensor) -> FlexTensor {
            SPARE.keep(t.clone());
            t
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
    use ndarray::ArcArray;

    use super::*;

    /// A gradient buffer of NdArray: the array the tensor shares.
    pub enum Shared {
        /// `f32` data.
        F32(ArcArray<f32, ndarray::IxDyn>),
        /// `f64` data.
        F64(ArcArray<f64, ndarray::IxDyn>),
    }

    pub(super) static SPARE: Spare<Shared> = Spare::new();

    impl HostTensors for NdArray {
        type Buffer = Shared;

        fn with_view<R>(x: &NdArrayTensor, f: impl FnOnce(View<'_>) -> R) -> R {
            match x {
                NdArrayTensor::F32(s) => f(View::F32(s.view())),
                NdArrayTensor::F64(s) => f(View::F64(s.view())),
                other => f(View::Other(other.dtype())),
            }
        }

        fn buffer(dtype: DType, shape: &[usize]) -> Option<Shared> {
            let reusable = |b: &mut Shared| match b {
                Shared::F32(a) => dtype == DType::F32 && a.shape() == shape && a.is_unique(),
                Shared::F64(a) => dtype == DType::F64 && a.shape() == shape && a.is_unique(),
            };
            SPARE
                .take(reusable)
                .or_else(|| match Owned::zeros(dtype, shape)? {
                    Owned::F32(a) => Some(Shared::F32(a.into_shared())),
                    Owned::F64(a) => Some(Shared::F64(a.into_shared())),
                })
        }

        fn buffer_view(b: &mut Shared) -> ViewMut<'_> {
            // Unique (checked when taken, or new), so no copy on write.
            match b {
                Shared::F32(a) => ViewMut::F32(a.view_mut()),
                Shared::F64(a) => ViewMut::F64(a.view_mut()),
            }
        }

        fn buffer_tensor(b: Shared) -> NdArrayTensor {
            let t = match &b {
                Shared::F32(a) => NdArrayTensor::from(a.clone()),
                Shared::F64(a) => NdArrayTensor::from(a.clone()),
            };
            SPARE.keep(b);
            t
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
        let up_shape = upstream.shape();
        // A reduced loss: one upstream value, skipped when it is 1.
        let scale = (up_shape.num_elements() == 1)
            .then(|| try_read_sync(B::float_into_data(upstream.clone())))
            .flatten()
            .and_then(Result::ok)
            .and_then(|d| d.iter::<f64>().next());
        for (parent, grad) in ops.parents.into_iter().zip(kept) {
            let Some(parent) = parent else { continue };
            let grad = match scale {
                Some(1.0) => grad,
                _ => {
                    // A `[1]` upstream broadcasts after a reshape to the
                    // gradient's rank; unreduced values scale their own
                    // sample (position, element), the class axis (1)
                    // broadcast where they have none.
                    let rank = grad.shape().num_dims();
                    let mut dims = up_shape.as_slice().to_vec();
                    if up_shape.num_elements() == 1 {
                        dims = vec![1; rank];
                    } else if dims.len() < rank {
                        dims.insert(1, 1);
                    }
                    let up = B::float_reshape(upstream.clone(), Shape::from(dims));
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
                let (value, grads) = with_gradients::<B, 1>([x.primitive()], job);
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
                let (value, grads) = with_gradients::<B, 2>([a.primitive(), b.primitive()], job);
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
