//! Hierarchical cross-entropy and its class tree: the contract, the
//! cross-entropy at `alpha = 0` and on a flat tree, the formula through
//! probabilities, malformed trees naming their node, errors.
//! (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{
    ClassTree, CrossEntropy, Differentiable, HierarchicalCrossEntropy, Labels, Loss, Reduction,
};
use ndarray::{Array1, Array2, array};

/// Seven classes on three levels, unevenly: {0, 1, 2} under 7, {3} under
/// 8, {4, 5} under 9, 6 directly under the root 11; 7 and 8 under 10; 9
/// and 10 under the root.
fn parents() -> Vec<Option<usize>> {
    vec![
        Some(7),
        Some(7),
        Some(7),
        Some(8),
        Some(9),
        Some(9),
        Some(11),
        Some(10),
        Some(10),
        Some(11),
        Some(11),
        None,
    ]
}

fn batch(n: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
    (
        matrix(random_array(&[n, 7], seed, 2.0)),
        vector(random_labels(&[n], 7, seed + 1)),
    )
}

#[test]
fn contract() {
    for (seed, alpha) in [(1_u64, 0.0), (2, 0.5), (3, 2.0)] {
        let (x, y) = batch(9, seed);
        let loss = HierarchicalCrossEntropy::new()
            .with_alpha(alpha)
            .unwrap()
            .with_parents(parents())
            .unwrap();
        check_contract(
            &loss,
            &Case::new(format!("alpha={alpha}"), Labeled::new(x, y)),
        );
    }
}

#[test]
fn alpha_zero_and_a_flat_tree_are_the_cross_entropy() {
    let (x, y) = batch(10, 4);
    let flat: Vec<Option<usize>> = (0..7).map(|_| Some(7)).chain([None]).collect();
    let cases = [(parents(), 0.0), (flat.clone(), 0.0), (flat, 3.0)];
    for (tree, alpha) in cases {
        let hxe = HierarchicalCrossEntropy::new()
            .with_alpha(alpha)
            .unwrap()
            .with_parents(tree)
            .unwrap();
        let (v, g) = hxe.forward_backward(x.view(), Labels::from(&y)).unwrap();
        let (vc, gc) = CrossEntropy::new()
            .forward_backward(x.view(), Labels::from(&y))
            .unwrap();
        assert!((v - vc).abs() < 1e-14, "{v} vs {vc}");
        for (a, b) in g.iter().zip(&gc) {
            assert!((a - b).abs() < 1e-15);
        }
    }
}

#[test]
fn values_follow_the_formula_through_probabilities() {
    let (x, y) = batch(8, 5);
    let tree = ClassTree::new(parents()).unwrap();
    let alpha = 0.7;
    let per = HierarchicalCrossEntropy::new()
        .with_alpha(alpha)
        .unwrap()
        .with_tree(tree.clone())
        .per_sample(x.view(), Labels::from(&y))
        .unwrap();
    for i in 0..8 {
        let e: Vec<f64> = x.row(i).iter().map(|v| v.exp()).collect();
        let total: f64 = e.iter().sum();
        let p = |node: usize| tree.leaves(node).iter().map(|&k| e[k]).sum::<f64>() / total;
        let path = tree.path(y[i]);
        let want: f64 = (0..path.len() - 1)
            .map(|l| -(-alpha * l as f64).exp() * (p(path[l]) / p(path[l + 1])).ln())
            .sum();
        assert!((per[i] - want).abs() < 1e-13, "{i}: {} vs {want}", per[i]);
    }
}

#[test]
fn the_tree_gives_its_paths_and_leaves() {
    let tree = ClassTree::new(parents()).unwrap();
    assert_eq!(tree.classes(), 7);
    assert_eq!(tree.path(0), &[0, 7, 10, 11]);
    assert_eq!(tree.path(6), &[6, 11]);
    assert_eq!(tree.leaves(10), &[0, 1, 2, 3]);
    assert_eq!(tree.leaves(11), &[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(tree.parents(), parents().as_slice());
}

#[test]
fn a_malformed_tree_is_an_error_naming_the_node() {
    let err = |p: Vec<Option<usize>>| ClassTree::new(p).unwrap_err().to_string();
    assert_eq!(
        err(vec![Some(2), Some(5), None]),
        "option `parents`: expected parents that are nodes of the tree, \
         got node 1's parent 5 (the tree has 3 nodes)"
    );
    assert_eq!(
        err(vec![Some(2), None, None]),
        "option `parents`: expected one root (one node whose parent is None), \
         got nodes 1 and 2 without a parent"
    );
    assert!(err(vec![Some(1), Some(0)]).contains("got every node with a parent"));
    assert_eq!(
        err(vec![Some(3), Some(0), Some(3), None]),
        "option `parents`: expected the classes (the nodes without children) numbered \
         first, 0..C, got node 0 (one of the first 2) is the parent of node 1"
    );
    assert_eq!(
        err(vec![Some(3), Some(4), Some(5), Some(4), Some(3), None]),
        "option `parents`: expected a tree: every node's parents lead to the root, \
         got node 0 has no path to the root (a cycle through node 3)"
    );
    assert!(err(vec![]).contains("no nodes"));
    // The same through the loss's setter.
    let e = HierarchicalCrossEntropy::new()
        .with_parents(vec![Some(2), None, None])
        .unwrap_err();
    assert!(
        e.to_string().contains("nodes 1 and 2 without a parent"),
        "{e}"
    );
}

#[test]
fn errors_at_the_call_name_the_argument() {
    let x = array![[0.5_f64, -1.0, 0.0]];
    let y = array![0_usize];
    let e = HierarchicalCrossEntropy::new()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("option `parents`: expected a class tree"),
        "{e}"
    );
    let e = HierarchicalCrossEntropy::new()
        .with_parents(parents())
        .unwrap()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits: expected shape [N, 7] (the tree's classes), got [1, 3]"
    );
    let e = HierarchicalCrossEntropy::new()
        .with_alpha(-0.5)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `alpha`: expected a finite number >= 0, got -0.5"
    );
    let e = HierarchicalCrossEntropy::new()
        .with_reduction(Reduction::Sum)
        .with_parents(vec![Some(3), Some(3), Some(3), None])
        .unwrap()
        .forward(x.view(), Labels::from(&array![3_i64]))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("label 3 is out of range for 3 classes"),
        "{e}"
    );
}
