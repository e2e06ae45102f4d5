//! Triplet margin loss: the contract (norms 1, 2, 3, with and without the
//! swap) away from the kinks, PyTorch's formula recomputed, the swap's tie,
//! PyTorch's eps, f64 inputs far beyond each other, errors. (Reference
//! values: `tests/conformance`.)

use crate::common::{matrix, random_array};
use crate::contract::{Case, Triplets, check_contract};
use classloss::{Differentiable, Loss, Reduction, Triplet, TripletMargin};
use ndarray::{Array2, ArrayView1, array, s};

/// PyTorch's pairwise distance, written out.
fn distance(x: ArrayView1<'_, f64>, y: ArrayView1<'_, f64>, p: f64, eps: f64) -> f64 {
    x.iter()
        .zip(&y)
        .map(|(a, b)| (a - b + eps).abs().powf(p))
        .sum::<f64>()
        .powf(1.0 / p)
}

fn triplets(n: usize, d: usize, seed: u64) -> Triplets<f64> {
    Triplets {
        anchor: matrix(random_array(&[n, d], seed, 1.0)),
        positive: matrix(random_array(&[n, d], seed + 1, 1.0)),
        negative: matrix(random_array(&[n, d], seed + 2, 1.0)),
    }
}

fn view(t: &Triplets<f64>) -> Triplet<'_, f64> {
    Triplet {
        anchor: t.anchor.view(),
        positive: t.positive.view(),
        negative: t.negative.view(),
    }
}

/// `(z, d(a, n) - d(p, n))` of each sample.
fn margins(t: &Triplets<f64>, margin: f64, p: f64, swap: bool) -> Vec<(f64, f64)> {
    (0..t.anchor.nrows())
        .map(|i| {
            let (a, q, n) = (t.anchor.row(i), t.positive.row(i), t.negative.row(i));
            let (ap, an, pn) = (
                distance(a, q, p, 1e-6),
                distance(a, n, p, 1e-6),
                distance(q, n, p, 1e-6),
            );
            let neg = if swap { an.min(pn) } else { an };
            (margin + ap - neg, an - pn)
        })
        .collect()
}

#[test]
fn contract() {
    for (seed, p, swap, margin) in [
        (1_u64, 2.0, false, 1.0),
        (4, 2.0, true, 0.5),
        (7, 1.0, false, 1.0),
        (10, 3.0, true, 0.8),
    ] {
        let mut t = triplets(8, 3, seed);
        // Away from the hinge's kink and from the swap's tie (negatives
        // moved out until they are), with both sides of the hinge present.
        for i in 0..8 {
            if i % 2 == 1 {
                // Far negatives: inactive samples.
                t.negative.row_mut(i).mapv_inplace(|v| 4.0 * v + 3.0);
            }
            loop {
                let one = Triplets {
                    anchor: t.anchor.slice(s![i..=i, ..]).to_owned(),
                    positive: t.positive.slice(s![i..=i, ..]).to_owned(),
                    negative: t.negative.slice(s![i..=i, ..]).to_owned(),
                };
                let (z, tie) = margins(&one, margin, p, swap)[0];
                if z.abs() > 0.02 && tie.abs() > 0.02 {
                    break;
                }
                t.negative.row_mut(i).mapv_inplace(|v| v * 1.1 + 0.01);
            }
        }
        let m = margins(&t, margin, p, swap);
        assert!(m.iter().all(|&(z, tie)| z.abs() > 0.02 && tie.abs() > 0.02));
        assert!(m.iter().any(|&(z, _)| z < 0.0) && m.iter().any(|&(z, _)| z > 0.0));
        let loss = TripletMargin::new()
            .with_margin(margin)
            .unwrap()
            .with_p(p)
            .unwrap()
            .with_swap(swap);
        check_contract(&loss, &Case::new(format!("p={p} swap={swap}"), t));
    }
}

#[test]
fn values_follow_pytorchs_formula() {
    let t = triplets(10, 4, 20);
    for (p, swap) in [(2.0, false), (2.0, true), (1.0, true), (4.5, false)] {
        let loss = TripletMargin::new()
            .with_p(p)
            .unwrap()
            .with_swap(swap)
            .with_reduction(Reduction::None);
        let per = loss.per_sample(view(&t), ()).unwrap();
        for (i, (z, _)) in margins(&t, 1.0, p, swap).into_iter().enumerate() {
            let want = z.max(0.0);
            assert!(
                (per[i] - want).abs() < 1e-13,
                "p={p} {i}: {} vs {want}",
                per[i]
            );
        }
    }
}

#[test]
fn a_swap_tie_splits_the_gradient() {
    // d(a, n) = d(p, n) = sqrt(26): the negative's gradient is the mean of
    // its two directions, the anchor's and the positive's take half each.
    let t = Triplets {
        anchor: array![[0.0, 0.0]],
        positive: array![[2.0, 0.0]],
        negative: array![[1.0, 5.0]],
    };
    let loss = TripletMargin::new()
        .with_eps(0.0)
        .unwrap()
        .with_margin(10.0)
        .unwrap()
        .with_swap(true);
    let (v, g) = loss.forward_backward(view(&t), ()).unwrap();
    let r = 26f64.sqrt();
    assert!((v - (10.0 + 2.0 - r)).abs() < 1e-14);
    // d(a,p) pulls a toward p and p toward a; half of each negative
    // distance pushes a (or p) away from n and n away from both.
    let want_a = [-1.0 + 0.5 / r, 0.5 * 5.0 / r];
    let want_p = [1.0 - 0.5 * 1.0 / r, 0.5 * 5.0 / r];
    let want_n = [0.5 * (1.0 / r) - 0.5 * (1.0 / r), -5.0 / r];
    for k in 0..2 {
        assert!((g.anchor[[0, k]] - want_a[k]).abs() < 1e-15, "{g:?}");
        assert!((g.positive[[0, k]] - want_p[k]).abs() < 1e-15, "{g:?}");
        assert!((g.negative[[0, k]] - want_n[k]).abs() < 1e-15, "{g:?}");
    }
}

#[test]
fn identical_rows_are_eps_apart() {
    // PyTorch's pairwise_distance adds eps to each difference: identical
    // anchor and positive are eps sqrt(D) apart, not 0.
    let t = Triplets {
        anchor: array![[0.3, -0.2, 0.1]],
        positive: array![[0.3, -0.2, 0.1]],
        negative: array![[0.3, -0.2, 0.6]],
    };
    let v = TripletMargin::new().forward(view(&t), ()).unwrap();
    let want = 1.0 + 1e-6 * 3f64.sqrt() - distance(t.anchor.row(0), t.negative.row(0), 2.0, 1e-6);
    assert!((v - want).abs() < 1e-15, "{v} vs {want}");
}

#[test]
fn f64_inputs_far_apart_keep_their_finite_value() {
    // Both distances are 2e308 (beyond f64), their difference 0: the loss
    // is the margin, not inf - inf.
    let t = Triplets {
        anchor: array![[1e308_f64]],
        positive: array![[-1e308]],
        negative: array![[-1e308]],
    };
    let (v, g) = TripletMargin::new().forward_backward(view(&t), ()).unwrap();
    assert_eq!(v, 1.0);
    assert_eq!(g.anchor[[0, 0]], 0.0);
    assert_eq!((g.positive[[0, 0]], g.negative[[0, 0]]), (-1.0, 1.0));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let t = triplets(3, 2, 30);
    let loss = TripletMargin::new();
    let narrow: Array2<f64> = Array2::zeros((3, 1));
    let e = loss
        .forward(
            Triplet {
                negative: narrow.view(),
                ..view(&t)
            },
            (),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "negative: expected shape [3, 2], got [3, 1]");
    let empty: Array2<f64> = Array2::zeros((0, 2));
    let e = loss
        .forward(
            Triplet {
                anchor: empty.view(),
                positive: empty.view(),
                negative: empty.view(),
            },
            (),
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("anchor: "), "{e}");
    let e = TripletMargin::new().with_p(0.5).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `p`: expected a finite number >= 1, got 0.5"
    );
    let e = TripletMargin::new().with_eps(-1e-6).unwrap_err();
    assert!(e.to_string().starts_with("option `eps`"), "{e}");
}
