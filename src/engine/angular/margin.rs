//! The margin on the target cosine, `phi(c) = cos(m1 acos(c) + m2) - m3`,
//! its derivative, and `sin(theta)` from the cosine or from the two vectors.

use std::f64::consts::PI;

use ndarray::ArrayView1;

use super::Spec;
use crate::base::validate::check_option;
use crate::numerics::l2_norm;
use crate::{Float, Result};

/// The target-logit function `phi(c) = cos(m1 acos(c) + m2) - m3` (before
/// the scale) with the ArcFace fallback, its constants in `F`.
pub(crate) struct MarginFn<F> {
    kind: Kind,
    m1: F,
    /// In `f64`, as the target value: `m3` may pass `F`'s range (1e300
    /// in `f32`), while `s (c - m3)` fits.
    m3: f64,
    cos_m2: F,
    sin_m2: F,
    m2: F,
    /// `phi` falls back to `c - fallback_sub - m3` for `c <= threshold`,
    /// compared in `f64`: within ~3e-4 of `m2 = pi` the threshold is within
    /// `5e-9` of 1 and would round to 1 in `f32`, moving `c = 1` into the
    /// fallback (`0.69` where the loss is 128).
    threshold: Option<f64>,
    fallback_sub: F,
    easy_margin: bool,
    /// `d phi / d c` at `c = 1` and `c = -1`, where `1 / sin(theta)` is
    /// infinite (see `slope`); in `f64`, as `m1^2` may pass `F`'s range.
    at_plus_one: f64,
    at_minus_one: f64,
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
            (Some(theta_t.cos()), F::lit((PI - theta_t) * theta_t.sin()))
        } else {
            (None, F::zero())
        };
        MarginFn {
            kind,
            m1: F::lit(m1),
            m3,
            cos_m2: F::lit(m2.cos()),
            sin_m2: F::lit(m2.sin()),
            m2: F::lit(m2),
            threshold,
            fallback_sub,
            easy_margin: spec.easy_margin,
            // m1 sin(m1 theta + m2) / sin(theta) without its divergent part:
            // the exact limit whenever the limit is finite (m2 = 0 at c = 1).
            at_plus_one: m1 * m1 * m2.cos(),
            at_minus_one: -m1 * m1 * (m1 * PI + m2).cos(),
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
        let linear = |value: F| TargetLogit {
            value: value.as_f64() - self.m3,
            lin: one,
            perp: None,
        };
        if self.kind == Kind::Additive {
            return linear(c);
        }
        if self.easy_margin && c <= F::zero() {
            return linear(c);
        }
        if let (false, Some(t)) = (self.easy_margin, self.threshold)
            && c.as_f64() <= t
        {
            return linear(c - self.fallback_sub);
        }
        match self.kind {
            // cos(theta + m2) = c cos m2 - sin sin m2; d/dc = cos m2 + c sin m2 / sin.
            Kind::Angular => TargetLogit {
                value: (c * self.cos_m2 - sin * self.sin_m2).as_f64() - self.m3,
                lin: self.cos_m2,
                perp: Some(c * self.sin_m2),
            },
            // d/dc cos(m1 theta + m2) = m1 sin(m1 theta + m2) / sin. theta
            // from atan2: acos(c) would inherit the rounding of c amplified
            // by 1 / sin(theta) near |c| = 1.
            _ => {
                let angle = self.m1 * sin.atan2(c) + self.m2;
                TargetLogit {
                    value: angle.cos().as_f64() - self.m3,
                    lin: F::zero(),
                    perp: Some(self.m1 * angle.sin()),
                }
            }
        }
    }

    /// The whole `d phi / d c` of `t = self.target(c, sin)`: `lin + perp /
    /// sin`, and at `sin = 0`, where that is infinite, the finite part of
    /// its limit (see `at_plus_one`). In `f64`.
    #[inline]
    pub(crate) fn slope(&self, t: &TargetLogit<F>, c: F, sin: F) -> f64 {
        match t.perp {
            None => t.lin.as_f64(),
            Some(perp) if sin > F::zero() => t.lin.as_f64() + perp.as_f64() / sin.as_f64(),
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
#[derive(Clone, Copy)]
pub(crate) struct TargetLogit<F> {
    /// `phi(c)`, in `f64` (see `MarginFn::m3`).
    pub(crate) value: f64,
    pub(crate) lin: F,
    /// `None` on the branches where `phi` is linear in `c` (CosFace, the
    /// fallback, the easy margin's plain cosine).
    pub(crate) perp: Option<F>,
}

/// `sin(theta)` from the cosine alone. `(1 - c)(1 + c)` rather than
/// `1 - c^2`: for an exact `c` its relative error stays at rounding level
/// near `|c| = 1`, where `1 - c^2` loses `c^2`'s rounding to cancellation.
/// 0 at (and, by rounding, beyond) `|c| = 1`.
#[inline]
pub(crate) fn sin_from_cos<F: Float>(c: F) -> F {
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
pub(crate) struct Perp<'a, F> {
    a: ArrayView1<'a, F>,
    na: F,
    b: ArrayView1<'a, F>,
    nb: F,
    /// `a^ . b^`.
    pub(crate) cos: F,
    /// The residual's remaining component along `a^`.
    along: F,
}

impl<'a, F: Float> Perp<'a, F> {
    pub(crate) fn new(a: ArrayView1<'a, F>, na: F, b: ArrayView1<'a, F>, nb: F) -> Self {
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

    pub(crate) fn entries(self) -> impl Iterator<Item = F> + Clone + 'a {
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

    pub(crate) fn norm(&self) -> F {
        l2_norm(self.entries())
    }
}

/// Residuals of norm up to this many `eps` are rounding noise: they come
/// out of the normalization of exactly parallel rows. Below it the angle is
/// taken as 0 (the pair is parallel to working precision), as at `|c| = 1`.
pub(crate) const PARALLEL_EPS: f64 = 4.0;

/// `sin(theta)` of an embedding `e` (norm `ne`) and its target class's
/// weight row `w` (norm `nw`): the norm of the residual of `w^`
/// perpendicular to `e^`, 0 within rounding noise.
#[inline]
pub(crate) fn target_sin<F: Float>(e: ArrayView1<'_, F>, ne: F, w: ArrayView1<'_, F>, nw: F) -> F {
    let sin = Perp::new(e, ne, w, nw).norm();
    if sin > F::lit(PARALLEL_EPS) * F::epsilon() {
        sin
    } else {
        F::zero()
    }
}

/// The scale `s` is finite in the element type (it is checked as an `f64`
/// when set): `s = 1e39` passes that check but is `inf` in `f32`.
pub(crate) fn check_scale_fits<F: Float>(spec: &Spec) -> Result<()> {
    check_option(
        "scale",
        spec.scale,
        "a number > 0 that is finite in the element type",
        F::lit(spec.scale).is_finite(),
    )
}
