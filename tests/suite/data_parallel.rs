//! `DataParallel`: a batch split across processes gives the value and the
//! gradients of the loss on the whole batch. The processes are threads
//! here, on a test collective whose all-reduce adds the slices in rank
//! order (the MPI runs are tests/mpi, under `mpirun`).

use classloss::distributed::{DataParallel, SingleProcess};
use classloss::{
    BceWithLogits, CrossEntropy, Differentiable, Error, LinearCrossEntropy, LinearInput, Loss,
    Reduction,
};
use ndarray::{Array1, Array2, Axis, s};

use crate::common::{matrix, random_array, random_labels, vector};
use crate::group::on_threads;

/// Uneven row ranges of `n` rows over `p` processes (the first gets fewer).
fn splits(n: usize, p: usize) -> Vec<std::ops::Range<usize>> {
    let mut bounds = vec![0];
    for k in 1..p {
        bounds.push(n * k / p - usize::from(k == 1 && n > p));
    }
    bounds.push(n);
    bounds.windows(2).map(|w| w[0]..w[1]).collect()
}

fn assert_close(what: &str, a: &[f64], b: &[f64], rel: f64) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rel * (1.0 + y.abs()),
            "{what}[{i}]: {x} against {y}"
        );
    }
}

/// Cross-entropy with class weights, smoothing and an ignored label, on
/// 1, 2 and 3 processes, each reduction: value on every process and the
/// gradient rows equal the whole batch's.
#[test]
fn cross_entropy_split_across_processes_equals_the_whole_batch() {
    let (n, c) = (11, 5);
    let x = matrix(random_array(&[n, c], 1, 3.0));
    let mut y = vector(random_labels(&[n], c, 2)).mapv(|v| v as i64);
    y[4] = -100;
    let weights = Array1::from(vec![0.5, 2.0, 1.0, 0.0, 1.5]);
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let loss = CrossEntropy::<f64>::new()
            .with_weight(weights.clone())
            .unwrap()
            .with_label_smoothing(0.2)
            .unwrap()
            .with_ignore_index(-100)
            .with_reduction(reduction);
        let (want, want_grad) = loss.forward_backward(x.view(), &y).unwrap();
        for p in [1, 2, 3] {
            let parts = splits(n, p);
            let results = on_threads(p, |member| {
                let rows = parts[member.rank].clone();
                let dp = DataParallel::new(loss.clone(), member);
                let xs = x.slice(s![rows.clone(), ..]);
                dp.forward_backward(xs, y.slice(s![rows])).unwrap()
            });
            let grads: Vec<_> = results.iter().map(|(_, g)| g.view()).collect();
            let grad = ndarray::concatenate(Axis(0), &grads).unwrap();
            for (rank, (value, _)) in results.iter().enumerate() {
                assert_close(
                    &format!("{reduction:?} value on rank {rank} of {p}"),
                    &[*value],
                    &[want],
                    1e-13,
                );
            }
            assert_close(
                &format!("{reduction:?} gradient, {p} processes"),
                grad.as_slice().unwrap(),
                want_grad.as_slice().unwrap(),
                1e-13,
            );
        }
    }
}

/// A process whose samples all have class weight 0 has a local divisor of
/// 0, yet label smoothing gives its rows a gradient under the global mean.
#[test]
fn a_process_with_nothing_counted_still_gets_its_gradient() {
    let x = matrix(random_array(&[6, 3], 3, 2.0));
    let y = Array1::from(vec![2_i64, 2, 0, 1, 0, 1]);
    let loss = CrossEntropy::<f64>::new()
        .with_weight(Array1::from(vec![1.0, 2.0, 0.0]))
        .unwrap()
        .with_label_smoothing(0.3)
        .unwrap();
    let (want, want_grad) = loss.forward_backward(x.view(), &y).unwrap();
    let parts = [0..2, 2..6];
    let results = on_threads(2, |member| {
        let rows = parts[member.rank].clone();
        let dp = DataParallel::new(loss.clone(), member);
        dp.forward_backward(x.slice(s![rows.clone(), ..]), y.slice(s![rows]))
            .unwrap()
    });
    assert!(results[0].1.iter().any(|&g| g != 0.0));
    let grads: Vec<_> = results.iter().map(|(_, g)| g.view()).collect();
    let grad = ndarray::concatenate(Axis(0), &grads).unwrap();
    assert_close("value", &[results[0].0, results[1].0], &[want, want], 1e-13);
    assert_close(
        "gradient",
        grad.as_slice().unwrap(),
        want_grad.as_slice().unwrap(),
        1e-13,
    );
}

/// The fused head: hidden rows split, the weight and the bias replicated,
/// their gradients all-reduced by the caller (summed here).
#[test]
fn the_fused_head_split_by_tokens_equals_the_whole_batch() {
    let (n, d, v) = (9, 4, 7);
    let h = matrix(random_array(&[n, d], 4, 1.0));
    let w = matrix(random_array(&[v, d], 5, 1.0));
    let b = vector(random_array(&[v], 6, 1.0));
    let y = vector(random_labels(&[n], v, 7)).mapv(|c| c as i64);
    let head = LinearCrossEntropy::<f64>::new()
        .with_label_smoothing(0.1)
        .unwrap();
    let input = LinearInput {
        hidden: h.view(),
        weight: w.view(),
        bias: Some(b.view()),
    };
    let (want, want_grad) = head.forward_backward(input, &y).unwrap();
    let parts = splits(n, 3);
    let results = on_threads(3, |member| {
        let rows = parts[member.rank].clone();
        let dp = DataParallel::new(head.clone(), member);
        let part = LinearInput {
            hidden: h.slice(s![rows.clone(), ..]),
            weight: w.view(),
            bias: Some(b.view()),
        };
        dp.forward_backward(part, y.slice(s![rows])).unwrap()
    });
    let hidden: Vec<_> = results.iter().map(|(_, g)| g.hidden.view()).collect();
    let hidden = ndarray::concatenate(Axis(0), &hidden).unwrap();
    let weight = results
        .iter()
        .fold(Array2::zeros((v, d)), |acc, (_, g)| acc + &g.weight);
    for (value, _) in &results {
        assert_close("value", &[*value], &[want], 1e-13);
    }
    assert_close(
        "d hidden",
        hidden.as_slice().unwrap(),
        want_grad.hidden.as_slice().unwrap(),
        1e-13,
    );
    assert_close(
        "d weight (summed)",
        weight.as_slice().unwrap(),
        want_grad.weight.as_slice().unwrap(),
        1e-13,
    );
}

/// f32 and a loss of another family: BCE with logits, mean over elements.
#[test]
fn bce_with_logits_in_f32_split_across_processes() {
    let x = matrix(random_array(&[7, 3], 8, 3.0)).mapv(|v| v as f32);
    let t = matrix(random_array(&[7, 3], 9, 1.0)).mapv(|v| (v > 0.0) as u8 as f32);
    let loss = BceWithLogits::<f32>::new();
    let (want, want_grad) = loss.forward_backward(x.view(), t.view()).unwrap();
    let parts = splits(7, 2);
    let results = on_threads(2, |member| {
        let rows = parts[member.rank].clone();
        let dp = DataParallel::new(loss.clone(), member);
        dp.forward_backward(x.slice(s![rows.clone(), ..]), t.slice(s![rows.clone(), ..]))
            .unwrap()
    });
    let grads: Vec<_> = results.iter().map(|(_, g)| g.view()).collect();
    let grad = ndarray::concatenate(Axis(0), &grads).unwrap();
    let wide = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<_>>();
    assert_close("value", &[results[0].0 as f64], &[want as f64], 1e-6);
    assert_close(
        "gradient",
        &wide(grad.as_slice().unwrap()),
        &wide(want_grad.as_slice().unwrap()),
        1e-6,
    );
}

/// A bad input on one process: it returns its own error, the others
/// `PeerFailed`, and no process waits forever.
#[test]
fn an_error_on_one_process_stops_every_process() {
    let x = matrix(random_array(&[4, 3], 10, 1.0));
    let results = on_threads(3, |member| {
        let rank = member.rank;
        let dp = DataParallel::new(CrossEntropy::<f64>::new(), member);
        let y = if rank == 1 {
            Array1::from(vec![0_i64, 7, 1, 2])
        } else {
            Array1::from(vec![0_i64, 1, 1, 2])
        };
        dp.forward(x.view(), &y)
    });
    assert!(matches!(results[1], Err(Error::LabelOutOfRange { .. })));
    for rank in [0, 2] {
        assert_eq!(
            results[rank],
            Err(Error::PeerFailed {
                what: "DataParallel",
                failed: 1,
                processes: 3
            })
        );
        assert_eq!(
            results[rank].as_ref().unwrap_err().to_string(),
            "DataParallel: expected every process of the group to succeed, got an error on 1 of 3"
        );
    }
}

/// On one process it is the loss itself, bit for bit, per-sample values
/// included.
#[test]
fn on_a_single_process_it_is_the_loss() {
    let x = matrix(random_array(&[5, 4], 11, 2.0));
    let y = vector(random_labels(&[5], 4, 12)).mapv(|v| v as i64);
    let loss = CrossEntropy::<f64>::new()
        .with_label_smoothing(0.1)
        .unwrap();
    let dp = DataParallel::new(loss.clone(), SingleProcess);
    assert_eq!(
        dp.forward_backward(x.view(), &y).unwrap(),
        loss.forward_backward(x.view(), &y).unwrap()
    );
    let none = loss.with_reduction(Reduction::None);
    let dp = DataParallel::new(none.clone(), SingleProcess);
    assert_eq!(
        dp.per_sample(x.view(), &y).unwrap(),
        none.per_sample(x.view(), &y).unwrap()
    );
}
