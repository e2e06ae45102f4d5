//! Margin losses on raw scores: the binary hinge, the multi-class hinge and
//! the exponential loss.

/// Implements `Loss` and `Differentiable` for a margin loss whose type has
/// a `reduction` field and a method
/// `run(&self, input, target, grad, per_sample, reduce) -> Result<F>`
/// (`reduce`: whether the reduced value is wanted). `$input` is the
/// `ndarray` view type of the scores (`ArrayView1` or `ArrayView2`),
/// `$target` the label view's element type.
macro_rules! impl_margin_loss {
    ($ty:ident, $input:ident, $input_mut:ident, $owned:ident, $target:ty) => {
        impl<F: $crate::Float> $crate::Loss<F> for $ty<F> {
            type Input<'a> = ::ndarray::$input<'a, F>;
            type Target<'a> = ::ndarray::ArrayView1<'a, $target>;
            type PerSample = ::ndarray::Array1<F>;

            fn reduction(&self) -> $crate::Reduction {
                self.reduction
            }

            fn per_sample(
                &self,
                scores: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<Self::PerSample> {
                let mut out = ::ndarray::Array1::zeros(scores.len_of(::ndarray::Axis(0)));
                self.run(scores, labels, None, Some(out.view_mut()), false)?;
                Ok(out)
            }

            fn forward(
                &self,
                scores: Self::Input<'_>,
                labels: Self::Target<'_>,
            ) -> $crate::Result<F> {
                self.run(scores, labels, None, None, true)
            }
        }

        impl<F: $crate::Float> $crate::Differentiable<F> for $ty<F> {
            type Grad = ::ndarray::$owned<F>;
            type GradMut<'g> = ::ndarray::$input_mut<'g, F>;

            fn zeros_grad(&self, scores: Self::Input<'_>) -> Self::Grad {
                ::ndarray::$owned::zeros(scores.raw_dim())
            }

            fn grad_view_mut(grad: &mut Self::Grad) -> Self::GradMut<'_> {
                grad.view_mut()
            }

            fn forward_backward_into(
                &self,
                scores: Self::Input<'_>,
                labels: Self::Target<'_>,
                grad: Self::GradMut<'_>,
            ) -> $crate::Result<F> {
                self.run(scores, labels, Some(grad), None, true)
            }
        }
    };
}

mod exponential;
mod hinge;
mod multi_margin;

pub use crate::engine::signed_margins::LabelConvention;
pub use exponential::Exponential;
pub use hinge::Hinge;
pub use multi_margin::MultiMargin;
