//! The traits are usable generically: one training step written once for any
//! differentiable loss on `(N, C)` logits.

use classloss::{
    ClassifierLoss, CrossEntropy, Differentiable, Exponential, Hinge, LabelSmoothing, Labels, Loss,
    MultiMargin, Reduction,
};
use ndarray::{Array1, Array2, array};

/// Gradient descent on the logits themselves until the loss stops falling;
/// returns the first and last loss. Written once, with the crate's bound
/// for losses on `(N, C)` scores and labels.
fn descend<L: ClassifierLoss<f64>>(
    loss: &L,
    logits: &mut Array2<f64>,
    labels: &Array1<i64>,
    steps: usize,
) -> (f64, f64) {
    let mut grad = Array2::zeros(logits.raw_dim());
    let first = loss
        .forward_backward_into(&*logits, Labels::from(labels), &mut grad)
        .unwrap();
    let mut last = first;
    for _ in 0..steps {
        logits.scaled_add(-1.0, &grad);
        last = loss
            .forward_backward_into(&*logits, Labels::from(labels), &mut grad)
            .unwrap();
    }
    (first, last)
}

#[test]
fn one_generic_step_serves_every_loss() {
    let labels = array![2_i64, 0, 1];
    let start = array![[0.1, 0.2, 0.3], [1.0, -1.0, 0.0], [0.0, 0.0, 0.0]];

    let mut x = start.clone();
    let (a, b) = descend(&CrossEntropy::new(), &mut x, &labels, 50);
    assert!(b < 0.2 * a, "cross-entropy: {a} -> {b}");

    let mut x = start.clone();
    let ls = LabelSmoothing::new().with_reduction(Reduction::Sum);
    let (a, b) = descend(&ls, &mut x, &labels, 50);
    assert!(b < a, "label smoothing: {a} -> {b}");
    // Smoothing keeps the optimum finite: the logits stop short of infinity.
    assert!(x.iter().all(|v| v.abs() < 10.0));

    let mut x = start.clone();
    let mm = MultiMargin::new().with_reduction(Reduction::Sum);
    let (a, b) = descend(&mm, &mut x, &labels, 50);
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

/// Labels of every primitive integer type give the same values, without a
/// copy by the caller; a negative label is the usual out-of-range error, and
/// PyTorch's `ignore_index = -100` is written as it is.
#[test]
fn labels_of_any_integer_type() {
    let x = array![[2.0_f64, 1.0, 0.1], [0.5, 2.5, -1.0], [0.0, 0.0, 3.0]];
    let ce = CrossEntropy::new();
    let reference = ce.forward(&x, &array![0_usize, 1, 2]).unwrap();
    assert_eq!(ce.forward(&x, &array![0_i64, 1, 2]).unwrap(), reference);
    assert_eq!(ce.forward(&x, &array![0_u32, 1, 2]).unwrap(), reference);
    assert_eq!(ce.forward(&x, &array![0_i32, 1, 2]).unwrap(), reference);
    assert_eq!(ce.forward(&x, &array![0_u8, 1, 2]).unwrap(), reference);
    assert_eq!(ce.forward(&x, &array![0_i16, 1, 2]).unwrap(), reference);
    assert_eq!(
        ce.forward(x.view(), array![0_u64, 1, 2].view()).unwrap(),
        reference
    );
    let focal = classloss::SoftmaxFocal::new();
    assert_eq!(
        focal.forward(&x, &array![0_i64, 1, 2]).unwrap(),
        focal.forward(&x, &array![0_usize, 1, 2]).unwrap()
    );

    let e = ce.forward(&x, &array![0_i64, -3, 2]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels[1]: label -3 is out of range for 3 classes (expected 0..=2)"
    );
    let e = ce.forward(&x, &array![0_u64, 1, u64::MAX]).unwrap_err();
    assert!(matches!(
        e,
        classloss::Error::LabelOutOfRange {
            label: i64::MAX,
            ..
        }
    ));

    let ignoring = CrossEntropy::new().with_ignore_index(-100);
    assert_eq!(ignoring.ignore_index(), Some(-100));
    let v = ignoring.forward(&x, &array![0_i64, -100, 2]).unwrap();
    let kept = ce.per_sample(&x, &array![0_i64, 1, 2]).unwrap();
    assert!((v - (kept[0] + kept[2]) / 2.0).abs() < 1e-15);
    // -100 is no label of unsigned types; they ignore a value of their own.
    let ignoring = CrossEntropy::new().with_ignore_index(255_u8);
    assert_eq!(ignoring.forward(&x, &array![0_u8, 255, 2]).unwrap(), v);
}

/// Inputs are taken as arrays or views alike, and gradients into `&mut` of
/// an array or a view.
#[test]
fn arrays_and_views_alike() {
    let x = array![[2.0_f32, 1.0, 0.1], [0.5, 2.5, -1.0]];
    let y = array![0_i64, 1];
    let ce = CrossEntropy::new();
    let mut g1 = Array2::zeros((2, 3));
    let mut g2 = Array2::zeros((2, 3));
    let a = ce.forward_backward_into(&x, &y, &mut g1).unwrap();
    let b = ce
        .forward_backward_into(x.view(), y.view(), g2.view_mut())
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(g1, g2);
}

/// `Reduction` in PyTorch's spelling: `as_str`, `Display` and `parse`
/// agree, and another word is `InvalidOption` with its message.
#[test]
fn reductions_parse_and_print_pytorchs_spelling() {
    for (r, s) in [
        (Reduction::Mean, "mean"),
        (Reduction::Sum, "sum"),
        (Reduction::None, "none"),
    ] {
        assert_eq!(r.as_str(), s);
        assert_eq!(r.to_string(), s);
        assert_eq!(Reduction::parse(s).unwrap(), r);
    }
    assert_eq!(Reduction::default(), Reduction::Mean);
    let e = Reduction::parse("avg").unwrap_err();
    assert!(matches!(
        e,
        classloss::Error::InvalidOption {
            name: "reduction",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "option `reduction`: expected \"mean\", \"sum\" or \"none\", got \"avg\""
    );
}

/// `Labels` reports the shape, length and values of the array it wraps,
/// whatever the integer type, in logical order (also for a transposed
/// view).
#[test]
fn labels_report_their_shape_length_and_values() {
    let a = array![[3_i64, -100, 0], [1, 2, 7]];
    let labels = Labels::from(&a);
    assert_eq!(labels.shape(), &[2, 3]);
    assert_eq!(labels.len(), 6);
    assert!(!labels.is_empty());
    assert_eq!(labels.iter().collect::<Vec<_>>(), vec![3, -100, 0, 1, 2, 7]);
    let t = a.t();
    let labels = Labels::from(t);
    assert_eq!(labels.shape(), &[3, 2]);
    assert_eq!(labels.iter().collect::<Vec<_>>(), vec![3, 1, -100, 2, 0, 7]);
    let u = array![250_u8, 4];
    let labels = Labels::from(&u);
    assert_eq!(labels.iter().collect::<Vec<_>>(), vec![250, 4]);
    assert_eq!((labels.len(), labels.shape()), (2, &[2][..]));
    let empty = Array1::<u32>::zeros(0);
    let labels = Labels::from(&empty);
    assert!(labels.is_empty());
    assert_eq!(labels.len(), 0);
    assert_eq!(labels.iter().next(), None);
}
