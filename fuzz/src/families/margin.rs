//! The margin family: Hinge (margin, squared) and Exponential on `(N)`
//! scores with labels in either convention, SoftMargin on scores of rank 1
//! to 3 in either convention, MultiMargin (p, margin, weight) and
//! CrammerSinger (margin) on `(N, C)` scores and class labels, and
//! MultiLabelMargin on `(N, C)` scores and label sets (lists, or PyTorch's
//! `-1`-padded `(N, C)` array of any integer type; empty sets included).

use classloss::{
    CrammerSinger, Exponential, Float, Hinge, LabelConvention, LabelSets, MultiLabelMargin,
    MultiMargin, Reduction, SoftMargin,
};
use ndarray::{Dimension, Ix1, Ix2, IxDyn};

use super::{Labeled, accepted, class_vector, vector, weight_facts};
use crate::check::{Facts, Outcome, diff_outcome};
use crate::input::{Gen, Grid, LabelGrid, Layout};
use crate::{Case, drive};

#[derive(Debug)]
enum SignOpt {
    Hinge {
        margin: f64,
        squared: bool,
    },
    Exponential,
    /// On scores of any rank; `new()` on `(N, K)` rather than `spatial()`
    /// on `IxDyn` when `ix2`.
    SoftMargin {
        ix2: bool,
    },
}

/// Scores and labels in a convention: `(N)` for Hinge and Exponential, of
/// rank 1 to 3 for SoftMargin.
#[derive(Debug)]
pub struct Signed {
    opt: SignOpt,
    convention: LabelConvention,
    s: Grid,
    y: Grid,
    grad: Layout,
    facts: Facts,
}

/// The multi-class margins on `(N, C)` scores and class labels.
#[derive(Debug)]
pub enum Multi {
    /// MultiMargin (Weston–Watkins).
    Weston {
        p: u32,
        margin: f64,
        weight: Option<Grid>,
    },
    CrammerSinger {
        margin: f64,
    },
}

pub fn run(g: &mut Gen) {
    let large = g.large;
    // Bytes below 192 pick the losses of issue 11 as before (so that the
    // older seeds decode to the same cases); the rest the newer ones.
    let pick = g.byte();
    if pick >= 192 {
        match pick % 4 {
            0 => {
                let margin = g.option(1.0);
                let opt = Multi::CrammerSinger { margin };
                let case = Labeled::decode(g, "CrammerSinger", opt, |g, s| g.reals(s));
                drive(&case, large)
            }
            1 => drive(&signed(g, "SoftMargin", None), large),
            _ => drive(&Sets::decode(g), large),
        }
        return;
    }
    if pick.is_multiple_of(3) {
        let p = match g.byte() % 8 {
            0 => 0,
            1 => 3,
            k => 1 + k as u32 % 2,
        };
        let margin = g.option(1.0);
        let mut case = Labeled::decode(
            g,
            "MultiMargin",
            Multi::Weston {
                p,
                margin,
                weight: None,
            },
            |g, s| g.reals(s),
        );
        if g.flag() {
            let w = class_vector(g, case.facts.classes);
            weight_facts(&mut case.facts, &w);
            if let Multi::Weston { weight, .. } = &mut case.opt {
                *weight = Some(w);
            }
        }
        return drive(&case, large);
    }
    let (name, opt) = if g.flag() {
        let margin = g.option(1.0);
        (
            "Hinge",
            SignOpt::Hinge {
                margin,
                squared: g.flag(),
            },
        )
    } else {
        ("Exponential", SignOpt::Exponential)
    };
    drive(&signed(g, name, Some(opt)), large);
}

/// Decodes a case of a loss on signed labels; `opt` `None` is SoftMargin,
/// whose scores may have rank 1 to 3.
fn signed(g: &mut Gen, name: &'static str, opt: Option<SignOpt>) -> Signed {
    let convention = if g.flag() {
        LabelConvention::ZeroOne
    } else {
        LabelConvention::PlusMinusOne
    };
    let (opt, mut shape) = match opt {
        Some(opt) => (opt, vec![g.len(0, 8)]),
        None => {
            let rank = if g.flag() { 2 } else { g.range(1, 3) };
            let shape: Vec<usize> = (0..rank).map(|_| g.len(0, 5)).collect();
            let ix2 = rank == 2 && g.flag();
            (SignOpt::SoftMargin { ix2 }, shape)
        }
    };
    g.tile(&mut shape, 0);
    let s = g.reals(shape.clone());
    let pal = g.palette();
    let y = g.grid(shape.clone(), |g| match g.byte() % 16 {
        0 if g.invalid => g.real(pal),
        1..=7 => 1.0,
        _ => match convention {
            LabelConvention::ZeroOne => 0.0,
            _ => -1.0,
        },
    });
    let facts = Facts {
        loss: name,
        f32: g.f32,
        finite: s.finite() && y.finite(),
        max_abs: s.max_abs(),
        strided_input: s.layout != Layout::default() || y.layout != Layout::default(),
        ..Facts::default()
    };
    Signed {
        opt,
        convention,
        s,
        y,
        grad: g.layout(shape.len()),
        facts,
    }
}

impl Signed {
    fn soft_margin<F: Float, D: Dimension>(&self, loss: SoftMargin<F, D>) -> Outcome {
        let (sb, yb) = (self.s.backing::<F, D>(), self.y.backing::<F, D>());
        let (s, y) = (self.s.layout.view(&sb), self.y.layout.view(&yb));
        let loss = loss.with_label_convention(self.convention);
        diff_outcome(&loss, s, y, &self.grad)
    }
}

impl Case for Signed {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.s.values.len() as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        if let SignOpt::SoftMargin { ix2 } = self.opt {
            return Some(if ix2 {
                self.soft_margin(SoftMargin::<F, Ix2>::new().with_reduction(r))
            } else {
                self.soft_margin(SoftMargin::<F, IxDyn>::spatial().with_reduction(r))
            });
        }
        let (sb, yb) = (self.s.backing::<F, Ix1>(), self.y.backing::<F, Ix1>());
        let (s, y) = (self.s.layout.view(&sb), self.y.layout.view(&yb));
        Some(match self.opt {
            SignOpt::Hinge { margin, squared } => {
                let loss = Hinge::<F>::new()
                    .with_reduction(r)
                    .with_margin(margin)
                    .ok()?
                    .with_squared(squared)
                    .with_label_convention(self.convention);
                accepted(&self.facts, &[margin], self);
                diff_outcome(&loss, s, y, &self.grad)
            }
            SignOpt::Exponential => {
                let loss = Exponential::<F>::new()
                    .with_reduction(r)
                    .with_label_convention(self.convention);
                diff_outcome(&loss, s, y, &self.grad)
            }
            SignOpt::SoftMargin { .. } => unreachable!("handled above"),
        })
    }
}

impl Case for Labeled<Multi> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.n())
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        match &self.opt {
            Multi::Weston { p, margin, weight } => {
                let mut loss = MultiMargin::<F>::new()
                    .with_reduction(r)
                    .with_p(*p)
                    .and_then(|l| l.with_margin(*margin))
                    .ok()?;
                accepted(&self.facts, &[*margin], self);
                if let Some(w) = weight {
                    loss = loss.with_weight(vector(w)).ok()?;
                }
                Some(self.go(&loss))
            }
            Multi::CrammerSinger { margin } => {
                let loss = CrammerSinger::<F>::new()
                    .with_reduction(r)
                    .with_margin(*margin)
                    .ok()?;
                accepted(&self.facts, &[*margin], self);
                Some(self.go(&loss))
            }
        }
    }
}

/// The label sets of MultiLabelMargin, in one of the two forms.
#[derive(Debug)]
enum SetTarget {
    Lists(Vec<Vec<usize>>),
    /// `(N, C)`, each row's classes, then `-1`, then anything in `-1..C`.
    Padded(LabelGrid),
}

/// MultiLabelMargin on `(N, C)` scores and label sets.
#[derive(Debug)]
pub struct Sets {
    x: Grid,
    sets: SetTarget,
    grad: Layout,
    facts: Facts,
}

/// One sample's set for `c` classes: distinct classes in `0..c`, of any
/// size (empty and all `c` with a fair chance); with invalid targets, at
/// times a class twice or one out of range.
fn draw_set(g: &mut Gen, c: usize) -> Vec<i128> {
    let size = g.len(0, c);
    let mut pool: Vec<i128> = (0..c as i128).collect();
    let mut set = Vec::with_capacity(size + 1);
    for _ in 0..size {
        let k = g.below(pool.len());
        set.push(pool.swap_remove(k));
    }
    if g.invalid && g.chance(48) {
        let bad = match g.byte() % 4 {
            0 if !set.is_empty() => set[g.below(set.len())],
            1 => c as i128,
            2 => -2,
            _ => g.label(c, None),
        };
        let at = g.range(0, set.len());
        set.insert(at, bad);
    }
    set
}

impl Sets {
    fn decode(g: &mut Gen) -> Self {
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let (n, c) = (shape[0], shape[1]);
        let x = g.reals(shape.clone());
        let padded = g.flag();
        // A list for another number of samples, at times.
        let rows = if g.invalid && g.chance(16) { n + 1 } else { n };
        let drawn = g.values(rows, |g| draw_set(g, c));
        let sets = if padded {
            let mut values = Vec::with_capacity(n * c);
            for set in drawn.iter().take(n) {
                let mut row: Vec<i128> = set.iter().copied().take(c).collect();
                if row.len() < c {
                    row.push(-1);
                }
                // After the first -1: anything in -1..C (not read as classes).
                while row.len() < c {
                    let v = g.below(c + 1) as i128 - 1;
                    row.push(v);
                }
                values.extend(row);
            }
            values.resize(n * c, -1);
            // Signed types mostly: -1 does not fit an unsigned one (an error).
            let ty = if g.chance(32) {
                g.byte() % 5
            } else {
                5 + g.byte() % 5
            };
            SetTarget::Padded(LabelGrid {
                shape: vec![n, c],
                values,
                ty,
                layout: g.layout(2),
            })
        } else {
            let lists = drawn
                .into_iter()
                .map(|set| {
                    set.into_iter()
                        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
                        .collect()
                })
                .collect();
            SetTarget::Lists(lists)
        };
        let facts = Facts {
            loss: "MultiLabelMargin",
            f32: g.f32,
            finite: x.finite(),
            max_abs: x.max_abs(),
            classes: c,
            ..Facts::default()
        };
        Sets {
            x,
            sets,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Sets {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = MultiLabelMargin::new().with_reduction(r);
        let xb = self.x.backing::<F, Ix2>();
        let x = self.x.layout.view(&xb);
        Some(match &self.sets {
            SetTarget::Lists(lists) => {
                diff_outcome::<F, _>(&loss, x, LabelSets::from(lists), &self.grad)
            }
            SetTarget::Padded(p) => {
                let store = p.store::<Ix2>();
                diff_outcome::<F, _>(&loss, x, store.sets(&p.layout), &self.grad)
            }
        })
    }
}
