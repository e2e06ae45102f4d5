//! Reading candle's CPU storage as ndarray views (no copy, any strides
//! candle hands over) and carrying the core's errors through candle's.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Error, Layout, Result, WithDType};
use classloss::{ClassTarget, Float, Labels, Loss};
use ndarray::{ArrayView, Dimension, IxDyn, ShapeBuilder};

/// A core error as a candle error whose text is the core's, word for word
/// (`Error::wrap` would append a backtrace when one is captured).
pub(crate) fn core_error(e: classloss::Error) -> Error {
    Error::Wrapped(Box::new(e))
}

/// The dtype error for `what` (an argument name of the core's).
pub(crate) fn dtype_error(what: &'static str, expected: DType, got: DType) -> Error {
    Error::UnexpectedDType {
        msg: what,
        expected,
        got,
    }
}

/// `data` laid out as `layout` says, as a view of rank `D` (the core's
/// rank error when the tensor has another).
fn strided<'a, T, D: Dimension>(
    what: &'static str,
    data: &'a [T],
    layout: &Layout,
) -> Result<ArrayView<'a, T, D>> {
    let dims = layout.dims();
    if D::NDIM.is_some_and(|n| n != dims.len()) {
        return Err(core_error(classloss::Error::RankMismatch {
            what,
            expected: D::NDIM.unwrap_or_default().to_string(),
            actual: dims.len(),
            shape: format!("{dims:?}"),
        }));
    }
    // candle's strides are in elements and never negative; a broadcast
    // axis has stride 0, which a read-only view accepts.
    let shape = IxDyn(dims).strides(IxDyn(layout.stride()));
    let start = layout.start_offset().min(data.len());
    ArrayView::from_shape(shape, &data[start..])
        .and_then(|v| v.into_dimensionality::<D>())
        .map_err(Error::wrap)
}

/// A float tensor of `F` as a view of rank `D`.
pub(crate) fn float_view<'a, F: WithDType, D: Dimension>(
    what: &'static str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<ArrayView<'a, F, D>> {
    let data = F::cpu_storage_as_slice(storage)
        .map_err(|_| dtype_error(what, F::DTYPE, storage.dtype()))?;
    strided(what, data, layout)
}

/// An integer tensor as the core's [`Labels`] of rank `D`, whatever its
/// integer dtype.
pub(crate) fn labels_view<'a, D: Dimension>(
    what: &'static str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<Labels<'a, D>> {
    Ok(match storage {
        CpuStorage::U8(v) => strided(what, v, layout)?.into(),
        CpuStorage::U32(v) => strided(what, v, layout)?.into(),
        CpuStorage::I16(v) => strided(what, v, layout)?.into(),
        CpuStorage::I32(v) => strided(what, v, layout)?.into(),
        CpuStorage::I64(v) => strided(what, v, layout)?.into(),
        s => {
            return Err(Error::Msg(format!(
                "classloss: {what}: expected an integer dtype (U8, U32, I16, I32 or I64), got {:?}",
                s.dtype()
            )));
        }
    })
}

/// A loss's target read from candle's storage: labels from an integer
/// tensor, values from a float one, cross-entropy's target from either.
pub trait FromStorage<'a>: Sized {
    /// Reads the target `what` (named as the core names it).
    fn from_storage(what: &'static str, storage: &'a CpuStorage, layout: &Layout) -> Result<Self>;
}

impl<'a, D: Dimension> FromStorage<'a> for Labels<'a, D> {
    fn from_storage(what: &'static str, storage: &'a CpuStorage, layout: &Layout) -> Result<Self> {
        labels_view(what, storage, layout)
    }
}

impl<'a, F: Float + WithDType, D: Dimension> FromStorage<'a> for ArrayView<'a, F, D> {
    fn from_storage(what: &'static str, storage: &'a CpuStorage, layout: &Layout) -> Result<Self> {
        float_view(what, storage, layout)
    }
}

impl<'a, F: Float + WithDType, D: Dimension> FromStorage<'a> for ClassTarget<'a, F, D> {
    fn from_storage(_: &'static str, storage: &'a CpuStorage, layout: &Layout) -> Result<Self> {
        if storage.dtype().is_float() {
            Ok(ClassTarget::Probs(float_view("probs", storage, layout)?))
        } else {
            Ok(ClassTarget::Labels(labels_view("labels", storage, layout)?))
        }
    }
}

/// A loss whose target candle's storage can hold: every loss the crate
/// exposes.
pub trait ReadsTarget<F: Float>: for<'a> Loss<F, Target<'a>: FromStorage<'a>> {}

impl<F: Float, L: for<'a> Loss<F, Target<'a>: FromStorage<'a>>> ReadsTarget<F> for L {}
