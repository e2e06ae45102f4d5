//! The binary family on inputs of rank 1 to 4: Bce (element weights that
//! broadcast), BceWithLogits (weight, pos_weight), SigmoidFocal (gamma,
//! alpha or none).

use classloss::{Bce, BceWithLogits, Float, Reduction, SigmoidFocal};
use ndarray::{Dimension, Ix2, IxDyn};

use super::{accepted, weight_facts};
use crate::check::{Facts, Outcome, diff_outcome};
use crate::input::{Gen, Grid, Layout};
use crate::{Case, drive};

#[derive(Debug)]
enum Opt {
    Bce {
        weight: Option<Grid>,
    },
    Logits {
        weight: Option<Grid>,
        pos_weight: Option<Grid>,
    },
    Focal {
        gamma: f64,
        alpha: Option<f64>,
    },
}

#[derive(Debug)]
pub struct Elementwise {
    opt: Opt,
    /// `new()` on `(N, K)` rather than `spatial()` on `IxDyn`.
    ix2: bool,
    x: Grid,
    t: Grid,
    grad: Layout,
    facts: Facts,
}

/// A weight shape for `shape`: trailing axes, some of them 1, or rarely a
/// shape that does not broadcast.
fn weight_shape(g: &mut Gen, shape: &[usize]) -> Vec<usize> {
    let keep = g.range(0, shape.len());
    let mut w: Vec<usize> = shape[shape.len() - keep..].to_vec();
    for n in w.iter_mut() {
        if g.byte().is_multiple_of(4) {
            *n = 1;
        }
    }
    if g.byte().is_multiple_of(16) {
        w.push(2);
    }
    w
}

pub fn run(g: &mut Gen) {
    let which = g.byte() % 3;
    let rank = if g.flag() { 2 } else { g.range(1, 4) };
    let mut shape: Vec<usize> = (0..rank).map(|_| g.len(0, 5)).collect();
    g.tile(&mut shape, 0);
    let x = if which == 0 {
        g.units(shape.clone())
    } else {
        g.reals(shape.clone())
    };
    let t = g.units(shape.clone());
    let mut facts = Facts {
        f32: g.f32,
        finite: x.finite() && t.finite(),
        max_abs: x.max_abs(),
        strided_input: x.layout != Layout::default() || t.layout != Layout::default(),
        ..Facts::default()
    };
    let (name, opt) = match which {
        0 => {
            let weight = g.flag().then(|| {
                let s = weight_shape(g, &shape);
                g.weights(s)
            });
            ("Bce", Opt::Bce { weight })
        }
        1 => {
            let weight = g.flag().then(|| {
                let s = weight_shape(g, &shape);
                g.weights(s)
            });
            let pos_weight = g.flag().then(|| {
                let last = shape.last().copied().unwrap_or(0);
                let len = match g.byte() % 8 {
                    0 => 1,
                    1 => last + 1,
                    _ => last,
                };
                g.weights(vec![len])
            });
            facts.pos_weight = pos_weight.is_some();
            if let Some(w) = &pos_weight {
                weight_facts(&mut facts, w);
            }
            ("BceWithLogits", Opt::Logits { weight, pos_weight })
        }
        _ => {
            let gamma = g.option(2.0);
            let alpha = g.flag().then(|| g.option(0.25));
            facts.gamma = gamma;
            ("SigmoidFocal", Opt::Focal { gamma, alpha })
        }
    };
    if let Opt::Bce { weight: Some(w) }
    | Opt::Logits {
        weight: Some(w), ..
    } = &opt
    {
        weight_facts(&mut facts, w);
    }
    facts.loss = name;
    let case = Elementwise {
        opt,
        ix2: rank == 2 && g.flag(),
        x,
        t,
        grad: g.layout(rank),
        facts,
    };
    drive(&case, g.large);
}

impl Elementwise {
    fn go<F: Float, D: Dimension>(&self, r: Reduction) -> Option<Outcome> {
        let (xb, tb) = (self.x.backing::<F, D>(), self.t.backing::<F, D>());
        let (x, t) = (self.x.layout.view(&xb), self.t.layout.view(&tb));
        Some(match &self.opt {
            Opt::Bce { weight } => {
                let mut loss = Bce::<F, D>::spatial().with_reduction(r);
                if let Some(w) = weight {
                    loss = loss.with_weight(w.owned::<F>()).ok()?;
                }
                diff_outcome(&loss, x, t, &self.grad)
            }
            Opt::Logits { weight, pos_weight } => {
                let mut loss = BceWithLogits::<F, D>::spatial().with_reduction(r);
                if let Some(w) = weight {
                    loss = loss.with_weight(w.owned::<F>()).ok()?;
                }
                if let Some(w) = pos_weight {
                    loss = loss.with_pos_weight(w.array1()).ok()?;
                }
                diff_outcome(&loss, x, t, &self.grad)
            }
            Opt::Focal { gamma, alpha } => {
                let loss = SigmoidFocal::<F, D>::spatial()
                    .with_reduction(r)
                    .with_gamma(*gamma)
                    .and_then(|l| l.with_alpha(*alpha))
                    .ok()?;
                accepted(&self.facts, &[*gamma, alpha.unwrap_or(0.0)], self);
                diff_outcome(&loss, x, t, &self.grad)
            }
        })
    }
}

impl Case for Elementwise {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.values.len() as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        if self.ix2 {
            self.go::<F, Ix2>(r)
        } else {
            self.go::<F, IxDyn>(r)
        }
    }
}
