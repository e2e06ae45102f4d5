//! The hierarchical cross-entropy over a class tree (Bertinetto et al.
//! 2020).

use std::cell::RefCell;

use crate::base::loss::{Call, Compute, ScoresAndLabels};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::engine::rows::run_rows_on_labels;
use crate::numerics::log_sum_exp;
use crate::{ClassTree, Error, Float, Result};

loss_options! {
    /// The hierarchical cross-entropy (HXE) of Bertinetto et al.: the
    /// cross-entropy factored along the class tree, each level's term
    /// weighted by `exp(-alpha l)`, so that a mistake within the right
    /// super-class costs less than one across super-classes.
    ///
    /// Use it when the classes form a hierarchy (species in genera,
    /// products in categories) and some mistakes are better than others:
    /// it trades a little top-1 accuracy for mistakes of lower severity.
    /// `alpha = 0` is the plain cross-entropy.
    ///
    /// # Formula
    /// ```text
    /// P(n)  = sum_{c under n} softmax(x)_c        (P(root) = 1)
    /// y = n_0, n_1, ..., n_L = root               (the label's path)
    /// l     = -sum_{l=0}^{L-1} exp(-alpha l) log(P(n_l) / P(n_{l+1}))
    /// d l / d x = sum_{j=0}^{L} c_j q_j,   q_j = softmax of x over the classes under n_j (0 elsewhere)
    ///         c_0 = -1,   c_j = w_{j-1} - w_j (0 < j < L),   c_L = w_{L-1},   w_l = exp(-alpha l)
    /// ```
    /// Each `log P(n_l) - log P(n_{l+1})` is a difference of
    /// log-sum-exps over the classes under the two nodes, in `f64`: no
    /// probability is formed, so a tiny `P(n)` loses nothing.
    ///
    /// # Shapes
    /// - logits `(N, C)`, labels `(N)` (any integer type, in `0..C`); the
    ///   tree's classes must be `C`.
    /// - per-sample `(N)`; gradient `(N, C)`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `alpha`: finite, `>= 0` (default 0).
    /// - `parents`: the class tree as parent indices ([`ClassTree`]:
    ///   classes first, `None` at the root); required. Or
    ///   [`HierarchicalCrossEntropy::with_tree`] with a tree built once.
    ///
    /// # Errors
    /// A malformed tree at construction (naming the node: a cycle, a second
    /// root, a class with children, see [`ClassTree`]); no tree, or a tree
    /// whose class count is not `C`, at the call; an empty batch, labels of
    /// another length or out of range, a gradient buffer of another shape.
    /// A sample's value beyond `F` is [`crate::Error::Overflow`];
    /// non-finite logits give NaN.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CrossEntropy, HierarchicalCrossEntropy, Labels, Loss};
    /// use ndarray::array;
    ///
    /// // Classes 0, 1 under node 4; 2, 3 under node 5; the root is 6.
    /// let parents = vec![Some(4), Some(4), Some(5), Some(5), Some(6), Some(6), None];
    /// let logits = array![[2.0_f64, 1.0, 0.5, -1.0]];
    /// let labels = array![1_usize];
    /// let plain = HierarchicalCrossEntropy::new().with_parents(parents.clone())?;
    /// let ce = CrossEntropy::new().forward(logits.view(), Labels::from(&labels))?;
    /// assert!((plain.forward(logits.view(), Labels::from(&labels))? - ce).abs() < 1e-15);
    ///
    /// // alpha = 1: -log P(1 | node 4) - exp(-1) log P(node 4).
    /// let hxe = plain.with_alpha(1.0)?;
    /// let p: Vec<f64> = logits.iter().map(|x| x.exp()).collect();
    /// let total: f64 = p.iter().sum();
    /// let want = -(p[1] / (p[0] + p[1])).ln() - (-1f64).exp() * ((p[0] + p[1]) / total).ln();
    /// assert!((hxe.forward(logits.view(), Labels::from(&labels))? - want).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// L. Bertinetto, R. Mueller, K. Tertikas, S. Samangooei, N. A. Lord,
    /// "Making Better Mistakes: Leveraging Class Hierarchies with Deep
    /// Networks", CVPR 2020, <https://arxiv.org/abs/1912.09393>.
    #[derive(PartialEq)]
    pub struct HierarchicalCrossEntropy {
        /// How fast the weights of the levels above the leaf decay.
        alpha: f64 = 0.0,
            /// Sets `alpha`, finite and `>= 0` (default 0: the
            /// cross-entropy).
            set with_alpha checked by non_negative;
        /// The class tree.
        parents: Option<ClassTree> = None,
            /// Sets the class tree from parent indices (see
            /// [`ClassTree`]); an error names a malformed tree's node.
            set with_parents(Vec<Option<usize>> as ClassTree) checked by class_tree;
    }

    /// The hierarchical cross-entropy: mean reduction, `alpha = 0`, no tree
    /// yet (set one with `with_parents` or `with_tree`).
    fn new();
}

impl HierarchicalCrossEntropy {
    /// Sets a class tree built before ([`ClassTree::new`]).
    pub fn with_tree(mut self, tree: ClassTree) -> Self {
        self.parents = Some(tree);
        self
    }
}

impl<F: Float> Compute<F> for HierarchicalCrossEntropy {
    type Sig = ScoresAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let tree = self.parents.as_ref().ok_or(Error::InvalidOption {
            name: "parents",
            value: "none".into(),
            expected: "a class tree (with_parents or with_tree)",
        })?;
        let c = call.input.ncols();
        if tree.classes() != c {
            return Err(Error::ShapeMismatch {
                what: "logits",
                expected: format!("[N, {}] (the tree's classes)", tree.classes()),
                actual: format!("{:?}", call.input.shape()),
            });
        }
        // Reused across rows: the logits under a node, the gradient.
        let scratch = RefCell::new((Vec::with_capacity(c), vec![0.0_f64; c]));
        run_rows_on_labels(self.reduction, call, |y, row, sink| {
            let (under, grad) = &mut *scratch.borrow_mut();
            let path = tree.path(y);
            let lse = |node: usize, under: &mut Vec<f64>| {
                under.clear();
                under.extend(tree.leaves(node).iter().map(|&k| row[k].as_f64()));
                log_sum_exp(under)
            };
            let w = |l: usize| (-self.alpha * l as f64).exp();
            let lses: Vec<f64> = path.iter().map(|&n| lse(n, under)).collect();
            let mut value: f64 = lses
                .windows(2)
                .enumerate()
                .map(|(l, pair)| w(l) * (pair[1] - pair[0]))
                .sum();
            if row.iter().any(|v| !v.is_finite()) {
                value = f64::NAN;
            }
            if let Some(sink) = sink {
                grad.iter_mut().for_each(|g| *g = 0.0);
                let levels = path.len() - 1;
                for (j, (&node, &lse)) in path.iter().zip(&lses).enumerate().skip(1) {
                    let c_j = if j == levels {
                        w(j - 1)
                    } else {
                        w(j - 1) - w(j)
                    };
                    for &k in tree.leaves(node) {
                        grad[k] += c_j * (row[k].as_f64() - lse).exp();
                    }
                }
                if levels > 0 {
                    grad[y] -= 1.0;
                }
                for (k, &d) in grad.iter().enumerate() {
                    sink.set(k, d);
                }
            }
            value
        })
    }
}
