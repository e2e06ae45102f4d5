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

use classloss::distributed::{ClassShard, ClassSharded, Collective, DataParallel, Mpi, ReduceOp};
use classloss::{
    AngularMargin, AngularMarginHead, ArcFace, ClassTarget, CombinedMargin, CosFace, CrossEntropy,
    Differentiable, Embeddings, Error, Float, LinearCrossEntropy, LinearInput, Loss,
    OnSampledClasses, PartialFc, Reduction, SampledClasses, SampledEmbeddings,
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
    sharded_head::<f64>(&group, 1e-12);
    sharded_head::<f32>(&group, 1e-5);
    sharded_errors(&group);
    sharded_angular::<f64>(&group, 1e-12);
    sharded_angular::<f32>(&group, 1e-5);
    sharded_partial_fc(&group);
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

type World = Mpi<mpi::topology::SimpleCommunicator>;

/// The head's options, one set per case (every one ignores `-100`): none;
/// class weights and smoothing; z-loss with a soft cap; all of them.
fn sharded_heads<F: Float>(v: usize, reduction: Reduction) -> Vec<(String, LinearCrossEntropy<F>)> {
    let weights = Array1::from_shape_fn(v, |c| F::lit(0.5 + 0.25 * (c % 5) as f64));
    // PyTorch's default ignored label, on every head.
    let base = LinearCrossEntropy::<F>::new()
        .with_reduction(reduction)
        .with_ignore_index(-100);
    let weighted = base
        .clone()
        .with_class_weight(weights.clone())
        .unwrap()
        .with_label_smoothing(0.2)
        .unwrap();
    let capped = base
        .clone()
        .with_z_loss(1e-2)
        .unwrap()
        .with_softcap(Some(3.0))
        .unwrap()
        .with_chunk_rows(3)
        .unwrap();
    let all = weighted
        .clone()
        .with_z_loss(1e-2)
        .unwrap()
        .with_softcap(Some(3.0))
        .unwrap()
        .with_chunk_rows(4)
        .unwrap();
    vec![
        ("plain".into(), base),
        ("weights, smoothing".into(), weighted),
        ("z-loss, soft cap, chunks of 3".into(), capped),
        ("every option, chunks of 4".into(), all),
    ]
}

/// This process's shard in three layouts: even; uneven, rank 0 holding
/// all but `P - 1` classes; and with rank 1 empty.
fn shard_layouts(v: usize, rank: usize, size: usize) -> Vec<(&'static str, ClassShard)> {
    let even = ClassShard::even(v, rank, size).unwrap();
    let big = v - (size - 1);
    let skewed = if rank == 0 {
        ClassShard::new(0, big, v).unwrap()
    } else {
        ClassShard::new(big + rank - 1, 1, v).unwrap()
    };
    // Rank 1 holds nothing, rank 0 the first classes, the others the rest.
    let others = size.saturating_sub(1).max(1);
    let per = v.div_ceil(others);
    let reverse = match rank {
        1 => ClassShard::new(0, 0, v).unwrap(),
        0 if size > 1 => ClassShard::new(0, per.min(v), v).unwrap(),
        _ if size == 1 => even,
        r => {
            let end = v - per * (r - 2);
            let start = end.saturating_sub(per).max(per.min(v));
            ClassShard::new(start, end - start, v).unwrap()
        }
    };
    let mut out = vec![("even", even), ("skewed", skewed)];
    if size > 1 {
        out.push(("rank 1 empty", reverse));
    }
    out
}

/// The class-sharded head equals the single-process head on the whole
/// weight, for every option, reduction and layout, with labels spread and
/// all in one shard: the value and per-sample values (the same bits on
/// every rank), d hidden (whole, on every rank), and this shard's rows of
/// d weight and d bias.
fn sharded_head<F: Float>(group: &World, rel: f64) {
    let (n, d, v) = (11, 5, 10);
    let (rank, size) = (group.rank(), group.size());
    let h: Array2<F> = filled(n, d, 7, 1.5);
    let w: Array2<F> = filled(v, d, 8, 1.0);
    let b: Array1<F> = Array1::from_shape_fn(v, |c| F::lit(0.5 * noise(9, c)));
    let mut spread = Array1::from_shape_fn(n, |i| ((noise(10, i) + 1.0) * 5.0) as i64 % v as i64);
    spread[3] = -100;
    let first = Array1::from_shape_fn(n, |i| (i % 2) as i64);
    let tokens = Array1::from_shape_fn(n, |i| F::lit([1.0, 0.5, 2.0, 0.0][i % 4]));
    for reduction in [Reduction::Mean, Reduction::Sum] {
        for (name, head) in sharded_heads::<F>(v, reduction) {
            for (labels_name, labels) in [("spread", &spread), ("all in the first shard", &first)] {
                for weighted in [false, true] {
                    let target = || match weighted {
                        true => ClassTarget::WeightedLabels {
                            labels: labels.into(),
                            weights: tokens.view(),
                        },
                        false => ClassTarget::Labels(labels.into()),
                    };
                    let whole = LinearInput {
                        hidden: h.view(),
                        weight: w.view(),
                        bias: Some(b.view()),
                    };
                    let want_per = head.per_sample(whole, target()).unwrap();
                    let (want, want_grad) = head.forward_backward(whole, target()).unwrap();
                    for (layout, shard) in shard_layouts(v, rank, size) {
                        let what = format!(
                            "{reduction:?} {name}, labels {labels_name}, token weights {weighted}, {layout} shards, rank {rank}"
                        );
                        let sharded = ClassSharded::new(head.clone(), group, shard);
                        let part = LinearInput {
                            hidden: h.view(),
                            weight: w.slice(s![shard.range(), ..]),
                            bias: Some(b.slice(s![shard.range()])),
                        };
                        let per = sharded.per_sample(part, target()).unwrap();
                        let (value, grad) = sharded.forward_backward(part, target()).unwrap();
                        check_close(&format!("{what}: value"), &[value], &[want], rel);
                        same_on_every_rank(group, &format!("{what}: value"), value.as_f64());
                        check_close(
                            &format!("{what}: per-sample"),
                            per.as_slice().unwrap(),
                            want_per.as_slice().unwrap(),
                            rel,
                        );
                        for (i, p) in per.iter().enumerate() {
                            same_on_every_rank(
                                group,
                                &format!("{what}: per-sample {i}"),
                                p.as_f64(),
                            );
                        }
                        check_close(
                            &format!("{what}: d hidden"),
                            grad.hidden.as_slice().unwrap(),
                            want_grad.hidden.as_slice().unwrap(),
                            rel,
                        );
                        let rows = shard.range();
                        let want_w = want_grad.weight.slice(s![rows.clone(), ..]).to_owned();
                        check_close(
                            &format!("{what}: d weight"),
                            grad.weight.as_slice().unwrap(),
                            want_w.as_slice().unwrap(),
                            rel,
                        );
                        let want_b = want_grad.bias.as_ref().unwrap().slice(s![rows]).to_owned();
                        check_close(
                            &format!("{what}: d bias"),
                            grad.bias.as_ref().unwrap().as_slice().unwrap(),
                            want_b.as_slice().unwrap(),
                            rel,
                        );
                    }
                }
            }
        }
    }
}

/// A weight of the wrong rows on the last process: its own error there,
/// `PeerFailed` elsewhere; shards that do not tile: the same error on
/// every process.
fn sharded_errors(group: &World) {
    let (n, d, v) = (4, 3, 7);
    let (rank, size) = (group.rank(), group.size());
    let h: Array2<f64> = filled(n, d, 11, 1.0);
    let w: Array2<f64> = filled(v, d, 12, 1.0);
    let y = Array1::from(vec![0_i64, 3, 6, 2]);
    let shard = ClassShard::even(v, rank, size).unwrap();
    let last = rank + 1 == size;
    let rows = if last { 0..1 } else { shard.range() };
    let input = LinearInput {
        hidden: h.view(),
        weight: w.slice(s![rows, ..]),
        bias: None,
    };
    let sharded = ClassSharded::new(LinearCrossEntropy::<f64>::new(), group, shard);
    let result = sharded.forward(input, &y);
    if last && shard.len() != 1 {
        assert!(
            matches!(result, Err(Error::ShapeMismatch { what: "weight", .. })),
            "{result:?}"
        );
    } else if size > 1 {
        assert_eq!(
            result,
            Err(Error::PeerFailed {
                what: "ClassSharded<LinearCrossEntropy>",
                failed: 1,
                processes: size
            })
        );
    }
    // Every process claims the whole head: the shards overlap (with two
    // processes or more).
    let whole = ClassShard::new(0, v, v).unwrap();
    let input = LinearInput {
        hidden: h.view(),
        weight: w.view(),
        bias: None,
    };
    let result =
        ClassSharded::new(LinearCrossEntropy::<f64>::new(), group, whole).forward(input, &y);
    if size > 1 {
        assert!(
            matches!(result, Err(Error::GroupMismatch { what: "shard", .. })),
            "{result:?}"
        );
    } else {
        assert!(result.is_ok());
    }
}

/// The class-sharded angular head (ArcFace, CosFace, the combined margin;
/// chunks of 3 and the default) equals the single-process head: value and
/// per-sample values (the same bits on every rank), d embeddings, and this
/// shard's rows of d weight.
fn sharded_angular<F: Float>(group: &World, rel: f64) {
    let (n, d, v) = (10, 4, 9);
    let e: Array2<F> = filled(n, d, 21, 1.5);
    let w: Array2<F> = filled(v, d, 22, 1.0);
    let spread = Array1::from_shape_fn(n, |i| ((noise(23, i) + 1.0) * 4.5) as usize % v);
    let first = Array1::from_shape_fn(n, |i| i % 2);
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let arc = ArcFace::new()
            .with_margin(0.4)
            .unwrap()
            .with_reduction(reduction);
        let cos = CosFace::new()
            .with_scale(16.0)
            .unwrap()
            .with_reduction(reduction);
        let combined = CombinedMargin::new()
            .with_margins(1.1, 0.3, 0.1)
            .unwrap()
            .with_reduction(reduction);
        for labels in [&spread, &first] {
            for chunk in [None, Some(3)] {
                angular_case(group, &arc, (&e, &w, labels), chunk, rel);
                angular_case(group, &cos, (&e, &w, labels), chunk, rel);
                angular_case(group, &combined, (&e, &w, labels), chunk, rel);
            }
        }
    }
}

fn angular_case<F: Float, L: AngularMargin + Clone + std::fmt::Debug>(
    group: &World,
    loss: &L,
    (e, w, y): (&Array2<F>, &Array2<F>, &Array1<usize>),
    chunk: Option<usize>,
    rel: f64,
) {
    let (rank, size) = (group.rank(), group.size());
    let mut head = AngularMarginHead::new(loss.clone());
    if let Some(rows) = chunk {
        head = head.with_chunk_rows(rows).unwrap();
    }
    let whole = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    let want_per = head.per_sample(whole, y).unwrap();
    let (want, want_grad) = head.forward_backward(whole, y).unwrap();
    for (layout, shard) in shard_layouts(w.nrows(), rank, size) {
        let what = format!("{loss:?} chunk {chunk:?}, {layout} shards, rank {rank}");
        let sharded = ClassSharded::new(head.clone(), group, shard);
        let part = Embeddings {
            embeddings: e.view(),
            weight: w.slice(s![shard.range(), ..]),
        };
        let per = sharded.per_sample(part, y).unwrap();
        let (value, grad) = sharded.forward_backward(part, y).unwrap();
        check_close(&format!("{what}: value"), &[value], &[want], rel);
        same_on_every_rank(group, &format!("{what}: value"), value.as_f64());
        check_close(
            &format!("{what}: per-sample"),
            per.as_slice().unwrap(),
            want_per.as_slice().unwrap(),
            rel,
        );
        check_close(
            &format!("{what}: d embeddings"),
            grad.embeddings.as_slice().unwrap(),
            want_grad.embeddings.as_slice().unwrap(),
            rel,
        );
        let want_w = want_grad.weight.slice(s![shard.range(), ..]).to_owned();
        check_close(
            &format!("{what}: d weight"),
            grad.weight.as_slice().unwrap(),
            want_w.as_slice().unwrap(),
            rel,
        );
    }
}

/// Partial FC on shards (each rank samples its own, even shards): the
/// sharded head equals the single-process head on the union of the
/// samples, which every rank draws again for the check.
fn sharded_partial_fc(group: &World) {
    let (n, d, v) = (10, 4, 23);
    let (rank, size) = (group.rank(), group.size());
    let e: Array2<f64> = filled(n, d, 31, 1.5);
    let w: Array2<f64> = filled(v, d, 32, 1.0);
    let y = Array1::from_shape_fn(n, |i| ((noise(33, i) + 1.0) * 11.5) as usize % v);
    let pfc = PartialFc::new(0.3).unwrap();
    let head = AngularMarginHead::new(CosFace::new())
        .with_chunk_rows(4)
        .unwrap();
    let shards: Vec<_> = (0..size)
        .map(|r| ClassShard::even(v, r, size).unwrap())
        .collect();
    let samples: Vec<_> = (shards.iter())
        .map(|s| pfc.sample_shard(&y, *s, 5).unwrap())
        .collect();
    let mut union: Vec<usize> = (shards.iter().zip(&samples))
        .flat_map(|(s, k)| k.indices().iter().map(move |j| s.offset() + j))
        .collect();
    union.sort_unstable();
    let whole = SampledClasses::new(union, v).unwrap();
    let input = SampledEmbeddings {
        embeddings: e.view(),
        weight: w.view(),
        classes: &whole,
    };
    let (want, want_grad) = OnSampledClasses::new(head.clone())
        .forward_backward(input, &y)
        .unwrap();
    let mut want_w = Array2::zeros((v, d));
    whole
        .scatter(want_grad.weight.view(), want_w.view_mut())
        .unwrap();
    let (shard, sample) = (shards[rank], &samples[rank]);
    let sharded = ClassSharded::new(OnSampledClasses::new(head), group, shard);
    let part = SampledEmbeddings {
        embeddings: e.view(),
        weight: w.slice(s![shard.range(), ..]),
        classes: sample,
    };
    let (value, grad) = sharded.forward_backward(part, &y).unwrap();
    let what = format!("Partial FC on shards, rank {rank}");
    check_close(&format!("{what}: value"), &[value], &[want], 1e-12);
    same_on_every_rank(group, &format!("{what}: value"), value);
    check_close(
        &format!("{what}: d embeddings"),
        grad.embeddings.as_slice().unwrap(),
        want_grad.embeddings.as_slice().unwrap(),
        1e-12,
    );
    let mut got_w = Array2::zeros((shard.len(), d));
    sample
        .scatter(grad.weight.view(), got_w.view_mut())
        .unwrap();
    let want_rows = want_w.slice(s![shard.range(), ..]).to_owned();
    check_close(
        &format!("{what}: d weight"),
        got_w.as_slice().unwrap(),
        want_rows.as_slice().unwrap(),
        1e-12,
    );
}
