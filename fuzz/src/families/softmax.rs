//! The softmax family: CrossEntropy (labels with ignore_index, class
//! weights and label smoothing; probability targets; `(N, C)` and spatial
//! `(N, C, d1..dk)` inputs), LabelSmoothing, SoftmaxFocal, Poly1,
//! KlDivergence; and LogitAdjusted (class counts, tau), Ldam (class
//! counts, max_margin, scale), OhemCrossEntropy (keep_ratio), Sparsemax,
//! Wasserstein (a ground cost), OrdinalEmd (labels or probabilities, r)
//! and HierarchicalCrossEntropy (alpha, a class tree from parent indices,
//! valid or malformed).

use classloss::{
    ClassTarget, ClassTree, CrossEntropy, Float, HierarchicalCrossEntropy, KlDivergence,
    LabelSmoothing, Ldam, LogitAdjusted, OhemCrossEntropy, OrdinalEmd, Poly1, Reduction,
    SmoothingConvention, SoftmaxFocal, Sparsemax, Wasserstein,
};
use ndarray::{Array2, Ix2, IxDyn, RemoveAxis};

use super::{Labeled, accepted, class_vector, vector, weight_facts};
use crate::check::{Facts, Kind, Outcome, diff_outcome, fail};
use crate::input::{Gen, Grid, LabelGrid, Layout, seen_labels};
use crate::{Case, drive};

pub fn run(g: &mut Gen) {
    let large = g.large;
    // Bytes below 160 pick the losses of issue 11 as before (so that the
    // older seeds decode to the same cases); the rest the newer ones.
    let pick = g.byte();
    if pick >= 160 {
        return run_new(g, pick - 160);
    }
    match pick % 6 {
        0 | 1 => drive(&Ce::decode(g), large),
        2 => {
            let eps = g.option(0.1);
            let conv = if g.flag() {
                SmoothingConvention::OffTarget
            } else {
                SmoothingConvention::Uniform
            };
            let case = Labeled::decode(
                g,
                "LabelSmoothing",
                Opt::LabelSmoothing(eps, conv),
                |g, s| g.reals(s),
            );
            drive(&case, large)
        }
        3 => {
            let gamma = g.option(2.0);
            let alpha = if g.flag() {
                Alpha::Scalar(g.option(0.5))
            } else {
                Alpha::PerClass(Grid::empty())
            };
            let mut case = Labeled::decode(g, "SoftmaxFocal", Opt::Focal(gamma, alpha), |g, s| {
                g.reals(s)
            });
            if let Opt::Focal(_, Alpha::PerClass(w)) = &mut case.opt {
                *w = class_vector(g, case.facts.classes);
                weight_facts(&mut case.facts, w);
                case.facts.alpha = w.max_abs();
            }
            if let Opt::Focal(gamma, Alpha::Scalar(a)) = &case.opt {
                case.facts.alpha = *a;
                case.facts.gamma = *gamma;
            } else if let Opt::Focal(gamma, _) = &case.opt {
                case.facts.gamma = *gamma;
            }
            drive(&case, large)
        }
        4 => {
            let eps = g.option(1.0) - if g.flag() { 1.5 } else { 0.0 };
            let case = Labeled::decode(g, "Poly1", Opt::Poly1(eps), |g, s| g.reals(s));
            drive(&case, large)
        }
        _ => drive(&Kl::decode(g), large),
    }
}

#[derive(Debug)]
pub enum Alpha {
    Scalar(f64),
    PerClass(Grid),
}

#[derive(Debug)]
pub enum Opt {
    LabelSmoothing(f64, SmoothingConvention),
    Focal(f64, Alpha),
    Poly1(f64),
    /// Class counts and tau.
    LogitAdjusted(Grid, f64),
    /// Class counts, max_margin and scale.
    Ldam(Grid, f64, f64),
    /// keep_ratio.
    Ohem(f64),
    Sparsemax,
    /// The ground cost.
    Wasserstein(Grid),
    /// alpha and the tree.
    Hierarchical(f64, Tree),
}

impl Case for Labeled<Opt> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        match self.opt {
            // The number kept, max(1, ceil(keep_ratio N)), at most N.
            Opt::Ohem(ratio) => {
                let n = self.n();
                Some((ratio * n).ceil().clamp(1.0, n.max(1.0)))
            }
            _ => Some(self.n()),
        }
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        match &self.opt {
            Opt::LogitAdjusted(counts, tau) => {
                let loss = LogitAdjusted::<F>::new()
                    .with_reduction(r)
                    .with_samples_per_class(counts.array1::<f64>())
                    .and_then(|l| l.with_tau(*tau))
                    .ok()?;
                accepted(&self.facts, &[*tau], self);
                counts_accepted(&self.facts, counts, self);
                Some(self.go(&loss))
            }
            Opt::Ldam(counts, max_margin, scale) => {
                let loss = Ldam::<F>::new()
                    .with_reduction(r)
                    .with_samples_per_class(counts.array1::<f64>())
                    .and_then(|l| l.with_max_margin(*max_margin))
                    .and_then(|l| l.with_scale(*scale))
                    .ok()?;
                accepted(&self.facts, &[*max_margin, *scale], self);
                counts_accepted(&self.facts, counts, self);
                Some(self.go(&loss))
            }
            Opt::Ohem(ratio) => {
                let loss = OhemCrossEntropy::<F>::new()
                    .with_reduction(r)
                    .with_keep_ratio(*ratio)
                    .ok()?;
                accepted(&self.facts, &[*ratio], self);
                if !(*ratio > 0.0 && *ratio <= 1.0) {
                    let what = format!("with_keep_ratio accepted {ratio}");
                    fail(&self.facts, Kind::Option, &what, self);
                }
                Some(self.go(&loss))
            }
            Opt::Sparsemax => Some(self.go::<F, _>(&Sparsemax::new().with_reduction(r))),
            Opt::Wasserstein(cost) => {
                let m = cost_matrix(cost);
                let loss = Wasserstein::new().with_reduction(r).with_cost(m).ok()?;
                let square = cost.shape.len() == 2 && cost.shape[0] == cost.shape[1];
                if !square || cost.values.is_empty() || !nonneg(cost) {
                    let what = format!("with_cost accepted {cost:?}");
                    fail(&self.facts, Kind::Option, &what, self);
                }
                Some(self.go::<F, _>(&loss))
            }
            Opt::Hierarchical(alpha, tree) => {
                let loss = HierarchicalCrossEntropy::new()
                    .with_reduction(r)
                    .with_alpha(*alpha)
                    .ok()?;
                let loss = if tree.built {
                    loss.with_tree(ClassTree::new(tree.parents.clone()).ok()?)
                } else {
                    loss.with_parents(tree.parents.clone()).ok()?
                };
                accepted(&self.facts, &[*alpha], self);
                Some(self.go::<F, _>(&loss))
            }
            Opt::LabelSmoothing(eps, conv) => {
                let loss = LabelSmoothing::new()
                    .with_reduction(r)
                    .with_epsilon(*eps)
                    .ok()?
                    .with_convention(*conv);
                accepted(&self.facts, &[*eps], self);
                Some(self.go::<F, _>(&loss))
            }
            Opt::Focal(gamma, alpha) => {
                let loss = SoftmaxFocal::<F>::new()
                    .with_reduction(r)
                    .with_gamma(*gamma)
                    .ok()?;
                let loss = match alpha {
                    Alpha::Scalar(a) => {
                        let loss = loss.with_alpha(*a).ok()?;
                        accepted(&self.facts, &[*gamma, *a], self);
                        loss
                    }
                    Alpha::PerClass(w) => loss.with_class_alpha(vector(w)).ok()?,
                };
                Some(self.go(&loss))
            }
            Opt::Poly1(eps) => {
                let loss = Poly1::<F>::new()
                    .with_reduction(r)
                    .with_epsilon(*eps)
                    .ok()?;
                accepted(&self.facts, &[*eps], self);
                Some(self.go(&loss))
            }
        }
    }
}

/// Cross-entropy: labels or probabilities, `(N, C)` or spatial.
#[derive(Debug)]
pub struct Ce {
    /// `CrossEntropy::new()` on `(N, C)` rather than `spatial()` on `IxDyn`.
    ix2: bool,
    x: Grid,
    target: CeTarget,
    weight: Option<Grid>,
    /// The ignored label and the integer type it is given in.
    ignore: Option<(i128, u8)>,
    smoothing: f64,
    grad: Layout,
    facts: Facts,
}

#[derive(Debug)]
enum CeTarget {
    Labels(LabelGrid),
    Probs(Grid),
}

impl Ce {
    fn decode(g: &mut Gen) -> Self {
        let rank = if g.flag() { 2 } else { g.range(2, 4) };
        let mut shape: Vec<usize> = (0..rank)
            .map(|k| if k < 2 { g.len(0, 6) } else { g.len(0, 4) })
            .collect();
        g.tile(&mut shape, 0);
        let classes = shape[1];
        let x = g.reals(shape.clone());
        let ignore = g.flag().then(|| {
            let v = match g.byte() % 4 {
                0 => -100,
                1 => g.below(classes.max(1)) as i128,
                2 => classes as i128,
                _ => g.byte() as i128 - 128,
            };
            (v, g.byte() % 5)
        });
        let probs = g.byte().is_multiple_of(4);
        let target = if probs {
            CeTarget::Probs(g.units(shape.clone()))
        } else {
            let mut ls = shape.clone();
            ls.remove(1);
            CeTarget::Labels(g.labels(ls, classes, ignore.map(|(v, _)| v)))
        };
        let weight = g.flag().then(|| class_vector(g, classes));
        let smoothing = if g.flag() { g.option(0.1) } else { 0.0 };
        let grad = g.layout(rank);
        let mut facts = Facts {
            loss: "CrossEntropy",
            f32: g.f32,
            finite: x.finite() && smoothing.is_finite(),
            max_abs: x.max_abs(),
            probs,
            smoothing,
            classes,
            ..Facts::default()
        };
        if let CeTarget::Probs(p) = &target {
            facts.finite &= p.finite();
        }
        if let Some(w) = &weight {
            weight_facts(&mut facts, w);
        }
        Ce {
            ix2: rank == 2 && g.flag(),
            x,
            target,
            weight,
            ignore,
            smoothing,
            grad,
            facts,
        }
    }

    fn go<F: Float, D: RemoveAxis>(&self, mut ce: CrossEntropy<F, D>) -> Option<Outcome> {
        ce = ce.with_label_smoothing(self.smoothing).ok()?;
        accepted(&self.facts, &[self.smoothing], self);
        if let Some(w) = &self.weight {
            ce = ce.with_weight(vector(w)).ok()?;
        }
        if let Some((v, ty)) = self.ignore {
            ce = match ty {
                0 => ce.with_ignore_index(v as i64),
                1 => ce.with_ignore_index(v as i32),
                2 => ce.with_ignore_index(v as u8),
                3 => ce.with_ignore_index(v as usize),
                _ => ce.with_ignore_index(v as i8),
            };
        }
        let xb = self.x.backing::<F, D>();
        let x = self.x.layout.view(&xb);
        Some(match &self.target {
            CeTarget::Labels(l) => {
                let store = l.store::<D::Smaller>();
                let labels = store.labels(&l.layout);
                diff_outcome(&ce, x, ClassTarget::Labels(labels), &self.grad)
            }
            CeTarget::Probs(p) => {
                let pb = p.backing::<F, D>();
                diff_outcome(&ce, x, ClassTarget::Probs(p.layout.view(&pb)), &self.grad)
            }
        })
    }

    /// The ignored label as the loss sees it (after the cast to its type).
    fn ignored(&self) -> Option<i128> {
        self.ignore.map(|(v, ty)| match ty {
            0 => v as i64 as i128,
            1 => v as i32 as i128,
            2 => v as u8 as i128,
            3 => v as usize as i128,
            _ => v as i8 as i128,
        })
    }
}

impl Case for Ce {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        match &self.target {
            CeTarget::Probs(_) => {
                let mut s = self.x.shape.clone();
                s.remove(1);
                Some(s.iter().product::<usize>() as f64)
            }
            CeTarget::Labels(l) => {
                let ignore = self.ignored();
                let c = self.facts.classes as i128;
                let mut total = 0.0;
                for y in seen_labels(l) {
                    if Some(y) == ignore {
                        continue;
                    }
                    if y < 0 || y >= c {
                        return None;
                    }
                    total += match &self.weight {
                        Some(w) => *w.values.get(y as usize)?,
                        None => 1.0,
                    };
                }
                Some(total)
            }
        }
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        if self.ix2 {
            self.go(CrossEntropy::<F, Ix2>::new().with_reduction(r))
        } else {
            self.go(CrossEntropy::<F, IxDyn>::spatial().with_reduction(r))
        }
    }
}

/// KL divergence on `(N, C)` logits and probabilities.
#[derive(Debug)]
pub struct Kl {
    x: Grid,
    q: Grid,
    grad: Layout,
    facts: Facts,
}

impl Kl {
    fn decode(g: &mut Gen) -> Self {
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let x = g.reals(shape.clone());
        let q = g.units(shape.clone());
        let grad = g.layout(2);
        let facts = Facts {
            loss: "KlDivergence",
            f32: g.f32,
            finite: x.finite() && q.finite(),
            max_abs: x.max_abs(),
            classes: shape[1],
            ..Facts::default()
        };
        Kl { x, q, grad, facts }
    }
}

impl Case for Kl {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = KlDivergence::<F>::new().with_reduction(r);
        let (xb, qb) = (self.x.backing::<F, Ix2>(), self.q.backing::<F, Ix2>());
        let (x, q) = (self.x.layout.view(&xb), self.q.layout.view(&qb));
        Some(diff_outcome(&loss, x, q, &self.grad))
    }
}

/// Whether every value of an array option is finite and `>= 0`.
fn nonneg(w: &Grid) -> bool {
    w.values.iter().all(|v| v.is_finite() && *v >= 0.0)
}

/// A setter accepted class counts: each must be finite and `> 0`, and
/// there must be one at least.
fn counts_accepted(facts: &Facts, counts: &Grid, case: &dyn std::fmt::Debug) {
    let ok = !counts.values.is_empty() && counts.values.iter().all(|v| v.is_finite() && *v > 0.0);
    if !ok {
        let what = format!("with_samples_per_class accepted {counts:?}");
        fail(facts, Kind::Option, &what, case);
    }
}

/// The ground cost as the `(C, C)` (or other) `f64` matrix it was drawn as.
fn cost_matrix(cost: &Grid) -> Array2<f64> {
    cost.owned::<f64>()
        .into_dimensionality::<Ix2>()
        .expect("a 2-D cost")
}

/// Class counts for `classes` classes: mostly positive (small integers,
/// then anything from the palette), at times 0, negative or non-finite,
/// and at times of another length.
fn class_counts(g: &mut Gen, classes: usize) -> Grid {
    let len = match g.byte() % 16 {
        0 => classes + 1,
        1 => classes.saturating_sub(1),
        _ => classes,
    };
    let pal = g.palette();
    g.grid(vec![len], |g| match g.byte() % 4 {
        0 | 1 => 1.0 + g.byte() as f64,
        _ => {
            let v = g.real(pal);
            if g.invalid { v } else { v.abs() }
        }
    })
}

/// Whether some finite logit moved by `shift(i, k)` (then scaled by
/// `scale`) passes the float type's range, in `f64` as the crate computes
/// it: the documented `Overflow` of the transformed logit.
fn shifted_beyond(
    x: &Grid,
    labels: &LabelGrid,
    f32: bool,
    scale: f64,
    shift: impl Fn(i128, usize) -> f64,
) -> bool {
    let max = if f32 { f32::MAX as f64 } else { f64::MAX };
    let ys = seen_labels(labels);
    x.rows().zip(ys).any(|(row, y)| {
        row.iter().enumerate().any(|(k, &v)| {
            let z = scale * (v + shift(y, k));
            v.is_finite() && !(z.abs() <= max)
        })
    })
}

/// A class tree for HierarchicalCrossEntropy, as parent indices.
#[derive(Debug)]
pub struct Tree {
    parents: Vec<Option<usize>>,
    /// Set with `with_tree(ClassTree::new(..))` rather than `with_parents`.
    built: bool,
}

/// Parent indices: a valid tree over `classes` classes mostly (one to four
/// inner nodes, any root among them), at times one with an inner node left
/// without a class, and at times any parent vector at all (cycles, several
/// roots or none, parents out of range).
fn draw_tree(g: &mut Gen, classes: usize) -> Vec<Option<usize>> {
    if g.chance(48) {
        let m = g.len(0, classes + 4);
        return (0..m)
            .map(|_| match g.byte() % 8 {
                0 => None,
                1 => Some(m + g.below(2)),
                _ => Some(g.below(m)),
            })
            .collect();
    }
    let c = classes.max(1);
    if c == 1 && g.flag() {
        return vec![None];
    }
    let k = g.range(1, c.clamp(1, 4));
    let mut parents = vec![None; c + k];
    // Inner nodes in a random order, the first the root; each other one
    // hangs under an earlier one.
    let mut order: Vec<usize> = (c..c + k).collect();
    for i in (1..k).rev() {
        let j = g.below(i + 1);
        order.swap(i, j);
    }
    for i in 1..k {
        parents[order[i]] = Some(order[g.below(i)]);
    }
    // Inner nodes without an inner child get a class each first.
    let mut needy: Vec<usize> = (c..c + k)
        .filter(|&n| !parents.contains(&Some(n)))
        .collect();
    for class in 0..c {
        parents[class] = Some(match needy.pop() {
            Some(n) => n,
            None => c + g.below(k),
        });
    }
    parents
}

/// The harness's own verdict on parent indices: the number of classes if
/// they form a tree as `ClassTree` documents it (one root, parents in
/// range, the childless nodes exactly the first ones, every node reaching
/// the root), `None` otherwise.
fn tree_classes(parents: &[Option<usize>]) -> Option<usize> {
    let m = parents.len();
    if m == 0 || parents.iter().filter(|p| p.is_none()).count() != 1 {
        return None;
    }
    let mut has_child = vec![false; m];
    for p in parents.iter().flatten() {
        *has_child.get_mut(*p)? = true;
    }
    let c = has_child.iter().filter(|&&h| !h).count();
    if has_child[..c].iter().any(|&h| h) {
        return None;
    }
    for k in 0..m {
        let (mut node, mut steps) = (k, 0);
        while let Some(p) = parents[node] {
            node = p;
            steps += 1;
            if steps > m {
                return None;
            }
        }
    }
    Some(c)
}

/// Checks `ClassTree::new` against [`tree_classes`]: an error exactly for
/// malformed parents, and for a tree, the classes, paths and leaves it
/// documents.
fn check_tree(facts: &Facts, parents: &[Option<usize>]) {
    let built = ClassTree::new(parents.to_vec());
    let expected = tree_classes(parents);
    let bad = |what: String| {
        let what = format!("ClassTree::new({parents:?}): {what}");
        fail(facts, Kind::Option, &what, &parents);
    };
    let tree = match (built, expected) {
        (Ok(t), Some(c)) if t.classes() == c => t,
        (Err(e), Some(c)) => return bad(format!("a tree of {c} classes rejected: {e}")),
        (Ok(t), None) => return bad(format!("malformed, but a tree of {} classes", t.classes())),
        (Ok(t), Some(c)) => return bad(format!("{} classes, expected {c}", t.classes())),
        (Err(_), None) => return,
    };
    let root = parents.iter().position(|p| p.is_none());
    for class in 0..tree.classes() {
        let path = tree.path(class);
        let linked = path.windows(2).all(|w| parents[w[0]] == Some(w[1]));
        if path.first() != Some(&class) || path.last().copied() != root || !linked {
            return bad(format!("class {class}'s path {path:?}"));
        }
        if path.iter().any(|&n| !tree.leaves(n).contains(&class)) {
            return bad(format!("class {class} missing from the leaves of its path"));
        }
    }
    for node in 0..parents.len() {
        let leaves = tree.leaves(node);
        let sorted = leaves.windows(2).all(|w| w[0] < w[1]);
        let under = leaves.iter().all(|&l| tree.path(l).contains(&node));
        if !sorted || !under || (node < tree.classes() && leaves != [node]) {
            return bad(format!("node {node}'s leaves {leaves:?}"));
        }
    }
}

/// The newer losses of the family; `pick` chooses among them.
fn run_new(g: &mut Gen, pick: u8) {
    let large = g.large;
    let (name, opt) = match pick % 8 {
        0 => (
            "LogitAdjusted",
            Opt::LogitAdjusted(Grid::empty(), g.option(1.0)),
        ),
        1 => {
            let (m, s) = (g.option(0.5), g.option(30.0));
            ("Ldam", Opt::Ldam(Grid::empty(), m, s))
        }
        2 => ("OhemCrossEntropy", Opt::Ohem(g.option(0.5))),
        3 => ("Sparsemax", Opt::Sparsemax),
        4 => ("Wasserstein", Opt::Wasserstein(Grid::empty())),
        5 => {
            let alpha = if g.flag() { 0.0 } else { g.option(1.0) };
            let tree = Tree {
                parents: Vec::new(),
                built: g.flag(),
            };
            ("HierarchicalCrossEntropy", Opt::Hierarchical(alpha, tree))
        }
        _ => return drive(&Emd::decode(g), large),
    };
    let mut case = Labeled::decode(g, name, opt, |g, s| g.reals(s));
    let c = case.facts.classes;
    let f32 = case.facts.f32;
    match &mut case.opt {
        Opt::LogitAdjusted(counts, tau) => {
            *counts = class_counts(g, c);
            let total: f64 = counts.values.iter().sum();
            let prior: Vec<f64> = counts.values.iter().map(|n| (n / total).ln()).collect();
            let tau = *tau;
            let shift = |_: i128, k: usize| tau * prior.get(k).copied().unwrap_or(0.0);
            case.facts.adjusted_beyond = shifted_beyond(&case.x, &case.labels, f32, 1.0, shift);
        }
        Opt::Ldam(counts, max_margin, scale) => {
            *counts = class_counts(g, c);
            case.facts.scale = *scale;
            case.facts.margin = *max_margin;
            let m = *max_margin;
            let shift = |y: i128, k: usize| if y == k as i128 { -m } else { 0.0 };
            case.facts.adjusted_beyond = shifted_beyond(&case.x, &case.labels, f32, *scale, shift);
        }
        Opt::Wasserstein(cost) => {
            let shape = match g.byte() % 16 {
                0 => vec![c, c + 1],
                1 => vec![c + 1, c + 1],
                _ => vec![c, c],
            };
            let w = g.weights(shape);
            case.facts.finite &= w.finite();
            case.facts.weight_max = w.max_abs();
            *cost = w;
        }
        Opt::Hierarchical(_, tree) => {
            tree.parents = draw_tree(g, c);
            check_tree(&case.facts, &tree.parents);
        }
        _ => {}
    }
    drive(&case, large)
}

/// OrdinalEmd on `(N, C)` logits and labels or probabilities.
#[derive(Debug)]
pub struct Emd {
    r: u32,
    x: Grid,
    target: CeTarget,
    grad: Layout,
    facts: Facts,
}

impl Emd {
    fn decode(g: &mut Gen) -> Self {
        let r = match g.byte() % 8 {
            0 => 0,
            1 => 3,
            k => 1 + k as u32 % 2,
        };
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let x = g.reals(shape.clone());
        let probs = g.flag();
        let target = if probs {
            CeTarget::Probs(g.units(shape.clone()))
        } else {
            CeTarget::Labels(g.labels(vec![shape[0]], shape[1], None))
        };
        let mut facts = Facts {
            loss: "OrdinalEmd",
            f32: g.f32,
            finite: x.finite(),
            max_abs: x.max_abs(),
            probs,
            classes: shape[1],
            ..Facts::default()
        };
        if let CeTarget::Probs(p) = &target {
            facts.finite &= p.finite();
        }
        Emd {
            r,
            x,
            target,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Emd {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = OrdinalEmd::<F>::new()
            .with_reduction(r)
            .with_r(self.r)
            .ok()?;
        if self.r != 1 && self.r != 2 {
            let what = format!("with_r accepted {}", self.r);
            fail(&self.facts, Kind::Option, &what, self);
        }
        let xb = self.x.backing::<F, Ix2>();
        let x = self.x.layout.view(&xb);
        Some(match &self.target {
            CeTarget::Labels(l) => {
                let store = l.store::<ndarray::Ix1>();
                let labels = store.labels(&l.layout);
                diff_outcome(&loss, x, ClassTarget::Labels(labels), &self.grad)
            }
            CeTarget::Probs(p) => {
                let pb = p.backing::<F, Ix2>();
                diff_outcome(&loss, x, ClassTarget::Probs(p.layout.view(&pb)), &self.grad)
            }
        })
    }
}
