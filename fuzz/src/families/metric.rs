//! The metric family: ArcFace, CosFace and CombinedMargin on embeddings and
//! on cosines (`.on_cosines()`), Contrastive in both forms, CenterLoss and
//! its `update_centers`, and the self-supervised losses on embeddings
//! (NtXent, SupervisedContrastive, Byol); CosineEmbedding (margin) on
//! `(N, D)` pairs and MarginRanking (margin) on `(N)` pairs with `-1`/`+1`
//! labels, and TripletMargin (margin, p, eps, swap) on three `(N, D)`
//! arrays.

use classloss::{
    AngularMargin, ArcFace, CenterInput, CenterLoss, CombinedMargin, Contrastive, ContrastiveForm,
    CosFace, CosineEmbedding, Embeddings, Float, MarginRanking, Pair, Reduction, Triplet,
    TripletMargin,
};
use classloss::{Byol, NtXent, SupervisedContrastive};
use ndarray::{Ix1, Ix2};

use super::{Labeled, accepted};
use crate::check::{Facts, Kind, Outcome, diff_outcome, fail};
use crate::input::{Gen, Grid, LabelGrid, Layout};
use crate::{Case, drive};

/// An angular-margin loss and its options.
#[derive(Clone, Copy, Debug)]
pub enum Angular {
    Arc {
        scale: f64,
        margin: f64,
        easy: bool,
    },
    Cos {
        scale: f64,
        margin: f64,
    },
    Combined {
        scale: f64,
        m: (f64, f64, f64),
        easy: bool,
    },
}

impl Angular {
    fn decode(g: &mut Gen) -> (&'static str, Self) {
        let scale = g.option(64.0);
        match g.byte() % 3 {
            0 => (
                "ArcFace",
                Angular::Arc {
                    scale,
                    margin: g.option(0.5),
                    easy: g.flag(),
                },
            ),
            1 => (
                "CosFace",
                Angular::Cos {
                    scale,
                    margin: g.option(0.35),
                },
            ),
            _ => {
                let m = (
                    g.option(1.0),
                    g.option(0.5),
                    if g.flag() { 0.0 } else { g.option(0.2) },
                );
                (
                    "CombinedMargin",
                    Angular::Combined {
                        scale,
                        m,
                        easy: g.flag(),
                    },
                )
            }
        }
    }

    fn options(&self) -> Vec<f64> {
        match *self {
            Angular::Arc { scale, margin, .. } | Angular::Cos { scale, margin } => {
                vec![scale, margin]
            }
            Angular::Combined { scale, m, .. } => vec![scale, m.0, m.1, m.2],
        }
    }

    fn facts(&self, facts: &mut Facts) {
        match *self {
            Angular::Arc { scale, margin, .. } | Angular::Cos { scale, margin } => {
                facts.scale = scale;
                facts.margin = margin;
            }
            Angular::Combined { scale, m, .. } => {
                facts.scale = scale;
                facts.margin = m.1;
                facts.m1 = m.0;
            }
        }
    }
}

/// Builds the loss `$a` with reduction `$r` and runs `$body` with it bound
/// to `$loss` (each loss is its own type).
macro_rules! with_angular {
    ($a:expr, $r:expr, |$loss:ident| $body:expr) => {
        match $a {
            Angular::Arc {
                scale,
                margin,
                easy,
            } => {
                let $loss = ArcFace::new()
                    .with_reduction($r)
                    .with_scale(scale)
                    .and_then(|l| l.with_margin(margin))
                    .ok()?
                    .with_easy_margin(easy);
                $body
            }
            Angular::Cos { scale, margin } => {
                let $loss = CosFace::new()
                    .with_reduction($r)
                    .with_scale(scale)
                    .and_then(|l| l.with_margin(margin))
                    .ok()?;
                $body
            }
            Angular::Combined { scale, m, easy } => {
                let $loss = CombinedMargin::new()
                    .with_reduction($r)
                    .with_scale(scale)
                    .and_then(|l| l.with_margins(m.0, m.1, m.2))
                    .ok()?
                    .with_easy_margin(easy);
                $body
            }
        }
    };
}

pub fn run(g: &mut Gen) {
    let large = g.large;
    // Bytes from 180 pick the pair and triplet losses of issue 13; the
    // others the family's earlier losses.
    let pick = g.byte();
    if pick >= 180 {
        match pick % 3 {
            0 => drive(&Signed::decode(g, false), large),
            1 => drive(&Signed::decode(g, true), large),
            _ => drive(&Triple::decode(g), large),
        }
        return;
    }
    match pick % 6 {
        0 | 1 => drive(&Angle::decode(g), large),
        2 => {
            let (name, a) = Angular::decode(g);
            let mut case = Labeled::decode(g, name, a, |g, shape| {
                let pal = g.palette();
                g.grid(shape, |g| {
                    let sign = if g.flag() { -1.0 } else { 1.0 };
                    match g.byte() % 16 {
                        0 => sign,
                        1 if g.invalid => sign * (1.0 + g.unit(pal)),
                        2 => sign * g.round(1.0 + f64::EPSILON),
                        _ => sign * g.unit(pal),
                    }
                })
            });
            a.facts(&mut case.facts);
            drive(&case, large)
        }
        3 => drive(&Contrast::decode(g), large),
        4 => drive(&Center::decode(g), large),
        _ => drive(&SelfSup::decode(g), large),
    }
}

impl Case for Labeled<Angular> {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.n())
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        with_angular!(self.opt, r, |loss| {
            accepted(&self.facts, &self.opt.options(), self);
            Some(self.go::<F, _>(&loss.on_cosines()))
        })
    }
}

/// The largest magnitude of two grids.
fn max_abs2(a: &Grid, b: &Grid) -> f64 {
    a.max_abs().max(b.max_abs())
}

/// Whether a row of `grid` has a positive norm below `2^10` times the
/// smallest normal of the float type, times the scale when above 1.
fn tiny_row(grid: &Grid, f32: bool, scale: f64) -> bool {
    let tiny = if f32 {
        f32::MIN_POSITIVE as f64
    } else {
        f64::MIN_POSITIVE
    } * 1024.0
        * scale.max(1.0);
    grid.rows().any(|row| {
        let m = row.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        m > 0.0 && m < tiny
    })
}

/// An angular-margin loss on embeddings `(N, D)` and class weights `(C, D)`.
#[derive(Debug)]
pub struct Angle {
    a: Angular,
    e: Grid,
    w: Grid,
    labels: LabelGrid,
    grad: Layout,
    facts: Facts,
}

impl Angle {
    fn decode(g: &mut Gen) -> Self {
        let (name, a) = Angular::decode(g);
        let mut es = vec![g.len(0, 5), g.len(0, 4)];
        let c = g.len(0, 5);
        g.tile(&mut es, 0);
        let e = g.reals(es.clone());
        let wd = if g.byte().is_multiple_of(16) {
            es[1] + 1
        } else {
            es[1]
        };
        let w = g.reals(vec![c, wd]);
        let labels = g.labels(vec![es[0]], c, None);
        let mut facts = Facts {
            loss: name,
            f32: g.f32,
            finite: e.finite() && w.finite(),
            max_abs: max_abs2(&e, &w),
            tiny_row: false,
            classes: c,
            ..Facts::default()
        };
        a.facts(&mut facts);
        facts.tiny_row = tiny_row(&e, g.f32, facts.scale) || tiny_row(&w, g.f32, facts.scale);
        Angle {
            a,
            e,
            w,
            labels,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Angle {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.e.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let (eb, wb) = (self.e.backing::<F, Ix2>(), self.w.backing::<F, Ix2>());
        let input = Embeddings {
            embeddings: self.e.layout.view(&eb),
            weight: self.w.layout.view(&wb),
        };
        let store = self.labels.store::<Ix1>();
        let labels = store.labels(&self.labels.layout);
        with_angular!(self.a, r, |loss| {
            accepted(&self.facts, &self.a.options(), self);
            Some(diff_outcome::<F, _>(&loss, input, labels, &self.grad))
        })
    }
}

/// The contrastive loss on pairs `(N, D)` and flags `(N)`.
#[derive(Debug)]
pub struct Contrast {
    margin: f64,
    pos_margin: f64,
    form: ContrastiveForm,
    x1: Grid,
    x2: Grid,
    similar: Grid,
    grad: Layout,
    facts: Facts,
}

impl Contrast {
    fn decode(g: &mut Gen) -> Self {
        let (margin, pos_margin) = (g.option(1.0), if g.flag() { 0.0 } else { g.option(0.5) });
        let form = if g.flag() {
            ContrastiveForm::Hinge
        } else {
            ContrastiveForm::Squared
        };
        let mut shape = vec![g.len(0, 5), g.len(0, 4)];
        g.tile(&mut shape, 0);
        let x1 = g.reals(shape.clone());
        // x2: its own values, or x1's nudged (distances near 0).
        let x2 = if g.flag() {
            g.reals(shape.clone())
        } else {
            let pal = g.palette();
            let mut x2 = g.grid(shape.clone(), |g| g.real(pal));
            for (v, &a) in x2.values.iter_mut().zip(&x1.values) {
                *v = g.round(a + *v * 1e-40);
            }
            x2
        };
        let n2 = if g.byte().is_multiple_of(16) {
            shape[1] + 1
        } else {
            shape[1]
        };
        let x2 = if n2 != shape[1] {
            g.reals(vec![shape[0], n2])
        } else {
            x2
        };
        let pal = g.palette();
        let similar = g.grid(vec![shape[0]], |g| match g.byte() % 16 {
            0 if g.invalid => g.real(pal),
            1..=7 => 1.0,
            _ => 0.0,
        });
        let tiny = if g.f32 {
            f32::MIN_POSITIVE as f64
        } else {
            f64::MIN_POSITIVE
        } * 1024.0
            * margin.max(pos_margin).max(1.0);
        let mut max_diff = 0.0f64;
        let mut tiny_distance = false;
        if x1.shape == x2.shape {
            for (a, b) in x1.rows().zip(x2.rows()) {
                let d2: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
                let m = a
                    .iter()
                    .zip(b)
                    .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
                max_diff = max_diff.max(m);
                tiny_distance |= m > 0.0 && (d2.sqrt() < tiny || m < tiny);
            }
        }
        let facts = Facts {
            loss: "Contrastive",
            f32: g.f32,
            finite: x1.finite() && x2.finite() && similar.finite(),
            max_abs: max_abs2(&x1, &x2),
            max_diff,
            tiny_distance,
            hinge_form: form == ContrastiveForm::Hinge,
            margin,
            ..Facts::default()
        };
        Contrast {
            margin,
            pos_margin,
            form,
            x1,
            x2,
            similar,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Contrast {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x1.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = Contrastive::new()
            .with_reduction(r)
            .with_margin(self.margin)
            .and_then(|l| l.with_pos_margin(self.pos_margin))
            .ok()?
            .with_form(self.form);
        accepted(&self.facts, &[self.margin, self.pos_margin], self);
        let (ab, bb, sb) = (
            self.x1.backing::<F, Ix2>(),
            self.x2.backing::<F, Ix2>(),
            self.similar.backing::<F, Ix1>(),
        );
        let pair = Pair {
            x1: self.x1.layout.view(&ab),
            x2: self.x2.layout.view(&bb),
        };
        Some(diff_outcome(
            &loss,
            pair,
            self.similar.layout.view(&sb),
            &self.grad,
        ))
    }
}

/// The center loss on features `(N, D)`, centers `(C, D)` and labels, and
/// `update_centers` on a laid-out centers buffer.
#[derive(Debug)]
pub struct Center {
    alpha: f64,
    x: Grid,
    c: Grid,
    labels: LabelGrid,
    grad: Layout,
    facts: Facts,
}

impl Center {
    fn decode(g: &mut Gen) -> Self {
        let alpha = g.option(0.5);
        let mut shape = vec![g.len(0, 5), g.len(0, 4)];
        g.tile(&mut shape, 0);
        let classes = g.len(0, 5);
        let x = g.reals(shape.clone());
        let d = if g.byte().is_multiple_of(16) {
            shape[1] + 1
        } else {
            shape[1]
        };
        let c = g.reals(vec![classes, d]);
        let labels = g.labels(vec![shape[0]], classes, None);
        let max_diff = x.max_abs() + c.max_abs();
        let facts = Facts {
            loss: "CenterLoss",
            f32: g.f32,
            finite: x.finite() && c.finite(),
            max_abs: x.max_abs(),
            max_diff,
            classes,
            ..Facts::default()
        };
        Center {
            alpha,
            x,
            c,
            labels,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Center {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = CenterLoss::new()
            .with_reduction(r)
            .with_alpha(self.alpha)
            .ok()?;
        accepted(&self.facts, &[self.alpha], self);
        let (xb, cb) = (self.x.backing::<F, Ix2>(), self.c.backing::<F, Ix2>());
        let input = CenterInput {
            features: self.x.layout.view(&xb),
            centers: self.c.layout.view(&cb),
        };
        let store = self.labels.store::<Ix1>();
        let labels = store.labels(&self.labels.layout);
        Some(diff_outcome::<F, _>(&loss, input, labels, &self.grad))
    }
    fn extra<F: Float>(&self) {
        let Ok(loss) = CenterLoss::new().with_alpha(self.alpha) else {
            return;
        };
        let facts = Facts {
            update: true,
            ..self.facts.clone()
        };
        let xb = self.x.backing::<F, Ix2>();
        let store = self.labels.store::<Ix1>();
        let mut results = Vec::new();
        for layout in [Layout::default(), self.grad] {
            let mut cb = layout.build::<F, Ix2>(
                &self.c.shape,
                self.c.values.iter().map(|&v| F::lit(v)),
                F::nan(),
            );
            let r = loss.update_centers(
                self.x.layout.view(&xb),
                store.labels(&self.labels.layout),
                layout.view_mut(&mut cb),
            );
            let after: Vec<f64> = layout.view(&cb).iter().map(|v| v.as_f64()).collect();
            let unchanged = after
                .iter()
                .zip(&self.c.values)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            if r.is_err() && !unchanged {
                fail(
                    &facts,
                    Kind::Disagree,
                    &format!("update_centers: {r:?}, but the centers changed"),
                    self,
                );
            }
            if r.is_ok() && self.facts.finite && after.iter().any(|v| !v.is_finite()) {
                fail(
                    &facts,
                    Kind::UpdateCenters,
                    &format!("update_centers: Ok, centers {after:?}"),
                    self,
                );
            }
            results.push((r, after));
        }
        let (a, b) = (&results[0], &results[1]);
        let same = format!("{:?}", a.0) == format!("{:?}", b.0)
            && a.1
                .iter()
                .zip(&b.1)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
        if !same {
            fail(
                &facts,
                Kind::Strided,
                "update_centers: contiguous and laid-out centers differ",
                self,
            );
        }
    }
}

/// Which self-supervised loss a [`SelfSup`] case runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SelfSupLoss {
    NtXent,
    Supervised,
    Byol,
}

/// NT-Xent, the supervised contrastive loss (labels in `0..3`, so groups
/// and lone anchors, or the wider values the label types wrap) or BYOL
/// (target projections of the embeddings' shape, sometimes one wider) on
/// embeddings `(M, D)`, `M` sometimes odd. Not tiled in the large mode:
/// the losses are quadratic in `M` and have no parallel path.
#[derive(Debug)]
pub struct SelfSup {
    loss: SelfSupLoss,
    temperature: f64,
    z: Grid,
    targets: Grid,
    labels: LabelGrid,
    grad: Layout,
    facts: Facts,
}

impl SelfSup {
    fn decode(g: &mut Gen) -> Self {
        let (loss, name) = match g.byte() % 3 {
            0 => (SelfSupLoss::NtXent, "NtXent"),
            1 => (SelfSupLoss::Supervised, "SupervisedContrastive"),
            _ => (SelfSupLoss::Byol, "Byol"),
        };
        let temperature = g.option(0.5);
        let shape = vec![g.len(0, 6), g.len(0, 4)];
        let z = g.reals(shape.clone());
        let width = if g.byte().is_multiple_of(16) {
            shape[1] + 1
        } else {
            shape[1]
        };
        let targets = g.reals(vec![shape[0], width]);
        let labels = g.labels(vec![shape[0]], 3, None);
        let facts = Facts {
            loss: name,
            f32: g.f32,
            finite: z.finite() && targets.finite(),
            max_abs: z.max_abs(),
            tiny_row: tiny_row(&z, g.f32, 1.0),
            ..Facts::default()
        };
        SelfSup {
            loss,
            temperature,
            z,
            targets,
            labels,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for SelfSup {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    /// The rows, or for the supervised loss the anchors whose label
    /// (as stored, after wrapping into its type) another row shares.
    fn divisor(&self) -> Option<f64> {
        if self.loss != SelfSupLoss::Supervised {
            return Some(self.z.shape[0] as f64);
        }
        let store = self.labels.store::<Ix1>();
        let labels: Vec<i128> = store.labels(&self.labels.layout).iter().collect();
        let shared = |i: usize| (0..labels.len()).any(|j| j != i && labels[j] == labels[i]);
        Some((0..labels.len()).filter(|&i| shared(i)).count() as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let zb = self.z.backing::<F, Ix2>();
        let z = self.z.layout.view(&zb);
        let t = self.temperature;
        match self.loss {
            SelfSupLoss::NtXent => {
                let loss = NtXent::new().with_reduction(r).with_temperature(t).ok()?;
                accepted(&self.facts, &[t], self);
                Some(diff_outcome::<F, _>(&loss, z, (), &self.grad))
            }
            SelfSupLoss::Supervised => {
                let loss = SupervisedContrastive::new()
                    .with_reduction(r)
                    .with_temperature(t)
                    .ok()?;
                accepted(&self.facts, &[t], self);
                let store = self.labels.store::<Ix1>();
                let labels = store.labels(&self.labels.layout);
                Some(diff_outcome::<F, _>(&loss, z, labels, &self.grad))
            }
            SelfSupLoss::Byol => {
                let tb = self.targets.backing::<F, Ix2>();
                let targets = self.targets.layout.view(&tb);
                let loss = Byol::new().with_reduction(r);
                Some(diff_outcome::<F, _>(&loss, z, targets, &self.grad))
            }
        }
    }
}

/// A setter accepted `value`: it must be in the documented range (`ok`).
fn in_range(facts: &Facts, setter: &str, value: f64, ok: bool, case: &dyn std::fmt::Debug) {
    if !ok {
        let what = format!("{setter} accepted {value}");
        fail(facts, Kind::Option, &what, case);
    }
}

/// `x`'s values nudged by `1e-40` times fresh ones (rows near `x`'s), or,
/// half of the time, fresh values.
fn near(g: &mut Gen, x: &Grid) -> Grid {
    if g.flag() {
        return g.reals(x.shape.clone());
    }
    let pal = g.palette();
    let mut y = g.grid(x.shape.clone(), |g| g.real(pal));
    for (v, &a) in y.values.iter_mut().zip(&x.values) {
        *v = g.round(a + *v * 1e-40);
    }
    y
}

/// The labels of a pair loss: `-1` or `+1`, at times (with invalid
/// targets) anything.
fn signs(g: &mut Gen, n: usize) -> Grid {
    let pal = g.palette();
    g.grid(vec![n], |g| match g.byte() % 16 {
        0 if g.invalid => g.real(pal),
        1..=7 => 1.0,
        _ => -1.0,
    })
}

/// CosineEmbedding on `(N, D)` pairs (`ranking` false) or MarginRanking on
/// `(N)` pairs, with `-1`/`+1` labels.
#[derive(Debug)]
pub struct Signed {
    ranking: bool,
    margin: f64,
    x1: Grid,
    x2: Grid,
    labels: Grid,
    grad: Layout,
    facts: Facts,
}

impl Signed {
    fn decode(g: &mut Gen, ranking: bool) -> Self {
        let margin = if g.flag() {
            -g.option(0.5)
        } else {
            g.option(0.5)
        };
        let mut shape = if ranking {
            vec![g.len(0, 8)]
        } else {
            vec![g.len(0, 5), g.len(0, 4)]
        };
        g.tile(&mut shape, 0);
        let x1 = g.reals(shape.clone());
        let mut x2 = near(g, &x1);
        if g.byte().is_multiple_of(16) {
            let last = shape.len() - 1;
            shape[last] += 1;
            x2 = g.reals(shape.clone());
        }
        let labels = signs(g, x1.shape[0]);
        let facts = Facts {
            loss: if ranking {
                "MarginRanking"
            } else {
                "CosineEmbedding"
            },
            f32: g.f32,
            finite: x1.finite() && x2.finite() && labels.finite(),
            max_abs: max_abs2(&x1, &x2),
            tiny_row: tiny_row(&x1, g.f32, 1.0) || tiny_row(&x2, g.f32, 1.0),
            margin,
            ..Facts::default()
        };
        Signed {
            ranking,
            margin,
            x1,
            x2,
            labels,
            grad: g.layout(if ranking { 1 } else { 2 }),
            facts,
        }
    }
}

impl Case for Signed {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x1.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let m = self.margin;
        let lb = self.labels.backing::<F, Ix1>();
        let labels = self.labels.layout.view(&lb);
        if self.ranking {
            let loss = MarginRanking::new().with_reduction(r).with_margin(m).ok()?;
            accepted(&self.facts, &[m], self);
            in_range(&self.facts, "MarginRanking::with_margin", m, m >= 0.0, self);
            let (ab, bb) = (self.x1.backing::<F, Ix1>(), self.x2.backing::<F, Ix1>());
            let pair = Pair {
                x1: self.x1.layout.view(&ab),
                x2: self.x2.layout.view(&bb),
            };
            Some(diff_outcome(&loss, pair, labels, &self.grad))
        } else {
            let loss = CosineEmbedding::new()
                .with_reduction(r)
                .with_margin(m)
                .ok()?;
            accepted(&self.facts, &[m], self);
            let ok = (-1.0..=1.0).contains(&m);
            in_range(&self.facts, "CosineEmbedding::with_margin", m, ok, self);
            let (ab, bb) = (self.x1.backing::<F, Ix2>(), self.x2.backing::<F, Ix2>());
            let pair = Pair {
                x1: self.x1.layout.view(&ab),
                x2: self.x2.layout.view(&bb),
            };
            Some(diff_outcome(&loss, pair, labels, &self.grad))
        }
    }
}

/// TripletMargin on three `(N, D)` arrays (no target).
#[derive(Debug)]
pub struct Triple {
    margin: f64,
    p: f64,
    eps: f64,
    swap: bool,
    anchor: Grid,
    positive: Grid,
    negative: Grid,
    grad: Layout,
    facts: Facts,
}

impl Triple {
    fn decode(g: &mut Gen) -> Self {
        let margin = g.option(1.0);
        let p = match g.byte() % 8 {
            0 => 1.0,
            1 => 2.0,
            2 => 1.0 + g.byte() as f64 / 16.0,
            3 => 1.0 - 1e-9,
            _ => g.option(2.0),
        };
        let eps = if g.flag() { 1e-6 } else { g.option(1e-6) };
        let swap = g.flag();
        let mut shape = vec![g.len(0, 5), g.len(0, 4)];
        g.tile(&mut shape, 0);
        let anchor = g.reals(shape.clone());
        let positive = near(g, &anchor);
        let negative = if g.flag() {
            near(g, &positive)
        } else {
            near(g, &anchor)
        };
        let mut negative = negative;
        if g.byte().is_multiple_of(16) {
            negative = g.reals(vec![shape[0], shape[1] + 1]);
        }
        let finite = anchor.finite() && positive.finite() && negative.finite();
        let max_abs = max_abs2(&anchor, &positive).max(negative.max_abs());
        let facts = Facts {
            loss: "TripletMargin",
            f32: g.f32,
            finite,
            max_abs,
            margin,
            gamma: p,
            ..Facts::default()
        };
        Triple {
            margin,
            p,
            eps,
            swap,
            anchor,
            positive,
            negative,
            grad: g.layout(2),
            facts,
        }
    }
}

impl Case for Triple {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.anchor.shape[0] as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let loss = TripletMargin::new()
            .with_reduction(r)
            .with_margin(self.margin)
            .and_then(|l| l.with_p(self.p))
            .and_then(|l| l.with_eps(self.eps))
            .ok()?
            .with_swap(self.swap);
        accepted(&self.facts, &[self.margin, self.p, self.eps], self);
        let ok = self.margin >= 0.0 && self.p >= 1.0 && self.eps >= 0.0;
        in_range(&self.facts, "TripletMargin's setters", self.p, ok, self);
        let (ab, pb, nb) = (
            self.anchor.backing::<F, Ix2>(),
            self.positive.backing::<F, Ix2>(),
            self.negative.backing::<F, Ix2>(),
        );
        let t = Triplet {
            anchor: self.anchor.layout.view(&ab),
            positive: self.positive.layout.view(&pb),
            negative: self.negative.layout.view(&nb),
        };
        Some(diff_outcome(&loss, t, (), &self.grad))
    }
}
