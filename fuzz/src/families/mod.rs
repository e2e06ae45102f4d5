//! One module per loss family: each decodes a case (which loss, its
//! options, its inputs) and runs it through [`crate::drive`].

pub mod binary;
pub mod eval;
pub mod margin;
pub mod metric;
pub mod robust;
pub mod softmax;

use classloss::{ClassifierLoss, Float, Labels, Loss};
use ndarray::{Array1, ArrayView2, Ix1, Ix2};

use crate::check::{Facts, Outcome, Values, diff_outcome, value_outcome};
use crate::input::{Gen, Grid, LabelGrid, Layout};

/// `(N, C)` scores, `(N)` labels and a gradient buffer layout: the losses
/// of a classifier. `O` is the family's choice of loss and options.
#[derive(Debug)]
pub struct Labeled<O> {
    pub opt: O,
    pub x: Grid,
    pub labels: LabelGrid,
    pub grad: Layout,
    pub facts: Facts,
}

impl<O> Labeled<O> {
    /// Decodes scores and labels (`N`, `C` in `0..=6`; `N` tiled in the
    /// large mode); `x` draws the scores.
    pub fn decode(
        g: &mut Gen,
        loss: &'static str,
        opt: O,
        x: impl FnOnce(&mut Gen, Vec<usize>) -> Grid,
    ) -> Self {
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let (n, c) = (shape[0], shape[1]);
        let x = x(g, shape);
        let labels = g.labels(vec![n], c, None);
        let grad = g.layout(2);
        let facts = Facts {
            loss,
            f32: g.f32,
            finite: x.finite(),
            max_abs: x.max_abs(),
            classes: c,
            ..Facts::default()
        };
        Labeled {
            opt,
            x,
            labels,
            grad,
            facts,
        }
    }

    /// Every call of `loss` on the case.
    pub fn go<F: Float, L: ClassifierLoss<F>>(&self, loss: &L) -> Outcome {
        let xb = self.x.backing::<F, Ix2>();
        let store = self.labels.store::<Ix1>();
        let labels = store.labels(&self.labels.layout);
        diff_outcome(loss, self.x.layout.view(&xb), labels.into(), &self.grad)
    }

    /// `forward` and `per_sample` of a loss without a gradient.
    pub fn go_value<F: Float, L>(&self, loss: &L) -> Outcome
    where
        L: for<'a> Loss<F, Input<'a> = ArrayView2<'a, F>, Target<'a> = Labels<'a, Ix1>>,
        L::PerSample: Values,
    {
        let xb = self.x.backing::<F, Ix2>();
        let store = self.labels.store::<Ix1>();
        let labels = store.labels(&self.labels.layout);
        value_outcome(loss, self.x.layout.view(&xb), labels)
    }

    /// The number of samples (what `Mean` divides by for most losses).
    pub fn n(&self) -> f64 {
        self.x.shape[0] as f64
    }
}

/// A per-class array option of length `C` (sometimes of another length,
/// which the call must reject), with finite non-negative values mostly.
pub fn class_vector(g: &mut Gen, classes: usize) -> Grid {
    let len = match g.byte() % 16 {
        0 => classes + 1,
        1 => classes.saturating_sub(1),
        _ => classes,
    };
    g.weights(vec![len])
}

/// Facts about a class-weight option.
pub fn weight_facts(facts: &mut Facts, w: &Grid) {
    facts.finite &= w.finite();
    facts.weight_max = facts.weight_max.max(w.max_abs());
    let tiny = if facts.f32 {
        f32::MIN_POSITIVE as f64
    } else {
        f64::MIN_POSITIVE
    };
    // Subnormal, or tiny enough that dividing by it overflows with the
    // other weights (what the known CE issue is about).
    facts.weight_subnormal |= w
        .values
        .iter()
        .any(|&v| v != 0.0 && v.abs() < tiny * 16_777_216.0);
    facts.zero_weight |= w.values.contains(&0.0);
}

/// An owned 1-D array option in `F`.
pub fn vector<F: Float>(w: &Grid) -> Array1<F> {
    w.array1::<F>()
}

/// A setter accepted every scalar option in `values`: each must be finite
/// (every setter documents that it rejects NaN and infinities).
pub fn accepted(facts: &Facts, values: &[f64], case: &dyn std::fmt::Debug) {
    use std::sync::atomic::Ordering;
    let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max = max.max(crate::check::option_max());
    crate::check::OPTION_MAX.store(max.to_bits(), Ordering::Relaxed);
    let tiny = values
        .iter()
        .filter(|v| **v != 0.0)
        .fold(crate::check::option_tiny(), |m, v| m.min(v.abs()));
    crate::check::OPTION_TINY.store(tiny.to_bits(), Ordering::Relaxed);
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        let what = format!("a setter accepted the option value {v}");
        crate::check::fail(facts, crate::check::Kind::Option, &what, case);
    }
}
