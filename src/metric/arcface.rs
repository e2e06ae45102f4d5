//! ArcFace: additive angular margin softmax (Deng et al., CVPR 2019).

use super::angular::{Sealed, Spec};
use crate::base::options::loss_options;

loss_options! {
    /// ArcFace, the additive angular margin loss: cross-entropy on scaled
    /// cosines between normalized embeddings and normalized class weights, with
    /// the angle to the true class widened by a margin `m`.
    ///
    /// Use it to learn embeddings for open-set recognition (faces, speakers,
    /// re-identification): the classes seen in training are only a means, and
    /// the margin makes each class occupy a tight cone on the hypersphere, so
    /// that cosine similarity separates identities never seen in training.
    /// [`CosFace`](super::CosFace) puts the margin on the cosine instead,
    /// [`CombinedMargin`](super::CombinedMargin) combines both with
    /// SphereFace's multiplicative margin.
    ///
    /// # Formula
    /// ```text
    /// cos_ij   = <e_i, w_j> / (|e_i| |w_j|),  theta_ij = acos(cos_ij)
    /// phi(c)   = cos(theta + m) = c cos m - sqrt(1 - c^2) sin m   if c > cos(pi - m)
    ///          = c - m sin m                                      if c <= cos(pi - m)  (fallback)
    /// easy_margin: phi(c) = cos(theta + m) if c > 0, else c
    /// z_ij     = s cos_ij (j != y_i),   z_iy = s phi(cos_iy)
    /// l_i      = -log softmax(z_i)_{y_i}
    /// ```
    /// The fallback keeps the target logit decreasing in `theta` past
    /// `theta = pi - m`, where `cos(theta + m)` would turn back up; it is
    /// insightface's (and the reference cases'), including its jump at the
    /// threshold. The gradient flows to the embeddings and to the class weights
    /// through the normalization.
    ///
    /// **At a cosine of exactly ±1** `d phi / d c = cos m + c sin m / sin(theta)`
    /// is infinite; there `sin(theta)` is treated as a constant and
    /// `d phi / d c = cos m` (the limit's finite part, and the exact value 1 at
    /// `m = 0`). The embedding and weight gradients do not depend on this
    /// choice, since `d cos / d e = 0` when `e` and `w` are parallel; the
    /// gradient of [`OnCosines`](super::OnCosines) does. Near ±1 (but not at it)
    /// the derivative is the true one, large but finite. An embedding and its
    /// class weight parallel to working precision (their normalized difference
    /// within `4 eps` of 0, the rounding of normalizing parallel rows) count as
    /// parallel.
    ///
    /// **Precision near `theta = 0`.** There the derivative's `sin m /
    /// sin(theta)` is large and `d cos / d e` small; their product, of size
    /// `sin m / |e|`, points from `e` towards `w_y` on the sphere. This type
    /// computes `sin(theta)` as the norm of the residual `w^ - cos e^` and uses
    /// that residual's unit direction, rather than `sqrt(1 - cos^2)`, whose
    /// error grows like `eps / theta^2` (in `f32`, 50% at `theta = 0.003`). What
    /// remains is inherent in rounding the normalized rows: one rounding
    /// (`eps`) turns the direction between two vectors `theta` apart by about
    /// `eps / theta`, so the target's part of the gradient carries a relative
    /// error of a few `eps / theta` (measured up to `5 eps / theta`): in `f32`
    /// (`eps = 1.2e-7`), below `1e-3` for `theta > 1e-3`, about `1e-2` at
    /// `theta = 1e-5`; in `f64` (`eps = 2.2e-16`) about `1e-6` at `theta =
    /// 1e-9`. Compute in `f64` where embeddings sit that close to their class.
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
    /// - `scale` `s`: finite, `> 0` (default 64, as insightface).
    /// - `margin` `m`: radians in `[0, pi)` (default 0.5, as the paper).
    /// - `easy_margin`: apply the margin only where `cos > 0` and keep the
    ///   plain cosine elsewhere, instead of the fallback (default false).
    ///
    /// # Errors
    /// An empty batch, feature or class axis; `weight` with another `D` than
    /// the embeddings; labels of the wrong length or `>= C`; a row of zero norm
    /// in `embeddings` or `weight` ([`Error::InvalidInput`](crate::Error::InvalidInput)
    /// naming the row: it has no direction to normalize); a gradient buffer of
    /// the wrong shape. Options: a `scale` that is not finite and positive, a
    /// `margin` outside `[0, pi)`.
    ///
    /// # Examples
    /// ```
    /// use classloss::{ArcFace, Differentiable, Embeddings, Loss};
    /// use ndarray::array;
    ///
    /// let e = array![[3.0_f64, 0.0]];                 // cos to class 0: 1, to class 1: 0
    /// let w = array![[1.0, 0.0], [0.0, 2.0]];
    /// let labels = array![0_usize];
    /// let arc = ArcFace::new().with_scale(4.0)?.with_margin(0.5)?;
    /// let input = Embeddings { embeddings: e.view(), weight: w.view() };
    /// let loss = arc.forward(input, labels.view())?;
    /// // logits [4 cos(0.5), 0]
    /// let t = 4.0 * 0.5_f64.cos();
    /// assert!((loss - (1.0 + (-t).exp()).ln()).abs() < 1e-12);
    ///
    /// let (_, grad) = arc.forward_backward(input, labels.view())?;
    /// assert_eq!(grad.embeddings.dim(), (1, 2));
    /// assert_eq!(grad.weight.dim(), (2, 2));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin
    /// Loss for Deep Face Recognition", CVPR 2019,
    /// <https://arxiv.org/abs/1801.07698>. The fallback and `easy_margin`:
    /// insightface's implementation,
    /// <https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch>
    /// (its current PyTorch `ArcFace` applies the margin under `no_grad`, a
    /// straight-through gradient; this crate differentiates the value it
    /// returns, as the classic `ArcMarginProduct` under autograd does).
    #[derive(PartialEq)]
    pub struct ArcFace {
        /// The scale `s`.
        scale: f64 = 64.0,
            /// Sets the scale `s`, finite and `> 0` (default 64).
            set with_scale checked by positive;
        /// The angular margin `m`.
        margin: f64 = 0.5,
            /// Sets the angular margin `m` in radians, in `[0, pi)` (default 0.5).
            set with_margin checked by angle;
        /// Whether the easy margin is on.
        easy_margin: bool = false,
            /// Applies the margin only where `cos > 0` (default false).
            set with_easy_margin;
    }

    /// ArcFace with mean reduction, `scale` 64, `margin` 0.5, no easy margin.
    fn new();
}

impl Sealed for ArcFace {
    fn spec(&self) -> Spec {
        let margins = (1.0, self.margin, 0.0);
        Spec::new(self.reduction, self.scale, margins, self.easy_margin)
    }
}
