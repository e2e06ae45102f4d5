//! Every loss through candle equals the core crate on the same input: the
//! value and each gradient bit for bit (the same kernels run on the same
//! views), the gradient scaled by the upstream gradient, reaching a model's
//! parameters; and bad input gives the core's error text.

use candle_core::{DType, Device, Tensor, Var, WithDType};
use classloss::{
    AngularMargin, ArcFace, Bce, BceWithLogits, CenterInput, CenterLoss, CombinedMargin,
    Contrastive, CosFace, CosineEmbedding, CrammerSinger, CrossEntropy, Differentiable, Embeddings,
    Exponential, Float, GeneralizedCrossEntropy, HardBootstrapping, HierarchicalCrossEntropy,
    Hinge, KlDivergence, LabelSmoothing, Labels, Ldam, LogitAdjusted, Loss, MultiMargin, Pair,
    Poly1, Reduction, SigmoidFocal, SoftBootstrapping, SoftMargin, SoftmaxFocal, Sparsemax,
    SymmetricCrossEntropy,
};
use classloss_adapter_kit::testing::{centers_gradient, filled, probs, to};
use classloss_candle::TensorLoss;
use ndarray::{Array, Array1, Array2, Array3, Axis, Dimension, array};

/// A CPU tensor with the array's shape and logical order.
fn tensor<T: WithDType, D: Dimension>(a: &Array<T, D>) -> Tensor {
    Tensor::from_vec(a.iter().copied().collect(), a.shape(), &Device::Cpu).unwrap()
}

/// A variable (a tensor candle tracks) with the array's values.
fn var<T: WithDType + Float, D: Dimension>(a: &Array<T, D>) -> Var {
    Var::from_tensor(&tensor(a)).unwrap()
}

/// A tensor's values in logical order.
fn values<T: WithDType>(t: &Tensor) -> Vec<T> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The value and gradient through candle for a loss on one tensor, checked
/// against the core's fused call: equal bit for bit.
fn same_on_scores<F, D, L>(loss: &L, x: &Array<F, D>, target: L::Target<'_>, target_tensor: &Tensor)
where
    F: Float + WithDType + std::fmt::Debug,
    D: Dimension,
    L: for<'a> Differentiable<F, Input<'a> = ndarray::ArrayView<'a, F, D>, Grad = Array<F, D>>
        + for<'a> TensorLoss<Inputs<'a> = &'a Tensor>,
{
    let (value, grad) = loss.forward_backward(x.view(), target).unwrap();
    let v = var(x);
    let out = loss.loss(v.as_tensor(), target_tensor).unwrap();
    assert_eq!(out.dims(), &[] as &[usize]);
    assert_eq!(out.to_scalar::<F>().unwrap(), value);
    let grads = out.backward().unwrap();
    let g = grads.get(&v).expect("a gradient for the input");
    assert_eq!(g.dims(), x.shape());
    assert_eq!(values::<F>(g), grad.iter().copied().collect::<Vec<_>>());
    // Without a variable candle asks for no gradient: the value alone.
    let plain = loss.loss(&tensor(x), target_tensor).unwrap();
    assert_eq!(plain.to_scalar::<F>().unwrap(), value);
}

#[test]
fn softmax_losses_on_labels_equal_the_core() {
    let x: Array2<f32> = to(&filled((5, 4), 1, 3.0));
    let y = array![0_u32, 3, 1, 2, 3];
    let yt = tensor(&y);
    let ce = CrossEntropy::new()
        .with_weight(array![0.5_f32, 2.0, 1.0, 1.5])
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_ignore_index(1);
    same_on_scores(&ce, &x, Labels::from(&y).into(), &yt);
    let focal = SoftmaxFocal::new()
        .with_gamma(2.0)
        .unwrap()
        .with_class_alpha(array![0.25_f32, 0.5, 0.75, 1.0])
        .unwrap();
    same_on_scores(&focal, &x, Labels::from(&y), &yt);
    same_on_scores(&LabelSmoothing::new(), &x, Labels::from(&y), &yt);
    same_on_scores(
        &Poly1::new().with_epsilon(2.0).unwrap(),
        &x,
        Labels::from(&y),
        &yt,
    );
    same_on_scores(&GeneralizedCrossEntropy::new(), &x, Labels::from(&y), &yt);
    same_on_scores(&SymmetricCrossEntropy::new(), &x, Labels::from(&y), &yt);
    same_on_scores(&SoftBootstrapping::new(), &x, Labels::from(&y), &yt);
    same_on_scores(&HardBootstrapping::new(), &x, Labels::from(&y), &yt);
    same_on_scores(
        &MultiMargin::new().with_p(2).unwrap(),
        &x,
        Labels::from(&y),
        &yt,
    );
    same_on_scores(&CrammerSinger::new(), &x, Labels::from(&y), &yt);
    same_on_scores(&Sparsemax::new(), &x, Labels::from(&y), &yt);
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
    same_on_scores(&hxe, &x, Labels::from(&y), &yt);
    let counts = array![40.0, 9.0, 3.0, 1.0];
    let la = LogitAdjusted::new()
        .with_samples_per_class(counts.clone())
        .unwrap();
    same_on_scores(&la, &x, Labels::from(&y), &yt);
    let ldam = Ldam::new()
        .with_samples_per_class(counts)
        .unwrap()
        .with_scale(4.0)
        .unwrap();
    same_on_scores(&ldam, &x, Labels::from(&y), &yt);
    let cos = x.mapv(|v| (v / 3.0).clamp(-1.0, 1.0));
    same_on_scores(&ArcFace::new().on_cosines(), &cos, Labels::from(&y), &yt);
    same_on_scores(&CosFace::new().on_cosines(), &cos, Labels::from(&y), &yt);
}

#[test]
fn every_label_dtype_and_f64_give_the_core_result() {
    let x: Array2<f64> = filled((4, 3), 2, 2.0);
    let y = array![2_i64, 0, 1, 1];
    let ce = CrossEntropy::<f64>::new().with_reduction(Reduction::Sum);
    same_on_scores(&ce, &x, Labels::from(&y).into(), &tensor(&y));
    for t in [
        tensor(&y.mapv(|l| l as u8)),
        tensor(&y.mapv(|l| l as u32)),
        tensor(&y.mapv(|l| l as i16)),
        tensor(&y.mapv(|l| l as i32)),
    ] {
        same_on_scores(&ce, &x, Labels::from(&y).into(), &t);
    }
    same_on_scores(&LabelSmoothing::new(), &x, Labels::from(&y), &tensor(&y));
}

#[test]
fn probability_targets_and_spatial_cross_entropy_equal_the_core() {
    let x: Array2<f64> = filled((3, 5), 3, 4.0);
    let p = probs(3, 5, 4);
    let ce = CrossEntropy::<f64>::new()
        .with_label_smoothing(0.2)
        .unwrap();
    same_on_scores(
        &ce,
        &x,
        classloss::ClassTarget::Probs(p.view()),
        &tensor(&p),
    );
    same_on_scores(&KlDivergence::new(), &x, p.view(), &tensor(&p));
    let z: Array2<f64> = filled((3, 5), 9, 2.0);
    same_on_scores(&classloss::Byol::new(), &x, z.view(), &tensor(&z));
    let byol = classloss::Byol::new().with_reduction(Reduction::Sum);
    same_on_scores(
        &byol,
        &to::<f32, _>(&x),
        to(&z).view(),
        &tensor(&to::<f32, _>(&z)),
    );

    let x: Array3<f32> = to(&filled((2, 4, 3), 5, 3.0));
    let y = array![[0_i64, 3, 2], [1, 1, 0]];
    let ce = CrossEntropy::<f32, ndarray::Ix3>::spatial().with_ignore_index(3);
    same_on_scores(&ce, &x, Labels::from(&y).into(), &tensor(&y));
}

#[test]
fn binary_and_margin_losses_equal_the_core() {
    let x: Array2<f32> = to(&filled((4, 3), 6, 5.0));
    let t: Array2<f32> = to(&filled((4, 3), 7, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 }));
    let bce_logits = BceWithLogits::new()
        .with_pos_weight(array![2.0_f32, 1.0, 0.5])
        .unwrap();
    same_on_scores(&bce_logits, &x, t.view(), &tensor(&t));
    let focal = SigmoidFocal::new().with_gamma(1.5).unwrap();
    same_on_scores(&focal, &x, t.view(), &tensor(&t));
    let p = x.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    same_on_scores(&Bce::new(), &p, t.view(), &tensor(&t));

    let pm = t.mapv(|v| 2.0 * v - 1.0);
    same_on_scores(&SoftMargin::new(), &x, pm.view(), &tensor(&pm));

    let s: Array1<f64> = filled(6, 8, 2.0);
    let signs = array![1.0_f64, -1.0, 1.0, 1.0, -1.0, -1.0];
    same_on_scores(&Hinge::new(), &s, signs.view(), &tensor(&signs));
    same_on_scores(&Exponential::new(), &s, signs.view(), &tensor(&signs));
}

/// Both gradients of a two-input loss through candle, against the core's.
fn same_on_two<F: Float + WithDType + std::fmt::Debug>(
    out: Tensor,
    (va, vb): (&Var, &Var),
    value: F,
    (ga, gb): (&Array2<F>, &Array2<F>),
) {
    assert_eq!(out.to_scalar::<F>().unwrap(), value);
    let grads = out.backward().unwrap();
    assert_eq!(
        values::<F>(grads.get(va).unwrap()),
        ga.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(
        values::<F>(grads.get(vb).unwrap()),
        gb.iter().copied().collect::<Vec<_>>()
    );
}

#[test]
fn angular_margins_give_both_gradients_of_the_core() {
    let e: Array2<f32> = to(&filled((5, 4), 9, 1.0));
    let w: Array2<f32> = to(&filled((3, 4), 10, 1.0));
    let y = array![0_u32, 2, 1, 1, 0];
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    let (ve, vw) = (var(&e), var(&w));
    let arc = ArcFace::new();
    let (v, g) = arc.forward_backward(input, Labels::from(&y)).unwrap();
    let out = arc
        .loss((ve.as_tensor(), vw.as_tensor()), &tensor(&y))
        .unwrap();
    same_on_two(out, (&ve, &vw), v, (&g.embeddings, &g.weight));
    let cos = CosFace::new();
    let (v, g) = cos.forward_backward(input, Labels::from(&y)).unwrap();
    let out = cos
        .loss((ve.as_tensor(), vw.as_tensor()), &tensor(&y))
        .unwrap();
    same_on_two(out, (&ve, &vw), v, (&g.embeddings, &g.weight));
    let comb = CombinedMargin::new().with_margins(0.9, 0.4, 0.15).unwrap();
    let (v, g) = comb.forward_backward(input, Labels::from(&y)).unwrap();
    let out = comb
        .loss((ve.as_tensor(), vw.as_tensor()), &tensor(&y))
        .unwrap();
    same_on_two(out, (&ve, &vw), v, (&g.embeddings, &g.weight));
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
    let (va, vb) = (var(&a), var(&b));
    let out = loss
        .loss((va.as_tensor(), vb.as_tensor()), &tensor(&flags))
        .unwrap();
    same_on_two(out, (&va, &vb), v, (&g.x1, &g.x2));
    let labels = flags.mapv(|f| 2.0 * f - 1.0);
    let cosine = CosineEmbedding::new().with_margin(0.2).unwrap();
    let pair = Pair {
        x1: a.view(),
        x2: b.view(),
    };
    let (v, g) = cosine.forward_backward(pair, labels.view()).unwrap();
    let out = cosine
        .loss((va.as_tensor(), vb.as_tensor()), &tensor(&labels))
        .unwrap();
    same_on_two(out, (&va, &vb), v, (&g.x1, &g.x2));
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
    // d/dc_k of the mean of |f_i - c_{y_i}|^2 / 2 is minus the sum of the
    // features' gradients with label k; class 2 has none.
    let labels: Vec<usize> = y.iter().map(|&k| k as usize).collect();
    let gc = centers_gradient(&gf, &labels, 4);
    let (vf, vc) = (var(&f), var(&c));
    let out = loss
        .loss((vf.as_tensor(), vc.as_tensor()), &tensor(&y))
        .unwrap();
    same_on_two(out, (&vf, &vc), v, (&gf, &gc));
    // And against finite differences of the value, through candle.
    let h = 1e-6;
    let base = c.clone();
    for k in 0..4 {
        for d in 0..3 {
            let mut up = base.clone();
            up[[k, d]] += h;
            let mut down = base.clone();
            down[[k, d]] -= h;
            let at = |cc: &Array2<f64>| {
                loss.loss((&tensor(&f), &tensor(cc)), &tensor(&y))
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (at(&up) - at(&down)) / (2.0 * h);
            assert!(
                (fd - gc[[k, d]]).abs() < 1e-7,
                "{k},{d}: {fd} vs {}",
                gc[[k, d]]
            );
        }
    }
}

#[test]
fn the_gradient_is_scaled_by_the_upstream_gradient() {
    let x: Array2<f32> = to(&filled((3, 4), 15, 2.0));
    let y = array![1_u32, 0, 3];
    let ce = CrossEntropy::<f32>::new();
    let (_, g) = ce.forward_backward(x.view(), Labels::from(&y)).unwrap();
    let v = var(&x);
    let out = (ce.loss(v.as_tensor(), &tensor(&y)).unwrap() * 3.0).unwrap();
    let grads = out.backward().unwrap();
    let want: Vec<f32> = g.iter().map(|&g| g * 3.0).collect();
    assert_eq!(values::<f32>(grads.get(&v).unwrap()), want);
    // Two uses of one loss add up, as candle adds any two paths.
    let out = ce.loss(v.as_tensor(), &tensor(&y)).unwrap();
    let twice = (&out + &out).unwrap();
    let grads = twice.backward().unwrap();
    let want: Vec<f32> = g.iter().map(|&g| g * 2.0).collect();
    assert_eq!(values::<f32>(grads.get(&v).unwrap()), want);
}

#[test]
fn an_earlier_steps_gradients_survive_the_next_step() {
    // The ops hand their gradient tensors to the next call of the same
    // shape once dropped. Neither the gradients a user keeps (after the
    // loss and its op are gone) nor a loss still alive may see the next
    // step's values.
    let ce = CrossEntropy::<f32>::new();
    let y = array![2_u32, 0, 1];
    let x1: Array2<f32> = to(&filled((3, 7), 40, 2.0));
    let x2: Array2<f32> = to(&filled((3, 7), 41, 2.0));
    let (_, g1) = ce.forward_backward(x1.view(), Labels::from(&y)).unwrap();
    let (_, g2) = ce.forward_backward(x2.view(), Labels::from(&y)).unwrap();
    let g1: Vec<f32> = g1.iter().copied().collect();
    let g2: Vec<f32> = g2.iter().copied().collect();
    let (v1, v2) = (var(&x1), var(&x2));
    // The loss is dropped at the end of the block: its op's tensor is
    // spare from then on, while the user keeps the gradients.
    let kept_grads = {
        let loss = ce.loss(v1.as_tensor(), &tensor(&y)).unwrap();
        loss.backward().unwrap()
    };
    let kept_loss = ce.loss(v1.as_tensor(), &tensor(&y)).unwrap();
    for _ in 0..3 {
        let out = ce.loss(v2.as_tensor(), &tensor(&y)).unwrap();
        let grads = out.backward().unwrap();
        assert_eq!(values::<f32>(grads.get(&v2).unwrap()), g2);
    }
    assert_eq!(values::<f32>(kept_grads.get(&v1).unwrap()), g1);
    let again = kept_loss.backward().unwrap();
    assert_eq!(values::<f32>(again.get(&v1).unwrap()), g1);
    classloss_candle::release_spare_gradients();
}

#[test]
fn a_tracked_target_gets_no_gradient_and_no_error() {
    // Distillation: the teacher's probabilities come from a variable.
    let x: Array2<f64> = filled((3, 4), 42, 2.0);
    let p = probs(3, 4, 43);
    let kl = KlDivergence::new();
    let (value, grad) = kl.forward_backward(x.view(), p.view()).unwrap();
    let teacher = var(&p);
    let out = kl.loss(&tensor(&x), teacher.as_tensor()).unwrap();
    assert_eq!(out.to_scalar::<f64>().unwrap(), value);
    let grads = out.backward().unwrap();
    assert!(grads.get(&teacher).is_none());
    // Both tracked: the input's gradient only.
    let student = var(&x);
    let out = kl.loss(student.as_tensor(), teacher.as_tensor()).unwrap();
    let grads = out.backward().unwrap();
    assert_eq!(
        values::<f64>(grads.get(&student).unwrap()),
        grad.iter().copied().collect::<Vec<_>>()
    );
    assert!(grads.get(&teacher).is_none());
    // One of two inputs tracked: a gradient for that one only.
    let e: Array2<f64> = filled((3, 4), 44, 1.0);
    let w = var(&filled((5, 4), 45, 1.0));
    let y = array![0_u32, 4, 2];
    let te = tensor(&e);
    let out = ArcFace::new()
        .loss((&te, w.as_tensor()), &tensor(&y))
        .unwrap();
    let grads = out.backward().unwrap();
    assert!(grads.get(&w).is_some());
    assert!(grads.get(&te).is_none());
}

#[test]
fn reduction_none_gives_the_unreduced_values_each_with_its_gradient() {
    // (N, C) logits: one value per sample; each row's gradient scaled by
    // its own upstream value.
    let x: Array2<f64> = filled((4, 3), 46, 3.0);
    let y = array![2_u32, 0, 1, 1];
    let w = array![0.5_f64, -2.0, 1.0, 3.0];
    let ce = CrossEntropy::<f64>::new()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_reduction(Reduction::None);
    let per = ce.per_sample(x.view(), Labels::from(&y)).unwrap();
    let (_, g) = ce.forward_backward(x.view(), Labels::from(&y)).unwrap();
    let v = var(&x);
    let out = ce.loss(v.as_tensor(), &tensor(&y)).unwrap();
    assert_eq!(out.dims(), &[4]);
    assert_eq!(values::<f64>(&out), per.to_vec());
    let grads = out
        .mul(&tensor(&w))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let want = &g * &w.view().insert_axis(Axis(1));
    assert_eq!(
        values::<f64>(grads.get(&v).unwrap()),
        want.iter().copied().collect::<Vec<_>>()
    );
    // Elementwise (BCE with logits): the upstream has the input's shape.
    let t: Array2<f64> = filled((4, 3), 47, 1.0).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let up: Array2<f64> = filled((4, 3), 48, 1.0);
    let bce = BceWithLogits::new().with_reduction(Reduction::None);
    let (_, g) = bce.forward_backward(x.view(), t.view()).unwrap();
    let out = bce.loss(v.as_tensor(), &tensor(&t)).unwrap();
    assert_eq!(out.dims(), &[4, 3]);
    let grads = out
        .mul(&tensor(&up))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let want = &g * &up;
    assert_eq!(
        values::<f64>(grads.get(&v).unwrap()),
        want.iter().copied().collect::<Vec<_>>()
    );
    // Spatial: one value per position, the class axis (1) broadcast.
    let xs: Array3<f64> = filled((2, 3, 2), 49, 2.0);
    let ys = array![[0_u32, 2], [1, 1]];
    let up = array![[1.0_f64, -1.0], [0.5, 2.0]];
    let ce = CrossEntropy::<f64, ndarray::Ix3>::spatial().with_reduction(Reduction::None);
    let (_, g) = ce.forward_backward(xs.view(), Labels::from(&ys)).unwrap();
    let vs = var(&xs);
    let out = ce.loss(vs.as_tensor(), &tensor(&ys)).unwrap();
    assert_eq!(out.dims(), &[2, 2]);
    let grads = out
        .mul(&tensor(&up))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let want = &g * &up.view().insert_axis(Axis(1));
    assert_eq!(
        values::<f64>(grads.get(&vs).unwrap()),
        want.iter().copied().collect::<Vec<_>>()
    );
    // Untracked: the values alone.
    let out = ce.loss(&tensor(&xs), &tensor(&ys)).unwrap();
    assert_eq!(out.dims(), &[2, 2]);
}

#[test]
fn strided_and_broadcast_inputs_are_read_in_place() {
    // A transposed tensor (strides (1, 5)) and a broadcast target.
    let xt: Array2<f64> = filled((4, 5), 16, 3.0);
    let y = array![3_u32, 0, 2, 1, 3];
    let ce = CrossEntropy::<f64>::new();
    let (v, g) = ce.forward_backward(xt.t(), Labels::from(&y)).unwrap();
    let var_t = var(&xt);
    let strided = var_t.as_tensor().t().unwrap();
    assert!(!strided.is_contiguous());
    let out = ce.loss(&strided, &tensor(&y)).unwrap();
    assert_eq!(out.to_scalar::<f64>().unwrap(), v);
    let grads = out.backward().unwrap();
    let gt = grads.get(&var_t).unwrap().t().unwrap();
    assert_eq!(values::<f64>(&gt), g.iter().copied().collect::<Vec<_>>());

    let logits = Tensor::new(&[0.5_f64, -1.0, 2.0], &Device::Cpu)
        .unwrap()
        .broadcast_as((3, 3))
        .unwrap();
    let row = array![[0.5_f64, -1.0, 2.0]];
    let same = ndarray::concatenate(Axis(0), &[row.view(), row.view(), row.view()]).unwrap();
    let y = array![0_u32, 1, 2];
    let want = ce.forward(same.view(), Labels::from(&y)).unwrap();
    let got = ce
        .loss(&logits, &tensor(&y))
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn the_gradient_reaches_a_models_parameters() {
    // logits = x w: candle carries classloss's gradient through the matmul.
    let x: Array2<f32> = to(&filled((6, 3), 17, 1.0));
    let w: Array2<f32> = to(&filled((3, 4), 18, 1.0));
    let y = array![0_u32, 1, 2, 3, 0, 1];
    let ce = CrossEntropy::<f32>::new()
        .with_label_smoothing(0.1)
        .unwrap();
    let vw = var(&w);
    let logits = tensor(&x).matmul(vw.as_tensor()).unwrap();
    let out = ce.loss(&logits, &tensor(&y)).unwrap();
    let grads = out.backward().unwrap();
    let gw = values::<f32>(grads.get(&vw).unwrap());
    let l: Array2<f32> = x.dot(&w);
    let (_, g) = ce.forward_backward(l.view(), Labels::from(&y)).unwrap();
    let want = x.t().dot(&g);
    for (a, b) in gw.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
    // candle's own autograd of the same loss, written with candle's ops:
    // mean of (1 - eps) nll_y + eps / C sum_c nll_c.
    let eps = 0.1_f64;
    let lse = {
        let m = logits.max_keepdim(1).unwrap();
        (logits
            .broadcast_sub(&m)
            .unwrap()
            .exp()
            .unwrap()
            .sum_keepdim(1)
            .unwrap()
            .log()
            .unwrap()
            + &m)
            .unwrap()
    };
    let logp = logits.broadcast_sub(&lse).unwrap();
    let picked = logp
        .gather(&tensor(&y).unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    let smooth = logp.mean(1).unwrap();
    let own = ((picked.affine(-(1.0 - eps), 0.0).unwrap() - smooth.affine(eps, 0.0).unwrap())
        .unwrap())
    .mean_all()
    .unwrap();
    let ours = out.to_scalar::<f32>().unwrap();
    assert!((own.to_scalar::<f32>().unwrap() - ours).abs() < 1e-6);
    let own_grads = own.backward().unwrap();
    for (a, b) in values::<f32>(own_grads.get(&vw).unwrap()).iter().zip(&gw) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn bad_input_gives_the_core_error_text() {
    let x = array![[0.0_f32, 1.0], [2.0, 3.0]];
    let y = array![0_u32, 5];
    let ce = CrossEntropy::<f32>::new();
    let core = ce
        .forward(x.view(), Labels::from(&y))
        .unwrap_err()
        .to_string();
    let got = ce.loss(&tensor(&x), &tensor(&y)).unwrap_err().to_string();
    assert_eq!(got, core);
    assert!(
        got.contains("label 5 is out of range for 2 classes"),
        "{got}"
    );

    // The loss's float type is f32: an f64 tensor is a dtype error.
    let err = ce
        .loss(&tensor(&x.mapv(f64::from)), &tensor(&y))
        .unwrap_err();
    assert!(
        matches!(
            err,
            candle_core::Error::UnexpectedDType {
                msg: "input",
                expected: DType::F32,
                got: DType::F64
            }
        ),
        "{err}"
    );
    // A rank-1 input to the (N, C) loss: the core's rank error.
    let err = ce
        .loss(
            &Tensor::new(&[1.0_f32, 2.0], &Device::Cpu).unwrap(),
            &tensor(&y),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(err, "input: expected 2 dimensions, got 1 (shape [2])");
    // A float target is cross-entropy's probabilities, checked as such.
    let err = ce.loss(&tensor(&x), &tensor(&x)).unwrap_err().to_string();
    assert_eq!(err, "probs[1, 0]: expected a probability in [0, 1], got 2");
    // A loss that takes either float type names both; labels of a float
    // type are not labels.
    let err = LabelSmoothing::new()
        .loss(&tensor(&x).to_dtype(DType::BF16).unwrap(), &tensor(&y))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "classloss: input: expected dtype F32 or F64, got BF16");
    let err = SoftmaxFocal::<f32>::new()
        .loss(&tensor(&x), &tensor(&array![0.0_f32, 1.0]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "classloss: target: expected an integer dtype (U8, U32, I16, I32 or I64), got F32"
    );
    // A loss option the core rejects never reaches candle.
    assert!(SoftmaxFocal::<f32>::new().with_gamma(-1.0).is_err());
}

/// `Loss` is in scope for `forward`; keep the import honest.
#[allow(dead_code)]
fn forward_is_the_cores<L: Loss<f32>>(_: &L) {}
