//! Finite inputs at the edges of the float range (subnormals, values near
//! the float maximum, options far outside their usual range): each test is
//! a reproducer of a wrong result that a fuzzing campaign or a stricter
//! harness found (issue 11), with the exact answer it must give instead.
//! The rule they check: a finite input gives a finite, correct value and
//! gradient, or `Error::Overflow` where the exact value does not fit.

use crate::common::{arcface_tiny_row_case, cosface_near_f32_max_case, embeddings, pair_of};
use classloss::{
    AngularMargin, ArcFace, Bce, BceWithLogits, CenterInput, CenterLoss, ClassTarget,
    ClassifierLoss, CombinedMargin, Contrastive, ContrastiveForm, CosFace, CrossEntropy,
    Differentiable, Error, Exponential, GeneralizedCrossEntropy, HardBootstrapping, Hinge,
    KlDivergence, LabelSmoothing, Labels, Loss, LossScaler, MultiMargin, Poly1, SigmoidFocal,
    SoftBootstrapping, SoftmaxFocal, StepDecision, SymmetricCrossEntropy,
};
use ndarray::{Array1, Array2, array};

/// `a` within `rel` of `b`, relatively.
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn cross_entropy_with_subnormal_class_weights_is_the_same_from_every_call() {
    // The mean divides by the weight of the label, so a subnormal weight
    // cancels: the value is ln 3 from forward and the fused call alike.
    let labels = array![0_usize];
    let ce = CrossEntropy::new()
        .with_weight(array![5e-324_f64, 0.0, 0.0])
        .unwrap();
    let x = array![[0.0_f64, 0.0, 0.0]];
    let v = ce.forward(x.view(), labels.view()).unwrap();
    let (fv, g) = ce.forward_backward(x.view(), labels.view()).unwrap();
    assert!(close(v, 3f64.ln(), 1e-15), "{v}");
    assert_eq!(v, fv);
    assert!(close(g[[0, 1]], 1.0 / 3.0, 1e-15), "{g}");
    let ce = CrossEntropy::new()
        .with_weight(array![1e-45_f32, 0.0, 0.0])
        .unwrap();
    let x = array![[0.0_f32, 0.0, 0.0]];
    let v = ce.forward(x.view(), labels.view()).unwrap();
    let (fv, _) = ce.forward_backward(x.view(), labels.view()).unwrap();
    assert!(close(f64::from(v), 3f64.ln(), 1e-6), "{v}");
    assert_eq!(v, fv);
}

#[test]
fn smoothed_cross_entropy_of_huge_f32_logits_fits() {
    // The smoothing term is 0.1 / 3 * (3e38 + 3e38) = 2e37.
    let ce = CrossEntropy::new().with_label_smoothing(0.1).unwrap();
    let x = array![[-1.5e38_f32, -1.5e38, 1.5e38]];
    let (v, g) = ce
        .forward_backward(x.view(), array![2_usize].view())
        .unwrap();
    assert!(close(f64::from(v), 2e37, 1e-6), "{v}");
    assert!(g.iter().all(|g| g.is_finite()), "{g}");
}

#[test]
fn bce_with_logits_ignores_a_huge_logit_of_weight_zero() {
    let loss = BceWithLogits::new()
        .with_weight(array![0.0_f32, 1.0])
        .unwrap()
        .with_pos_weight(array![8.0_f32, 8.0])
        .unwrap();
    let x = array![[-3.4e38_f32, 0.0]];
    let t = array![[1.0_f32, 1.0]];
    let (v, g) = loss.forward_backward(x.view(), t.view()).unwrap();
    assert!(close(f64::from(v), 4.0 * 2f64.ln(), 1e-6), "{v}");
    assert_eq!(g[[0, 0]], 0.0);
    assert!(close(f64::from(g[[0, 1]]), -2.0, 1e-6), "{g}");
}

#[test]
fn softmax_focal_with_a_huge_alpha_on_a_certain_sample_is_zero() {
    let focal = SoftmaxFocal::new().with_alpha(1e39).unwrap();
    let x = array![[0.0_f32]];
    let (v, g) = focal
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert_eq!((v, g[[0, 0]]), (0.0, 0.0));
}

#[test]
fn softmax_focal_with_a_huge_gamma_has_a_finite_gradient() {
    let x = array![[0.5_f32, -0.25, 2.0], [3.0, 0.0, -1.0]];
    let labels = array![1_usize, 0];
    for gamma in [1e39, 1e6, 300.0] {
        let focal = SoftmaxFocal::new().with_gamma(gamma).unwrap();
        let (v, g) = focal.forward_backward(x.view(), labels.view()).unwrap();
        assert!(
            v.is_finite() && g.iter().all(|g| g.is_finite()),
            "{gamma}: {v} {g}"
        );
        let focal64 = SoftmaxFocal::<f64>::new().with_gamma(gamma).unwrap();
        let (v64, g64) = focal64
            .forward_backward(x.mapv(f64::from).view(), labels.view())
            .unwrap();
        assert!(v64.is_finite() && g64.iter().all(|g| g.is_finite()));
    }
}

#[test]
fn weighted_probability_targets_near_f32_max_have_a_finite_gradient() {
    // d/dx_j = p_j sum_c w_c t_c - w_j t_j = 0.5 * 3.6e38 - 1.8e38 = 0.
    let ce = CrossEntropy::new()
        .with_weight(array![3e38_f32, 3e38])
        .unwrap();
    let x = array![[0.0_f32, 0.0]];
    let t = array![[0.6_f32, 0.6]];
    let (v, g) = ce
        .forward_backward(x.view(), ClassTarget::Probs(t.view()))
        .unwrap();
    assert!(
        close(f64::from(v), 3.6e38 * 2f64.ln(), 1e-6) || v.is_infinite(),
        "{v}"
    );
    assert!(g.iter().all(|g| g.abs() < 1e32), "{g}");
}

#[test]
fn contrastive_pairs_at_the_float_range() {
    // A dissimilar pair 6e38 apart is beyond the margin: value and
    // gradient 0, though the distance itself does not fit f32.
    let (x1, x2) = (array![[3e38_f32]], array![[-3e38_f32]]);
    let loss = Contrastive::new();
    let (v, g) = loss
        .forward_backward(pair_of(&x1, &x2), array![0.0_f32].view())
        .unwrap();
    assert_eq!((v, g.x1[[0, 0]], g.x2[[0, 0]]), (0.0, 0.0, 0.0));
    // A NaN in either input of a similar pair is passed through.
    for (x1, x2) in [
        (array![[f32::NAN]], array![[1.0_f32]]),
        (array![[1.0_f32]], array![[f32::NAN]]),
    ] {
        let v = loss
            .forward(pair_of(&x1, &x2), array![1.0_f32].view())
            .unwrap();
        assert!(v.is_nan(), "{v}");
    }
    // A similar pair a subnormal distance apart (hinge form: the distance):
    // the gradient is the unit direction.
    let (x1, x2) = (array![[0.0_f32]], array![[1.4e-42_f32]]);
    let hinge = Contrastive::new().with_form(ContrastiveForm::Hinge);
    let (_, g) = hinge
        .forward_backward(pair_of(&x1, &x2), array![1.0_f32].view())
        .unwrap();
    assert_eq!((g.x1[[0, 0]], g.x2[[0, 0]]), (-1.0, 1.0));
    // A similar f64 pair 2e300 apart: half its square does not fit f64.
    let (x1, x2) = (array![[1e300_f64]], array![[-1e300_f64]]);
    let err = loss
        .forward(pair_of(&x1, &x2), array![1.0_f64].view())
        .unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
}

#[test]
fn center_loss_near_f32_max_is_exact_or_overflow() {
    // 0.5 * (2.25e38 + 2.25e38) = 2.25e38 fits f32, its double does not.
    let x = array![[1.5e19_f32, 1.5e19]];
    let c = Array2::<f32>::zeros((1, 2));
    let input = CenterInput {
        features: x.view(),
        centers: c.view(),
    };
    let v = CenterLoss::new()
        .forward(input, array![0_usize].view())
        .unwrap();
    assert!(close(f64::from(v), 2.25e38, 1e-6), "{v}");
    let x = array![[2e19_f32, 2e19]];
    let input = CenterInput {
        features: x.view(),
        centers: c.view(),
    };
    let err = CenterLoss::new()
        .forward(input, array![0_usize].view())
        .unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
    // A NaN in the features or in the centers is passed through.
    let (x, c) = (array![[1.0_f32, 2.0]], array![[0.0_f32, 1.0]]);
    let (nan_x, nan_c) = (array![[f32::NAN, 2.0]], array![[0.0_f32, f32::NAN]]);
    for (features, centers) in [(&nan_x, &c), (&x, &nan_c)] {
        let input = CenterInput {
            features: features.view(),
            centers: centers.view(),
        };
        let v = CenterLoss::new()
            .forward(input, array![0_usize].view())
            .unwrap();
        assert!(v.is_nan(), "{v}");
    }
}

#[test]
fn cosface_normalizes_huge_and_subnormal_rows() {
    let cf = CosFace::new();
    let w = array![[-1.0_f32, 1.0], [1.0, 1.0]];
    let labels = array![0_usize];
    let small = array![[-3.0_f32, 1.0]];
    let huge = array![[-3e38_f32, 1e38]];
    let (vs, gs) = cf
        .forward_backward(embeddings(&small, &w), labels.view())
        .unwrap();
    let (vh, gh) = cf
        .forward_backward(embeddings(&huge, &w), labels.view())
        .unwrap();
    assert!(close(f64::from(vh), f64::from(vs), 1e-6), "{vh} vs {vs}");
    // The embedding gradient scales with 1 / |e| (1e-38 here, subnormal in
    // f32); the weight's does not.
    for (a, b) in gh.embeddings.iter().zip(&gs.embeddings) {
        let expected = f64::from(*b) * 1e-38;
        assert!(
            (f64::from(*a) - expected).abs() <= 1e-4 * 1e-38,
            "{a} vs {expected}"
        );
    }
    for (a, b) in gh.weight.iter().zip(&gs.weight) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{a} vs {b}");
    }
    // A class row of subnormal norm is a direction like any other; the
    // gradient with respect to it is about 1e40: an overflow in f32.
    let w = array![[0.0_f32, 1e-40], [1.0, 0.0]];
    let e = array![[1.0_f32, 1.0]];
    let err = cf
        .forward_backward(embeddings(&e, &w), labels.view())
        .unwrap_err();
    match err {
        Error::Overflow { what, index, .. } => assert_eq!((what, index), ("weight", vec![0, 0])),
        e => panic!("{e}"),
    }
    let v = cf.forward(embeddings(&e, &w), labels.view()).unwrap();
    let w64 = w.mapv(f64::from);
    let e64 = e.mapv(f64::from);
    let (v64, g64) = cf
        .forward_backward(embeddings(&e64, &w64), labels.view())
        .unwrap();
    assert!(close(f64::from(v), v64, 1e-6), "{v} vs {v64}");
    assert!(g64.weight[[0, 0]].abs() > 1e39, "{}", g64.weight);
}

#[test]
fn angular_embeddings_beyond_f64_or_subnormal_keep_their_direction() {
    // f64 rows in the direction of [-3, 1]: one whose norm passes f64
    // (a = 5.9e307, norm 1.87e308) and one of subnormal entries -6 and 2
    // times 2^-1074, whose norm would round to 6 units (the direction lost)
    // unless the row is first scaled by a power of two.
    fn check<L>(name: &str, loss: &L)
    where
        L: for<'a> Differentiable<
                f64,
                Input<'a> = classloss::Embeddings<'a, f64>,
                Target<'a> = Labels<'a>,
                Grad = classloss::EmbeddingsGrad<f64>,
            >,
    {
        let w = array![[-1.0_f64, 1.0], [1.0, 1.0]];
        let labels = array![0_usize];
        let unit = f64::from_bits(1); // 2^-1074
        let a = 5.9e307;
        let small = array![[-3.0, 1.0]];
        let (v, g) = loss
            .forward_backward(embeddings(&small, &w), Labels::from(&labels))
            .unwrap();
        let huge = array![[-3.0 * a, a]];
        let (vh, gh) = loss
            .forward_backward(embeddings(&huge, &w), Labels::from(&labels))
            .unwrap();
        assert!(v > 0.1, "{name}: {v}");
        assert!(close(vh, v, 1e-14), "{name}: {vh} vs {v}");
        for (x, y) in gh.embeddings.iter().zip(&g.embeddings) {
            assert!(close(*x, y / a, 1e-12), "{name}: {x:e} vs {:e}", y / a);
        }
        let tiny = array![[-6.0 * unit, 2.0 * unit]];
        let vt = loss
            .forward(embeddings(&tiny, &w), Labels::from(&labels))
            .unwrap();
        assert!(close(vt, v, 1e-14), "{name}: {vt} vs {v}");
        // Its gradient scales with 1 / |e| = 1.6e322: beyond f64.
        match loss.forward_backward(embeddings(&tiny, &w), Labels::from(&labels)) {
            Err(Error::Overflow { what, .. }) => assert_eq!(what, "embeddings"),
            r => panic!("{name}: {r:?}"),
        }
    }
    // A small scale, so that the loss is not saturated at 0.
    check("cosface", &CosFace::new().with_scale(2.0).unwrap());
    check("arcface", &ArcFace::new().with_scale(2.0).unwrap());
}

#[test]
fn multi_margin_adds_the_margin_to_the_exact_logit_difference() {
    // 1 - x_y + x_j with x_y = x_j = 1e30 is 1 exactly: the loss is 1 / 2.
    let x = array![[1e30_f64, 1e30]];
    let loss = MultiMargin::new();
    let v = loss.forward(x.view(), array![0_usize].view()).unwrap();
    assert_eq!(v, 0.5);
}

#[test]
fn combined_margin_with_one_class_is_zero_at_any_scale() {
    let loss = CombinedMargin::new().with_scale(3e38).unwrap();
    let e = array![[1.0_f32, 2.0]];
    let w = array![[0.5_f32, -1.0]];
    let (v, g) = loss
        .forward_backward(embeddings(&e, &w), array![0_usize].view())
        .unwrap();
    assert_eq!(v, 0.0);
    assert!(
        g.embeddings.iter().chain(&g.weight).all(|&g| g == 0.0),
        "{g:?}"
    );
}

#[test]
fn arcface_with_a_margin_near_pi_agrees_with_f64() {
    // cos(pi - m) is within 5e-9 of 1: in f32 it rounds to 1, and the
    // fallback must still apply at cos = 1 exactly as in f64.
    let m = std::f64::consts::PI - 1e-4;
    let arc = ArcFace::new().with_margin(m).unwrap();
    let cos = array![[1.0_f32, 0.0], [0.3, -0.2]];
    let labels = array![0_usize, 1];
    let (v32, g32) = arc
        .clone()
        .on_cosines()
        .forward_backward(cos.view(), labels.view())
        .unwrap();
    let (v64, g64) = arc
        .on_cosines()
        .forward_backward(cos.mapv(f64::from).view(), labels.view())
        .unwrap();
    assert!(close(f64::from(v32), v64, 1e-5), "{v32} vs {v64}");
    for (a, b) in g32.iter().zip(&g64) {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{a} vs {b}"
        );
    }
}

#[test]
fn update_centers_keeps_centers_finite_or_fails_unchanged() {
    // Each new center is a convex combination of the old one and its
    // class's features: at the float maximum it still fits.
    let loss = CenterLoss::new().with_alpha(1.0).unwrap();
    let m = f32::MAX;
    let x = array![[m, -m], [m, -m], [m, -m]];
    let mut c = array![[m, -m]];
    loss.update_centers(x.view(), array![0_usize, 0, 0].view(), c.view_mut())
        .unwrap();
    assert!(c.iter().all(|v| v.is_finite()), "{c}");
    assert_eq!(c, array![[m, -m]]);
    let m = f64::MAX;
    let x = array![[m, -m], [m, -m], [m, -m]];
    let mut c = array![[m, -m]];
    loss.update_centers(x.view(), array![0_usize, 0, 0].view(), c.view_mut())
        .unwrap();
    assert!(c.iter().all(|v| v.is_finite()), "{c}");
}

#[test]
fn angular_margins_at_a_scale_near_f32_max() {
    // One class: the loss is 0 whatever the target logit.
    let loss = CombinedMargin::new().with_scale(3e38).unwrap();
    for cos in [1.0_f32, 0.0, -1.0] {
        let (v, g) = loss
            .clone()
            .on_cosines()
            .forward_backward(array![[cos]].view(), array![0_usize].view())
            .unwrap();
        assert_eq!((v, g[[0, 0]]), (0.0, 0.0), "cos {cos}");
    }
    // Two classes: s (c_1 - phi(c_0)) = 3e38 * 2.x is beyond f32.
    let err = loss
        .on_cosines()
        .forward(array![[-1.0_f32, 1.0]].view(), array![0_usize].view())
        .unwrap_err();
    match err {
        Error::Overflow { index, .. } => assert_eq!(index, vec![0]),
        e => panic!("{e}"),
    }
}

#[test]
fn update_centers_at_the_float_maximum_for_every_class_size() {
    for n in 1..8 {
        for alpha in [1.0, 0.5, 0.3, 0.7] {
            let loss = CenterLoss::new().with_alpha(alpha).unwrap();
            let m = f32::MAX;
            let x = Array2::from_elem((n, 2), m);
            let mut c = array![[m, m]];
            let labels = ndarray::Array1::<usize>::zeros(n);
            loss.update_centers(x.view(), labels.view(), c.view_mut())
                .unwrap();
            assert!(
                c.iter().all(|v| v.is_finite()),
                "f32 n={n} alpha={alpha}: {c}"
            );
            let m = f64::MAX;
            let x = Array2::from_elem((n, 2), m);
            let mut c = array![[m, -m]];
            let r = loss.update_centers(x.view(), labels.view(), c.view_mut());
            assert!(
                c.iter().all(|v| v.is_finite()) || matches!(r, Err(Error::Overflow { .. })),
                "f64 n={n} alpha={alpha}: {c}"
            );
        }
    }
}

#[test]
fn options_beyond_f32_are_computed_in_f64() {
    let x = array![[1.0_f32, 0.5, -2.0], [0.25, 3.0, 0.0]];
    let labels = array![0_usize, 1];
    // Poly-1 with epsilon 1e39: the loss epsilon (1 - p_y) + ... fits f32
    // (2.5e38), so it is returned; the gradient is what f64 gives, or an
    // overflow where an entry of that is beyond f32.
    for eps in [1e39, 3e38, 1e30] {
        let poly = Poly1::<f32>::new().with_epsilon(eps).unwrap();
        let v = poly.forward(x.view(), labels.view()).unwrap();
        let (v64, g64) = Poly1::<f64>::new()
            .with_epsilon(eps)
            .unwrap()
            .forward_backward(x.mapv(f64::from).view(), labels.view())
            .unwrap();
        assert!(close(f64::from(v), v64, 1e-5), "{v} vs {v64}");
        let beyond = g64.iter().any(|g| g.abs() > f64::from(f32::MAX));
        match poly.forward_backward(x.view(), labels.view()) {
            Ok((_, g)) => {
                assert!(!beyond, "eps {eps}: {g}");
                for (a, b) in g.iter().zip(&g64) {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-5 * b.abs() + 1e-30,
                        "{a} vs {b}"
                    );
                }
            }
            Err(Error::Overflow { quantity, .. }) => {
                assert!(beyond, "eps {eps}: {g64}");
                assert_eq!(quantity, "the gradient of the sample's loss");
            }
            Err(e) => panic!("{e}"),
        }
    }
    // GCE with q = 5e-324, below f32's range: the limit, cross-entropy.
    let gce = GeneralizedCrossEntropy::new().with_q(5e-324).unwrap();
    let ce = CrossEntropy::new();
    let (v, g) = gce.forward_backward(x.view(), labels.view()).unwrap();
    let (v_ce, g_ce) = ce.forward_backward(x.view(), labels.view()).unwrap();
    assert!((v - v_ce).abs() <= 1e-6 * v_ce, "{v} vs {v_ce}");
    assert!(
        g.iter().zip(&g_ce).all(|(a, b)| (a - b).abs() <= 1e-6),
        "{g}"
    );
    // SCE with beta 1e39 on a sample it classifies with certainty: the
    // reverse term beta (-log_zero) (1 - p_y) is 0.
    let sce = SymmetricCrossEntropy::new().with_beta(1e39).unwrap();
    let (v, g) = sce
        .forward_backward(array![[0.0_f32]].view(), array![0_usize].view())
        .unwrap();
    assert_eq!((v, g[[0, 0]]), (0.0, 0.0));
    // The hinge with margin 1e39: z = 1e39 - y s, beyond f32.
    let hinge = Hinge::new().with_margin(1e39).unwrap();
    let err = hinge
        .forward(array![0.5_f32].view(), array![1.0_f32].view())
        .unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
}

#[test]
fn a_gradient_beyond_the_float_type_is_an_overflow() {
    // BCE with a weight near f32::MAX at p = 0.5, t = 0: the gradient
    // w (p - t) / (p (1 - p)) = 2 w / 1 is beyond f32, the loss w ln 2 not.
    let bce = Bce::new().with_weight(array![3e38_f32]).unwrap();
    let p = array![[0.5_f32]];
    let t = array![[0.0_f32]];
    assert!(bce.forward(p.view(), t.view()).unwrap().is_finite());
    let err = bce.forward_backward(p.view(), t.view()).unwrap_err();
    match err {
        Error::Overflow {
            quantity, index, ..
        } => {
            assert_eq!(
                (quantity, index),
                ("the gradient of the sample's loss", vec![0, 0])
            );
        }
        e => panic!("{e}"),
    }
    // Under the mean the reduction's factor decides: -w / p over 4 elements
    // is -1e39 / 4 = -2.5e38 at p = 1e-3 (fits) and -2.5e39 at p = 1e-4
    // (the first beyond f32), while the mean loss, about 4e36, fits.
    let bce = Bce::new()
        .with_weight(array![1e36_f32, 1.0, 1.0, 1e36])
        .unwrap();
    let p = array![[1e-3_f32, 0.5, 0.5, 1e-4]];
    let t = array![[1.0_f32, 1.0, 1.0, 1.0]];
    assert!(bce.forward(p.view(), t.view()).unwrap().is_finite());
    match bce.forward_backward(p.view(), t.view()).unwrap_err() {
        Error::Overflow { index, actual, .. } => {
            assert_eq!((index, actual.as_str()), (vec![0, 3], "about 2.500e39"));
        }
        e => panic!("{e}"),
    }
    // The exponential loss at y s = -90 over 1e4 samples: exp(90) = 1.2e39
    // is beyond f32, its mean share 1.2e35 is not, nor its gradient.
    let n = 10_000;
    let mut s = ndarray::Array1::<f32>::zeros(n);
    s[0] = -90.0;
    let y = ndarray::Array1::<f32>::ones(n);
    let exp = Exponential::new();
    let (v, g) = exp.forward_backward(s.view(), y.view()).unwrap();
    assert!(close(f64::from(v), 90f64.exp() / n as f64, 1e-5), "{v}");
    assert!(
        close(f64::from(-g[0]), 90f64.exp() / n as f64, 1e-5),
        "{}",
        g[0]
    );
}

#[test]
fn multi_margin_ignores_the_terms_of_a_class_of_weight_zero() {
    let loss = MultiMargin::new()
        .with_p(2)
        .unwrap()
        .with_weight(array![0.0_f32, 1.0])
        .unwrap();
    let x = array![[-3e38_f32, 3e38], [0.0, 1.0]];
    let (v, g) = loss
        .forward_backward(x.view(), array![0_usize, 1].view())
        .unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&g| g == 0.0), "{g}");
}

/// Every softmax loss on labels, on f32 logits spanning the whole range.
#[test]
fn softmax_losses_on_logits_spanning_the_float_range() {
    let m = f32::MAX;
    let rows = [
        array![[-m, m, 0.0]],
        array![[m, -m, 0.0]],
        array![[0.0, -m, m]],
        array![[m, m, -m]],
    ];
    fn check<L: ClassifierLoss<f32>>(name: &str, loss: &L, x: &Array2<f32>) {
        for label in 0..3_usize {
            let y = array![label];
            match loss.forward_backward(x.view(), Labels::from(y.view())) {
                Ok((v, g)) => assert!(
                    v.is_finite() && g.iter().all(|g| g.is_finite()),
                    "{name} {x} label {label}: {v} {g}"
                ),
                Err(Error::Overflow { .. }) => {}
                Err(e) => panic!("{name} {x}: {e}"),
            }
        }
    }
    for x in &rows {
        check("ce", &CrossEntropy::new(), x);
        check(
            "ce smoothing",
            &CrossEntropy::new().with_label_smoothing(0.2).unwrap(),
            x,
        );
        check("label smoothing", &LabelSmoothing::new(), x);
        check("focal", &SoftmaxFocal::new(), x);
        check("poly1", &Poly1::new(), x);
        check("gce", &GeneralizedCrossEntropy::new(), x);
        check("sce", &SymmetricCrossEntropy::new(), x);
        check("soft boot", &SoftBootstrapping::new(), x);
        check("hard boot", &HardBootstrapping::new(), x);
        check("multi margin", &MultiMargin::new(), x);
        let q = array![[0.3_f32, 0.3, 0.4]];
        let ce = CrossEntropy::new().with_label_smoothing(0.1).unwrap();
        let results = [
            ce.forward_backward(x.view(), ClassTarget::Probs(q.view())),
            KlDivergence::new().forward_backward(x.view(), q.view()),
        ];
        for r in results {
            match r {
                Ok((v, g)) => assert!(v.is_finite() && g.iter().all(|g| g.is_finite()), "{x}"),
                Err(Error::Overflow { .. }) => {}
                Err(e) => panic!("{x}: {e}"),
            }
        }
    }
}

#[test]
fn soft_bootstrapping_of_a_certain_row_spanning_the_float_range_is_zero() {
    // log p of the class at -MAX is -inf in the float type and its p is 0:
    // its entropy term p log p is 0 (not 0 * -inf = NaN, which the engine
    // would report as an overflow). The row is certain of its label, so
    // the loss and its gradient are 0.
    fn certain<F: classloss::Float + std::fmt::Display>() {
        let m = F::max_value();
        let x = array![[-m, m, F::zero()]];
        let (v, g) = SoftBootstrapping::<F>::new()
            .forward_backward(x.view(), array![1_usize].view())
            .unwrap();
        assert!(v == F::zero(), "{v}");
        assert!(g.iter().all(|g| *g == F::zero()), "{g}");
    }
    certain::<f32>();
    certain::<f64>();
}

#[test]
fn sigmoid_focal_alpha_close_to_one_keeps_one_minus_alpha_in_f32() {
    // alpha = 1 - 1e-12 rounds to 1 in f32; the negatives' weight 1e-12 must
    // not: a negative at logit 1e30 costs 1e-12 * 1e30.
    let focal = SigmoidFocal::new()
        .with_alpha(Some(0.999999999999))
        .unwrap()
        .with_gamma(1.0)
        .unwrap();
    let v = focal
        .forward(array![[1e30_f32]].view(), array![[0.0_f32]].view())
        .unwrap();
    assert!(close(f64::from(v), 1e18, 1e-4), "{v}");
}

#[test]
fn cross_entropy_rescaled_weights_keep_an_unused_huge_weight_finite() {
    // The label's weight is subnormal, so the mean is rescaled by 2^149;
    // the weight 1e19 of an unused class must not become inf (NaN gradient).
    let ce = CrossEntropy::new()
        .with_weight(array![1e19_f32, 1.4e-45, 3.0])
        .unwrap();
    let x = array![[0.5_f32, -1.0, 2.0]];
    let (v, g) = ce
        .forward_backward(x.view(), array![1_usize].view())
        .unwrap();
    let plain = CrossEntropy::new();
    let (v0, g0) = plain
        .forward_backward(x.view(), array![1_usize].view())
        .unwrap();
    assert!(close(f64::from(v), f64::from(v0), 1e-6), "{v} vs {v0}");
    assert!(
        g.iter().zip(&g0).all(|(a, b)| (a - b).abs() < 1e-6),
        "{g} vs {g0}"
    );
}

#[test]
fn smoothed_mean_over_a_subnormal_weight_sum_keeps_a_large_unused_weight() {
    // The fuzz case (CI, a74c611): the mean divides by the label's
    // subnormal weight w0, and smoothing adds eps / C * w1 * nll_1 of the
    // unused class (w1 = 12.5). Rescaling the weights by 2^1022 held w1 at
    // f64::MAX, a third of its scaled value: the mean came out 0.16 of the
    // true 2.49e306. The exact mean is the per-sample sum over w0.
    let (w0, w1, eps) = (1.912_172_847_154_626e-308_f64, 12.5, 0.999_999_999_999);
    let ce = CrossEntropy::new()
        .with_weight(array![w0, w1])
        .unwrap()
        .with_label_smoothing(eps)
        .unwrap()
        .with_ignore_index(-89);
    let x = array![[0.0_f64, 4.875], [4.875, 4.875]];
    let y = array![0_i16, -89];
    let lse = 4.875 + (-4.875_f64).exp().ln_1p();
    let (nll0, nll1) = (lse, lse - 4.875);
    let exact = ((1.0 - eps) * w0 * nll0 + eps / 2.0 * (w0 * nll0 + w1 * nll1)) / w0;
    let v = ce.forward(x.view(), y.view()).unwrap();
    assert!(close(v, exact, 1e-12), "{v:e} vs {exact:e}");
    let (fv, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert_eq!(v, fv);
    // d/dx_1 of row 0: (p_1 * total - eps / 2 * w1) / w0, with total the
    // target's weight (1 - eps) w0 + eps / 2 (w0 + w1).
    let p1 = (4.875 - lse).exp();
    let total = (1.0 - eps) * w0 + eps / 2.0 * (w0 + w1);
    let g01 = (p1 * total - eps / 2.0 * w1) / w0;
    assert!(close(g[[0, 1]], g01, 1e-9), "{g}");
    assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);

    // Where the unused weight over the divisor passes 2^1534, the smoothed
    // mean is that ratio times eps / C times the class's nll: an overflow,
    // named at the weight.
    let ce = CrossEntropy::new()
        .with_weight(array![5e-324_f64, 1e308])
        .unwrap()
        .with_label_smoothing(0.5)
        .unwrap();
    match ce.forward(array![[0.0_f64, 0.0]].view(), array![0_usize].view()) {
        Err(Error::Overflow {
            what,
            index,
            actual,
            ..
        }) => {
            // 1e308 / 4.94e-324 = 2.024e631.
            assert_eq!((what, index), ("weight", vec![1]));
            assert_eq!(actual, "about 2.024e631");
        }
        r => panic!("{r:?}"),
    }
    // Without smoothing that weight does not enter the loss: ln 2.
    let ce = CrossEntropy::new()
        .with_weight(array![5e-324_f64, 1e308])
        .unwrap();
    let v = ce
        .forward(array![[0.0_f64, 0.0]].view(), array![0_usize].view())
        .unwrap();
    assert!(close(v, 2f64.ln(), 1e-15), "{v}");
}

#[test]
fn smoothed_spatial_cross_entropy_of_logits_1e37_apart_fits() {
    // (N, C, H) = (1, 3, 2): column 0 spans 2e37 with weights 10, whose
    // weighted differences (2e38 each) overflow f32 when summed.
    let ce = CrossEntropy::<f32, ndarray::Ix3>::spatial()
        .with_weight(array![10.0_f32, 10.0, 10.0])
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap();
    let x = array![[[-1.0e37_f32, 0.5], [-1.0e37, 1.0], [1.0e37, -1.0]]];
    let y = array![[2_usize, 0]];
    let v = ce.forward(x.view(), y.view()).unwrap();
    // Column 0's smoothing term, 0.1 / 3 * 10 * 4e37, over the weights 20.
    let expected = 0.1 / 3.0 * 10.0 * 4e37 / 20.0;
    assert!(close(f64::from(v), expected, 1e-5), "{v} vs {expected}");
    // The same column at the last of 16,500 positions (the second, partial
    // tile of the column path); the other positions' losses (about 67
    // each) are negligible beside it.
    let n = 16_500;
    let mut wide = ndarray::Array3::<f32>::zeros((1, 3, n));
    for s in 0..n - 1 {
        wide[[0, 2, s]] = 100.0;
    }
    for (c, v) in [-1.0e37_f32, -1.0e37, 1.0e37].into_iter().enumerate() {
        wide[[0, c, n - 1]] = v;
    }
    let labels = ndarray::Array2::from_elem((1, n), 2_usize);
    let v = ce.forward(wide.view(), labels.view()).unwrap();
    // 0.1 / 3 * 10 * 4e37 at one position, over the weights n * 10.
    let expected = 0.1 / 3.0 * 10.0 * 4e37 / (n as f64 * 10.0);
    assert!(close(f64::from(v), expected, 1e-5), "{v} vs {expected}");
    // And on (N, C) rows: the row path's f64 recomputation, with weights.
    let rows = CrossEntropy::new()
        .with_weight(array![10.0_f32, 10.0, 10.0])
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap();
    let x = array![[-1.0e37_f32, -1.0e37, 1.0e37]];
    let v = rows.forward(x.view(), array![2_usize].view()).unwrap();
    let expected = 0.1 / 3.0 * 10.0 * 4e37 / 10.0;
    assert!(close(f64::from(v), expected, 1e-5), "{v} vs {expected}");
}

#[test]
fn angular_gradient_through_a_row_of_tiny_norm_is_an_overflow_when_beyond_f64() {
    // A class row of norm 4e-308 (normal, so not rescaled): d loss / d w
    // is about s / |w| = 1.6e309, beyond f64.
    let arc = ArcFace::new();
    let e = array![[1.0_f64, 0.5], [-0.5, 1.0]];
    let w = array![[2e-308_f64, 3e-308], [1.0, -1.0]];
    let err = arc
        .forward_backward(embeddings(&e, &w), array![0_usize, 1].view())
        .unwrap_err();
    match err {
        Error::Overflow { what, .. } => assert_eq!(what, "weight"),
        e => panic!("{e}"),
    }
    assert!(
        arc.forward(embeddings(&e, &w), array![0_usize, 1].view())
            .unwrap()
            .is_finite()
    );
}

#[test]
fn hinge_contrastive_at_a_subnormal_f64_distance_has_a_unit_gradient() {
    let (x1, x2) = (array![[0.0_f64, 0.0]], array![[5e-324_f64, 0.0]]);
    let hinge = Contrastive::new().with_form(ContrastiveForm::Hinge);
    let (_, g) = hinge
        .forward_backward(pair_of(&x1, &x2), array![1.0_f64].view())
        .unwrap();
    assert_eq!(g.x1.row(0).to_vec(), vec![-1.0, 0.0]);
    assert_eq!(g.x2.row(0).to_vec(), vec![1.0, 0.0]);
}

#[test]
fn bce_with_logits_weight_zero_beside_a_term_beyond_f64() {
    // pos_weight 65 times softplus(1.8e308) is beyond f64; its weight is 0.
    let loss = BceWithLogits::new()
        .with_weight(array![0.0_f64, 1.0])
        .unwrap()
        .with_pos_weight(array![65.0_f64, 1.0])
        .unwrap();
    let x = array![[-f64::MAX, 0.0]];
    let t = array![[1.0_f64, 0.0]];
    let per = loss
        .clone()
        .with_reduction(classloss::Reduction::None)
        .per_sample(x.view(), t.view())
        .unwrap();
    assert_eq!(per[[0, 0]], 0.0);
    let (v, g) = loss.forward_backward(x.view(), t.view()).unwrap();
    assert!(close(v, 2f64.ln() / 2.0, 1e-15), "{v}");
    assert_eq!(g[[0, 0]], 0.0);
}

#[test]
fn smoothed_spatial_cross_entropy_of_huge_f32_logits_fits_on_every_path() {
    // The 2-D row path, the contiguous column path and the strided lane
    // path: 0.1 / 3 * (3.3e38 + 3.2e38) = 2.17e37 fits f32.
    let x = array![[1.7e38_f32, -1.6e38, -1.5e38]];
    let y = array![0_usize];
    let expected = 0.1 / 3.0 * (3.3e38 + 3.2e38);
    let ce = CrossEntropy::new().with_label_smoothing(0.1).unwrap();
    let v = ce.forward(x.view(), y.view()).unwrap();
    assert!(close(f64::from(v), expected, 1e-5), "2-D: {v}");
    let x3 = x.clone().into_shape_with_order((1, 3, 1)).unwrap();
    let y3 = y.clone().into_shape_with_order((1, 1)).unwrap();
    let ce3 = CrossEntropy::<f32, ndarray::Ix3>::spatial()
        .with_label_smoothing(0.1)
        .unwrap();
    let v = ce3.forward(x3.view(), y3.view()).unwrap();
    assert!(close(f64::from(v), expected, 1e-5), "columns: {v}");
    // Two equal columns, column-major: every class lane is strided.
    let x6 = ndarray::concatenate![ndarray::Axis(2), x3, x3];
    let strided = x6
        .reversed_axes()
        .as_standard_layout()
        .into_owned()
        .reversed_axes();
    assert!(!strided.is_standard_layout());
    let y6 = array![[0_usize, 0]];
    let v = ce3.forward(strided.view(), y6.view()).unwrap();
    assert!(close(f64::from(v), expected, 1e-5), "lanes: {v}");
}

#[test]
fn smoothed_spatial_mean_over_a_small_weight_sum_takes_the_rows_when_columns_would_overflow() {
    // 300 positions of label 0 with weight 1e-4: the mean divides by 0.03,
    // a scale of 33. Class 1 weighs 3e38, so each row's target total is
    // 0.25 * 3e38 and scale * total (2.5e39) passes f32, though every
    // gradient entry fits: the softmax (p_1 = 1 - 2e-9) matches the
    // smoothed target. The column path forms scale * total in f32, so it
    // must not be taken; the rows give what the 2-D loss gives.
    let p = 300;
    let ce = |smoothing| {
        CrossEntropy::<f32, ndarray::Ix3>::spatial()
            .with_weight(array![1e-4_f32, 3e38])
            .unwrap()
            .with_label_smoothing(smoothing)
            .unwrap()
    };
    let mut x = ndarray::Array3::<f32>::zeros((1, 2, p));
    x.index_axis_mut(ndarray::Axis(1), 1).fill(20.0);
    let y = ndarray::Array2::<usize>::zeros((1, p));
    let (v, g) = ce(0.5).forward_backward(x.view(), y.view()).unwrap();
    let flat = x.index_axis(ndarray::Axis(0), 0).t().to_owned();
    let ce2 = CrossEntropy::<f32>::new()
        .with_weight(array![1e-4_f32, 3e38])
        .unwrap()
        .with_label_smoothing(0.5)
        .unwrap();
    let (v2, g2) = ce2
        .forward_backward(flat.view(), ndarray::Array1::<usize>::zeros(p).view())
        .unwrap();
    assert!(close(f64::from(v), f64::from(v2), 1e-5), "{v} vs {v2}");
    for (a, b) in g.index_axis(ndarray::Axis(0), 0).t().iter().zip(&g2) {
        assert!(
            a.is_finite() && (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{a} vs {b}"
        );
    }
}

#[test]
fn smoothed_weighted_sum_near_f32_max_forms_its_gradient_in_f64() {
    // Four classes of weight 1e38, logits 0, label 0, eps 0.1, Sum: the
    // bound |scale| (total + off w_max + at_y) = 1.925e38 is beyond a
    // quarter of f32's maximum, so the gradient is formed in f64 (the cold
    // path); every entry fits: total p_c - off w_c = 1e38 / 4 - 2.5e36 off
    // the label, and 0.9e38 less on it. The value is 1e38 ln 4.
    let ce = CrossEntropy::new()
        .with_weight(array![1e38_f32, 1e38, 1e38, 1e38])
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap()
        .with_reduction(classloss::Reduction::Sum);
    let (v, g) = ce
        .forward_backward(
            array![[0.0_f32, 0.0, 0.0, 0.0]].view(),
            array![0_usize].view(),
        )
        .unwrap();
    assert!(close(f64::from(v), 1e38 * 4f64.ln(), 1e-6), "{v}");
    let off = 2.25e37;
    for (c, want) in [(0, off - 0.9e38), (1, off), (2, off), (3, off)] {
        assert!(close(f64::from(g[[0, c]]), want, 1e-6), "{c}: {g}");
    }
}

#[test]
fn smoothed_cross_entropy_whose_class_weight_sum_passes_f32() {
    // Four weights of 3e38 sum to 1.2e39, beyond f32; the mean divides by
    // the label's weight, so the value is ln 4 and each gradient entry
    // (1/3e38) (3e38 / 4 - 0.025 * 3e38 - [c = 0] 0.9 * 3e38) fits: 0.225
    // off the label, -0.675 on it. Every path: rows, spatial columns.
    let w = array![3e38_f32, 3e38, 3e38, 3e38];
    let ce = CrossEntropy::new()
        .with_weight(w.clone())
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap();
    let x = Array2::<f32>::zeros((2, 4));
    let y = array![0_usize, 0];
    let v = ce.forward(x.view(), y.view()).unwrap();
    let (fv, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert!(close(f64::from(v), 4f64.ln(), 1e-6), "{v}");
    assert_eq!(v, fv);
    for (c, want) in [(0, -0.675 / 2.0), (1, 0.225 / 2.0)] {
        assert!(close(f64::from(g[[0, c]]), want, 1e-5), "{g}");
    }
    let spatial = CrossEntropy::<f32, ndarray::Ix3>::spatial()
        .with_weight(w)
        .unwrap()
        .with_label_smoothing(0.1)
        .unwrap();
    let x3 = ndarray::Array3::<f32>::zeros((1, 4, 2));
    let y2 = array![[0_usize, 0]];
    let (sv, sg) = spatial.forward_backward(x3.view(), y2.view()).unwrap();
    assert!(close(f64::from(sv), 4f64.ln(), 1e-6), "{sv}");
    assert!(close(f64::from(sg[[0, 1, 0]]), 0.225 / 2.0, 1e-5), "{sg}");
    // Per-sample values are the weighted ones, 3e38 ln 4: beyond f32.
    let err = ce
        .with_reduction(classloss::Reduction::None)
        .forward(x.view(), y.view())
        .unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
}

#[test]
fn smoothed_cross_entropy_with_a_subnormal_label_weight_beside_f32_max() {
    // The label's weight is 1.4e-45, an unused class's 3.4e38: the smoothing
    // term's mean is about 0.33 * 3.4e38 / 1.4e-45 * ln 3, far beyond f32.
    // (The rescale by 2^149 once held that weight at f32::MAX and returned
    // a finite, wrong value.)
    let ce = CrossEntropy::new()
        .with_weight(array![1.4e-45_f32, 3.4e38, 0.0])
        .unwrap()
        .with_label_smoothing(0.999_999_999_999)
        .unwrap();
    let x = array![[0.0_f32, 0.0, 0.0]];
    let y = array![0_usize];
    for result in [
        ce.forward(x.view(), y.view()),
        ce.forward_backward(x.view(), y.view()).map(|(v, _)| v),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Overflow { .. }), "{err}");
    }
    // Where the class of huge weight is certain its term is 0, and the
    // value is the label's: smoothing over three classes, eps / 3 of it.
    let x = array![[0.0_f32, 200.0, 0.0]];
    let ce = CrossEntropy::new()
        .with_weight(array![1.4e-45_f32, 3.4e38, 0.0])
        .unwrap()
        .with_label_smoothing(0.5)
        .unwrap();
    let r = ce.forward_backward(x.view(), y.view());
    let f64_twin = CrossEntropy::new()
        .with_weight(array![1.4e-45_f32 as f64, 3.4e38_f32 as f64, 0.0])
        .unwrap()
        .with_label_smoothing(0.5)
        .unwrap()
        .forward(x.mapv(f64::from).view(), y.view());
    match (r, f64_twin) {
        (Ok((v, g)), Ok(t)) if t < f64::from(f32::MAX) => {
            assert!(close(f64::from(v), t, 1e-5), "{v} vs {t}");
            assert!(g.iter().all(|g| g.is_finite()), "{g}");
        }
        (Err(Error::Overflow { .. }), Ok(t)) => assert!(t > f64::from(f32::MAX), "{t}"),
        (r, t) => panic!("{r:?} vs {t:?}"),
    }
}

#[test]
fn terms_of_weight_zero_beside_f64_logits_spanning_its_range() {
    // -log p of the class at -f64::MAX is beyond f64 (the logits span
    // 3.6e308), but its coefficient is 0, so the per-sample value is the
    // rest: 0 here, never 0 * inf = NaN.
    let m = f64::MAX;
    let x = array![[-m, m, m]];
    let y = array![1_usize];
    let none = classloss::Reduction::None;
    let per = |r: classloss::Result<ndarray::Array1<f64>>| r.unwrap()[0];
    let ln2 = 2f64.ln();
    let q = array![[0.0, 0.5, 0.5]];
    let ce = CrossEntropy::new().with_reduction(none);
    let ce_probs = ce.per_sample(x.view(), ClassTarget::Probs(q.view()));
    assert_eq!(per(ce_probs), ln2);
    let weighted = ce.with_weight(array![0.0, 1.0, 1.0]).unwrap();
    assert_eq!(per(weighted.clone().per_sample(x.view(), y.view())), ln2);
    let smoothed = weighted.with_label_smoothing(0.3).unwrap();
    // 0.7 ln 2 on the label, 0.1 (0 + ln 2 + ln 2) from the smoothing.
    let v = per(smoothed.per_sample(x.view(), y.view()));
    assert!(close(v, 0.9 * ln2, 1e-15), "{v}");
    // Label smoothing with eps = 0 and hard bootstrapping with beta = 0
    // (all weight on the prediction, itself the max): the terms of
    // coefficient 0 are 0.
    let ls = LabelSmoothing::new()
        .with_epsilon(0.0)
        .unwrap()
        .with_reduction(none);
    assert_eq!(per(ls.per_sample(x.view(), y.view())), ln2);
    // SCE with alpha = 0 (the forward term's weight) on a label at -f64::MAX
    // relative to the max: the reverse term alone, beta * 4 * (1 - p_y) = 4.
    let sce = SymmetricCrossEntropy::new()
        .with_alpha(0.0)
        .unwrap()
        .with_reduction(none);
    assert_eq!(per(sce.per_sample(x.view(), array![0_usize].view())), 4.0);
    // Softmax focal with a class alpha of 0 on that label: 0.
    let focal = SoftmaxFocal::new()
        .with_class_alpha(array![0.0, 1.0, 1.0])
        .unwrap()
        .with_reduction(none);
    assert_eq!(per(focal.per_sample(x.view(), array![0_usize].view())), 0.0);
    // Its gradient: p_0 = 0, so the modulator's slope p (-log p) is 0, and
    // the alpha of 0 makes the whole row 0 (it was 0 * inf = NaN).
    let (_, g) = focal
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert!(g.iter().all(|&v| v == 0.0), "{g}");
    let focal = SoftmaxFocal::new()
        .with_alpha(0.0)
        .unwrap()
        .with_gamma(1.0)
        .unwrap();
    let (v, g) = focal
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert_eq!(v, 0.0);
    assert!(g.iter().all(|&v| v == 0.0), "{g}");
    // Label smoothing with eps = 1 in the eps / (C - 1) convention gives
    // the label 0 and each other class 1/2 (each -log p = ln 2): the
    // label's -log p beyond f64 counts for nothing (the fast form was
    // -inf + inf = NaN).
    let off_target = LabelSmoothing::new()
        .with_epsilon(1.0)
        .unwrap()
        .with_convention(classloss::SmoothingConvention::OffTarget)
        .with_reduction(none);
    let v = per(off_target.per_sample(x.view(), array![0_usize].view()));
    assert!(close(v, ln2, 1e-15), "{v}");
    let hb = HardBootstrapping::new()
        .with_beta(0.0)
        .unwrap()
        .with_reduction(none);
    assert_eq!(
        per(hb.per_sample(array![[-m, m, 0.0]].view(), array![0_usize].view())),
        0.0
    );
}

#[test]
fn smoothed_per_sample_values_keep_the_bits_of_a_subnormal_weight() {
    // f32, weights [3.8e-6, 2.9e-42] (the label's subnormal), smoothing:
    // the mean is computed in f64 (its divisor is subnormal), so the
    // per-sample values the mean averages are too; in f32 they were off
    // the mean by 3e-4 (ln of a sum near 1).
    let label_weight = f32::from_bits(2048); // 2.9e-42
    let w = array![2f32.powi(-18), label_weight];
    let ce = CrossEntropy::new()
        .with_weight(w)
        .unwrap()
        .with_label_smoothing(0.127_343_75)
        .unwrap();
    let x = array![[-0.125_f32, -11.625]];
    let y = array![1_usize];
    let mean = f64::from(ce.forward(x.view(), y.view()).unwrap());
    let per = ce.per_sample(x.view(), y.view()).unwrap();
    let from_per = f64::from(per[0]) / f64::from(label_weight);
    assert!(close(mean, from_per, 1e-5), "{mean} vs {from_per}");
    // The same per-sample values under every reduction.
    for r in [classloss::Reduction::Sum, classloss::Reduction::None] {
        let other = ce.clone().with_reduction(r).per_sample(x.view(), y.view());
        assert_eq!(other.unwrap(), per, "{r:?}");
    }
}

#[test]
fn angular_backward_products_at_a_scale_near_f32_max() {
    // The fuzz case: CosFace, s = 3e38, Sum over 5 samples. The gradients
    // with respect to the cosines are up to 3e38 each, so the backward
    // products (sums over classes and samples) passed f32 (-inf) where the
    // true gradients, up to 4.9e36, fit: they are now formed at a scale of
    // 2^-t and scaled back exactly.
    let (e, w, cf) = cosface_near_f32_max_case();
    let y = array![0_usize, 0, 0, 0, 0];
    let sum = classloss::Reduction::Sum;
    let (v, g) = cf.forward_backward(embeddings(&e, &w), y.view()).unwrap();
    let (e64, w64) = (e.mapv(f64::from), w.mapv(f64::from));
    let cf64 = CosFace::new()
        .with_scale(f64::from(3e38_f32))
        .unwrap()
        .with_margin(f64::from(0.259_765_6_f32))
        .unwrap()
        .with_reduction(sum);
    let (v64, g64) = cf64
        .forward_backward(embeddings(&e64, &w64), y.view())
        .unwrap();
    assert!(close(f64::from(v), v64, 1e-5), "{v} vs {v64}");
    for (a, b) in [(&g.embeddings, &g64.embeddings), (&g.weight, &g64.weight)] {
        let top = b.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for (x, t) in a.iter().zip(b) {
            assert!((f64::from(*x) - t).abs() <= 1e-4 * top, "{a} vs {b}");
        }
    }
}

#[test]
fn cosface_with_an_additive_margin_beyond_f32() {
    // m = 1e300 is beyond f32 but s m = 5e-24 is not: the target logit
    // s (c - m) is formed in f64 (it gave 0 * inf = NaN).
    let cf = CosFace::new()
        .with_scale(5e-324)
        .unwrap()
        .with_margin(1e300)
        .unwrap()
        .on_cosines();
    let (v, g) = cf
        .forward_backward(array![[-1.0_f32, 1.0]].view(), array![0_usize].view())
        .unwrap();
    assert!(close(f64::from(v), 2f64.ln(), 1e-6), "{v}");
    assert!(g.iter().all(|g| g.is_finite()), "{g}");
}

#[test]
fn angular_gradient_of_a_tiny_row_at_a_huge_scale_is_an_overflow_not_nan() {
    // The fuzz case: f32 ArcFace, s = 3e38 (so the gradient is formed at a
    // scale of 2^-t), and an embedding row of norm 1.4e-38: its gradient,
    // about s / |e|, is beyond f32 (an inf - inf on the way gave NaN).
    let (e, w, arc) = arcface_tiny_row_case();
    let y = array![2_usize, 2, 2, 2];
    match arc.forward_backward(embeddings(&e, &w), y.view()) {
        Err(Error::Overflow { what, .. }) => assert_eq!(what, "embeddings"),
        Ok((v, g)) => assert!(
            v.is_finite() && g.embeddings.iter().chain(&g.weight).all(|g| g.is_finite()),
            "{v} {g:?}"
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn spatial_cross_entropy_takes_one_path_whatever_the_reduction() {
    // The fuzz case: class weights near f32::MAX (of classes no label
    // uses). The column path was chosen from a bound on the gradient that
    // depended on the reduction's scale, so the per-sample values of Sum
    // and Mean came from different paths and differed in the last bits.
    let x = ndarray::Array::from_shape_vec(
        (5, 5, 1, 1),
        vec![
            116.34375_f32,
            -71.15625,
            -57.796875,
            -12.5,
            0.0,
            1.015625,
            15.4375,
            4.109375,
            0.0,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            0.0,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -0.125,
            -2.875,
            0.0,
        ],
    )
    .unwrap();
    let y = ndarray::Array3::from_elem((5, 1, 1), 4_usize);
    let w = array![
        3.402_822_2e38_f32,
        3.402_822_2e38,
        45.765625,
        1.213_709_7e-25,
        4.5
    ];
    for eps in [0.0, 0.1] {
        let ce = CrossEntropy::<f32, ndarray::Ix4>::spatial()
            .with_weight(w.clone())
            .unwrap()
            .with_label_smoothing(eps)
            .unwrap();
        let per = |r| ce.clone().with_reduction(r).per_sample(x.view(), y.view());
        let mean = per(classloss::Reduction::Mean);
        for r in [classloss::Reduction::Sum, classloss::Reduction::None] {
            assert_eq!(per(r).ok(), mean.clone().ok(), "eps {eps}, {r:?}");
        }
        if let Ok(v) = ce.forward(x.view(), y.view()) {
            let (fv, _) = ce.forward_backward(x.view(), y.view()).unwrap();
            assert_eq!(v, fv, "eps {eps}");
        }
    }
}

#[test]
fn weighted_probability_targets_near_f32_max_have_the_exact_gradient() {
    // q = [1, 0] with weights 3e38: the target's sum, 3e38, passes the
    // fast path's bound, so the gradient 3e38 (p - q) = [-1.5e38, 1.5e38]
    // is formed on coefficients scaled by a power of two.
    let ce = CrossEntropy::new()
        .with_weight(array![3e38_f32, 3e38])
        .unwrap();
    let q = array![[1.0_f32, 0.0]];
    let (v, g) = ce
        .forward_backward(array![[0.0_f32, 0.0]].view(), ClassTarget::Probs(q.view()))
        .unwrap();
    assert!(close(f64::from(v), 3e38 * 2f64.ln(), 1e-6), "{v}");
    assert!(close(f64::from(g[[0, 0]]), -1.5e38, 1e-6), "{g}");
    assert!(close(f64::from(g[[0, 1]]), 1.5e38, 1e-6), "{g}");
    // Unequal probabilities and a mean over two rows (factor 1/2), weights
    // 1e38 (the target's sum still passes the fast path's bound, F::MAX /
    // 4): (1e38 / 2) (p - q) with p = softmax([0, 1]).
    let ce = CrossEntropy::new()
        .with_weight(array![1e38_f32, 1e38])
        .unwrap();
    let x = array![[0.0_f32, 1.0], [0.0, 1.0]];
    let q = array![[1.0_f32, 0.0], [1.0, 0.0]];
    let (_, g) = ce
        .forward_backward(x.view(), ClassTarget::Probs(q.view()))
        .unwrap();
    let p0 = 1.0 / (1.0 + 1f64.exp());
    let want = [0.5e38 * (p0 - 1.0), 0.5e38 * (1.0 - p0)];
    for (c, w) in want.into_iter().enumerate() {
        assert!(close(f64::from(g[[1, c]]), w, 1e-6), "{g} vs {want:?}");
    }
}

#[test]
fn softmax_focal_gradient_beyond_f32_is_an_overflow() {
    // alpha = 1.5e39 on logits [0, 0]: the value, 1.5e39 * 0.25 * ln 2 =
    // 2.6e38, fits f32; the gradient's entries, 1.5e39 * 0.597 / 2 = 4.5e38,
    // do not: an overflow naming the sample's gradient.
    let focal = SoftmaxFocal::new().with_alpha(1.5e39).unwrap();
    let x = array![[0.0_f32, 0.0]];
    let y = array![0_usize];
    let v = focal.forward(x.view(), y.view()).unwrap();
    assert!(close(f64::from(v), 1.5e39 * 0.25 * 2f64.ln(), 1e-6), "{v}");
    match focal.forward_backward(x.view(), y.view()) {
        Err(Error::Overflow {
            quantity, index, ..
        }) => {
            assert_eq!(
                (quantity, index),
                ("the gradient of the sample's loss", vec![0])
            );
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn angular_overflows_on_cosines_name_the_sample() {
    // The value of row 1 (s (1 - phi(-1)) at s = 3e38) is beyond f32; row 0's
    // (ln 2) is not: the error names sample 1.
    let loss = CombinedMargin::new().with_scale(3e38).unwrap().on_cosines();
    let c = array![[1.0_f32, 1.0], [-1.0, 1.0]];
    match loss.forward(c.view(), array![0_usize, 0].view()) {
        Err(Error::Overflow { index, .. }) => assert_eq!(index, vec![1]),
        r => panic!("{r:?}"),
    }
    // A gradient beyond f32 where the value fits: m1 = 100 at a cosine of 1,
    // where d phi / d c is m1^2 = 1e4, times s (p_y - 1) = -5e34 (Sum).
    let loss = CombinedMargin::new()
        .with_margins(100.0, 0.0, 0.0)
        .unwrap()
        .with_scale(1e35)
        .unwrap()
        .with_reduction(classloss::Reduction::Sum)
        .on_cosines();
    let c = array![[0.5_f32, 0.2], [1.0, 1.0]];
    let y = array![0_usize, 0];
    assert!(loss.forward(c.view(), y.view()).unwrap().is_finite());
    match loss.forward_backward(c.view(), y.view()) {
        Err(Error::Overflow {
            index, quantity, ..
        }) => {
            assert_eq!(
                (index, quantity),
                (vec![1], "the gradient of the sample's loss")
            );
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn smoothing_whose_share_rounds_to_zero_beside_a_weight_sum_beyond_f64() {
    // The fuzz case: f64, eps = 5e-324 (eps / C rounds to 0), subnormal
    // label weights (the mean is rescaled, and the weight 124 of an unused
    // class is held at f64::MAX), logits spanning f64's range. The target's
    // total was 0 * inf = NaN in the gradient.
    let ce = CrossEntropy::new()
        .with_weight(array![
            5e-324_f64,
            1.182_070_487_331_950_7e-308,
            1.375,
            124.234375,
            8.691_694_759_794e-311
        ])
        .unwrap()
        .with_label_smoothing(5e-324)
        .unwrap();
    let m = 1.797_693_134_862_315_3e308;
    let x = array![
        [
            -2.120_495_387_157_363e-305,
            1e154,
            -2.207_690_468_987_614e-308,
            27.125,
            0.0
        ],
        [0.0, 0.0, 0.0, 0.0, 75.15625],
        [m, m, -m, 0.0, 0.0]
    ];
    match ce.forward_backward(x.view(), array![1_usize, 0, 0].view()) {
        Ok((v, g)) => assert!(v.is_finite() && g.iter().all(|g| g.is_finite()), "{v} {g}"),
        Err(Error::Overflow { .. }) => {}
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn multi_margin_beyond_f32_keeps_the_kink_and_the_value() {
    // Two terms of 1 + 3e38 pass f32 when summed, so the row is redone in
    // f64: the mean 2 (1 + 3e38) / 4 = 1.5e38 fits. Class 1 sits exactly on
    // the hinge (1 + (-1 - 0) = 0): its gradient is 0, as PyTorch's.
    let x = array![[0.0_f32, -1.0, 3e38, 3e38]];
    let (v, g) = MultiMargin::new()
        .forward_backward(x.view(), array![0_usize].view())
        .unwrap();
    assert!(close(f64::from(v), 1.5e38, 1e-6), "{v}");
    assert_eq!(g[[0, 1]], 0.0, "{g}");
    assert!(close(f64::from(g[[0, 2]]), 0.25, 1e-6), "{g}");
    assert!(close(f64::from(g[[0, 0]]), -0.5, 1e-6), "{g}");
}

#[test]
fn angular_losses_pass_non_finite_inputs_through_and_keep_their_reduction() {
    let w = array![[1.0_f64, 0.0], [0.0, 1.0]];
    let e = array![[1.0_f64, 0.5]];
    let y = array![0_usize];
    let cf = CosFace::new().with_reduction(classloss::Reduction::Sum);
    assert_eq!(
        cf.clone().on_cosines().reduction(),
        classloss::Reduction::Sum
    );
    // A NaN in either input is passed through (as PyTorch does), not an
    // overflow.
    let nan_e = array![[f64::NAN, 0.5]];
    let nan_w = array![[1.0_f64, 0.0], [f64::NAN, 1.0]];
    for (e, w) in [(&nan_e, &w), (&e, &nan_w)] {
        let v = cf.forward(embeddings(e, w), y.view()).unwrap();
        assert!(v.is_nan(), "{v}");
    }
    // A finite input whose loss is beyond the type is an overflow:
    // s (1 - (-1 - 0.35)) = 2.35e308.
    let huge = CosFace::new().with_scale(1e308).unwrap();
    let opposite = array![[1.0_f64, 0.0], [-1.0, 0.0]];
    let err = huge
        .forward(embeddings(&array![[-1.0_f64, 0.0]], &opposite), y.view())
        .unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
}

#[test]
fn f32_cross_entropy_computed_in_f64_keeps_every_option() {
    // A subnormal label weight sends f32 to the f64 computation; the
    // reduction and the ignored label must come along. Row 1's label 2 is
    // ignored, so the mean is row 0's loss, ln 3 (logits 0).
    let ce = CrossEntropy::new()
        .with_weight(array![1e-45_f32, 1.0, 1.0])
        .unwrap()
        .with_ignore_index(2);
    let x = Array2::<f32>::zeros((2, 3));
    let y = array![0_usize, 2];
    let (v, g) = ce.forward_backward(x.view(), y.view()).unwrap();
    assert!(close(f64::from(v), 3f64.ln(), 1e-6), "{v}");
    assert!(close(f64::from(g[[0, 1]]), 1.0 / 3.0, 1e-6), "{g}");
    assert_eq!(g.row(1).iter().copied().collect::<Vec<_>>(), vec![0.0; 3]);
    // Sum: the gradient is w_0 (p - q), about 1e-45 (Mean's would be 1/3).
    let (_, g) = ce
        .with_reduction(classloss::Reduction::Sum)
        .forward_backward(x.view(), y.view())
        .unwrap();
    assert!(g.iter().all(|v| v.abs() < 1e-40), "{g}");
}

#[test]
fn smoothed_cross_entropy_with_subnormal_weights_keeps_its_per_sample_values() {
    // Each per-sample value is w_y (hard nll_y) + ...: the weight multiplies
    // last. Forming hard * w_y first rounds it to the one bit of 5e-324
    // (9% off, so the per-sample values no longer reduced to the mean); a
    // fuzzing campaign found it (issue 13). Both layouts: rows and columns.
    let x2 = array![[3.0e300_f64, -2.0e300], [-1.0e300, 4.0e300], [0.5, 2.0]];
    let y2 = array![0_usize, 0, 1];
    let x4 = x2.clone().into_shape_with_order((3, 2, 1, 1)).unwrap();
    let y4 = y2.clone().into_shape_with_order((3, 1, 1)).unwrap();
    let w = 5e-324_f64;
    let loss = |weight: f64| {
        CrossEntropy::<f64, ndarray::IxDyn>::spatial()
            .with_label_smoothing(0.09)
            .unwrap()
            .with_weight(array![weight, weight])
            .unwrap()
    };
    for (x, y) in [
        (x2.clone().into_dyn(), y2.clone().into_dyn()),
        (x4.into_dyn(), y4.into_dyn()),
    ] {
        let tiny = loss(w).per_sample(x.view(), Labels::from(&y)).unwrap();
        let one = loss(1.0).per_sample(x.view(), Labels::from(&y)).unwrap();
        // The first two losses are about 5e300, their weighted values
        // normal numbers, correct to f64 rounding; the third is a
        // subnormal, exact to its absolute precision.
        for i in 0..2 {
            let (got, want) = (tiny.as_slice().unwrap()[i], one.as_slice().unwrap()[i] * w);
            assert!(close(got, want, 1e-15), "{i}: {got:e} vs {want:e}");
        }
        let mean = loss(w).forward(x.view(), Labels::from(&y)).unwrap();
        let total: f64 = tiny.iter().sum();
        assert!(
            close(mean, total / (3.0 * w), 1e-15),
            "{mean:e} vs {total:e}"
        );
        assert!(close(
            mean,
            loss(1.0).forward(x.view(), Labels::from(&y)).unwrap(),
            1e-15
        ));
    }
}

#[test]
fn a_mean_that_fits_is_returned_though_the_sum_passes_f64() {
    // Three losses of about 1e308: their sum passes f64, their mean does
    // not, from forward and the fused call alike; Sum is the overflow.
    let x = array![[0.0_f64, 1e308], [1e308, 0.0], [0.0, 1e308]];
    let y = array![0_usize, 1, 0];
    let ce = CrossEntropy::new();
    let mean = ce.forward(x.view(), Labels::from(&y)).unwrap();
    assert!(close(mean, 1e308, 1e-15), "{mean:e}");
    let mut g = Array2::zeros((3, 2));
    let fused = ce
        .forward_backward_into(x.view(), Labels::from(&y), g.view_mut())
        .unwrap();
    assert_eq!(fused, mean);
    assert_eq!(g, array![[-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]] / 3.0);
    let e = ce
        .with_reduction(classloss::Reduction::Sum)
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the sum of the per-sample losses overflows f64"),
        "{e}"
    );
}

#[test]
fn a_loss_scaler_skips_a_step_whose_unscaled_gradient_passes_the_type() {
    // Found by the eval fuzz target (issue 13): below a scale of 1, a
    // finite scaled entry near f64::MAX unscales to inf, and the step was
    // applied with the infinite gradient (the check read only the scaled
    // values). The step is an overflow: skipped, buffers untouched.
    let mut scaler = LossScaler::new().with_init_scale(0.5).unwrap();
    let mut grad = array![f64::MAX, 1.0];
    let before = grad.clone();
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Skip);
    assert_eq!(grad, before);
    assert_eq!(scaler.scale(), 0.25);
    assert_eq!(scaler.good_steps(), 0);
    // A scale whose reciprocal passes f32: every entry unscales to inf or
    // NaN, so no step is applied.
    let mut scaler = LossScaler::new().with_init_scale(1e-39).unwrap();
    let mut grad = array![1.0_f32, 0.0];
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Skip);
    assert_eq!(grad, array![1.0_f32, 0.0]);
    // Below 1, a step that fits is applied, exactly unscaled.
    let mut scaler = LossScaler::new().with_init_scale(0.5).unwrap();
    let mut grad = array![1e300_f64, -2.0];
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Apply);
    assert_eq!(grad, array![2e300, -4.0]);
}

#[test]
fn logit_adjustment_takes_counts_of_any_finite_size() {
    // Counts whose sum passes f64, and a count whose share underflows to 0
    // in f64, give the log prior by logarithms: the loss is finite and
    // equals the one of the same proportions at ordinary sizes (fuzzing
    // found an Overflow here, issue 13).
    let x = array![[0.5_f64, -1.0, 2.0], [1.0, 0.0, -0.5]];
    let y = array![0_usize, 2];
    let loss = |counts: Array1<f64>| {
        classloss::LogitAdjusted::<f64>::new()
            .with_samples_per_class(counts)
            .unwrap()
            .forward(x.view(), Labels::from(&y))
            .unwrap()
    };
    let big = loss(array![1e308, 1e308, 5e307]);
    let small = loss(array![2.0, 2.0, 1.0]);
    assert!(close(big, small, 1e-14), "{big} vs {small}");
    // A share of 1e-320 / 1e308: ln of it is about -1446, an ordinary shift.
    // Class 1's logit moves by about -1446 and leaves the softmax: the
    // loss is cross-entropy over classes 0 and 2 alone.
    let tiny = loss(array![1e308, 1e-320, 1e308]);
    let ce2 = |a: f64, b: f64| (1.0 + (b - a).exp()).ln();
    let want = (ce2(0.5, 2.0) + ce2(-0.5, 1.0)) / 2.0;
    assert!(close(tiny, want, 1e-14), "{tiny} vs {want}");
}

#[test]
fn angular_scale_near_f64_max_beside_a_subnormal_row_does_not_panic() {
    // s = 1e308 made the bound of the gradient's scale 4 s n beyond f64:
    // its shift came out as i32::MAX, and the unscaling of a rescaled
    // (subnormal) row subtracted past i32 (a panic in debug builds). The
    // bound is now taken in log2. Each sample sits on its class, far from
    // the other: the loss is 0 (exp(-1.8e308)), the gradient too.
    let arc = ArcFace::new().with_scale(1e308).unwrap();
    let e = array![[5e-324_f64, 0.0], [-1.0, 0.25]];
    let w = array![[1.0_f64, 0.0], [-1.0, 0.25]];
    let y = array![0_usize, 1];
    let (v, g) = arc.forward_backward(embeddings(&e, &w), y.view()).unwrap();
    assert_eq!(v, 0.0);
    assert!(
        g.embeddings.iter().chain(&g.weight).all(|&g| g == 0.0),
        "{g:?}"
    );
}

#[test]
fn fully_smoothed_cross_entropy_of_a_label_term_beyond_f64_is_overflow_not_nan() {
    // The fuzz case (CI, 92a66c9): with `eps = 1` the label's own term has
    // weight 0, and its `nll`, `1.8e308 + 1.7e305`, is beyond `f64`: `0 *
    // inf` made the value NaN. The loss, the mean of the three `nll`s
    // (`1.1990e308`), fits, but their sum, formed before the `1 / 3`, does
    // not: `Error::Overflow`, as the contract allows, from every call.
    let ce = CrossEntropy::new().with_label_smoothing(1.0).unwrap();
    let x = array![[-1.7006983070354213e305_f64, 3.4241032484903666e72, f64::MAX]];
    let labels = array![0_usize];
    let overflow = |e: Error| matches!(e, Error::Overflow { .. });
    assert!(overflow(
        ce.per_sample(x.view(), labels.view()).unwrap_err()
    ));
    assert!(overflow(ce.forward(x.view(), labels.view()).unwrap_err()));
    let fused = ce.forward_backward(x.view(), labels.view());
    assert!(overflow(fused.unwrap_err()));
    // Below the range's edge the same logits give the mean of the `nll`s.
    let x = x.mapv(|v| v / 4.0);
    let want = (2.0 * (f64::MAX / 12.0)) + (1.7006983070354213e305 / 12.0);
    let (v, g) = ce.forward_backward(x.view(), labels.view()).unwrap();
    assert!(close(v, want, 1e-12), "{v} against {want}");
    // p = (0, 0, 1) less the uniform target: (-1/3, -1/3, 2/3).
    for (got, want) in g.iter().zip([-1.0 / 3.0, -1.0 / 3.0, 2.0 / 3.0]) {
        assert!(close(*got, want, 1e-12), "{g}");
    }
}
