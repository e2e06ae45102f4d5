//! The dynamic loss scaler: a deliberate f32 overflow (step skipped, scale
//! halved, buffers untouched), growth after the interval and its reset,
//! exact unscaling, multi-buffer gradients (pair losses, tuples of
//! different ranks), the subnormal range it is for, options.

use classloss::{
    Contrastive, Differentiable, GradBuffers, LossScaler, Pair, PairGrad, StepDecision,
};
use ndarray::{Array1, Array2, ArrayViewMut, IxDyn, ShapeBuilder, array};

#[test]
fn an_f32_overflow_skips_the_step_and_halves_the_scale() {
    let mut scaler = LossScaler::new();
    assert_eq!(scaler.scale(), 65536.0);
    // 1e34 * 2^16 = 6.6e38 > f32::MAX.
    let mut grad = array![[1e34_f32, -2.0], [0.5, 0.0]];
    scaler.scale_grads(&mut grad);
    assert_eq!(grad[[0, 0]], f32::INFINITY);
    assert_eq!(grad[[0, 1]], -131072.0);
    let before = grad.clone();
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Skip);
    assert_eq!(scaler.scale(), 32768.0);
    // A skipped step leaves the buffers as they were (not unscaled).
    assert_eq!(grad, before);
    // NaN overflows too, and a second backoff halves again.
    let mut nan = array![f32::NAN];
    assert_eq!(scaler.unscale_and_update(&mut nan), StepDecision::Skip);
    assert_eq!(scaler.scale(), 16384.0);
}

#[test]
fn the_scale_grows_after_the_interval_and_an_overflow_resets_the_count() {
    let mut scaler = LossScaler::new().with_growth_interval(3).unwrap();
    let step = |scaler: &mut LossScaler, value: f64| {
        let mut g = array![value];
        scaler.scale_grads(&mut g);
        scaler.unscale_and_update(&mut g)
    };
    for k in 1..=2 {
        assert_eq!(step(&mut scaler, 1.0), StepDecision::Apply);
        assert_eq!((scaler.scale(), scaler.good_steps()), (65536.0, k));
    }
    assert_eq!(step(&mut scaler, 1.0), StepDecision::Apply);
    assert_eq!((scaler.scale(), scaler.good_steps()), (131072.0, 0));
    // Two good steps, an overflow: back to zero good steps, scale halved.
    let _ = step(&mut scaler, 1.0);
    let _ = step(&mut scaler, 1.0);
    assert_eq!(step(&mut scaler, f64::INFINITY), StepDecision::Skip);
    assert_eq!((scaler.scale(), scaler.good_steps()), (65536.0, 0));
    for _ in 0..3 {
        assert_eq!(step(&mut scaler, 1.0), StepDecision::Apply);
    }
    assert_eq!(scaler.scale(), 131072.0);
}

/// PyTorch's update: a grown scale beyond the element type is not taken.
#[test]
fn the_scale_does_not_grow_beyond_the_element_type() {
    let mut scaler = LossScaler::new()
        .with_init_scale(2f64.powi(127))
        .unwrap()
        .with_growth_interval(1)
        .unwrap();
    let mut g = array![1e-30_f32];
    scaler.scale_grads(&mut g);
    assert_eq!(scaler.unscale_and_update(&mut g), StepDecision::Apply);
    // 2^128 is beyond f32: the scale stays.
    assert_eq!(scaler.scale(), 2f64.powi(127));
    let mut wide = array![1e-30_f64];
    assert_eq!(scaler.unscale_and_update(&mut wide), StepDecision::Apply);
    assert_eq!(scaler.scale(), 2f64.powi(128));
}

#[test]
fn unscaling_a_power_of_two_scale_is_exact_on_every_buffer_of_a_pair_loss() {
    let x1 = array![[0.3_f32, -1.2, 0.7], [2.0, 0.1, -0.4]];
    let x2 = array![[0.1_f32, 0.4, -0.9], [1.5, -0.3, 0.2]];
    let similar = array![1.0_f32, 0.0];
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    let loss = Contrastive::new();
    let mut grad: PairGrad<f32> = loss.zeros_grad(pair);
    loss.forward_backward_into(pair, similar.view(), &mut grad)
        .unwrap();
    let original = grad.clone();
    let mut scaler = LossScaler::new();
    scaler.scale_grads(&mut grad);
    assert_eq!(grad.x1, &original.x1 * 65536.0);
    assert_eq!(grad.x2, &original.x2 * 65536.0);
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Apply);
    assert_eq!(grad, original);
    // An overflow in one buffer skips the step for both.
    let mut grad = original.clone();
    grad.x2[[1, 2]] = f32::INFINITY;
    let before = grad.clone();
    assert_eq!(scaler.unscale_and_update(&mut grad), StepDecision::Skip);
    assert_eq!(grad, before);
}

#[test]
fn buffers_of_different_ranks_and_layouts_go_together() {
    let mut dw = Array2::from_shape_fn((3, 2), |(i, j)| (i + 2 * j) as f64 - 1.5);
    let mut db = array![0.25_f64, -4.0];
    // A column-major buffer and a strided view take the general path.
    let mut dv = Array2::from_shape_fn((2, 3).f(), |(i, j)| (i * 3 + j) as f64);
    let (w0, b0, v0) = (dw.clone(), db.clone(), dv.clone());
    let mut scaler = LossScaler::new().with_init_scale(8.0).unwrap();
    let mut strided = dw.slice_mut(ndarray::s![..;2, ..]);
    scaler.scale_grads(&mut strided);
    assert_eq!(dw.row(0), w0.row(0).mapv(|v| 8.0 * v));
    assert_eq!(dw.row(1), w0.row(1));
    dw = w0.clone();
    let mut all = (&mut dw, &mut db, &mut dv);
    scaler.scale_grads(&mut all);
    assert_eq!(dv, &v0 * 8.0);
    let mut all = vec![
        dw.view_mut().into_dyn(),
        db.view_mut().into_dyn(),
        dv.view_mut().into_dyn(),
    ];
    assert_eq!(scaler.unscale_and_update(&mut all), StepDecision::Apply);
    assert_eq!((dw, db, dv), (w0, b0, v0));
}

/// What it is for in f32: a backward chain through a factor that takes the
/// gradient into the subnormal range loses its significant bits; scaled by
/// 2^16 the chain stays normal and the unscaled result is accurate.
#[test]
fn scaling_keeps_a_backward_chain_out_of_the_subnormal_range() {
    let (g, a, b) = (1.234_567_9e-30_f32, 1e-10_f32, 1e10_f32);
    let truth = g as f64 * a as f64 * b as f64;
    let rel = |v: f32| ((v as f64 - truth) / truth).abs();
    // Unscaled: g * a is about 1.2e-40, a subnormal f32.
    let plain = g * a * b;
    assert!((g * a).is_subnormal());
    // Scaled: the loss gradient times 2^16, the same backward, unscaled.
    let mut scaler = LossScaler::new();
    let mut loss_grad = array![g];
    scaler.scale_grads(&mut loss_grad);
    let mut param_grad = loss_grad.mapv(|v| v * a * b);
    assert!((loss_grad[0] * a).is_normal());
    assert_eq!(
        scaler.unscale_and_update(&mut param_grad),
        StepDecision::Apply
    );
    assert!(rel(plain) > 1e-6, "plain f32: {}", rel(plain));
    assert!(
        rel(param_grad[0]) < 2.0 * f32::EPSILON as f64,
        "scaled: {}",
        rel(param_grad[0])
    );
}

/// A model's own gradient struct joins by calling `f` on each buffer.
#[test]
fn a_user_struct_of_gradients_implements_the_trait() {
    struct Mlp {
        w1: Array2<f32>,
        b1: Array1<f32>,
    }
    impl GradBuffers<f32> for Mlp {
        fn for_each_buffer(&mut self, f: &mut dyn FnMut(ArrayViewMut<'_, f32, IxDyn>)) {
            self.w1.for_each_buffer(f);
            self.b1.for_each_buffer(f);
        }
    }
    let mut grads = Mlp {
        w1: array![[1.0, 2.0]],
        b1: array![f32::NEG_INFINITY],
    };
    let mut scaler = LossScaler::new();
    assert_eq!(scaler.unscale_and_update(&mut grads), StepDecision::Skip);
    grads.b1[0] = 65536.0;
    assert_eq!(scaler.unscale_and_update(&mut grads), StepDecision::Apply);
    assert_eq!(grads.b1[0], 2.0); // the scale is 32768 after the skip
}

#[test]
fn options_are_checked() {
    let d = LossScaler::default();
    assert_eq!(
        (
            d.scale(),
            d.growth_factor(),
            d.backoff_factor(),
            d.growth_interval(),
            d.good_steps()
        ),
        (65536.0, 2.0, 0.5, 2000, 0)
    );
    let e = LossScaler::new().with_init_scale(0.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `init_scale`: expected a finite number > 0, got 0"
    );
    let e = LossScaler::new()
        .with_init_scale(f64::INFINITY)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `init_scale`: expected a finite number > 0, got inf"
    );
    let e = LossScaler::new().with_growth_factor(1.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `growth_factor`: expected a finite number > 1, got 1"
    );
    for bad in ["0", "1", "NaN"] {
        let e = LossScaler::new()
            .with_backoff_factor(bad.parse().unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("option `backoff_factor`: expected a number in (0, 1), got {bad}")
        );
    }
    let e = LossScaler::new().with_growth_interval(0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `growth_interval`: expected at least 1 step, got 0"
    );
}
