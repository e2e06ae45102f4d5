//! NT-Xent, SimCLR's contrastive loss (Chen et al. 2020).

use crate::base::loss::{Call, Compute, Rows, Unlabeled};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::{expect_samples_and_features, fmt_shape};
use crate::selfsupervised::engine::contrast;
use crate::{Error, Float, Result};

loss_options! {
    /// NT-Xent (normalized temperature-scaled cross-entropy), the
    /// contrastive loss of SimCLR: each embedding must pick out the other
    /// view of its own example among every other embedding of the batch.
    ///
    /// Use it for self-supervised pre-training on pairs of augmented views,
    /// without labels. With labels, [`crate::SupervisedContrastive`] is the
    /// same loss with every same-label embedding a positive.
    ///
    /// # Formula
    /// ```text
    /// u_i  = z_i / max(|z_i|, 1e-12)                 (PyTorch's F.normalize)
    /// s_ik = u_i . u_k / tau
    /// l_i  = -log( exp(s_ip) / sum_{k != i} exp(s_ik) ),   p = (i + N) mod 2N
    /// ```
    /// Row `i` and row `i + N` are the two views of one example: stack the
    /// batch of first views over the batch of second views. Computed in
    /// `f64` as `(c_max - c_ip) / tau + log sum_{k != i} exp((c_ik - c_max) / tau)`
    /// (`c` the cosines, `c_max` row `i`'s largest off the diagonal), so no
    /// exponential passes 1 at any temperature. The gradient goes through
    /// the normalization: rows of any norm give the same value, and a zero
    /// row (cosine 0 with every row) a finite one.
    ///
    /// # Shapes
    /// - input: `embeddings` `(2N, D)`, `N >= 1`; target: `()`.
    /// - per-sample: `(2N)`, one value per row; gradient: `(2N, D)`.
    /// - `Mean` divides by `2N`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `temperature` `tau`: finite, `> 0` (default 0.5, lightly's
    ///   `NTXentLoss`; SimCLR tunes it between 0.1 and 1).
    ///
    /// # Errors
    /// No row or no feature ([`Error::EmptyBatch`]); an odd number of rows
    /// ([`Error::ShapeMismatch`] naming `embeddings`); a gradient buffer of
    /// another shape (naming `grad`); a temperature that is not finite and
    /// `> 0` at construction. A finite batch whose value or gradient does
    /// not fit the float type (a temperature near 0) is
    /// [`Error::Overflow`], never an infinite value.
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, Loss, NtXent};
    /// use ndarray::array;
    ///
    /// // Two examples, two views each: rows 0 and 2, rows 1 and 3.
    /// let z = array![[1.0_f64, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 1.0]];
    /// let loss = NtXent::new().with_temperature(0.5)?;
    /// // Every row: cosine 1 with its positive, 0 with the other two.
    /// let value = loss.forward(&z, ())?;
    /// assert!((value - (1.0 + 2.0 * (-2.0_f64).exp()).ln()).abs() < 1e-12);
    /// let grad = loss.backward(&z, ())?;
    /// assert_eq!(grad.dim(), (4, 2));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for
    /// Contrastive Learning of Visual Representations", ICML 2020,
    /// <https://arxiv.org/abs/2002.05709>.
    #[derive(PartialEq)]
    pub struct NtXent {
        /// The temperature `tau`.
        temperature: f64 = 0.5,
            /// Sets the temperature `tau`, finite and `> 0` (default 0.5).
            set with_temperature checked by positive;
    }

    /// NT-Xent: mean over the `2N` rows, temperature 0.5.
    fn new();
}

impl<F: Float> Compute<F> for NtXent {
    type Sig = Rows<Unlabeled>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input: z,
            target: (),
            grad,
            per,
        } = call;
        expect_samples_and_features("embeddings", z.shape())?;
        let (rows, d) = z.dim();
        if rows % 2 != 0 {
            return Err(Error::ShapeMismatch {
                what: "embeddings",
                expected: format!("[2N, {d}] (an even number of rows)"),
                actual: fmt_shape(z.shape()),
            });
        }
        // Row i's one positive is row (i + N) mod 2N: the rows of one
        // example form a group of two.
        let n = rows / 2;
        let groups: Vec<i128> = (0..rows).map(|i| (i % n) as i128).collect();
        contrast(z, &groups, self.temperature, self.reduction, grad, per)
    }
}
