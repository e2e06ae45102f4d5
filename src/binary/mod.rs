//! Losses on a sigmoid per element: binary and multi-label classification.

/// Implements `Loss` and `Differentiable` for an element-wise binary loss
/// `$ty<F, D>` on inputs and targets of the same shape, whose type has a
/// `reduction` field and a method
/// `run(&self, input, targets, grad, per_element) -> Result<F>`.
macro_rules! impl_binary_loss {
    ($ty:ident) => {
        impl<F: $crate::Float, D: ::ndarray::Dimension> $crate::Loss<F> for $ty<F, D> {
            type Input<'a> = ::ndarray::ArrayView<'a, F, D>;
            type Target<'a> = ::ndarray::ArrayView<'a, F, D>;
            type PerSample = ::ndarray::Array<F, D>;

            fn reduction(&self) -> $crate::Reduction {
                self.reduction
            }

            fn per_sample(
                &self,
                input: Self::Input<'_>,
                targets: Self::Target<'_>,
            ) -> $crate::Result<Self::PerSample> {
                let mut out = ::ndarray::Array::zeros(input.raw_dim());
                self.run(input, targets, None, Some(out.view_mut()))?;
                Ok(out)
            }

            fn forward(
                &self,
                input: Self::Input<'_>,
                targets: Self::Target<'_>,
            ) -> $crate::Result<F> {
                self.run(input, targets, None, None)
            }
        }

        impl<F: $crate::Float, D: ::ndarray::Dimension> $crate::Differentiable<F> for $ty<F, D> {
            type Grad = ::ndarray::Array<F, D>;
            type GradMut<'g> = ::ndarray::ArrayViewMut<'g, F, D>;

            fn zeros_grad(&self, input: Self::Input<'_>) -> Self::Grad {
                ::ndarray::Array::zeros(input.raw_dim())
            }

            fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
                grad.view_mut()
            }

            fn forward_backward_into(
                &self,
                input: Self::Input<'_>,
                targets: Self::Target<'_>,
                grad: Self::GradMut<'_>,
            ) -> $crate::Result<F> {
                self.run(input, targets, Some(grad), None)
            }
        }
    };
}

mod bce;
mod bce_with_logits;
mod sigmoid_focal;

pub use bce::Bce;
pub use bce_with_logits::BceWithLogits;
pub use sigmoid_focal::SigmoidFocal;
