//! The cosine embedding loss on pairs of embeddings.

use crate::base::loss::{Call, Compute};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::metric::pairs::{Pairs, check_signed_pairs};
use crate::{Float, Result};

/// PyTorch's `EPSILON` added to each squared norm in
/// `cosine_embedding_loss` (it matters only for rows near zero).
const EPS: f64 = 1e-12;

/// Rows whose largest entry is beyond this are scaled down by a power of
/// two first: their squares would pass `f64`. The cosine does not change
/// (next to such norms `EPS` is nothing), and the gradient is scaled back.
const LARGE: f64 = 1e150;

loss_options! {
    /// The cosine embedding loss of pairs of embeddings: PyTorch's
    /// `nn.CosineEmbeddingLoss`. Similar pairs (`y = 1`) are pulled to
    /// cosine 1; dissimilar ones (`y = -1`) pushed below the margin.
    ///
    /// Use it to learn embeddings compared by angle (retrieval, siamese
    /// networks) when the data come as labeled pairs; unlike
    /// [`crate::Contrastive`] it ignores the embeddings' norms.
    ///
    /// # Formula
    /// ```text
    /// cos_i = x1_i . x2_i / sqrt((|x1_i|^2 + eps) (|x2_i|^2 + eps)),  eps = 1e-12
    /// l_i   = 1 - cos_i                  if y_i = 1
    ///         max(0, cos_i - margin)     if y_i = -1
    /// d cos_i / d x1_i = x2_i / sqrt(..) - cos_i x1_i / (|x1_i|^2 + eps)   (and symmetrically)
    /// ```
    /// `eps` is PyTorch's, so rows near zero give PyTorch's values; a pair
    /// at the margin exactly (`cos = margin`) has gradient 0, as PyTorch's.
    ///
    /// # Shapes
    /// - input: [`crate::Pair`] of `x1`, `x2`, both `(N, D)`; labels `(N)`
    ///   in `{-1, +1}`, the embeddings' element type.
    /// - per-sample: `(N)`; gradient: [`crate::PairGrad`], one `(N, D)`
    ///   array per embedding.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `margin`: a cosine in `[-1, 1]` (default 0; PyTorch suggests 0 to
    ///   0.5).
    ///
    /// # Errors
    /// An empty batch or zero features, `x2`, labels or gradient buffers
    /// of another shape, a label other than `-1` or `+1`
    /// ([`crate::Error::InvalidTarget`] naming `labels`), and a margin
    /// outside `[-1, 1]` at construction. Every finite input gives a
    /// finite value and gradient: a row whose entries pass `1e150` is
    /// scaled by a power of two first.
    ///
    /// # Examples
    /// ```
    /// use classloss::{CosineEmbedding, Differentiable, Loss, Pair};
    /// use ndarray::array;
    ///
    /// let x1 = array![[1.0_f64, 0.0], [1.0, 1.0]];
    /// let x2 = array![[0.0, 2.0], [2.0, 2.0]];
    /// let labels = array![1.0, -1.0];
    /// let loss = CosineEmbedding::new().with_margin(0.5)?;
    /// let pair = Pair { x1: x1.view(), x2: x2.view() };
    /// // Orthogonal but similar: 1 - 0; parallel but dissimilar: 1 - 0.5.
    /// let value = loss.forward(pair, labels.view())?;
    /// assert!((value - 0.75).abs() < 1e-12);
    /// let grad = loss.backward(pair, labels.view())?;
    /// assert_eq!(grad.x1.dim(), (2, 2));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.CosineEmbeddingLoss`,
    /// <https://pytorch.org/docs/stable/generated/torch.nn.CosineEmbeddingLoss.html>.
    #[derive(PartialEq)]
    pub struct CosineEmbedding {
        /// The margin dissimilar pairs' cosine must stay below.
        margin: f64 = 0.0,
            /// Sets the margin, a cosine in `[-1, 1]` (default 0).
            set with_margin checked by cosine;
    }

    /// The cosine embedding loss: mean reduction, margin 0.
    fn new();
}

impl<F: Float> Compute<F> for CosineEmbedding {
    type Sig = Pairs;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: pair,
            target: labels,
            mut grad,
            mut per,
        } = call;
        check_signed_pairs(&pair, &labels, grad.as_ref())?;
        let (x1, x2) = (pair.x1, pair.x2);
        let n = x1.nrows();
        let scale = self.reduction.grad_scale::<f64>(n as f64);
        let mut sum = Sum::default();
        for (i, ((a, b), &y)) in x1
            .rows()
            .into_iter()
            .zip(x2.rows())
            .zip(&labels)
            .enumerate()
        {
            let (a, sa) = scaled_row(a.iter().map(|v| v.as_f64()));
            let (b, sb) = scaled_row(b.iter().map(|v| v.as_f64()));
            let dot: f64 = a.iter().zip(&b).map(|(p, q)| p * q).sum();
            let m1 = a.iter().map(|v| v * v).sum::<f64>() + EPS;
            let m2 = b.iter().map(|v| v * v).sum::<f64>() + EPS;
            // Two roots, not the root of the product (PyTorch's form): the
            // product of two scaled rows' squared norms would pass f64.
            let denom = m1.sqrt() * m2.sqrt();
            let cos = dot / denom;
            // `sign` is d l / d cos: -1 for a similar pair, +1 for a
            // dissimilar one above the margin, 0 otherwise.
            let (value, sign) = if y == F::one() {
                (1.0 - cos, -1.0)
            } else if cos > self.margin {
                (cos - self.margin, 1.0)
            } else {
                (0.0, 0.0)
            };
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                let f = scale * sign;
                let mut g1 = g.x1.row_mut(i);
                let mut g2 = g.x2.row_mut(i);
                for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                    // A scaled row's cosine has the gradient of the row
                    // times its scale.
                    let d1 = if f == 0.0 {
                        0.0
                    } else {
                        f * sa * (q / denom - cos * p / m1)
                    };
                    let d2 = if f == 0.0 {
                        0.0
                    } else {
                        f * sb * (p / denom - cos * q / m2)
                    };
                    g1[k] = sum.grad_entry(i, d1);
                    g2[k] = sum.grad_entry(i, d2);
                }
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "x1",
        })
    }
}

/// A row in `f64`, scaled by a power of two when its largest entry passes
/// [`LARGE`], and the scale.
pub(crate) fn scaled_row(row: impl Iterator<Item = f64>) -> (Vec<f64>, f64) {
    let mut v: Vec<f64> = row.collect();
    let largest = v.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    if largest <= LARGE {
        return (v, 1.0);
    }
    // 2^-e with 2^e >= largest / 2^400: the largest entry lands in
    // [2^399, 2^400], whose square still fits f64 with D up to 2^223.
    let e = largest.log2().ceil() - 400.0;
    let s = (-e).exp2();
    v.iter_mut().for_each(|x| *x *= s);
    (v, s)
}
