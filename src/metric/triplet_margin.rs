//! The triplet margin loss on (anchor, positive, negative) embeddings.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Ix1};

use crate::base::loss::{Call, Compute, Exact, Signature};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{expect_samples_and_features, expect_shape};
use crate::numerics::{l2_norm, times_pow2};
use crate::{Float, Result};

/// A batch of triplets: row `i` of `anchor` should be nearer to row `i` of
/// `positive` than to row `i` of `negative`. All three are `(N, D)`.
#[derive(Clone, Copy, Debug)]
pub struct Triplet<'a, F> {
    /// The anchors, `(N, D)`.
    pub anchor: ArrayView2<'a, F>,
    /// The positives (same identity as the anchor), `(N, D)`.
    pub positive: ArrayView2<'a, F>,
    /// The negatives (another identity), `(N, D)`.
    pub negative: ArrayView2<'a, F>,
}

/// The gradient of the triplet loss with respect to its three inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TripletGrad<F> {
    /// `d loss / d anchor`, `(N, D)`.
    pub anchor: Array2<F>,
    /// `d loss / d positive`, `(N, D)`.
    pub positive: Array2<F>,
    /// `d loss / d negative`, `(N, D)`.
    pub negative: Array2<F>,
}

/// Mutable views of the three gradient buffers the triplet loss fills.
#[derive(Debug)]
pub struct TripletGradMut<'g, F> {
    /// Receives `d loss / d anchor`, `(N, D)`.
    pub anchor: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d positive`, `(N, D)`.
    pub positive: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d negative`, `(N, D)`.
    pub negative: ArrayViewMut2<'g, F>,
}

impl<'g, F> From<&'g mut TripletGrad<F>> for TripletGradMut<'g, F> {
    fn from(grad: &'g mut TripletGrad<F>) -> Self {
        TripletGradMut {
            anchor: grad.anchor.view_mut(),
            positive: grad.positive.view_mut(),
            negative: grad.negative.view_mut(),
        }
    }
}

/// The signature of the triplet loss: three `(N, D)` inputs, no target
/// (`()`), a gradient for each input.
pub struct Triplets;

impl<F: Float> Signature<F> for Triplets {
    type Input<'a> = Triplet<'a, F>;
    type Target<'a> = ();
    type Samples = Ix1;
    type Grad = TripletGrad<F>;
    type GradMut<'g> = TripletGradMut<'g, F>;

    fn samples(t: &Self::Input<'_>) -> Ix1 {
        Ix1(t.anchor.nrows())
    }
    fn zeros_grad(t: &Self::Input<'_>) -> TripletGrad<F> {
        TripletGrad {
            anchor: Array2::zeros(t.anchor.raw_dim()),
            positive: Array2::zeros(t.positive.raw_dim()),
            negative: Array2::zeros(t.negative.raw_dim()),
        }
    }
    fn grad_view_mut(grad: &mut TripletGrad<F>) -> TripletGradMut<'_, F> {
        grad.into()
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        TripletGradMut {
            anchor: grad.anchor.view_mut(),
            positive: grad.positive.view_mut(),
            negative: grad.negative.view_mut(),
        }
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        grad.anchor *= factor;
        grad.positive *= factor;
        grad.negative *= factor;
    }
    fn all_finite(t: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        t.anchor.iter().all(finite)
            && t.positive.iter().all(finite)
            && t.negative.iter().all(finite)
    }
}

impl Exact for Triplets {}

loss_options! {
    /// The triplet margin loss: PyTorch's `nn.TripletMarginLoss`. Each
    /// anchor must be nearer to its positive than to its negative by at
    /// least `margin`, in the `p`-norm distance.
    ///
    /// Use it to learn an embedding from relative comparisons (FaceNet's
    /// face verification, retrieval) when the data come as triplets rather
    /// than as labeled pairs ([`crate::Contrastive`]) or classes
    /// ([`crate::ArcFace`]).
    ///
    /// # Formula
    /// ```text
    /// d(x, y) = |x - y + eps|_p                  (PyTorch's pairwise_distance, eps = 1e-6)
    /// d_neg   = d(a, n), or with swap min(d(a, n), d(p, n))
    /// z_i     = margin + d(a_i, p_i) - d_neg_i,   l_i = max(0, z_i)
    /// d d(x, y) / d x = sign(u) (|u| / d)^(p - 1),  u = x - y + eps   (= -d d / d y)
    /// ```
    /// The gradient flows where `z >= 0` (PyTorch's `clamp_min` passes it at
    /// the bound). With `swap`, a tie `d(a, n) = d(p, n)` splits the
    /// gradient in halves between the two distances (PyTorch's `min`). A
    /// distance of exactly 0 has gradient 0, as PyTorch's norm. Distances
    /// are taken in `f64`, the rows of a triplet scaled by a power of two
    /// when an entry passes `1e300`, so that finite `f64` inputs do not
    /// overflow the differences.
    ///
    /// # Shapes
    /// - input: [`Triplet`] of `anchor`, `positive`, `negative`, each
    ///   `(N, D)`; no target (pass `()`).
    /// - per-sample `(N)`; gradient: [`TripletGrad`], three `(N, D)`
    ///   arrays.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin`: finite, `>= 0` (default 1).
    /// - `p`: the norm's degree, finite, `>= 1` (default 2).
    /// - `eps`: added to each difference, finite, `>= 0` (default `1e-6`,
    ///   PyTorch's).
    /// - `swap`: the distance swap of Balntas et al. (default `false`).
    ///
    /// # Errors
    /// An empty batch or zero features; `positive`, `negative` or gradient
    /// buffers of another shape than `anchor` (naming the argument);
    /// options out of range at construction. A sample's value beyond `F` is
    /// [`crate::Error::Overflow`]; non-finite inputs propagate.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, Triplet, TripletMargin};
    /// use ndarray::array;
    ///
    /// let anchor = array![[0.0_f64, 0.0], [0.0, 0.0]];
    /// let positive = array![[3.0, 4.0], [0.0, 1.0]];
    /// let negative = array![[0.0, 1.0], [6.0, 8.0]];
    /// let loss = TripletMargin::new().with_eps(0.0)?;
    /// let t = Triplet {
    ///     anchor: anchor.view(),
    ///     positive: positive.view(),
    ///     negative: negative.view(),
    /// };
    /// // Sample 0: 1 + 5 - 1 = 5; sample 1: 1 + 1 - 10 < 0.
    /// let (value, grad) = loss.forward_backward(t, ())?;
    /// assert_eq!(value, 2.5);
    /// // d/d anchor = (a - p)/|a - p| - (a - n)/|a - n|, halved by the mean.
    /// let g0 = grad.anchor.row(0);
    /// assert!((g0[0] + 0.3).abs() < 1e-15 && (g0[1] - 0.1).abs() < 1e-15);
    /// assert_eq!(grad.negative.row(1).to_vec(), vec![0.0, 0.0]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.TripletMarginLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.TripletMarginLoss.html>.
    /// F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified
    /// Embedding for Face Recognition and Clustering", CVPR 2015,
    /// <https://arxiv.org/abs/1503.03832>. V. Balntas, E. Riba, D. Ponsa,
    /// K. Mikolajczyk, "Learning local feature descriptors with triplets and
    /// shallow convolutional neural networks", BMVC 2016 (the swap).
    #[derive(PartialEq)]
    pub struct TripletMargin {
        /// The margin.
        margin: f64 = 1.0,
            /// Sets the margin, finite and `>= 0` (default 1).
            set with_margin checked by non_negative;
        /// The degree of the norm.
        p: f64 = 2.0,
            /// Sets the norm's degree, finite and `>= 1` (default 2).
            set with_p checked by at_least_one;
        /// Added to each difference before the norm.
        eps: f64 = 1e-6,
            /// Sets the `eps` added to each difference, finite and `>= 0`
            /// (default `1e-6`, PyTorch's).
            set with_eps checked by non_negative;
        /// Whether the negative's distance is the nearer of `d(a, n)` and
        /// `d(p, n)`.
        swap: bool = false,
            /// Uses `min(d(a, n), d(p, n))` as the negative's distance
            /// (default `false`).
            set with_swap;
    }

    /// The triplet margin loss: mean reduction, margin 1, `p = 2`,
    /// `eps = 1e-6`, no swap.
    fn new();
}

/// Entries beyond this are scaled down before the differences are taken.
const LARGE: f64 = 1e300;

/// One distance `d(x, y)` of the loss and the difference `u = s (x - y +
/// eps)` it was taken of (in the triplet's scale `s`).
struct Distance {
    d: f64,
    u: Vec<f64>,
}

impl TripletMargin {
    /// `d(x, y)` with the rows scaled by `2^k`.
    fn distance<F: Float>(&self, x: ArrayView1<'_, F>, y: ArrayView1<'_, F>, k: i32) -> Distance {
        let eps = times_pow2(self.eps, k);
        let u: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (times_pow2(a.as_f64(), k) - times_pow2(b.as_f64(), k)) + eps)
            .collect();
        let d = if self.p == 2.0 {
            l2_norm(u.iter().copied())
        } else if self.p == 1.0 {
            u.iter().map(|v| v.abs()).sum()
        } else {
            // Divided by the largest magnitude first: |u|^p would leave
            // f64 for large p.
            let max = u.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            if max == 0.0 || !max.is_finite() {
                max
            } else {
                let s: f64 = u.iter().map(|v| (v.abs() / max).powf(self.p)).sum();
                max * s.powf(1.0 / self.p)
            }
        };
        Distance { d, u }
    }

    /// `d d / d u_k` (scale-free: the same for the scaled rows).
    fn slope(&self, dist: &Distance, k: usize) -> f64 {
        let u = dist.u[k];
        if dist.d == 0.0 || u == 0.0 {
            0.0
        } else if self.p == 1.0 {
            u.signum()
        } else {
            u.signum() * (u.abs() / dist.d).powf(self.p - 1.0)
        }
    }
}

impl<F: Float> Compute<F> for TripletMargin {
    type Sig = Triplets;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: t,
            mut grad,
            mut per,
            ..
        } = call;
        let shape = t.anchor.shape();
        expect_samples_and_features("anchor", shape)?;
        expect_shape("positive", t.positive.shape(), shape)?;
        expect_shape("negative", t.negative.shape(), shape)?;
        if let Some(g) = grad.as_ref() {
            expect_shape("grad.anchor", g.anchor.shape(), shape)?;
            expect_shape("grad.positive", g.positive.shape(), shape)?;
            expect_shape("grad.negative", g.negative.shape(), shape)?;
        }
        let n = shape[0];
        let scale = self.reduction.grad_scale::<f64>(n as f64);
        let mut sum = Sum::default();
        for i in 0..n {
            let (a, p, q) = (t.anchor.row(i), t.positive.row(i), t.negative.row(i));
            let largest = a
                .iter()
                .chain(&p)
                .chain(&q)
                .fold(0.0_f64, |m, v| m.max(v.as_f64().abs()));
            // 2^-k with every entry below 2^1000 after scaling: differences
            // of two such entries stay in f64.
            let k = if largest > LARGE {
                1000 - largest.log2().ceil() as i32
            } else {
                0
            };
            let ap = self.distance(a, p, k);
            let an = self.distance(a, q, k);
            let pn = self.swap.then(|| self.distance(p, q, k));
            // The weights of d(a, n) and d(p, n) in d_neg.
            let (w_an, w_pn) = match &pn {
                Some(pn) if pn.d < an.d => (0.0, 1.0),
                Some(pn) if pn.d == an.d => (0.5, 0.5),
                _ => (1.0, 0.0),
            };
            let d_neg = match &pn {
                Some(pn) => an.d.min(pn.d),
                None => an.d,
            };
            let z = self.margin + times_pow2(ap.d - d_neg, -k);
            let active = z >= 0.0 || z.is_nan();
            let value = if active { z } else { 0.0 };
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                let f = if active { scale } else { 0.0 };
                for k in 0..shape[1] {
                    let s_ap = self.slope(&ap, k);
                    let s_an = w_an * self.slope(&an, k);
                    let s_pn = pn.as_ref().map_or(0.0, |pn| w_pn * self.slope(pn, k));
                    g.anchor[[i, k]] = sum.grad_entry(i, f * (s_ap - s_an));
                    g.positive[[i, k]] = sum.grad_entry(i, f * (-s_ap - s_pn));
                    g.negative[[i, k]] = sum.grad_entry(i, f * (s_an + s_pn));
                }
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "anchor",
        })
    }
}
