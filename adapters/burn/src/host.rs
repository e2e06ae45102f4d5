//! The path for any backend: the inputs are read through burn's
//! `TensorData` (a copy to the host), the core computes the value and the
//! gradients there, and the gradients join burn's graph through burn's own
//! ops: `value + sum((x - detach(x)) * g)`. Its value is `value` exactly
//! (`x - detach(x)` is exactly 0 for finite `x`, which the core has
//! checked) and its gradient is exactly `g`.

use burn::tensor::{DType, Tensor, TensorData};
use ndarray::{ArrayViewD, IxDyn};

use crate::backend::into_data;
use crate::job::{Job, Owned, View};

/// burn's host data as a view.
fn view(data: &TensorData) -> View<'_> {
    let shape = IxDyn(data.shape().as_slice());
    let view = match data.dtype() {
        DType::F32 => data
            .as_slice::<f32>()
            .ok()
            .and_then(|s| ArrayViewD::from_shape(shape, s).ok())
            .map(View::F32),
        DType::F64 => data
            .as_slice::<f64>()
            .ok()
            .and_then(|s| ArrayViewD::from_shape(shape, s).ok())
            .map(View::F64),
        _ => None,
    };
    view.unwrap_or(View::Other(data.dtype()))
}

/// The loss `job` on `xs` through the host: the value (shape `[1]`, or
/// the unreduced values of rank `P`), with the gradients attached when an
/// input is tracked. On a failure (kept in the job) a zero, never returned.
pub(crate) fn run<const N: usize, const R: usize, const P: usize>(
    xs: [Tensor<R>; N],
    job: &dyn Job<N>,
) -> Tensor<P> {
    let device = xs[0].device();
    let tracked = xs.iter().any(Tensor::is_tracked);
    let data = xs.each_ref().map(Tensor::to_data);
    let dtype = data[0].dtype();
    let mut grads: Option<[Owned; N]> = if tracked {
        data.each_ref()
            .map(|d| Owned::zeros(d.dtype(), d.shape().as_slice()))
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .and_then(|g| g.try_into().ok())
    } else {
        None
    };
    let buffers = grads.as_mut().map(|g| g.each_mut().map(Owned::view_mut));
    let Some(value) = job.run(data.each_ref().map(view), buffers) else {
        return Tensor::zeros([1; P], &device);
    };
    let value = Tensor::<P>::from_data(into_data(value), (&device, dtype));
    let Some(grads) = grads else { return value };
    let dims = value.dims();
    xs.into_iter().zip(grads).fold(value, |sum, (x, g)| {
        let g = Tensor::<R>::from_data(into_data(g), (&device, dtype));
        let zero_with_gradient = (x.clone() - x.detach()) * g;
        // Reduced: one sum; unreduced: each sample's own (summed over the
        // class axis unless the values are elementwise).
        sum + if dims.iter().product::<usize>() == 1 && P == 1 {
            zero_with_gradient.sum().reshape(dims)
        } else if P == R {
            zero_with_gradient.reshape(dims)
        } else {
            zero_with_gradient.sum_dim(1).reshape(dims)
        }
    })
}
