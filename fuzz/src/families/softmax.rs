//! The softmax family: CrossEntropy (labels with ignore_index, class
//! weights and label smoothing; probability targets; `(N, C)` and spatial
//! `(N, C, d1..dk)` inputs), LabelSmoothing, SoftmaxFocal, Poly1,
//! KlDivergence.

use classloss::{
    ClassTarget, CrossEntropy, Float, KlDivergence, LabelSmoothing, Poly1, Reduction,
    SmoothingConvention, SoftmaxFocal,
};
use ndarray::{Ix2, IxDyn, RemoveAxis};

use super::{Labeled, accepted, class_vector, vector, weight_facts};
use crate::check::{Facts, Outcome, diff_outcome};
use crate::input::{Gen, Grid, LabelGrid, Layout, seen_labels};
use crate::{Case, drive};

pub fn run(g: &mut Gen) {
    let large = g.large;
    match g.byte() % 6 {
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
}

impl Case for Labeled<Opt> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.n())
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        match &self.opt {
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
