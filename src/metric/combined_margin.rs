//! The combined angular margin `s (cos(m1 theta + m2) - m3)` of insightface,
//! covering SphereFace, ArcFace and CosFace.

use super::angular::{Sealed, Spec};
use crate::Result;
use crate::base::options::loss_options;
use crate::base::validate::{angle, check_option, non_negative};

loss_options! {
    /// The combined margin loss: cross-entropy on scaled cosines with the
    /// target logit `s (cos(m1 theta + m2) - m3)`, the multiplicative
    /// (SphereFace), additive angular (ArcFace) and additive cosine (CosFace)
    /// margins at once.
    ///
    /// `(m1, m2, m3) = (1, m, 0)` is [`ArcFace`](super::ArcFace), `(1, 0, m)` is
    /// [`CosFace`](super::CosFace) (with identical values and gradients), and
    /// `(m, 0, 0)` SphereFace's multiplicative margin on normalized weights and
    /// embeddings. insightface's combinations such as `(1, 0.3, 0.2)` or
    /// `(0.9, 0.4, 0.15)` sit in between.
    ///
    /// # Formula
    /// ```text
    /// cos_ij   = <e_i, w_j> / (|e_i| |w_j|),  theta = acos(cos_iy)
    /// theta_t  = (pi - m2) / m1        (where m1 theta + m2 reaches pi)
    /// phi      = cos(m1 theta + m2) - m3                      if theta < theta_t
    ///          = cos theta - (pi - theta_t) sin(theta_t) - m3  otherwise (fallback)
    /// easy_margin: phi = cos(m1 theta + m2) - m3 if cos theta > 0, else cos theta - m3
    /// z_ij     = s cos_ij (j != y_i),   z_iy = s phi
    /// l_i      = -log softmax(z_i)_{y_i}
    /// ```
    /// `cos(m1 theta + m2)` stops decreasing at `theta_t`; beyond it the target
    /// logit falls back to the cosine minus the margin's first-order cosine gap
    /// at `theta_t`, which for `m1 = 1` is insightface's ArcFace fallback
    /// `cos theta - m2 sin m2`. With `theta_t >= pi` there is no fallback.
    ///
    /// **At a cosine of exactly ±1** `d phi / d cos = m1 sin(m1 theta + m2) / sin theta`
    /// divides by zero. There the finite part of its limit is used:
    /// `m1^2 cos m2` at `cos = 1` and `-m1^2 cos(m1 pi + m2)` at `cos = -1`,
    /// which is the exact limit whenever it is finite (for example `m2 = 0` at
    /// `cos = 1`) and `cos m` for ArcFace. The embedding and weight gradients do
    /// not depend on this choice (`d cos / d e = 0` there). Rows parallel or
    /// antiparallel to working precision count as such, as for
    /// [`ArcFace`](super::ArcFace).
    ///
    /// **Precision near `theta = 0` and `theta = pi`** (the latter reached
    /// without fallback when `theta_t >= pi`): as for
    /// [`ArcFace`](super::ArcFace), `sin theta` and `theta = atan2(sin theta,
    /// cos theta)` come from the residual `w^ - cos e^`, not from `sqrt(1 -
    /// cos^2)` and `acos`, and the target's part of the gradient carries a
    /// relative error of a few `eps / sin theta` (in `f32`, below `1e-3` for
    /// `sin theta > 1e-3`), inherent in rounding the normalized rows. With no
    /// `1 / sin theta` in its derivative, [`CosFace`](super::CosFace) has no
    /// such limit.
    ///
    /// # Shapes
    /// - input: [`Embeddings`](super::Embeddings) `{ embeddings (N, D), weight (C, D) }`,
    ///   neither normalized (or [`OnCosines`](super::OnCosines) on `(N, C)` cosines).
    /// - target: labels `(N)` in `0..C`; per-sample `(N)`.
    /// - gradient: [`EmbeddingsGrad`](super::EmbeddingsGrad) `{ embeddings (N, D), weight (C, D) }`.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `scale` `s`: finite, `> 0` (default 64).
    /// - margins `(m1, m2, m3)`: `m1` in `(0, 100]`, `m2` radians in `[0, pi)`,
    ///   `m3` finite `>= 0` (default `(1, 0.5, 0)`, ArcFace, as insightface's
    ///   configurations).
    /// - `easy_margin` (default false), as [`ArcFace`](super::ArcFace).
    ///
    /// # Errors
    /// As [`ArcFace`](super::ArcFace); options: a `scale` that is not finite and
    /// positive, `m1` outside `(0, 100]`, `m2` outside `[0, pi)`, a negative `m3`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CombinedMargin, Embeddings, Loss};
    /// use ndarray::array;
    ///
    /// let e = array![[1.0_f64, 1.0]];                 // theta to class 0: pi/4
    /// let w = array![[1.0, 0.0], [0.0, -1.0]];
    /// let loss = CombinedMargin::new()
    ///     .with_scale(8.0)?
    ///     .with_margins(1.2, 0.3, 0.1)?
    ///     .forward(Embeddings { embeddings: e.view(), weight: w.view() }, array![0_usize].view())?;
    /// let t = 8.0 * ((1.2 * std::f64::consts::FRAC_PI_4 + 0.3).cos() - 0.1);
    /// let o = -8.0 * 0.5_f64.sqrt();
    /// assert!((loss - (1.0 + (o - t).exp()).ln()).abs() < 1e-12);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// - insightface `CombinedMarginLoss`,
    ///   <https://github.com/deepinsight/insightface/blob/master/recognition/arcface_torch/losses.py>
    ///   (its PyTorch version supports only `m1 = 1` and ignores `m2` when
    ///   `m3 > 0`; this type computes the full formula, as its MXNet version did).
    /// - J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular
    ///   Margin Loss for Deep Face Recognition", CVPR 2019 (section on the
    ///   combined margin), <https://arxiv.org/abs/1801.07698>.
    /// - W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj, L. Song, "SphereFace: Deep
    ///   Hypersphere Embedding for Face Recognition", CVPR 2017,
    ///   <https://arxiv.org/abs/1704.08063>.
    /// - H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
    ///   Recognition", CVPR 2018, <https://arxiv.org/abs/1801.09414>.
    #[derive(PartialEq)]
    pub struct CombinedMargin {
        /// The scale `s`.
        scale: f64 = 64.0,
            /// Sets the scale `s`, finite and `> 0` (default 64).
            set with_scale checked by positive;
        m1: f64 = 1.0;
        m2: f64 = 0.5;
        m3: f64 = 0.0;
        /// Whether the easy margin is on.
        easy_margin: bool = false,
            /// Applies the margin only where `cos > 0` (default false).
            set with_easy_margin;
    }

    /// The combined margin with mean reduction, `scale` 64, margins
    /// `(1, 0.5, 0)` (ArcFace), no easy margin.
    fn new();
}

/// The largest multiplicative margin `m1` accepted.
const MAX_M1: f64 = 100.0;

impl CombinedMargin {
    /// Sets the margins: multiplicative `m1` in `(0, 100]`, additive angular
    /// `m2` in `[0, pi)`, additive cosine `m3 >= 0` (default `(1, 0.5, 0)`).
    ///
    /// `m1` is bounded so that `m1 theta`, its slope `m1^2` and the scale
    /// times them stay far inside `f32`'s range; above about 100 the
    /// margin's region `theta < (pi - m2) / m1` is under 0.03 radians, finer
    /// than `f32` embeddings resolve (SphereFace uses up to 4).
    pub fn with_margins(mut self, m1: f64, m2: f64, m3: f64) -> Result<Self> {
        check_option("m1", m1, "a number in (0, 100]", m1 > 0.0 && m1 <= MAX_M1)?;
        angle("m2", m2)?;
        non_negative("m3", m3)?;
        (self.m1, self.m2, self.m3) = (m1, m2, m3);
        Ok(self)
    }

    /// The margins `(m1, m2, m3)`.
    pub fn margins(&self) -> (f64, f64, f64) {
        (self.m1, self.m2, self.m3)
    }
}

impl Sealed for CombinedMargin {
    fn spec(&self) -> Spec {
        Spec::new(self.reduction, self.scale, self.margins(), self.easy_margin)
    }
}
