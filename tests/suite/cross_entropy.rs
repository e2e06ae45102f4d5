//! Cross-entropy: the contract under every option, properties, errors, and
//! extreme `f32` logits. (Reference values: `tests/conformance`.)

use crate::common::{
    assert_option_rejects, assert_weights_rejected, matrix, random_array, random_labels,
    random_probs, vector,
};
use crate::contract::{Case, Labeled, Paired, check_contract, scaled};
use crate::labels::{
    assert_f32_agrees, assert_label_errors, assert_shift_invariant, logits_and_labels,
};
use classloss::{ClassTarget, CrossEntropy, Differentiable, Error, Loss, Reduction};
use ndarray::{Array, Array1, Array2, ArrayD, Ix2, Ix3, Ix4, IxDyn, RemoveAxis, array};
use proptest::prelude::*;

/// The contract under every option combination on hard labels: the class
/// weights, an ignored label (the first sample's), label smoothing, each
/// with the large-model options `(z_loss, softcap)` of `options`. The mean
/// divides by the weights of the labels not ignored.
pub fn contract_on_labels_with<D: RemoveAxis>(
    x: Array<f64, D>,
    labels: Array<usize, D::Smaller>,
    options: &[(f64, Option<f64>)],
) {
    let weight = array![0.3, 1.7, 0.9, 1.2, 0.5];
    let args = Labeled::new(x, labels);
    let shape = args.x.shape().to_vec();
    for &(z, cap) in options {
        for use_weight in [false, true] {
            for ignore in [None, args.labels.iter().next().copied()] {
                for eps in [0.0, 0.2] {
                    let mut ce = CrossEntropy::<f64, D>::spatial()
                        .with_label_smoothing(eps)
                        .and_then(|ce| ce.with_z_loss(z))
                        .and_then(|ce| ce.with_softcap(cap))
                        .unwrap();
                    let what = format!(
                        "{shape:?} z={z} cap={cap:?} weight={use_weight} ignore={ignore:?} eps={eps}"
                    );
                    let w = |y: usize| if use_weight { weight[y] } else { 1.0 };
                    let kept = args.labels.iter().filter(|&&y| Some(y) != ignore);
                    let mut case = Case::new(what, args.clone()).divisor(kept.map(|&y| w(y)).sum());
                    if use_weight {
                        ce = ce.with_weight(weight.clone()).unwrap();
                        case = case.misshapen("weight", args.with_extra_class());
                    }
                    if let Some(i) = ignore {
                        ce = ce.with_ignore_index(i);
                    }
                    if eps > 0.0 && cap.is_none() {
                        // Not up to f32::MAX / 2: the smoothing term
                        // overflows there (`smoothing_term_of_huge_f32_
                        // logits_fits`); the cap bounds the logits, so with
                        // it every extreme runs.
                        case = case.extremes(vec![scaled(&args, 1e30), scaled(&args, -1e30)]);
                    }
                    check_contract(&ce, &case);
                }
            }
        }
    }
}

/// [`contract_on_labels_with`] without the large-model options.
fn contract_on_labels<D: RemoveAxis>(x: Array<f64, D>, labels: Array<usize, D::Smaller>) {
    contract_on_labels_with(x, labels, &[(0.0, None)]);
}

/// Labels `(N, ...)` in `0..5` for logits of `shape`, class axis 1.
pub fn labels_for(shape: &[usize], seed: u64) -> ArrayD<usize> {
    let mut lshape = shape.to_vec();
    lshape.remove(1);
    random_labels(&lshape, 5, seed)
}

#[test]
fn contract() {
    // 2-D as (N, C) and as IxDyn, spatial of rank 3 (IxDyn) and 4 (Ix4).
    let (x, y) = (random_array(&[6, 5], 1, 3.0), labels_for(&[6, 5], 11));
    contract_on_labels(matrix(x.clone()), vector(y.clone()));
    contract_on_labels(x, y);
    contract_on_labels(random_array(&[3, 5, 4], 2, 3.0), labels_for(&[3, 5, 4], 12));
    let (x, y) = (
        random_array(&[2, 5, 3, 2], 5, 3.0),
        labels_for(&[2, 5, 3, 2], 15),
    );
    let (x4, y3) = (
        x.into_dimensionality::<Ix4>(),
        y.into_dimensionality::<Ix3>(),
    );
    contract_on_labels(x4.unwrap(), y3.unwrap());
    // Probabilities: the mean divides by the number of positions.
    let weight = array![0.3, 1.7, 0.9, 1.2];
    for shape in [vec![5, 4], vec![2, 4, 3]] {
        let args = Paired::new(
            random_array(&shape, 3, 2.0),
            random_probs(&shape, 4),
            "probs",
        );
        for use_weight in [false, true] {
            for eps in [0.0, 0.15] {
                let mut ce = CrossEntropy::<f64, IxDyn>::spatial()
                    .with_label_smoothing(eps)
                    .unwrap();
                let what = format!("probs {shape:?} weight={use_weight} eps={eps}");
                let mut case = Case::new(what, args.clone());
                if use_weight {
                    ce = ce.with_weight(weight.clone()).unwrap();
                    case = case.misshapen("weight", args.with_extra_class());
                }
                check_contract(&ce, &case);
            }
        }
    }
}

#[test]
fn all_ignored_batch_is_zero_with_zero_gradient() {
    let x = array![[1.0_f64, 2.0], [0.5, -1.0]];
    let labels = array![1_usize, 1];
    let ce = CrossEntropy::new().with_ignore_index(1);
    let (v, g) = ce.forward_backward(x.view(), labels.view()).unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&e| e == 0.0));
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    let x = array![
        [1e30_f32, -1e30, 0.0],
        [-1e30, -1e30, -1e30],
        [3e29, 3e29, -2e29]
    ];
    let labels = array![1_usize, 2, 0];
    let ce = CrossEntropy::new().with_reduction(Reduction::None);
    let per = ce.per_sample(x.view(), labels.view()).unwrap();
    assert_eq!(per[0], 2e30);
    assert!((per[1] - 3f32.ln()).abs() < 1e-6);
    assert!((per[2] - 2f32.ln()).abs() < 1e-6);
    let g = ce.backward(x.view(), labels.view()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g.row(0).to_vec(), vec![1.0, -1.0, 0.0]);
}

#[test]
fn worked_example_of_the_documents() {
    // logits [2.0, 1.0, 0.1], label 0 -> 0.4170 (second document).
    let ce = CrossEntropy::new();
    let v: f64 = ce
        .forward(array![[2.0, 1.0, 0.1]].view(), array![0].view())
        .unwrap();
    assert!((v - 0.4170300162778335).abs() < 1e-15);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let ce = CrossEntropy::<f64, Ix2>::new();
    assert_label_errors(&ce);
    let x = Array2::<f64>::zeros((2, 3));
    // probability target out of range and of the wrong shape
    let q = array![[0.5, 0.5, 0.0], [1.5, 0.0, 0.0]];
    let e = ce
        .forward(x.view(), ClassTarget::Probs(q.view()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "probs[1, 0]: expected a probability in [0, 1], got 1.5"
    );
    let e = ce
        .forward(x.view(), ClassTarget::Probs(Array2::zeros((2, 2)).view()))
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { what: "probs", .. }));
    // weight length
    let e = CrossEntropy::new()
        .with_weight(array![1.0, 1.0])
        .unwrap()
        .forward(x.view(), array![0_usize, 1].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "weight: expected shape [3], got [2]");
    // invalid options
    assert_weights_rejected("weight", |w| CrossEntropy::<f64>::new().with_weight(w));
    let bad = [(1.5, "1.5"), (f64::NAN, "NaN")];
    let set = |eps| CrossEntropy::<f64>::new().with_label_smoothing(eps);
    assert_option_rejects("label_smoothing", "a number in [0, 1]", &bad, set);
    // rank
    let spatial = CrossEntropy::<f64, IxDyn>::spatial();
    let x1 = ArrayD::<f64>::zeros(IxDyn(&[3]));
    let e = spatial
        .forward(x1.view(), ArrayD::<usize>::zeros(IxDyn(&[])).view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::RankMismatch {
            what: "logits",
            actual: 1,
            ..
        }
    ));
}

proptest! {
    #[test]
    fn shifting_a_row_changes_nothing((x, labels) in logits_and_labels(), shift in -50.0f64..50.0) {
        let ce = CrossEntropy::new().with_label_smoothing(0.1).unwrap();
        assert_shift_invariant(&ce, &x, &labels, shift)?;
    }

    #[test]
    fn unweighted_gradient_rows_sum_to_zero((x, labels) in logits_and_labels(), eps in 0.0f64..1.0) {
        let ce = CrossEntropy::new().with_reduction(Reduction::Sum).with_label_smoothing(eps).unwrap();
        let g = ce.backward(x.view(), labels.view()).unwrap();
        for row in g.rows() {
            prop_assert!(row.sum().abs() < 1e-12);
        }
    }

    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((x, labels) in logits_and_labels()) {
        let t = labels.view();
        let ce = CrossEntropy::new().with_reduction(Reduction::Sum);
        let per = ce.per_sample(x.view(), t).unwrap();
        let sum = ce.forward(x.view(), t).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        prop_assert!(per.iter().all(|&v| v >= 0.0 && v.is_finite()));
    }

    #[test]
    fn hard_labels_equal_one_hot_probabilities((x, labels) in logits_and_labels(), eps in 0.0f64..0.5) {
        let c = x.ncols();
        let l = labels.clone();
        let q = Array2::from_shape_fn((x.nrows(), c), |(i, j)| if labels[i] == j { 1.0 } else { 0.0 });
        let ce = CrossEntropy::new().with_label_smoothing(eps).unwrap();
        let (a, ga) = ce.forward_backward(x.view(), l.view()).unwrap();
        let (b, gb) = ce.forward_backward(x.view(), ClassTarget::Probs(q.view())).unwrap();
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
        prop_assert!(ga.iter().zip(gb.iter()).all(|(p, q)| (p - q).abs() < 1e-12));
    }

    #[test]
    fn f32_agrees_with_f64((x, labels) in logits_and_labels()) {
        let ce = CrossEntropy::new().with_label_smoothing(0.05).unwrap();
        assert_f32_agrees(&ce, &x, &labels)?;
    }
}

#[test]
fn a_loss_beyond_the_f32_range_is_an_overflow_error() {
    // Sample 0's true loss is 6e38, more than f32 holds: an error naming
    // it, not a silent inf, from the sum, the per-sample values and the
    // fused call.
    let x = ndarray::array![[3e38_f32, -3e38], [0.0, 1.0]];
    let y = ndarray::array![1_i64, 0];
    let sum = CrossEntropy::new().with_reduction(Reduction::Sum);
    let mut g = Array2::zeros((2, 2));
    for e in [
        sum.forward(&x, &y).unwrap_err(),
        sum.per_sample(&x, &y).unwrap_err(),
        sum.forward_backward_into(&x, &y, &mut g).unwrap_err(),
        CrossEntropy::new().per_sample(&x, &y).unwrap_err(),
    ] {
        assert_eq!(
            e.to_string(),
            "logits[0]: the sample's loss overflows f32: expected at most 3.4028235e38, \
             got about 6.000e38"
        );
    }
    // The mean, (6e38 + 1.31) / 2, fits: it is returned, with its gradient.
    let (mean, g) = CrossEntropy::new().forward_backward(&x, &y).unwrap();
    assert!((mean as f64 / 3e38 - 1.0).abs() < 1e-6, "{mean}");
    assert_eq!(g[[0, 0]], 0.5);
    assert_eq!(g[[0, 1]], -0.5);
    // The same input in f64 is fine.
    let x64 = x.mapv(f64::from);
    let v = CrossEntropy::new()
        .with_reduction(Reduction::Sum)
        .forward(x64.view(), ndarray::array![1_usize, 0].view())
        .unwrap();
    let expected = (x64[[0, 0]] - x64[[0, 1]]) + 1.0 + (-1f64).exp().ln_1p();
    assert!((v - expected).abs() <= 1e-15 * expected);
}

/// Issue 10: f32 logits `[2e38, -2e38]` have a loss of about 4e38, which
/// f32 cannot hold: an overflow error naming the sample, for every layout
/// (rows, spatial columns, strided lanes) and every call.
#[test]
fn an_f32_row_beyond_the_range_names_its_sample() {
    let message = |index: &str| {
        format!(
            "logits{index}: the sample's loss overflows f32: expected at most \
             3.4028235e38, got about 4.000e38"
        )
    };
    let ce = CrossEntropy::new();
    let x = ndarray::array![[2e38_f32, -2e38]];
    let labels = ndarray::array![1_i64];
    assert_eq!(
        ce.forward(&x, &labels).unwrap_err().to_string(),
        message("[0]")
    );
    assert_eq!(
        ce.backward(&x, &labels).unwrap_err().to_string(),
        message("[0]")
    );
    assert_eq!(
        ce.per_sample(&x, &labels).unwrap_err().to_string(),
        message("[0]")
    );
    // The other label's loss is 0.
    assert_eq!(ce.forward(&x, &ndarray::array![0_u32]).unwrap(), 0.0);
    // Spatial (N, C, H, W): position (1, 0, 1) of a contiguous input (the
    // column path) and of a column-major copy (the lane path).
    let mut xs = ndarray::Array4::<f32>::zeros((2, 2, 1, 2));
    xs[[1, 0, 0, 1]] = 2e38;
    xs[[1, 1, 0, 1]] = -2e38;
    let ys = ndarray::Array3::<i64>::ones((2, 1, 2));
    let spatial = CrossEntropy::<f32, ndarray::Ix4>::spatial();
    let sum = CrossEntropy::<f32, ndarray::Ix4>::spatial().with_reduction(Reduction::Sum);
    let strided = xs.t().as_standard_layout().into_owned().reversed_axes();
    for input in [xs.view(), strided.view()] {
        let per = spatial.per_sample(input, &ys).unwrap_err();
        assert_eq!(per.to_string(), message("[1, 0, 1]"));
        let total = sum.forward(input, &ys).unwrap_err();
        assert_eq!(total.to_string(), message("[1, 0, 1]"));
        // The mean over the 4 positions, 1e38, fits.
        let mean = spatial.forward(input, &ys).unwrap();
        assert!((mean as f64 / 1e38 - 1.0).abs() < 1e-6, "{mean}");
    }
}

/// A contiguous spatial input runs down the columns of each sample; a
/// column-major copy of it takes the lane-by-lane path. Both must agree.
#[test]
fn spatial_column_path_matches_the_lane_path() {
    // 35 positions (one tile of the column path), 16,900 (whole tiles of
    // 2,048 and a partial one), 70 classes (past the 64 after which the
    // column sums move into f64) and exactly 64 (where they do not).
    let shapes = [
        ([3, 6, 5, 7], [3, 5, 7]),
        ([1, 4, 130, 130], [1, 130, 130]),
        ([2, 70, 3, 5], [2, 3, 5]),
        ([2, 64, 3, 5], [2, 3, 5]),
    ];
    for (shape, rows) in shapes {
        column_path_matches_the_lane_path(&shape, &rows);
    }
}

fn column_path_matches_the_lane_path(shape: &[usize], rows: &[usize]) {
    use ndarray::ShapeBuilder;
    let classes = shape[1];
    let x = random_array(shape, 21, 4.0);
    let labels = random_labels(rows, classes, 22);
    let mut x_f = ArrayD::zeros(IxDyn(shape).f());
    x_f.assign(&x);
    assert!(x.as_slice().is_some() && x_f.as_slice().is_none());
    let weight = Array1::from_shape_fn(classes, |c| [0.5, 1.5, 1.0, 2.0, 0.25, 1.0][c % 6]);
    for eps in [0.0, 0.1] {
        for ignore in [None, Some(2)] {
            let mut ce = CrossEntropy::<f64, IxDyn>::spatial()
                .with_label_smoothing(eps)
                .unwrap()
                .with_weight(weight.clone())
                .unwrap();
            if let Some(i) = ignore {
                ce = ce.with_ignore_index(i);
            }
            let t = labels.view();
            let (v1, g1) = ce.forward_backward(x.view(), t.clone()).unwrap();
            let (v2, g2) = ce.forward_backward(x_f.view(), t.clone()).unwrap();
            let p1 = ce.per_sample(x.view(), t.clone()).unwrap();
            let p2 = ce.per_sample(x_f.view(), t.clone()).unwrap();
            let what = format!("eps={eps} ignore={ignore:?}");
            assert!(
                (v1 - v2).abs() <= 1e-13 * v1.abs().max(1.0),
                "{what}: {v1} vs {v2}"
            );
            for (a, b) in g1.iter().zip(g2.iter()).chain(p1.iter().zip(p2.iter())) {
                assert!((a - b).abs() <= 1e-13, "{what}: {a} vs {b}");
            }
        }
    }
}

/// Class weights so small that 1 / (their sum) overflows (sub-normal in
/// f32; below 1e-308 in f64): the mean and its gradient stay finite and
/// equal those of the same weights scaled up (the mean does not depend on
/// the weights' scale).
#[test]
fn tiny_class_weights_keep_a_finite_gradient() {
    let x32 = array![[2.0_f32, -1.0], [0.5, 1.5]];
    let y = array![0_usize, 1];
    for eps in [0.0, 0.1] {
        let tiny = CrossEntropy::<f32>::new()
            .with_weight(array![1e-39_f32, 2e-39])
            .unwrap()
            .with_label_smoothing(eps)
            .unwrap();
        let plain = CrossEntropy::<f32>::new()
            .with_weight(array![1.0_f32, 2.0])
            .unwrap()
            .with_label_smoothing(eps)
            .unwrap();
        let t = y.view();
        let (v, g) = tiny.forward_backward(x32.view(), t).unwrap();
        let (v_ref, g_ref) = plain.forward_backward(x32.view(), t).unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "eps {eps}: {g}");
        assert!((v - v_ref).abs() < 1e-5, "eps {eps}: {v} vs {v_ref}");
        for (a, b) in g.iter().zip(&g_ref) {
            assert!((a - b).abs() < 1e-5, "eps {eps}: {g} vs {g_ref}");
        }
    }
    let x64 = x32.mapv(f64::from);
    let tiny = CrossEntropy::<f64>::new()
        .with_weight(array![1e-310_f64, 2e-310])
        .unwrap();
    let plain = CrossEntropy::<f64>::new()
        .with_weight(array![1.0_f64, 2.0])
        .unwrap();
    let t = y.view();
    let (_, g) = tiny.forward_backward(x64.view(), t).unwrap();
    let (_, g_ref) = plain.forward_backward(x64.view(), t).unwrap();
    for (a, b) in g.iter().zip(&g_ref) {
        assert!((a - b).abs() < 1e-12, "{g} vs {g_ref}");
    }
}

/// A long class axis in `f32` (a large vocabulary) keeps its accuracy: the
/// row's sum of exponentials is accumulated in `f64` by blocks (rows) or
/// every 64 classes (spatial columns).
#[test]
fn long_class_axes_keep_f32_accuracy() {
    for c in [100_000_usize, 200_000] {
        let mut x = Array2::<f32>::zeros((1, c));
        x[[0, 0]] = 14.0;
        let p0 = 1.0 / (1.0 + (c as f64 - 1.0) * (-14.0_f64).exp());
        let g = CrossEntropy::<f32>::new()
            .backward(x.view(), array![1_usize].view())
            .unwrap();
        assert!((g[[0, 0]] as f64 / p0 - 1.0).abs() < 2e-6, "rows, C = {c}");
        // forward alone sums without storing: -log p_0 = ln(1 + (C - 1)
        // e^-14), 0.08, within a few f32 ulps of the sum near 1 (a plain f32
        // sum of the 1e5 terms is off by about 2e-5).
        let v = CrossEntropy::<f32>::new()
            .forward(x.view(), array![0_usize].view())
            .unwrap();
        let nll0 = ((c as f64 - 1.0) * (-14.0_f64).exp()).ln_1p();
        assert!((f64::from(v) - nll0).abs() < 5e-7, "forward, C = {c}: {v}");
        let xs = x.clone().into_shape_with_order((1, c, 1, 1)).unwrap();
        let labels = ndarray::Array3::<usize>::from_elem((1, 1, 1), 1);
        let gs = CrossEntropy::<f32, ndarray::Ix4>::spatial()
            .backward(xs.view(), labels.view())
            .unwrap();
        assert!(
            (gs[[0, 0, 0, 0]] as f64 / p0 - 1.0).abs() < 2e-6,
            "columns, C = {c}"
        );
    }
}

/// Found by the contract and fixed (was a bug in `src`) (the row's smoothing term, the sum
/// of `x_c - max` over the classes, is added up in `f32` and overflows):
/// f32 logits about `3e38` apart whose smoothed loss, `2.2e37`, fits in
/// `f32` are reported as an overflow of "a value beyond the range of f64".
#[test]
fn smoothing_term_of_huge_f32_logits_fits() {
    let x = array![[1.7e38_f32, -1.6e38, -1.5e38]];
    let y = array![0_usize];
    let ce = CrossEntropy::new().with_label_smoothing(0.1).unwrap();
    let exact = CrossEntropy::new()
        .with_label_smoothing(0.1)
        .unwrap()
        .forward(&x.mapv(f64::from), &y)
        .unwrap();
    assert!((exact / 2.1666666e37 - 1.0).abs() < 1e-6, "{exact}");
    let v = ce.forward(&x, &y).unwrap();
    assert!((f64::from(v) / exact - 1.0).abs() < 1e-6, "{v} vs {exact}");
}

/// The mean is the same for class weights scaled by any power of two, and
/// weights so small that the mean's factor or the weighted losses leave the
/// normal range are scaled up first: subnormal `f32` weights, whose
/// `1 / sum` overflows `f32`, and `f64` weights of `1e-300`, whose weighted
/// losses of confident samples (`w * 5e-16`) are subnormal, give the value
/// and the gradient of the same weights scaled up by an exact power of two.
/// (Catches the rescale's condition: `1 / divisor`, `tiny`, each `||`.)
#[test]
fn subnormal_class_weights_are_rescaled_exactly() {
    let y = array![0_usize, 2, 1];
    let x32 = array![[50.0_f32, 0.0, 0.0], [0.0, 0.0, 50.0], [1.0, -0.5, 0.25]];
    let w32 = array![1e-40_f32, 3e-40, 2e-40];
    assert!(w32.iter().all(|w| !w.is_normal()) && 1.0 / 6e-40_f32 == f32::INFINITY);
    let x64 = array![[36.0_f64, 0.0, 0.0], [0.0, 0.0, 36.0], [0.0, 36.0, 0.0]];
    let w64 = array![1e-300_f64, 3e-300, 2e-300];
    fn check<F: classloss::Float>(x: &Array2<F>, y: &Array1<usize>, w: &Array1<F>, k: F, tol: f64) {
        let tiny = CrossEntropy::new().with_weight(w.clone()).unwrap();
        let plain = CrossEntropy::new().with_weight(w.mapv(|v| v * k)).unwrap();
        let (v, g) = tiny.forward_backward(x.view(), y.view()).unwrap();
        let (v_ref, g_ref) = plain.forward_backward(x.view(), y.view()).unwrap();
        let fwd = tiny.forward(x.view(), y.view()).unwrap();
        assert_eq!(v, fwd);
        let close = |a: F, b: F| (a.as_f64() - b.as_f64()).abs() <= tol * b.as_f64().abs();
        assert!(close(v, v_ref), "{v} vs {v_ref}");
        for (a, b) in g.iter().zip(&g_ref) {
            assert!(close(*a, *b), "{g} vs {g_ref}");
        }
    }
    check(&x32, &y, &w32, 2f32.powi(100), 1e-6);
    check(&x64, &y, &w64, 2f64.powi(1000), 1e-13);
}

/// Class weights that are zero on every label: the mean's divisor is 0, so
/// the mean is 0 with a zero gradient (not the NaN of a rescale by
/// `2^inf`).
#[test]
fn zero_weights_on_every_label_give_a_zero_mean_and_gradient() {
    let x = array![[1.0_f64, 2.0, -1.0], [0.5, -1.0, 3.0]];
    let y = array![0_usize, 0];
    let ce = CrossEntropy::new()
        .with_weight(array![0.0, 1.0, 2.0])
        .unwrap();
    let (v, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&e| e == 0.0), "{g}");
    assert_eq!(ce.forward(x.view(), y.view()).unwrap(), 0.0);
}

/// A contiguous spatial input with a gradient buffer that is not contiguous
/// (column-major, pre-filled with NaN) takes the lane path and fills the
/// buffer: the same value and gradient as a contiguous buffer. (Catches a
/// contiguity test that looked at the per-sample buffer alone.)
#[test]
fn spatial_gradient_buffer_of_another_layout_is_filled() {
    use ndarray::ShapeBuilder;
    let shape = [2, 4, 3];
    let x = random_array(&shape, 31, 3.0);
    let labels = random_labels(&[2, 3], 4, 32);
    for eps in [0.0, 0.1] {
        let ce = CrossEntropy::<f64, IxDyn>::spatial()
            .with_label_smoothing(eps)
            .unwrap();
        let (v, g) = ce.forward_backward(x.view(), labels.view()).unwrap();
        let mut g_f = ArrayD::from_elem(IxDyn(&shape).f(), f64::NAN);
        assert!(g_f.as_slice().is_none());
        let v_f = ce
            .forward_backward_into(x.view(), labels.view(), g_f.view_mut())
            .unwrap();
        assert_eq!(v, v_f, "eps {eps}");
        for (a, b) in g.iter().zip(g_f.iter()) {
            assert!((a - b).abs() <= 1e-15, "eps {eps}: {g} vs {g_f}");
        }
    }
}

/// Class weights below 1: every weighted per-sample value fits `f32` but
/// the mean (the sum over the weights' sum) does not: an overflow of the
/// mean, with its magnitude; the per-sample values are returned.
#[test]
fn a_mean_beyond_f32_of_fitting_samples_is_an_overflow_of_the_mean() {
    let x = array![[3e38_f32, -3e38]];
    let y = array![1_usize];
    let ce = CrossEntropy::new()
        .with_weight(array![1.0_f32, 0.25])
        .unwrap();
    let per = ce.per_sample(&x, &y).unwrap();
    assert!((per[0] as f64 / 1.5e38 - 1.0).abs() < 1e-6, "{per}");
    let e = ce.forward(&x, &y).unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits[]: the mean of the per-sample losses overflows f32: expected at most \
         3.4028235e38, got about 6.000e38"
    );
}

/// The ignored label is matched in the labels' own type, on the row path
/// and the column path (spatial, and rows of few classes): an ignored
/// value the type holds (255 or the class 1 in `u8`, -100 or 1 in `i32`)
/// drops its samples from the mean's divisor, the loss and the gradient;
/// one it cannot hold (300 for `u8` labels) ignores nothing. Each agrees
/// with the `u16` labels of the same values and with the mean of the
/// per-sample values over the samples kept.
#[test]
fn the_ignored_label_is_matched_in_every_label_type() {
    for shape in [vec![2, 3, 1, 37], vec![37, 3], vec![9, 40]] {
        for (ign16, ign8, ign32) in [(255_u16, 255_u8, -100_i32), (1, 1, 1)] {
            let c = shape[1];
            let x = random_array(&shape, 5, 3.0);
            let mut label_shape = shape.clone();
            label_shape.remove(1);
            let n: usize = label_shape.iter().product();
            let flat = (0..n).map(|k| if k % 5 == 0 { ign16 } else { (k % c) as u16 });
            let labels16 = ArrayD::from_shape_vec(IxDyn(&label_shape), flat.collect()).unwrap();
            let kept = labels16.iter().filter(|&&l| l != ign16).count();
            let labels8 = labels16.mapv(|l| l as u8);
            let labels32 = labels16.mapv(|l| if l == ign16 { ign32 } else { i32::from(l) });
            let ce = || CrossEntropy::<f64, IxDyn>::spatial();
            let reference = ce().with_ignore_index(ign16);
            let (v, g) = reference
                .forward_backward(x.view(), labels16.view())
                .unwrap();
            let per = reference.per_sample(x.view(), labels16.view()).unwrap();
            let mean = per.sum() / kept as f64;
            let what = format!("{shape:?} ignoring {ign16}");
            assert!((v - mean).abs() <= 1e-12 * mean, "{what}: {v} vs {mean}");
            let (by_u8, by_i32) = (ce().with_ignore_index(ign8), ce().with_ignore_index(ign32));
            for (with, (v2, g2)) in [
                (
                    "u8",
                    by_u8.forward_backward(x.view(), labels8.view()).unwrap(),
                ),
                (
                    "i32",
                    by_i32.forward_backward(x.view(), labels32.view()).unwrap(),
                ),
            ] {
                assert_eq!(v2.to_bits(), v.to_bits(), "{what} {with}: value");
                assert_eq!(g2, g, "{what} {with}: gradient");
            }
        }
    }
}

/// An ignored value the labels' type cannot hold (300 for `u8`) ignores
/// nothing: the labels' 255 is out of range, and valid labels give the
/// loss without an ignored label.
#[test]
fn an_ignored_value_beyond_the_label_type_ignores_nothing() {
    for shape in [vec![2, 3, 1, 37], vec![37, 3], vec![9, 40]] {
        let c = shape[1];
        let x = random_array(&shape, 5, 3.0);
        let mut label_shape = shape.clone();
        label_shape.remove(1);
        let n: usize = label_shape.iter().product();
        let flat = (0..n).map(|k| if k % 5 == 0 { 255 } else { (k % c) as u8 });
        let labels8 = ArrayD::from_shape_vec(IxDyn(&label_shape), flat.collect()).unwrap();
        let ce = || CrossEntropy::<f64, IxDyn>::spatial();
        let none = ce().with_ignore_index(300_u16);
        let err = none.forward(x.view(), labels8.view()).unwrap_err();
        assert!(
            matches!(err, Error::LabelOutOfRange { label: 255, .. }),
            "{err}"
        );
        let valid = labels8.mapv(|l| if l == 255 { 0 } else { l });
        let (v300, g300) = none.forward_backward(x.view(), valid.view()).unwrap();
        let (v_all, g_all) = ce().forward_backward(x.view(), valid.view()).unwrap();
        assert_eq!(
            v300.to_bits(),
            v_all.to_bits(),
            "{shape:?}: 300 ignores nothing"
        );
        assert_eq!(g300, g_all, "{shape:?}: 300 ignores nothing");
    }
}
