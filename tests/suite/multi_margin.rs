//! Multi-margin loss: the contract (away from kinks), gradients one-sided at
//! a kink, properties, errors, overflow. (Reference values:
//! `tests/conformance`.)

use crate::common::{
    assert_option_rejects, assert_weights_rejected, matrix, random_array, random_labels, vector,
};
use crate::contract::{Case, Labeled, REDUCTIONS, check_contract};
use crate::labels::{assert_label_errors, labeled_rows};
use classloss::gradcheck::GradCheck;
use classloss::{Differentiable, Error, Loss, MultiMargin, Reduction};
use ndarray::{Array1, Array2, ArrayView2, array};
use proptest::prelude::*;

fn loss(
    reduction: Reduction,
    p: u32,
    margin: f64,
    weight: Option<&Array1<f64>>,
) -> MultiMargin<f64> {
    let l = MultiMargin::new()
        .with_reduction(reduction)
        .with_p(p)
        .unwrap()
        .with_margin(margin)
        .unwrap();
    match weight {
        Some(w) => l.with_weight(w.clone()).unwrap(),
        None => l,
    }
}

/// Logits in `[-2, 2]` nudged until every `z = margin - x_y + x_j` is at
/// least 0.02 from the kink, with labels in `0..C`.
fn batch(n: usize, c: usize, seed: u64, margin: f64) -> (Array2<f64>, Array1<usize>) {
    let mut x = matrix(random_array(&[n, c], seed, 2.0));
    let y = vector(random_labels(&[n], c, seed + 1));
    for i in 0..n {
        for j in 0..c {
            while j != y[i] && (margin - x[[i, y[i]]] + x[[i, j]]).abs() < 0.02 {
                x[[i, j]] += 0.05;
            }
        }
    }
    (x, y)
}

#[test]
fn contract() {
    let weight = Array1::from(vec![0.3, 1.7, 0.9, 1.2, 0.5]);
    for (seed, margin) in [(1u64, 1.0), (2, 0.7), (3, 0.0), (4, 2.5)] {
        let (x, y) = batch(6, 5, seed, margin);
        let args = Labeled::new(x, y);
        for p in [1, 2] {
            for w in [None, Some(&weight)] {
                let what = format!("margin={margin} p={p} weight={}", w.is_some());
                let mut case = Case::new(what, args.clone());
                if w.is_some() {
                    case = case.misshapen("weight", args.with_extra_class());
                }
                check_contract(&loss(Reduction::Mean, p, margin, w), &case);
            }
        }
    }
}

/// With `p = 1`, a term on its kink `z = 0` is inactive (PyTorch's strict
/// `z > 0`): its gradient is 0, which lies between the one-sided
/// derivatives along both logits it involves.
#[test]
fn subgradient_at_a_kink_is_zero_and_between_the_one_sided_derivatives() {
    // z_01 = 1 - 1.5 + 0.5 = 0 exactly; z_02 = -3.5 is inactive.
    let x = array![[1.5, 0.5, -3.0], [0.0, 2.0, 1.0]];
    let y = array![0_usize, 1];
    for w in [None, Some(array![2.0, 0.5, 1.0])] {
        let l = loss(Reduction::Sum, 1, 1.0, w.as_ref());
        let w0 = w.as_ref().map_or(1.0, |w| w[0]);
        let grad = l.backward(x.view(), y.view()).unwrap();
        assert_eq!(grad.row(0).to_vec(), vec![0.0, 0.0, 0.0]);
        let f = |j: usize, t: f64| {
            let mut z = x.clone();
            z[[0, j]] = t;
            l.forward(z.view(), y.view()).unwrap()
        };
        let h = 1e-6;
        // Along x_01 (the other class): flat to the left, w / C to the right.
        // Along x_00 (the true class): -w / C to the left, flat to the right.
        for (j, expect_left, expect_right) in [(1, 0.0, w0 / 3.0), (0, -w0 / 3.0, 0.0)] {
            let at = x[[0, j]];
            let left = (f(j, at) - f(j, at - h)) / h;
            let right = (f(j, at + h) - f(j, at)) / h;
            assert!((left - expect_left).abs() < 1e-6, "j={j} left {left}");
            assert!((right - expect_right).abs() < 1e-6, "j={j} right {right}");
            assert!(left <= grad[[0, j]] && grad[[0, j]] <= right);
        }
    }
}

/// With `p = 2` the loss is differentiable at the kink; a two-sided check
/// with a small step (the second derivative jumps there) passes.
#[test]
fn squared_terms_are_differentiable_at_the_kink() {
    let x = array![[1.5, 0.5, -3.0], [0.0, 2.0, 1.0]];
    let y = array![0_usize, 1];
    let check = GradCheck {
        step: 1e-8,
        ..GradCheck::default()
    };
    for reduction in REDUCTIONS {
        let l = loss(reduction, 2, 1.0, None);
        let grad = l.backward(x.view(), y.view()).unwrap();
        let f = |z: &[f64]| {
            let z = ArrayView2::from_shape((2, 3), z).unwrap();
            l.forward(z, y.view()).unwrap()
        };
        if let Err(e) = check.check(f, x.as_slice().unwrap(), grad.as_slice().unwrap()) {
            panic!("p = 2 at the kink, {reduction}: {e}");
        }
    }
}

#[test]
fn class_weight_multiplies_after_the_power() {
    // z = 1 - 0 + 0.5 = 1.5; PyTorch: w_y * z^2 / C = 3 * 2.25 / 2.
    let l = MultiMargin::new()
        .with_p(2)
        .unwrap()
        .with_weight(array![3.0, 1.0])
        .unwrap();
    let (v, g) = l
        .forward_backward(array![[0.0_f64, 0.5]].view(), array![0_usize].view())
        .unwrap();
    assert_eq!(v, 3.375);
    // d/dx_1 = w_y * 2 z / C = 3 * 3 / 2.
    assert_eq!(g, array![[-4.5, 4.5]]);
}

#[test]
fn weighted_mean_divides_by_n_not_by_the_weights() {
    let x = array![[0.0_f64, 0.5], [0.2, 0.1]];
    let y = array![0_usize, 1];
    let w = array![3.0, 0.25];
    let mean = MultiMargin::new().with_weight(w.clone()).unwrap();
    let sum = MultiMargin::new()
        .with_weight(w)
        .unwrap()
        .with_reduction(Reduction::Sum);
    let m = mean.forward(x.view(), y.view()).unwrap();
    let s = sum.forward(x.view(), y.view()).unwrap();
    assert_eq!(m, s / 2.0);
}

#[test]
fn column_major_logits_and_buffers_give_the_same_result() {
    let (x, y) = batch(5, 4, 10, 0.7);
    let l = loss(Reduction::Sum, 1, 0.7, None);
    let (a, ga) = l.forward_backward(x.view(), y.view()).unwrap();
    let xt = x.t().to_owned(); // (C, N), row-major
    let (b, gb) = l.forward_backward(xt.t(), y.view()).unwrap();
    assert_eq!(a, b);
    assert_eq!(ga, gb);
    let mut gt = Array2::from_elem((4, 5), 7.0);
    l.forward_backward_into(xt.t(), y.view(), gt.view_mut().reversed_axes())
        .unwrap();
    assert_eq!(gt.t(), ga);
}

#[test]
fn one_class_costs_nothing() {
    let l = MultiMargin::new();
    let (v, g) = l
        .forward_backward(array![[3.0_f64], [-1.0]].view(), array![0_usize, 0].view())
        .unwrap();
    assert_eq!(v, 0.0);
    assert_eq!(g, array![[0.0], [0.0]]);
}

#[test]
fn extreme_f32_logits_stay_finite_and_correct() {
    // In f32, z = 1 + 2e19 and z^2 = 4e38 overflow; the loss 4e38 / 2 fits.
    let l = MultiMargin::<f32>::new()
        .with_p(2)
        .unwrap()
        .with_reduction(Reduction::None);
    let x = array![[-1e19_f32, 1e19], [0.0, 1.0]];
    let y = array![0_usize, 0];
    let per = l.per_sample(x.view(), y.view()).unwrap();
    let exact = (1.0 + 2.0 * (1e19_f32 as f64)).powi(2) / 2.0;
    assert!((per[0] as f64 / exact - 1.0).abs() < 1e-6, "{per}");
    assert_eq!(per[1], 2.0);
    let g = l.backward(x.view(), y.view()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g}");
    assert!((g[[0, 1]] as f64 / (2e19 + 1.0) - 1.0).abs() < 1e-6);
    assert_eq!(g[[0, 0]], -g[[0, 1]]);
    // p = 1 with logits 6e38 apart: z overflows, the loss 3e38 fits.
    let l1 = MultiMargin::<f32>::new().with_reduction(Reduction::None);
    let x = array![[-3e38_f32, 3e38]];
    let per = l1.per_sample(x.view(), array![0_usize].view()).unwrap();
    assert!((per[0] as f64 / 3e38 - 1.0).abs() < 1e-6);
}

#[test]
fn overflow_is_an_error_naming_the_row() {
    let l = MultiMargin::<f32>::new().with_p(2).unwrap();
    let x = array![[0.0_f32, 0.0], [-1e20, 1e20]];
    let y = array![0_usize, 0];
    let e = l.forward(x.view(), y.view()).unwrap_err();
    assert!(matches!(e, Error::Overflow { what: "logits", ref index, .. } if index == &vec![1]));
    assert_eq!(
        e.to_string(),
        "logits[1]: the sample's loss overflows f32: expected at most 3.4028235e38, \
         got about 2.000e40"
    );
    assert!(l.backward(x.view(), y.view()).is_err());
    // A gradient beyond the range while the value fits: with a huge class
    // weight and z = 1.5, w z^2 / 2 = 3.375e38 fits f32 but 2 w z / 2 does not.
    let w = MultiMargin::<f32>::new()
        .with_p(2)
        .unwrap()
        .with_reduction(Reduction::Sum)
        .with_weight(array![3e38_f32, 1.0])
        .unwrap();
    let x = array![[0.0_f32, 0.5]];
    let v = w.forward(x.view(), array![0_usize].view()).unwrap();
    assert!((v as f64 / 3.375e38 - 1.0).abs() < 1e-6);
    let e = w.backward(x.view(), array![0_usize].view()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits[0]: the gradient of the sample's loss overflows f32: expected at most \
         3.4028235e38, got about 4.500e38"
    );
    // A Sum of representable rows beyond the range.
    let sum = MultiMargin::<f32>::new().with_reduction(Reduction::Sum);
    let x = array![[-3e38_f32, 3e38], [-3e38, 3e38]];
    let e = sum
        .forward(x.view(), array![0_usize, 0].view())
        .unwrap_err();
    assert!(matches!(e, Error::Overflow { ref index, .. } if index.is_empty()));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    assert_label_errors(&MultiMargin::new());
    let x = Array2::<f64>::zeros((2, 3));
    let e = MultiMargin::new()
        .with_weight(array![1.0, 1.0])
        .unwrap()
        .forward(x.view(), array![0_usize, 1].view())
        .unwrap_err();
    assert_eq!(e.to_string(), "weight: expected shape [3], got [2]");
    assert_weights_rejected("weight", |w| MultiMargin::<f64>::new().with_weight(w));
    let bad = [(-0.5, "-0.5"), (f64::NAN, "NaN")];
    let set = |m| MultiMargin::<f64>::new().with_margin(m);
    assert_option_rejects("margin", "a finite number >= 0", &bad, set);
    for p in [0, 3] {
        let e = MultiMargin::<f64>::new().with_p(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `p`: expected 1 or 2, got {p}")
        );
    }
}

fn logits_and_labels() -> impl Strategy<Value = (Array2<f64>, Array1<usize>)> {
    labeled_rows(1..6, 1..7, -10.0f64..10.0)
}

fn options() -> impl Strategy<Value = (u32, f64)> {
    (1u32..=2, 0.0f64..3.0)
}

proptest! {
    #[test]
    fn zero_when_the_true_class_leads_by_the_margin((x, y) in logits_and_labels(), (p, margin) in options()) {
        let l = loss(Reduction::None, p, margin, None);
        let per = l.per_sample(x.view(), y.view()).unwrap();
        let g = l.backward(x.view(), y.view()).unwrap();
        for i in 0..x.nrows() {
            let leads = (0..x.ncols()).all(|j| j == y[i] || x[[i, y[i]]] - x[[i, j]] >= margin);
            prop_assert_eq!(per[i] == 0.0, leads);
            if leads {
                prop_assert!(g.row(i).iter().all(|&v| v == 0.0));
            }
        }
    }

    #[test]
    fn gradient_rows_sum_to_zero((x, y) in logits_and_labels(), (p, margin) in options()) {
        let w = Array1::from_iter((0..x.ncols()).map(|c| 0.5 + c as f64));
        let g = loss(Reduction::Sum, p, margin, Some(&w)).backward(x.view(), y.view()).unwrap();
        for row in g.rows() {
            let scale = row.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
            prop_assert!(row.sum().abs() <= 1e-12 * scale);
        }
    }

    #[test]
    fn weight_scales_each_sample_by_its_true_class_weight((x, y) in logits_and_labels(), (p, margin) in options()) {
        let w = Array1::from_iter((0..x.ncols()).map(|c| 0.25 + c as f64));
        let plain = loss(Reduction::None, p, margin, None).per_sample(x.view(), y.view()).unwrap();
        let weighted = loss(Reduction::None, p, margin, Some(&w)).per_sample(x.view(), y.view()).unwrap();
        for i in 0..x.nrows() {
            prop_assert!((weighted[i] - w[y[i]] * plain[i]).abs() <= 1e-12 * (1.0 + weighted[i]));
        }
    }

    #[test]
    fn per_sample_values_sum_to_sum_and_average_to_mean((x, y) in logits_and_labels(), (p, margin) in options()) {
        let per = loss(Reduction::None, p, margin, None).per_sample(x.view(), y.view()).unwrap();
        let sum = loss(Reduction::Sum, p, margin, None).forward(x.view(), y.view()).unwrap();
        let mean = loss(Reduction::Mean, p, margin, None).forward(x.view(), y.view()).unwrap();
        prop_assert!((per.sum() - sum).abs() <= 1e-12 * (1.0 + sum));
        prop_assert!((sum / x.nrows() as f64 - mean).abs() <= 1e-12 * (1.0 + mean));
        prop_assert!(per.iter().all(|&v| v >= 0.0 && v.is_finite()));
    }

    #[test]
    fn f32_agrees_with_f64((x, y) in logits_and_labels(), (p, margin) in options()) {
        let (a, ga) = loss(Reduction::Mean, p, margin, None).forward_backward(x.view(), y.view()).unwrap();
        let l32 = MultiMargin::<f32>::new().with_p(p).unwrap().with_margin(margin).unwrap();
        let (b, gb) = l32.forward_backward(x.mapv(|v| v as f32).view(), y.view()).unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-5 * (1.0 + a.abs()));
        // Away from kinks the gradients agree; within f32 rounding of a kink
        // a term may switch on or off, so compare only rows clear of them.
        for i in 0..x.nrows() {
            let clear = (0..x.ncols()).all(|j| j == y[i] || (margin - x[[i, y[i]]] + x[[i, j]]).abs() > 1e-4);
            if clear {
                for j in 0..x.ncols() {
                    prop_assert!((ga[[i, j]] - gb[[i, j]] as f64).abs() <= 1e-5 * (1.0 + ga[[i, j]].abs()));
                }
            }
        }
    }
}
