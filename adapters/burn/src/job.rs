//! A loss and its target, erased, as the backend op runs it: the op hands
//! over its inputs as ndarray views of `f32` or `f64` (whatever the tensor
//! holds) and gets back the value and, when asked, the gradients. A
//! failure (a wrong float type, a wrong rank, the core's validation) is
//! kept in the job and returned by the public call after the op, since an
//! op of burn's extension mechanism returns tensors, not `Result`s.

use std::sync::Mutex;

use burn::tensor::{DType, TensorData};
use classloss::Reduction;
use classloss::{ClassTarget, Float, Labels, Loss};
use classloss_adapter_kit::{ScoresLoss, TwoInputLoss, Unreduced};
use ndarray::{
    Array1, ArrayD, ArrayView, ArrayViewD, ArrayViewMut, ArrayViewMutD, Dimension, Ix2, IxDyn,
};

use crate::Error;

/// A float tensor's data as a view, without a copy.
pub enum View<'a> {
    /// An `f32` tensor.
    F32(ArrayViewD<'a, f32>),
    /// An `f64` tensor.
    F64(ArrayViewD<'a, f64>),
    /// A tensor of another float type, which no loss takes.
    Other(DType),
}

impl View<'_> {
    /// The same view with a shorter lifetime (ndarray's views are
    /// invariant in theirs).
    pub fn reborrow<'b>(self) -> View<'b>
    where
        Self: 'b,
    {
        match self {
            View::F32(v) => View::F32(v.reborrow()),
            View::F64(v) => View::F64(v.reborrow()),
            View::Other(d) => View::Other(d),
        }
    }
}

/// A gradient buffer, overwritten by the loss.
pub enum ViewMut<'a> {
    /// An `f32` buffer.
    F32(ArrayViewMutD<'a, f32>),
    /// An `f64` buffer.
    F64(ArrayViewMutD<'a, f64>),
}

/// A value or gradient computed on the host, moved into a tensor without
/// a copy.
pub enum Owned {
    /// `f32` data.
    F32(ArrayD<f32>),
    /// `f64` data.
    F64(ArrayD<f64>),
}

impl Owned {
    /// Zeros of `dtype` (`f32` or `f64`) and `shape`.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Option<Owned> {
        match dtype {
            DType::F32 => Some(Owned::F32(ArrayD::zeros(shape))),
            DType::F64 => Some(Owned::F64(ArrayD::zeros(shape))),
            _ => None,
        }
    }

    /// The data as a buffer to write.
    pub fn view_mut(&mut self) -> ViewMut<'_> {
        match self {
            Owned::F32(a) => ViewMut::F32(a.view_mut()),
            Owned::F64(a) => ViewMut::F64(a.view_mut()),
        }
    }
}

/// A loss on `N` differentiable tensors with its target, ready to run.
pub trait Job<const N: usize>: Send + Sync {
    /// The value (shape `[1]`), with the gradients written into `grads`
    /// when given (each shaped like its input); `None` after a failure,
    /// which the job keeps.
    fn run(&self, inputs: [View<'_>; N], grads: Option<[ViewMut<'_>; N]>) -> Option<Owned>;
}

/// The float types a loss computes in, and their views and arrays.
pub trait HostFloat: Float + burn::tensor::Element {
    /// The tensor dtype.
    const DTYPE: DType;
    /// The view, if it holds this type.
    fn view(v: View<'_>) -> Result<ArrayViewD<'_, Self>, DType>;
    /// The buffer, if it holds this type.
    fn view_mut(v: ViewMut<'_>) -> Result<ArrayViewMutD<'_, Self>, DType>;
    /// The array as the erased owned data.
    fn owned(a: ArrayD<Self>) -> Owned;
}

impl HostFloat for f32 {
    const DTYPE: DType = DType::F32;
    fn view(v: View<'_>) -> Result<ArrayViewD<'_, f32>, DType> {
        match v {
            View::F32(v) => Ok(v),
            View::F64(_) => Err(DType::F64),
            View::Other(d) => Err(d),
        }
    }
    fn view_mut(v: ViewMut<'_>) -> Result<ArrayViewMutD<'_, f32>, DType> {
        match v {
            ViewMut::F32(v) => Ok(v),
            ViewMut::F64(_) => Err(DType::F64),
        }
    }
    fn owned(a: ArrayD<f32>) -> Owned {
        Owned::F32(a)
    }
}

impl HostFloat for f64 {
    const DTYPE: DType = DType::F64;
    fn view(v: View<'_>) -> Result<ArrayViewD<'_, f64>, DType> {
        match v {
            View::F64(v) => Ok(v),
            View::F32(_) => Err(DType::F32),
            View::Other(d) => Err(d),
        }
    }
    fn view_mut(v: ViewMut<'_>) -> Result<ArrayViewMutD<'_, f64>, DType> {
        match v {
            ViewMut::F64(v) => Ok(v),
            ViewMut::F32(_) => Err(DType::F32),
        }
    }
    fn owned(a: ArrayD<f64>) -> Owned {
        Owned::F64(a)
    }
}

/// A loss's target read from burn's host data: labels from an integer
/// tensor, values from a float one, cross-entropy's target from either.
pub trait FromData<'a>: Sized {
    /// Reads the target `what` (named as the core names it).
    fn from_data(what: &'static str, data: &'a TensorData) -> Result<Self, Error>;
}

/// `data` as a view of `T` of rank `D`.
fn typed<'a, T: burn::tensor::Element, D: Dimension>(
    what: &'static str,
    data: &'a TensorData,
) -> Result<ArrayView<'a, T, D>, Error> {
    let slice = data.as_slice::<T>().map_err(|_| Error::DType {
        what,
        expected: format!("dtype {:?}", T::dtype()),
        actual: data.dtype(),
    })?;
    shaped(
        what,
        ArrayView::from_shape(IxDyn(data.shape().as_slice()), slice),
    )
}

/// A dynamic-rank view as rank `D`: the core's rank error if it has
/// another.
pub(crate) fn shaped<'a, T, D: Dimension>(
    what: &'static str,
    view: Result<ArrayViewD<'a, T>, ndarray::ShapeError>,
) -> Result<ArrayView<'a, T, D>, Error> {
    let view = view.map_err(|e| Error::Layout(e.to_string()))?;
    let shape = view.shape().to_vec();
    view.into_dimensionality::<D>().map_err(|_| {
        Error::Loss(classloss::Error::RankMismatch {
            what,
            expected: D::NDIM.unwrap_or_default().to_string(),
            actual: shape.len(),
            shape: format!("{shape:?}"),
        })
    })
}

impl<'a, D: Dimension> FromData<'a> for Labels<'a, D> {
    fn from_data(what: &'static str, data: &'a TensorData) -> Result<Self, Error> {
        Ok(match data.dtype() {
            DType::I64 => typed::<i64, D>(what, data)?.into(),
            DType::I32 => typed::<i32, D>(what, data)?.into(),
            DType::I16 => typed::<i16, D>(what, data)?.into(),
            DType::I8 => typed::<i8, D>(what, data)?.into(),
            DType::U64 => typed::<u64, D>(what, data)?.into(),
            DType::U32 => typed::<u32, D>(what, data)?.into(),
            DType::U16 => typed::<u16, D>(what, data)?.into(),
            DType::U8 => typed::<u8, D>(what, data)?.into(),
            actual => {
                return Err(Error::DType {
                    what,
                    expected: "an integer dtype".into(),
                    actual,
                });
            }
        })
    }
}

impl<'a, F: HostFloat, D: Dimension> FromData<'a> for ArrayView<'a, F, D> {
    fn from_data(what: &'static str, data: &'a TensorData) -> Result<Self, Error> {
        typed(what, data)
    }
}

impl<'a, F: HostFloat, D: Dimension> FromData<'a> for ClassTarget<'a, F, D> {
    fn from_data(_: &'static str, data: &'a TensorData) -> Result<Self, Error> {
        if data.dtype().is_float() {
            Ok(ClassTarget::Probs(typed("probs", data)?))
        } else {
            Ok(ClassTarget::Labels(Labels::from_data("labels", data)?))
        }
    }
}

/// A loss whose target burn's host data can hold: every loss the crate
/// exposes.
pub trait ReadsTarget<F: Float>: for<'a> Loss<F, Target<'a>: FromData<'a>> {}

impl<F: Float, L: for<'a> Loss<F, Target<'a>: FromData<'a>>> ReadsTarget<F> for L {}

/// The first failure of a job, kept for the public call.
#[derive(Default)]
struct Failure(Mutex<Option<Error>>);

impl Failure {
    /// `r`'s value, or `None` with its error kept.
    fn keep<T>(&self, r: Result<T, Error>) -> Option<T> {
        r.map_err(|e| {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        })
        .ok()
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The float view `what` of a loss in `F`: the dtype error otherwise.
fn input<'a, F: HostFloat>(what: &'static str, v: View<'a>) -> Result<ArrayViewD<'a, F>, Error> {
    F::view(v).map_err(|actual| Error::DType {
        what,
        expected: format!("dtype {:?}", F::DTYPE),
        actual,
    })
}

/// The gradient buffer for input `what`, of rank `D`.
fn buffer<'a, F: HostFloat, D: Dimension>(
    what: &'static str,
    v: ViewMut<'a>,
) -> Result<ArrayViewMut<'a, F, D>, Error> {
    let v = F::view_mut(v).map_err(|actual| Error::DType {
        what,
        expected: format!("dtype {:?}", F::DTYPE),
        actual,
    })?;
    let shape = v.shape().to_vec();
    v.into_dimensionality::<D>()
        .map_err(|_| Error::Layout(format!("{what}: a gradient buffer of shape {shape:?}")))
}

/// The value as the op's `[1]` output.
fn value<F: HostFloat>(v: F) -> Owned {
    F::owned(Array1::from_elem(1, v).into_dyn())
}

/// The unreduced values of `loss`, which must be configured with
/// `Reduction::None` (its fused gradient is then that of their sum, each
/// sample's own in its row), as an array of rank `rank`.
fn unreduced_values<'a, F: HostFloat, L: Unreduced<F>>(
    loss: &L,
    rank: usize,
    x: L::Input<'a>,
    target: L::Target<'a>,
) -> Result<ArrayD<F>, Error> {
    if loss.reduction() != Reduction::None {
        return Err(Error::Loss(classloss::Error::InvalidOption {
            name: "reduction",
            value: format!("{:?}", loss.reduction()),
            expected: "Reduction::None for the unreduced values",
        }));
    }
    let values = loss.unreduced(x, target)?;
    if values.ndim() != rank {
        return Err(Error::Loss(classloss::Error::RankMismatch {
            what: "unreduced values",
            expected: values.ndim().to_string(),
            actual: rank,
            shape: format!("{:?}", values.shape()),
        }));
    }
    Ok(values)
}

/// A loss on one tensor of rank `D` and its target.
pub(crate) struct Scores<'t, L, F, D> {
    loss: &'t L,
    target: &'t TensorData,
    /// `Some(rank)`: the output is the unreduced values, of that rank.
    unreduced: Option<usize>,
    failure: Failure,
    _types: std::marker::PhantomData<fn() -> (F, D)>,
}

impl<'t, L, F, D> Scores<'t, L, F, D> {
    pub(crate) fn new(loss: &'t L, target: &'t TensorData) -> Self {
        Self {
            loss,
            target,
            unreduced: None,
            failure: Failure::default(),
            _types: std::marker::PhantomData,
        }
    }

    /// The job whose output is the unreduced values, of rank `rank`.
    pub(crate) fn unreduced(mut self, rank: usize) -> Self {
        self.unreduced = Some(rank);
        self
    }

    /// The op's output, or the failure the op met.
    pub(crate) fn finish<T>(&self, out: T) -> Result<T, Error> {
        self.failure.take().map_or(Ok(out), Err)
    }
}

impl<L, F, D> Job<1> for Scores<'_, L, F, D>
where
    F: HostFloat,
    D: Dimension,
    L: ScoresLoss<F, D> + ReadsTarget<F> + Sync,
{
    fn run(&self, [x]: [View<'_>; 1], grads: Option<[ViewMut<'_>; 1]>) -> Option<Owned> {
        let run = || -> Result<Owned, Error> {
            let x = shaped::<F, D>("input", Ok(input::<F>("input", x)?))?;
            let target: L::Target<'_> = FromData::from_data("target", self.target)?;
            let per_sample = match self.unreduced {
                None => None,
                Some(rank) => Some(unreduced_values(
                    self.loss,
                    rank,
                    x.clone(),
                    target.clone(),
                )?),
            };
            let v = match grads {
                None if per_sample.is_some() => F::zero(),
                None => self.loss.forward(x, target)?,
                Some([g]) => {
                    let g = buffer::<F, D>("input", g)?;
                    self.loss.forward_backward_into(x, target, g)?
                }
            };
            Ok(per_sample.map_or_else(|| value(v), F::owned))
        };
        self.failure.keep(run())
    }
}

/// A loss on two `(rows, D)` tensors and its target.
pub(crate) struct Two<'t, L, F>(pub(crate) Scores<'t, L, F, Ix2>);

impl<L, F> Job<2> for Two<'_, L, F>
where
    F: HostFloat,
    L: TwoInputLoss<F> + ReadsTarget<F> + Sync,
{
    fn run(&self, [a, b]: [View<'_>; 2], grads: Option<[ViewMut<'_>; 2]>) -> Option<Owned> {
        let job = &self.0;
        let run = || -> Result<Owned, Error> {
            let [na, nb] = L::NAMES;
            let a = shaped::<F, Ix2>(na, Ok(input::<F>(na, a)?))?;
            let b = shaped::<F, Ix2>(nb, Ok(input::<F>(nb, b)?))?;
            let target: L::Target<'_> = FromData::from_data("target", job.target)?;
            Ok(value(match grads {
                None => job.loss.forward(L::input(a, b), target)?,
                Some([ga, gb]) => {
                    let (ga, gb) = (buffer::<F, Ix2>(na, ga)?, buffer::<F, Ix2>(nb, gb)?);
                    job.loss.forward_backward_into(a, b, target, ga, gb)?
                }
            }))
        };
        job.failure.keep(run())
    }
}
