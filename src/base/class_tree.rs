//! A tree over the classes, given as parent indices: the structure the
//! hierarchical cross-entropy charges mistakes by.

use crate::{Error, Result};

/// A class hierarchy: the classes are the leaves, numbered `0..C` first;
/// the inner nodes (super-classes, up to one root) follow, `C..M`.
///
/// Built from `parents`, one entry per node: `parents[k]` is node `k`'s
/// parent, `None` for the root. The leaves are the nodes without children,
/// and they must be exactly the first `C` nodes, so that node `c` is class
/// `c` of the logits.
///
/// # Errors
/// [`Error::InvalidOption`] naming `parents` and the node: no nodes; a
/// parent index out of range; no root or more than one; a class (one of
/// the first `C` nodes) with children, or an inner node without; a node
/// whose parents never reach the root (a cycle).
///
/// # Examples
/// ```
/// use classloss::ClassTree;
///
/// // Four classes; 0 and 1 are under node 4, 2 and 3 under node 5, and
/// // both under the root 6.
/// let tree = ClassTree::new(vec![Some(4), Some(4), Some(5), Some(5), Some(6), Some(6), None])?;
/// assert_eq!(tree.classes(), 4);
/// assert_eq!(tree.path(2), &[2, 5, 6]);
/// assert_eq!(tree.leaves(5), &[2, 3]);
///
/// // Nodes 3 and 4 are each other's parent: class 0 never reaches the root 5.
/// let cycle = ClassTree::new(vec![Some(3), Some(4), Some(5), Some(4), Some(3), None]);
/// assert!(cycle.unwrap_err().to_string().contains("node 0 has no path to the root"));
/// # Ok::<(), classloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassTree {
    parents: Vec<Option<usize>>,
    classes: usize,
    /// Each class's path: the class, its ancestors, the root.
    paths: Vec<Vec<usize>>,
    /// Each node's leaves (classes), in increasing order.
    leaves: Vec<Vec<usize>>,
}

/// The error for a malformed tree.
fn malformed(value: String, expected: &'static str) -> Error {
    Error::InvalidOption {
        name: "parents",
        value,
        expected,
    }
}

impl ClassTree {
    /// The tree of `parents` (see the type's documentation).
    pub fn new(parents: Vec<Option<usize>>) -> Result<ClassTree> {
        let m = parents.len();
        if m == 0 {
            return Err(malformed("no nodes".into(), "a tree of at least one class"));
        }
        let mut has_child = vec![false; m];
        let mut root = None;
        for (k, parent) in parents.iter().enumerate() {
            match *parent {
                Some(p) if p >= m => {
                    return Err(malformed(
                        format!("node {k}'s parent {p} (the tree has {m} nodes)"),
                        "parents that are nodes of the tree",
                    ));
                }
                Some(p) => has_child[p] = true,
                None => match root {
                    Some(r) => {
                        return Err(malformed(
                            format!("nodes {r} and {k} without a parent"),
                            "one root (one node whose parent is None)",
                        ));
                    }
                    None => root = Some(k),
                },
            }
        }
        let root = root.ok_or_else(|| {
            malformed(
                "every node with a parent".into(),
                "one root (one node whose parent is None)",
            )
        })?;
        let classes = has_child.iter().filter(|&&c| !c).count();
        let numbering = "the classes (the nodes without children) numbered first, 0..C";
        if let Some(k) = (0..classes).find(|&k| has_child[k]) {
            let child = parents.iter().position(|&p| p == Some(k)).unwrap_or(k);
            return Err(malformed(
                format!("node {k} (one of the first {classes}) is the parent of node {child}"),
                numbering,
            ));
        }
        // Every node reaches the root within `m` steps, or it is on a path
        // into a cycle.
        let mut paths = Vec::with_capacity(classes);
        let mut leaves = vec![Vec::new(); m];
        for k in 0..m {
            let mut path = vec![k];
            let mut node = k;
            while let Some(p) = parents[node] {
                if path.len() > m {
                    return Err(malformed(
                        format!("node {k} has no path to the root (a cycle through node {p})"),
                        "a tree: every node's parents lead to the root",
                    ));
                }
                path.push(p);
                node = p;
            }
            debug_assert_eq!(node, root);
            if k < classes {
                path.iter().for_each(|&n| leaves[n].push(k));
                paths.push(path);
            }
        }
        Ok(ClassTree {
            parents,
            classes,
            paths,
            leaves,
        })
    }

    /// The number of classes `C` (the leaves).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The parent of every node, as given.
    pub fn parents(&self) -> &[Option<usize>] {
        &self.parents
    }

    /// Class `class`'s path: the class, its ancestors, the root. Panics if
    /// `class >= C`.
    pub fn path(&self, class: usize) -> &[usize] {
        &self.paths[class]
    }

    /// The classes under `node` (itself, for a class), in increasing
    /// order. Panics if `node` is not a node of the tree.
    pub fn leaves(&self, node: usize) -> &[usize] {
        &self.leaves[node]
    }
}
