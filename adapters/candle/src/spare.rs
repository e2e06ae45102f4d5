//! Gradient tensors kept from one call for the next of the same shape.
//!
//! A large gradient written into newly allocated memory costs a page
//! fault per 4 KiB page on the first write (at 1024 x 32000 f32, writing
//! into new memory took 45 ms where the same call into reused memory took
//! 15 ms). So when an op is dropped (the loss tensor and everything
//! computed from it are gone, so no backward can ask for its gradient
//! again), its gradient tensors come back here, and the next forward of
//! the same dtype and shape writes into one in place.
//!
//! This is sound because candle (0.11) keeps nothing of a gradient an op's
//! backward returns: it adds it into the input's own gradient, a new
//! tensor. The test `an_earlier_steps_gradients_survive_the_next_step`
//! fails if a candle release changes that.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Device, InplaceOp1, Layout, Result, Tensor, WithDType};

/// At most this many tensors are kept (the oldest goes first): enough for
/// the two gradients of a two-input loss at two batch sizes.
const KEEP: usize = 4;

static SPARE: Mutex<Vec<Tensor>> = Mutex::new(Vec::new());

/// The spare tensors, whatever a panicking thread left behind (a tensor
/// is only pushed or removed under the lock, never left half-written).
fn spare() -> std::sync::MutexGuard<'static, Vec<Tensor>> {
    SPARE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A contiguous CPU tensor of `F` and `dims` whose contents will be
/// overwritten: a spare one, or a new one.
pub(crate) fn take<F: WithDType>(dims: &[usize]) -> Result<Tensor> {
    let found = {
        let mut spare = spare();
        let at = spare
            .iter()
            .position(|t| t.dtype() == F::DTYPE && t.dims() == dims);
        at.map(|i| spare.remove(i))
    };
    match found {
        Some(t) => Ok(t),
        None => Tensor::zeros(dims, F::DTYPE, &Device::Cpu),
    }
}

/// Keeps a gradient tensor no op will hand out again.
pub(crate) fn give(t: Tensor) {
    let mut spare = spare();
    if spare.len() == KEEP {
        spare.remove(0);
    }
    spare.push(t);
}

/// Frees the gradient tensors kept for the next call (at most four, each
/// the size of a loss input): for a program that has finished training
/// and wants the memory back. Later calls allocate again.
pub fn release_spare_gradients() {
    spare().clear();
}

/// `f` on the data of `t` (a contiguous CPU tensor of `F` from [`take`]),
/// mutable in place.
pub(crate) fn write<F: WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&mut [F]) -> Result<R>,
) -> Result<R> {
    let op = Write {
        f: RefCell::new(Some(f)),
        out: RefCell::new(None),
        _f: std::marker::PhantomData::<fn(&mut [F])>,
    };
    t.inplace_op1(&op)?;
    op.out.into_inner().unwrap_or_else(|| {
        Err(candle_core::Error::Msg(
            "classloss: the gradient tensor was not written".into(),
        ))
    })
}

/// [`write`] as candle's in-place op.
struct Write<G, R, F> {
    f: RefCell<Option<G>>,
    out: RefCell<Option<Result<R>>>,
    _f: std::marker::PhantomData<fn(&mut [F])>,
}

impl<F: WithDType, R, G: FnOnce(&mut [F]) -> Result<R>> InplaceOp1 for Write<G, R, F> {
    fn name(&self) -> &'static str {
        "classloss-gradient"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let dtype = storage.dtype();
        let data: Option<&mut dyn Any> = match storage {
            CpuStorage::F32(v) => Some(v),
            CpuStorage::F64(v) => Some(v),
            _ => None,
        };
        let data = data.and_then(|d| d.downcast_mut::<Vec<F>>()).ok_or(
            candle_core::Error::UnexpectedDType {
                msg: "gradient",
                expected: F::DTYPE,
                got: dtype,
            },
        )?;
        let data = &mut data[layout.start_offset()..][..layout.shape().elem_count()];
        if let Some(f) = self.f.borrow_mut().take() {
            *self.out.borrow_mut() = Some(f(data));
        }
        Ok(())
    }
}
