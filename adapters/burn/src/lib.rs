//! classloss's losses as burn autodiff ops.
//!
//! Every differentiable classloss loss, configured as in the core crate
//! (`SoftmaxFocal::new().with_gamma(2.0)`, every option kept), applied to
//! burn [`Tensor`]s: the value is a `[1]` tensor whose backward is
//! classloss's exact gradient, so `loss.backward()` carries it to the
//! model's parameters.
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use classloss::SoftmaxFocal;
//! use classloss_burn::TensorLoss;
//!
//! let device = Device::flex().autodiff();
//! let logits = Tensor::<2>::from_floats([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], &device).require_grad();
//! let labels = Tensor::<1, Int>::from_ints([0, 2], &device);
//! let focal = SoftmaxFocal::<f32>::new().with_gamma(2.0)?;
//! let value = focal.loss(logits.clone(), labels)?;
//! let grads = value.backward();
//! let g = logits.grad(&grads).expect("a gradient for the logits");
//! assert_eq!(g.dims(), [2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What each loss takes
//!
//! | losses | inputs | target |
//! | --- | --- | --- |
//! | cross-entropy; ordinal EMD | logits `(N, C)` or `(N, C, d1..dk)` (ordinal EMD: `(N, C)`) | labels (any integer dtype) or probabilities of the logits' shape |
//! | label smoothing, softmax focal, Poly-1, the noise-robust losses, logit adjustment, LDAM, OHEM, sparsemax, Wasserstein, multi-margin, Crammer–Singer, the angular margins on cosines | scores `(N, C)` | labels `(N)` |
//! | KL divergence; multi-label soft margin, asymmetric (ASL) | logits `(N, C)` | probabilities `(N, C)`; targets `(N, C)` in `[0, 1]` |
//! | BCE, BCE with logits, sigmoid focal, soft margin | any shape | targets (soft margin: labels ±1) of that shape |
//! | hinge, exponential | scores `(N)` | targets `(N)` |
//! | ArcFace, CosFace, combined margin | `(embeddings (N, D), class weights (C, D))` | labels `(N)` |
//! | contrastive, cosine embedding | `(x1 (N, D), x2 (N, D))` | similarity flags `(N)`, labels ±1 for cosine embedding |
//! | center loss | `(features (N, D), centers (C, D))` | labels `(N)` |
//! | BYOL | predictions `(N, D)` | target projections `(N, D)` (constants) |
//!
//! Float tensors must have the loss's float type (`f32` or `f64`; losses
//! without one in their type take either). Targets get no gradient, as in
//! the core. A 0/1 target stored as `Int` or `Bool` is cast by the caller
//! (`.float()`), since cross-entropy reads an integer target as labels.
//! The rank is checked when the loss runs (`Error::Loss` with the core's
//! rank error), as burn's tensors carry it only as a const parameter.
//!
//! # Backends, and how the gradient is carried
//!
//! On burn's CPU backends, Flex and NdArray (features `flex` and
//! `ndarray`, both on by default), the loss is an op of burn's
//! backend-extension mechanism: it reads the
//! inputs' buffers in place, with their strides, and under `Autodiff` runs
//! the core's fused value-and-gradient call once in the forward, keeping
//! the gradients for the backward, which scales them by the upstream
//! gradient (not at all when that is 1, as for `loss.backward()`). The
//! gradients are moved into burn tensors without a copy and reach the
//! parameters without one either. The target is read through
//! `TensorData`: for labels that is `N` integers; a float target (BCE's,
//! cross-entropy's probabilities) is copied once.
//!
//! Any other backend (burn's GPU backends, LibTorch, a remote device)
//! takes [`TensorLoss::loss_via_data`]'s path, also what `loss` does
//! there: the inputs are copied to the host through `TensorData`, the
//! core computes the value and gradients, and the gradients join burn's
//! graph through burn's own ops as `value + sum((x - detach(x)) * g)`,
//! whose value is the core's exactly and whose gradient is `g` exactly.
//! It is correct everywhere, and costs the copies and a few elementwise
//! ops.
//!
//! # Errors
//!
//! [`Error::Loss`] carries the core's error, its text word for word; a
//! tensor of another float type is [`Error::DType`] naming the argument.

#![deny(missing_docs)]

mod backend;
mod host;
mod job;

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::{DType, Device, Tensor, TensorData, kind::Basic};
use classloss::Byol;
use classloss::{
    AngularMargin, ArcFace, Asymmetric, Bce, BceWithLogits, CenterLoss, CombinedMargin,
    Contrastive, CosFace, CosineEmbedding, CrammerSinger, CrossEntropy, Exponential,
    GeneralizedCrossEntropy, HardBootstrapping, HierarchicalCrossEntropy, Hinge, KlDivergence,
    LabelSmoothing, Ldam, LogitAdjusted, MultiLabelSoftMargin, MultiMargin, OhemCrossEntropy,
    OnCosines, OrdinalEmd, Poly1, SigmoidFocal, SoftBootstrapping, SoftMargin, SoftmaxFocal,
    Sparsemax, SymmetricCrossEntropy, Wasserstein,
};
use classloss_adapter_kit::{ScoresLoss, TwoInputLoss};
use ndarray::{Dimension, Ix1, Ix2, RemoveAxis};

pub use backend::release_spare_gradients;
// The op's plumbing: public because burn's backend-extension macro makes
// `Dispatch` implement `ClassLossBackend`, whose signatures name the
// others. Not an API: use `TensorLoss`.
#[doc(hidden)]
pub use backend::{ClassLossBackend, HostTensors};
#[doc(hidden)]
pub use job::{FromData, HostFloat, Job, Owned, ReadsTarget, View, ViewMut};

use job::{Scores, Two};

/// What a loss call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core's error, its text word for word.
    #[error(transparent)]
    Loss(#[from] classloss::Error),
    /// A tensor of a type the loss does not take.
    #[error("{what}: expected {expected}, got dtype {actual:?}")]
    DType {
        /// The argument, as the core names it.
        what: &'static str,
        /// What the loss takes there: `dtype F32`, `dtype F32 or F64`, `an
        /// integer dtype`.
        expected: String,
        /// The tensor's dtype.
        actual: DType,
    },
    /// The two inputs of a two-input loss on different devices, or with
    /// different gradient-checkpointing strategies (burn's dispatch would
    /// panic there).
    #[error("{what}: expected a tensor on {expected}, got one on {actual}")]
    Device {
        /// The second input, as the core names it.
        what: &'static str,
        /// The first input's device.
        expected: String,
        /// The second input's device.
        actual: String,
    },
    /// burn's host data did not match its own shape (not expected to
    /// happen).
    #[error("tensor data: {0}")]
    Layout(String),
}

/// Which way a loss call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The extension op where it serves the inputs' backend (Flex,
    /// NdArray), the host path elsewhere.
    Auto,
    /// Through `TensorData` on the host, whatever the backend.
    Host,
}

/// A classloss loss applied to burn tensors `I`: `Tensor<D>` for the
/// losses on scores, `(Tensor<2>, Tensor<2>)` for those on two inputs.
pub trait TensorLoss<I> {
    /// The loss value, a `[1]` tensor of the inputs' float type on their
    /// device, whose backward is the loss's exact gradient with respect to
    /// every input. Under [`classloss::Reduction::None`] it is the sum, as
    /// the core's `forward`; [`TensorLoss::loss_no_reduction`] gives the
    /// values themselves.
    fn loss<const T: usize, K: Basic>(
        &self,
        inputs: I,
        target: Tensor<T, K>,
    ) -> Result<Tensor<1>, Error> {
        self.apply(inputs, target.into_data(), Path::Auto)
    }

    /// The unreduced values, as burn's own `forward_no_reduction` and
    /// PyTorch's `reduction='none'`, for a loss on one tensor configured
    /// with [`classloss::Reduction::None`] (otherwise an error naming the
    /// option): a `Tensor<P>` of the core's `per_sample` shape (`(N)`,
    /// `(N, d1..dk)` for spatial cross-entropy, the input's shape for the
    /// elementwise losses; another `P` is the core's rank error). The
    /// backward scales each sample's gradient by its own upstream value.
    /// The two-input losses have none: their class weights' (or centers')
    /// gradient mixes the samples.
    fn loss_no_reduction<const P: usize, const T: usize, K: Basic>(
        &self,
        inputs: I,
        target: Tensor<T, K>,
    ) -> Result<Tensor<P>, Error> {
        self.call::<P>(inputs, target.into_data(), Path::Auto, true)
    }

    /// The same value and gradients through `TensorData` on the host: the
    /// path `loss` takes on a backend without the extension op (crate
    /// documentation, "Backends").
    fn loss_via_data<const T: usize, K: Basic>(
        &self,
        inputs: I,
        target: Tensor<T, K>,
    ) -> Result<Tensor<1>, Error> {
        self.apply(inputs, target.into_data(), Path::Host)
    }

    /// The loss on a target already read to the host, by `path`.
    fn apply(&self, inputs: I, target: TensorData, path: Path) -> Result<Tensor<1>, Error> {
        self.call::<1>(inputs, target, path, false)
    }

    /// The loss by `path`: reduced (`[1]`), or the unreduced values of
    /// rank `P`.
    fn call<const P: usize>(
        &self,
        inputs: I,
        target: TensorData,
        path: Path,
        unreduced: bool,
    ) -> Result<Tensor<P>, Error>;
}

/// Whether the extension op serves `device`'s backend.
fn extension_serves(device: &Device) -> bool {
    match device.clone().without_autodiff().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

/// A loss on one tensor: the extension op, or the host path.
fn on_scores<F, D, L, const N: usize, const P: usize>(
    loss: &L,
    x: Tensor<N>,
    target: TensorData,
    path: Path,
    unreduced: bool,
) -> Result<Tensor<P>, Error>
where
    F: HostFloat,
    D: Dimension,
    L: ScoresLoss<F, D> + ReadsTarget<F> + Sync,
{
    let mut job = Scores::<L, F, D>::new(loss, &target);
    if unreduced {
        job = job.unreduced(P);
    }
    let out = if path == Path::Auto && extension_serves(&x.device()) {
        let v = <Dispatch as ClassLossBackend>::classloss_one(x.into_dispatch(), &job);
        Tensor::from_dispatch(v)
    } else {
        host::run([x], &job)
    };
    job.finish(out)
}

/// A loss on two tensors: the extension op, or the host path.
fn on_two<F, L, const P: usize>(
    loss: &L,
    (a, b): (Tensor<2>, Tensor<2>),
    target: TensorData,
    path: Path,
    unreduced: bool,
) -> Result<Tensor<P>, Error>
where
    F: HostFloat,
    L: TwoInputLoss<F> + ReadsTarget<F> + Sync,
{
    if unreduced || P != 1 {
        return Err(Error::Loss(classloss::Error::InvalidOption {
            name: "reduction",
            value: format!("{:?}", loss.reduction()),
            expected: "a reduced loss: the two-input losses have no unreduced values here",
        }));
    }
    // burn's device equality ignores autodiff and checkpointing; mixing an
    // autodiff input with a plain one is fine, two strategies are not.
    let (da, db) = (a.device(), b.device());
    let (sa, sb) = (
        a.gradient_checkpointing_strategy(),
        b.gradient_checkpointing_strategy(),
    );
    if da != db || (sa.is_some() && sb.is_some() && sa != sb) {
        return Err(Error::Device {
            what: L::NAMES[1],
            expected: format!("{da:?} ({sa:?})"),
            actual: format!("{db:?} ({sb:?})"),
        });
    }
    let job = Two(Scores::<L, F, Ix2>::new(loss, &target));
    let out = if path == Path::Auto && extension_serves(&a.device()) {
        let v = <Dispatch as ClassLossBackend>::classloss_two(
            a.into_dispatch(),
            b.into_dispatch(),
            &job,
        );
        Tensor::from_dispatch(v)
    } else {
        host::run([a, b], &job)
    };
    job.0.finish(out)
}

/// Losses whose type fixes the float type and the input's rank.
macro_rules! typed_scores {
    ($($loss:ident => $dim:ty),* $(,)?) => {$(
        impl<F: HostFloat, const N: usize> TensorLoss<Tensor<N>> for $loss<F>
        where
            $loss<F>: ScoresLoss<F, $dim> + ReadsTarget<F> + Sync,
        {
            fn call<const P: usize>(&self, x: Tensor<N>, target: TensorData, path: Path, unreduced: bool) -> Result<Tensor<P>, Error> {
                on_scores::<F, $dim, Self, N, P>(self, x, target, path, unreduced)
            }
        }
    )*};
}

classloss_adapter_kit::with_typed_scores_losses!(typed_scores);

/// Losses whose type fixes the float type and the rank (any rank).
macro_rules! typed_any_rank {
    ($($loss:ident: $bound:ident),* $(,)?) => {$(
        impl<F: HostFloat, D: $bound + 'static, const N: usize> TensorLoss<Tensor<N>> for $loss<F, D>
        where
            $loss<F, D>: ScoresLoss<F, D> + ReadsTarget<F> + Sync,
        {
            fn call<const P: usize>(&self, x: Tensor<N>, target: TensorData, path: Path, unreduced: bool) -> Result<Tensor<P>, Error> {
                on_scores::<F, D, Self, N, P>(self, x, target, path, unreduced)
            }
        }
    )*};
}

classloss_adapter_kit::with_any_rank_losses!(typed_any_rank);

/// The float type of a loss that takes either: the first input's.
fn either_float(what: &'static str, dtype: DType) -> Result<DType, Error> {
    match dtype {
        DType::F32 | DType::F64 => Ok(dtype),
        actual => Err(Error::DType {
            what,
            expected: "dtype F32 or F64".into(),
            actual,
        }),
    }
}

/// A loss on `(N, C)` scores that takes either float type: in the
/// input's.
fn on_either_scores<L, const N: usize, const P: usize>(
    loss: &L,
    what: &'static str,
    x: Tensor<N>,
    target: TensorData,
    path: Path,
    unreduced: bool,
) -> Result<Tensor<P>, Error>
where
    L: ScoresLoss<f32, Ix2> + ScoresLoss<f64, Ix2> + ReadsTarget<f32> + ReadsTarget<f64> + Sync,
{
    match either_float(what, x.dtype())? {
        DType::F32 => on_scores::<f32, Ix2, L, N, P>(loss, x, target, path, unreduced),
        _ => on_scores::<f64, Ix2, L, N, P>(loss, x, target, path, unreduced),
    }
}

/// Losses on `(N, C)` scores that take either float type.
macro_rules! untyped_scores {
    ($($loss:ty: $what:literal),* $(,)?) => {$(
        impl<const N: usize> TensorLoss<Tensor<N>> for $loss {
            fn call<const P: usize>(
                &self,
                x: Tensor<N>,
                target: TensorData,
                path: Path,
                unreduced: bool,
            ) -> Result<Tensor<P>, Error> {
                on_either_scores(self, $what, x, target, path, unreduced)
            }
        }
    )*};
}

untyped_scores!(
    LabelSmoothing: "input",
    Sparsemax: "logits",
    Wasserstein: "logits",
    HierarchicalCrossEntropy: "logits",
    Byol: "predictions",
);

impl<L: AngularMargin + Sync, const N: usize> TensorLoss<Tensor<N>> for OnCosines<L> {
    fn call<const P: usize>(
        &self,
        x: Tensor<N>,
        target: TensorData,
        path: Path,
        unreduced: bool,
    ) -> Result<Tensor<P>, Error> {
        on_either_scores(self, "cosines", x, target, path, unreduced)
    }
}

/// Two-input losses, which take either float type.
macro_rules! two_inputs {
    ($($loss:ty),* $(,)?) => {$(
        impl TensorLoss<(Tensor<2>, Tensor<2>)> for $loss {
            fn call<const P: usize>(&self, inputs: (Tensor<2>, Tensor<2>), target: TensorData, path: Path, unreduced: bool) -> Result<Tensor<P>, Error> {
                let [name, _] = <Self as TwoInputLoss<f32>>::NAMES;
                match either_float(name, inputs.0.dtype())? {
                    DType::F32 => on_two::<f32, Self, P>(self, inputs, target, path, unreduced),
                    _ => on_two::<f64, Self, P>(self, inputs, target, path, unreduced),
                }
            }
        }
    )*};
}

classloss_adapter_kit::with_two_input_losses!(two_inputs);
