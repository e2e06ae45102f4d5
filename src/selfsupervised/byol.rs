//! BYOL's regression loss (Grill et al. 2020).

use ndarray::Array1;

use crate::base::loss::{ByProbs, Call, Compute, Rows};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{expect_samples_and_features, expect_shape};
use crate::selfsupervised::engine::UnitRows;
use crate::{Float, Result};

loss_options! {
    /// BYOL's loss: the squared distance between the normalized prediction
    /// of the online network and the normalized projection of the target
    /// network, `2 - 2 cos(p, z)`.
    ///
    /// Use it for self-supervised learning without negatives (BYOL,
    /// SimSiam): the target projections come from a slowly moving average
    /// of the network (or a stop-gradient branch) and get no gradient.
    /// Symmetrize as the paper does by adding the loss with the views
    /// swapped.
    ///
    /// Every embedding input has its gradient: the loss is symmetric in `p`
    /// and `z`, so where the targets are to be trained too (a variant
    /// without the stop-gradient), their gradient is `backward(z, p)`.
    ///
    /// # Formula
    /// ```text
    /// p^_i = p_i / max(|p_i|, 1e-12),  z^_i = z_i / max(|z_i|, 1e-12)   (F.normalize)
    /// l_i  = |p^_i - z^_i|^2 = 2 - 2 p^_i . z^_i
    /// d l_i / d p_i = -2 (z^_i - (z^_i . p^_i) p^_i) / |p_i|
    /// ```
    /// Computed in `f64`; rows beyond `1e150` are scaled by a power of two
    /// first, so every finite input gives a finite value in `[0, 4]` (a
    /// zero row has cosine 0 and value 2, with PyTorch's finite gradient
    /// `-2 z^ / 1e-12`).
    ///
    /// # Shapes
    /// - input: `predictions` `(N, D)`; target: `targets` `(N, D)`, the
    ///   target network's projections, constants.
    /// - per-sample: `(N)`; gradient: `(N, D)`, for the predictions.
    /// - `Mean` divides by `N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    ///
    /// # Errors
    /// No sample or no feature ([`crate::Error::EmptyBatch`]); targets or a
    /// gradient buffer of another shape ([`crate::Error::ShapeMismatch`]
    /// naming `targets` or `grad`).
    ///
    /// # Examples
    /// ```
    /// use classloss::{Byol, Differentiable, Loss};
    /// use ndarray::array;
    ///
    /// let p = array![[1.0_f64, 0.0], [1.0, 1.0]];
    /// let z = array![[0.0, 3.0], [2.0, 2.0]];
    /// // Orthogonal: 2; parallel: 0; mean 1.
    /// let (value, grad) = Byol::new().forward_backward(&p, &z)?;
    /// assert!((value - 1.0).abs() < 1e-15);
    /// assert_eq!(grad.row(0).to_vec(), vec![0.0, -1.0]);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// J.-B. Grill et al., "Bootstrap Your Own Latent: A New Approach to
    /// Self-Supervised Learning", NeurIPS 2020,
    /// <https://arxiv.org/abs/2006.07733>.
    #[derive(Copy, PartialEq, Eq)]
    pub struct Byol {}

    /// BYOL's loss: mean reduction.
    fn new();
}

impl<F: Float> Compute<F> for Byol {
    type Sig = Rows<ByProbs>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: p,
            target: t,
            mut grad,
            mut per,
        } = call;
        let shape = p.shape();
        expect_samples_and_features("predictions", shape)?;
        expect_shape("targets", t.shape(), shape)?;
        if let Some(g) = &grad {
            expect_shape("grad", g.shape(), shape)?;
        }
        let (n, d) = p.dim();
        let factor: f64 = self.reduction.grad_scale(n as f64);
        let (p_hat, z_hat) = (UnitRows::new(&p), UnitRows::new(&t));
        let mut d_hat = Array1::<f64>::zeros(d);
        let mut sum = Sum::default();
        for (i, (a, b)) in p_hat.u.rows().into_iter().zip(z_hat.u.rows()).enumerate() {
            let value = 2.0 - 2.0 * a.dot(&b);
            sum.add::<F>(i, value);
            if let Some(p) = per.as_mut() {
                p[i] = F::lit(value);
            }
            if let Some(g) = grad.as_mut() {
                d_hat.zip_mut_with(&b, |d, &z| *d = -2.0 * factor * z);
                let mut g_i = g.row_mut(i);
                p_hat.backward_row(i, d_hat.view(), 1.0, |k, v| {
                    g_i[k] = sum.grad_entry(i, v);
                });
            }
        }
        Ok(Totals {
            sum,
            divisor: n as f64,
            what: "predictions",
        })
    }
}
