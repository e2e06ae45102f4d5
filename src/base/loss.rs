//! The traits every loss implements.

use crate::{Float, Reduction, Result};

/// A loss: a value per sample and a reduced value.
///
/// Inputs and targets are cheap views (`ArrayView2`, or a small
/// struct of views for losses with several inputs), so a call never takes
/// ownership of the caller's data.
pub trait Loss<F: Float> {
    /// What the loss is computed from (logits, scores, embeddings, ...).
    type Input<'a>: Clone
    where
        F: 'a;
    /// What the input is compared with (labels, probabilities, flags, ...).
    type Target<'a>: Clone
    where
        F: 'a;
    /// The unreduced values: one per sample (per position for spatial inputs).
    type PerSample;

    /// The reduction `forward` applies.
    fn reduction(&self) -> Reduction;

    /// The unreduced loss values, whatever the reduction.
    fn per_sample(
        &self,
        input: Self::Input<'_>,
        target: Self::Target<'_>,
    ) -> Result<Self::PerSample>;

    /// The reduced loss: mean, sum, or (for [`Reduction::None`]) the sum.
    fn forward(&self, input: Self::Input<'_>, target: Self::Target<'_>) -> Result<F>;
}

/// A loss with an exact gradient.
///
/// Losses without a gradient (the 0-1 loss) do not implement this trait,
/// so asking for their gradient is a compile error rather than an array of
/// zeros.
pub trait Differentiable<F: Float>: Loss<F> {
    /// The gradient, shaped like the differentiable inputs (an array, or a
    /// struct of arrays for losses with several inputs).
    type Grad;
    /// A mutable view of a gradient buffer, which the fused call fills.
    type GradMut<'g>
    where
        F: 'g;

    /// A zeroed gradient buffer shaped for `input`.
    fn zeros_grad(&self, input: Self::Input<'_>) -> Self::Grad;

    /// A mutable view of an owned gradient buffer.
    fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_>;

    /// Computes the reduced loss and its gradient in one pass, writing the
    /// gradient into `grad`.
    ///
    /// `grad` is overwritten, never accumulated into, so a buffer reused
    /// across calls needs no clearing. Nothing of the input's size is
    /// allocated. The gradient is of the value returned: of the mean for
    /// [`Reduction::Mean`], of the sum otherwise.
    fn forward_backward_into(
        &self,
        input: Self::Input<'_>,
        target: Self::Target<'_>,
        grad: Self::GradMut<'_>,
    ) -> Result<F>;

    /// The reduced loss and a newly allocated gradient.
    fn forward_backward(
        &self,
        input: Self::Input<'_>,
        target: Self::Target<'_>,
    ) -> Result<(F, Self::Grad)> {
        let mut grad = self.zeros_grad(input.clone());
        let value = self.forward_backward_into(input, target, Self::grad_view_mut(&mut grad))?;
        Ok((value, grad))
    }

    /// The gradient of the reduced loss with respect to every
    /// differentiable input.
    fn backward(&self, input: Self::Input<'_>, target: Self::Target<'_>) -> Result<Self::Grad> {
        self.forward_backward(input, target).map(|(_, g)| g)
    }
}
