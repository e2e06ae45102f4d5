//! The evaluation losses and functions, and the training tools.
//!
//! Losses (value only): ZeroOne and Hamming (threshold). Besides the
//! contract's value half: every per-sample value is 0 or 1 for valid
//! labels, and `Sum` is their count.
//!
//! Functions, on `(N, C)` scores and indicator or label targets:
//! `roc_auc`, `average_precision`, `pick_f1_thresholds` (both modes),
//! `multilabel_predictions`, `multilabel_f1`, `argmax_predictions`; and
//! `multiclass_f1`, `small_loss_indices`, `CoTeachingSchedule`,
//! `inverse_frequency_weights`, `sqrt_inverse_frequency_weights` and
//! `LossScaler`. They must not panic; they return an error exactly where
//! the input is invalid (the harness's own check), and otherwise a result
//! in range that equals a brute-force computation on the small inputs
//! (AUC and AP in `[0, 1]`, F1 from the exact counts, thresholds from the
//! scores or `+inf` and F1-maximal, indices sorted, in range and the
//! smallest losses, weights finite, positive, decreasing in the count and
//! summing to `C`, the scaler's dynamics step by step).

use classloss::{
    CoTeachingSchedule, EvalTarget, F1Scores, Float, Hamming, LossScaler, PerClassMetric,
    Reduction, StepDecision, ThresholdMode, Thresholds, ZeroDivision, ZeroOne, argmax_predictions,
    average_precision, inverse_frequency_weights, multiclass_f1, multilabel_f1,
    multilabel_predictions, pick_f1_thresholds, roc_auc, small_loss_indices,
    sqrt_inverse_frequency_weights,
};
use ndarray::{Array1, Array2, Ix1, Ix2};

use super::{Labeled, accepted};
use crate::check::{Facts, Kind, Outcome, fail, value_outcome};
use crate::input::{Gen, Grid, LabelGrid, seen_labels};
use crate::{Case, drive};

pub fn run(g: &mut Gen) {
    let large = g.large;
    match g.byte() % 8 {
        0 | 1 => {
            let case = Labeled::decode(g, "ZeroOne", (), |g, s| g.reals(s));
            drive(&case, large)
        }
        2 => drive(&HammingCase::decode(g), large),
        3..=5 => {
            let case = Ranked::decode(g);
            if case.facts.f32 {
                case.check::<f32>()
            } else {
                case.check::<f64>()
            }
        }
        6 => tools(g),
        _ => scaler(g),
    }
}

/// Whether a value is 0 or 1 (a valid indicator).
fn zero_one(v: f64) -> bool {
    v == 0.0 || v == 1.0
}

/// Reports a metric failure.
fn bad(facts: &Facts, what: String, case: &dyn std::fmt::Debug) {
    fail(facts, Kind::Metric, &what, case);
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
        count_check(&self.facts, r, &out, self);
        Some(out)
    }
}

/// Per-sample values 0 or 1, and `Sum` their count.
fn count_check(facts: &Facts, r: Reduction, out: &Outcome, case: &dyn std::fmt::Debug) {
    if let Ok(p) = &out.per_sample
        && p.iter().any(|&v| !zero_one(v))
    {
        let what = format!("{r}: per_sample not 0/1: {p:?}");
        fail(facts, Kind::PerSample, &what, case);
    }
    if let (Ok(p), Ok(v), Reduction::Sum) = (&out.per_sample, &out.forward, r)
        && p.iter().sum::<f64>() != *v
    {
        let what = format!("Sum {v} is not the count of {p:?}");
        fail(facts, Kind::PerSample, &what, case);
    }
}

/// The Hamming loss on `(N, C)` logits and 0/1 targets.
#[derive(Debug)]
pub struct HammingCase {
    threshold: f64,
    x: Grid,
    t: Grid,
    facts: Facts,
}

impl HammingCase {
    fn decode(g: &mut Gen) -> Self {
        let threshold = if g.flag() { 0.5 } else { g.option(0.5) };
        let mut shape = vec![g.len(0, 6), g.len(0, 6)];
        g.tile(&mut shape, 0);
        let x = g.reals(shape.clone());
        let t = indicators(g, shape);
        let facts = Facts {
            loss: "Hamming",
            f32: g.f32,
            finite: x.finite() && t.finite(),
            max_abs: x.max_abs(),
            ..Facts::default()
        };
        HammingCase {
            threshold,
            x,
            t,
            facts,
        }
    }
}

impl Case for HammingCase {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn divisor(&self) -> Option<f64> {
        Some(self.x.values.len() as f64)
    }
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome> {
        let th = self.threshold;
        let loss = Hamming::new().with_reduction(r).with_threshold(th).ok()?;
        accepted(&self.facts, &[th], self);
        if !(th > 0.0 && th < 1.0) {
            let what = format!("Hamming::with_threshold accepted {th}");
            fail(&self.facts, Kind::Option, &what, self);
        }
        let (xb, tb) = (self.x.backing::<F, Ix2>(), self.t.backing::<F, Ix2>());
        let (x, t) = (self.x.layout.view(&xb), self.t.layout.view(&tb));
        let out = value_outcome(&loss, x, t);
        count_check(&self.facts, r, &out, self);
        Some(out)
    }
}

/// 0/1 indicators of `shape`, at times (with invalid targets) anything.
fn indicators(g: &mut Gen, shape: Vec<usize>) -> Grid {
    let pal = g.palette();
    g.grid(shape, |g| match g.byte() % 16 {
        0 if g.invalid => g.unit(pal),
        1..=6 => 1.0,
        _ => 0.0,
    })
}

#[derive(Debug)]
enum Target {
    Indicators(Grid),
    Labels(LabelGrid),
}

/// The ranking and threshold metrics on `(N, C)` scores.
#[derive(Debug)]
pub struct Ranked {
    scores: Grid,
    target: Target,
    /// Thresholds to predict with besides the picked ones: shared, or per
    /// class (at times of another length).
    thresholds: Result<f64, Grid>,
    /// Multi-class predictions for `multiclass_f1`.
    predicted: LabelGrid,
    num_classes: usize,
    facts: Facts,
}

impl Ranked {
    fn decode(g: &mut Gen) -> Self {
        let mut shape = vec![g.len(0, 7), g.len(0, 5)];
        g.tile(&mut shape, 0);
        let (n, c) = (shape[0], shape[1]);
        // Scores with ties: at times from a few values only.
        let scores = if g.flag() {
            g.reals(shape.clone())
        } else {
            let pal = g.palette();
            let few: Vec<f64> = (0..3).map(|_| g.real(pal)).collect();
            g.grid(shape.clone(), |g| few[g.below(3)])
        };
        let target = if g.flag() {
            let mut ts = shape.clone();
            if g.invalid && g.chance(16) {
                ts[1] += 1;
            }
            Target::Indicators(indicators(g, ts))
        } else {
            Target::Labels(g.labels(vec![n], c, None))
        };
        let thresholds = if g.flag() {
            let pal = g.palette();
            Ok(g.real(pal))
        } else {
            let len = if g.chance(16) { c + 1 } else { c };
            Err(g.reals(vec![len]))
        };
        let len = if g.chance(8) { n + 1 } else { n };
        let predicted = g.labels(vec![len], c, None);
        let num_classes = if g.chance(8) { 0 } else { c };
        let facts = Facts {
            loss: "roc_auc",
            f32: g.f32,
            finite: scores.finite(),
            max_abs: scores.max_abs(),
            classes: c,
            ..Facts::default()
        };
        Ranked {
            scores,
            target,
            thresholds,
            predicted,
            num_classes,
            facts,
        }
    }

    /// The positives `(N, C)` as the harness reads the target, or `None`
    /// where the functions must reject it.
    fn positives(&self) -> Option<Vec<Vec<bool>>> {
        let (n, c) = (self.scores.shape[0], self.scores.shape[1]);
        match &self.target {
            Target::Indicators(t) => {
                if t.shape != self.scores.shape || !t.values.iter().all(|&v| zero_one(v)) {
                    return None;
                }
                Some(
                    t.values
                        .chunks(c.max(1))
                        .take(n)
                        .map(|r| r.iter().map(|&v| v == 1.0).collect())
                        .collect(),
                )
            }
            Target::Labels(l) => {
                let ys = seen_labels(l);
                if ys.iter().any(|&y| y < 0 || y >= c as i128) {
                    return None;
                }
                Some(
                    ys.iter()
                        .map(|&y| (0..c).map(|k| k as i128 == y).collect())
                        .collect(),
                )
            }
        }
    }

    fn check<F: Float>(&self) {
        let (n, c) = (self.scores.shape[0], self.scores.shape[1]);
        let sb = self.scores.backing::<F, Ix2>();
        let s = self.scores.layout.view(&sb);
        let cols: Vec<Vec<f64>> = (0..c)
            .map(|k| (0..n).map(|i| s[[i, k]].as_f64()).collect())
            .collect();
        let scores_ok = n > 0 && c > 0 && self.scores.finite();
        let pos = self.positives();
        let valid = scores_ok && pos.is_some();
        // Brute force is quadratic: only on small inputs.
        let small = !self.large();
        let (ib, ls);
        let target: EvalTarget<'_, F> = match &self.target {
            Target::Indicators(t) => {
                ib = t.backing::<F, Ix2>();
                EvalTarget::Indicators(t.layout.view(&ib))
            }
            Target::Labels(l) => {
                ls = l.store::<Ix1>();
                EvalTarget::Labels(ls.labels(&l.layout))
            }
        };
        let f = |name: &'static str| Facts {
            loss: name,
            ..self.facts.clone()
        };
        let verdict = |name: &'static str, ok: bool, valid: bool, err: String| {
            if ok != valid {
                let what = format!("{name}: valid input {valid}, but {err}");
                bad(&f(name), what, self);
            }
        };

        // ROC AUC and average precision.
        let auc = roc_auc(s, target.clone());
        let ap = average_precision(s, target.clone());
        verdict("roc_auc", auc.is_ok(), valid, format!("{auc:?}"));
        verdict("average_precision", ap.is_ok(), valid, format!("{ap:?}"));
        if let (Ok(auc), Ok(ap), Some(pos)) = (&auc, &ap, &pos) {
            for k in 0..c {
                let col: Vec<(f64, bool)> = (0..n).map(|i| (cols[k][i], pos[i][k])).collect();
                let (want_auc, want_ap) = if small {
                    (brute_auc(&col), brute_ap(&col))
                } else {
                    (auc.per_class()[k], ap.per_class()[k])
                };
                let in_unit = |v: Option<f64>| v.is_none_or(|v| (0.0..=1.0).contains(&v));
                let got = (auc.per_class()[k], ap.per_class()[k]);
                let ap_close = match (got.1, want_ap) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-12,
                    (a, b) => a == b,
                };
                if got.0 != want_auc || !ap_close || !in_unit(got.0) || !in_unit(got.1) {
                    let what = format!(
                        "class {k}: AUC {:?} (brute force {want_auc:?}), AP {:?} ({want_ap:?})",
                        got.0, got.1
                    );
                    bad(&f("roc_auc"), what, self);
                }
            }
            macro_in_unit(&f("roc_auc"), auc, self);
            macro_in_unit(&f("average_precision"), ap, self);
        }

        // The F1 thresholds, per class and shared.
        for mode in [ThresholdMode::PerClass, ThresholdMode::Shared] {
            let picked = pick_f1_thresholds(s, target.clone(), mode);
            verdict(
                "pick_f1_thresholds",
                picked.is_ok(),
                valid,
                format!("{picked:?}"),
            );
            let (Ok(picked), Some(pos)) = (picked, &pos) else {
                continue;
            };
            let groups: Vec<Vec<usize>> = match mode {
                ThresholdMode::PerClass => (0..c).map(|k| vec![k]).collect(),
                ThresholdMode::Shared => vec![(0..c).collect()],
            };
            for (at, classes) in groups.iter().enumerate() {
                let t = match (&picked, mode) {
                    (Thresholds::PerClass(t), ThresholdMode::PerClass) if t.len() == c => {
                        t[at].as_f64()
                    }
                    (Thresholds::Shared(t), ThresholdMode::Shared) => t.as_f64(),
                    _ => {
                        let what = format!("{mode:?}: {picked:?} for {c} classes");
                        return bad(&f("pick_f1_thresholds"), what, self);
                    }
                };
                if small && let Err(what) = best_threshold(t, classes, &cols, pos) {
                    bad(
                        &f("pick_f1_thresholds"),
                        format!("{mode:?}, classes {classes:?}: {what}"),
                        self,
                    );
                }
            }
            self.predictions::<F>(s, &picked, pos);
        }

        // Predictions at the case's thresholds.
        let th = match &self.thresholds {
            Ok(t) => Thresholds::Shared(F::lit(*t)),
            Err(t) => Thresholds::PerClass(t.array1::<F>()),
        };
        let th_ok = match &th {
            Thresholds::Shared(t) => !t.is_nan(),
            Thresholds::PerClass(t) => t.len() == c && t.iter().all(|v| !v.is_nan()),
        };
        let pred = multilabel_predictions(s, &th);
        verdict(
            "multilabel_predictions",
            pred.is_ok(),
            scores_ok && th_ok,
            format!("{pred:?}"),
        );
        if let Some(pos) = &pos
            && pred.is_ok()
        {
            self.predictions::<F>(s, &th, pos);
        }

        // Argmax, then multi-class F1 of the labels against it.
        let am = argmax_predictions(s);
        verdict(
            "argmax_predictions",
            am.is_ok(),
            scores_ok,
            format!("{am:?}"),
        );
        if let Ok(am) = &am {
            for (i, &a) in am.iter().enumerate() {
                let row = (0..c).map(|k| cols[k][i]);
                let first_max =
                    row.enumerate()
                        .fold(None, |b: Option<(usize, f64)>, (k, v)| match b {
                            Some((_, bv)) if bv >= v => b,
                            _ => Some((k, v)),
                        });
                if first_max.map(|(k, _)| k) != Some(a) {
                    let what = format!("row {i}: argmax {a}, expected {first_max:?}");
                    bad(&f("argmax_predictions"), what, self);
                }
            }
        }
        if let Target::Labels(l) = &self.target {
            self.multiclass(l);
        }
    }

    fn large(&self) -> bool {
        self.scores.values.len() > 4096
    }

    /// `multilabel_predictions` at `th` against the definition, and
    /// `multilabel_f1` of those decisions against the exact counts.
    fn predictions<F: Float>(
        &self,
        s: ndarray::ArrayView2<'_, F>,
        th: &Thresholds<F>,
        pos: &[Vec<bool>],
    ) {
        let f = |name: &'static str| Facts {
            loss: name,
            ..self.facts.clone()
        };
        let decisions = match multilabel_predictions(s, th) {
            Ok(d) => d,
            Err(e) => {
                let what = format!("{th:?} rejected: {e}");
                return bad(&f("multilabel_predictions"), what, self);
            }
        };
        let (n, c) = s.dim();
        for ((i, k), &d) in decisions.indexed_iter() {
            let t = th.for_class(k).map_or(f64::INFINITY, |t| t.as_f64());
            if d != (s[[i, k]].as_f64() >= t) {
                let what = format!("[{i}, {k}]: {d} at threshold {t}");
                return bad(&f("multilabel_predictions"), what, self);
            }
        }
        // The targets as indicators, the harness's reading.
        let ind = Array2::from_shape_fn(
            (n, c),
            |(i, k)| if pos[i][k] { F::one() } else { F::zero() },
        );
        match multilabel_f1(&ind, decisions.view()) {
            Ok(scores) => f1_check(&f("multilabel_f1"), &scores, &decisions, pos, self),
            Err(e) => bad(
                &f("multilabel_f1"),
                format!("valid input rejected: {e}"),
                self,
            ),
        }
    }

    /// `multiclass_f1` of the labels against the case's predictions.
    fn multiclass(&self, labels: &LabelGrid) {
        let facts = Facts {
            loss: "multiclass_f1",
            ..self.facts.clone()
        };
        let k = self.num_classes;
        let ys = seen_labels(labels);
        let ps = seen_labels(&self.predicted);
        let in_range = |v: &[i128]| v.iter().all(|&y| y >= 0 && y < k as i128);
        let valid =
            k > 0 && !ys.is_empty() && ys.len() == ps.len() && in_range(&ys) && in_range(&ps);
        let (lb, pb) = (labels.store::<Ix1>(), self.predicted.store::<Ix1>());
        let got = multiclass_f1(
            lb.labels(&labels.layout),
            pb.labels(&self.predicted.layout),
            k,
        );
        if got.is_ok() != valid {
            let what = format!("valid input {valid}, but {got:?}");
            return bad(&facts, what, self);
        }
        let Ok(scores) = got else { return };
        let mut want = vec![(0usize, 0usize, 0usize); k];
        for (&y, &p) in ys.iter().zip(&ps) {
            let (y, p) = (y as usize, p as usize);
            if y == p {
                want[y].0 += 1;
            } else {
                want[p].1 += 1;
                want[y].2 += 1;
            }
        }
        counts_check(&facts, &scores, &want, self);
    }
}

/// A macro average in `[0, 1]`, or `None` only when no class is defined.
fn macro_in_unit(facts: &Facts, m: &PerClassMetric, case: &dyn std::fmt::Debug) {
    let avg = m.macro_average();
    let defined = m.per_class().iter().any(|v| v.is_some());
    if avg.is_some() != defined || avg.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
        bad(
            facts,
            format!("macro average {avg:?} of {:?}", m.per_class()),
            case,
        );
    }
}

/// The exact Mann-Whitney AUC, `None` without a positive or a negative.
fn brute_auc(col: &[(f64, bool)]) -> Option<f64> {
    let (p, q): (Vec<f64>, Vec<f64>) = (
        col.iter().filter(|x| x.1).map(|x| x.0).collect(),
        col.iter().filter(|x| !x.1).map(|x| x.0).collect(),
    );
    if p.is_empty() || q.is_empty() {
        return None;
    }
    let mut twice: u128 = 0;
    for &a in &p {
        for &b in &q {
            twice += if a > b { 2 } else { u128::from(a == b) };
        }
    }
    Some(twice as f64 / (2 * p.len() as u128 * q.len() as u128) as f64)
}

/// Average precision: the mean over positives of the precision at their
/// score (ties predicted together); `None` without a positive.
fn brute_ap(col: &[(f64, bool)]) -> Option<f64> {
    let positives: Vec<f64> = col.iter().filter(|x| x.1).map(|x| x.0).collect();
    if positives.is_empty() {
        return None;
    }
    let sum: f64 = positives
        .iter()
        .map(|&s| {
            let tp = col.iter().filter(|x| x.1 && x.0 >= s).count();
            let predicted = col.iter().filter(|x| x.0 >= s).count();
            tp as f64 / predicted as f64
        })
        .sum();
    Some(sum / positives.len() as f64)
}

/// `t` is an F1-maximal threshold for `classes` (pooled), the highest of
/// them, and one of their scores (or `+inf` when they have no positive).
fn best_threshold(
    t: f64,
    classes: &[usize],
    cols: &[Vec<f64>],
    pos: &[Vec<bool>],
) -> Result<(), String> {
    let pairs: Vec<(f64, bool)> = classes
        .iter()
        .flat_map(|&k| {
            cols[k]
                .iter()
                .enumerate()
                .map(move |(i, &s)| (s, pos[i][k]))
        })
        .collect();
    let p = pairs.iter().filter(|x| x.1).count() as u128;
    // F1 at threshold u as the fraction (2 tp, tp + fp + P).
    let f1 = |u: f64| {
        let tp = pairs.iter().filter(|x| x.1 && x.0 >= u).count() as u128;
        let fp = pairs.iter().filter(|x| !x.1 && x.0 >= u).count() as u128;
        (2 * tp, tp + fp + p)
    };
    if p == 0 {
        return if t == f64::INFINITY {
            Ok(())
        } else {
            Err(format!("no positive, threshold {t} (expected +inf)"))
        };
    }
    if !pairs.iter().any(|x| x.0 == t) {
        return Err(format!("threshold {t} is none of the scores"));
    }
    let (a, b) = f1(t);
    for &(u, _) in &pairs {
        let (c, d) = f1(u);
        // c / d > a / b, or equal with a higher threshold.
        if c * b > a * d || (c * b == a * d && u > t) {
            return Err(format!("threshold {t} has F1 {a}/{b}, but {u} has {c}/{d}"));
        }
    }
    Ok(())
}

/// `multilabel_f1`'s counts against the decisions, and its F1 values.
fn f1_check(
    facts: &Facts,
    scores: &F1Scores,
    decisions: &Array2<bool>,
    pos: &[Vec<bool>],
    case: &dyn std::fmt::Debug,
) {
    let c = decisions.ncols();
    let mut want = vec![(0usize, 0usize, 0usize); c];
    for ((i, k), &d) in decisions.indexed_iter() {
        match (d, pos[i][k]) {
            (true, true) => want[k].0 += 1,
            (true, false) => want[k].1 += 1,
            (false, true) => want[k].2 += 1,
            _ => {}
        }
    }
    counts_check(facts, scores, &want, case);
}

/// The counts `(tp, fp, fn)` per class, and F1 values from them, in
/// `[0, 1]`, under every `ZeroDivision`.
fn counts_check(
    facts: &Facts,
    scores: &F1Scores,
    want: &[(usize, usize, usize)],
    case: &dyn std::fmt::Debug,
) {
    let got: Vec<(usize, usize, usize)> = (0..scores.num_classes())
        .map(|k| {
            (
                scores.true_positives()[k],
                scores.false_positives()[k],
                scores.false_negatives()[k],
            )
        })
        .collect();
    if got != want {
        return bad(facts, format!("counts {got:?}, expected {want:?}"), case);
    }
    let f1 = |(tp, fp, fn_): (usize, usize, usize)| {
        let den = 2 * tp + fp + fn_;
        (den > 0).then(|| (2 * tp) as f64 / den as f64)
    };
    let per: Vec<Option<f64>> = want.iter().map(|&w| f1(w)).collect();
    if scores.per_class().per_class() != per.as_slice() {
        let what = format!("per-class F1 {:?}, expected {per:?}", scores.per_class());
        return bad(facts, what, case);
    }
    let total = want
        .iter()
        .fold((0, 0, 0), |a, w| (a.0 + w.0, a.1 + w.1, a.2 + w.2));
    let unit = |v: Option<f64>| v.is_none_or(|v| (0.0..=1.0).contains(&v));
    let macros =
        [ZeroDivision::Zero, ZeroDivision::One, ZeroDivision::Exclude].map(|z| scores.macro_f1(z));
    if scores.micro_f1() != f1(total) || !macros.iter().all(|&m| unit(m)) {
        let what = format!(
            "micro {:?} (expected {:?}), macro {macros:?}",
            scores.micro_f1(),
            f1(total)
        );
        bad(facts, what, case);
    }
}

/// Co-teaching's selection and schedule, and the frequency weights.
fn tools(g: &mut Gen) {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Tools {
        losses: Grid,
        forget_rate: f64,
        tau: f64,
        ramp: usize,
        counts: Vec<usize>,
    }
    let forget_rate = if g.flag() {
        g.byte() as f64 / 255.0
    } else {
        g.option(0.5)
    };
    let tau = if g.flag() {
        g.byte() as f64 / 255.0
    } else {
        g.option(0.5)
    };
    let ramp = match g.byte() % 8 {
        0 => 0,
        1 => usize::MAX,
        _ => g.range(1, 20),
    };
    let mut shape = vec![g.len(0, 9)];
    g.tile(&mut shape, 0);
    let losses = g.reals(shape);
    let classes = g.len(0, 6);
    let counts = (0..classes)
        .map(|_| match g.byte() % 8 {
            0 => 0,
            1 => usize::MAX,
            2 => 1 << 53,
            3 => 1,
            _ => g.range(1, 1000),
        })
        .collect();
    let case = Tools {
        losses,
        forget_rate,
        tau,
        ramp,
        counts,
    };
    let facts = Facts {
        loss: "small_loss_indices",
        f32: g.f32,
        finite: case.losses.finite(),
        ..Facts::default()
    };
    if g.f32 {
        selection::<f32>(&facts, &case.losses, forget_rate, &case);
    } else {
        selection::<f64>(&facts, &case.losses, forget_rate, &case);
    }
    // The schedule: in [0, tau], nondecreasing, tau from ramp_epochs on.
    let facts = Facts {
        loss: "CoTeachingSchedule",
        ..facts
    };
    let schedule = CoTeachingSchedule::new(tau).and_then(|s| s.with_ramp_epochs(ramp));
    let valid = (0.0..=1.0).contains(&tau) && ramp >= 1;
    if schedule.is_ok() != valid {
        bad(
            &facts,
            format!("tau {tau}, ramp {ramp}: {schedule:?}"),
            &case,
        );
    }
    if let Ok(s) = &schedule {
        let epochs = [
            0,
            1,
            2,
            ramp / 2,
            ramp.saturating_sub(1),
            ramp,
            ramp.saturating_add(1),
            usize::MAX,
        ];
        let mut sorted = epochs;
        sorted.sort_unstable();
        let rates: Vec<f64> = sorted.iter().map(|&e| s.forget_rate(e)).collect();
        let monotone = rates.windows(2).all(|w| w[0] <= w[1]);
        let in_range = rates.iter().all(|&r| (0.0..=tau).contains(&r));
        if !monotone || !in_range || s.forget_rate(ramp) != tau || s.forget_rate(0) != 0.0 {
            bad(
                &facts,
                format!("forget rates {rates:?} at epochs {sorted:?}"),
                &case,
            );
        }
        if let Some(&r) = rates
            .iter()
            .find(|r| small_loss_indices(&Array1::from(vec![1.0f64]), **r).is_err())
        {
            bad(
                &facts,
                format!("small_loss_indices rejects the schedule's rate {r}"),
                &case,
            );
        }
    }
    // The frequency weights.
    let facts = Facts {
        loss: "inverse_frequency_weights",
        ..facts
    };
    if g.f32 {
        weights::<f32>(&facts, &case.counts, &case);
    } else {
        weights::<f64>(&facts, &case.counts, &case);
    }
}

/// `small_loss_indices` against the definition.
fn selection<F: Float>(facts: &Facts, losses: &Grid, rate: f64, case: &dyn std::fmt::Debug) {
    let lb = losses.backing::<F, Ix1>();
    let l = losses.layout.view(&lb);
    let got = small_loss_indices(l, rate);
    let n = losses.values.len();
    let valid = (0.0..=1.0).contains(&rate) && n > 0 && !losses.values.iter().any(|v| v.is_nan());
    if got.is_ok() != valid {
        return bad(facts, format!("valid input {valid}, but {got:?}"), case);
    }
    let Ok(kept) = got else { return };
    let keep = (((1.0 - rate) * n as f64).round() as usize).min(n);
    let sorted = kept.windows(2).all(|w| w[0] < w[1]);
    let in_range = kept.iter().all(|&i| i < n);
    if kept.len() != keep || !sorted || !in_range {
        return bad(
            facts,
            format!("kept {kept:?} of {n} (expected {keep} sorted indices)"),
            case,
        );
    }
    let v = &losses.values;
    let worst_kept = kept.iter().map(|&i| v[i]).fold(f64::NEG_INFINITY, f64::max);
    let mut is_kept = vec![false; n];
    kept.iter().for_each(|&i| is_kept[i] = true);
    if let Some(d) = (0..n).find(|&d| !is_kept[d] && v[d] < worst_kept) {
        bad(
            facts,
            format!("dropped {d} ({}) below a kept loss {worst_kept}", v[d]),
            case,
        );
    }
}

/// The inverse-frequency weights against their documented properties.
fn weights<F: Float>(facts: &Facts, counts: &[usize], case: &dyn std::fmt::Debug) {
    let valid = !counts.is_empty() && !counts.contains(&0);
    for (name, w) in [
        ("inverse", inverse_frequency_weights::<F>(counts)),
        ("sqrt", sqrt_inverse_frequency_weights::<F>(counts)),
    ] {
        if w.is_ok() != valid {
            return bad(
                facts,
                format!("{name}: valid counts {valid}, but {w:?}"),
                case,
            );
        }
        let Ok(w) = w else { continue };
        let v: Vec<f64> = w.iter().map(|x| x.as_f64()).collect();
        let sum: f64 = v.iter().sum();
        let c = counts.len() as f64;
        let eps = if facts.f32 { 1e-6 } else { 1e-12 };
        let positive = v.iter().all(|&x| x.is_finite() && x > 0.0);
        // A larger count never gets a larger weight.
        let order =
            (0..v.len()).all(|i| (0..v.len()).all(|j| counts[i] <= counts[j] || v[i] <= v[j]));
        if v.len() != counts.len() || !positive || (sum - c).abs() > eps * c || !order {
            bad(
                facts,
                format!("{name}: weights {v:?} for counts {counts:?}"),
                case,
            );
        }
    }
}

/// LossScaler: options, then steps on gradient buffers, against
/// PyTorch's `_amp_update_scale_` dynamics.
fn scaler(g: &mut Gen) {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Scaler {
        init_scale: Option<f64>,
        growth: Option<f64>,
        backoff: Option<f64>,
        interval: Option<u32>,
        steps: Vec<Grid>,
    }
    let init_scale = g.flag().then(|| g.option(65536.0));
    let growth = g.flag().then(|| g.option(2.0));
    let backoff = g.flag().then(|| g.option(0.5));
    let interval = g.flag().then(|| match g.byte() % 4 {
        0 => 0,
        1 => u32::MAX,
        _ => g.range(1, 4) as u32,
    });
    let steps = (0..g.len(0, 6))
        .map(|_| {
            let n = g.len(0, 4);
            let layout = g.layout(1);
            let mut w = g.reals(vec![n]);
            w.layout = layout;
            w
        })
        .collect();
    let case = Scaler {
        init_scale,
        growth,
        backoff,
        interval,
        steps,
    };
    let facts = Facts {
        loss: "LossScaler",
        f32: g.f32,
        finite: case.steps.iter().all(|s| s.finite()),
        ..Facts::default()
    };
    let mut s = LossScaler::new();
    // A setter's verdict against its documented range.
    let set = |s: &mut LossScaler,
               r: Result<LossScaler, classloss::Error>,
               v: f64,
               ok: bool,
               name: &str| match r {
        Ok(next) => {
            accepted(&facts, &[v], &case);
            if !ok {
                bad(&facts, format!("{name} accepted {v}"), &case);
            }
            *s = next;
        }
        Err(_) if !ok => {}
        Err(e) => bad(&facts, format!("{name} rejected {v}: {e}"), &case),
    };
    if let Some(v) = init_scale {
        let r = s.clone().with_init_scale(v);
        set(&mut s, r, v, v.is_finite() && v > 0.0, "with_init_scale");
    }
    if let Some(v) = growth {
        let r = s.clone().with_growth_factor(v);
        set(&mut s, r, v, v.is_finite() && v > 1.0, "with_growth_factor");
    }
    if let Some(v) = backoff {
        let r = s.clone().with_backoff_factor(v);
        set(&mut s, r, v, v > 0.0 && v < 1.0, "with_backoff_factor");
    }
    if let Some(v) = interval {
        let r = s.clone().with_growth_interval(v);
        set(&mut s, r, v as f64, v >= 1, "with_growth_interval");
    }
    if g.f32 {
        scaler_steps::<f32>(&facts, s, &case.steps, &case);
    } else {
        scaler_steps::<f64>(&facts, s, &case.steps, &case);
    }
}

fn scaler_steps<F: Float>(
    facts: &Facts,
    mut s: LossScaler,
    steps: &[Grid],
    case: &dyn std::fmt::Debug,
) {
    for (k, step) in steps.iter().enumerate() {
        let mut buf = step.backing::<F, Ix1>();
        let mut view = step.layout.view_mut(&mut buf);
        let before = s.clone();
        s.scale_grads(&mut view);
        let scaled: Vec<F> = view.iter().copied().collect();
        let want_scaled: Vec<F> = step
            .values
            .iter()
            .map(|&v| F::lit(v) * F::lit(before.scale()))
            .collect();
        let same = |a: &[F], b: &[F]| {
            a.iter().zip(b).all(|(x, y)| {
                x.as_f64().to_bits() == y.as_f64().to_bits() || (x.is_nan() && y.is_nan())
            })
        };
        if !same(&scaled, &want_scaled) {
            return bad(
                facts,
                format!("step {k}: scaled {scaled:?}, expected {want_scaled:?}"),
                case,
            );
        }
        // A step is an overflow when a scaled entry is not finite, or
        // would not be once unscaled (the crate's rule since the fix of
        // this target's first find: a scale below 1 unscales an entry near
        // the maximum past it).
        let inv = F::lit(1.0 / before.scale());
        let finite = scaled.iter().all(|&v| (v * inv).is_finite());
        let decision = s.unscale_and_update(&mut view);
        let after: Vec<F> = view.iter().copied().collect();
        let (scale, good) = (before.scale(), before.good_steps());
        let ok = match decision {
            StepDecision::Skip => {
                !finite
                    && same(&after, &scaled)
                    && s.scale() == scale * before.backoff_factor()
                    && s.good_steps() == 0
            }
            StepDecision::Apply => {
                let want: Vec<F> = scaled.iter().map(|&v| v * inv).collect();
                let grows = good + 1 >= before.growth_interval();
                let grown = scale * before.growth_factor();
                let want_scale = if grows && F::lit(grown).is_finite() {
                    grown
                } else {
                    scale
                };
                let want_good = if grows { 0 } else { good + 1 };
                finite
                    && same(&after, &want)
                    && after.iter().all(|v| v.is_finite())
                    && s.scale() == want_scale
                    && s.good_steps() == want_good
            }
        };
        if !ok {
            let what = format!(
                "step {k} from {before:?}: {decision:?}, now {s:?}; scaled {scaled:?}, after {after:?}"
            );
            return bad(facts, what, case);
        }
        // (A scale backed off from a subnormal one can reach 0: every step
        // is then skipped, as documented for a run of Skip.)
        if !(s.scale() >= 0.0 && s.scale().is_finite()) {
            return bad(facts, format!("step {k}: scale {}", s.scale()), case);
        }
    }
}
