//! CosFace: additive cosine margin softmax (Wang et al., CVPR 2018).

use super::angular::{Sealed, Spec};
use crate::base::options::loss_options;

loss_options! {
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
    #[derive(PartialEq)]
    pub struct CosFace {
        /// The scale `s`.
        scale: f64 = 64.0,
            /// Sets the scale `s`, finite and `> 0` (default 64).
            set with_scale checked by positive;
        /// The cosine margin `m`.
        margin: f64 = 0.35,
            /// Sets the cosine margin `m`, finite and `>= 0` (default 0.35).
            set with_margin checked by non_negative;
    }

    /// CosFace with mean reduction, `scale` 64, `margin` 0.35.
    fn new();
}

impl Sealed for CosFace {
    fn spec(&self) -> Spec {
        let margins = (1.0, 0.0, self.margin);
        Spec::new(self.reduction, self.scale, margins, false)
    }
}
