//! The fused angular-margin head: equal to the wrapped loss (ArcFace,
//! CosFace, the combined margin) on the same embeddings for every option,
//! reduction and chunk size (value, per-sample values, both gradients), in
//! `f64` and `f32`; the shared contract; finite-difference checks; norms
//! far from the float type's range; errors; the thread count.

use crate::common::{embeddings, matrix, random_array, random_batch};

use classloss::{
    AngularMarginHead, ArcFace, CombinedMargin, CosFace, Differentiable, Embeddings,
    EmbeddingsGrad, Float, Labels, Reduction,
};
use ndarray::{Array1, Array2};

/// Embeddings `(n, d)`, class weights `(c, d)` and labels, sample 0 pointing
/// away from its class (its target cosine near -0.9: the fallback of the
/// larger margins) and sample 1 near it (cosine near 0.99).
fn batch(n: usize, c: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    let (mut e, w, labels) = random_batch(n, c, d, seed, 1.5);
    let noise = matrix(random_array(&[2, d], seed + 3, 0.3));
    e.row_mut(0).assign(&(-&w.row(labels[0]) + noise.row(0)));
    e.row_mut(1)
        .assign(&(&w.row(labels[1]) * 2.0 + &(&noise.row(1) * 0.1)));
    (e, w, labels)
}

/// One configured loss of each kind, with every option it has.
#[derive(Clone, Debug)]
enum Kind {
    Arc(ArcFace),
    Cos(CosFace),
    Combined(CombinedMargin),
}

fn kinds(r: Reduction) -> Vec<Kind> {
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
type Results<F> = (F, Array1<F>, EmbeddingsGrad<F>);

fn results<F: Float, L>(loss: &L, e: &Array2<F>, w: &Array2<F>, y: &Array1<usize>) -> Results<F>
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

/// `|a - b| <= tol (1 + max |b|)` entry by entry.
fn assert_close<F: Float>(what: &str, a: &[F], b: &[F], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = 1.0 + b.iter().fold(0.0_f64, |m, v| m.max(v.as_f64().abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let err = (x.as_f64() - y.as_f64()).abs();
        assert!(err <= tol * scale, "{what}[{i}]: {x} vs {y} (err {err:e})");
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
