//! The margin family: Hinge (margin, squared) and Exponential on `(N)`
//! scores with labels in either convention, MultiMargin (p, margin,
//! weight) on `(N, C)` scores and class labels.

use classloss::{Exponential, Float, Hinge, LabelConvention, MultiMargin, Reduction};
use ndarray::Ix1;

use super::{Labeled, accepted, class_vector, vector, weight_facts};
use crate::check::{Facts, Outcome, diff_outcome};
use crate::input::{Gen, Grid, Layout};
use crate::{Case, drive};

#[derive(Debug)]
enum SignOpt {
    Hinge { margin: f64, squared: bool },
    Exponential,
}

/// `(N)` scores and `(N)` labels in a convention.
#[derive(Debug)]
pub struct Signed {
    opt: SignOpt,
    convention: LabelConvention,
    s: Grid,
    y: Grid,
    grad: Layout,
    facts: Facts,
}

#[derive(Debug)]
pub struct Multi {
    p: u32,
    margin: f64,
    weight: Option<Grid>,
}

pub fn run(g: &mut Gen) {
    let large = g.large;
    if g.byte().is_multiple_of(3) {
        let p = match g.byte() % 8 {
            0 => 0,
            1 => 3,
            k => 1 + k as u32 % 2,
        };
        let margin = g.option(1.0);
        let mut case = Labeled::decode(
            g,
            "MultiMargin",
            Multi {
                p,
                margin,
                weight: None,
            },
            |g, s| g.reals(s),
        );
        if g.flag() {
            let w = class_vector(g, case.facts.classes);
            weight_facts(&mut case.facts, &w);
            case.opt.weight = Some(w);
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
    let convention = if g.flag() {
        LabelConvention::ZeroOne
    } else {
        LabelConvention::PlusMinusOne
    };
    let mut shape = vec![g.len(0, 8)];
    g.tile(&mut shape, 0);
    let s = g.reals(shape.clone());
    let pal = g.palette();
    let y = g.grid(shape, |g| match g.byte() % 16 {
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
        ..Facts::default()
    };
    let case = Signed {
        opt,
        convention,
        s,
        y,
        grad: g.layout(1),
        facts,
    };
    drive(&case, large);
}

impl Case for Signed {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.s.values.len() as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
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
        let mut loss = MultiMargin::<F>::new()
            .with_reduction(r)
            .with_p(self.opt.p)
            .and_then(|l| l.with_margin(self.opt.margin))
            .ok()?;
        accepted(&self.facts, &[self.opt.margin], self);
        if let Some(w) = &self.opt.weight {
            loss = loss.with_weight(vector(w)).ok()?;
        }
        Some(self.go(&loss))
    }
}
