//! The distributed losses on real MPI processes (feature `mpi`). Run under
//! `mpirun`, as `.ci/run` does:
//!
//! ```sh
//! cargo test --features mpi --test mpi --no-run   # prints the executable
//! mpirun -np 2 target/debug/deps/mpi-<hash>
//! mpirun -np 3 --oversubscribe target/debug/deps/mpi-<hash>
//! ```
//!
//! Every process computes the whole batch alone as well, so each checks
//! its own part against the single-process result; a failed check panics,
//! which makes `mpirun` fail. Run without `mpirun`, it is one process.

use classloss::distributed::{Collective, DataParallel, Mpi, ReduceOp};
use classloss::{
    CrossEntropy, Differentiable, Error, Float, LinearCrossEntropy, LinearInput, Loss, Reduction,
};
use ndarray::{Array1, Array2, s};

fn main() {
    let universe = mpi::initialize().expect("MPI initializes once");
    let group = Mpi::new(universe.world());
    let (rank, size) = (group.rank(), group.size());
    collectives(&group);
    cross_entropy::<f64>(&group, 1e-12);
    cross_entropy::<f32>(&group, 1e-5);
    fused_head(&group);
    errors(&group);
    if rank == 0 {
        println!("mpi: every check passed on {size} process(es)");
    }
}

/// A deterministic value in [-1, 1) for entry `i` of stream `seed`.
fn noise(seed: u64, i: usize) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64 + 1)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 29;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn filled<F: Float>(rows: usize, cols: usize, seed: u64, scale: f64) -> Array2<F> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        F::lit(scale * noise(seed, i * cols + j))
    })
}

/// This process's rows of `n`: uneven (rank 0 gets the fewest).
fn my_rows(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let bound = |k: usize| {
        if k == 0 || k == size {
            k * n / size
        } else {
            k * n / size - 1
        }
    };
    bound(rank)..bound(rank + 1)
}

fn check_close<F: Float>(what: &str, got: &[F], want: &[F], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64());
        assert!(
            (g - w).abs() <= rel * (1.0 + w.abs()),
            "{what}[{i}]: {g} against {w}"
        );
    }
}

/// The value is the same bits on every process (MPI does not promise it
/// of an all-reduce; the largest and the smallest over the ranks agree).
fn same_on_every_rank(group: &Mpi<mpi::topology::SimpleCommunicator>, what: &str, value: f64) {
    let mut extremes = [value, -value];
    group.all_reduce_f64(ReduceOp::Max, &mut extremes);
    assert_eq!(
        extremes[0], -extremes[1],
        "{what}: the ranks disagree (largest {}, smallest {})",
        extremes[0], -extremes[1]
    );
}

fn collectives(group: &Mpi<mpi::topology::SimpleCommunicator>) {
    let (rank, size) = (group.rank() as f64, group.size() as f64);
    let mut v = [rank, -rank, 1.0];
    group.all_reduce_f64(ReduceOp::Sum, &mut v);
    assert_eq!(
        v,
        [size * (size - 1.0) / 2.0, -size * (size - 1.0) / 2.0, size]
    );
    let mut m = [rank as f32, -(rank as f32)];
    group.all_reduce_f32(ReduceOp::Max, &mut m);
    assert_eq!(m, [size as f32 - 1.0, 0.0]);
}

/// Cross-entropy with class weights, smoothing and an ignored label, mean
/// and sum: the value on every process and this process's gradient rows.
fn cross_entropy<F: Float>(group: &Mpi<mpi::topology::SimpleCommunicator>, rel: f64) {
    let (n, c) = (13, 6);
    let x: Array2<F> = filled(n, c, 1, 3.0);
    let mut y = Array1::from_shape_fn(n, |i| ((noise(2, i) + 1.0) * 3.0) as i64 % c as i64);
    y[5] = -100;
    let weights = Array1::from_shape_fn(c, |k| F::lit(0.5 + k as f64 / 4.0));
    let rows = my_rows(n, group.rank(), group.size());
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let loss = CrossEntropy::<F>::new()
            .with_weight(weights.clone())
            .unwrap()
            .with_label_smoothing(0.1)
            .unwrap()
            .with_ignore_index(-100)
            .with_reduction(reduction);
        let (want, want_grad) = loss.forward_backward(x.view(), &y).unwrap();
        let dp = DataParallel::new(loss, group);
        let (value, grad) = dp
            .forward_backward(x.slice(s![rows.clone(), ..]), y.slice(s![rows.clone()]))
            .unwrap();
        let what = format!("{reduction:?} cross-entropy, rank {}", group.rank());
        check_close(&format!("{what} value"), &[value], &[want], rel);
        same_on_every_rank(group, &format!("{what} value"), value.as_f64());
        let want_rows = want_grad.slice(s![rows.clone(), ..]).to_owned();
        check_close(
            &format!("{what} gradient"),
            grad.as_slice().unwrap(),
            want_rows.as_slice().unwrap(),
            rel,
        );
    }
}

/// The fused head, tokens split: d hidden rows local, d weight summed over
/// the processes.
fn fused_head(group: &Mpi<mpi::topology::SimpleCommunicator>) {
    let (n, d, v) = (10, 4, 9);
    let h: Array2<f64> = filled(n, d, 3, 1.0);
    let w: Array2<f64> = filled(v, d, 4, 1.0);
    let y = Array1::from_shape_fn(n, |i| ((noise(5, i) + 1.0) * 4.5) as i64 % v as i64);
    let head = LinearCrossEntropy::<f64>::new().with_z_loss(1e-3).unwrap();
    let whole = LinearInput {
        hidden: h.view(),
        weight: w.view(),
        bias: None,
    };
    let (want, want_grad) = head.forward_backward(whole, &y).unwrap();
    let rows = my_rows(n, group.rank(), group.size());
    let part = LinearInput {
        hidden: h.slice(s![rows.clone(), ..]),
        weight: w.view(),
        bias: None,
    };
    let dp = DataParallel::new(head, group);
    let (value, mut grad) = dp
        .forward_backward(part, y.slice(s![rows.clone()]))
        .unwrap();
    check_close("head value", &[value], &[want], 1e-12);
    same_on_every_rank(group, "head value", value);
    let want_rows = want_grad.hidden.slice(s![rows, ..]).to_owned();
    check_close(
        "head d hidden",
        grad.hidden.as_slice().unwrap(),
        want_rows.as_slice().unwrap(),
        1e-12,
    );
    group.all_reduce_f64(ReduceOp::Sum, grad.weight.as_slice_mut().unwrap());
    check_close(
        "head d weight (all-reduced)",
        grad.weight.as_slice().unwrap(),
        want_grad.weight.as_slice().unwrap(),
        1e-12,
    );
}

/// A label out of range on the last process: its own error there,
/// `PeerFailed` elsewhere, and every process returns.
fn errors(group: &Mpi<mpi::topology::SimpleCommunicator>) {
    let x: Array2<f64> = filled(3, 4, 6, 1.0);
    let last = group.rank() + 1 == group.size();
    let y = Array1::from(vec![0_i64, if last { 9 } else { 1 }, 2]);
    let dp = DataParallel::new(CrossEntropy::<f64>::new(), group);
    let result = dp.forward(x.view(), &y);
    if last {
        assert!(
            matches!(result, Err(Error::LabelOutOfRange { .. })),
            "{result:?}"
        );
    } else {
        assert_eq!(
            result,
            Err(Error::PeerFailed {
                what: "DataParallel",
                failed: 1,
                processes: group.size()
            })
        );
    }
}
