//! classloss's losses as candle autograd ops.
//!
//! Every differentiable classloss loss, configured as in the core crate
//! (`SoftmaxFocal::new().with_gamma(2.0)`, every option kept), applied to
//! candle [`Tensor`]s: the value is a rank-0 tensor whose backward is
//! classloss's exact gradient, so `loss.backward()` carries it to the
//! model's parameters.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use classloss::SoftmaxFocal;
//! use classloss_candle::TensorLoss;
//!
//! let logits = Var::from_slice(&[2.0_f32, 0.5, -1.0, 0.1, 0.2, 0.3], (2, 3), &Device::Cpu)?;
//! let labels = Tensor::new(&[0_u32, 2], &Device::Cpu)?;
//! let focal = SoftmaxFocal::<f32>::new().with_gamma(2.0)?;
//! let value = focal.loss(&logits, &labels)?;
//! let grads = value.backward()?;
//! let g = grads.get(&logits).expect("a gradient for the logits");
//! assert_eq!(g.dims(), &[2, 3]);
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
//! Labels may be `u8`, `u32`, `i16`, `i32` or `i64` tensors. Float
//! tensors must have the loss's float type (`f32` or `f64`; losses without
//! one in their type take either); a 0/1 target of an integer type is cast
//! by the caller (`to_dtype`), since cross-entropy reads an integer target
//! as labels. Tensors must be on the CPU. Targets get no gradient, as in
//! the core, even when candle tracks them.
//!
//! # How the gradient is carried
//!
//! When candle will ask for a gradient (an input is a [`candle_core::Var`]
//! or comes from a tracked op), the forward runs the core's fused
//! value-and-gradient call once and keeps the gradient; the backward only
//! multiplies it by the upstream gradient (not even that when the upstream
//! gradient is 1, as for `loss.backward()`). Otherwise the forward computes
//! the value alone. Inputs are read in place, with any strides candle
//! hands over. The gradient is written into a contiguous tensor that an
//! earlier call of the same shape has finished with, when there is one
//! (a large gradient written into new memory costs a page fault per page:
//! three times the loss itself at 1024 x 32000);
//! [`release_spare_gradients`] frees those kept. The value is a scalar, except under
//! [`classloss::Reduction::None`]: the losses on one tensor then return
//! their unreduced values, as PyTorch's `reduction='none'` (the shape of
//! the core's `per_sample`: `(N)`, `(N, d1..dk)` for spatial
//! cross-entropy, the input's shape for the elementwise losses), and the
//! backward scales each sample's gradient by its own upstream value. The
//! two-input losses return the sum under `None`, as the core's `forward`:
//! their class weights' (or centers') gradient mixes the samples.
//!
//! # Errors
//!
//! The core's errors keep their text, word for word, inside
//! `candle_core::Error::Wrapped`. A tensor of another float type is
//! `UnexpectedDType` naming the argument; a tensor off the CPU is an error
//! that says to move it.

#![deny(missing_docs)]

mod ops;
mod spare;
mod storage;

use std::marker::PhantomData;
use std::sync::OnceLock;

use candle_core::{DType, Error, Result, Tensor, WithDType};
use classloss::{
    AngularMargin, ArcFace, Asymmetric, Bce, BceWithLogits, CenterLoss, CombinedMargin,
    Contrastive, CosFace, CosineEmbedding, CrammerSinger, CrossEntropy, Exponential, Float,
    GeneralizedCrossEntropy, HardBootstrapping, HierarchicalCrossEntropy, Hinge, KlDivergence,
    LabelSmoothing, Ldam, LogitAdjusted, MultiLabelSoftMargin, MultiMargin, OhemCrossEntropy,
    OnCosines, OrdinalEmd, Poly1, SigmoidFocal, SoftBootstrapping, SoftMargin, SoftmaxFocal,
    Sparsemax, SymmetricCrossEntropy, Wasserstein,
};
use ndarray::{Dimension, Ix1, Ix2, RemoveAxis};
use storage::dtype_error;

pub use classloss::Byol;
use classloss_adapter_kit::{ScoresLoss, TwoInputLoss};
pub use spare::release_spare_gradients;
pub use storage::{FromStorage, ReadsTarget};

use ops::{ScoresOp, TwoInputOp};

/// A classloss loss applied to candle tensors.
pub trait TensorLoss {
    /// The differentiable tensors the loss takes: `&Tensor` for the losses
    /// on scores, `(&Tensor, &Tensor)` for those on two inputs.
    type Inputs<'a>;

    /// The loss value, a rank-0 tensor of the inputs' float type (the
    /// unreduced values under `Reduction::None`: crate documentation), whose
    /// backward is the loss's exact gradient with respect to every input.
    fn loss(&self, inputs: Self::Inputs<'_>, target: &Tensor) -> Result<Tensor>;
}

/// The error for a tensor off the CPU (named as the core names it).
fn on_cpu(what: &'static str, t: &Tensor) -> Result<()> {
    if t.device().is_cpu() {
        Ok(())
    } else {
        Err(Error::Msg(format!(
            "classloss: {what} is on {:?}; classloss runs on the CPU: move it with .to_device(&Device::Cpu)",
            t.device().location()
        )))
    }
}

/// Checks what every op needs before candle sees it: the float type and
/// the device.
fn check<F: WithDType>(inputs: &[(&'static str, &Tensor)], target: &Tensor) -> Result<()> {
    for &(what, t) in inputs {
        on_cpu(what, t)?;
        if t.dtype() != F::DTYPE {
            return Err(dtype_error(what, F::DTYPE, t.dtype()));
        }
    }
    on_cpu("target", target)
}

/// A loss on one tensor, as the op that carries its gradient.
fn on_scores<F, D, L>(loss: &L, x: &Tensor, target: &Tensor) -> Result<Tensor>
where
    F: Float + WithDType,
    D: Dimension + 'static,
    L: ScoresLoss<F, D> + ReadsTarget<F> + Clone + Send + Sync + 'static,
{
    check::<F>(&[("input", x)], target)?;
    x.apply_op2(
        target,
        ScoresOp {
            loss: loss.clone(),
            want_grad: x.track_op(),
            grad: OnceLock::new(),
            _types: PhantomData::<fn() -> (F, D)>,
        },
    )
}

/// A loss on two tensors, as the op that carries both gradients.
fn on_two<F, L>(loss: &L, (a, b): (&Tensor, &Tensor), target: &Tensor) -> Result<Tensor>
where
    F: Float + WithDType,
    L: TwoInputLoss<F> + ReadsTarget<F> + Clone + Send + Sync + 'static,
{
    let [na, nb] = L::NAMES;
    check::<F>(&[(na, a), (nb, b)], target)?;
    a.apply_op3(
        b,
        target,
        TwoInputOp {
            loss: loss.clone(),
            track: [a.track_op(), b.track_op()],
            grads: OnceLock::new(),
            _types: PhantomData::<fn() -> F>,
        },
    )
}

/// The float type of a loss that takes either: the first input's.
fn either_float(what: &'static str, t: &Tensor) -> Result<DType> {
    match t.dtype() {
        d @ (DType::F32 | DType::F64) => Ok(d),
        d => Err(Error::Msg(format!(
            "classloss: {what}: expected dtype F32 or F64, got {d:?}"
        ))),
    }
}

/// Losses whose type fixes the float type and the input's rank.
macro_rules! typed_scores {
    ($($loss:ident => $dim:ty),* $(,)?) => {$(
        impl<F: Float + WithDType> TensorLoss for $loss<F>
        where
            $loss<F>: ScoresLoss<F, $dim> + ReadsTarget<F> + Clone + Send + Sync + 'static,
        {
            type Inputs<'a> = &'a Tensor;
            fn loss(&self, x: &Tensor, target: &Tensor) -> Result<Tensor> {
                on_scores::<F, $dim, Self>(self, x, target)
            }
        }
    )*};
}

classloss_adapter_kit::with_typed_scores_losses!(typed_scores);

/// Losses whose type fixes the float type and the rank (any rank).
macro_rules! typed_any_rank {
    ($($loss:ident: $bound:ident),* $(,)?) => {$(
        impl<F: Float + WithDType, D: $bound + 'static> TensorLoss for $loss<F, D>
        where
            $loss<F, D>: ScoresLoss<F, D> + ReadsTarget<F> + Clone + Send + Sync + 'static,
        {
            type Inputs<'a> = &'a Tensor;
            fn loss(&self, x: &Tensor, target: &Tensor) -> Result<Tensor> {
                on_scores::<F, D, Self>(self, x, target)
            }
        }
    )*};
}

classloss_adapter_kit::with_any_rank_losses!(typed_any_rank);

/// Losses on `(N, C)` scores that take either float type.
macro_rules! untyped_scores {
    ($($loss:ty: $what:literal),* $(,)?) => {$(
        impl TensorLoss for $loss {
            type Inputs<'a> = &'a Tensor;
            fn loss(&self, x: &Tensor, target: &Tensor) -> Result<Tensor> {
                match either_float($what, x)? {
                    DType::F32 => on_scores::<f32, Ix2, Self>(self, x, target),
                    _ => on_scores::<f64, Ix2, Self>(self, x, target),
                }
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

impl<L: AngularMargin + Clone + Send + Sync + 'static> TensorLoss for OnCosines<L> {
    type Inputs<'a> = &'a Tensor;
    fn loss(&self, x: &Tensor, target: &Tensor) -> Result<Tensor> {
        match either_float("cosines", x)? {
            DType::F32 => on_scores::<f32, Ix2, Self>(self, x, target),
            _ => on_scores::<f64, Ix2, Self>(self, x, target),
        }
    }
}

/// Two-input losses that take either float type.
macro_rules! two_inputs {
    ($($loss:ty),* $(,)?) => {$(
        impl TensorLoss for $loss {
            type Inputs<'a> = (&'a Tensor, &'a Tensor);
            fn loss(&self, inputs: (&Tensor, &Tensor), target: &Tensor) -> Result<Tensor> {
                let [name, _] = <Self as TwoInputLoss<f32>>::NAMES;
                match either_float(name, inputs.0)? {
                    DType::F32 => on_two::<f32, Self>(self, inputs, target),
                    _ => on_two::<f64, Self>(self, inputs, target),
                }
            }
        }
    )*};
}

classloss_adapter_kit::with_two_input_losses!(two_inputs);
