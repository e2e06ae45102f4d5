//! The machinery shared by the angular-margin losses ([`ArcFace`],
//! [`CosFace`], [`CombinedMargin`]): their input and gradient types, the
//! cosine matrix of normalized embeddings and class weights, the margin on
//! the target cosine, the cross-entropy row loop, and the backward pass
//! through the normalization.
//!
//! All three losses are one family: the target logit is
//! `s * (cos(m1 * theta + m2) - m3)`, every other logit `s * cos theta_j`,
//! followed by cross-entropy. ArcFace is `(1, m, 0)`, CosFace `(1, 0, m)`.
//! They differ only in their options and documentation, so they share
//! [`Spec`] and everything below.
//!
//! [`ArcFace`]: super::ArcFace
//! [`CosFace`]: super::CosFace
//! [`CombinedMargin`]: super::CombinedMargin

use std::f64::consts::PI;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::numerics::l2_norm;
use crate::softmax::rows::{one_hot_grad, softmax_rows};
use crate::validate::{check_labels, expect_nonempty, expect_shape};
use crate::{Differentiable, Error, Float, Loss, Reduction, Result};

/// The input of the angular-margin losses: a batch of embeddings and the
/// class weight matrix they are compared with.
///
/// Neither needs to be normalized: the losses normalize every row (and
/// return gradients with respect to the raw, unnormalized arrays).
#[derive(Clone, Copy, Debug)]
pub struct Embeddings<'a, F> {
    /// One embedding per sample, `(N, D)`.
    pub embeddings: ArrayView2<'a, F>,
    /// One weight vector (class center) per class, `(C, D)`.
    pub weight: ArrayView2<'a, F>,
}

/// The gradient of an angular-margin loss with respect to both inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsGrad<F> {
    /// `d loss / d embeddings`, `(N, D)`.
    pub embeddings: Array2<F>,
    /// `d loss / d weight`, `(C, D)`.
    pub weight: Array2<F>,
}

/// Mutable views of the two gradient buffers an angular-margin loss fills.
#[derive(Debug)]
pub struct EmbeddingsGradMut<'g, F> {
    /// Receives `d loss / d embeddings`, `(N, D)`.
    pub embeddings: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d weight`, `(C, D)`.
    pub weight: ArrayViewMut2<'g, F>,
}

/// The options every angular-margin loss is made of.
///
/// Nominally public only because the sealed trait that hands it to
/// [`OnCosines`] must be; it is not exported.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spec {
    /// The reduction.
    pub reduction: Reduction,
    /// The scale `s`.
    pub scale: f64,
    /// The multiplicative angular margin.
    pub m1: f64,
    /// The additive angular margin.
    pub m2: f64,
    /// The additive cosine margin.
    pub m3: f64,
    /// Whether the margin applies only where `cos > 0`.
    pub easy_margin: bool,
}

pub(crate) mod sealed {
    /// Gives [`OnCosines`](super::OnCosines) the options of the loss it wraps.
    pub trait Sealed {
        /// The loss's options.
        fn spec(&self) -> super::Spec;
    }
}

/// The angular-margin losses ([`ArcFace`](super::ArcFace),
/// [`CosFace`](super::CosFace), [`CombinedMargin`](super::CombinedMargin)):
/// what [`OnCosines`] accepts. Sealed: implemented by this crate only.
pub trait AngularMargin: sealed::Sealed {
    /// The same loss on precomputed cosines `(N, C)` instead of embeddings
    /// and weights, for models that normalize elsewhere (see [`OnCosines`]).
    fn on_cosines(self) -> OnCosines<Self>
    where
        Self: Sized,
    {
        OnCosines { inner: self }
    }
}

impl<T: sealed::Sealed> AngularMargin for T {}

/// An angular-margin loss applied to precomputed cosines.
///
/// For models that already produce the cosine matrix
/// `cos_ij = <e_i, w_j> / (|e_i| |w_j|)` (a normalized linear layer, a
/// partial-FC shard), this takes that `(N, C)` matrix instead of
/// [`Embeddings`] and returns the gradient with respect to it. The value is
/// the wrapped loss's value on the same cosines. Build it with
/// [`AngularMargin::on_cosines`], for example
/// `ArcFace::new().on_cosines()`.
///
/// # Shapes
/// - input: cosines `(N, C)`, each in `[-1, 1]`. Values beyond `±1` by at
///   most `sqrt(machine epsilon)` (the rounding of a normalized dot
///   product) are accepted; the margin takes their `sin(theta)` as 0, as at
///   `±1`.
/// - target: labels `(N)` in `0..C`; per-sample `(N)`; gradient `(N, C)`.
/// - `Mean` divides by `N`.
///
/// # Errors
/// An empty batch or class axis, labels of the wrong length or out of
/// range, a cosine outside `[-1, 1]` beyond the rounding allowance
/// ([`Error::InvalidInput`], naming its position), a gradient buffer of the
/// wrong shape.
///
/// # Examples
/// ```
/// use classloss::{AngularMargin, ArcFace, Differentiable, Loss};
/// use ndarray::array;
///
/// let cos = array![[0.8_f64, 0.1, -0.3]];
/// let labels = array![0_usize];
/// let arc = ArcFace::new().with_scale(10.0)?.with_margin(0.5)?.on_cosines();
/// let (loss, grad) = arc.forward_backward(cos.view(), labels.view())?;
/// // target logit 10 cos(acos(0.8) + 0.5), the others 10 cos
/// let t = 10.0 * (0.8_f64.acos() + 0.5).cos();
/// let lse = (t.exp() + 1.0_f64.exp() + (-3.0_f64).exp()).ln();
/// assert!((loss - (lse - t)).abs() < 1e-12);
/// assert!(grad[[0, 0]] < 0.0 && grad[[0, 1]] > 0.0);
/// # Ok::<(), classloss::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OnCosines<L> {
    inner: L,
}

impl<L> OnCosines<L> {
    /// The wrapped loss, whose options apply.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The reduction (the wrapped loss's).
    pub fn reduction(&self) -> Reduction
    where
        L: AngularMargin,
    {
        self.inner.spec().reduction
    }

    /// Unwraps the loss.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<F: Float, L: AngularMargin> Loss<F> for OnCosines<L> {
    type Input<'a> = ArrayView2<'a, F>;
    type Target<'a> = ArrayView1<'a, usize>;
    type PerSample = Array1<F>;

    fn reduction(&self) -> Reduction {
        self.inner.spec().reduction
    }

    fn per_sample(
        &self,
        cosines: Self::Input<'_>,
        labels: Self::Target<'_>,
    ) -> Result<Self::PerSample> {
        let mut out = Array1::zeros(cosines.nrows());
        run_cosines(
            &self.inner.spec(),
            cosines,
            labels,
            None,
            Some(out.view_mut()),
        )?;
        Ok(out)
    }

    fn forward(&self, cosines: Self::Input<'_>, labels: Self::Target<'_>) -> Result<F> {
        run_cosines(&self.inner.spec(), cosines, labels, None, None)
    }
}

impl<F: Float, L: AngularMargin> Differentiable<F> for OnCosines<L> {
    type Grad = Array2<F>;
    type GradMut<'g> = ArrayViewMut2<'g, F>;

    fn zeros_grad(&self, cosines: Self::Input<'_>) -> Self::Grad {
        Array2::zeros(cosines.raw_dim())
    }

    fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
        grad.view_mut()
    }

    fn forward_backward_into(
        &self,
        cosines: Self::Input<'_>,
        labels: Self::Target<'_>,
        grad: Self::GradMut<'_>,
    ) -> Result<F> {
        run_cosines(&self.inner.spec(), cosines, labels, Some(grad), None)
    }
}

/// Implements the sealed option access, `Loss` and `Differentiable` on
/// [`Embeddings`] for a loss type with a `spec: Spec` field.
macro_rules! angular_loss_impls {
    ($ty:ty) => {
        impl $crate::metric::angular::sealed::Sealed for $ty {
            fn spec(&self) -> $crate::metric::angular::Spec {
                self.spec
            }
        }

        impl<F: $crate::Float> $crate::Loss<F> for $ty {
            type Input<'a> = $crate::metric::Embeddings<'a, F>;
            type Target<'a> = ::ndarray::ArrayView1<'a, usize>;
            type PerSample = ::ndarray::Array1<F>;

            fn reduction(&self) -> $crate::Reduction {
                self.spec.reduction
            }

            fn per_sample(
                &self,
                input: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<Self::PerSample> {
                let mut out = ::ndarray::Array1::zeros(input.embeddings.nrows());
                $crate::metric::angular::run_embeddings(
                    &self.spec,
                    input,
                    labels,
                    None,
                    Some(out.view_mut()),
                )?;
                Ok(out)
            }

            fn forward(
                &self,
                input: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<F> {
                $crate::metric::angular::run_embeddings(&self.spec, input, labels, None, None)
            }
        }

        impl<F: $crate::Float> $crate::Differentiable<F> for $ty {
            type Grad = $crate::metric::EmbeddingsGrad<F>;
            type GradMut<'g> = $crate::metric::EmbeddingsGradMut<'g, F>;

            fn zeros_grad(&self, input: Self::Input<'_>) -> Self::Grad {
                $crate::metric::EmbeddingsGrad {
                    embeddings: ::ndarray::Array2::zeros(input.embeddings.raw_dim()),
                    weight: ::ndarray::Array2::zeros(input.weight.raw_dim()),
                }
            }

            fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
                $crate::metric::EmbeddingsGradMut {
                    embeddings: grad.embeddings.view_mut(),
                    weight: grad.weight.view_mut(),
                }
            }

            fn forward_backward_into(
                &self,
                input: Self::Input<'_>,
                labels: Self::Target<'_>,
                grad: Self::GradMut<'_>,
            ) -> $crate::Result<F> {
                $crate::metric::angular::run_embeddings(&self.spec, input, labels, Some(grad), None)
            }
        }
    };
}
pub(crate) use angular_loss_impls;

/// The target-logit function `phi(c) = cos(m1 acos(c) + m2) - m3` (before
/// the scale) with the ArcFace fallback, its constants in `F`.
pub(crate) struct MarginFn<F> {
    kind: Kind,
    m1: F,
    m3: F,
    cos_m2: F,
    sin_m2: F,
    m2: F,
    /// `phi` falls back to `c - fallback_sub - m3` for `c <= threshold`.
    threshold: Option<F>,
    fallback_sub: F,
    easy_margin: bool,
    /// `d phi / d c` at `c = 1` and `c = -1`, where `1 / sin(theta)` is
    /// infinite (see `target`).
    at_plus_one: F,
    at_minus_one: F,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `m1 = 1, m2 = 0`: CosFace, `c - m3`.
    Additive,
    /// `m1 = 1`: ArcFace, via `cos(theta + m2) = c cos m2 - sin(theta) sin m2`.
    Angular,
    /// General `m1`: `cos(m1 acos(c) + m2)`.
    Multiplicative,
}

impl<F: Float> MarginFn<F> {
    pub(crate) fn new(spec: &Spec) -> Self {
        let (m1, m2, m3) = (spec.m1, spec.m2, spec.m3);
        let kind = if m1 == 1.0 && m2 == 0.0 {
            Kind::Additive
        } else if m1 == 1.0 {
            Kind::Angular
        } else {
            Kind::Multiplicative
        };
        // cos(m1 theta + m2) decreases in theta only while m1 theta + m2 <= pi,
        // that is up to theta_t = (pi - m2) / m1. Beyond it insightface's
        // ArcFace replaces the target by c - m2 sin(m2) (for m1 = 1, theta_t =
        // pi - m2): the cosine gap of the angular margin at theta_t to first
        // order, delta sin(theta_t) with delta = pi - theta_t the angle the
        // margin adds there. The same rule serves any m1.
        let theta_t = (PI - m2) / m1;
        let (threshold, fallback_sub) = if theta_t < PI {
            (
                Some(F::lit(theta_t.cos())),
                F::lit((PI - theta_t) * theta_t.sin()),
            )
        } else {
            (None, F::zero())
        };
        MarginFn {
            kind,
            m1: F::lit(m1),
            m3: F::lit(m3),
            cos_m2: F::lit(m2.cos()),
            sin_m2: F::lit(m2.sin()),
            m2: F::lit(m2),
            threshold,
            fallback_sub,
            easy_margin: spec.easy_margin,
            // m1 sin(m1 theta + m2) / sin(theta) without its divergent part:
            // the exact limit whenever the limit is finite (m2 = 0 at c = 1).
            at_plus_one: F::lit(m1 * m1 * m2.cos()),
            at_minus_one: F::lit(-m1 * m1 * (m1 * PI + m2).cos()),
        }
    }

    /// `(phi(c), d phi / d c)`.
    #[inline]
    pub(crate) fn target(&self, c: F) -> (F, F) {
        let one = F::one();
        if self.kind == Kind::Additive {
            return (c - self.m3, one);
        }
        if self.easy_margin && c <= F::zero() {
            return (c - self.m3, one);
        }
        if !self.easy_margin {
            if let Some(t) = self.threshold {
                if c <= t {
                    return (c - self.fallback_sub - self.m3, one);
                }
            }
        }
        // sin(theta) from the cosine; 0 at (and, by rounding, beyond) |c| = 1.
        let sin = (one - c * c).max(F::zero()).sqrt();
        let singular = if c > F::zero() {
            self.at_plus_one
        } else {
            self.at_minus_one
        };
        match self.kind {
            Kind::Angular => {
                let value = c * self.cos_m2 - sin * self.sin_m2 - self.m3;
                let slope = if sin > F::zero() {
                    self.cos_m2 + c * self.sin_m2 / sin
                } else {
                    singular
                };
                (value, slope)
            }
            _ => {
                let theta = c.max(-one).min(one).acos();
                let angle = self.m1 * theta + self.m2;
                let value = angle.cos() - self.m3;
                let slope = if sin > F::zero() {
                    self.m1 * angle.sin() / sin
                } else {
                    singular
                };
                (value, slope)
            }
        }
    }
}

/// Validates the options shared by the family.
pub(crate) fn check_scale(scale: f64) -> Result<()> {
    crate::validate::positive("scale", scale)
}

/// An angle option in `[0, pi)`.
pub(crate) fn check_angle(name: &'static str, value: f64) -> Result<()> {
    crate::validate::check_option(
        name,
        value,
        "a number in [0, pi) (radians)",
        (0.0..PI).contains(&value),
    )
}

/// The norm of every row; a row of norm 0 cannot be normalized.
fn row_norms<F: Float>(what: &'static str, x: &ArrayView2<'_, F>) -> Result<Array1<F>> {
    let norms: Array1<F> = x
        .rows()
        .into_iter()
        .map(|r| l2_norm(r.iter().copied()))
        .collect();
    match norms.iter().position(|&n| n == F::zero()) {
        None => Ok(norms),
        Some(i) => Err(Error::InvalidInput {
            what,
            index: vec![i],
            value: 0.0,
            expected: "a row with a nonzero norm",
        }),
    }
}

/// Writes `x_i / norms_i` into `out` (same shape).
fn normalize_into<F: Float>(
    x: &ArrayView2<'_, F>,
    norms: ArrayView1<'_, F>,
    out: &mut ArrayViewMut2<'_, F>,
) {
    for ((mut o, r), &n) in out.rows_mut().into_iter().zip(x.rows()).zip(norms) {
        o.zip_mut_with(&r, |o, &v| *o = v / n);
    }
}

/// One sample: logits `s cos` with the margin on the target, cross-entropy
/// through the shared row loop, and (with `grad_row`) `d loss / d cos` of
/// the row written into `grad_row`. Returns the row's loss.
#[allow(clippy::too_many_arguments)]
#[inline]
fn margin_row<F: Float>(
    margin: &MarginFn<F>,
    s: F,
    scale: F,
    c_row: &[F],
    y: usize,
    z: &mut [F],
    grad_row: Option<ArrayViewMut2<'_, F>>,
    per_row: Option<ArrayViewMut1<'_, F>>,
) -> f64 {
    for (zj, &cj) in z.iter_mut().zip(c_row) {
        *zj = s * cj;
    }
    let (phi, slope) = margin.target(c_row[y]);
    z[y] = s * phi;
    let logits = ArrayView2::from_shape((1, z.len()), &*z).expect("a (1, C) row");
    softmax_rows(
        logits,
        std::iter::once(y),
        grad_row,
        per_row,
        |y, row, g| {
            if let Some(g) = g {
                // d/dz of -log p_y, then d z / d cos: s, and s * phi' on the target.
                one_hot_grad(g, y, scale * s);
                g[y] *= slope;
            }
            -row.log_p(y)
        },
    )
}

/// The shared checks on labels against `n` samples and `c` classes.
fn check_targets(labels: &ArrayView1<'_, usize>, n: usize, c: usize) -> Result<()> {
    expect_shape("labels", labels.shape(), &[n])?;
    check_labels("labels", labels, c, None)
}

/// The loss on precomputed cosines `(N, C)`.
pub(crate) fn run_cosines<F: Float>(
    spec: &Spec,
    cosines: ArrayView2<'_, F>,
    labels: ArrayView1<'_, usize>,
    mut grad: Option<ArrayViewMut2<'_, F>>,
    mut per_row: Option<ArrayViewMut1<'_, F>>,
) -> Result<F> {
    let shape = cosines.shape();
    expect_nonempty("cosines", shape, 0, "sample")?;
    expect_nonempty("cosines", shape, 1, "class")?;
    let (n, c) = cosines.dim();
    check_targets(&labels, n, c)?;
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    // Rounding in a normalized dot product can leave |cos| a little above 1.
    let limit = F::one() + F::epsilon().sqrt();
    if let Some((idx, &v)) = cosines
        .indexed_iter()
        .find(|(_, v)| v.is_nan() || v.abs() > limit)
    {
        return Err(Error::InvalidInput {
            what: "cosines",
            index: vec![idx.0, idx.1],
            value: v.as_f64(),
            expected: "a cosine in [-1, 1]",
        });
    }
    let margin = MarginFn::new(spec);
    let s = F::lit(spec.scale);
    let scale: F = spec.reduction.grad_scale(n as f64);
    let mut z = vec![F::zero(); c];
    let mut c_row = vec![F::zero(); c];
    let mut total = 0.0;
    for (i, row) in cosines.rows().into_iter().enumerate() {
        for (dst, &v) in c_row.iter_mut().zip(row) {
            *dst = v;
        }
        let g_row = grad.as_mut().map(|g| g.slice_mut(s![i..i + 1, ..]));
        let p_row = per_row.as_mut().map(|p| p.slice_mut(s![i..i + 1]));
        total += margin_row(&margin, s, scale, &c_row, labels[i], &mut z, g_row, p_row);
    }
    Ok(spec.reduction.finish(total, n as f64))
}

/// Rows of embeddings normalized at a time while accumulating the weight
/// gradient: bounds the scratch without changing the arithmetic.
const BLOCK: usize = 64;

/// The loss on embeddings and class weights, with the gradient for both.
pub(crate) fn run_embeddings<F: Float>(
    spec: &Spec,
    input: Embeddings<'_, F>,
    labels: ArrayView1<'_, usize>,
    grad: Option<EmbeddingsGradMut<'_, F>>,
    mut per_row: Option<ArrayViewMut1<'_, F>>,
) -> Result<F> {
    let (e, w) = (input.embeddings, input.weight);
    expect_nonempty("embeddings", e.shape(), 0, "sample")?;
    expect_nonempty("embeddings", e.shape(), 1, "feature")?;
    expect_nonempty("weight", w.shape(), 0, "class")?;
    let (n, d) = e.dim();
    let c = w.nrows();
    expect_shape("weight", w.shape(), &[c, d])?;
    check_targets(&labels, n, c)?;
    if let Some(g) = &grad {
        expect_shape("grad.embeddings", g.embeddings.shape(), &[n, d])?;
        expect_shape("grad.weight", g.weight.shape(), &[c, d])?;
    }
    let ne = row_norms("embeddings", &e)?;
    let nw = row_norms("weight", &w)?;

    // The normalized copies live in the caller's gradient buffers when there
    // are some (so the fused call allocates nothing of the inputs' size) and
    // in scratch otherwise; the arithmetic is the same either way, so
    // `forward` and the fused call return the same value.
    let want_grad = grad.is_some();
    let mut scratch;
    let (mut e_hat, mut w_hat) = match grad {
        Some(g) => (g.embeddings, g.weight),
        None => {
            scratch = (Array2::zeros((n, d)), Array2::zeros((c, d)));
            (scratch.0.view_mut(), scratch.1.view_mut())
        }
    };
    normalize_into(&e, ne.view(), &mut e_hat);
    normalize_into(&w, nw.view(), &mut w_hat);
    let mut cos = Array2::<F>::zeros((n, c));
    general_mat_mul(F::one(), &e_hat, &w_hat.t(), F::zero(), &mut cos);

    let margin = MarginFn::new(spec);
    let s = F::lit(spec.scale);
    let scale: F = spec.reduction.grad_scale(n as f64);
    let mut z = vec![F::zero(); c];
    let mut c_row = vec![F::zero(); c];
    // sum_j g_ij cos_ij per sample and sum_i g_ij cos_ij per class: the
    // radial parts the normalization removes from the gradients.
    let mut radial_e = Array1::<F>::zeros(n);
    let mut radial_w = Array1::<F>::zeros(c);
    let mut total = 0.0;
    for i in 0..n {
        for (dst, &v) in c_row.iter_mut().zip(cos.row(i)) {
            *dst = v;
        }
        let p_row = per_row.as_mut().map(|p| p.slice_mut(s![i..i + 1]));
        let g_row = want_grad.then(|| cos.slice_mut(s![i..i + 1, ..]));
        total += margin_row(&margin, s, scale, &c_row, labels[i], &mut z, g_row, p_row);
        if want_grad {
            let mut acc = F::zero();
            for ((&g, &cv), k) in cos.row(i).iter().zip(&c_row).zip(radial_w.iter_mut()) {
                acc += g * cv;
                *k += g * cv;
            }
            radial_e[i] = acc;
        }
    }
    let value = spec.reduction.finish(total, n as f64);
    if !want_grad {
        return Ok(value);
    }

    // With G = d loss / d cos, e^ = e / |e|, w^ = w / |w|:
    //   d loss / d e_i = (sum_j G_ij w^_j - radial_e_i e^_i) / |e_i|
    //   d loss / d w_j = (sum_i G_ij e^_i - radial_w_j w^_j) / |w_j|
    // e_hat holds e^ and w_hat holds w^; the first product overwrites e^,
    // which is recomputed from e where needed.
    general_mat_mul(F::one(), &cos, &w_hat, F::zero(), &mut e_hat);
    for (((mut g, x), &norm), &r) in e_hat
        .rows_mut()
        .into_iter()
        .zip(e.rows())
        .zip(&ne)
        .zip(&radial_e)
    {
        g.zip_mut_with(&x, |g, &v| *g = (*g - r * (v / norm)) / norm);
    }
    for (mut g, &r) in w_hat.rows_mut().into_iter().zip(&radial_w) {
        g.mapv_inplace(|v| -r * v);
    }
    let rows = BLOCK.min(n);
    let mut block = Array2::<F>::zeros((rows, d));
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let mut b = block.slice_mut(s![..end - start, ..]);
        let e_rows = e.slice(s![start..end, ..]);
        normalize_into(&e_rows, ne.slice(s![start..end]), &mut b);
        general_mat_mul(
            F::one(),
            &cos.slice(s![start..end, ..]).t(),
            &b,
            F::one(),
            &mut w_hat,
        );
    }
    for (mut g, &norm) in w_hat.rows_mut().into_iter().zip(&nw) {
        g.mapv_inplace(|v| v / norm);
    }
    Ok(value)
}
