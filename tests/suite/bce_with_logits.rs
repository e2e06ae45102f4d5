//! Binary cross-entropy from logits: the contract under every option,
//! agreement with BCE on the sigmoid, broadcasting, properties, errors, and
//! `f32` logits up to `±1e30`. (Reference values: `tests/conformance`.)

use crate::common::{
    assert_binary_shell_errors, assert_weights_rejected, inputs_and_targets, matrix, random_array,
    soft_targets, weighted_shapes,
};
use crate::contract::{Case, Paired, check_contract};
use classloss::{Bce, BceWithLogits, Differentiable, Error, Loss, Reduction};
use ndarray::{Array1, Array2, ArrayD, IxDyn, array};
use proptest::prelude::*;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn contract() {
    for (shape, seed, weights) in weighted_shapes() {
        let targets = soft_targets(&shape, seed + 10);
        let args = Paired::new(random_array(&shape, seed, 4.0), targets, "targets");
        let last = *shape.last().unwrap();
        let pos_weights = [
            None,
            Some(Array1::linspace(0.3, 3.0, last)),
            Some(array![2.5]),
        ];
        for w in &weights {
            for pw in &pos_weights {
                let mut loss = BceWithLogits::<f64, IxDyn>::spatial();
                if let Some(w) = w {
                    loss = loss.with_weight(w.clone()).unwrap();
                }
                if let Some(pw) = pw {
                    loss = loss.with_pos_weight(pw.clone()).unwrap();
                }
                let w = w.as_ref().map(|w| w.shape().to_vec());
                let what = format!("{shape:?} weight={w:?} pos_weight={pw:?}");
                check_contract(&loss, &Case::new(what, args.clone()));
            }
        }
    }
}

#[test]
fn values_match_pytorchs_formula() {
    // PyTorch: (1 - t) x + (1 + (pw - 1) t) (ln(1 + e^-|x|) + max(-x, 0)), times w.
    let x = matrix(random_array(&[4, 3], 5, 6.0));
    let t = matrix(soft_targets(&[4, 3], 6));
    let w = array![[0.5], [1.0], [2.0], [0.0]];
    let pw = array![0.25, 1.0, 4.0];
    let per = BceWithLogits::new()
        .with_weight(w.clone())
        .unwrap()
        .with_pos_weight(pw.clone())
        .unwrap()
        .with_reduction(Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap();
    for ((i, k), &v) in per.indexed_iter() {
        let (xi, ti) = (x[[i, k]], t[[i, k]]);
        let lw = 1.0 + (pw[k] - 1.0) * ti;
        let expected =
            w[[i, 0]] * ((1.0 - ti) * xi + lw * ((-xi.abs()).exp().ln_1p() + (-xi).max(0.0)));
        assert!(
            (v - expected).abs() <= 1e-14 * (1.0 + expected.abs()),
            "[{i}, {k}]: {v} vs {expected}"
        );
    }
}

#[test]
fn one_pos_weight_broadcasts_like_a_full_vector() {
    let x = matrix(random_array(&[5, 4], 7, 3.0));
    let t = matrix(soft_targets(&[5, 4], 8));
    let one = BceWithLogits::new().with_pos_weight(array![3.0]).unwrap();
    let full = BceWithLogits::new()
        .with_pos_weight(Array1::from_elem(4, 3.0))
        .unwrap();
    let (a, ga) = one.forward_backward(x.view(), t.view()).unwrap();
    let (b, gb) = full.forward_backward(x.view(), t.view()).unwrap();
    assert_eq!(a, b);
    assert_eq!(ga, gb);
    // pos_weight touches only the positive term: with all-zero targets it
    // changes nothing.
    let zeros = Array2::zeros((5, 4));
    let plain = BceWithLogits::new()
        .forward(x.view(), zeros.view())
        .unwrap();
    assert_eq!(one.forward(x.view(), zeros.view()).unwrap(), plain);
}

#[test]
fn f32_logits_up_to_1e30_are_finite_and_exact() {
    let x = array![
        [1e30_f32, -1e30, 1e30, -1e30, 1e30],
        [f32::MAX, -f32::MAX, -88.0, 88.0, 0.0]
    ];
    let t = array![[0.0_f32, 1.0, 1.0, 0.0, 0.5], [0.0, 1.0, 0.0, 1.0, 1.0]];
    let loss = BceWithLogits::new().with_reduction(Reduction::None);
    let per = loss.per_sample(x.view(), t.view()).unwrap();
    // Their sum (what `forward` and the fused call return for `None`) is
    // 6.8e38, beyond f32: an overflow error rather than a silent inf.
    let e = loss.backward(x.view(), t.view()).unwrap_err();
    assert!(
        matches!(e, classloss::Error::Overflow { what: "logits", .. }),
        "{e}"
    );
    // The mean is representable, and its gradient is the per-element one / 10.
    let mean = BceWithLogits::new().with_reduction(Reduction::Mean);
    let g = mean.backward(x.view(), t.view()).unwrap() * 10.0;
    assert!(per.iter().chain(g.iter()).all(|v| v.is_finite()));
    assert_eq!(per.row(0).to_vec(), vec![1e30, 1e30, 0.0, 0.0, 5e29]);
    assert_eq!((per[[1, 0]], per[[1, 1]]), (f32::MAX, f32::MAX));
    assert_eq!(g.row(0).to_vec(), vec![1.0, -1.0, 0.0, 0.0, 0.5]);
    assert_eq!((g[[1, 0]], g[[1, 1]]), (1.0, -1.0));
    // A tiny gradient keeps its digits: sigmoid(-88) = 6.05e-39 (subnormal).
    let exact = 1.0 / (1.0 + 88f64.exp());
    assert!((g[[1, 2]] as f64 - exact).abs() <= 1e-6 * exact);
    assert!((g[[1, 3]] as f64 + exact).abs() <= 1e-6 * exact);
    // Weighted and pos-weighted, the sum stays finite at the extremes.
    let row = x.slice(ndarray::s![0..1, ..]);
    let row_t = t.slice(ndarray::s![0..1, ..]);
    let sum = BceWithLogits::new()
        .with_reduction(Reduction::Sum)
        .with_pos_weight(array![2.0_f32])
        .unwrap()
        .with_weight(array![0.5_f32, 0.25, 1.0, 1.0, 2.0])
        .unwrap()
        .forward(row, row_t)
        .unwrap();
    // 0.5 * 1e30 + 0.25 * 2 * 1e30 + 0 + 0 + 2 * 0.5 * 1e30
    let expected = 2e30;
    assert!((sum as f64 - expected).abs() <= 1e-6 * expected);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let loss = BceWithLogits::<f64>::new();
    let x = Array2::<f64>::zeros((2, 3));
    let t = array![[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
    assert_binary_shell_errors(&loss, "logits", &x);
    // weight shape
    let e = BceWithLogits::new()
        .with_weight(array![[1.0], [1.0], [1.0]])
        .unwrap()
        .forward(x.view(), t.view())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "weight: expected shape broadcastable to [2, 3], got [3, 1]"
    );
    // pos_weight length
    let e = BceWithLogits::new()
        .with_pos_weight(array![1.0, 2.0])
        .unwrap()
        .forward(x.view(), t.view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::ShapeMismatch {
            what: "pos_weight",
            ..
        }
    ));
    assert_eq!(e.to_string(), "pos_weight: expected shape [3], got [2]");
    let e = BceWithLogits::new()
        .with_pos_weight(Array1::zeros(0))
        .unwrap()
        .forward(x.view(), t.view())
        .unwrap_err();
    assert_eq!(e.to_string(), "pos_weight: expected shape [3], got [0]");
    // invalid weights
    let new = BceWithLogits::<f64>::new;
    assert_weights_rejected("pos_weight", |w| new().with_pos_weight(w));
    assert_weights_rejected("weight", |w| new().with_weight(w));
    // rank 0
    let scalar = ArrayD::<f64>::zeros(IxDyn(&[]));
    let e = BceWithLogits::<f64, IxDyn>::spatial()
        .forward(scalar.view(), scalar.view())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::RankMismatch {
            what: "logits",
            actual: 0,
            ..
        }
    ));
}

/// The vectorized path checks the targets a block at a time, chunks in
/// parallel; the error still names the first target outside `[0, 1]` in
/// logical order, whichever call and thread count, while `-0` and the
/// ends pass.
#[test]
fn an_invalid_target_deep_in_a_large_batch_is_named_first_in_order() {
    fn check<L>(loss: &L)
    where
        L: for<'a> Differentiable<
                f32,
                Input<'a> = ndarray::ArrayView2<'a, f32>,
                Target<'a> = ndarray::ArrayView2<'a, f32>,
                GradMut<'a> = ndarray::ArrayViewMut2<'a, f32>,
            >,
    {
        // 3 x 20000: beyond one parallel chunk (16384 elements) of blocks.
        let x = random_array(&[3, 20000], 7, 4.0).mapv(|v| v as f32);
        let x = x.into_dimensionality::<ndarray::Ix2>().unwrap();
        let mut t = Array2::<f32>::from_shape_fn((3, 20000), |(i, j)| ((i + j) % 3) as f32 / 2.0);
        t[[0, 5]] = -0.0;
        t[[1, 19999]] = 1.0;
        let mut g = Array2::<f32>::zeros((3, 20000));
        assert!(loss.forward_backward_into(&x, &t, &mut g).is_ok());
        // A later chunk's bad target, then an earlier one: the earlier is
        // named.
        t[[2, 19000]] = f32::NAN;
        t[[2, 300]] = -1e-45;
        let named = |e: Error| match e {
            Error::InvalidTarget {
                what: "targets",
                index,
                value,
                ..
            } => (index, value),
            other => panic!("{other}"),
        };
        let expected = (vec![2, 300], -1e-45_f32 as f64);
        assert_eq!(named(loss.forward(&x, &t).unwrap_err()), expected);
        let e = loss.forward_backward_into(&x, &t, &mut g).unwrap_err();
        assert_eq!(named(e), expected);
        let e = loss.per_sample(&x, &t).err().expect("an error");
        assert_eq!(named(e), expected);
        t[[2, 300]] = 0.5;
        let e = loss.forward(&x, &t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "targets[2, 19000]: expected a value in [0, 1], got NaN"
        );
        t[[2, 19000]] = 1.0000001;
        let e = loss.forward_backward_into(&x, &t, &mut g).unwrap_err();
        assert_eq!(
            e.to_string(),
            "targets[2, 19000]: expected a value in [0, 1], got 1.0000001192092896"
        );
    }
    check(&BceWithLogits::<f32>::new());
    check(&classloss::SigmoidFocal::<f32>::new());
}

fn logits_and_targets(range: f64) -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    inputs_and_targets(-range..range, 0.0f64..=1.0)
}

proptest! {
    #[test]
    fn equals_bce_of_the_sigmoid_where_no_clamp_applies((x, t) in logits_and_targets(15.0)) {
        // |x| <= 15 keeps sigmoid and 1 - sigmoid accurate in f64 and far
        // from BCE's clamp, so the two losses must agree.
        let p = x.mapv(sigmoid);
        let w = Array1::linspace(0.5, 2.0, x.ncols());
        let a = BceWithLogits::new().with_weight(w.clone()).unwrap().with_reduction(Reduction::None);
        let b = Bce::new().with_weight(w).unwrap().with_reduction(Reduction::None);
        let la = a.per_sample(x.view(), t.view()).unwrap();
        let lb = b.per_sample(p.view(), t.view()).unwrap();
        for (u, v) in la.iter().zip(lb.iter()) {
            prop_assert!((u - v).abs() <= 1e-8 * (1.0 + v.abs()), "{} vs {}", u, v);
        }
        // Chain rule: dl/dx = dl/dp * p (1 - p).
        let ga = a.backward(x.view(), t.view()).unwrap();
        let gb = b.backward(p.view(), t.view()).unwrap();
        for ((u, v), pi) in ga.iter().zip(gb.iter()).zip(p.iter()) {
            let chained = v * pi * (1.0 - pi);
            prop_assert!((u - chained).abs() <= 1e-8 * (1.0 + u.abs()), "{} vs {}", u, chained);
        }
    }

    #[test]
    fn per_sample_values_sum_to_the_sum_reduction((x, t) in logits_and_targets(50.0)) {
        let pw = Array1::linspace(0.5, 3.0, x.ncols());
        let loss = BceWithLogits::new().with_pos_weight(pw).unwrap();
        let per = loss.clone().with_reduction(Reduction::None).per_sample(x.view(), t.view()).unwrap();
        let sum = loss.clone().with_reduction(Reduction::Sum).forward(x.view(), t.view()).unwrap();
        let mean = loss.forward(x.view(), t.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum.abs()));
        prop_assert!((mean - sum / x.len() as f64).abs() <= 1e-12 * (1.0 + mean.abs()));
        prop_assert!(per.iter().all(|&v| v.is_finite() && v >= 0.0));
    }

    #[test]
    fn f32_agrees_with_f64((x, t) in logits_and_targets(30.0)) {
        let x32 = x.mapv(|v| v as f32);
        let t32 = t.mapv(|v| v as f32);
        let x64 = x32.mapv(f64::from);
        let t64 = t32.mapv(f64::from);
        let pw = Array1::linspace(0.5, 2.0, x.ncols());
        let l64 = BceWithLogits::new().with_pos_weight(pw.clone()).unwrap();
        let l32 = BceWithLogits::new().with_pos_weight(pw.mapv(|v| v as f32)).unwrap();
        let (a, ga) = l64.forward_backward(x64.view(), t64.view()).unwrap();
        let (b, gb) = l32.forward_backward(x32.view(), t32.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        prop_assert!(ga.iter().zip(gb.iter()).all(|(p, q)| (p - *q as f64).abs() <= 1e-6));
    }

    #[test]
    fn huge_f32_logits_are_linear_in_the_wrong_direction(
        scale in 1e20f32..1e30, t in 0.0f32..=1.0, pw in 0.0f32..4.0,
    ) {
        // softplus(x) = x exactly once e^-x vanishes: l = (1 - t) x at +x,
        // pw t x at -x, and the gradient is (1 - t) and -pw t.
        let loss = BceWithLogits::new().with_reduction(Reduction::None).with_pos_weight(array![pw]).unwrap();
        let x = array![[scale, -scale]];
        let tt = array![[t, t]];
        let per = loss.per_sample(x.view(), tt.view()).unwrap();
        let g = loss.backward(x.view(), tt.view()).unwrap();
        prop_assert!(per.iter().chain(g.iter()).all(|v| v.is_finite()));
        prop_assert!((per[[0, 0]] - (1.0 - t) * scale).abs() <= 1e-6 * scale);
        prop_assert!((per[[0, 1]] - pw * t * scale).abs() <= 1e-6 * scale);
        prop_assert!((g[[0, 0]] - (1.0 - t)).abs() <= 1e-6);
        prop_assert!((g[[0, 1]] + pw * t).abs() <= 1e-6);
    }
}

/// With a `pos_weight`, a sample's loss beyond `f32` (`2.5 * 1.6e38 =
/// 4e38`) is reported with its magnitude (the element losses are computed
/// in `f64`), and the mean that fits, `1e38`, is returned.
#[test]
fn a_sample_beyond_f32_is_reported_with_its_magnitude() {
    let x = array![[-1.6e38_f32, 0.0, 0.0, 0.0]];
    let t = array![[1.0_f32, 0.0, 0.0, 0.0]];
    let loss = BceWithLogits::new()
        .with_pos_weight(array![2.5_f32])
        .unwrap();
    let e = loss.per_sample(&x, &t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits[0, 0]: the sample's loss overflows f32: expected at most 3.4028235e38, \
         got about 4.000e38"
    );
    let mean = loss.forward(&x, &t).unwrap();
    assert!((f64::from(mean) / 1e38 - 1.0).abs() < 1e-6, "{mean}");
}
