//! Binary cross-entropy on probabilities, as PyTorch's `nn.BCELoss`.

use ndarray::{Array, ArrayD, Dimension, Ix2};

use crate::base::loss::{Call, Compute, Elementwise};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_probabilities;
use crate::engine::sigmoid_elementwise::{check_targets, elementwise, run_binary};
use crate::{Float, Result};

/// PyTorch clamps each log at -100 so that probabilities of exactly 0 or 1
/// give a finite loss.
const LOG_CLAMP: f64 = -100.0;

/// The floor of `p (1 - p)` in PyTorch's backward. PyTorch declares it as a
/// `float` constant, so in `f64` it is `1e-12` rounded to `f32`.
const GRAD_EPSILON: f64 = 1e-12_f32 as f64;

loss_options! {
    /// Binary cross-entropy between probabilities and targets in `[0, 1]`, with
    /// PyTorch's clamped logs, element weights and exact backward.
    ///
    /// Use it when the model already outputs probabilities (a sigmoid layer, a
    /// calibrated score). When you have logits, prefer [`crate::BceWithLogits`]:
    /// it is exact where `sigmoid` rounds to 0 or 1 and this loss has to clamp.
    ///
    /// # Formula
    /// ```text
    /// l = -w [ t max(ln p, -100) + (1 - t) max(ln(1 - p), -100) ]
    /// dl/dp = w (p - t) / max(p (1 - p), 1e-12)          (PyTorch's backward)
    /// ```
    /// `ln(1 - p)` is computed as `ln_1p(-p)`. `w` is 1 without weights. The
    /// clamp makes `p` exactly 0 or 1 finite (a term of at most `100 w`); the
    /// gradient there is PyTorch's, large (about `1e12`) but finite. The clamp is
    /// where the loss stops being the exact log-loss; the gradient ignores it,
    /// as PyTorch's does.
    ///
    /// # Shapes
    /// - probs: any shape of rank `>= 1`, typically `(N, K)` (one probability
    ///   per label of a multi-label problem); [`Bce::new`] takes `(N, K)`,
    ///   [`Bce::spatial`] any rank you pick with the type (`(N, K, d1, .., dk)`,
    ///   `IxDyn`, `Ix1` for `(N)`).
    /// - targets: the shape of `probs`, values in `[0, 1]` (soft labels allowed).
    /// - weight: any shape that broadcasts to `probs` (numpy rules: trailing
    ///   axes aligned, size-1 axes stretched): `(K)` per label, `(N, 1)` per
    ///   sample, `(N, K)` per element.
    /// - per-sample: shaped like `probs`, one value per element; gradient: the
    ///   shape of `probs`.
    /// - `Mean` divides by the number of elements of `probs` (not by the sum of
    ///   the weights), as PyTorch.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `weight`: finite weights `>= 0` broadcast to the input (default none).
    ///   Its shape is checked at each call, against that call's input.
    ///
    /// # Errors
    /// `probs` of rank 0 or with no element; `targets` or the gradient buffer of
    /// another shape; a `weight` that does not broadcast to `probs`
    /// (`ShapeMismatch` naming `weight`); a probability outside `[0, 1]` or NaN
    /// (`InvalidTarget` naming `probs`); a target outside `[0, 1]`
    /// (`InvalidTarget` naming `targets`); a negative or non-finite weight (from
    /// [`Bce::with_weight`]).
    ///
    /// # Examples
    /// ```
    /// use classloss::{Bce, Differentiable, Loss};
    /// use ndarray::array;
    ///
    /// let probs = array![[0.8_f64, 0.3]];
    /// let targets = array![[1.0, 0.0]];
    /// let bce = Bce::new();
    /// let loss = bce.forward(probs.view(), targets.view())?;
    /// assert!((loss - 0.289909247626471).abs() < 1e-12); // (-ln 0.8 - ln 0.7) / 2
    ///
    /// // Exact 0 and 1 are finite thanks to the clamp at -100.
    /// let hard = bce.forward(array![[0.0, 1.0]].view(), targets.view())?;
    /// assert_eq!(hard, 100.0);
    ///
    /// // Per-label weights broadcast over the batch.
    /// let weighted = Bce::new().with_weight(array![2.0, 0.0])?;
    /// let (value, grad) = weighted.forward_backward(probs.view(), targets.view())?;
    /// assert!((value - 0.8_f64.ln() * -2.0 / 2.0).abs() < 1e-12);
    /// assert_eq!(grad[[0, 1]], 0.0);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.BCELoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.BCELoss.html>).
    pub struct Bce<F: Float, D: Dimension = Ix2> {
        /// The element weights, if any.
        weight: Option<ArrayD<F>> = None,
            /// Sets element weights (finite, `>= 0`; default none) of any shape that
            /// broadcasts to the input: `(K)`, `(N, 1)`, `(N, K)`, ... The shape is
            /// checked at each call.
            set with_weight<E: Dimension>(Array<F, E> as ArrayD<F>) checked by element_weights;
    }

    /// BCE on probabilities of any rank `>= 1`, picked with the type, for
    /// example `Bce::<f32, ndarray::Ix4>::spatial()` for `(N, K, H, W)`
    /// masks or `IxDyn`. Mean reduction, no weights.
    fn spatial();
    /// BCE on `(N, K)` probabilities: mean reduction, no weights.
    fn new() at Ix2;
}

impl<F: Float, D: Dimension> Compute<F> for Bce<F, D> {
    type Sig = Elementwise<D>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let clamp = F::lit(LOG_CLAMP);
        let eps = F::lit(GRAD_EPSILON);
        run_binary(
            ["probs", "targets"],
            self.reduction,
            call,
            self.weight.as_ref(),
            |e| {
                check_probabilities("probs", &e.input, "a probability in [0, 1]")?;
                check_targets(&e.targets)?;
                let (probs, targets) = (e.input, e.targets);
                Ok(elementwise(
                    probs,
                    targets,
                    e.weight,
                    None,
                    e.grad,
                    e.per,
                    |p, t, w, _| {
                        let log_p = p.ln().max(clamp);
                        let log_1mp = (-p).ln_1p().max(clamp);
                        // PyTorch's exact arrangement, so values agree to rounding.
                        let loss = w.as_f64() * ((t - F::one()) * log_1mp - t * log_p).as_f64();
                        let d =
                            w.as_f64() * (p - t).as_f64() / ((F::one() - p) * p).max(eps).as_f64();
                        (loss, d)
                    },
                ))
            },
        )
    }
}
