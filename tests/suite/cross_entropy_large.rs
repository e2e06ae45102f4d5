//! Cross-entropy's large-model options: PaLM's z-loss and Gemma 2's logit
//! soft cap. The contract under each option and their combinations with
//! class weights, an ignored label, label smoothing, probabilities and
//! spatial inputs; the formulas by hand; the identities (the options off,
//! a huge cap); extreme logits; the option errors. (Reference values:
//! `tests/conformance`, the `cross_entropy_z_loss` cases.)

use crate::common::{assert_option_rejects, matrix, random_array, random_probs};
use crate::contract::{Case, Paired, check_contract, scaled};
use crate::cross_entropy::{contract_on_labels_with, labels_for};
use classloss::{ClassTarget, CrossEntropy, Differentiable, Error, Loss, Reduction};
use ndarray::{Array1, Array2, Axis, Ix3, IxDyn, array};

/// The option pairs `(z_loss, softcap)` each contract runs with.
const OPTIONS: [(f64, Option<f64>); 3] = [(0.05, None), (0.0, Some(2.0)), (0.1, Some(2.5))];

#[test]
fn contract() {
    // (N, C) as Ix2, and spatial (N, C, d) as IxDyn (the row path on
    // strided lanes: the options leave the column kernels).
    let (x, y) = (random_array(&[6, 5], 31, 3.0), labels_for(&[6, 5], 41));
    contract_on_labels_with(matrix(x), crate::common::vector(y), &OPTIONS);
    contract_on_labels_with(
        random_array(&[3, 5, 4], 32, 3.0),
        labels_for(&[3, 5, 4], 42),
        &OPTIONS,
    );
    // Probabilities: every position counts with weight 1; the mean divides
    // by the number of positions.
    let weight = array![0.3, 1.7, 0.9, 1.2];
    for shape in [vec![5, 4], vec![2, 4, 3]] {
        let args = Paired::new(
            random_array(&shape, 33, 2.0),
            random_probs(&shape, 34),
            "probs",
        );
        for (z, cap) in OPTIONS {
            for use_weight in [false, true] {
                let mut ce = CrossEntropy::<f64, IxDyn>::spatial()
                    .with_label_smoothing(0.1)
                    .and_then(|ce| ce.with_z_loss(z))
                    .and_then(|ce| ce.with_softcap(cap))
                    .unwrap();
                let what = format!("probs {shape:?} z={z} cap={cap:?} weight={use_weight}");
                let mut case = Case::new(what, args.clone());
                if use_weight {
                    ce = ce.with_weight(weight.clone()).unwrap();
                    case = case.misshapen("weight", args.with_extra_class());
                }
                if cap.is_none() {
                    case = case.extremes(vec![scaled(&args, 1e30), scaled(&args, -1e30)]);
                }
                check_contract(&ce, &case);
            }
        }
    }
}

/// A spatial `(N, C, d)` input as the `(N d, C)` matrix of its class
/// lanes, in the labels' order.
fn lanes_as_rows(x: &ndarray::Array3<f64>) -> Array2<f64> {
    let (n, c, d) = x.dim();
    x.view()
        .permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_shape_with_order((n * d, c))
        .unwrap()
        .into_owned()
}

/// `log_softmax` and `logsumexp` of a row, plainly in `f64`.
fn lse(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[test]
fn z_loss_is_the_row_weight_times_z_lse_squared() {
    // With class weights, an ignored label and smoothing: each counted
    // row's value is the plain one plus w_y z lse^2, its gradient the
    // plain one plus scale w_y 2 z lse p; the mean divides by the same sum
    // of w_y.
    let x = matrix(random_array(&[7, 5], 51, 4.0));
    let y = array![0_usize, 3, 4, 1, 3, 2, 0];
    let weight = array![0.3, 1.7, 0.9, 1.2, 0.5];
    let z = 0.02;
    for eps in [0.0, 0.3] {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let plain = CrossEntropy::new()
                .with_reduction(reduction)
                .with_weight(weight.clone())
                .and_then(|ce| ce.with_label_smoothing(eps))
                .unwrap()
                .with_ignore_index(3);
            let with_z = plain.clone().with_z_loss(z).unwrap();
            let kept: Vec<usize> = (0..7).filter(|&i| y[i] != 3).collect();
            let divisor: f64 = kept.iter().map(|&i| weight[y[i]]).sum();
            let scale = if reduction == Reduction::Mean {
                1.0 / divisor
            } else {
                1.0
            };
            let per0 = plain.per_sample(x.view(), y.view()).unwrap();
            let per = with_z.per_sample(x.view(), y.view()).unwrap();
            let g0 = plain.backward(x.view(), y.view()).unwrap();
            let g = with_z.backward(x.view(), y.view()).unwrap();
            let mut total = 0.0;
            for i in 0..7 {
                let row = x.row(i).to_vec();
                let l = lse(&row);
                let (w, counted) = (weight[y[i]], y[i] != 3);
                let want = if counted {
                    per0[i] + w * z * l * l
                } else {
                    0.0
                };
                assert!(
                    (per[i] - want).abs() < 1e-13,
                    "row {i}: {} vs {want}",
                    per[i]
                );
                total += want;
                for c in 0..5 {
                    let p = (row[c] - l).exp();
                    let extra = if counted {
                        scale * w * 2.0 * z * l * p
                    } else {
                        0.0
                    };
                    assert!((g[[i, c]] - (g0[[i, c]] + extra)).abs() < 1e-14);
                }
            }
            let want = if reduction == Reduction::Mean {
                total / divisor
            } else {
                total
            };
            let got = with_z.forward(x.view(), y.view()).unwrap();
            assert!((got - want).abs() < 1e-13, "{reduction}: {got} vs {want}");
        }
    }
}

#[test]
fn softcap_is_the_loss_of_the_capped_logits_with_the_chain_rule() {
    let x = matrix(random_array(&[6, 5], 52, 8.0));
    let y = array![0_usize, 3, 4, 1, 3, 2];
    let cap = 3.0;
    let capped = x.mapv(|v| cap * (v / cap).tanh());
    for eps in [0.0, 0.2] {
        for z in [0.0, 0.01] {
            let plain = CrossEntropy::new()
                .with_label_smoothing(eps)
                .and_then(|ce| ce.with_z_loss(z))
                .unwrap()
                .with_ignore_index(3);
            let ce = plain.clone().with_softcap(Some(cap)).unwrap();
            let (v, g) = ce.forward_backward(x.view(), y.view()).unwrap();
            let (v0, g0) = plain.forward_backward(capped.view(), y.view()).unwrap();
            assert!((v - v0).abs() < 1e-14, "{v} vs {v0}");
            for ((&gx, &gc), &xv) in g.iter().zip(g0.iter()).zip(x.iter()) {
                let slope = 1.0 - (xv / cap).tanh().powi(2);
                assert!((gx - gc * slope).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn options_off_are_the_plain_loss_bit_for_bit() {
    // z = 0 and no cap, set explicitly, take the plain loss's paths (the
    // spatial input its column kernels).
    let x2 = matrix(random_array(&[9, 5], 53, 3.0));
    let y2 = crate::common::vector(labels_for(&[9, 5], 54));
    let x3 = random_array(&[3, 5, 7], 55, 3.0);
    let y3 = labels_for(&[3, 5, 7], 56);
    for eps in [0.0, 0.2] {
        let plain = CrossEntropy::new().with_label_smoothing(eps).unwrap();
        let off = plain
            .clone()
            .with_z_loss(0.0)
            .unwrap()
            .with_softcap(None)
            .unwrap();
        let a = plain.forward_backward(x2.view(), y2.view()).unwrap();
        let b = off.forward_backward(x2.view(), y2.view()).unwrap();
        assert_eq!(a.0.to_bits(), b.0.to_bits());
        assert_eq!(a.1, b.1);
        let plain = CrossEntropy::<f64, IxDyn>::spatial()
            .with_label_smoothing(eps)
            .unwrap();
        let off = plain.clone().with_z_loss(0.0).unwrap();
        let a = plain.forward_backward(x3.view(), y3.view()).unwrap();
        let b = off.forward_backward(x3.view(), y3.view()).unwrap();
        assert_eq!(a.0.to_bits(), b.0.to_bits());
        assert_eq!(a.1, b.1);
    }
}

#[test]
fn a_huge_cap_approaches_the_plain_loss() {
    let x = matrix(random_array(&[6, 5], 57, 3.0));
    let y = array![0_usize, 3, 4, 1, 3, 2];
    let plain = CrossEntropy::new();
    let (v0, g0) = plain.forward_backward(x.view(), y.view()).unwrap();
    // Within 1e-8 of the logits the cap is the identity, exactly.
    let capped = plain.clone().with_softcap(Some(1e12)).unwrap();
    let (v, g) = capped.forward_backward(x.view(), y.view()).unwrap();
    assert_eq!(v, v0);
    assert!((&g - &g0).iter().all(|d| d.abs() < 1e-15));
    // Beyond it, the error shrinks as (x / cap)^2.
    let mut last = f64::INFINITY;
    for cap in [1e1, 1e2, 1e3, 1e4] {
        let ce = plain.clone().with_softcap(Some(cap)).unwrap();
        let err = (ce.forward(x.view(), y.view()).unwrap() - v0).abs();
        assert!(err < 100.0 / (cap * cap) && err < last, "cap {cap}: {err}");
        last = err;
    }
}

#[test]
fn spatial_inputs_agree_with_their_rows() {
    // (N, C, d) with every option equals the (N d, C) matrix of its lanes.
    let x3 = random_array(&[2, 5, 3], 58, 4.0)
        .into_dimensionality::<Ix3>()
        .unwrap();
    let y = ndarray::array![[0_usize, 3, 4], [1, 3, 2]];
    let rows = lanes_as_rows(&x3);
    let y_rows: Array1<usize> = y.iter().copied().collect();
    let weight = array![0.3, 1.7, 0.9, 1.2, 0.5];
    let spatial = CrossEntropy::<f64, Ix3>::spatial()
        .with_weight(weight.clone())
        .and_then(|ce| ce.with_label_smoothing(0.1))
        .and_then(|ce| ce.with_z_loss(0.03))
        .and_then(|ce| ce.with_softcap(Some(2.0)))
        .unwrap()
        .with_ignore_index(3)
        .with_reduction(Reduction::None);
    let flat = CrossEntropy::new()
        .with_weight(weight)
        .and_then(|ce| ce.with_label_smoothing(0.1))
        .and_then(|ce| ce.with_z_loss(0.03))
        .and_then(|ce| ce.with_softcap(Some(2.0)))
        .unwrap()
        .with_ignore_index(3)
        .with_reduction(Reduction::None);
    let per3 = spatial.per_sample(x3.view(), y.view()).unwrap();
    let per2 = flat.per_sample(rows.view(), y_rows.view()).unwrap();
    for (a, b) in per3.iter().zip(per2.iter()) {
        assert!((a - b).abs() < 1e-13);
    }
    let g3 = spatial.backward(x3.view(), y.view()).unwrap();
    let g2 = flat.backward(rows.view(), y_rows.view()).unwrap();
    let g3_rows = g3.permuted_axes([0, 2, 1]);
    for (a, b) in g3_rows.iter().zip(g2.iter()) {
        assert!((a - b).abs() < 1e-15);
    }
}

#[test]
fn f32_logits_near_1e19_keep_their_z_loss() {
    // lse^2 = 1e38 is near f32's maximum: computed in f64, z lse^2 is
    // finite and right while it fits f32, an Overflow naming the row once
    // it does not.
    let x = array![[1e19_f32, 0.0, -1e19], [1.0, 2.0, 3.0]];
    let y = array![1_usize, 2];
    let ce = CrossEntropy::new()
        .with_reduction(Reduction::None)
        .with_z_loss(1e-4)
        .unwrap();
    let per = ce.per_sample(x.view(), y.view()).unwrap();
    let want = 1e19 + 1e-4 * 1e38;
    assert!(((per[0] as f64) / want - 1.0).abs() < 1e-6, "{}", per[0]);
    let (v, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert!(v.is_finite() && g.iter().all(|v| v.is_finite()));
    // d/dx_0 = (1 + 2 z lse) p_0 = 1 + 2e15.
    assert!(((g[[0, 0]] as f64) / (1.0 + 2e15) - 1.0).abs() < 1e-6);
    let ce = ce.with_z_loss(10.0).unwrap();
    let e = ce.forward(x.view(), y.view()).unwrap_err();
    assert!(
        matches!(&e, Error::Overflow { what: "logits", index, .. } if index == &vec![0]),
        "{e}"
    );
    // A negative lse: the row's logits near -1e19.
    let x = array![[-1e19_f32, -1e19, -1e19]];
    let ce = CrossEntropy::new().with_z_loss(1e-4).unwrap();
    let (v, g) = ce
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert!(((v as f64) / (1e-4 * 1e38) - 1.0).abs() < 1e-6);
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn softcap_saturates_without_nan() {
    // Logits at the float maximum: capped to +-cap, slope 0 there.
    let x = array![[3e38_f32, -3e38, 0.5], [f32::MAX, f32::MAX, -f32::MAX]];
    let y = array![1_usize, 2];
    let ce = CrossEntropy::new()
        .with_softcap(Some(30.0))
        .and_then(|ce| ce.with_z_loss(1e-4))
        .unwrap();
    let (v, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert!(v.is_finite());
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g[[0, 0]], 0.0);
    assert_eq!(g[[1, 2]], 0.0);
    assert!(g[[0, 2]] != 0.0);
    let x = array![[1e308_f64, -1e308, 1.0]];
    let ce = CrossEntropy::new().with_softcap(Some(1e-300)).unwrap();
    let (v, g) = ce
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert!(v.is_finite() && g.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_option_values_are_typed_errors() {
    let bad = [(-1.0, "-1"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")];
    let set = |z| CrossEntropy::<f64>::new().with_z_loss(z);
    assert_option_rejects("z_loss", "a finite number >= 0", &bad, set);
    let bad = [
        (0.0, "0"),
        (-2.0, "-2"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ];
    let set = |cap| CrossEntropy::<f64>::new().with_softcap(Some(cap));
    assert_option_rejects("softcap", "a finite number > 0", &bad, set);
    // The getters give back what was set.
    let ce = CrossEntropy::<f32>::new()
        .with_z_loss(1e-4)
        .and_then(|ce| ce.with_softcap(Some(30.0)))
        .unwrap();
    assert_eq!((ce.z_loss(), ce.softcap()), (1e-4, Some(30.0)));
    assert_eq!(ce.with_softcap(None).unwrap().softcap(), None);
}

#[test]
fn probabilities_take_the_z_loss_with_weight_one() {
    let x = matrix(random_array(&[4, 3], 59, 3.0));
    let q = matrix(random_probs(&[4, 3], 60));
    let weight = array![0.5, 2.0, 1.0];
    let plain = CrossEntropy::new().with_weight(weight).unwrap();
    let with_z = plain.clone().with_z_loss(0.1).unwrap();
    let v0 = plain
        .forward(x.view(), ClassTarget::Probs(q.view()))
        .unwrap();
    let v = with_z
        .forward(x.view(), ClassTarget::Probs(q.view()))
        .unwrap();
    let extra: f64 = x
        .axis_iter(Axis(0))
        .map(|r| 0.1 * lse(&r.to_vec()).powi(2))
        .sum::<f64>()
        / 4.0;
    assert!((v - (v0 + extra)).abs() < 1e-13);
}

#[test]
fn tiny_class_weights_keep_the_options() {
    // The mean is the same for weights scaled by any factor: subnormal
    // weights in the ratio 1 : 2 : 3 (exactly: 1000, 2000 and 3000 times
    // the smallest subnormal; f32's route through f64, f64's exact
    // rescale) give the mean of the weights 1, 2, 3, z-loss and soft cap
    // included.
    let x = matrix(random_array(&[5, 3], 61, 3.0));
    let y = array![0_usize, 2, 1, 1, 0];
    let build = |w: Array1<f64>| {
        CrossEntropy::new()
            .with_weight(w)
            .and_then(|ce| ce.with_label_smoothing(0.1))
            .and_then(|ce| ce.with_z_loss(0.05))
            .and_then(|ce| ce.with_softcap(Some(2.0)))
            .unwrap()
    };
    let (want, g_want) = build(array![1.0, 2.0, 3.0])
        .forward_backward(x.view(), y.view())
        .unwrap();
    let (v, g) = build(
        [1000, 2000, 3000]
            .iter()
            .map(|&b| f64::from_bits(b))
            .collect(),
    )
    .forward_backward(x.view(), y.view())
    .unwrap();
    assert!((v - want).abs() < 1e-13, "{v} vs {want}");
    assert!((&g - &g_want).iter().all(|d| d.abs() < 1e-13));
    let x32 = x.mapv(|v| v as f32);
    let ce32 = CrossEntropy::<f32>::new()
        .with_weight(
            [1000, 2000, 3000]
                .iter()
                .map(|&b| f32::from_bits(b))
                .collect(),
        )
        .and_then(|ce| ce.with_label_smoothing(0.1))
        .and_then(|ce| ce.with_z_loss(0.05))
        .and_then(|ce| ce.with_softcap(Some(2.0)))
        .unwrap();
    let (v, g) = ce32.forward_backward(x32.view(), y.view()).unwrap();
    assert!((v as f64 - want).abs() < 1e-5, "{v} vs {want}");
    assert!(
        g.iter()
            .zip(g_want.iter())
            .all(|(a, b)| (*a as f64 - b).abs() < 1e-5)
    );
}

/// The losses the per-token weight and log-sum-exp tests run: every
/// option of the labels path, alone and together.
fn weighted_token_losses() -> Vec<(String, CrossEntropy<f64>)> {
    let w = array![0.5, 2.0, 1.0, 0.25, 1.5];
    let mut out = Vec::new();
    for (smoothing, z, cap, weights, ignore) in [
        (0.0, 0.0, None, false, false),
        (0.1, 0.0, None, true, true),
        (0.0, 0.05, Some(2.5), false, true),
        (0.2, 0.01, Some(3.0), true, false),
    ] {
        for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let mut ce = CrossEntropy::<f64>::new()
                .with_label_smoothing(smoothing)
                .and_then(|c| c.with_z_loss(z))
                .and_then(|c| c.with_softcap(cap))
                .unwrap()
                .with_reduction(r);
            if weights {
                ce = ce.with_weight(w.clone()).unwrap();
            }
            if ignore {
                ce = ce.with_ignore_index(3);
            }
            let what = format!("eps {smoothing} z {z} cap {cap:?} w {weights} ignore {ignore} {r}");
            out.push((what, ce));
        }
    }
    out
}

#[test]
fn integer_token_weights_are_repeated_rows() {
    // A token of weight k counts as k copies of its row: value, per-sample
    // values and gradient (each row's the sum of its copies').
    let x = matrix(random_array(&[6, 5], 71, 3.0));
    let y = array![0_i64, 3, 1, 4, 3, 2];
    let t = array![2.0, 1.0, 0.0, 3.0, 1.0, 2.0];
    let copies: Vec<usize> = t.iter().map(|&k| k as usize).collect();
    let rows: Vec<usize> = (0..6)
        .flat_map(|i| std::iter::repeat_n(i, copies[i]))
        .collect();
    let x_rep = x.select(Axis(0), &rows);
    let y_rep = y.select(Axis(0), &rows);
    for (what, ce) in weighted_token_losses() {
        let weighted = ClassTarget::WeightedLabels {
            labels: (&y).into(),
            weights: t.view(),
        };
        let (value, grad) = ce.forward_backward(&x, weighted.clone()).unwrap();
        let (want, grad_rep) = ce.forward_backward(&x_rep, &y_rep).unwrap();
        assert!(
            (value - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{what}: {value} vs {want}"
        );
        let mut summed = Array2::<f64>::zeros((6, 5));
        for (k, &i) in rows.iter().enumerate() {
            let mut row = summed.row_mut(i);
            row += &grad_rep.row(k);
        }
        let worst = (&grad - &summed)
            .iter()
            .fold(0.0_f64, |m, d| m.max(d.abs()));
        assert!(worst <= 1e-13, "{what}: gradient off by {worst}");
        let per = ce.per_sample(&x, weighted).unwrap();
        let per_rep = ce.per_sample(&x_rep, &y_rep).unwrap();
        for i in 0..6 {
            let want: f64 = (0..rows.len())
                .filter(|&k| rows[k] == i)
                .map(|k| per_rep[k])
                .sum();
            assert!((per[i] - want).abs() <= 1e-12, "{what}: row {i}");
        }
    }
}

#[test]
fn token_weights_match_finite_differences_and_spatial_rows() {
    let x = matrix(random_array(&[5, 5], 72, 2.0));
    let y = array![1_i64, 3, 0, 4, 2];
    let t = array![0.3, 1.7, 0.0, 2.5, 1.0];
    for (what, ce) in weighted_token_losses() {
        let target = || ClassTarget::WeightedLabels {
            labels: (&y).into(),
            weights: t.view(),
        };
        let (_, grad) = ce.forward_backward(&x, target()).unwrap();
        let f = |v: &[f64]| {
            let x = Array2::from_shape_vec((5, 5), v.to_vec()).unwrap();
            ce.forward(&x, target()).unwrap()
        };
        let flat: Vec<f64> = x.iter().copied().collect();
        let analytic: Vec<f64> = grad.iter().copied().collect();
        classloss::gradcheck::GradCheck::default()
            .check(f, &flat, &analytic)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // Spatial (N, C, d): the same as its positions as rows.
    let xs = random_array(&[2, 5, 3], 73, 2.0)
        .into_dimensionality::<Ix3>()
        .unwrap();
    let ys = array![[1_i64, 3, 0], [4, 2, 2]];
    let ts = array![[0.5, 1.0, 2.0], [0.0, 1.5, 1.0]];
    let rows = lanes_as_rows(&xs);
    let yr = ys.clone().into_shape_with_order(6).unwrap();
    let tr = ts.clone().into_shape_with_order(6).unwrap();
    let spatial = CrossEntropy::<f64, Ix3>::spatial()
        .with_z_loss(0.05)
        .unwrap();
    let flat = CrossEntropy::<f64>::new().with_z_loss(0.05).unwrap();
    let a = spatial
        .forward(
            &xs,
            ClassTarget::WeightedLabels {
                labels: (&ys).into(),
                weights: ts.view(),
            },
        )
        .unwrap();
    let b = flat
        .forward(
            &rows,
            ClassTarget::WeightedLabels {
                labels: (&yr).into(),
                weights: tr.view(),
            },
        )
        .unwrap();
    assert!((a - b).abs() < 1e-14, "{a} vs {b}");
}

#[test]
fn token_weights_edge_cases_and_errors() {
    let x = array![[1.0_f64, 2.0, 3.0], [0.5, 0.0, -1.0]];
    let y = array![0_i64, 2];
    let ce = CrossEntropy::<f64>::new();
    // All weights zero: the mean is 0 with a zero gradient.
    let zeros = array![0.0, 0.0];
    let target = ClassTarget::WeightedLabels {
        labels: (&y).into(),
        weights: zeros.view(),
    };
    let (v, g) = ce.forward_backward(&x, target).unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&v| v == 0.0));
    // A weight of 0 on a row whose loss is beyond f32 counts for nothing.
    let huge = array![[3e38_f32, -3e38, 0.0], [0.0, 1.0, 2.0]];
    let t32 = array![0.0_f32, 1.0];
    let v = CrossEntropy::<f32>::new()
        .forward(
            &huge,
            ClassTarget::WeightedLabels {
                labels: (&array![1_i64, 0]).into(),
                weights: t32.view(),
            },
        )
        .unwrap();
    assert!(v.is_finite());
    // Misshapen and bad weights name `token_weights`.
    for (weights, name) in [
        (array![1.0], "token_weights"),
        (array![1.0, -1.0], "token_weights"),
        (array![1.0, f64::NAN], "token_weights"),
    ] {
        let e = ce
            .forward(
                &x,
                ClassTarget::WeightedLabels {
                    labels: (&y).into(),
                    weights: weights.view(),
                },
            )
            .unwrap_err();
        assert!(e.to_string().starts_with(name), "{e}");
    }
    // Ordinal EMD takes no token weights.
    let emd = classloss::OrdinalEmd::<f64>::new();
    let e = emd
        .forward(
            &x,
            ClassTarget::WeightedLabels {
                labels: (&y).into(),
                weights: zeros.view(),
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedTarget { .. }), "{e}");
}

#[test]
fn lse_is_each_rows_logsumexp_of_the_capped_logits() {
    let x = matrix(random_array(&[6, 5], 74, 4.0));
    let y = array![0_i64, 3, 1, 4, 3, 2];
    for (what, ce) in weighted_token_losses() {
        let (mut grad, mut lse) = (Array2::zeros((6, 5)), Array1::zeros(6));
        let value = ce
            .forward_backward_lse_into(&x, &y, &mut grad, &mut lse)
            .unwrap();
        let (want, want_grad) = ce.forward_backward(&x, &y).unwrap();
        assert_eq!(value.to_bits(), want.to_bits(), "{what}");
        assert_eq!(grad, want_grad, "{what}");
        for (i, row) in x.rows().into_iter().enumerate() {
            let capped: Vec<f64> = row
                .iter()
                .map(|&v| ce.softcap().map_or(v, |c| c * (v / c).tanh()))
                .collect();
            assert!(
                (lse[i] - self::lse(&capped)).abs() < 1e-14,
                "{what}: row {i}"
            );
        }
    }
    // Spatial: lse shaped like the labels, position by position.
    let xs = random_array(&[2, 5, 3], 75, 2.0)
        .into_dimensionality::<Ix3>()
        .unwrap();
    let ys = array![[1_i64, 3, 0], [4, 2, 2]];
    let (mut g, mut lse) = (ndarray::Array3::zeros((2, 5, 3)), Array2::zeros((2, 3)));
    CrossEntropy::<f64, Ix3>::spatial()
        .forward_backward_lse_into(&xs, &ys, &mut g, &mut lse)
        .unwrap();
    for n in 0..2 {
        for d in 0..3 {
            let lane: Vec<f64> = (0..5).map(|c| xs[[n, c, d]]).collect();
            assert!((lse[[n, d]] - self::lse(&lane)).abs() < 1e-14);
        }
    }
    // A misshapen lse is named, and nothing is written.
    let mut grad = Array2::from_elem((6, 5), 7.0);
    let mut short = Array1::zeros(5);
    let e = CrossEntropy::<f64>::new()
        .forward_backward_lse_into(&x, &y, &mut grad, &mut short)
        .unwrap_err();
    assert!(e.to_string().starts_with("lse"), "{e}");
    assert!(grad.iter().all(|&v| v == 7.0));
    // f32 logits at the maximum: max + ln 3 rounds to the maximum, a
    // finite log-sum-exp (the loss itself is ln 3).
    let near = array![[f32::MAX, f32::MAX, f32::MAX]];
    let (mut g, mut lse) = (Array2::zeros((1, 3)), Array1::zeros(1));
    let v = CrossEntropy::<f32>::new()
        .forward_backward_lse_into(&near, &array![0_i64], &mut g, &mut lse)
        .unwrap();
    assert!((v - 3f32.ln()).abs() < 1e-6);
    assert_eq!(lse[0], f32::MAX);
}
