//! The collectives the distributed losses need, and nothing more: the
//! process count, this process's rank, and element-wise all-reduces (max
//! and sum) of float slices, in place.
//!
//! [`SingleProcess`] is the one-process implementation (every reduce is the
//! identity), always built; `Mpi`, behind the `mpi` feature,
//! runs them on MPI through the `mpi` crate (rsmpi). A caller with another
//! transport (a framework's process group, say) implements [`Collective`]
//! for it.

/// An element-wise reduction across processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The largest value (MPI_MAX).
    Max,
    /// The sum (MPI_SUM).
    Sum,
}

/// A group of processes that reduce slices together: every process calls
/// the same collectives in the same order, with slices of the same length.
///
/// The all-reduces overwrite `values` on every process with the
/// element-wise reduction over the processes' slices. They should give
/// every process the same bits, so that the processes' copies of a
/// replicated value agree exactly. MPI does not promise it, but Open
/// MPI's all-reduce gives it here, and `tests/mpi` checks the values the
/// ranks return against each other.
pub trait Collective {
    /// The number of processes, `P >= 1`.
    fn size(&self) -> usize;
    /// This process's rank, `0..P`.
    fn rank(&self) -> usize;
    /// Reduces `values` (`f32`) across the processes, in place.
    fn all_reduce_f32(&self, op: ReduceOp, values: &mut [f32]);
    /// Reduces `values` (`f64`) across the processes, in place.
    fn all_reduce_f64(&self, op: ReduceOp, values: &mut [f64]);
}

impl<C: Collective + ?Sized> Collective for &C {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn all_reduce_f32(&self, op: ReduceOp, values: &mut [f32]) {
        (**self).all_reduce_f32(op, values)
    }
    fn all_reduce_f64(&self, op: ReduceOp, values: &mut [f64]) {
        (**self).all_reduce_f64(op, values)
    }
}

/// One process: size 1, rank 0, every all-reduce leaves its slice as it
/// is. The distributed losses on it compute what the plain losses do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn size(&self) -> usize {
        1
    }
    fn rank(&self) -> usize {
        0
    }
    fn all_reduce_f32(&self, _: ReduceOp, _: &mut [f32]) {}
    fn all_reduce_f64(&self, _: ReduceOp, _: &mut [f64]) {}
}

/// All-reduces a slice of the crate's float type `F`: an `f32` slice as
/// `f32` (half the bytes of `f64`), an `f64` one as itself. Both
/// conversions are exact.
pub(crate) fn all_reduce_floats<F: crate::Float, C: Collective + ?Sized>(
    collective: &C,
    op: ReduceOp,
    values: &mut [F],
) {
    if std::mem::size_of::<F>() == std::mem::size_of::<f32>() {
        let mut wire: Vec<f32> = values.iter().map(|v| v.as_f64() as f32).collect();
        collective.all_reduce_f32(op, &mut wire);
        for (v, w) in values.iter_mut().zip(wire) {
            *v = F::lit(f64::from(w));
        }
    } else {
        let mut wire: Vec<f64> = values.iter().map(|v| v.as_f64()).collect();
        collective.all_reduce_f64(op, &mut wire);
        for (v, w) in values.iter_mut().zip(wire) {
            *v = F::lit(w);
        }
    }
}
