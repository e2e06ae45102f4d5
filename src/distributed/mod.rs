//! Losses across processes: the collectives they need ([`Collective`],
//! with [`SingleProcess`] and, behind the `mpi` feature, `Mpi`) and
//! [`DataParallel`], any loss over a batch split across processes.
//!
//! Nothing here starts processes or owns a transport: the caller starts
//! its processes (`mpirun -np P ...`) and hands a communicator in.

mod collective;
mod data_parallel;
#[cfg(feature = "mpi")]
mod mpi;

pub use crate::head::sharded::{ClassShard, ClassSharded};
pub(crate) use collective::all_reduce_floats;
pub use collective::{Collective, ReduceOp, SingleProcess};
pub use data_parallel::DataParallel;
#[cfg(feature = "mpi")]
pub use mpi::Mpi;
