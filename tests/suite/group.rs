//! A test double for a process group: `P` threads that all-reduce
//! through shared slots, adding the slices in rank order (the product's
//! transport is MPI; its runs are tests/mpi, under `mpirun`).

use std::sync::{Arc, Barrier, Mutex};

use classloss::distributed::{Collective, ReduceOp};

/// `P` threads that all-reduce through shared slots.
struct Group {
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

pub struct Member {
    group: Arc<Group>,
    pub rank: usize,
    size: usize,
}

impl Member {
    fn reduce(&self, op: ReduceOp, values: &mut [f64], round: impl Fn(f64) -> f64) {
        self.group.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.group.barrier.wait();
        {
            let slots = self.group.slots.lock().unwrap();
            for (j, v) in values.iter_mut().enumerate() {
                let mut acc = slots[0][j];
                for slot in &slots[1..] {
                    acc = match op {
                        ReduceOp::Max => acc.max(slot[j]),
                        ReduceOp::Sum => round(acc + slot[j]),
                    };
                }
                *v = acc;
            }
        }
        // Nobody writes the next call's slot before everyone has read.
        self.group.barrier.wait();
    }
}

impl Collective for Member {
    fn size(&self) -> usize {
        self.size
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn all_reduce_f32(&self, op: ReduceOp, values: &mut [f32]) {
        let mut wide: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        self.reduce(op, &mut wide, |x| x as f32 as f64);
        for (v, w) in values.iter_mut().zip(wide) {
            *v = w as f32;
        }
    }
    fn all_reduce_f64(&self, op: ReduceOp, values: &mut [f64]) {
        self.reduce(op, values, |x| x);
    }
}

/// Runs `job(member)` on `p` threads, one per rank, and returns the
/// results in rank order.
pub fn on_threads<T: Send>(p: usize, job: impl Fn(Member) -> T + Sync) -> Vec<T> {
    let group = Arc::new(Group {
        slots: Mutex::new(vec![Vec::new(); p]),
        barrier: Barrier::new(p),
    });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..p)
            .map(|rank| {
                let member = Member {
                    group: Arc::clone(&group),
                    rank,
                    size: p,
                };
                let job = &job;
                scope.spawn(move || job(member))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
