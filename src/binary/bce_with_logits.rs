//! Binary cross-entropy from logits, as PyTorch's `nn.BCEWithLogitsLoss`.

use ndarray::{Array, Array1, ArrayD, Dimension, Ix2};

use crate::base::loss::{Call, Compute, Elementwise};
use crate::base::options::loss_options;
use crate::base::reduction::Totals;
use crate::base::validate::check_class_vector;
use crate::engine::sigmoid_elementwise::{Logistic, LogitTerm, elementwise_logits, run_binary};
use crate::{Float, Result};

loss_options! {
    /// Binary cross-entropy between `sigmoid(logits)` and targets in `[0, 1]`,
    /// computed from the logits without overflow or cancellation, with
    /// PyTorch's element weights and per-class `pos_weight`.
    ///
    /// Use it for binary and multi-label classification (one independent
    /// yes/no per label): it is the stable way to train a sigmoid output.
    /// `pos_weight > 1` raises recall of a rare positive class (PyTorch's
    /// suggestion is `negatives / positives` per class).
    ///
    /// # Formula
    /// ```text
    /// l     = w [ (1 - t) softplus(x) + pw t softplus(-x) ]
    /// dl/dx = w [ (1 - t) sigmoid(x)  - pw t sigmoid(-x)  ]
    /// ```
    /// with `softplus(x) = ln(1 + e^x) = -ln sigmoid(-x)`, `w` the element
    /// weight and `pw` the positive weight of the element's class (both 1 when
    /// unset). This equals PyTorch's `(1 - t) x + (1 + (pw - 1) t) ln(1 + e^-x)`
    /// (with `ln(1 + e^-x)` taken stably) term for term, but every product is of
    /// two non-negative numbers, so there is no cancellation: the loss and
    /// gradient are accurate for any finite logit, a tiny gradient such as
    /// `sigmoid(-88)` keeps its digits, and the loss is finite whenever its true
    /// value (at most `w max(1, pw) |x| + w ln 2`) fits the type, for `f32`
    /// logits of `±1e30` and beyond.
    ///
    /// # Shapes
    /// - logits: any shape of rank `>= 1`, typically `(N, K)`; [`BceWithLogits::new`]
    ///   takes `(N, K)`, [`BceWithLogits::spatial`] any rank picked with the type.
    /// - targets: the shape of `logits`, values in `[0, 1]` (soft labels allowed).
    /// - weight: any shape that broadcasts to `logits` (numpy rules): `(K)`,
    ///   `(N, 1)`, `(N, K)`, ...
    /// - pos_weight: `(K)` where `K` is the **last** dimension of `logits` (or
    ///   `(1)`, one weight for all); it is broadcast along the last axis, as
    ///   PyTorch broadcasts it. (For a class
    ///   axis elsewhere, as in `(N, C, H, W)`, PyTorch needs `(C, 1, 1)`; here use
    ///   a layout with the classes last, or an element `weight`.)
    /// - per-sample: shaped like `logits`, one value per element; gradient: the
    ///   shape of `logits`.
    /// - `Mean` divides by the number of elements of `logits`.
    ///
    /// # Options
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `weight`: finite weights `>= 0` broadcast to the input (default none).
    /// - `pos_weight`: one finite weight `>= 0` per class (last axis), or a
    ///   single one, for the positive term (default none, which is all ones).
    ///
    /// Both shapes are checked at each call, against that call's input.
    ///
    /// # Errors
    /// `logits` of rank 0 or with no element; `targets` or the gradient buffer
    /// of another shape; a `weight` that does not broadcast to `logits`
    /// (`ShapeMismatch` naming `weight`); a `pos_weight` whose length is neither
    /// 1 nor the last dimension (`ShapeMismatch` naming `pos_weight`); a target outside
    /// `[0, 1]` or NaN (`InvalidTarget` naming `targets`); a negative or
    /// non-finite weight (from the builders).
    ///
    /// # Examples
    /// ```
    /// use classloss::{BceWithLogits, Differentiable, Loss};
    /// use ndarray::array;
    ///
    /// let logits = array![[1.5_f64, -0.5]];
    /// let targets = array![[1.0, 0.0]];
    /// let loss = BceWithLogits::new().forward(logits.view(), targets.view())?;
    /// assert!((loss - 0.33774513108142956).abs() < 1e-12);
    ///
    /// // Positive class 0 counts twice.
    /// let weighted = BceWithLogits::new().with_pos_weight(array![2.0, 1.0])?;
    /// let (value, grad) = weighted.forward_backward(logits.view(), targets.view())?;
    /// assert!((value - 0.4384517700728058).abs() < 1e-12);
    /// assert!(grad[[0, 0]] < 0.0 && grad[[0, 1]] > 0.0);
    ///
    /// // Extreme logits stay finite in f32.
    /// let huge = BceWithLogits::new().forward(array![[1e30_f32]].view(), array![[0.0]].view())?;
    /// assert_eq!(huge, 1e30);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.BCEWithLogitsLoss`
    /// (<https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html>).
    pub struct BceWithLogits<F: Float, D: Dimension = Ix2> {
        /// The element weights, if any.
        weight: Option<ArrayD<F>> = None,
            /// Sets element weights (finite, `>= 0`; default none) of any shape that
            /// broadcasts to the input. The shape is checked at each call.
            set with_weight<E: Dimension>(Array<F, E> as ArrayD<F>) checked by element_weights;
        /// The per-class positive weights, if any.
        pos_weight: Option<Array1<F>> = None,
            /// Sets one weight of the positive term per class of the last axis, or
            /// one for all classes (finite, `>= 0`; default none). The length is
            /// checked at each call.
            set with_pos_weight(Array1<F>) checked by weights;
    }

    /// BCE-with-logits on logits of any rank `>= 1`, picked with the type,
    /// for example `BceWithLogits::<f32, ndarray::IxDyn>::spatial()`. Mean
    /// reduction, no weights.
    fn spatial();
    /// BCE-with-logits on `(N, K)` logits: mean reduction, no weights.
    fn new() at Ix2;
}

impl<F: Float, D: Dimension> Compute<F> for BceWithLogits<F, D> {
    type Sig = Elementwise<D>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        run_binary(
            ["logits", "targets"],
            self.reduction,
            call,
            self.weight.as_ref(),
            |e| {
                let dim = e.input.raw_dim();
                let pos_weight = match &self.pos_weight {
                    None => None,
                    Some(pw) => {
                        let classes = dim.slice()[dim.ndim() - 1];
                        // Length 1 broadcasts too, as in PyTorch (one weight for
                        // every class, the usual form for `(N)` binary logits).
                        if pw.len() != 1 {
                            check_class_vector("pos_weight", pw.len(), classes)?;
                        }
                        Some(
                            pw.broadcast(dim.clone())
                                .expect("a vector of length 1 or of the last axis broadcasts"),
                        )
                    }
                };
                let (logits, targets) = (e.input, e.targets);
                let (weight, grad, per) = (e.weight, e.grad, e.per);
                elementwise_logits(logits, targets, weight, pos_weight, grad, per, &BceTerm)
            },
        )
    }
}

/// One element of BCE with logits.
#[derive(Clone, Copy)]
struct BceTerm;

impl LogitTerm for BceTerm {
    const TARGETS_IN_UNIT: bool = true;

    #[inline(always)]
    fn term<T: Float>(&self, x: T, t: T, w: T, pw: T, logistic: Logistic<T>) -> (T, T) {
        if w == T::zero() && x.is_finite() {
            // A weight of 0 costs nothing, even where `pw t softplus(-x)`
            // passes the type's range (0 * inf would be NaN).
            return (T::zero(), T::zero());
        }
        let (loss, d) = if pw == T::one() {
            // Folded away where the weight is the literal 1 (no weights).
            logistic.cross_entropy_of_target(x, t)
        } else {
            logistic.cross_entropy(x, T::one() - t, pw * t)
        };
        (w * loss, w * d)
    }
}
