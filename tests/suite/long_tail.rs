//! The long-tail losses, logit adjustment and LDAM: the contract, their
//! identities with cross-entropy, the f32 overflow rule, errors.
//! (Reference values: `tests/conformance`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Labeled, check_contract};
use classloss::{CrossEntropy, Differentiable, Labels, Ldam, LogitAdjusted, Loss, Reduction};
use ndarray::{Array1, Array2, array};

fn batch(n: usize, c: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
    (
        matrix(random_array(&[n, c], seed, 3.0)),
        vector(random_labels(&[n], c, seed + 1)),
    )
}

fn counts() -> Array1<f64> {
    array![500.0, 120.0, 30.0, 7.0, 2.0]
}

#[test]
fn contract() {
    for (seed, tau) in [(1u64, 1.0), (2, 0.0), (3, 2.5)] {
        let (x, y) = batch(7, 5, seed);
        let args = Labeled::new(x, y);
        let la = LogitAdjusted::new()
            .with_tau(tau)
            .unwrap()
            .with_samples_per_class(counts())
            .unwrap();
        let case = Case::new(format!("logit adjusted tau={tau}"), args.clone())
            .misshapen("samples_per_class", args.with_extra_class());
        check_contract(&la, &case);
    }
    for (seed, m, s) in [(4u64, 0.5, 30.0), (5, 0.3, 10.0), (6, 0.0, 1.0)] {
        let (x, y) = batch(7, 5, seed);
        let args = Labeled::new(x.mapv(|v| v / 30.0), y);
        let ldam = Ldam::new()
            .with_max_margin(m)
            .unwrap()
            .with_scale(s)
            .unwrap()
            .with_samples_per_class(counts())
            .unwrap();
        let case = Case::new(format!("LDAM m={m} s={s}"), args.clone())
            .misshapen("samples_per_class", args.with_extra_class());
        check_contract(&ldam, &case);
    }
}

#[test]
fn logit_adjustment_is_cross_entropy_of_the_adjusted_logits() {
    let (x, y) = batch(6, 5, 7);
    let labels = Labels::from(&y);
    let tau = 0.7;
    let prior = counts() / counts().sum();
    let z = &x + &prior.mapv(|p| tau * p.ln());
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let la = LogitAdjusted::new()
            .with_reduction(reduction)
            .with_tau(tau)
            .unwrap()
            .with_samples_per_class(counts())
            .unwrap();
        let (v, g) = la.forward_backward(x.view(), labels.clone()).unwrap();
        let ce = CrossEntropy::new().with_reduction(reduction);
        let (vc, gc) = ce.forward_backward(z.view(), labels.clone()).unwrap();
        assert!((v - vc).abs() < 1e-12);
        assert!(g.iter().zip(&gc).all(|(a, b)| (a - b).abs() < 1e-15));
    }
    // Equal counts (or tau = 0) move nothing: plain cross-entropy.
    let flat = LogitAdjusted::new()
        .with_samples_per_class(Array1::from_elem(5, 10.0))
        .unwrap();
    let ce = CrossEntropy::new();
    let v = flat.forward(x.view(), labels.clone()).unwrap();
    assert!((v - ce.forward(x.view(), labels).unwrap()).abs() < 1e-12);
}

#[test]
fn ldam_is_cross_entropy_of_the_scaled_logits_minus_the_label_margin() {
    let (x, y) = batch(6, 5, 8);
    let labels = Labels::from(&y);
    let (m, s) = (0.4, 8.0);
    let margin = counts().mapv(|n| n.powf(-0.25));
    let margin = &margin * (m / margin.fold(0.0_f64, |a, &b| a.max(b)));
    let mut z = &x * s;
    for (i, &yi) in y.iter().enumerate() {
        z[[i, yi]] -= s * margin[yi];
    }
    let ldam = Ldam::new()
        .with_max_margin(m)
        .unwrap()
        .with_scale(s)
        .unwrap()
        .with_samples_per_class(counts())
        .unwrap();
    let (v, g) = ldam.forward_backward(x.view(), labels.clone()).unwrap();
    let (vc, gc) = CrossEntropy::new()
        .forward_backward(z.view(), labels)
        .unwrap();
    assert!((v - vc).abs() < 1e-12);
    // d/dx = s d/dz.
    assert!(g.iter().zip(&gc).all(|(a, b)| (a - s * b).abs() < 1e-14));
    // The rarest class has the largest margin, `m` itself.
    assert!((margin[4] - m).abs() < 1e-15 && margin[0] < margin[4]);
}

#[test]
fn an_f32_logit_whose_scaled_value_passes_f32_is_an_overflow_naming_it() {
    let ldam = Ldam::<f32>::new()
        .with_samples_per_class(array![10.0, 1.0])
        .unwrap();
    let x = array![[0.5_f32, 1.0], [2e37, -1.0]];
    let e = ldam
        .forward(x.view(), Labels::from(&array![0_usize, 1]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits[1, 0]: the transformed logit overflows f32: expected at most 3.4028235e38, \
         got about 6.000e38"
    );
}

#[test]
fn errors_name_the_option_and_the_values() {
    let x = array![[0.5_f64, -1.0], [2.0, 0.0]];
    let y = array![0_usize, 1];
    let e = LogitAdjusted::<f64>::new()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `samples_per_class`: expected the training set's count of each class, got none"
    );
    let e = Ldam::<f64>::new()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("option `samples_per_class`"),
        "{e}"
    );
    let e = LogitAdjusted::<f64>::new()
        .with_samples_per_class(array![3.0, 0.0])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `samples_per_class`: expected counts that are finite and > 0, got 0"
    );
    let e = LogitAdjusted::<f64>::new()
        .with_samples_per_class(array![3.0, 1.0, 2.0])
        .unwrap()
        .forward(x.view(), Labels::from(&y))
        .unwrap_err();
    assert!(e.to_string().starts_with("samples_per_class"), "{e}");
    let e = Ldam::<f64>::new().with_scale(0.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "option `scale`: expected a finite number > 0, got 0"
    );
}
