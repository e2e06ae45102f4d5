//! `ClassSharded<LinearCrossEntropy>` and `ClassSharded<AngularMarginHead>`:
//! the heads with their classes split across processes (threads here, on
//! the test group of `group.rs`; the MPI runs are tests/mpi) equal the
//! single-process heads on the whole weight, for every option, reduction
//! and chunk size, with even and uneven shards, an empty shard, shards in
//! another order than the ranks, and labels all in one shard; errors agree
//! across the processes.

use classloss::distributed::{ClassShard, ClassSharded, SingleProcess};
use classloss::{
    AngularMargin, AngularMarginHead, ArcFace, ClassTarget, Differentiable, Embeddings, Error,
    Float, LinearCrossEntropy, LinearGrad, LinearInput, Loss, OnSampledClasses, PartialFc,
    Reduction, SampledClasses, SampledEmbeddings,
};
use ndarray::{Array1, Array2, s};

use crate::angular_margin_head::{Kind, Results, kinds, results};

use crate::common::assert_close;
use crate::contract::{Case, Linear, check_contract};
use crate::group::{Member, on_threads};
use crate::linear_cross_entropy::{
    Batch, Opts, all_opts, assert_grads_close, batch, class_weights, losses,
};

/// What one process returns: the value, the per-sample values, the fused
/// value and the gradient.
type Outcome<F> = (F, Array1<F>, F, LinearGrad<F>);

/// The sharded head on `shards.len()` threads: rank `r` holds
/// `shards[r]`'s rows of the batch's weight and bias.
fn run_sharded<'t, F: Float>(
    head: &LinearCrossEntropy<F>,
    b: &Batch<F>,
    target: &(dyn Fn() -> ClassTarget<'t, F, ndarray::Ix2> + Sync),
    shards: &[ClassShard],
) -> Vec<Outcome<F>> {
    on_threads(shards.len(), |member: Member| {
        let shard = shards[member.rank];
        let sharded = ClassSharded::new(head.clone(), member, shard);
        let input = LinearInput {
            hidden: b.hidden.view(),
            weight: b.weight.slice(s![shard.range(), ..]),
            bias: Some(b.bias.slice(s![shard.range()])),
        };
        let value = sharded.forward(input, target()).unwrap();
        let per = sharded.per_sample(input, target()).unwrap();
        let (fused, grad) = sharded.forward_backward(input, target()).unwrap();
        (value, per, fused, grad)
    })
}

/// Shard layouts of `v` classes over `p` processes: the even split, one
/// with an empty shard and the classes in reverse rank order, and one
/// whose first shard holds all but `p - 1` classes.
fn layouts(v: usize, p: usize) -> Vec<Vec<ClassShard>> {
    let even: Vec<_> = (0..p).map(|r| ClassShard::even(v, r, p).unwrap()).collect();
    let mut out = vec![even];
    if p > 1 {
        // Rank 0 holds the last classes, rank 1 nothing, the others split
        // the rest in reverse order.
        let mut reverse = Vec::new();
        let mut end = v;
        for r in 0..p {
            let len = match r {
                1 => 0,
                _ => (v / p + 1).min(end),
            };
            let len = if r == p - 1 { end } else { len };
            reverse.push(ClassShard::new(end - len, len, v).unwrap());
            end -= len;
        }
        out.push(reverse);
        let big = v - (p - 1);
        let mut skewed = vec![ClassShard::new(0, big, v).unwrap()];
        skewed.extend((1..p).map(|r| ClassShard::new(big + r - 1, 1, v).unwrap()));
        out.push(skewed);
    }
    out
}

/// Compares every process's outcome with the single-process head's.
fn assert_matches<'t, F: Float>(
    what: &str,
    head: &LinearCrossEntropy<F>,
    b: &Batch<F>,
    target: &(dyn Fn() -> ClassTarget<'t, F, ndarray::Ix2> + Sync),
    shards: &[ClassShard],
    tol: f64,
) {
    let input = b.input(true);
    let want = head.forward(input, target()).unwrap();
    let want_per = head.per_sample(input, target()).unwrap();
    let (_, want_grad) = head.forward_backward(input, target()).unwrap();
    let got = run_sharded(head, b, target, shards);
    let first = &got[0];
    for (rank, ((value, per, fused, grad), shard)) in got.iter().zip(shards).enumerate() {
        let what = format!("{what} rank {rank} of {shards:?}");
        // The value is the same bits on every process.
        assert_eq!(value.to_bits64(), first.0.to_bits64(), "{what}: value");
        assert_eq!(fused.to_bits64(), value.to_bits64(), "{what}: fused value");
        assert_eq!(per, &first.1, "{what}: per-sample values");
        assert_eq!(grad.hidden, first.3.hidden, "{what}: d hidden");
        assert_close(&format!("{what} value"), &[*value], &[want], tol);
        assert_close(
            &format!("{what} per-sample"),
            per.as_slice().unwrap(),
            want_per.as_slice().unwrap(),
            tol,
        );
        let rows = shard.range();
        let local_want = LinearGrad {
            hidden: want_grad.hidden.clone(),
            weight: want_grad.weight.slice(s![rows.clone(), ..]).to_owned(),
            bias: want_grad
                .bias
                .as_ref()
                .map(|g| g.slice(s![rows]).to_owned()),
        };
        assert_grads_close(&what, grad, &local_want, tol);
    }
}

/// A float's bits, for comparing values across processes.
trait Bits {
    fn to_bits64(self) -> u64;
}

impl<F: Float> Bits for F {
    fn to_bits64(self) -> u64 {
        self.as_f64().to_bits()
    }
}

fn equals_the_single_process_head<F: Float>(tol: f64, opts: &[Opts], processes: &[usize]) {
    let (n, d, v) = (9, 4, 8);
    let b = batch::<F>(n, d, v, 41);
    let tokens = Array1::from_shape_fn(n, |i| F::lit([0.5, 2.0, 0.0, 1.0][i % 4]));
    for (k, &o) in opts.iter().enumerate() {
        for r in [Reduction::Mean, Reduction::Sum] {
            let (_, head) = losses::<F>(o, v, r);
            // Several chunks (uneven) and one chunk, in turn.
            let head = match k % 2 {
                0 => head.with_chunk_rows(4).unwrap(),
                _ => head,
            };
            let labels = b.labels(o);
            let plain = || ClassTarget::Labels(labels.into());
            let weighted = || ClassTarget::WeightedLabels {
                labels: labels.into(),
                weights: tokens.view(),
            };
            for &p in processes {
                for shards in layouts(v, p) {
                    let what = format!("{o:?} {r} p {p}");
                    assert_matches(&what, &head, &b, &plain, &shards, tol);
                    if k % 3 == 0 {
                        let what = format!("{what} token weights");
                        assert_matches(&what, &head, &b, &weighted, &shards, tol);
                    }
                }
            }
        }
    }
}

#[test]
fn equals_the_single_process_head_for_every_option_f64() {
    equals_the_single_process_head::<f64>(1e-12, &all_opts(), &[1, 2, 3]);
}

#[test]
fn equals_the_single_process_head_for_every_option_f32() {
    equals_the_single_process_head::<f32>(1e-5, &all_opts(), &[2, 3]);
}

/// Every label in the first shard: the other shards hold no target.
#[test]
fn labels_all_in_one_shard() {
    let (n, d, v) = (6, 3, 9);
    let mut b = batch::<f64>(n, d, v, 5);
    b.labels = Array1::from_shape_fn(n, |i| (i % 3) as i64);
    let labels = b.labels.clone();
    let target = || ClassTarget::Labels((&labels).into());
    for o in all_opts() {
        let (_, head) = losses::<f64>(o, v, Reduction::Mean);
        for shards in layouts(v, 3) {
            assert_matches(&format!("{o:?}"), &head, &b, &target, &shards, 1e-12);
        }
    }
}

/// Checks `results` (one per rank) against the expected messages.
fn assert_errors<T: std::fmt::Debug>(results: Vec<Result<T, Error>>, want: &[&str]) {
    for (rank, (r, w)) in results.into_iter().zip(want).enumerate() {
        let e = r.expect_err("an error");
        assert_eq!(e.to_string(), *w, "rank {rank}");
    }
}

const PEER: &str = "ClassSharded<LinearCrossEntropy>: expected every process of the group to succeed, got an error on 1 of 3";

#[test]
fn errors_agree_across_the_processes() {
    let (n, d, v) = (4, 3, 6);
    let b = batch::<f64>(n, d, v, 9);
    let head = LinearCrossEntropy::<f64>::new();
    let even: Vec<_> = (0..3).map(|r| ClassShard::even(v, r, 3).unwrap()).collect();
    let short = b.weight.slice(s![0..1, ..]).to_owned();
    let input = |shard: ClassShard| LinearInput {
        hidden: b.hidden.view(),
        weight: b.weight.slice(s![shard.range(), ..]),
        bias: None,
    };
    type Job<'j> = dyn Fn(usize, ClassShard, &ClassSharded<LinearCrossEntropy<f64>, Member>) -> Result<f64, Error>
        + Sync
        + 'j;
    let run = |shards: &[ClassShard], job: &Job<'_>| {
        on_threads(3, |member: Member| {
            let (rank, shard) = (member.rank, shards[member.rank]);
            job(rank, shard, &ClassSharded::new(head.clone(), member, shard))
        })
    };
    // Shards that overlap and leave a gap.
    let mut gap = even.clone();
    gap[1] = ClassShard::new(0, 2, v).unwrap();
    let mismatch = "shard: expected shards that tile the classes 0..6 without gaps or overlap, got [0..2 of 6, 0..2 of 6, 4..6 of 6] by rank";
    assert_errors(
        run(&gap, &|_, shard, s| s.forward(input(shard), &b.labels)),
        &[mismatch; 3],
    );
    // Another rank's labels differ.
    let mut other = b.labels.clone();
    other[0] = (other[0] + 1) % v as i64;
    let results = run(&even, &|rank, shard, s| {
        s.forward(input(shard), if rank == 2 { &other } else { &b.labels })
    });
    for r in results {
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                Error::GroupMismatch {
                    what: "replicated inputs",
                    ..
                }
            ),
            "{e}"
        );
    }
    // One rank passes a weight of the wrong rows: its own error, the
    // others stop with it.
    assert_errors(
        run(&even, &|rank, shard, s| {
            let input = if rank == 1 {
                LinearInput {
                    weight: short.view(),
                    ..input(shard)
                }
            } else {
                input(shard)
            };
            s.forward(input, &b.labels)
        }),
        &[PEER, "weight: expected shape [2, 3], got [1, 3]", PEER],
    );
    // A gradient asked for on one rank only.
    let results = run(&even, &|rank, shard, s| {
        if rank == 0 {
            s.forward_backward(input(shard), &b.labels).map(|(v, _)| v)
        } else {
            s.forward(input(shard), &b.labels)
        }
    });
    for r in results {
        let e = r.unwrap_err();
        assert!(
            matches!(e, Error::GroupMismatch { what: "grad", .. }),
            "{e}"
        );
    }
    // A label out of range: every process sees it.
    let mut bad = b.labels.clone();
    bad[2] = v as i64;
    let msg = "labels[2]: label 6 is out of range for 6 classes (expected 0..=5)";
    assert_errors(
        run(&even, &|_, shard, s| s.forward(input(shard), &bad)),
        &[msg; 3],
    );
}

/// A shard whose logits pass `f32`: that process reports the overflow,
/// the others stop with it. A NaN in one shard: that process passes the
/// NaN through (as the head alone would), the others stop.
#[test]
fn overflow_and_nan_on_one_shard() {
    let (n, d, v) = (3, 2, 6);
    let b = batch::<f32>(n, d, v, 3);
    let head = LinearCrossEntropy::<f32>::new();
    let even: Vec<_> = (0..3).map(|r| ClassShard::even(v, r, 3).unwrap()).collect();
    let mut huge = b.weight.clone();
    huge.row_mut(4).fill(3e38);
    let mut nan = b.weight.clone();
    nan[[2, 0]] = f32::NAN;
    let hidden = Array2::from_elem((n, d), 2.0_f32);
    let run = |weight: &Array2<f32>| {
        on_threads(3, |member: Member| {
            let shard = even[member.rank];
            let sharded = ClassSharded::new(head.clone(), member, shard);
            let input = LinearInput {
                hidden: hidden.view(),
                weight: weight.slice(s![shard.range(), ..]),
                bias: None,
            };
            sharded.forward_backward(input, &b.labels).map(|(v, _)| v)
        })
    };
    let results = run(&huge);
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), PEER);
    assert_eq!(results[1].as_ref().unwrap_err().to_string(), PEER);
    assert!(
        matches!(results[2], Err(Error::Overflow { what: "hidden", .. })),
        "{:?}",
        results[2]
    );
    let results = run(&nan);
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), PEER);
    assert!(results[1].as_ref().unwrap().is_nan());
    assert_eq!(results[2].as_ref().unwrap_err().to_string(), PEER);
}

#[test]
fn shards_are_checked_at_construction() {
    let msg = |r: Result<ClassShard, Error>| r.unwrap_err().to_string();
    assert_eq!(
        msg(ClassShard::new(0, 1, 0)),
        "option `classes`: expected an integer >= 1, got 0"
    );
    assert_eq!(
        msg(ClassShard::new(4, 3, 6)),
        "option `shard`: expected a range of rows within 0..classes, got 4..7"
    );
    assert_eq!(
        msg(ClassShard::even(6, 2, 2)),
        "option `rank`: expected a rank in 0..processes, processes >= 1, got 2 of 2 processes"
    );
    let shards: Vec<_> = (0..4)
        .map(|r| ClassShard::even(10, r, 4).unwrap())
        .collect();
    let lens: Vec<_> = shards.iter().map(ClassShard::len).collect();
    assert_eq!(lens, [3, 3, 2, 2]);
    assert_eq!(shards[3].range(), 8..10);
    // More processes than classes: empty shards at the end.
    assert!(ClassShard::even(2, 3, 4).unwrap().is_empty());
}

/// On one process the sharded head is the head: the shared contract.
#[test]
fn contract() {
    for (k, o) in all_opts().into_iter().enumerate().step_by(2) {
        let (n, d, v) = (6, 3, 5);
        let b = batch::<f64>(n, d, v, 71 + k as u64);
        let labels = b.labels(o).clone();
        let (_, head) = losses::<f64>(o, v, Reduction::Mean);
        let sharded = ClassSharded::new(
            head.with_chunk_rows(1 + k % 3).unwrap(),
            SingleProcess,
            ClassShard::new(0, v, v).unwrap(),
        );
        let w = class_weights::<f64>(v);
        let divisor: f64 = labels
            .iter()
            .filter(|y| **y >= 0)
            .map(|&y| if o.weights { w[y as usize] } else { 1.0 })
            .sum();
        let args = Linear {
            hidden: b.hidden,
            weight: b.weight,
            bias: b.bias,
            labels,
            token_weights: None,
        };
        check_contract(
            &sharded,
            &Case::new(format!("{o:?}"), args).divisor(divisor),
        );
    }
}

/// The angular head of `loss` on `shards.len()` threads: each process's
/// value, per-sample values and gradient (its rows of `d weight`).
fn run_angular<F: Float, L: AngularMargin + Clone + Send + Sync>(
    head: &AngularMarginHead<L>,
    e: &Array2<F>,
    w: &Array2<F>,
    y: &Array1<usize>,
    shards: &[ClassShard],
) -> Vec<Results<F>> {
    on_threads(shards.len(), |member: Member| {
        let shard = shards[member.rank];
        let sharded = ClassSharded::new(head.clone(), member, shard);
        let input = Embeddings {
            embeddings: e.view(),
            weight: w.slice(s![shard.range(), ..]),
        };
        let value = sharded.forward(input, y).unwrap();
        let per = sharded.per_sample(input, y).unwrap();
        let (fused, grad) = sharded.forward_backward(input, y).unwrap();
        assert_eq!(fused.to_bits64(), value.to_bits64(), "fused value");
        (value, per, grad)
    })
}

fn assert_angular_matches<F: Float, L: AngularMargin + Clone + Send + Sync>(
    what: &str,
    head: &AngularMarginHead<L>,
    (e, w, y): (&Array2<F>, &Array2<F>, &Array1<usize>),
    shards: &[ClassShard],
    tol: f64,
) {
    let (want, want_per, want_grad) = results(head, e, w, y);
    let got = run_angular(head, e, w, y, shards);
    let first = &got[0];
    for (rank, ((value, per, grad), shard)) in got.iter().zip(shards).enumerate() {
        let what = format!("{what} rank {rank} of {shards:?}");
        assert_eq!(value.to_bits64(), first.0.to_bits64(), "{what}: value");
        assert_eq!(per, &first.1, "{what}: per-sample values");
        assert_eq!(grad.embeddings, first.2.embeddings, "{what}: d embeddings");
        assert_close(&format!("{what} value"), &[*value], &[want], tol);
        assert_close(
            &format!("{what} per-sample"),
            per.as_slice().unwrap(),
            want_per.as_slice().unwrap(),
            tol,
        );
        let flat = |x: &Array2<F>| x.iter().copied().collect::<Vec<_>>();
        assert_close(
            &format!("{what} d embeddings"),
            &flat(&grad.embeddings),
            &flat(&want_grad.embeddings),
            tol,
        );
        let rows = want_grad.weight.slice(s![shard.range(), ..]).to_owned();
        assert_close(
            &format!("{what} d weight"),
            &flat(&grad.weight),
            &flat(&rows),
            tol,
        );
    }
}

fn angular_equals_the_single_process_head<F: Float>(tol: f64, processes: &[usize]) {
    let (n, c, d) = (9, 8, 5);
    let (e, w, y) = crate::angular_margin_head::batch(n, c, d, 21);
    let (e, w) = (e.mapv(F::lit), w.mapv(F::lit));
    for r in [Reduction::Mean, Reduction::Sum] {
        for (k, kind) in kinds(r).into_iter().enumerate() {
            for &p in processes {
                for shards in layouts(c, p) {
                    let what = format!("{kind:?} {r} p {p}");
                    let chunk = [None, Some(4), Some(2)][k % 3];
                    macro_rules! check {
                        ($loss:expr) => {{
                            let mut head = AngularMarginHead::new($loss.clone());
                            if let Some(rows) = chunk {
                                head = head.with_chunk_rows(rows).unwrap();
                            }
                            assert_angular_matches(&what, &head, (&e, &w, &y), &shards, tol);
                        }};
                    }
                    match &kind {
                        Kind::Arc(l) => check!(l),
                        Kind::Cos(l) => check!(l),
                        Kind::Combined(l) => check!(l),
                    }
                }
            }
        }
    }
}

#[test]
fn angular_equals_the_single_process_head_f64() {
    angular_equals_the_single_process_head::<f64>(1e-12, &[1, 2, 3]);
}

#[test]
fn angular_equals_the_single_process_head_f32() {
    angular_equals_the_single_process_head::<f32>(1e-5, &[2, 3]);
}

/// Every label in the last shard, and one class only.
#[test]
fn angular_labels_in_one_shard_and_a_single_class() {
    let (n, c, d) = (6, 9, 4);
    let (e, w, _) = crate::angular_margin_head::batch(n, c, d, 8);
    let y = Array1::from_shape_fn(n, |i| 7 + i % 2);
    let head = AngularMarginHead::new(classloss::ArcFace::new());
    for shards in layouts(c, 3) {
        assert_angular_matches(
            "labels in the last shard",
            &head,
            (&e, &w, &y),
            &shards,
            1e-12,
        );
    }
    let one = w.slice(s![0..1, ..]).to_owned();
    let zeros = Array1::zeros(n);
    let shards = [
        ClassShard::new(0, 1, 1).unwrap(),
        ClassShard::new(1, 0, 1).unwrap(),
    ];
    assert_angular_matches("one class", &head, (&e, &one, &zeros), &shards, 1e-12);
}

/// A zero row in one shard: that process names it by its global row, the
/// others stop with it.
#[test]
fn angular_errors_name_the_global_row() {
    let (n, c, d) = (4, 6, 3);
    let (e, mut w, y) = crate::angular_margin_head::batch(n, c, d, 4);
    w.row_mut(4).fill(0.0);
    let head = AngularMarginHead::new(classloss::CosFace::new());
    let shards: Vec<_> = (0..3).map(|r| ClassShard::even(c, r, 3).unwrap()).collect();
    let results = on_threads(3, |member: Member| {
        let shard = shards[member.rank];
        let input = Embeddings {
            embeddings: e.view(),
            weight: w.slice(s![shard.range(), ..]),
        };
        ClassSharded::new(head.clone(), member, shard).forward(input, &y)
    });
    let peer = "ClassSharded<AngularMarginHead>: expected every process of the group to succeed, got an error on 1 of 3";
    assert_eq!(results[0].as_ref().unwrap_err().to_string(), peer);
    assert_eq!(results[1].as_ref().unwrap_err().to_string(), peer);
    assert_eq!(
        results[2].as_ref().unwrap_err().to_string(),
        "weight[4]: expected a row with a nonzero norm, got 0"
    );
}

/// On one process the sharded angular head is the head: the contract.
#[test]
fn angular_contract() {
    let (e, w, labels) = (0..)
        .map(|seed| crate::angular_margin_head::batch(6, 4, 5, seed))
        .find(|(e, w, y)| crate::angular_margin_head::away_from_kinks(e, w, y, 1e-3))
        .unwrap();
    let c = w.nrows();
    let head = AngularMarginHead::new(classloss::ArcFace::new().with_margin(0.3).unwrap())
        .with_chunk_rows(4)
        .unwrap();
    let sharded = ClassSharded::new(head, SingleProcess, ClassShard::new(0, c, c).unwrap());
    let args = crate::contract::Angular { e, w, labels };
    check_contract(&sharded, &Case::new("ArcFace".to_string(), args));
}

/// Partial FC on shards: each process samples its own shard; the sharded
/// head on the samples equals the single-process head on their union
/// (value, d embeddings, and d weight scattered back to the classes).
#[test]
fn partial_fc_on_shards_equals_the_head_on_the_union_of_the_samples() {
    let (n, c, d) = (8, 12, 4);
    let (e, w, y) = crate::angular_margin_head::batch(n, c, d, 31);
    let pfc = PartialFc::new(0.5).unwrap();
    let head = AngularMarginHead::new(ArcFace::new().with_margin(0.3).unwrap())
        .with_chunk_rows(3)
        .unwrap();
    for p in [1, 2, 3] {
        for shards in layouts(c, p) {
            let what = format!("{shards:?}");
            let samples: Vec<SampledClasses> = shards
                .iter()
                .map(|s| pfc.sample_shard(&y, *s, 7).unwrap())
                .collect();
            let mut union: Vec<usize> = (shards.iter().zip(&samples))
                .flat_map(|(s, k)| k.indices().iter().map(move |j| s.offset() + j))
                .collect();
            union.sort_unstable();
            let whole = SampledClasses::new(union, c).unwrap();
            let single = OnSampledClasses::new(head.clone());
            let input = SampledEmbeddings {
                embeddings: e.view(),
                weight: w.view(),
                classes: &whole,
            };
            let (want, want_grad) = single.forward_backward(input, &y).unwrap();
            let mut want_w = Array2::zeros((c, d));
            whole
                .scatter(want_grad.weight.view(), want_w.view_mut())
                .unwrap();
            let got = on_threads(p, |member: Member| {
                let (shard, sample) = (shards[member.rank], &samples[member.rank]);
                let sharded = ClassSharded::new(OnSampledClasses::new(head.clone()), member, shard);
                let input = SampledEmbeddings {
                    embeddings: e.view(),
                    weight: w.slice(s![shard.range(), ..]),
                    classes: sample,
                };
                sharded.forward_backward(input, &y).unwrap()
            });
            let mut got_w = Array2::zeros((c, d));
            for ((shard, sample), (value, grad)) in shards.iter().zip(&samples).zip(&got) {
                assert_close(&format!("{what} value"), &[*value], &[want], 1e-12);
                assert_eq!(value.to_bits(), got[0].0.to_bits(), "{what}: value");
                let flat = |x: &Array2<f64>| x.iter().copied().collect::<Vec<_>>();
                assert_close(
                    &format!("{what} d embeddings"),
                    &flat(&grad.embeddings),
                    &flat(&want_grad.embeddings),
                    1e-12,
                );
                sample
                    .scatter(grad.weight.view(), got_w.slice_mut(s![shard.range(), ..]))
                    .unwrap();
            }
            let flat = |x: &Array2<f64>| x.iter().copied().collect::<Vec<_>>();
            assert_close(
                &format!("{what} d weight"),
                &flat(&got_w),
                &flat(&want_w),
                1e-12,
            );
        }
    }
}

/// A shard's sample: its positives, `floor(r len)` classes, its own draw
/// (another shard with the same seed draws otherwise), none when empty.
#[test]
fn partial_fc_samples_each_shard_alone() {
    let labels = Array1::from(vec![3_i64, 61, 3, 99, 40]);
    let pfc = PartialFc::new(0.2).unwrap();
    let first = ClassShard::new(0, 50, 100).unwrap();
    let second = ClassShard::new(50, 50, 100).unwrap();
    let a = pfc.sample_shard(&labels, first, 9).unwrap();
    let b = pfc.sample_shard(&labels, second, 9).unwrap();
    assert_eq!((a.len(), a.classes()), (10, 50));
    assert_eq!((b.len(), b.classes()), (10, 50));
    assert!([3, 40].iter().all(|&c| a.position(c).is_some()));
    assert!([11, 49].iter().all(|&c| b.position(c).is_some()));
    let negatives = |s: &SampledClasses, pos: &[usize]| -> Vec<usize> {
        (s.indices().iter().copied())
            .filter(|c| !pos.contains(c))
            .collect()
    };
    assert_ne!(negatives(&a, &[3, 40]), negatives(&b, &[11, 49]));
    assert_eq!(pfc.sample_shard(&labels, first, 9).unwrap(), a);
    let empty = ClassShard::new(100, 0, 100).unwrap();
    assert!(pfc.sample_shard(&labels, empty, 9).unwrap().is_empty());
    let err = pfc.sample_shard(&labels, ClassShard::new(0, 50, 60).unwrap(), 9);
    assert_eq!(
        err.unwrap_err().to_string(),
        "labels[1]: label 61 is out of range for 60 classes (expected 0..=59)"
    );
}
