//! Every loss through burn equals the core crate on the same input: the
//! value and each gradient bit for bit, on Flex and NdArray through the
//! extension op and through the host path any other backend takes; the
//! gradient scaled by the upstream gradient and reaching a model's
//! parameters as burn's own cross-entropy's does; bad input gives the
//! core's error text.

#![allow(deprecated)] // burn 0.22 deprecates its NdArray backend, which these tests still cover.

use burn::tensor::{DType, Device, Element, Int, Tensor, TensorData, kind::Basic};
use classloss::{
    AngularMargin, ArcFace, Bce, BceWithLogits, CenterInput, CenterLoss, CombinedMargin,
    Contrastive, CosFace, CosineEmbedding, CrammerSinger, CrossEntropy, Differentiable, Embeddings,
    Exponential, GeneralizedCrossEntropy, HardBootstrapping, HierarchicalCrossEntropy, Hinge,
    KlDivergence, LabelSmoothing, Labels, Ldam, LogitAdjusted, Loss, MultiMargin, Pair, Poly1,
    Reduction, SigmoidFocal, SoftBootstrapping, SoftMargin, SoftmaxFocal, Sparsemax,
    SymmetricCrossEntropy,
};
use classloss_adapter_kit::testing::{centers_gradient, filled, probs, to};
use classloss_burn::{HostFloat, Path, TensorLoss};
use ndarray::{Array, Array1, Array2, Array3, Axis, Dimension, array};

/// The devices and paths every loss runs on.
fn paths() -> [(Device, Path); 3] {
    [
        (Device::flex().autodiff(), Path::Auto),
        (Device::ndarray().autodiff(), Path::Auto),
        (Device::flex().autodiff(), Path::Host),
    ]
}

/// A burn tensor with the array's shape and logical order.
fn tensor<T: Element, const N: usize, D: Dimension, K: Basic>(
    a: &Array<T, D>,
    device: &Device,
) -> Tensor<N, K> {
    let data = TensorData::new(a.iter().copied().collect::<Vec<_>>(), a.shape().to_vec());
    Tensor::from_data(data, (device, T::dtype()))
}

/// A tensor's values in logical order.
fn values<T: Element, const N: usize>(t: Tensor<N>) -> Vec<T> {
    t.into_data().try_to_vec::<T>().unwrap()
}

/// The loss through burn on every path, against the core's fused call:
/// the value and the gradient equal bit for bit; untracked, the value.
fn same_on_scores<F, D, L, T, const N: usize, const R: usize, K: Basic>(
    loss: &L,
    x: &Array<F, D>,
    target: L::Target<'_>,
    t: &Array<T, ndarray::IxDyn>,
) where
    F: HostFloat + std::fmt::Debug,
    T: Element,
    D: Dimension,
    L: for<'a> Differentiable<F, Input<'a> = ndarray::ArrayView<'a, F, D>, Grad = Array<F, D>>
        + TensorLoss<Tensor<N>>,
{
    let (value, grad) = loss.forward_backward(x.view(), target).unwrap();
    let grad: Vec<F> = grad.iter().copied().collect();
    for (device, path) in paths() {
        let v = tensor::<F, N, D, burn::tensor::Float>(x, &device).require_grad();
        let out = loss
            .apply(
                v.clone(),
                tensor::<T, R, _, K>(t, &device).into_data(),
                path,
            )
            .unwrap();
        assert_eq!(out.dims(), [1]);
        assert_eq!(
            values::<F, 1>(out.clone()),
            [value],
            "{path:?} on {device:?}"
        );
        let grads = out.backward();
        let g = v.grad(&grads).expect("a gradient for the input");
        assert_eq!(g.dims().as_slice(), x.shape());
        assert_eq!(values::<F, N>(g), grad, "{path:?} on {device:?}");

        let plain = device.clone().without_autodiff();
        let out = loss
            .apply(
                tensor(x, &plain),
                tensor::<T, R, _, K>(t, &plain).into_data(),
                path,
            )
            .unwrap();
        assert_eq!(values::<F, 1>(out), [value], "{path:?} on {plain:?}");
    }
}

#[test]
fn softmax_losses_on_labels_equal_the_core() {
    let x: Array2<f32> = to(&filled((5, 4), 1, 3.0));
    let y = array![0_i64, 3, 1, 2, 3];
    let yt = y.clone().into_dyn();
    let ce = CrossEntropy::new()
        .with_weight(array![0.5_f32, 2.0, 1.0, 1.5])
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_ignore_index(1);
    same_on_scores::<_, _, _, _, 2, 1, Int>(&ce, &x, Labels::from(&y).into(), &yt);
    let focal = SoftmaxFocal::new()
        .with_gamma(2.0)
        .unwrap()
        .with_class_alpha(array![0.25_f32, 0.5, 0.75, 1.0])
        .unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&focal, &x, Labels::from(&y), &yt);
    same_on_scores::<_, _, _, _, 2, 1, Int>(&LabelSmoothing::new(), &x, Labels::from(&y), &yt);
    let poly = Poly1::new().with_epsilon(2.0).unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&poly, &x, Labels::from(&y), &yt);
    same_on_scores::<_, _, _, _, 2, 1, Int>(
        &GeneralizedCrossEntropy::new(),
        &x,
        Labels::from(&y),
        &yt,
    );
    same_on_scores::<_, _, _, _, 2, 1, Int>(
        &SymmetricCrossEntropy::new(),
        &x,
        Labels::from(&y),
        &yt,
    );
    same_on_scores::<_, _, _, _, 2, 1, Int>(&SoftBootstrapping::new(), &x, Labels::from(&y), &yt);
    same_on_scores::<_, _, _, _, 2, 1, Int>(&HardBootstrapping::new(), &x, Labels::from(&y), &yt);
    let mm = MultiMargin::new().with_p(2).unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&mm, &x, Labels::from(&y), &yt);
    same_on_scores::<_, _, _, _, 2, 1, Int>(&CrammerSinger::new(), &x, Labels::from(&y), &yt);
    same_on_scores::<_, _, _, _, 2, 1, Int>(&Sparsemax::new(), &x, Labels::from(&y), &yt);
    let hxe = HierarchicalCrossEntropy::new()
        .with_alpha(0.5)
        .unwrap()
        .with_parents(vec![
            Some(4),
            Some(4),
            Some(5),
            Some(5),
            Some(6),
            Some(6),
            None,
        ])
        .unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&hxe, &x, Labels::from(&y), &yt);
    let counts = array![40.0, 9.0, 3.0, 1.0];
    let la = LogitAdjusted::new()
        .with_samples_per_class(counts.clone())
        .unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&la, &x, Labels::from(&y), &yt);
    let ldam = Ldam::new()
        .with_samples_per_class(counts)
        .unwrap()
        .with_scale(4.0)
        .unwrap();
    same_on_scores::<_, _, _, _, 2, 1, Int>(&ldam, &x, Labels::from(&y), &yt);
    let cos = x.mapv(|v| (v / 3.0).clamp(-1.0, 1.0));
    same_on_scores::<_, _, _, _, 2, 1, Int>(
        &ArcFace::new().on_cosines(),
        &cos,
        Labels::from(&y),
        &yt,
    );
    same_on_scores::<_, _, _, _, 2, 1, Int>(
        &CosFace::new().on_cosines(),
        &cos,
        Labels::from(&y),
        &yt,
    );
}

#[test]
fn every_label_dtype_and_f64_give_the_core_result() {
    let x: Array2<f64> = filled((4, 3), 2, 2.0);
    let y = array![2_i64, 0, 1, 1];
    let ce = CrossEntropy::<f64>::new().with_reduction(Reduction::Sum);
    let (value, _) = ce.forward_backward(x.view(), Labels::from(&y)).unwrap();
    let device = Device::flex().autodiff();
    for dtype in [
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
    ] {
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [4]), (&device, dtype));
        let out = ce
            .loss(
                tensor::<f64, 2, _, burn::tensor::Float>(&x, &device),
                labels,
            )
            .unwrap();
        assert_eq!(values::<f64, 1>(out), [value], "{dtype:?}");
    }
    same_on_scores::<_, _, _, _, 2, 1, Int>(
        &LabelSmoothing::new(),
        &x,
        Labels::from(&y),
        &y.clone().into_dyn(),
    );
}

#[test]
fn probability_targets_and_spatial_cross_entropy_equal_the_core() {
    let x: Array2<f64> = filled((3, 5), 3, 4.0);
    let p = probs(3, 5, 4);
    let ce = CrossEntropy::<f64>::new()
        .with_label_smoothing(0.2)
        .unwrap();
    let pt = p.clone().into_dyn();
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(
        &ce,
        &x,
        classloss::ClassTarget::Probs(p.view()),
        &pt,
    );
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(
        &KlDivergence::new(),
        &x,
        p.view(),
        &pt,
    );
    let z: Array2<f64> = filled((3, 5), 9, 2.0);
    let zt = z.clone().into_dyn();
    let byol = classloss::Byol::new();
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(&byol, &x, z.view(), &zt);

    let x: Array3<f32> = to(&filled((2, 4, 3), 5, 3.0));
    let y = array![[0_i64, 3, 2], [1, 1, 0]];
    let ce = CrossEntropy::<f32, ndarray::Ix3>::spatial().with_ignore_index(3);
    same_on_scores::<_, _, _, _, 3, 2, Int>(
        &ce,
        &x,
        Labels::from(&y).into(),
        &y.clone().into_dyn(),
    );
}

#[test]
fn binary_and_margin_losses_equal_the_core() {
    let x: Array2<f32> = to(&filled((4, 3), 6, 5.0));
    let t: Array2<f32> = to(&filled((4, 3), 7, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 }));
    let td = t.clone().into_dyn();
    let bce_logits = BceWithLogits::new()
        .with_pos_weight(array![2.0_f32, 1.0, 0.5])
        .unwrap();
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(&bce_logits, &x, t.view(), &td);
    let focal = SigmoidFocal::new().with_gamma(1.5).unwrap();
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(&focal, &x, t.view(), &td);
    let p = x.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(&Bce::new(), &p, t.view(), &td);

    let pm = t.mapv(|v| 2.0 * v - 1.0);
    let pmd = pm.clone().into_dyn();
    same_on_scores::<_, _, _, _, 2, 2, burn::tensor::Float>(
        &SoftMargin::new(),
        &x,
        pm.view(),
        &pmd,
    );

    let s: Array1<f64> = filled(6, 8, 2.0);
    let signs = array![1.0_f64, -1.0, 1.0, 1.0, -1.0, -1.0];
    let sd = signs.clone().into_dyn();
    same_on_scores::<_, _, _, _, 1, 1, burn::tensor::Float>(&Hinge::new(), &s, signs.view(), &sd);
    same_on_scores::<_, _, _, _, 1, 1, burn::tensor::Float>(
        &Exponential::new(),
        &s,
        signs.view(),
        &sd,
    );
}

/// Both gradients of a two-input loss through burn on every path, against
/// the core's.
fn same_on_two<F, L, T: Element, K: Basic>(
    loss: &L,
    (a, b): (&Array2<F>, &Array2<F>),
    target: &Array1<T>,
    value: F,
    (ga, gb): (&Array2<F>, &Array2<F>),
) where
    F: HostFloat + std::fmt::Debug,
    L: TensorLoss<(Tensor<2>, Tensor<2>)>,
{
    for (device, path) in paths() {
        let ta = tensor::<F, 2, _, burn::tensor::Float>(a, &device).require_grad();
        let tb = tensor::<F, 2, _, burn::tensor::Float>(b, &device).require_grad();
        let t = tensor::<T, 1, _, K>(target, &device).into_data();
        let out = loss.apply((ta.clone(), tb.clone()), t, path).unwrap();
        assert_eq!(
            values::<F, 1>(out.clone()),
            [value],
            "{path:?} on {device:?}"
        );
        let grads = out.backward();
        assert_eq!(
            values::<F, 2>(ta.grad(&grads).unwrap()),
            ga.iter().copied().collect::<Vec<_>>()
        );
        assert_eq!(
            values::<F, 2>(tb.grad(&grads).unwrap()),
            gb.iter().copied().collect::<Vec<_>>()
        );
    }
}

#[test]
fn angular_margins_give_both_gradients_of_the_core() {
    let e: Array2<f32> = to(&filled((5, 4), 9, 1.0));
    let w: Array2<f32> = to(&filled((3, 4), 10, 1.0));
    let y = array![0_i64, 2, 1, 1, 0];
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    let arc = ArcFace::new();
    let (v, g) = arc.forward_backward(input, Labels::from(&y)).unwrap();
    same_on_two::<_, _, _, Int>(&arc, (&e, &w), &y, v, (&g.embeddings, &g.weight));
    let cos = CosFace::new();
    let (v, g) = cos.forward_backward(input, Labels::from(&y)).unwrap();
    same_on_two::<_, _, _, Int>(&cos, (&e, &w), &y, v, (&g.embeddings, &g.weight));
    let comb = CombinedMargin::new().with_margins(0.9, 0.4, 0.15).unwrap();
    let (v, g) = comb.forward_backward(input, Labels::from(&y)).unwrap();
    same_on_two::<_, _, _, Int>(&comb, (&e, &w), &y, v, (&g.embeddings, &g.weight));
}

#[test]
fn contrastive_gives_both_gradients_of_the_core() {
    let a: Array2<f64> = filled((4, 3), 11, 1.0);
    let b: Array2<f64> = filled((4, 3), 12, 1.0);
    let flags = array![1.0_f64, 0.0, 0.0, 1.0];
    let loss = Contrastive::new();
    let (v, g) = loss
        .forward_backward(
            Pair {
                x1: a.view(),
                x2: b.view(),
            },
            flags.view(),
        )
        .unwrap();
    same_on_two::<_, _, _, burn::tensor::Float>(&loss, (&a, &b), &flags, v, (&g.x1, &g.x2));
    let labels = flags.mapv(|f| 2.0 * f - 1.0);
    let cosine = CosineEmbedding::new().with_margin(0.2).unwrap();
    let pair = Pair {
        x1: a.view(),
        x2: b.view(),
    };
    let (v, g) = cosine.forward_backward(pair, labels.view()).unwrap();
    same_on_two::<_, _, _, burn::tensor::Float>(&cosine, (&a, &b), &labels, v, (&g.x1, &g.x2));
}

#[test]
fn center_loss_gives_the_centers_their_exact_gradient() {
    let f: Array2<f64> = filled((5, 3), 13, 2.0);
    let c: Array2<f64> = filled((4, 3), 14, 1.0);
    let y = array![1_i64, 3, 1, 0, 3];
    let loss = CenterLoss::new();
    let input = CenterInput {
        features: f.view(),
        centers: c.view(),
    };
    let (v, gf) = loss.forward_backward(input, Labels::from(&y)).unwrap();
    // d/dc_k is minus the sum of the features' gradients with label k;
    // class 2 has none.
    let labels: Vec<usize> = y.iter().map(|&k| k as usize).collect();
    let gc = centers_gradient(&gf, &labels, 4);
    same_on_two::<_, _, _, Int>(&loss, (&f, &c), &y, v, (&gf, &gc));
}

#[test]
fn the_gradient_is_scaled_by_the_upstream_gradient() {
    let x: Array2<f32> = to(&filled((3, 4), 15, 2.0));
    let y = array![1_i64, 0, 3];
    let ce = CrossEntropy::<f32>::new();
    let (_, g) = ce.forward_backward(x.view(), Labels::from(&y)).unwrap();
    for (device, path) in paths() {
        let v = tensor::<f32, 2, _, burn::tensor::Float>(&x, &device).require_grad();
        let labels = tensor::<i64, 1, _, Int>(&y, &device).into_data();
        let out = ce.apply(v.clone(), labels.clone(), path).unwrap() * 3.0;
        let grads = out.backward();
        let want: Vec<f32> = g.iter().map(|&g| g * 3.0).collect();
        assert_eq!(values::<f32, 2>(v.grad(&grads).unwrap()), want, "{path:?}");
        // Two uses of one loss add up, as burn adds any two paths.
        let out = ce.apply(v.clone(), labels, path).unwrap();
        let grads = (out.clone() + out).backward();
        let want: Vec<f32> = g.iter().map(|&g| g * 2.0).collect();
        assert_eq!(values::<f32, 2>(v.grad(&grads).unwrap()), want, "{path:?}");
    }
}

#[test]
fn an_earlier_steps_gradients_survive_the_next_step() {
    // The op writes a gradient into a tensor of an earlier call only once
    // no one holds that tensor: gradients a user keeps never see the next
    // step's values.
    let ce = CrossEntropy::<f32>::new();
    let y = array![2_i64, 0, 1];
    let x1: Array2<f32> = to(&filled((3, 7), 40, 2.0));
    let x2: Array2<f32> = to(&filled((3, 7), 41, 2.0));
    let (_, g1) = ce.forward_backward(x1.view(), Labels::from(&y)).unwrap();
    let (_, g2) = ce.forward_backward(x2.view(), Labels::from(&y)).unwrap();
    let g1: Vec<f32> = g1.iter().copied().collect();
    let g2: Vec<f32> = g2.iter().copied().collect();
    for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
        let v1 = tensor::<f32, 2, _, burn::tensor::Float>(&x1, &device).require_grad();
        let labels = || tensor::<i64, 1, _, Int>(&y, &device);
        let kept = ce.loss(v1.clone(), labels()).unwrap().backward();
        for _ in 0..6 {
            let v2 = tensor::<f32, 2, _, burn::tensor::Float>(&x2, &device).require_grad();
            let grads = ce.loss(v2.clone(), labels()).unwrap().backward();
            assert_eq!(values::<f32, 2>(v2.grad(&grads).unwrap()), g2);
        }
        assert_eq!(values::<f32, 2>(v1.grad(&kept).unwrap()), g1, "{device:?}");
    }
    classloss_burn::release_spare_gradients();
}

#[test]
fn loss_no_reduction_gives_the_unreduced_values_each_with_its_gradient() {
    use burn::tensor::Float;
    // (N, C) logits: one value per sample; each row's gradient scaled by
    // its own upstream value.
    let x: Array2<f64> = filled((4, 3), 46, 3.0);
    let y = array![2_i64, 0, 1, 1];
    let w = array![0.5_f64, -2.0, 1.0, 3.0];
    let ce = CrossEntropy::<f64>::new()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_reduction(Reduction::None);
    let per = ce.per_sample(x.view(), Labels::from(&y)).unwrap();
    let (_, g) = ce.forward_backward(x.view(), Labels::from(&y)).unwrap();
    let want: Vec<f64> = (&g * &w.view().insert_axis(Axis(1)))
        .iter()
        .copied()
        .collect();
    // Elementwise (BCE with logits) and spatial cross-entropy.
    let t: Array2<f64> = filled((4, 3), 47, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let up: Array2<f64> = filled((4, 3), 48, 1.0);
    let bce = BceWithLogits::new().with_reduction(Reduction::None);
    let (_, gb) = bce.forward_backward(x.view(), t.view()).unwrap();
    let want_b: Vec<f64> = (&gb * &up).iter().copied().collect();
    let xs: Array3<f64> = filled((2, 3, 2), 49, 2.0);
    let ys = array![[0_i64, 2], [1, 1]];
    let ups = array![[1.0_f64, -1.0], [0.5, 2.0]];
    let spatial = CrossEntropy::<f64, ndarray::Ix3>::spatial().with_reduction(Reduction::None);
    let (_, gs) = spatial
        .forward_backward(xs.view(), Labels::from(&ys))
        .unwrap();
    let want_s: Vec<f64> = (&gs * &ups.view().insert_axis(Axis(1)))
        .iter()
        .copied()
        .collect();
    for (device, path) in paths() {
        let v = tensor::<f64, 2, _, Float>(&x, &device).require_grad();
        let labels = tensor::<i64, 1, _, Int>(&y, &device).into_data();
        let out = ce.call::<1>(v.clone(), labels, path, true).unwrap();
        assert_eq!(values::<f64, 1>(out.clone()), per.to_vec(), "{path:?}");
        let grads = (out * tensor::<f64, 1, _, Float>(&w, &device))
            .sum()
            .backward();
        assert_eq!(values::<f64, 2>(v.grad(&grads).unwrap()), want, "{path:?}");

        let v = tensor::<f64, 2, _, Float>(&x, &device).require_grad();
        let out = bce
            .call::<2>(
                v.clone(),
                tensor::<f64, 2, _, Float>(&t, &device).into_data(),
                path,
                true,
            )
            .unwrap();
        assert_eq!(out.dims(), [4, 3]);
        let grads = (out * tensor::<f64, 2, _, Float>(&up, &device))
            .sum()
            .backward();
        assert_eq!(
            values::<f64, 2>(v.grad(&grads).unwrap()),
            want_b,
            "{path:?}"
        );

        let v = tensor::<f64, 3, _, Float>(&xs, &device).require_grad();
        let out = spatial
            .call::<2>(
                v.clone(),
                tensor::<i64, 2, _, Int>(&ys, &device).into_data(),
                path,
                true,
            )
            .unwrap();
        assert_eq!(out.dims(), [2, 2]);
        let grads = (out * tensor::<f64, 2, _, Float>(&ups, &device))
            .sum()
            .backward();
        assert_eq!(
            values::<f64, 3>(v.grad(&grads).unwrap()),
            want_s,
            "{path:?}"
        );
    }
    // The public call, and what it refuses.
    let device = Device::flex().autodiff();
    let x1 = || tensor::<f64, 2, _, Float>(&x, &device);
    let y1 = || tensor::<i64, 1, _, Int>(&y, &device);
    let out: Tensor<1> = ce.loss_no_reduction(x1(), y1()).unwrap();
    assert_eq!(values::<f64, 1>(out), per.to_vec());
    let err = CrossEntropy::<f64>::new()
        .loss_no_reduction::<1, 1, Int>(x1(), y1())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `reduction`: expected Reduction::None for the unreduced values, got Mean"
    );
    let err = ce.loss_no_reduction::<2, 1, Int>(x1(), y1()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unreduced values: expected 1 dimensions, got 2"),
        "{err}"
    );
    let err = ArcFace::new()
        .with_reduction(Reduction::None)
        .loss_no_reduction::<1, 1, Int>((x1(), x1()), y1())
        .unwrap_err();
    assert!(err.to_string().starts_with("option `reduction`"), "{err}");
}

#[test]
fn the_gradient_reaches_a_models_parameters_as_burns_own_cross_entropys_does() {
    use burn::nn::loss::CrossEntropyLossConfig;
    // logits = x w: burn carries classloss's gradient through the matmul.
    let x: Array2<f32> = to(&filled((6, 3), 17, 1.0));
    let w: Array2<f32> = to(&filled((3, 4), 18, 1.0));
    let y = array![0_i64, 1, 2, 3, 0, 1];
    for device in [Device::flex().autodiff(), Device::ndarray().autodiff()] {
        let xt = tensor::<f32, 2, _, burn::tensor::Float>(&x, &device);
        let yt = tensor::<i64, 1, _, Int>(&y, &device);
        let grad_w = |smoothing: Option<f32>, ours: bool| -> Vec<f32> {
            let wt = tensor::<f32, 2, _, burn::tensor::Float>(&w, &device).require_grad();
            let logits = xt.clone().matmul(wt.clone());
            let out = if ours {
                let ce = CrossEntropy::<f32>::new()
                    .with_label_smoothing(f64::from(smoothing.unwrap_or(0.0)))
                    .unwrap();
                ce.loss(logits, yt.clone()).unwrap()
            } else {
                CrossEntropyLossConfig::new()
                    .with_smoothing(smoothing)
                    .init(&device)
                    .forward(logits, yt.clone())
            };
            values::<f32, 2>(wt.grad(&out.backward()).unwrap())
        };
        for smoothing in [None, Some(0.1)] {
            let (ours, theirs) = (grad_w(smoothing, true), grad_w(smoothing, false));
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{smoothing:?} on {device:?}: {ours:?} vs {theirs:?}"
                );
            }
        }
    }
}

#[test]
fn bad_input_gives_the_core_error_text() {
    let device = Device::flex().autodiff();
    let x: Array2<f32> = to(&filled((3, 4), 19, 1.0));
    let ce = CrossEntropy::<f32>::new();
    let bad = array![0_i64, 7, 1];
    let core = ce
        .forward(x.view(), Labels::from(&bad))
        .unwrap_err()
        .to_string();
    for path in [Path::Auto, Path::Host] {
        let err = ce
            .apply(
                tensor::<f32, 2, _, burn::tensor::Float>(&x, &device),
                tensor::<i64, 1, _, Int>(&bad, &device).into_data(),
                path,
            )
            .unwrap_err();
        assert_eq!(err.to_string(), core);
        assert!(matches!(err, classloss_burn::Error::Loss(_)));
    }
    // A tensor of the other float type names the argument and both types.
    let err = ce
        .loss(
            tensor::<f64, 2, _, burn::tensor::Float>(&x.mapv(f64::from), &device),
            tensor::<i64, 1, _, Int>(&array![0_i64, 1, 2], &device),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "input: expected dtype F32, got dtype F64");
    // A wrong rank is the core's rank error.
    let err = ce
        .loss(
            tensor::<f32, 1, _, burn::tensor::Float>(&array![1.0_f32, 2.0], &device),
            tensor::<i64, 1, _, Int>(&array![0_i64], &device),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("input: expected 2 dimensions, got 1"),
        "{err}"
    );
    // The two inputs of a two-input loss on two backends.
    let e = tensor::<f32, 2, _, burn::tensor::Float>(&x, &device);
    let w = tensor::<f32, 2, _, burn::tensor::Float>(&x, &Device::ndarray());
    let err = ArcFace::new()
        .loss(
            (e, w),
            tensor::<i64, 1, _, Int>(&array![0_i64, 1, 2], &device),
        )
        .unwrap_err();
    assert!(
        err.to_string().starts_with("weight: expected a tensor on "),
        "{err}"
    );
    // Two checkpointing strategies cannot meet in one op.
    let e = tensor::<f32, 2, _, burn::tensor::Float>(&x, &device);
    let w = tensor::<f32, 2, _, burn::tensor::Float>(&x, &device.clone().gradient_checkpointing());
    let err = ArcFace::new()
        .loss(
            (e, w),
            tensor::<i64, 1, _, Int>(&array![0_i64, 1, 2], &device),
        )
        .unwrap_err();
    assert!(
        matches!(err, classloss_burn::Error::Device { what: "weight", .. }),
        "{err}"
    );
    // A type no loss takes, for a loss that takes either float type.
    let err = LabelSmoothing::new()
        .loss(
            tensor::<f32, 2, _, burn::tensor::Float>(&x, &device).cast(DType::F16),
            tensor::<i64, 1, _, Int>(&array![0_i64, 1, 2], &device),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "input: expected dtype F32 or F64, got dtype F16"
    );
    // A float target where labels are expected.
    let err = SoftmaxFocal::<f32>::new()
        .loss(
            tensor::<f32, 2, _, burn::tensor::Float>(&x, &device),
            tensor::<f32, 1, _, burn::tensor::Float>(&array![0.0_f32, 1.0, 2.0], &device),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "target: expected an integer dtype, got dtype F32"
    );
}
