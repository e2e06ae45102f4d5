//! The multi-label ranking hinge: the contract away from the kinks, the
//! identity with PyTorch's multi-class hinge for one label, the two target
//! forms, empty and full sets, f64 logits whose difference passes f64, the
//! f32 overflow rule, errors. (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Ranked, check_contract};
use classloss::{
    Differentiable, LabelSets, Labels, Loss, MultiLabelMargin, MultiMargin, Reduction,
};
use ndarray::{Array2, array};

/// Sets of every size from empty to all `c` classes, cycling, drawn from
/// the seed.
fn sets(n: usize, c: usize, seed: u64) -> Vec<Vec<usize>> {
    let order = vector(random_labels(&[n * c], c, seed));
    (0..n)
        .map(|i| {
            let mut set = Vec::new();
            for &k in order.iter().skip(i * c).take(c) {
                if set.len() < i % (c + 1) && !set.contains(&k) {
                    set.push(k);
                }
            }
            set
        })
        .collect()
}

/// Logits whose every ranked pair is at least 0.02 from its kink
/// (`x_j - x_k = 1`), so that finite differences see one side of it.
fn logits(n: usize, c: usize, seed: u64) -> Array2<f64> {
    let mut x = matrix(random_array(&[n, c], seed, 2.0));
    for v in x.iter_mut() {
        // On a grid of 0.3, half of them moved by 0.05: a difference is a
        // multiple of 0.3, or that plus or minus 0.05, never within 0.05
        // of 1.
        *v = (*v / 0.3).round() * 0.3 + if *v > 0.0 { 0.05 } else { 0.0 };
    }
    x
}

#[test]
fn contract() {
    for (seed, (n, c)) in [(1_u64, (7, 5)), (2, (5, 3)), (3, (9, 8))] {
        let x = logits(n, c, seed);
        let sets = sets(n, c, seed + 10);
        assert!(sets.iter().any(Vec::is_empty) && sets.iter().any(|s| s.len() > 1));
        check_contract(
            &MultiLabelMargin::new(),
            &Case::new(format!("{n}x{c}"), Ranked { x, sets }),
        );
    }
}

#[test]
fn one_label_is_the_multi_class_hinge() {
    // With Y = {y}: (1/C) sum_{k != y} max(0, 1 - (x_y - x_k)), which is
    // PyTorch's MultiMarginLoss with p = 1, margin 1.
    let x = logits(8, 4, 5);
    let y = vector(random_labels(&[8], 4, 6));
    let sets: Vec<Vec<usize>> = y.iter().map(|&c| vec![c]).collect();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let (v, g) = MultiLabelMargin::new()
            .with_reduction(reduction)
            .forward_backward(x.view(), LabelSets::from(&sets))
            .unwrap();
        let (vm, gm) = MultiMargin::new()
            .with_reduction(reduction)
            .forward_backward(x.view(), Labels::from(&y))
            .unwrap();
        assert!((v - vm).abs() < 1e-14, "{v} vs {vm}");
        for (a, b) in g.iter().zip(&gm) {
            assert!((a - b).abs() < 1e-15);
        }
    }
}

#[test]
fn the_padded_form_reads_up_to_the_first_minus_one() {
    let x = logits(3, 4, 7);
    let lists = vec![vec![2, 0], vec![], vec![1, 3, 0]];
    // After a row's first -1 PyTorch reads nothing: here repeated and
    // in-range classes that would otherwise count.
    let padded = array![[2_i32, 0, -1, 2], [-1, 1, 1, 1], [1, 3, 0, -1]];
    let loss = MultiLabelMargin::new().with_reduction(Reduction::None);
    let a = loss.per_sample(x.view(), LabelSets::from(&lists)).unwrap();
    let b = loss.per_sample(x.view(), LabelSets::from(&padded)).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        loss.backward(x.view(), LabelSets::from(&lists)).unwrap(),
        loss.backward(x.view(), LabelSets::from(padded.view()))
            .unwrap()
    );
    // A full row needs no -1.
    let full = array![[3_u8, 2, 1, 0]];
    let v = loss
        .forward(x.slice(ndarray::s![..1, ..]), LabelSets::from(&full))
        .unwrap();
    assert_eq!(v, 0.0);
}

#[test]
fn no_pair_to_rank_costs_nothing() {
    let x = array![[3.0_f64, -1.0, 0.5], [0.0, 0.0, 0.0]];
    let sets = vec![vec![], vec![2, 0, 1]];
    let (v, g) = MultiLabelMargin::new()
        .forward_backward(x.view(), LabelSets::from(&sets))
        .unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&d| d == 0.0));
}

#[test]
fn the_kink_is_inactive_and_pairs_count_in_the_gradient() {
    // Y = {0}: the pair (0, 1) is on the kink, 1 - (1 - 0) = 0: no loss,
    // no gradient; the pair (0, 2) costs 1 - (1 - 2) = 2.
    let x = array![[1.0_f64, 0.0, 2.0]];
    let (v, g) = MultiLabelMargin::new()
        .with_reduction(Reduction::Sum)
        .forward_backward(x.view(), LabelSets::from(&vec![vec![0]]))
        .unwrap();
    assert_eq!(v, 2.0 / 3.0);
    assert_eq!(g, array![[-1.0 / 3.0, 0.0, 1.0 / 3.0]]);
}

#[test]
fn f64_logits_far_apart_keep_their_finite_value() {
    // 1 - (x_0 - x_1) = 1 + 2e308 passes f64; the value, each term divided
    // by C = 4, does not: about 1e308.
    let x = array![[-1e308_f64, 1e308, 0.0, 0.0]];
    let v = MultiLabelMargin::new()
        .forward(x.view(), LabelSets::from(&vec![vec![0]]))
        .unwrap();
    let expected = (0.25 + (1e308 / 4.0 + 1e308 / 4.0)) + 2.0 * (0.25 + 1e308 / 4.0);
    assert!(v.is_finite());
    assert!(
        (v - expected).abs() <= 1e-15 * expected,
        "{v} vs {expected}"
    );
}

#[test]
fn an_f32_sample_beyond_f32_is_an_overflow_naming_it() {
    // Sample 1: two pairs of (1 + 6e38) / 3 = 4e38 pass f32 (computed in
    // f64): an error naming the sample under Sum and in per-sample values.
    let x = array![[0.0_f32, 0.5, 0.0], [-3e38, 3e38, 3e38]];
    let sets = vec![vec![1], vec![0]];
    let loss = MultiLabelMargin::new().with_reduction(Reduction::Sum);
    let e = Loss::<f32>::forward(&loss, x.view(), LabelSets::from(&sets)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("logits[1]: the sample's loss overflows f32"),
        "{e}"
    );
    let loss = MultiLabelMargin::new();
    let e = Loss::<f32>::per_sample(&loss, x.view(), LabelSets::from(&sets)).unwrap_err();
    assert!(e.to_string().starts_with("logits[1]"), "{e}");
    // The mean, (1/3 + 4e38) / 2, fits and is exact to f32 rounding.
    let mean = Loss::<f32>::forward(&loss, x.view(), LabelSets::from(&sets)).unwrap();
    let want = (1.0 / 3.0 + 2.0 * ((1.0 + 6e38_f64) / 3.0)) / 2.0;
    assert_eq!(mean, want as f32);
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let x = array![[0.5_f64, -1.0, 2.0], [2.0, 0.0, 1.0]];
    let loss = MultiLabelMargin::new();
    let forward = |sets: LabelSets<'_>| Loss::<f64>::forward(&loss, x.view(), sets).unwrap_err();
    let e = forward(LabelSets::from(&vec![vec![0], vec![1, 0, 1]]));
    assert_eq!(
        e.to_string(),
        "label_sets[1, 2]: expected each class at most once in a sample's set, got 1"
    );
    let e = forward(LabelSets::from(&vec![vec![0], vec![3]]));
    assert!(
        e.to_string()
            .contains("label 3 is out of range for 3 classes"),
        "{e}"
    );
    let e = forward(LabelSets::from(&vec![vec![0]]));
    assert_eq!(e.to_string(), "label_sets: expected shape [2], got [1]");
    let e = forward(LabelSets::from(&array![[0_i64, -2, 1], [1, -1, 0]]));
    assert!(
        e.to_string()
            .contains("label -2 is out of range for 3 classes"),
        "{e}"
    );
    let e = forward(LabelSets::from(&array![[0_i64, -1], [1, -1]]));
    assert_eq!(
        e.to_string(),
        "label_sets: expected shape [2, 3], got [2, 2]"
    );
    let mut g = Array2::zeros((2, 2));
    let e = loss
        .forward_backward_into(
            x.view(),
            LabelSets::from(&vec![vec![0], vec![]]),
            g.view_mut(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [2, 3], got [2, 2]");
}
