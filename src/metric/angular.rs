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

use std::cell::Cell;
use std::f64::consts::PI;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::base::validate::{check_labels, check_option, expect_nonempty, expect_shape, overflow};
use crate::engine::softmax_rows::{one_hot_grad, rows_2d, softmax_rows};
use crate::numerics::l2_norm;
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
/// wrong shape. The range is checked in the same pass over each row that
/// finds its max, so after a range error the fused call may have written
/// part of the gradient buffer.
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
    /// infinite (see `slope`).
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

    /// Whether `phi` depends on `sin(theta)` (every margin but CosFace's),
    /// so that the caller must supply it.
    #[inline]
    pub(crate) fn needs_sin(&self) -> bool {
        self.kind != Kind::Additive
    }

    /// `phi` at the target cosine `c`, with `sin = sin(theta) >= 0` (0 at
    /// `|c| = 1`), and its derivative in parts (see [`TargetLogit`]).
    ///
    /// `sin` comes from the caller because its best estimate depends on
    /// what is known: with only the cosine, `sqrt((1 - c)(1 + c))`; with the
    /// two vectors, the norm of the perpendicular residual ([`Perp`]), which
    /// stays accurate where `c` has lost the angle to rounding.
    #[inline]
    pub(crate) fn target(&self, c: F, sin: F) -> TargetLogit<F> {
        let one = F::one();
        let linear = |value| TargetLogit {
            value,
            lin: one,
            perp: None,
        };
        if self.kind == Kind::Additive {
            return linear(c - self.m3);
        }
        if self.easy_margin && c <= F::zero() {
            return linear(c - self.m3);
        }
        if !self.easy_margin {
            if let Some(t) = self.threshold {
                if c <= t {
                    return linear(c - self.fallback_sub - self.m3);
                }
            }
        }
        match self.kind {
            // cos(theta + m2) = c cos m2 - sin sin m2; d/dc = cos m2 + c sin m2 / sin.
            Kind::Angular => TargetLogit {
                value: c * self.cos_m2 - sin * self.sin_m2 - self.m3,
                lin: self.cos_m2,
                perp: Some(c * self.sin_m2),
            },
            // d/dc cos(m1 theta + m2) = m1 sin(m1 theta + m2) / sin. theta
            // from atan2: acos(c) would inherit the rounding of c amplified
            // by 1 / sin(theta) near |c| = 1.
            _ => {
                let angle = self.m1 * sin.atan2(c) + self.m2;
                TargetLogit {
                    value: angle.cos() - self.m3,
                    lin: F::zero(),
                    perp: Some(self.m1 * angle.sin()),
                }
            }
        }
    }

    /// The whole `d phi / d c` of `t = self.target(c, sin)`: `lin + perp /
    /// sin`, and at `sin = 0`, where that is infinite, the finite part of
    /// its limit (see `at_plus_one`).
    #[inline]
    pub(crate) fn slope(&self, t: &TargetLogit<F>, c: F, sin: F) -> F {
        match t.perp {
            None => t.lin,
            Some(perp) if sin > F::zero() => t.lin + perp / sin,
            Some(_) if c > F::zero() => self.at_plus_one,
            Some(_) => self.at_minus_one,
        }
    }
}

/// The target logit `phi(c)` before the scale, and its derivative split as
/// `d phi / d c = lin + perp / sin(theta)`.
///
/// The split is what keeps the backward pass through the normalization
/// accurate near `|c| = 1`: there `d c / d e = (w^ - c e^) / |e|` is a
/// vector of norm `sin(theta) / |e|`, so the `perp / sin` part contributes
/// `perp` times the *unit* perpendicular direction, computed as such,
/// instead of a huge factor times a tiny difference of rounded vectors.
pub(crate) struct TargetLogit<F> {
    value: F,
    lin: F,
    /// `None` on the branches where `phi` is linear in `c` (CosFace, the
    /// fallback, the easy margin's plain cosine).
    perp: Option<F>,
}

/// `sin(theta)` from the cosine alone. `(1 - c)(1 + c)` rather than
/// `1 - c^2`: for an exact `c` its relative error stays at rounding level
/// near `|c| = 1`, where `1 - c^2` loses `c^2`'s rounding to cancellation.
/// 0 at (and, by rounding, beyond) `|c| = 1`.
#[inline]
fn sin_from_cos<F: Float>(c: F) -> F {
    let one = F::one();
    ((one - c) * (one + c)).max(F::zero()).sqrt()
}

/// The part of `b^ = b / |b|` perpendicular to `a^ = a / |a|`,
/// `b^ - (a^ . b^) a^`, produced entry by entry (it is never stored: the
/// fused call allocates nothing of the inputs' size). Its norm is
/// `sin(theta)` between `a` and `b`.
///
/// Why not `sqrt(1 - cos^2)`: near `cos = ±1` the rounding of the cosine
/// (absolute, about `eps`) becomes a relative error of about `eps /
/// theta^2` in `1 - cos^2`. The residual of two unit vectors is accurate to
/// absolute rounding, so its norm and direction carry a relative error of
/// about `eps / theta`, the conditioning of the angle between two rounded
/// directions. One re-orthogonalization (Gram-Schmidt twice) removes the
/// component along `a^` that the rounding of `a^ . b^` leaves.
#[derive(Clone, Copy)]
struct Perp<'a, F> {
    a: ArrayView1<'a, F>,
    na: F,
    b: ArrayView1<'a, F>,
    nb: F,
    /// `a^ . b^`.
    cos: F,
    /// The residual's remaining component along `a^`.
    along: F,
}

impl<'a, F: Float> Perp<'a, F> {
    fn new(a: ArrayView1<'a, F>, na: F, b: ArrayView1<'a, F>, nb: F) -> Self {
        let hat = |x: F, n: F| x / n;
        let cos = a
            .iter()
            .zip(&b)
            .fold(F::zero(), |acc, (&x, &y)| acc + hat(x, na) * hat(y, nb));
        let along = a.iter().zip(&b).fold(F::zero(), |acc, (&x, &y)| {
            let ah = hat(x, na);
            acc + (hat(y, nb) - cos * ah) * ah
        });
        Perp {
            a,
            na,
            b,
            nb,
            cos,
            along,
        }
    }

    fn entries(self) -> impl Iterator<Item = F> + Clone + 'a {
        let Perp {
            a,
            na,
            b,
            nb,
            cos,
            along,
        } = self;
        a.into_iter().zip(b).map(move |(&x, &y)| {
            let ah = x / na;
            (y / nb - cos * ah) - along * ah
        })
    }

    fn norm(&self) -> F {
        l2_norm(self.entries())
    }
}

/// Residuals of norm up to this many `eps` are rounding noise: they come
/// out of the normalization of exactly parallel rows. Below it the angle is
/// taken as 0 (the pair is parallel to working precision), as at `|c| = 1`.
const PARALLEL_EPS: f64 = 4.0;

/// `sin(theta)` of sample `i` and its target class `y`: the norm of the
/// residual of `w^_y` perpendicular to `e^_i`, 0 within rounding noise.
#[inline]
fn target_sin<F: Float>(
    e: &ArrayView2<'_, F>,
    ne: &Array1<F>,
    w: &ArrayView2<'_, F>,
    nw: &Array1<F>,
    i: usize,
    y: usize,
) -> F {
    let sin = Perp::new(e.row(i), ne[i], w.row(y), nw[y]).norm();
    if sin > F::lit(PARALLEL_EPS) * F::epsilon() {
        sin
    } else {
        F::zero()
    }
}

/// Validates the options shared by the family.
pub(crate) fn check_scale(scale: f64) -> Result<()> {
    crate::base::validate::positive("scale", scale)
}

/// An angle option in `[0, pi)`.
pub(crate) fn check_angle(name: &'static str, value: f64) -> Result<()> {
    crate::base::validate::check_option(
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
/// the row written into `grad_row`. `sin` is `sin(theta)` of the target
/// (unused by CosFace). Returns the row's loss and, with `split`, the
/// coefficient of the unit perpendicular direction that the caller adds
/// itself (the target entry of `grad_row` then holds only the `lin` part,
/// see [`TargetLogit`]); without `split` the target entry holds the whole
/// derivative and the coefficient is 0.
#[allow(clippy::too_many_arguments)]
#[inline]
fn margin_row<F: Float>(
    margin: &MarginFn<F>,
    s: F,
    scale: F,
    c_row: &[F],
    sin: F,
    y: usize,
    z: &mut [F],
    grad_row: Option<ArrayViewMut2<'_, F>>,
    per_row: Option<ArrayViewMut1<'_, F>>,
    split: bool,
) -> (f64, F) {
    for (zj, &cj) in z.iter_mut().zip(c_row) {
        *zj = s * cj;
    }
    let c = c_row[y];
    let target = margin.target(c, sin);
    z[y] = s * target.value;
    let logits = ArrayView2::from_shape((1, z.len()), &*z).expect("a (1, C) row");
    let perp_coef = Cell::new(F::zero());
    let loss = softmax_rows(
        logits,
        std::iter::once(y),
        grad_row,
        per_row,
        |y, row, g| {
            if let Some(g) = g {
                // d/dz of -log p_y, then d z / d cos: s, and s * phi' on the target.
                let g = one_hot_grad(g, y, scale * s);
                if split {
                    // At sin = 0 the perpendicular direction does not exist
                    // (d cos / d e = 0 there): no such term.
                    if let Some(perp) = target.perp.filter(|_| sin > F::zero()) {
                        perp_coef.set(g[y] * perp);
                    }
                    g[y] *= target.lin;
                } else {
                    g[y] *= margin.slope(&target, c, sin);
                }
            }
            -row.log_p(y)
        },
    );
    (loss, perp_coef.get())
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
    grad: Option<ArrayViewMut2<'_, F>>,
    per_row: Option<ArrayViewMut1<'_, F>>,
) -> Result<F> {
    let shape = cosines.shape();
    expect_nonempty("cosines", shape, 0, "sample")?;
    expect_nonempty("cosines", shape, 1, "class")?;
    let (n, c) = cosines.dim();
    check_scale_fits::<F>(spec)?;
    check_targets(&labels, n, c)?;
    if let Some(g) = &grad {
        expect_shape("grad", g.shape(), shape)?;
    }
    let margin = MarginFn::new(spec);
    let s = F::lit(spec.scale);
    let scale: F = spec.reduction.grad_scale(n as f64);
    // Each row checks its own range in the pass that finds its max, and
    // returns NaN when a value is out of range or NaN (which nothing else
    // produces: the exponentials are at most 1 and their sum at least 1).
    // The input is read once instead of twice; the error is reported after.
    let total = rows_2d(cosines, grad, per_row, |i, c_row, g| {
        cosine_row(&margin, s, scale, c_row, labels[i], g)
    });
    if total.is_nan() {
        let bad = |v: &F| v.is_nan() || v.abs() > cosine_limit::<F>();
        if let Some((idx, &v)) = cosines.indexed_iter().find(|(_, v)| bad(v)) {
            return Err(Error::InvalidInput {
                what: "cosines",
                index: vec![idx.0, idx.1],
                value: v.as_f64(),
                expected: "a cosine in [-1, 1]",
            });
        }
    }
    finish_angular(spec, total, n)
}

/// The scale `s` is finite in the element type (it is checked as an `f64`
/// when set): `s = 1e39` passes that check but is `inf` in `f32`.
fn check_scale_fits<F: Float>(spec: &Spec) -> Result<()> {
    check_option(
        "scale",
        spec.scale,
        "a number > 0 that is finite in the element type",
        F::lit(spec.scale).is_finite(),
    )
}

/// The reduced value, or [`Error::Overflow`] when it (or, for
/// `per_sample`, a sample's loss) is beyond the element type (a scale near
/// the type's largest value can push `s * cos` past it).
fn finish_angular<F: Float>(spec: &Spec, total: f64, n: usize) -> Result<F> {
    let value: F = spec.reduction.finish(total, n as f64);
    if total.is_finite() && value.is_finite() {
        return Ok(value);
    }
    Err(overflow::<F>(
        "cosines",
        Vec::new(),
        "the loss",
        format!("about {total:e}"),
    ))
}

/// The largest `|cos|` accepted: rounding in a normalized dot product can
/// leave it a little above 1.
#[inline]
fn cosine_limit<F: Float>() -> F {
    F::one() + F::epsilon().sqrt()
}

/// One row of the loss on cosines, straight on the row kernels.
///
/// The logits are `s c_j` off the target and `s phi(c_y)` on it, so the
/// exponentials are `exp(s c_j - max)` on either side of the target (one
/// kernel call each) and one scalar on it: no row of logits is built, and a
/// row costs what a cross-entropy row costs. The gradient with respect to
/// the cosines is `scale * s * p_j` off the target and
/// `scale * s * (p_y - 1) * phi'(c_y)` on it.
#[inline]
fn cosine_row<F: Float>(
    margin: &MarginFn<F>,
    s: F,
    scale: F,
    c: &[F],
    y: usize,
    g: Option<&mut [F]>,
) -> F {
    let (before, after) = (&c[..y], &c[y + 1..]);
    // The range of the cosines off the target, in the one pass that also
    // gives their max (NaN is skipped here, but makes the sum NaN below).
    let (lo, hi) = [before, after]
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| F::row_min_max(part))
        .fold((F::infinity(), F::neg_infinity()), |(l, h), (pl, ph)| {
            (l.min(pl), h.max(ph))
        });
    let limit = cosine_limit::<F>();
    let in_range = lo >= -limit && hi <= limit && c[y].abs() <= limit;
    if !in_range {
        // The caller finds the value and reports it.
        return F::nan();
    }
    let sin = sin_from_cos(c[y]);
    let target = margin.target(c[y], sin);
    let z_y = s * target.value;
    // `s > 0`: the largest `s c_j` off the target is `s` times the largest
    // `c_j` (and -inf when the target is the only class).
    let max = z_y.max(s * hi);
    let e_y = (z_y - max).exp();
    let log_p_y = |sum: F| (z_y - max) - sum.ln();
    match g {
        None => {
            let sum = F::scaled_exp_sum(before, s, max) + e_y + F::scaled_exp_sum(after, s, max);
            -log_p_y(sum)
        }
        Some(g) => {
            let (g_before, g_rest) = g.split_at_mut(y);
            let (g_y, g_after) = g_rest.split_at_mut(1);
            let sum = F::scaled_exp_into(before, s, max, g_before)
                + e_y
                + F::scaled_exp_into(after, s, max, g_after);
            let k = scale * s;
            F::scale(g_before, k / sum);
            F::scale(g_after, k / sum);
            g_y[0] = k * (e_y / sum - F::one()) * margin.slope(&target, c[y], sin);
            -log_p_y(sum)
        }
    }
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
    check_scale_fits::<F>(spec)?;
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
    // Per sample, the coefficient of the unit direction of w^_y perpendicular
    // to e^_i (and of e^_i perpendicular to w^_y) in the target's derivative,
    // added after the products below (see `TargetLogit`).
    let mut perp_coef = Array1::<F>::zeros(if want_grad { n } else { 0 });
    let mut total = 0.0;
    for i in 0..n {
        for (dst, &v) in c_row.iter_mut().zip(cos.row(i)) {
            *dst = v;
        }
        let y = labels[i];
        let sin = if margin.needs_sin() {
            target_sin(&e, &ne, &w, &nw, i, y)
        } else {
            F::zero()
        };
        let p_row = per_row.as_mut().map(|p| p.slice_mut(s![i..i + 1]));
        let g_row = want_grad.then(|| cos.slice_mut(s![i..i + 1, ..]));
        let (loss, k) = margin_row(
            &margin, s, scale, &c_row, sin, y, &mut z, g_row, p_row, true,
        );
        total += loss;
        if want_grad {
            perp_coef[i] = k;
            let mut acc = F::zero();
            for ((&g, &cv), k) in cos.row(i).iter().zip(&c_row).zip(radial_w.iter_mut()) {
                acc += g * cv;
                *k += g * cv;
            }
            radial_e[i] = acc;
        }
    }
    let value = finish_angular(spec, total, n)?;
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
    // The `perp / sin` part of each target's derivative: k_i times the unit
    // residuals over the norms,
    //   (w^_y - c e^_i) / |w^_y - c e^_i| / |e_i|  into d loss / d e_i,
    //   (e^_i - c w^_y) / |e^_i - c w^_y| / |w_y|  into d loss / d w_y,
    // with the unit directions computed as such (never 1 / sin times a
    // residual of rounding size).
    for (i, &k) in perp_coef.iter().enumerate() {
        if k == F::zero() {
            continue;
        }
        let y = labels[i];
        let add = |mut g: ArrayViewMut1<'_, F>, p: Perp<'_, F>, norm_row: F| {
            let len = p.norm();
            if len > F::zero() {
                let f = k / len;
                for (g, r) in g.iter_mut().zip(p.entries()) {
                    *g += f * r / norm_row;
                }
            }
        };
        add(
            e_hat.row_mut(i),
            Perp::new(e.row(i), ne[i], w.row(y), nw[y]),
            ne[i],
        );
        add(
            w_hat.row_mut(y),
            Perp::new(w.row(y), nw[y], e.row(i), ne[i]),
            nw[y],
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The largest residual norm, in units of eps, of rows exactly parallel
    /// or antiparallel (`e = k w` computed exactly: small integers) or
    /// parallel up to the rounding of `k w` (real entries).
    fn worst_parallel_residual<F: Float>(integers: bool) -> f64 {
        let mut seed = 7;
        let mut worst: f64 = 0.0;
        for d in 1..40 {
            for _ in 0..100 {
                let w: Array1<F> = (0..d)
                    .map(|_| {
                        let x = lcg(&mut seed) * 2000.0 - 1000.0;
                        F::lit(if integers { x.round() } else { x / 100.0 })
                    })
                    .collect();
                let k = lcg(&mut seed) * 30.0 + 0.01;
                let k = if integers { k.round() + 1.0 } else { k };
                let sign = if lcg(&mut seed) < 0.5 { -1.0 } else { 1.0 };
                let e = w.mapv(|v| v * F::lit(sign * k));
                let (ne, nw) = (l2_norm(e.iter().copied()), l2_norm(w.iter().copied()));
                if nw == F::zero() {
                    continue;
                }
                for p in [
                    Perp::new(e.view(), ne, w.view(), nw),
                    Perp::new(w.view(), nw, e.view(), ne),
                ] {
                    worst = worst.max((p.norm() / F::epsilon()).as_f64());
                }
            }
        }
        worst
    }

    #[test]
    fn the_parallel_threshold_is_above_the_rounding_of_parallel_rows() {
        // Measured at about 0.9 eps; the threshold keeps a factor 2 at least.
        for worst in [
            worst_parallel_residual::<f32>(true),
            worst_parallel_residual::<f32>(false),
            worst_parallel_residual::<f64>(true),
            worst_parallel_residual::<f64>(false),
        ] {
            assert!(worst > 0.0 && worst < PARALLEL_EPS / 2.0, "{worst}");
        }
    }

    #[test]
    fn the_residual_gives_sin_theta_where_the_cosine_has_lost_it() {
        // An f32 pair 3e-4 rad apart: the f32 cosine rounds to 1 (its
        // sqrt(1 - c^2) is 0), the residual keeps the angle to ~eps / theta.
        let theta = 3e-4_f64;
        let w = array![1.0_f64, 0.0, 0.0];
        let e = array![theta.cos(), theta.sin() * 0.6, theta.sin() * 0.8];
        let (w32, e32) = (w.mapv(|v| v as f32), e.mapv(|v| v as f32));
        let exact = {
            let (e, w) = (e32.mapv(f64::from), w32.mapv(f64::from));
            let c = e.dot(&w) / e.dot(&e).sqrt();
            (1.0 - c * c).sqrt()
        };
        let n = |x: &Array1<f32>| l2_norm(x.iter().copied());
        let p = Perp::new(e32.view(), n(&e32), w32.view(), n(&w32));
        assert_eq!(sin_from_cos(p.cos), 0.0);
        let sin = p.norm() as f64;
        assert!(
            (sin - exact).abs() < 4.0 * f32::EPSILON as f64,
            "{sin} vs {exact}"
        );
    }

    #[test]
    fn rows_parallel_to_working_precision_take_the_documented_gradient() {
        // e_0 = k w_0 exactly, with normalized rows that differ by rounding:
        // the residual is noise, and the target's angular term (whose
        // direction would be that noise) is left out, as at cos = 1.
        let mut seed = 3;
        let (w0, k) = (0..1000)
            .map(|_| {
                let w0: Array1<f64> = (0..3)
                    .map(|_| (lcg(&mut seed) * 200.0 - 100.0).round())
                    .collect();
                (w0, (lcg(&mut seed) * 20.0).round() + 2.0)
            })
            .find(|(w0, k)| {
                let e0 = w0 * *k;
                let n = |x: &Array1<f64>| l2_norm(x.iter().copied());
                n(w0) > 0.0 && Perp::new(e0.view(), n(&e0), w0.view(), n(w0)).norm() > 0.0
            })
            .expect("a parallel pair whose normalization rounds differently");
        let e = (&w0 * k).insert_axis(ndarray::Axis(0));
        let mut w = Array2::zeros((2, 3));
        w.row_mut(0).assign(&w0);
        w.row_mut(1).assign(&array![-1.0, 0.5, 2.0]);
        let labels = array![0_usize];
        let spec = Spec {
            reduction: Reduction::Sum,
            scale: 1.0,
            m1: 1.0,
            m2: 0.5,
            m3: 0.0,
            easy_margin: false,
        };
        let (mut ge, mut gw) = (Array2::zeros((1, 3)), Array2::zeros((2, 3)));
        let grad = EmbeddingsGradMut {
            embeddings: ge.view_mut(),
            weight: gw.view_mut(),
        };
        let input = Embeddings {
            embeddings: e.view(),
            weight: w.view(),
        };
        let value = run_embeddings(&spec, input, labels.view(), Some(grad), None).unwrap();
        // The chain rule with d cos_00 / d e = d cos_00 / d w_0 = 0.
        let unit = |x: ArrayView1<'_, f64>| &x / x.dot(&x).sqrt();
        let (e_hat, w1_hat) = (unit(e.row(0)), unit(w.row(1)));
        let c01 = e_hat.dot(&w1_hat);
        let cos = array![[1.0, c01]];
        let mut g = Array2::zeros((1, 2));
        let v = run_cosines(&spec, cos.view(), labels.view(), Some(g.view_mut()), None).unwrap();
        assert!((value - v).abs() < 1e-12, "{value} vs {v}");
        let expect_e = (&w1_hat - &(&e_hat * c01)) * g[[0, 1]] / e.row(0).dot(&e.row(0)).sqrt();
        let expect_w1 = (&e_hat - &(&w1_hat * c01)) * g[[0, 1]] / w.row(1).dot(&w.row(1)).sqrt();
        for (a, b) in ge.row(0).iter().zip(&expect_e) {
            assert!((a - b).abs() < 1e-12, "{ge} vs {expect_e}");
        }
        assert!(gw.row(0).iter().all(|x| x.abs() < 1e-12), "{gw}");
        for (a, b) in gw.row(1).iter().zip(&expect_w1) {
            assert!((a - b).abs() < 1e-12, "{gw} vs {expect_w1}");
        }
    }
}
