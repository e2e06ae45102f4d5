//! CosFace: the contract (on embeddings and on cosines), properties, errors,
//! f32. (Reference values: `tests/conformance`.)

use crate::common::{
    angular_contract, cosines, embedding_batch, embeddings, f32_vs_f64_error, random_batch,
    worst_near_parallel_error,
};
use classloss::{AngularMargin, CosFace, CrossEntropy, Differentiable, Error, Loss};
use ndarray::{Array1, Array2, array};
use proptest::prelude::*;

fn batch(n: usize, c: usize, d: usize, seed: u64) -> (Array2<f64>, Array2<f64>, Array1<usize>) {
    random_batch(n, c, d, seed, 1.5)
}

#[test]
fn contract() {
    // CosFace is smooth everywhere: no kinks to avoid.
    let (e, w, labels) = batch(6, 4, 5, 31);
    for (scale, margin) in [(4.0, 0.0), (16.0, 0.35), (30.0, 0.2), (8.0, 1.5)] {
        let cf = CosFace::new()
            .with_scale(scale)
            .unwrap()
            .with_margin(margin)
            .unwrap();
        angular_contract(&format!("s={scale} m={margin}"), &cf, &e, &w, &labels);
    }
}

#[test]
fn margin_is_cross_entropy_with_a_lowered_target_logit() {
    // m = 0 is plain cross-entropy on s cos; m > 0 subtracts s m from the
    // target logit, everything else unchanged.
    let (e, w, labels) = batch(7, 5, 4, 41);
    let s = 20.0;
    let cos = cosines(&e, &w);
    let ce = CrossEntropy::new();
    for m in [0.0, 0.3] {
        let mut logits = &cos * s;
        for (i, &y) in labels.iter().enumerate() {
            logits[[i, y]] -= s * m;
        }
        let (ce_value, ce_grad) = ce.forward_backward(logits.view(), labels.view()).unwrap();
        let cf = CosFace::new()
            .with_scale(s)
            .unwrap()
            .with_margin(m)
            .unwrap();
        let value = cf.forward(embeddings(&e, &w), labels.view()).unwrap();
        assert!(
            (value - ce_value).abs() < 1e-12,
            "m={m}: {value} vs {ce_value}"
        );
        let (v, g) = cf
            .on_cosines()
            .forward_backward(cos.view(), labels.view())
            .unwrap();
        assert!((v - ce_value).abs() < 1e-12);
        for (a, b) in g.iter().zip((&ce_grad * s).iter()) {
            assert!((a - b).abs() < 1e-12, "m={m}: {a} vs {b}");
        }
    }
}

#[test]
fn cosines_of_plus_minus_one_are_ordinary_points() {
    let cf = CosFace::new()
        .with_scale(10.0)
        .unwrap()
        .with_margin(0.4)
        .unwrap();
    let cos = array![[1.0_f64, -1.0], [-1.0, 1.0]];
    let labels = array![0_usize, 0];
    let (v, g) = cf
        .on_cosines()
        .forward_backward(cos.view(), labels.view())
        .unwrap();
    // Row 0: logits [6, -10]; row 1: [-14, 10].
    let l0 = (1.0 + (-16.0_f64).exp()).ln();
    let l1 = 24.0 + (1.0 + (-24.0_f64).exp()).ln();
    assert!((v - (l0 + l1) / 2.0).abs() < 1e-12);
    assert!(g.iter().all(|x| x.is_finite()));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let cf = CosFace::new();
    let e = Array2::<f64>::ones((2, 3));
    let w = Array2::<f64>::ones((4, 2));
    let err = cf
        .forward(embeddings(&e, &w), array![0_usize, 1].view())
        .unwrap_err();
    assert_eq!(err.to_string(), "weight: expected shape [4, 3], got [4, 2]");
    let w = Array2::<f64>::ones((4, 3));
    let input = embeddings(&e, &w);
    let err = cf.forward(input, array![0_usize, 4].view()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "labels[1]: label 4 is out of range for 4 classes (expected 0..=3)"
    );
    let mut e0 = e.clone();
    e0.row_mut(1).fill(0.0);
    let err = cf
        .forward(embeddings(&e0, &w), array![0_usize, 1].view())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "embeddings[1]: expected a row with a nonzero norm, got 0"
    );
    let err = cf
        .forward(
            embeddings(&Array2::<f64>::zeros((0, 3)), &w),
            Array1::<usize>::zeros(0).view(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::EmptyBatch {
            what: "embeddings",
            unit: "sample",
            ..
        }
    ));
    let err = CosFace::new().with_margin(-0.2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `margin`: expected a finite number >= 0, got -0.2"
    );
    assert!(CosFace::new().with_margin(f64::NAN).is_err());
    let err = CosFace::new().with_scale(-1.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `scale`: expected a finite number > 0, got -1"
    );
    let err = cf
        .on_cosines()
        .forward(array![[0.2_f64, -1.01]].view(), array![0_usize].view())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cosines[0, 1]: expected a cosine in [-1, 1], got -1.01"
    );
}

#[test]
fn f32_is_accurate_next_to_the_class_weight() {
    // No 1 / sin(theta) in CosFace's derivative: an embedding nearly
    // parallel to its class weight is as accurate in f32 as any other.
    let cf = CosFace::new()
        .with_scale(30.0)
        .unwrap()
        .with_margin(0.2)
        .unwrap();
    for theta in [1e-1, 1e-3, 1e-5, 1e-7, 0.0] {
        let worst = worst_near_parallel_error(theta, |e, w, l| f32_vs_f64_error(&cf, e, w, l));
        assert!(worst < 1e-5, "theta={theta:e}: {worst:e}");
    }
}

proptest! {
    #[test]
    fn a_larger_margin_never_lowers_the_loss((e, w, l) in embedding_batch(), m in 0.0f64..1.0, dm in 0.0f64..1.0) {
        let l = Array1::from(l);
        let input = embeddings(&e, &w);
        let a = CosFace::new().with_margin(m).unwrap().per_sample(input, l.view()).unwrap();
        let b = CosFace::new().with_margin(m + dm).unwrap().per_sample(input, l.view()).unwrap();
        for (x, y) in a.iter().zip(b.iter()) {
            prop_assert!(y + 1e-12 >= *x);
        }
    }

    #[test]
    fn f32_agrees_with_f64((e, w, l) in embedding_batch()) {
        let cf = CosFace::new().with_scale(30.0).unwrap().with_margin(0.2).unwrap();
        let l = Array1::from(l);
        let (e32, w32) = (e.mapv(|v| v as f32), w.mapv(|v| v as f32));
        let (a, ga) = cf
            .forward_backward(embeddings(&e, &w), l.view())
            .unwrap();
        let (b, gb) = cf
            .forward_backward(embeddings(&e32, &w32), l.view())
            .unwrap();
        prop_assert!((a - b as f64).abs() <= 1e-4 * (1.0 + a.abs()));
        for (x, y) in ga.embeddings.iter().chain(ga.weight.iter()).zip(gb.embeddings.iter().chain(gb.weight.iter())) {
            prop_assert!((x - *y as f64).abs() <= 1e-3 * (1.0 + x.abs()), "{} vs {}", x, y);
        }
    }
}
