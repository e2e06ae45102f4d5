//! CosFace: additive cosine margin softmax (Wang et al., CVPR 2018).

use super::angular::{Spec, check_scale};
use crate::base::validate::non_negative;
use crate::{Reduction, Result};

/// CosFace (large margin cosine loss): cross-entropy on scaled cosines
/// between normalized embeddings and normalized class weights, with a
/// margin `m` subtracted from the cosine of the true class.
///
/// Use it, like [`ArcFace`](super::ArcFace), to learn embeddings compared by
/// cosine similarity (faces, speakers, re-identification). Its margin is
/// constant in cosine, so the target logit stays a smooth, monotone function
/// of the angle everywhere and needs no fallback; ArcFace's margin is
/// constant in angle instead.
///
/// # Formula
/// ```text
/// cos_ij = <e_i, w_j> / (|e_i| |w_j|)
/// z_ij   = s cos_ij (j != y_i),   z_iy = s (cos_iy - m)
/// l_i    = -log softmax(z_i)_{y_i}
/// ```
/// The gradient flows to the embeddings and to the class weights through
/// the normalization. Its derivative has no `1 / sin(theta)` (unlike
/// ArcFace's), so its gradient is as accurate for an embedding nearly
/// parallel to its class weight as anywhere else, in `f32` too.
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
/// - `scale` `s`: finite, `> 0` (default 64, as the paper).
/// - `margin` `m`: finite, `>= 0` (default 0.35, as the paper; insightface
///   uses 0.4).
///
/// # Errors
/// An empty batch, feature or class axis; `weight` with another `D` than
/// the embeddings; labels of the wrong length or `>= C`; a row of zero norm
/// in `embeddings` or `weight` ([`Error::InvalidInput`](crate::Error::InvalidInput)
/// naming the row); a gradient buffer of the wrong shape. Options: a
/// `scale` that is not finite and positive, a negative or non-finite
/// `margin`.
///
/// # Examples
/// ```
/// use classloss::{CosFace, Embeddings, Loss};
/// use ndarray::array;
///
/// let e = array![[1.0_f64, 1.0]];                 // cos to class 0: 1/sqrt(2), to class 1: 0
/// let w = array![[5.0, 0.0], [0.0, -1.0]];
/// let cos0 = 0.5_f64.sqrt();
/// let cosface = CosFace::new().with_scale(10.0)?.with_margin(0.2)?;
/// let loss = cosface.forward(
///     Embeddings { embeddings: e.view(), weight: w.view() },
///     array![0_usize].view(),
/// )?;
/// // logits [10 (cos0 - 0.2), -10 cos0]
/// let (t, o) = (10.0 * (cos0 - 0.2), -10.0 * cos0);
/// assert!((loss - (1.0 + (o - t).exp()).ln()).abs() < 1e-12);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu,
/// "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018,
/// <https://arxiv.org/abs/1801.09414>.
#[derive(Clone, Debug, PartialEq)]
pub struct CosFace {
    pub(crate) spec: Spec,
}

impl CosFace {
    /// CosFace with mean reduction, `scale` 64, `margin` 0.35.
    pub fn new() -> Self {
        CosFace {
            spec: Spec {
                reduction: Reduction::Mean,
                scale: 64.0,
                m1: 1.0,
                m2: 0.0,
                m3: 0.35,
                easy_margin: false,
            },
        }
    }

    /// The reduction (also [`Loss::reduction`](crate::Loss::reduction),
    /// which needs the element type to be known).
    pub fn reduction(&self) -> Reduction {
        self.spec.reduction
    }

    /// Sets the reduction (default `Mean`).
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.spec.reduction = reduction;
        self
    }

    /// Sets the scale `s`, finite and `> 0` (default 64).
    pub fn with_scale(mut self, scale: f64) -> Result<Self> {
        check_scale(scale)?;
        self.spec.scale = scale;
        Ok(self)
    }

    /// Sets the cosine margin `m`, finite and `>= 0` (default 0.35).
    pub fn with_margin(mut self, margin: f64) -> Result<Self> {
        non_negative("margin", margin)?;
        self.spec.m3 = margin;
        Ok(self)
    }

    /// The scale `s`.
    pub fn scale(&self) -> f64 {
        self.spec.scale
    }

    /// The cosine margin `m`.
    pub fn margin(&self) -> f64 {
        self.spec.m3
    }
}

impl Default for CosFace {
    fn default() -> Self {
        Self::new()
    }
}

impl super::angular::sealed::Sealed for CosFace {
    fn spec(&self) -> Spec {
        self.spec
    }
}
