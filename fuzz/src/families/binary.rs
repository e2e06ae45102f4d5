//! The binary family on inputs of rank 1 to 4: Bce (element weights that
//! broadcast), BceWithLogits (weight, pos_weight), SigmoidFocal (gamma,
//! alpha or none); and on `(N, C)` logits and targets, the multi-label
//! MultiLabelSoftMargin (class weights) and Asymmetric (gamma_neg,
//! gamma_pos, clip).

use classloss::{
    Asymmetric, Bce, BceWithLogits, Float, MultiLabelSoftMargin, Reduction, SigmoidFocal,
};
use ndarray::{Dimension, Ix2, IxDyn};

use super::{accepted, class_vector, vector, weight_facts};
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

/// The multi-label losses on `(N, C)` logits and `(N, C)` targets, one
/// value per row.
#[derive(Debug)]
enum RowOpt {
    /// MultiLabelSoftMargin, with class weights or none.
    SoftMargin { weight: Option<Grid> },
    Asymmetric {
        gamma_neg: f64,
        gamma_pos: f64,
        clip: f64,
    },
}

/// A multi-label loss on `(N, C)` logits and targets.
#[derive(Debug)]
pub struct Rows {
    opt: RowOpt,
    x: Grid,
    t: Grid,
    grad: Layout,
    facts: Facts,
}

impl Rows {
    fn decode(g: &mut Gen) -> Self {
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let asymmetric = g.flag();
        let x = g.reals(shape.clone());
        let t = if asymmetric {
            // 0 or 1, at times (with invalid targets) anything.
            let pal = g.palette();
            g.grid(shape.clone(), |g| match g.byte() % 16 {
                0 if g.invalid => g.unit(pal),
                1..=5 => 1.0,
                _ => 0.0,
            })
        } else {
            g.units(shape.clone())
        };
        let mut facts = Facts {
            f32: g.f32,
            finite: x.finite() && t.finite(),
            max_abs: x.max_abs(),
            classes: shape[1],
            strided_input: x.layout != Layout::default() || t.layout != Layout::default(),
            ..Facts::default()
        };
        let (name, opt) = if asymmetric {
            let (gamma_neg, gamma_pos) = (g.option(4.0), g.option(1.0));
            let clip = if g.flag() { 0.0 } else { g.option(0.05) };
            facts.gamma = gamma_neg.max(gamma_pos);
            let opt = RowOpt::Asymmetric {
                gamma_neg,
                gamma_pos,
                clip,
            };
            ("Asymmetric", opt)
        } else {
            let weight = g.flag().then(|| class_vector(g, shape[1]));
            if let Some(w) = &weight {
                weight_facts(&mut facts, w);
            }
            ("MultiLabelSoftMargin", RowOpt::SoftMargin { weight })
        };
        facts.loss = name;
        Rows {
            opt,
            x,
            t,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Rows {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let (xb, tb) = (self.x.backing::<F, Ix2>(), self.t.backing::<F, Ix2>());
        let (x, t) = (self.x.layout.view(&xb), self.t.layout.view(&tb));
        Some(match &self.opt {
            RowOpt::SoftMargin { weight } => {
                let mut loss = MultiLabelSoftMargin::<F>::new().with_reduction(r);
                if let Some(w) = weight {
                    loss = loss.with_weight(vector(w)).ok()?;
                }
                diff_outcome(&loss, x, t, &self.grad)
            }
            RowOpt::Asymmetric {
                gamma_neg,
                gamma_pos,
                clip,
            } => {
                let loss = Asymmetric::<F>::new()
                    .with_reduction(r)
                    .with_gamma_neg(*gamma_neg)
                    .and_then(|l| l.with_gamma_pos(*gamma_pos))
                    .and_then(|l| l.with_clip(*clip))
                    .ok()?;
                accepted(&self.facts, &[*gamma_neg, *gamma_pos, *clip], self);
                diff_outcome(&loss, x, t, &self.grad)
            }
        })
    }
}

pub fn run(g: &mut Gen) {
    // Bytes below 192 pick the losses of issue 11 as before (so that the
    // older seeds decode to the same cases); the rest the multi-label ones.
    let pick = g.byte();
    if pick >= 192 {
        return drive(&Rows::decode(g), g.large);
    }
    let which = pick % 3;
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
