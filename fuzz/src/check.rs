//! The contract every target asserts, written once: every call of a loss
//! is made (`forward`, `per_sample`, `forward_backward`, `backward`,
//! `forward_backward_into` on a contiguous and on a laid-out buffer) under
//! each reduction, and the results are compared.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use classloss::{
    Differentiable, EmbeddingsGrad, EmbeddingsGradMut, Error, Float, Loss, PairGrad, PairGradMut,
    Reduction, TripletGrad, TripletGradMut,
};
use ndarray::{Array, ArrayViewMut, Dimension};

use crate::input::Layout;
use crate::known::known_issue;

/// The three reductions.
pub const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

pub type R<T> = Result<T, Error>;

/// Every value of a result, widened to `f64`, in logical order.
pub trait Values {
    fn values(&self) -> Vec<f64>;
}

impl<F: Float, D: Dimension> Values for Array<F, D> {
    fn values(&self) -> Vec<f64> {
        self.iter().map(|v| v.as_f64()).collect()
    }
}

impl<F: Float> Values for EmbeddingsGrad<F> {
    fn values(&self) -> Vec<f64> {
        let mut v = self.embeddings.values();
        v.extend(self.weight.values());
        v
    }
}

impl<F: Float, D: Dimension> Values for PairGrad<F, D> {
    fn values(&self) -> Vec<f64> {
        let mut v = self.x1.values();
        v.extend(self.x2.values());
        v
    }
}

impl<F: Float> Values for TripletGrad<F> {
    fn values(&self) -> Vec<f64> {
        let mut v = self.anchor.values();
        v.extend(self.positive.values());
        v.extend(self.negative.values());
        v
    }
}

/// A gradient type whose buffer can be laid out in any [`Layout`].
pub trait GradBuf<F: Float>: Values + Sized {
    /// The mutable view the fused call takes.
    type Mut<'g>;
    /// Calls `f` with a buffer shaped like `like`, laid out as `layout` and
    /// filled with `fill`; returns `f`'s result, the buffer's values in
    /// logical order, and whether the buffer was in standard layout.
    fn laid<T>(
        like: &Self,
        layout: &Layout,
        fill: F,
        f: impl for<'g> FnOnce(Self::Mut<'g>) -> T,
    ) -> (T, Vec<f64>, bool);
}

fn laid_array<F: Float, D: Dimension>(like: &Array<F, D>, layout: &Layout, fill: F) -> Array<F, D> {
    layout.backing::<F, D>(like.shape(), fill)
}

fn view_values<F: Float, D: Dimension>(backing: &Array<F, D>, layout: &Layout) -> Vec<f64> {
    layout.view(backing).iter().map(|v| v.as_f64()).collect()
}

impl<F: Float, D: Dimension> GradBuf<F> for Array<F, D> {
    type Mut<'g> = ArrayViewMut<'g, F, D>;
    fn laid<T>(
        like: &Self,
        layout: &Layout,
        fill: F,
        f: impl for<'g> FnOnce(ArrayViewMut<'g, F, D>) -> T,
    ) -> (T, Vec<f64>, bool) {
        let mut b = laid_array(like, layout, fill);
        let v = layout.view_mut(&mut b);
        let standard = v.is_standard_layout();
        let out = f(v);
        (out, view_values(&b, layout), standard)
    }
}

impl<F: Float> GradBuf<F> for EmbeddingsGrad<F> {
    type Mut<'g> = EmbeddingsGradMut<'g, F>;
    fn laid<T>(
        like: &Self,
        layout: &Layout,
        fill: F,
        f: impl for<'g> FnOnce(EmbeddingsGradMut<'g, F>) -> T,
    ) -> (T, Vec<f64>, bool) {
        let mut e = laid_array(&like.embeddings, layout, fill);
        let mut w = laid_array(&like.weight, layout, fill);
        let (ev, wv) = (layout.view_mut(&mut e), layout.view_mut(&mut w));
        let standard = ev.is_standard_layout() && wv.is_standard_layout();
        let out = f(EmbeddingsGradMut {
            embeddings: ev,
            weight: wv,
        });
        let mut values = view_values(&e, layout);
        values.extend(view_values(&w, layout));
        (out, values, standard)
    }
}

impl<F: Float, D: Dimension> GradBuf<F> for PairGrad<F, D> {
    type Mut<'g> = PairGradMut<'g, F, D>;
    fn laid<T>(
        like: &Self,
        layout: &Layout,
        fill: F,
        f: impl for<'g> FnOnce(PairGradMut<'g, F, D>) -> T,
    ) -> (T, Vec<f64>, bool) {
        let mut a = laid_array(&like.x1, layout, fill);
        let mut b = laid_array(&like.x2, layout, fill);
        let (av, bv) = (layout.view_mut(&mut a), layout.view_mut(&mut b));
        let standard = av.is_standard_layout() && bv.is_standard_layout();
        let out = f(PairGradMut { x1: av, x2: bv });
        let mut values = view_values(&a, layout);
        values.extend(view_values(&b, layout));
        (out, values, standard)
    }
}

impl<F: Float> GradBuf<F> for TripletGrad<F> {
    type Mut<'g> = TripletGradMut<'g, F>;
    fn laid<T>(
        like: &Self,
        layout: &Layout,
        fill: F,
        f: impl for<'g> FnOnce(TripletGradMut<'g, F>) -> T,
    ) -> (T, Vec<f64>, bool) {
        let mut a = laid_array(&like.anchor, layout, fill);
        let mut p = laid_array(&like.positive, layout, fill);
        let mut n = laid_array(&like.negative, layout, fill);
        let (av, pv, nv) = (
            layout.view_mut(&mut a),
            layout.view_mut(&mut p),
            layout.view_mut(&mut n),
        );
        let standard =
            av.is_standard_layout() && pv.is_standard_layout() && nv.is_standard_layout();
        let out = f(TripletGradMut {
            anchor: av,
            positive: pv,
            negative: nv,
        });
        let mut values = view_values(&a, layout);
        values.extend(view_values(&p, layout));
        values.extend(view_values(&n, layout));
        (out, values, standard)
    }
}

/// The results of every call of one loss (one reduction) on one input.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub forward: R<f64>,
    pub per_sample: R<Vec<f64>>,
    pub grad: Option<GradOutcome>,
}

/// The results of the calls with a gradient.
#[derive(Clone, Debug)]
pub struct GradOutcome {
    /// `forward_backward`.
    pub fused: R<(f64, Vec<f64>)>,
    /// `backward`.
    pub backward: R<Vec<f64>>,
    /// `forward_backward_into` on a contiguous buffer pre-filled with NaN.
    pub into: R<f64>,
    pub into_grad: Vec<f64>,
    /// `forward_backward_into` on a buffer in the case's layout, pre-filled
    /// with 123.
    pub laid: R<f64>,
    pub laid_grad: Vec<f64>,
    pub laid_standard: bool,
}

/// `forward` and `per_sample` of a loss without a gradient.
pub fn value_outcome<'a, F: Float, L: Loss<F>>(
    loss: &L,
    input: L::Input<'a>,
    target: L::Target<'a>,
) -> Outcome
where
    L::PerSample: Values,
{
    Outcome {
        forward: loss
            .forward(input.clone(), target.clone())
            .map(|v| v.as_f64()),
        per_sample: loss.per_sample(input, target).map(|p| p.values()),
        grad: None,
    }
}

/// Every call of a loss with a gradient; `layout` lays out the second
/// gradient buffer.
pub fn diff_outcome<'a, F: Float, L>(
    loss: &L,
    input: L::Input<'a>,
    target: L::Target<'a>,
    layout: &Layout,
) -> Outcome
where
    L: Differentiable<F>,
    L::PerSample: Values,
    L::Grad: GradBuf<F>,
    for<'g> <L::Grad as GradBuf<F>>::Mut<'g>: Into<L::GradMut<'g>>,
{
    let mut outcome = value_outcome(loss, input.clone(), target.clone());
    let fused = loss
        .forward_backward(input.clone(), target.clone())
        .map(|(v, g)| (v.as_f64(), g.values()));
    let like = loss.zeros_grad(input.clone());
    let (backward, into, into_grad) = if LIGHT.load(Ordering::Relaxed) {
        // The large mode: `backward` and the contiguous `into` are the same
        // code as `forward_backward`, checked on the small inputs.
        let backward = fused.clone().map(|(_, g)| g);
        let into = fused.clone().map(|(v, _)| v);
        let into_grad = fused.as_ref().map(|(_, g)| g.clone()).unwrap_or_default();
        (backward, into, into_grad)
    } else {
        let backward = loss
            .backward(input.clone(), target.clone())
            .map(|g| g.values());
        let (into, into_grad, _) =
            <L::Grad as GradBuf<F>>::laid(&like, &Layout::default(), F::nan(), |m| {
                loss.forward_backward_into(input.clone(), target.clone(), m)
                    .map(|v| v.as_f64())
            });
        (backward, into, into_grad)
    };
    let (laid, laid_grad, laid_standard) =
        <L::Grad as GradBuf<F>>::laid(&like, layout, F::from(123.0).unwrap(), |m| {
            loss.forward_backward_into(input.clone(), target.clone(), m)
                .map(|v| v.as_f64())
        });
    outcome.grad = Some(GradOutcome {
        fused,
        backward,
        into,
        into_grad,
        laid,
        laid_grad,
        laid_standard,
    });
    outcome
}

/// What the known-issue list and the failure messages know about a case.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The loss, as named in the known-issue list.
    pub loss: &'static str,
    pub f32: bool,
    /// Every float input, target, weight and option is finite.
    pub finite: bool,
    /// The largest magnitude among the differentiable inputs.
    pub max_abs: f64,
    /// The largest `|x1 - x2|` (contrastive) or `|x - c|` (center), in f64.
    pub max_diff: f64,
    /// Some pair's distance is positive and below the smallest normal.
    pub tiny_distance: bool,
    /// Some embedding or weight row has a positive norm below the smallest
    /// normal (times 2^10).
    pub tiny_row: bool,
    /// A class weight is subnormal or below 2^24 times the smallest normal.
    pub weight_subnormal: bool,
    /// The largest weight or class alpha.
    pub weight_max: f64,
    /// Some element weight is zero.
    pub zero_weight: bool,
    pub pos_weight: bool,
    /// Probability targets (cross-entropy).
    pub probs: bool,
    pub smoothing: f64,
    /// The focal `alpha` (scalar, or the largest per class).
    pub alpha: f64,
    pub gamma: f64,
    pub margin: f64,
    pub scale: f64,
    pub classes: usize,
    pub hinge_form: bool,
    /// CombinedMargin's multiplicative margin.
    pub m1: f64,
    /// An input or target is not in standard layout.
    pub strided_input: bool,
    /// `update_centers` is being checked.
    pub update: bool,
    /// Some logit, moved by an option before the softmax (logit
    /// adjustment's `tau log pi`, LDAM's scale), passes the float type's
    /// largest value: documented as `Overflow`.
    pub adjusted_beyond: bool,
}

impl Facts {
    /// The size of the terms a gradient entry is made of, from the options
    /// (weights, alpha, scale, margin), at least 1.
    pub fn grad_scale(&self) -> f64 {
        [1.0, self.weight_max, self.alpha, self.scale, self.margin]
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    }
}

/// A way a case can break the contract.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Calls disagree on Ok-vs-Err, or on the (non-overflow) error.
    Disagree,
    /// Finite inputs and options, and Ok with a non-finite value, gradient
    /// or per-sample value.
    NonFinite,
    /// `forward` and the fused value differ (contiguous buffer).
    FusedValue,
    /// `backward`, `forward_backward` and `forward_backward_into` on a
    /// contiguous buffer give different gradients.
    FusedGrad,
    /// A laid-out (strided, reversed, transposed) buffer gives a value or
    /// gradient beyond a few ulps of the contiguous one.
    Strided,
    /// `per_sample` does not reduce to `forward`.
    PerSample,
    /// `per_sample` depends on the reduction, or `None` differs from `Sum`.
    Reduction,
    /// An `Overflow` in f32 where nothing in f64 is beyond f32.
    SpuriousOverflow,
    /// One thread and two threads differ.
    Threads,
    /// `update_centers`: non-finite centers from finite inputs, or centers
    /// changed on error.
    UpdateCenters,
    /// A setter accepted an option it documents as rejected (or, for a
    /// class tree, the constructor's verdict differs from the harness's
    /// own check of the parent indices).
    Option,
    /// An evaluation function or training tool (F1, ROC AUC, average
    /// precision, thresholds, Co-teaching, frequency weights, the loss
    /// scaler) returned a result outside its documented range, or other
    /// than the exact value the harness computes by brute force.
    Metric,
}

/// Set in the large mode: [`diff_outcome`] skips `backward` and the
/// contiguous `forward_backward_into` (it copies `forward_backward`).
pub static LIGHT: AtomicBool = AtomicBool::new(false);

static KNOWN: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
static STRIDED_CALLS: AtomicU64 = AtomicU64::new(0);
static STRIDED_DIFFS: AtomicU64 = AtomicU64::new(0);

/// Reports a failure: a panic (the fuzzer's crash), unless
/// [`known_issue`] lists it, in which case it is counted and the input
/// skipped. With `CLASSLOSS_FUZZ_STRICT` set, the list is ignored (to see
/// whether a fix holds); with `CLASSLOSS_FUZZ_KNOWN_DIR=dir`, the first case
/// of each known issue, loss and kind is written there.
pub fn fail(facts: &Facts, kind: Kind, what: &str, case: &dyn std::fmt::Debug) {
    static STRICT: OnceLock<bool> = OnceLock::new();
    let strict = *STRICT.get_or_init(|| std::env::var_os("CLASSLOSS_FUZZ_STRICT").is_some());
    if !strict && let Some((k, name)) = known_issue(facts, kind) {
        let n = KNOWN[k % 32].fetch_add(1, Ordering::Relaxed) + 1;
        static SEEN: std::sync::Mutex<Vec<(usize, &str, Kind)>> = std::sync::Mutex::new(Vec::new());
        let first = {
            let mut seen = SEEN.lock().unwrap();
            let key = (k, facts.loss, kind);
            let first = !seen.contains(&key);
            if first {
                seen.push(key);
            }
            first
        };
        if first && let Ok(dir) = std::env::var("CLASSLOSS_FUZZ_KNOWN_DIR") {
            let file = format!("{dir}/{k:02}-{}-{kind:?}.txt", facts.loss);
            let text = format!("{name}\n{kind:?}: {what}\nfacts: {facts:?}\ncase: {case:#?}\n");
            let _ = std::fs::write(file, text);
        }
        if first || n.is_power_of_two() {
            let what: String = what.chars().take(300).collect();
            eprintln!(
                "classloss-fuzz: known issue `{name}` hit {n} times; {} {}: {kind:?}: {what}",
                facts.loss,
                if facts.f32 { "f32" } else { "f64" }
            );
        }
        return;
    }
    panic!("contract broken: {kind:?}: {what}\nfacts: {facts:?}\ncase: {case:#?}");
}

fn ulp(x: f64, f32: bool) -> f64 {
    let eps = if f32 {
        f32::EPSILON as f64
    } else {
        f64::EPSILON
    };
    let tiny = if f32 { 1.4e-45 } else { 5e-324 };
    x.abs() * eps + tiny
}

/// Equal bits, or both NaN.
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn same_all(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| same(x, y))
}

/// Within `k` ulps (of the float type), or `abs` apart, or both NaN, or
/// equal infinities.
fn close(a: f64, b: f64, k: f64, abs: f64, f32: bool) -> bool {
    same(a, b) || (a - b).abs() <= k * ulp(a.abs().max(b.abs()), f32) + abs
}

/// The same error (a NaN value in it equal to NaN).
pub fn same_error(a: &Error, b: &Error) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The largest scalar option of the case being run, as [`accepted`]
/// recorded it (bits of an `f64`), for the known-issue list.
///
/// [`accepted`]: crate::families::accepted
pub static OPTION_MAX: AtomicU64 = AtomicU64::new(0);

/// The smallest nonzero magnitude among the scalar options of the case
/// being run (bits of an `f64`; infinity when none).
pub static OPTION_TINY: AtomicU64 = AtomicU64::new(0x7ff0_0000_0000_0000);

/// The smallest nonzero scalar option recorded for the current case.
pub fn option_tiny() -> f64 {
    f64::from_bits(OPTION_TINY.load(Ordering::Relaxed))
}

/// The largest scalar option recorded for the current case.
pub fn option_max() -> f64 {
    f64::from_bits(OPTION_MAX.load(Ordering::Relaxed))
}

enum Class<'e> {
    Ok,
    Overflow,
    Other(&'e Error),
}

fn class<T>(r: &R<T>) -> Class<'_> {
    match r {
        Ok(_) => Class::Ok,
        Err(Error::Overflow { .. }) => Class::Overflow,
        Err(e) => Class::Other(e),
    }
}

/// The checks on one reduction's outcome.
pub fn check_outcome(facts: &Facts, r: Reduction, o: &Outcome, case: &dyn std::fmt::Debug) {
    let f32 = facts.f32;
    // Validation errors: every call gives the same one, or none does.
    let mut classes: Vec<(&str, Class)> = vec![
        ("forward", class(&o.forward)),
        ("per_sample", class(&o.per_sample)),
    ];
    if let Some(g) = &o.grad {
        classes.push(("forward_backward", class(&g.fused)));
        classes.push(("backward", class(&g.backward)));
        classes.push(("forward_backward_into", class(&g.into)));
        classes.push(("forward_backward_into (laid out)", class(&g.laid)));
    }
    let other = classes.iter().find_map(|(n, c)| match c {
        Class::Other(e) => Some((*n, *e)),
        _ => None,
    });
    if let Some((first, e)) = other {
        for (n, c) in &classes {
            let agrees = matches!(c, Class::Other(e2) if same_error(e2, e));
            if !agrees {
                let got = match c {
                    Class::Ok => "Ok".to_string(),
                    Class::Overflow => "Overflow".to_string(),
                    Class::Other(e2) => format!("{e2}"),
                };
                fail(
                    facts,
                    Kind::Disagree,
                    &format!("{r}: {first} gives `{e}`, {n} gives {got}"),
                    case,
                );
                return;
            }
        }
        return;
    }
    // Finite inputs: Ok means finite.
    if facts.finite {
        let mut bad: Vec<String> = Vec::new();
        if let Ok(v) = o.forward
            && !v.is_finite()
        {
            bad.push(format!("forward Ok({v})"));
        }
        if let Ok(p) = &o.per_sample
            && let Some(v) = p.iter().find(|v| !v.is_finite())
        {
            bad.push(format!("per_sample Ok with {v}"));
        }
        if let Some(g) = &o.grad {
            if let Ok((v, grad)) = &g.fused
                && (!v.is_finite() || grad.iter().any(|x| !x.is_finite()))
            {
                let x = grad.iter().find(|x| !x.is_finite());
                bad.push(format!("forward_backward Ok({v}), a gradient entry {x:?}"));
            }
            if let Ok(v) = g.laid
                && (!v.is_finite() || g.laid_grad.iter().any(|x| !x.is_finite()))
            {
                let x = g.laid_grad.iter().find(|x| !x.is_finite());
                bad.push(format!(
                    "forward_backward_into (laid out) Ok({v}), a gradient entry {x:?}"
                ));
            }
        }
        if !bad.is_empty() {
            fail(
                facts,
                Kind::NonFinite,
                &format!("{r}: {}", bad.join("; ")),
                case,
            );
            return;
        }
    }
    let Some(g) = &o.grad else { return };
    // forward vs the fused calls.
    match (&o.forward, &g.fused) {
        (Ok(v), Ok((fv, _))) if !same(*v, *fv) => {
            let what = format!("{r}: forward {v:e}, forward_backward {fv:e}");
            return fail(facts, Kind::FusedValue, &what, case);
        }
        (Err(Error::Overflow { .. }), Ok((fv, _))) => {
            let what = format!("{r}: forward overflows, forward_backward Ok({fv:e})");
            return fail(facts, Kind::FusedValue, &what, case);
        }
        _ => {}
    }
    let fused_ok = g.fused.is_ok();
    if fused_ok != g.backward.is_ok() || fused_ok != g.into.is_ok() || fused_ok != g.laid.is_ok() {
        let what = format!(
            "{r}: Ok-ness: forward_backward {}, backward {}, into {}, into laid out {}",
            fused_ok,
            g.backward.is_ok(),
            g.into.is_ok(),
            g.laid.is_ok()
        );
        return fail(facts, Kind::Disagree, &what, case);
    }
    let Ok((fv, fg)) = &g.fused else { return };
    let (bg, iv) = (g.backward.as_ref().unwrap(), *g.into.as_ref().unwrap());
    if !same_all(fg, bg) || !same_all(fg, &g.into_grad) {
        let k = (0..fg.len())
            .find(|&k| !same(fg[k], bg[k]) || !same(fg[k], g.into_grad[k]))
            .unwrap_or(0);
        let what = format!(
            "{r}: gradient entry {k}: forward_backward {:e}, backward {:e}, into {:e}",
            fg[k], bg[k], g.into_grad[k]
        );
        return fail(facts, Kind::FusedGrad, &what, case);
    }
    if !same(*fv, iv) {
        let what = format!("{r}: forward_backward {fv:e}, forward_backward_into {iv:e}");
        return fail(facts, Kind::FusedValue, &what, case);
    }
    // The laid-out buffer: bit for bit when it is in standard layout,
    // within a few ulps otherwise (and counted when the bits differ).
    let lv = *g.laid.as_ref().unwrap();
    let lg = &g.laid_grad;
    if g.laid_standard {
        if !same(*fv, lv) || !same_all(fg, lg) {
            let what = format!("{r}: standard-layout laid buffer differs: {fv:e} vs {lv:e}");
            return fail(facts, Kind::FusedGrad, &what, case);
        }
        return;
    }
    let calls = STRIDED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    if same(*fv, lv) && same_all(fg, lg) {
        return;
    }
    let diffs = STRIDED_DIFFS.fetch_add(1, Ordering::Relaxed) + 1;
    if diffs.is_power_of_two() {
        eprintln!(
            "classloss-fuzz: strided gradient buffer changed the bits of the value or gradient \
             in {diffs} of {calls} calls so far ({}, {r}: {fv:e} vs {lv:e})",
            facts.loss
        );
    }
    let per_size: f64 = match &o.per_sample {
        Ok(p) => p.iter().map(|v| v.abs()).sum(),
        Err(_) => 0.0,
    };
    let n = o.per_sample.as_ref().map(|p| p.len()).unwrap_or(0) as f64;
    let value_tol = (2.0 * n + 4.0) * ulp(per_size, f32);
    if !close(*fv, lv, 8.0, value_tol, f32) {
        let what = format!("{r}: value {fv:e} (contiguous buffer) vs {lv:e} (laid out)");
        return fail(facts, Kind::Strided, &what, case);
    }
    // Entries that cancel to about 0 (a one-class row's `p - 1`) keep only
    // rounding noise of the terms' size: compare at that size.
    let gmax = fg.iter().fold(facts.grad_scale(), |m, v| m.max(v.abs()));
    if let Some(k) = (0..fg.len()).find(|&k| !close(fg[k], lg[k], 8.0, 8.0 * ulp(gmax, f32), f32)) {
        let what = format!(
            "{r}: gradient entry {k}: {:e} (contiguous buffer) vs {:e} (laid out)",
            fg[k], lg[k]
        );
        fail(facts, Kind::Strided, &what, case);
    }
}

/// The checks across reductions: `per_sample` the same under each,
/// `None` equal to `Sum`, and `per_sample` reducing to `forward`.
/// `divisor` is what `Mean` divides by, where the case knows it.
pub fn check_across(
    facts: &Facts,
    outs: &[Outcome; 3],
    divisor: Option<f64>,
    case: &dyn std::fmt::Debug,
) {
    let [mean, sum, none] = outs;
    for o in [mean, none] {
        let agree = match (&sum.per_sample, &o.per_sample) {
            (Ok(a), Ok(b)) => same_all(a, b),
            (Err(a), Err(b)) => same_error(a, b),
            _ => false,
        };
        if !agree {
            let what = "per_sample differs between reductions".to_string();
            return fail(facts, Kind::Reduction, &what, case);
        }
    }
    let none_agrees = match (&sum.forward, &none.forward) {
        (Ok(a), Ok(b)) => same(*a, *b),
        (Err(a), Err(b)) => same_error(a, b),
        _ => false,
    } && match (&sum.grad, &none.grad) {
        (Some(a), Some(b)) => match (&a.fused, &b.fused) {
            (Ok((_, x)), Ok((_, y))) => same_all(x, y),
            (Err(_), Err(_)) => true,
            _ => false,
        },
        _ => true,
    };
    if !none_agrees {
        let what = format!(
            "Reduction::None gives {:?}, Sum {:?}",
            none.forward, sum.forward
        );
        return fail(facts, Kind::Reduction, &what, case);
    }
    let Ok(per) = &sum.per_sample else { return };
    if per.iter().any(|v| !v.is_finite()) {
        return;
    }
    let total: f64 = per.iter().sum();
    let size: f64 = per.iter().map(|v| v.abs()).sum();
    let tol = (2 * per.len() + 4) as f64 * ulp(size, facts.f32);
    if let Ok(v) = sum.forward
        && v.is_finite()
        && (v - total).abs() > tol
    {
        let what = format!("Sum {v:e}, but per_sample sums to {total:e}");
        return fail(facts, Kind::PerSample, &what, case);
    }
    if let (Some(d), Ok(v)) = (divisor, &mean.forward) {
        let expected = if d > 0.0 { total / d } else { 0.0 };
        let tol = if d > 0.0 { tol / d } else { 0.0 };
        if v.is_finite()
            && expected.is_finite()
            && (v - expected).abs() > tol + ulp(expected, facts.f32)
        {
            let what =
                format!("Mean {v:e}, but per_sample gives {expected:e} (sum {total:e} / {d:e})");
            fail(facts, Kind::PerSample, &what, case);
        }
    }
}

/// Whether the `f64` outcome has something beyond `f32`: what justifies an
/// `Overflow` of the same call in `f32`.
pub fn beyond_f32(o: &Outcome) -> bool {
    let big = |v: &f64| v.abs() > 0.999 * f32::MAX as f64;
    let of = |r: &R<f64>| matches!(r, Err(Error::Overflow { .. })) || r.as_ref().is_ok_and(big);
    of(&o.forward)
        || matches!(&o.per_sample, Err(Error::Overflow { .. }))
        || o.per_sample.as_ref().is_ok_and(|p| p.iter().any(big))
        || o.grad.as_ref().is_some_and(|g| match &g.fused {
            Ok((v, grad)) => big(v) || grad.iter().any(big),
            Err(e) => matches!(e, Error::Overflow { .. }),
        })
}

/// Whether any call of the outcome overflowed.
pub fn overflowed(o: &Outcome) -> bool {
    let of = |e: &Error| matches!(e, Error::Overflow { .. });
    o.forward.as_ref().err().is_some_and(of)
        || o.per_sample.as_ref().err().is_some_and(of)
        || o.grad.as_ref().is_some_and(|g| {
            g.fused.as_ref().err().is_some_and(of) || g.laid.as_ref().err().is_some_and(of)
        })
}

/// Whether two outcomes are identical bit for bit (NaN equal to NaN).
pub fn identical(a: &Outcome, b: &Outcome) -> Result<(), String> {
    fn r1(a: &R<f64>, b: &R<f64>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => same(*x, *y),
            (Err(x), Err(y)) => same_error(x, y),
            _ => false,
        }
    }
    fn rv(a: &R<Vec<f64>>, b: &R<Vec<f64>>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => same_all(x, y),
            (Err(x), Err(y)) => same_error(x, y),
            _ => false,
        }
    }
    if !r1(&a.forward, &b.forward) {
        return Err(format!("forward: {:?} vs {:?}", a.forward, b.forward));
    }
    if !rv(&a.per_sample, &b.per_sample) {
        return Err("per_sample differs".into());
    }
    if let (Some(x), Some(y)) = (&a.grad, &b.grad) {
        let fx = x.fused.clone().map(|(v, g)| [vec![v], g].concat());
        let fy = y.fused.clone().map(|(v, g)| [vec![v], g].concat());
        if !rv(&fx, &fy) {
            return Err("forward_backward differs".into());
        }
        if !r1(&x.laid, &y.laid) || (x.laid.is_ok() && !same_all(&x.laid_grad, &y.laid_grad)) {
            return Err("forward_backward_into (laid out) differs".into());
        }
    }
    Ok(())
}

/// A pool of `n` threads, built once.
pub fn pool(n: usize) -> &'static rayon::ThreadPool {
    static POOLS: [OnceLock<rayon::ThreadPool>; 2] = [OnceLock::new(), OnceLock::new()];
    POOLS[n - 1].get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a thread pool")
    })
}

/// The strided-buffer statistics so far: (calls on a non-standard buffer,
/// calls whose bits differed from the contiguous buffer).
pub fn strided_stats() -> (u64, u64) {
    (
        STRIDED_CALLS.load(Ordering::Relaxed),
        STRIDED_DIFFS.load(Ordering::Relaxed),
    )
}
