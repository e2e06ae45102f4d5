//! The noise-robust family: GeneralizedCrossEntropy, SymmetricCrossEntropy,
//! SoftBootstrapping, HardBootstrapping.

use classloss::{
    Float, GeneralizedCrossEntropy, HardBootstrapping, Reduction, SoftBootstrapping,
    SymmetricCrossEntropy,
};

use super::{Labeled, accepted};
use crate::check::{Facts, Outcome};
use crate::input::Gen;
use crate::{Case, drive};

#[derive(Debug)]
pub enum Opt {
    Gce(f64),
    Sce(f64, f64, f64),
    Soft(f64),
    Hard(f64),
}

pub fn run(g: &mut Gen) {
    let (name, opt) = match g.byte() % 4 {
        0 => ("GeneralizedCrossEntropy", Opt::Gce(g.option(0.7))),
        1 => {
            let (a, b) = (g.option(0.1), g.option(1.0));
            let lz = -g.option(4.0);
            ("SymmetricCrossEntropy", Opt::Sce(a, b, lz))
        }
        2 => ("SoftBootstrapping", Opt::Soft(g.option(0.95))),
        _ => ("HardBootstrapping", Opt::Hard(g.option(0.8))),
    };
    let case = Labeled::decode(g, name, opt, |g, s| g.reals(s));
    drive(&case, g.large);
}

impl Case for Labeled<Opt> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.n())
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        Some(match self.opt {
            Opt::Gce(q) => {
                let loss = GeneralizedCrossEntropy::<F>::new()
                    .with_reduction(r)
                    .with_q(q)
                    .ok()?;
                accepted(&self.facts, &[q], self);
                self.go(&loss)
            }
            Opt::Sce(a, b, lz) => {
                let loss = SymmetricCrossEntropy::<F>::new()
                    .with_reduction(r)
                    .with_alpha(a)
                    .and_then(|l| l.with_beta(b))
                    .and_then(|l| l.with_log_zero(lz))
                    .ok()?;
                accepted(&self.facts, &[a, b, lz], self);
                self.go(&loss)
            }
            Opt::Soft(beta) => {
                let loss = SoftBootstrapping::<F>::new()
                    .with_reduction(r)
                    .with_beta(beta)
                    .ok()?;
                accepted(&self.facts, &[beta], self);
                self.go(&loss)
            }
            Opt::Hard(beta) => {
                let loss = HardBootstrapping::<F>::new()
                    .with_reduction(r)
                    .with_beta(beta)
                    .ok()?;
                accepted(&self.facts, &[beta], self);
                self.go(&loss)
            }
        })
    }
}
