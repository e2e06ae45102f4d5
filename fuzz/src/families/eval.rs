//! The evaluation loss: ZeroOne (value only). Besides the contract's value
//! half: every per-sample value is 0 or 1 for valid labels, and `Sum` is
//! their count.

use classloss::{Float, Reduction, ZeroOne};

use super::Labeled;
use crate::check::{Facts, Kind, Outcome, fail};
use crate::input::Gen;
use crate::{Case, drive};

pub fn run(g: &mut Gen) {
    let case = Labeled::decode(g, "ZeroOne", (), |g, s| g.reals(s));
    drive(&case, g.large);
}

impl Case for Labeled<()> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.n())
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let out = self.go_value::<F, _>(&ZeroOne::new().with_reduction(r));
        if let Ok(p) = &out.per_sample
            && p.iter().any(|&v| v != 0.0 && v != 1.0)
        {
            fail(
                &self.facts,
                Kind::PerSample,
                &format!("{r}: per_sample not 0/1: {p:?}"),
                self,
            );
        }
        if let (Ok(p), Ok(v), Reduction::Sum) = (&out.per_sample, &out.forward, r)
            && p.iter().sum::<f64>() != *v
        {
            fail(
                &self.facts,
                Kind::PerSample,
                &format!("Sum {v} is not the count of {p:?}"),
                self,
            );
        }
        Some(out)
    }
}
