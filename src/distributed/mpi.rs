//! [`Collective`] on MPI, through the `mpi` crate (rsmpi 0.8) and the
//! system's MPI library (feature `mpi`).

use mpi::collective::SystemOperation;
use mpi::traits::{Communicator, CommunicatorCollectives};

use super::collective::{Collective, ReduceOp};

/// The processes of an MPI communicator (`universe.world()`, or a split of
/// it), as a [`Collective`]. Each all-reduce is one `MPI_Allreduce` of the
/// slice (copied aside first: rsmpi has no in-place all-reduce).
///
/// ```no_run
/// use classloss::distributed::{DataParallel, Mpi};
/// use classloss::CrossEntropy;
///
/// let universe = mpi::initialize().expect("MPI starts once per process");
/// let loss = DataParallel::new(CrossEntropy::<f32>::new(), Mpi::new(universe.world()));
/// ```
#[derive(Debug)]
pub struct Mpi<C> {
    comm: C,
}

impl<C: Communicator> Mpi<C> {
    /// The processes of `comm`.
    pub fn new(comm: C) -> Self {
        Self { comm }
    }

    /// The communicator.
    pub fn communicator(&self) -> &C {
        &self.comm
    }
}

fn system_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Max => SystemOperation::max(),
        ReduceOp::Sum => SystemOperation::sum(),
    }
}

impl<C: Communicator> Collective for Mpi<C> {
    fn size(&self) -> usize {
        self.comm.size() as usize
    }
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }
    fn all_reduce_f32(&self, op: ReduceOp, values: &mut [f32]) {
        let send = values.to_vec();
        self.comm.all_reduce_into(&send[..], values, system_op(op));
    }
    fn all_reduce_f64(&self, op: ReduceOp, values: &mut [f64]) {
        let send = values.to_vec();
        self.comm.all_reduce_into(&send[..], values, system_op(op));
    }
}
