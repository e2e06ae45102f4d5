//! The traits are usable generically: one training step written once for any
//! differentiable loss on `(N, C)` logits.

use classloss::{
    ClassTarget, CrossEntropy, Differentiable, Exponential, Hinge, LabelSmoothing, MultiMargin,
    Reduction,
};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, array};

/// Gradient descent on the logits themselves until the loss stops falling;
/// returns the first and last loss.
fn descend<'t, L>(
    loss: &L,
    logits: &mut Array2<f64>,
    target: L::Target<'t>,
    steps: usize,
) -> (f64, f64)
where
    L: for<'a> Differentiable<
            f64,
            Input<'a> = ArrayView2<'a, f64>,
            GradMut<'a> = ArrayViewMut2<'a, f64>,
        >,
{
    let mut grad = Array2::zeros(logits.raw_dim());
    let first = loss
        .forward_backward_into(logits.view(), target.clone(), grad.view_mut())
        .unwrap();
    let mut last = first;
    for _ in 0..steps {
        logits.scaled_add(-1.0, &grad);
        last = loss
            .forward_backward_into(logits.view(), target.clone(), grad.view_mut())
            .unwrap();
    }
    (first, last)
}

#[test]
fn one_generic_step_serves_every_loss() {
    let labels = array![2_usize, 0, 1];
    let start = array![[0.1, 0.2, 0.3], [1.0, -1.0, 0.0], [0.0, 0.0, 0.0]];

    let mut x = start.clone();
    let (a, b) = descend(
        &CrossEntropy::new(),
        &mut x,
        ClassTarget::Labels(labels.view()),
        50,
    );
    assert!(b < 0.2 * a, "cross-entropy: {a} -> {b}");

    let mut x = start.clone();
    let ls = LabelSmoothing::new().with_reduction(Reduction::Sum);
    let (a, b) = descend(&ls, &mut x, labels.view(), 50);
    assert!(b < a, "label smoothing: {a} -> {b}");
    // Smoothing keeps the optimum finite: the logits stop short of infinity.
    assert!(x.iter().all(|v| v.abs() < 10.0));

    let mut x = start.clone();
    let mm = MultiMargin::new().with_reduction(Reduction::Sum);
    let (a, b) = descend(&mm, &mut x, labels.view(), 50);
    assert!(a > 0.0 && b == 0.0, "multi-margin: {a} -> {b}");
}

#[test]
fn losses_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<CrossEntropy<f32>>();
    assert_traits::<CrossEntropy<f64, ndarray::IxDyn>>();
    assert_traits::<LabelSmoothing>();
    assert_traits::<Hinge<f32>>();
    assert_traits::<MultiMargin<f64>>();
    assert_traits::<Exponential<f64>>();
    assert_traits::<classloss::Error>();
}
