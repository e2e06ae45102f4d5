//! The fused angular-margin head: equal to the wrapped loss (ArcFace,
//! CosFace, the combined margin) on the same embeddings for every option,
//! reduction and chunk size (value, per-sample values, both gradients), in
//! `f64` and `f32`; the shared contract; finite-difference checks; norms
//! far from the float type's range; errors; the thread count.

use crate::common::{
    arcface_tiny_row_case, assert_close, cosface_near_f32_max_case, cosines, embeddings, matrix,
    random_array, random_batch,
};
use crate::contract::{Angular, Case, check_contract};
use classloss::gradcheck::GradCheck;

use classloss::{
    AngularMargin, AngularMarginHead, ArcFace, CombinedMargin, CosFace, Differentiable, Embeddings,
    EmbeddingsGrad, Error, Float, Labels, Loss, Reduction,
};
use ndarray::{Array1, Array2};

/// Embeddings `(n, d)`, class weights `(c, d)` and labels, sample 0 pointing
/// away from its class (its target cosine near -0.9: the fallback of the
/// larger margins) and sample 1 near it (cosine near 0.99).
pub fn batch(n: usize, c: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    let (mut e, w, labels) = random_batch(n, c, d, seed, 1.5);
    let noise = matrix(random_array(&[2, d], seed + 3, 0.3));
    e.row_mut(0).assign(&(-&w.row(labels[0]) + noise.row(0)));
    e.row_mut(1)
        .assign(&(&w.row(labels[1]) * 2.0 + &(&noise.row(1) * 0.1)));
    (e, w, labels)
}

/// One configured loss of each kind, with every option it has.
#[derive(Clone, Debug)]
pub enum Kind {
    Arc(ArcFace),
    Cos(CosFace),
    Combined(CombinedMargin),
}

pub fn kinds(r: Reduction) -> Vec<Kind> {
    let arc = |s: f64, m: f64, easy: bool| {
        let a = ArcFace::new()
            .with_scale(s)
            .unwrap()
            .with_margin(m)
            .unwrap();
        Kind::Arc(a.with_easy_margin(easy).with_reduction(r))
    };
    let cos = |s: f64, m: f64| {
        let c = CosFace::new()
            .with_scale(s)
            .unwrap()
            .with_margin(m)
            .unwrap();
        Kind::Cos(c.with_reduction(r))
    };
    let combined = |s: f64, (m1, m2, m3): (f64, f64, f64), easy: bool| {
        let c = CombinedMargin::new()
            .with_scale(s)
            .unwrap()
            .with_margins(m1, m2, m3)
            .unwrap();
        Kind::Combined(c.with_easy_margin(easy).with_reduction(r))
    };
    vec![
        arc(16.0, 0.5, false),
        arc(8.0, 0.8, false),
        arc(8.0, 0.5, true),
        arc(30.0, 0.0, false),
        cos(16.0, 0.35),
        cos(4.0, 0.0),
        combined(16.0, (1.0, 0.3, 0.2), false),
        combined(8.0, (0.9, 0.4, 0.15), false),
        combined(8.0, (1.35, 0.0, 0.0), false),
        combined(8.0, (1.2, 0.3, 0.1), true),
    ]
}

/// Runs `$body` with `$l` bound to the kind's loss.
macro_rules! with_loss {
    ($kind:expr, $l:ident => $body:expr) => {
        match $kind {
            Kind::Arc($l) => $body,
            Kind::Cos($l) => $body,
            Kind::Combined($l) => $body,
        }
    };
}

/// Value, per-sample values and gradient of a loss on embeddings.
pub type Results<F> = (F, Array1<F>, EmbeddingsGrad<F>);

pub fn results<F: Float, L>(loss: &L, e: &Array2<F>, w: &Array2<F>, y: &Array1<usize>) -> Results<F>
where
    L: for<'a> Differentiable<
            F,
            Input<'a> = Embeddings<'a, F>,
            Target<'a> = Labels<'a>,
            PerSample = Array1<F>,
            Grad = EmbeddingsGrad<F>,
        >,
{
    let value = loss.forward(embeddings(e, w), y).unwrap();
    let per = loss.per_sample(embeddings(e, w), y).unwrap();
    let (fused, grad) = loss.forward_backward(embeddings(e, w), y).unwrap();
    assert_eq!(fused.to_f64_bits(), value.to_f64_bits(), "fused vs forward");
    (value, per, grad)
}

/// Bits of a float, widened, for the comparisons above.
trait Bits {
    fn to_f64_bits(self) -> u64;
}

impl<F: Float> Bits for F {
    fn to_f64_bits(self) -> u64 {
        self.as_f64().to_bits()
    }
}

fn assert_results_close<F: Float>(what: &str, a: &Results<F>, b: &Results<F>, tol: f64) {
    let flat = |x: &Array2<F>| x.iter().copied().collect::<Vec<_>>();
    assert_close(&format!("{what} value"), &[a.0], &[b.0], tol);
    assert_close(
        &format!("{what} per-sample"),
        &a.1.to_vec(),
        &b.1.to_vec(),
        tol,
    );
    let (ga, gb) = (&a.2, &b.2);
    let (ea, eb) = (flat(&ga.embeddings), flat(&gb.embeddings));
    assert_close(&format!("{what} d embeddings"), &ea, &eb, tol);
    let (wa, wb) = (flat(&ga.weight), flat(&gb.weight));
    assert_close(&format!("{what} d weight"), &wa, &wb, tol);
}

fn equals_the_wrapped_loss<F: Float>(tol: f64) {
    let (n, c, d) = (9, 7, 5);
    let (e, w, y) = batch(n, c, d, 11);
    let (e, w) = (e.mapv(F::lit), w.mapv(F::lit));
    for r in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for kind in kinds(r) {
            with_loss!(&kind, loss => {
                let want = results(loss, &e, &w, &y);
                for chunk in [None, Some(1), Some(2), Some(4), Some(n)] {
                    let mut head = AngularMarginHead::new(loss.clone());
                    if let Some(k) = chunk {
                        head = head.with_chunk_rows(k).unwrap();
                    }
                    let got = results(&head, &e, &w, &y);
                    let what = format!("{kind:?} {r} chunk {chunk:?}");
                    assert_results_close(&what, &got, &want, tol);
                }
            });
        }
    }
}

#[test]
fn equals_the_wrapped_loss_on_embeddings_f64() {
    equals_the_wrapped_loss::<f64>(1e-13);
}

#[test]
fn equals_the_wrapped_loss_on_embeddings_f32() {
    equals_the_wrapped_loss::<f32>(5e-6);
}

/// Every target cosine of `(e, w, y)` is at least `gap` away from ±1 and
/// from the kinks of every margin of [`kinds`] (the fallback thresholds,
/// 0 for the easy margins): where finite differences are smooth.
pub fn away_from_kinks(e: &Array2<f64>, w: &Array2<f64>, y: &Array1<usize>, gap: f64) -> bool {
    let pi = std::f64::consts::PI;
    let kinks = [
        0.0,
        (pi - 0.5).cos(),
        (pi - 0.8).cos(),
        (pi - 0.3).cos(),
        ((pi - 0.4) / 0.9).cos(),
    ];
    let cos = cosines(e, w);
    y.iter().enumerate().all(|(i, &t)| {
        let c = cos[[i, t]];
        c.abs() < 1.0 - gap && kinks.iter().all(|k| (c - k).abs() > gap)
    })
}

#[test]
fn contract() {
    let (e, w, labels) = (0..)
        .map(|seed| batch(6, 4, 5, seed))
        .find(|(e, w, y)| away_from_kinks(e, w, y, 1e-3))
        .unwrap();
    for (k, kind) in kinds(Reduction::Mean).into_iter().enumerate() {
        let args = Angular {
            e: e.clone(),
            w: w.clone(),
            labels: labels.clone(),
        };
        let chunk = [None, Some(1), Some(4)][k % 3];
        with_loss!(kind, loss => {
            let mut head = AngularMarginHead::new(loss);
            if let Some(rows) = chunk {
                head = head.with_chunk_rows(rows).unwrap();
            }
            let what = format!("{head:?}");
            check_contract(&head, &Case::new(what, args));
        });
    }
}

/// The head of `loss` and `loss` itself on `(e, w, y)`: the same outcome
/// (both `Ok` with values and gradients within `tol` of each other,
/// relative to the largest, or the same error variant naming the same
/// argument), from `forward`, `per_sample` and the fused call.
fn agrees_on<F: Float, L>(what: &str, loss: &L, e: &Array2<F>, w: &Array2<F>, y: &[usize], tol: f64)
where
    L: AngularMargin
        + Clone
        + for<'a> Differentiable<
            F,
            Input<'a> = Embeddings<'a, F>,
            Target<'a> = Labels<'a>,
            PerSample = Array1<F>,
            Grad = EmbeddingsGrad<F>,
        >,
    AngularMarginHead<L>: for<'a> Differentiable<
            F,
            Input<'a> = Embeddings<'a, F>,
            Target<'a> = Labels<'a>,
            PerSample = Array1<F>,
            Grad = EmbeddingsGrad<F>,
        >,
{
    let y = Array1::from(y.to_vec());
    let head = AngularMarginHead::new(loss.clone())
        .with_chunk_rows(2)
        .unwrap();
    let flat = |r: classloss::Result<(F, EmbeddingsGrad<F>)>| {
        r.map(|(v, g)| {
            let mut all = vec![v.as_f64()];
            all.extend(g.embeddings.iter().chain(&g.weight).map(|x| x.as_f64()));
            all
        })
    };
    let outcomes = [
        (
            "forward",
            head.forward(embeddings(e, w), &y).map(|v| vec![v.as_f64()]),
            loss.forward(embeddings(e, w), &y).map(|v| vec![v.as_f64()]),
        ),
        (
            "per_sample",
            head.per_sample(embeddings(e, w), &y)
                .map(|p| p.iter().map(|x| x.as_f64()).collect()),
            loss.per_sample(embeddings(e, w), &y)
                .map(|p| p.iter().map(|x| x.as_f64()).collect()),
        ),
        (
            "fused",
            flat(head.forward_backward(embeddings(e, w), &y)),
            flat(loss.forward_backward(embeddings(e, w), &y)),
        ),
    ];
    for (call, got, want) in outcomes {
        let what = format!("{what}, {call}");
        match (got, want) {
            (Ok(a), Ok(b)) => {
                let both_nan = |x: f64, y: f64| x.is_nan() && y.is_nan();
                let top = b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
                for (k, (x, t)) in a.iter().zip(&b).enumerate() {
                    let ok = both_nan(*x, *t) || (x - t).abs() <= tol * top || x == t;
                    assert!(ok, "{what}[{k}]: {x:e} vs {t:e} ({a:?} vs {b:?})");
                }
            }
            (Err(a), Err(b)) => {
                let arg = |e: &Error| match e {
                    Error::Overflow { what, .. } | Error::InvalidInput { what, .. } => *what,
                    Error::ShapeMismatch { what, .. } | Error::EmptyBatch { what, .. } => *what,
                    _ => "",
                };
                assert_eq!(
                    (std::mem::discriminant(&a), arg(&a)),
                    (std::mem::discriminant(&b), arg(&b)),
                    "{what}: {a} vs {b}"
                );
            }
            (a, b) => panic!("{what}: the head gives {a:?}, the loss {b:?}"),
        }
    }
}

#[test]
fn norms_far_from_the_float_range_give_the_losss_results() {
    let (e, w, y) = batch(5, 4, 3, 31);
    let y = y.to_vec();
    let arc = ArcFace::new().with_scale(4.0).unwrap();
    let cos = CosFace::new().with_scale(4.0).unwrap();
    let combined = CombinedMargin::new()
        .with_scale(4.0)
        .unwrap()
        .with_margins(1.2, 0.3, 0.1)
        .unwrap();
    // Powers of two (exact): each product beyond f32, each below its
    // precision, a row norm beyond f32 (entries near its maximum),
    // subnormal rows of embeddings, embeddings and weights far apart.
    let p = |k: i32| 2f64.powi(k);
    for (ke, kw) in [
        (p(100), p(100)),
        (p(-100), p(-100)),
        (p(126), p(126)),
        (p(-140), p(0)),
        (p(120), p(-120)),
        (p(-60), p(110)),
    ] {
        let e32 = (&e * ke).mapv(|v| v as f32);
        let w32 = (&w * kw).mapv(|v| v as f32);
        let what = format!("f32 e x {ke:e}, w x {kw:e}");
        // Subnormal f32 entries keep fewer bits on both sides alike.
        let tol = if ke < p(-125) { 1e-3 } else { 2e-5 };
        agrees_on(&format!("arcface {what}"), &arc, &e32, &w32, &y, tol);
        agrees_on(&format!("cosface {what}"), &cos, &e32, &w32, &y, tol);
        agrees_on(&format!("combined {what}"), &combined, &e32, &w32, &y, tol);
    }
    for (ke, kw) in [
        (p(1000), p(1000)),
        (p(-1000), p(-1000)),
        (p(1020), p(-1060)),
    ] {
        let (e64, w64) = (&e * ke, &w * kw);
        let what = format!("f64 e x {ke:e}, w x {kw:e}");
        agrees_on(&format!("arcface {what}"), &arc, &e64, &w64, &y, 1e-12);
        agrees_on(
            &format!("combined {what}"),
            &combined,
            &e64,
            &w64,
            &y,
            1e-12,
        );
    }
}

#[test]
fn float_edges_give_the_losss_outcome() {
    // The angular losses' float edges (tests/suite/float_edges.rs), through
    // the head: the same values, or the same error.
    let sum = Reduction::Sum;
    // CosFace at s = 3e38, Sum: the backward products at a scale of 2^-t.
    let (e, w, cf) = cosface_near_f32_max_case();
    agrees_on("cosface s 3e38", &cf, &e, &w, &[0; 5], 1e-5);
    // ArcFace at s = 3e38 with an embedding row of norm 1.4e-38.
    let (e, w, arc) = arcface_tiny_row_case();
    agrees_on("arcface s 3e38, tiny row", &arc, &e, &w, &[2; 4], 1e-5);
    // A class row of norm 4e-308: its gradient, about s / |w|, passes f64.
    let e = ndarray::array![[1.0_f64, 0.5], [-0.5, 1.0]];
    let w = ndarray::array![[2e-308_f64, 3e-308], [1.0, -1.0]];
    agrees_on("tiny class row", &ArcFace::new(), &e, &w, &[0, 1], 1e-12);
    // One class at s = 3e38: 0 with a zero gradient.
    let one = CombinedMargin::new().with_scale(3e38).unwrap();
    let (e, w) = (
        ndarray::array![[1.0_f32, 2.0]],
        ndarray::array![[0.5_f32, -1.0]],
    );
    agrees_on("one class", &one, &e, &w, &[0], 0.0);
    // A loss beyond the type: s (1 - (-1 - 0.35)) = 2.35e308.
    let huge = CosFace::new().with_scale(1e308).unwrap();
    let (e, w) = (
        ndarray::array![[-1.0_f64, 0.0]],
        ndarray::array![[1.0_f64, 0.0], [-1.0, 0.0]],
    );
    agrees_on("overflow", &huge, &e, &w, &[0], 0.0);
    // NaN passes through.
    let w = ndarray::array![[1.0_f64, 0.0], [0.0, 1.0]];
    let nan_e = ndarray::array![[f64::NAN, 0.5]];
    let nan_w = ndarray::array![[1.0_f64, 0.0], [f64::NAN, 1.0]];
    let cf = CosFace::new().with_reduction(sum);
    agrees_on("NaN embedding", &cf, &nan_e, &w, &[0], 0.0);
    agrees_on(
        "NaN weight",
        &cf,
        &ndarray::array![[1.0, 0.5]],
        &nan_w,
        &[0],
        0.0,
    );
    // Rows exactly parallel and antiparallel to their class.
    let e = ndarray::array![[2.0_f64, 4.0], [-1.0, -2.0], [3.0, 1.0]];
    let w = ndarray::array![[1.0_f64, 2.0], [0.5, -1.0]];
    for loss in [
        ArcFace::new().with_scale(8.0).unwrap(),
        ArcFace::new().with_easy_margin(true),
    ] {
        agrees_on("parallel", &loss, &e, &w, &[0, 0, 1], 1e-12);
    }
}

#[test]
fn results_are_the_same_for_every_chunk_size() {
    let (n, c, d) = (13, 6, 4);
    let (e, w, y) = batch(n, c, d, 41);
    for kind in kinds(Reduction::Sum) {
        with_loss!(kind, loss => {
            let whole = AngularMarginHead::new(loss.clone()).with_chunk_rows(n).unwrap();
            let want = results(&whole, &e, &w, &y);
            // 1, a divisor of N, non-divisors, more than N, the default.
            for chunk in [Some(1), Some(3), Some(5), Some(100), None] {
                let mut head = AngularMarginHead::new(loss.clone());
                if let Some(k) = chunk {
                    head = head.with_chunk_rows(k).unwrap();
                }
                let what = format!("{head:?}");
                assert_results_close(&what, &results(&head, &e, &w, &y), &want, 1e-14);
            }
        });
    }
}

#[test]
fn gradients_match_finite_differences_with_many_chunks() {
    // The contract checks each option at one chunk size; here every kind
    // at chunks of 2 rows over 9 samples, under Mean and Sum.
    let (n, c, d) = (9, 5, 4);
    let (e, w, y) = (0..)
        .map(|seed| batch(n, c, d, 100 + seed))
        .find(|(e, w, y)| away_from_kinks(e, w, y, 1e-3))
        .unwrap();
    let params: Vec<f64> = e.iter().chain(&w).copied().collect();
    for r in [Reduction::Mean, Reduction::Sum] {
        for kind in kinds(r) {
            with_loss!(kind, loss => {
                let head = AngularMarginHead::new(loss).with_chunk_rows(2).unwrap();
                let f = |x: &[f64]| {
                    let e = Array2::from_shape_vec((n, d), x[..n * d].to_vec()).unwrap();
                    let w = Array2::from_shape_vec((c, d), x[n * d..].to_vec()).unwrap();
                    head.forward(embeddings(&e, &w), &y).unwrap()
                };
                let g = head.backward(embeddings(&e, &w), &y).unwrap();
                let analytic: Vec<f64> = g.embeddings.iter().chain(&g.weight).copied().collect();
                GradCheck::default()
                    .check(f, &params, &analytic)
                    .unwrap_or_else(|err| panic!("{head:?}: {err}"));
            });
        }
    }
}

#[test]
fn errors_are_the_wrapped_losss() {
    let arc = ArcFace::new();
    let head = AngularMarginHead::new(arc.clone())
        .with_chunk_rows(3)
        .unwrap();
    let (e, w, y) = batch(4, 5, 3, 51);
    let y = y.to_vec();
    let message = |r: classloss::Result<f64>| r.unwrap_err().to_string();
    let check = |e: &Array2<f64>, w: &Array2<f64>, y: &[usize], expected: &str| {
        let y = Array1::from(y.to_vec());
        let got = message(head.forward(embeddings(e, w), &y));
        assert_eq!(got, expected);
        assert_eq!(got, message(arc.forward(embeddings(e, w), &y)));
        let fused = head.backward(embeddings(e, w), &y).unwrap_err().to_string();
        assert_eq!(fused, expected);
    };
    check(
        &e,
        &Array2::ones((5, 4)),
        &y,
        "weight: expected shape [5, 3], got [5, 4]",
    );
    check(&e, &w, &y[..2], "labels: expected shape [4], got [2]");
    check(
        &e,
        &w,
        &[0, 1, 5, 0],
        "labels[2]: label 5 is out of range for 5 classes (expected 0..=4)",
    );
    let mut e0 = e.clone();
    e0.row_mut(2).fill(0.0);
    check(
        &e0,
        &w,
        &y,
        "embeddings[2]: expected a row with a nonzero norm, got 0",
    );
    let mut w0 = w.clone();
    w0.row_mut(4).fill(0.0);
    check(
        &e,
        &w0,
        &y,
        "weight[4]: expected a row with a nonzero norm, got 0",
    );
    check(
        &Array2::zeros((0, 3)),
        &w,
        &[],
        "embeddings: expected at least one sample, got an empty array of shape [0, 3]",
    );
    check(
        &Array2::zeros((4, 0)),
        &Array2::zeros((5, 0)),
        &y,
        "embeddings: expected at least one feature, got an empty array of shape [4, 0]",
    );
    check(
        &e,
        &Array2::zeros((0, 3)),
        &y,
        "weight: expected at least one class, got an empty array of shape [0, 3]",
    );
    // Gradient buffers of the wrong shape: named, and left untouched.
    let y = Array1::from(y);
    for (ge, gw, expected) in [
        (
            (4, 2),
            (5, 3),
            "grad.embeddings: expected shape [4, 3], got [4, 2]",
        ),
        (
            (4, 3),
            (3, 5),
            "grad.weight: expected shape [5, 3], got [3, 5]",
        ),
    ] {
        let mut grad = EmbeddingsGrad {
            embeddings: Array2::from_elem(ge, 7.0),
            weight: Array2::from_elem(gw, 7.0),
        };
        let err = head
            .forward_backward_into(embeddings(&e, &w), &y, &mut grad)
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(
            grad.embeddings
                .iter()
                .chain(&grad.weight)
                .all(|&g| g == 7.0)
        );
    }
    // A scale beyond f32, checked at the call as the loss does.
    let huge = AngularMarginHead::new(CosFace::new().with_scale(1e39).unwrap());
    let (e32, w32) = (e.mapv(|v| v as f32), w.mapv(|v| v as f32));
    let err = huge.forward(embeddings(&e32, &w32), &y).unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { name: "scale", .. }),
        "{err}"
    );
    let loss_err = huge.loss().forward(embeddings(&e32, &w32), &y).unwrap_err();
    assert_eq!(err, loss_err);
    // The head's own option.
    let err = AngularMarginHead::new(ArcFace::new())
        .with_chunk_rows(0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `chunk_rows`: expected an integer >= 1, got 0"
    );
}

#[test]
fn class_norms_may_span_the_documented_range() {
    // The head's own limit: in f32, class rows whose norms span up to
    // 2^225 give the loss's results; a wider span is an error naming the
    // smallest row (the loss itself takes it).
    let (e, w, y) = batch(3, 3, 2, 61);
    let y = y.to_vec();
    let arc = ArcFace::new().with_scale(2.0).unwrap();
    let head = AngularMarginHead::new(arc.clone());
    let spread = |lo: i32, hi: i32| {
        let mut w = w.clone();
        // Rows of norm in [1, 2) first, then scaled by exact powers of two.
        for mut r in w.rows_mut() {
            let n = r.dot(&r).sqrt();
            r /= 2f64.powi(n.log2().floor() as i32);
        }
        w.row_mut(1).mapv_inplace(|v| v * 2f64.powi(lo));
        w.row_mut(2).mapv_inplace(|v| v * 2f64.powi(hi));
        w.mapv(|v| v as f32)
    };
    let e32 = e.mapv(|v| v as f32);
    // Both ends within f32's normal range: 2^-100 to 2^124 spans 2^224.
    agrees_on("span 2^224", &arc, &e32, &spread(-100, 124), &y, 2e-5);
    let yy = Array1::from(y.clone());
    let err = head
        .forward(embeddings(&e32, &spread(-104, 124)), &yy)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { what: "weight", ref index, .. } if index == &vec![1]),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("weight[1]: expected a row norm at least 2^-225 times the largest row's"),
        "{err}"
    );
    assert!(
        arc.forward(embeddings(&e32, &spread(-104, 124)), &yy)
            .is_ok()
    );
}

#[test]
fn options_and_default_chunk() {
    let arc = ArcFace::new().with_margin(0.3).unwrap();
    let head = AngularMarginHead::new(arc.clone().with_reduction(Reduction::Sum));
    assert_eq!(head.reduction(), Reduction::Sum);
    assert_eq!(head.loss().margin(), 0.3);
    assert_eq!(head.chunk_rows(), None);
    // LinearCrossEntropy's default: 48 MiB of f32 at C = 128,256 is 98 rows.
    assert_eq!(head.chunk_rows_for::<f32>(128_256), 98);
    assert_eq!(head.chunk_rows_for::<f64>(128_256), 64);
    let head = head.with_chunk_rows(7).unwrap();
    assert_eq!(
        (head.chunk_rows(), head.chunk_rows_for::<f32>(128_256)),
        (Some(7), 7)
    );
    assert_eq!(head.into_inner(), arc.with_reduction(Reduction::Sum));
}

#[test]
fn results_are_the_same_bits_on_any_thread_count() {
    // Large enough for the products, the row blocks (a chunk of 128 rows
    // of 700 classes is two blocks of 93 and 35 rows, past the 65,536
    // elements where the crate goes parallel) and the weight's pass after
    // the loop to be split across threads.
    let (e, w, y) = batch(150, 700, 96, 71);
    let (e, w) = (e.mapv(|v| v as f32), w.mapv(|v| v as f32));
    let combined = CombinedMargin::new().with_margins(1.2, 0.3, 0.1).unwrap();
    let head = AngularMarginHead::new(combined)
        .with_chunk_rows(64)
        .unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| {
                let (value, grad) = head.forward_backward(embeddings(&e, &w), &y).unwrap();
                let per = head.per_sample(embeddings(&e, &w), &y).unwrap();
                (value.to_bits(), grad, per)
            })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert_eq!(one, run(threads), "{threads} threads");
    }
}
