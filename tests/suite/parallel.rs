//! The results do not depend on the number of threads, and the fast paths
//! (blocked rows, vectorized kernels) agree with a plain scalar reference.

use classloss::{
    BceWithLogits, ClassTarget, CrossEntropy, Differentiable, GeneralizedCrossEntropy,
    KlDivergence, LabelSmoothing, Loss, SigmoidFocal, SoftmaxFocal,
};
use ndarray::{Array1, Array2, ShapeBuilder};

/// Deterministic logits in `[-6, 6]` and labels.
fn inputs(n: usize, c: usize, seed: u64) -> (Array2<f32>, Array1<usize>) {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let x = Array2::from_shape_simple_fn((n, c), || (next() * 12.0 - 6.0) as f32);
    let y = Array1::from_shape_simple_fn(n, || ((next() * c as f64) as usize).min(c - 1));
    (x, y)
}

/// `run` on a pool of 1 thread and on one of 3: value, gradient and
/// per-sample values must agree bit for bit.
fn same_on_any_thread_count(run: impl Fn() -> (f32, Vec<f32>, Vec<f32>) + Sync + Send) {
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(&run)
    };
    let (v1, g1, p1) = on(1);
    let (v3, g3, p3) = on(3);
    assert_eq!(
        v1.to_bits(),
        v3.to_bits(),
        "value differs with the thread count"
    );
    assert_eq!(g1, g3, "gradient differs with the thread count");
    assert_eq!(p1, p3, "per-sample values differ with the thread count");
}

/// The fused call and `per_sample` of `loss`, flattened.
macro_rules! outputs {
    ($loss:expr, $x:expr, $t:expr) => {{
        let (loss, x, t) = ($loss, $x, $t);
        move || {
            let (v, g) = loss.forward_backward(x.clone(), t.clone()).unwrap();
            let per = loss.per_sample(x.clone(), t.clone()).unwrap();
            (
                v,
                g.iter().copied().collect(),
                per.iter().copied().collect(),
            )
        }
    }};
}

#[test]
fn softmax_losses_are_identical_on_one_and_three_threads() {
    // 300 x 997 logits: above the parallel threshold, blocks of uneven rows.
    let (x, y) = inputs(300, 997, 7);
    let labels = || y.view();
    same_on_any_thread_count(outputs!(CrossEntropy::<f32>::new(), x.view(), labels()));
    let smoothed = CrossEntropy::<f32>::new()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_weight(Array1::from_shape_fn(997, |c| 0.5 + (c % 3) as f32))
        .unwrap();
    same_on_any_thread_count(outputs!(smoothed, x.view(), labels()));
    same_on_any_thread_count(outputs!(LabelSmoothing::new(), x.view(), y.view()));
    same_on_any_thread_count(outputs!(SoftmaxFocal::new(), x.view(), y.view()));
    let q = x.mapv(|v| (v + 6.0) / 12.0);
    let q = &q / &q.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    same_on_any_thread_count(outputs!(KlDivergence::new(), x.view(), q.view()));
    let probs = || ClassTarget::Probs(q.view());
    same_on_any_thread_count(outputs!(CrossEntropy::<f32>::new(), x.view(), probs()));
}

/// Rows of a contiguous batch take their maximum in the previous row's
/// exponentials pass; rows of a column-major batch are copied out one at a
/// time and take it in a pass of their own: the same bits.
#[test]
fn rows_read_ahead_give_the_bits_of_rows_read_alone() {
    fn column_major<T: Copy>(x: &Array2<T>) -> Array2<T> {
        let mut f = Array2::from_shape_vec(x.raw_dim().f(), x.t().iter().copied().collect())
            .expect("the same number of elements");
        f.assign(x);
        f
    }
    // Above `SMALL_CLASSES` (31): fewer classes take the column path;
    // from 256 classes rows read ahead.
    for (n, c) in [(40, 1000), (7, 300), (6, 257), (9, 1024), (33, 37), (3, 47)] {
        let (x, y) = inputs(n, c, 5);
        let xf = column_major(&x);
        assert!(xf.as_slice().is_none() && xf == x);
        let same = |a: (f32, Vec<f32>, Vec<f32>), b: (f32, Vec<f32>, Vec<f32>)| {
            assert_eq!(a.0.to_bits(), b.0.to_bits(), "value, {n} x {c}");
            let differ = |u: &[f32], v: &[f32]| {
                u.iter()
                    .zip(v)
                    .filter(|(p, q)| p.to_bits() != q.to_bits())
                    .count()
            };
            assert_eq!(
                differ(&a.1, &b.1),
                0,
                "gradient entries that differ, {n} x {c}"
            );
            assert_eq!(
                differ(&a.2, &b.2),
                0,
                "per-sample values that differ, {n} x {c}"
            );
        };
        let smoothed = CrossEntropy::<f32>::new()
            .with_label_smoothing(0.1)
            .unwrap();
        same(
            outputs!(CrossEntropy::<f32>::new(), x.view(), y.view())(),
            outputs!(CrossEntropy::<f32>::new(), xf.view(), y.view())(),
        );
        same(
            outputs!(smoothed.clone(), x.view(), y.view())(),
            outputs!(smoothed, xf.view(), y.view())(),
        );
        same(
            outputs!(LabelSmoothing::new(), x.view(), y.view())(),
            outputs!(LabelSmoothing::new(), xf.view(), y.view())(),
        );
        let (x64, xf64) = (x.mapv(f64::from), xf.mapv(f64::from));
        let (v, g) = CrossEntropy::<f64>::new()
            .forward_backward(x64.view(), y.view())
            .unwrap();
        let (vf, gf) = CrossEntropy::<f64>::new()
            .forward_backward(xf64.view(), y.view())
            .unwrap();
        assert_eq!(v.to_bits(), vf.to_bits(), "f64 value, {n} x {c}");
        assert!(
            g.iter().zip(&gf).all(|(p, q)| p.to_bits() == q.to_bits()),
            "f64 gradient, {n} x {c}"
        );
    }
}

/// A batch with fewer rows than threads splits each long row's maximum and
/// exponentials across the threads (rows of at least 2^18 classes): the
/// same bits as on one thread.
#[test]
fn long_rows_split_across_threads_give_the_same_bits() {
    for n in [1, 2] {
        let (x, y) = inputs(n, 270_001, 13);
        same_on_any_thread_count(outputs!(CrossEntropy::<f32>::new(), x.view(), y.view()));
        same_on_any_thread_count(outputs!(SoftmaxFocal::new(), x.view(), y.view()));
        let q = x.mapv(|v| (v + 6.0) / 12.0);
        let q = &q / &q.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
        let probs = || ClassTarget::Probs(q.view());
        same_on_any_thread_count(outputs!(CrossEntropy::<f32>::new(), x.view(), probs()));
    }
}

#[test]
fn binary_losses_are_identical_on_one_and_three_threads() {
    let (x, _) = inputs(700, 100, 11);
    let t = x.mapv(|v| if v > 0.5 { 1.0 } else { 0.0 });
    same_on_any_thread_count(outputs!(BceWithLogits::new(), x.view(), t.view()));
    same_on_any_thread_count(outputs!(SigmoidFocal::new(), x.view(), t.view()));
}

/// `-log p_y` and `p - onehot(y)` in `f64` with the standard library's `exp`.
fn scalar_ce(x: &Array2<f32>, y: &Array1<usize>) -> (f64, Array2<f64>) {
    let (n, c) = x.dim();
    let mut grad = Array2::zeros((n, c));
    let mut total = 0.0;
    for i in 0..n {
        let row: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        total += sum.ln() - (row[y[i]] - max);
        for k in 0..c {
            grad[[i, k]] = ((row[k] - max).exp() / sum - f64::from(k == y[i])) / n as f64;
        }
    }
    (total / n as f64, grad)
}

/// 600 x 1000 is beyond 2 MiB, taken to come from memory: its rows also
/// ask for the lines of the row three on as they go.
#[test]
fn blocked_vectorized_cross_entropy_matches_a_scalar_f64_reference() {
    for &(n, c) in &[
        (1, 1),
        (3, 7),
        (130, 17),
        (80, 1000),
        (600, 1000),
        (5, 40_000),
    ] {
        let (x, y) = inputs(n, c, (n * c) as u64);
        let (value, grad) = CrossEntropy::<f32>::new()
            .forward_backward(x.view(), y.view())
            .unwrap();
        let (v_ref, g_ref) = scalar_ce(&x, &y);
        assert!(
            (value as f64 - v_ref).abs() <= 2e-6 * v_ref.abs().max(1.0),
            "{n}x{c}: {value} vs {v_ref}"
        );
        let worst = grad
            .iter()
            .zip(&g_ref)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-7 / n as f64 + 1e-9,
            "{n}x{c}: gradient off by {worst}"
        );
    }
}

/// A row whose gradient is finished by the next row's pass (a contiguous
/// gradient buffer, `f64` rows of 256 to 1024 classes, which read ahead)
/// gives the bits of rows that finish their own (a column-major buffer,
/// written through a scratch row): cross-entropy with and without class
/// weights and GCE, and `f32` and shorter rows, which never defer.
#[test]
fn rows_that_leave_their_scaling_to_the_next_give_the_same_bits() {
    macro_rules! same_bits {
        ($loss:expr, $x:expr, $y:expr, $what:expr) => {{
            let (x, y) = (&$x, &$y);
            let mut g = Array2::zeros(x.raw_dim());
            let mut gf = Array2::zeros(x.raw_dim().f());
            let v = $loss
                .forward_backward_into(x.view(), y.view(), g.view_mut())
                .unwrap();
            let vf = $loss
                .forward_backward_into(x.view(), y.view(), gf.view_mut())
                .unwrap();
            assert!(gf.as_slice().is_none());
            assert_eq!(v.to_bits(), vf.to_bits(), "value, {}", $what);
            let differ = g
                .iter()
                .zip(&gf)
                .filter(|(p, q)| p.to_bits() != q.to_bits())
                .count();
            assert_eq!(differ, 0, "gradient entries that differ, {}", $what);
            assert!(g.iter().any(|&v| v != 0.0), "{}", $what);
        }};
    }
    for (n, c) in [
        (128, 100),
        (33, 37),
        (3, 47),
        (40, 1000),
        (9, 1024),
        (5, 300),
    ] {
        let (x, y) = inputs(n, c, 11);
        let w = Array1::from_shape_fn(c, |k| 0.5 + (k % 5) as f32 * 0.25);
        let what = format!("{n} x {c}");
        same_bits!(CrossEntropy::<f32>::new(), x, y, what);
        let weighted = CrossEntropy::<f32>::new().with_weight(w.clone()).unwrap();
        same_bits!(weighted, x, y, what);
        same_bits!(GeneralizedCrossEntropy::<f32>::new(), x, y, what);
        let x64 = x.mapv(f64::from);
        same_bits!(CrossEntropy::<f64>::new(), x64, y, what);
        let weighted = CrossEntropy::<f64>::new()
            .with_weight(w.mapv(f64::from))
            .unwrap();
        same_bits!(weighted, x64, y, what);
    }
}
