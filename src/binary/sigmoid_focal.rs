//! The sigmoid focal loss, as `torchvision.ops.sigmoid_focal_loss`.

use std::marker::PhantomData;

use ndarray::{Dimension, Ix2};

use crate::base::loss::{Call, Compute, Elementwise};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_option;
use crate::engine::sigmoid_elementwise::{Logistic, LogitTerm, elementwise_logits, run_binary};
use crate::{Float, Result};

loss_options! {
    /// The focal loss on sigmoid outputs: binary cross-entropy from logits,
    /// scaled down by `(1 - p_t)^gamma` where the prediction is already right,
    /// and optionally balanced by `alpha`. Defaults and semantics are
    /// torchvision's.
    ///
    /// Use it for dense detection and other heavily imbalanced binary or
    /// multi-label problems, where the many easy negatives would otherwise
    /// dominate the loss. `gamma = 0` without `alpha` is exactly
    /// [`crate::BceWithLogits`].
    ///
    /// # Formula
    /// ```text
    /// p    = sigmoid(x)
    /// ce   = (1 - t) softplus(x) + t softplus(-x)          (BCE with logits)
    /// q    = 1 - p_t = (1 - t) sigmoid(x) + t sigmoid(-x)  (p_t = p t + (1 - p)(1 - t))
    /// a_t  = alpha t + (1 - alpha)(1 - t)                  (1 when alpha is None)
    /// l    = a_t ce q^gamma
    /// dl/dx = a_t q^gamma [ (1 - t) sigmoid(x) - t sigmoid(-x) + gamma (1 - 2t) ce r ]
    /// r    = sigmoid(x) sigmoid(-x) / q = 1 / (1 + (1 - t) e^x + t e^-x)   in (0, 1]
    /// ```
    /// `q` is computed from the sigmoids of `x` and `-x` directly, never as
    /// `1 - p_t`, so it keeps its digits where the prediction is confident
    /// (torchvision's `1 - p_t` rounds to 0 there, in `f32` from `|x| ~ 17`).
    ///
    /// **The derivative where `q` is 0.** The chain rule gives the factor
    /// `gamma q^(gamma - 1) dq/dx`, and `q^(gamma - 1)` is unbounded as
    /// `q -> 0` when `gamma < 1`. That product is never formed: `dq/dx = (1 - 2t)
    /// sigmoid(x) sigmoid(-x)`, so `q^(gamma - 1) dq/dx = q^gamma (1 - 2t) r`
    /// with `r` bounded in `(0, 1]` and computed without dividing by `q`. For a
    /// finite logit `q` is mathematically positive; it can only be 0 by
    /// underflow (a hard target and `|x|` beyond about 745 in `f64`, 103 in
    /// `f32`), and there the value returned is the limit of the gradient: `0`
    /// for `gamma > 0`, and the BCE gradient (itself 0 to working precision)
    /// for `gamma = 0`. So the loss and its gradient are finite for every finite
    /// logit and every `gamma >= 0`, including `0 < gamma < 1`, where
    /// differentiating a naive `(1 - p_t)^gamma` (as autograd does through
    /// torchvision's code) gives NaN or infinity once `1 - p_t` rounds to 0.
    ///
    /// # Shapes
    /// - logits: any shape of rank `>= 1`, typically `(N, K)` (one logit per
    ///   anchor and class); [`SigmoidFocal::new`] takes `(N, K)`,
    ///   [`SigmoidFocal::spatial`] any rank picked with the type.
    /// - targets: the shape of `logits`, values in `[0, 1]` (soft labels allowed).
    /// - per-sample: shaped like `logits`; gradient: the shape of `logits`.
    /// - `Mean` divides by the number of elements of `logits`, as torchvision's
    ///   `reduction="mean"`. (Detection code often uses `Sum` and divides by the
    ///   number of positive anchors itself.)
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `gamma`: finite, `>= 0`; default `2.0`, torchvision's default and the
    ///   paper's choice.
    /// - `alpha`: `Some(a)` with `a` in `[0, 1]` weights positives by `a` and
    ///   negatives by `1 - a`; `None` disables the weighting. Default
    ///   `Some(0.25)`, torchvision's default and the paper's choice. (torchvision
    ///   spells "no weighting" as a negative `alpha`; here it is `None`.)
    ///
    /// # Errors
    /// `logits` of rank 0 or with no element; `targets` or the gradient buffer
    /// of another shape; a target outside `[0, 1]` or NaN (`InvalidTarget`
    /// naming `targets`); from the builders, a `gamma` that is negative or not
    /// finite, an `alpha` outside `[0, 1]` or NaN; at call time, a `gamma` that
    /// overflows the element type (above `f32::MAX` for `f32`).
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, SigmoidFocal};
    /// use ndarray::array;
    ///
    /// let logits = array![[2.0_f64, -1.0]];
    /// let targets = array![[1.0, 0.0]];
    /// let focal = SigmoidFocal::new(); // gamma 2, alpha 0.25
    /// assert_eq!((focal.gamma(), focal.alpha()), (2.0, Some(0.25)));
    /// let loss = focal.forward(logits.view(), targets.view())?;
    /// assert!((loss - 0.008722216920080296).abs() < 1e-14);
    ///
    /// // gamma < 1 with a confident, correct prediction: still finite.
    /// let sharp = SigmoidFocal::new().with_gamma(0.5)?.with_alpha(None)?;
    /// let grad = sharp.backward(array![[800.0, -800.0]].view(), targets.view())?;
    /// assert!(grad.iter().all(|g| g.is_finite()));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense
    /// Object Detection", ICCV 2017, <https://arxiv.org/abs/1708.02002>.
    /// torchvision, `torchvision.ops.sigmoid_focal_loss`
    /// (<https://pytorch.org/vision/stable/generated/torchvision.ops.sigmoid_focal_loss.html>).
    pub struct SigmoidFocal<F: Float, D: Dimension = Ix2> {
        /// The focusing exponent.
        gamma: f64 = 2.0,
            /// Sets the focusing exponent `gamma`, finite and `>= 0` (default 2).
            set with_gamma checked by non_negative;
        /// The class balance, if any.
        alpha: Option<f64> = Some(0.25),
            /// Sets the class balance `alpha` in `[0, 1]`, or `None` for no
            /// balancing (default `Some(0.25)`).
            set with_alpha checked by optional_unit_interval;
    }

    /// The focal loss on logits of any rank `>= 1`, picked with the type,
    /// for example `SigmoidFocal::<f32, ndarray::IxDyn>::spatial()`; the
    /// defaults of [`SigmoidFocal::new`].
    fn spatial();
    /// The focal loss on `(N, K)` logits: mean reduction, `gamma = 2`,
    /// `alpha = Some(0.25)` (torchvision's defaults).
    fn new() at Ix2;
}

impl<F: Float, D: Dimension> Compute<F> for SigmoidFocal<F, D> {
    type Sig = Elementwise<D>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        run_binary(["logits", "targets"], self.reduction, call, None, |e| {
            check_option(
                "gamma",
                self.gamma,
                "a number >= 0 that is finite in the element type",
                F::lit(self.gamma).is_finite(),
            )?;
            let (logits, targets, grad, per) = (e.input, e.targets, e.grad, e.per);
            let (alpha, gamma) = (self.alpha, self.gamma);
            // One loop per kind of exponent, so that the usual ones (0, 1, 2,
            // 3) are plain multiplications the compiler can vectorize.
            macro_rules! run {
                ($power:ident) => {
                    elementwise_logits(
                        logits,
                        targets,
                        None,
                        None,
                        grad,
                        per,
                        &FocalTerm {
                            alpha,
                            gamma,
                            power: PhantomData::<$power>,
                        },
                    )
                };
            }
            match self.gamma {
                // gamma = 0 returns before the power (`focal_term`).
                0.0 | 1.0 => run!(PowerOne),
                2.0 => run!(PowerTwo),
                3.0 => run!(PowerThree),
                _ => run!(PowerGamma),
            }
        })
    }
}

/// `q^gamma`, with the usual exponents as plain multiplications.
trait Power: Copy + Sync {
    fn pow<T: Float>(q: T, gamma: T) -> T;
}

#[derive(Clone, Copy)]
struct PowerOne;
#[derive(Clone, Copy)]
struct PowerTwo;
#[derive(Clone, Copy)]
struct PowerThree;
#[derive(Clone, Copy)]
struct PowerGamma;

impl Power for PowerOne {
    #[inline(always)]
    fn pow<T: Float>(q: T, _: T) -> T {
        q
    }
}
impl Power for PowerTwo {
    #[inline(always)]
    fn pow<T: Float>(q: T, _: T) -> T {
        q * q
    }
}
impl Power for PowerThree {
    #[inline(always)]
    fn pow<T: Float>(q: T, _: T) -> T {
        q * q * q
    }
}
impl Power for PowerGamma {
    #[inline(always)]
    fn pow<T: Float>(q: T, gamma: T) -> T {
        q.powf(gamma)
    }
}

/// One element of the focal loss, for the engine.
#[derive(Clone, Copy)]
struct FocalTerm<P> {
    alpha: Option<f64>,
    gamma: f64,
    power: PhantomData<P>,
}

impl<P: Power> LogitTerm for FocalTerm<P> {
    const TARGETS_IN_UNIT: bool = true;

    #[inline(always)]
    fn term<T: Float>(&self, x: T, t: T, _: T, _: T, logistic: Logistic<T>) -> (T, T) {
        // 1 - alpha from the f64 option: alpha = 0.999999999999 rounds to 1
        // in f32, and 1 - that to 0 where it is 1e-12.
        let alpha = self.alpha.map(|a| (T::lit(a), T::lit(1.0 - a)));
        focal_term(x, t, logistic, alpha, T::lit(self.gamma), P::pow)
    }
}

/// One element's focal loss and its derivative, with `power(q) = q^gamma`.
#[inline(always)]
fn focal_term<F: Float>(
    x: F,
    t: F,
    logistic: Logistic<F>,
    alpha: Option<(F, F)>,
    gamma: F,
    power: impl Fn(F, F) -> F,
) -> (F, F) {
    let one = F::one();
    let s = logistic.terms;
    let neg = one - t;
    let (ce, d_ce) = logistic.cross_entropy_of_target(x, t);
    let a_t = alpha.map_or(one, |(a, one_minus_a)| a * t + one_minus_a * neg);
    if gamma == F::zero() {
        // `0^0 = 1` anyway, but this keeps gamma = 0 bit-identical to BCE
        // with logits.
        return (a_t * ce, a_t * d_ce);
    }
    let q = neg * s.sigmoid + t * s.sigmoid_neg;
    let q_gamma = power(q, gamma);
    // r = 1 / (1 + (1 - t) exp(x) + t exp(-x)), multiplied through by
    // e = exp(-|x|) so that no exp(|x|) (inf for large |x|) appears:
    // e / (e + (1 - t) + t e^2) for x >= 0, and e / (e + (1 - t) e^2 + t)
    // for x < 0. The denominator is 0 only where e underflows and the far
    // term's weight is 0; there r is exactly 1.
    let e = logistic.e;
    let e2 = e * e;
    let far = if x >= F::zero() {
        neg + t * e2
    } else {
        neg * e2 + t
    };
    let den = e + far;
    let r = if den > F::zero() { e / den } else { one };
    // ce * r is bounded (ce is large only where r is tiny), so it is formed
    // before gamma multiplies in.
    let focus = gamma * (one - t - t) * (ce * r);
    (a_t * ce * q_gamma, a_t * q_gamma * (d_ce + focus))
}
