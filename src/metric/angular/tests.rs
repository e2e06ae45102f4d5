//! Rows parallel to working precision: the documented gradient.

use super::cosines::run_cosines;
use super::embeddings::run_embeddings;
use super::*;
use crate::base::loss::Call;
use crate::engine::angular::margin::Perp;
use crate::engine::angular::tests::lcg;
use crate::numerics::l2_norm;
use ndarray::{Array1, Array2, ArrayView1, array};

#[test]
fn rows_parallel_to_working_precision_take_the_documented_gradient() {
    // e_0 = k w_0 exactly, with normalized rows that differ by rounding:
    // the residual is noise, and the target's angular term (whose
    // direction would be that noise) is left out, as at cos = 1.
    let mut seed = 3;
    let (w0, k) = (0..1000)
        .map(|_| {
            let w0: Array1<f64> = (0..3)
                .map(|_| (lcg(&mut seed) * 200.0 - 100.0).round())
                .collect();
            (w0, (lcg(&mut seed) * 20.0).round() + 2.0)
        })
        .find(|(w0, k)| {
            let e0 = w0 * *k;
            let n = |x: &Array1<f64>| l2_norm(x.iter().copied());
            n(w0) > 0.0 && Perp::new(e0.view(), n(&e0), w0.view(), n(w0)).norm() > 0.0
        })
        .expect("a parallel pair whose normalization rounds differently");
    let e = (&w0 * k).insert_axis(ndarray::Axis(0));
    let mut w = Array2::zeros((2, 3));
    w.row_mut(0).assign(&w0);
    w.row_mut(1).assign(&array![-1.0, 0.5, 2.0]);
    let labels = array![0_usize];
    let spec = Spec {
        reduction: Reduction::Sum,
        scale: 1.0,
        m1: 1.0,
        m2: 0.5,
        m3: 0.0,
        easy_margin: false,
    };
    let (mut ge, mut gw) = (Array2::zeros((1, 3)), Array2::zeros((2, 3)));
    let grad = EmbeddingsGradMut {
        embeddings: ge.view_mut(),
        weight: gw.view_mut(),
    };
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    let call = Call {
        input,
        target: labels.view().into(),
        grad: Some(grad),
        per: None,
    };
    let value = run_embeddings(&spec, call).unwrap().sum.total;
    // The chain rule with d cos_00 / d e = d cos_00 / d w_0 = 0.
    let unit = |x: ArrayView1<'_, f64>| &x / x.dot(&x).sqrt();
    let (e_hat, w1_hat) = (unit(e.row(0)), unit(w.row(1)));
    let c01 = e_hat.dot(&w1_hat);
    let cos = array![[1.0, c01]];
    let mut g = Array2::zeros((1, 2));
    let call = Call {
        input: cos.view(),
        target: labels.view().into(),
        grad: Some(g.view_mut()),
        per: None,
    };
    let v = run_cosines(&spec, call).unwrap().sum.total;
    assert!((value - v).abs() < 1e-12, "{value} vs {v}");
    let expect_e = (&w1_hat - &(&e_hat * c01)) * g[[0, 1]] / e.row(0).dot(&e.row(0)).sqrt();
    let expect_w1 = (&e_hat - &(&w1_hat * c01)) * g[[0, 1]] / w.row(1).dot(&w.row(1)).sqrt();
    for (a, b) in ge.row(0).iter().zip(&expect_e) {
        assert!((a - b).abs() < 1e-12, "{ge} vs {expect_e}");
    }
    assert!(gw.row(0).iter().all(|x| x.abs() < 1e-12), "{gw}");
    for (a, b) in gw.row(1).iter().zip(&expect_w1) {
        assert!((a - b).abs() < 1e-12, "{gw} vs {expect_w1}");
    }
}
