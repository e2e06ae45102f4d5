//! BYOL's loss: the contract, `2 - 2 cos` and `|p^ - z^|^2`, the targets as
//! constants, norms, zero and huge rows, errors. (Reference values:
//! `tests/conformance`.)

use crate::common::{assert_grad_errors, matrix, random_array};
use crate::contract::{Case, Paired, check_contract};
use classloss::{Byol, Differentiable, Error, Loss, Reduction};
use ndarray::{Array2, array};

#[test]
fn contract() {
    for (seed, shape) in [(31, [6, 4]), (32, [1, 3]), (33, [5, 1])] {
        let p = matrix(random_array(&shape, seed, 1.0));
        let z = matrix(random_array(&shape, seed + 10, 3.0));
        let args = Paired::new(p, z, "targets");
        check_contract(&Byol::new(), &Case::new(format!("{shape:?}"), args));
    }
}

#[test]
fn values_are_squared_distances_of_the_unit_rows() {
    let p = matrix(random_array(&[7, 5], 34, 2.0));
    let z = matrix(random_array(&[7, 5], 35, 0.5));
    let per = Byol::new()
        .with_reduction(Reduction::None)
        .per_sample(&p, &z)
        .unwrap();
    for (i, (a, b)) in p.rows().into_iter().zip(z.rows()).enumerate() {
        let (a, b) = (&a / a.dot(&a).sqrt(), &b / b.dot(&b).sqrt());
        let d = &a - &b;
        let cos = a.dot(&b);
        assert!((per[i] - d.dot(&d)).abs() < 1e-14, "{i}");
        assert!((per[i] - (2.0 - 2.0 * cos)).abs() < 1e-14, "{i}");
    }
}

/// The targets are constants: scaling a target row changes nothing, and a
/// prediction row's gradient scales as the inverse of its norm (from norms
/// near 1e-9, above F.normalize's floor of 1e-12, to norms near 1e280).
#[test]
fn norms_do_not_matter() {
    let p = matrix(random_array(&[4, 3], 36, 1.0));
    let z = matrix(random_array(&[4, 3], 37, 1.0));
    let loss = Byol::new();
    let (v, g) = loss.forward_backward(&p, &z).unwrap();
    for (k, t) in [(1e-9, 3.0), (0.5, 1e-5), (7.0, 1e100), (1e280, 0.125)] {
        let (vk, gk) = loss.forward_backward(&(&p * k), &(&z * t)).unwrap();
        assert!((v - vk).abs() < 1e-14, "{k}: {v} vs {vk}");
        for (a, b) in g.iter().zip(&gk) {
            assert!(
                (a - b * k).abs() < 1e-13 * a.abs().max(1e-2),
                "{k}: {a} vs {}",
                b * k
            );
        }
    }
}

/// Rows whose squares pass f64 and zero rows: finite values and gradients,
/// a zero row with PyTorch's `2` and `-2 z^ / 1e-12`.
#[test]
fn huge_and_zero_rows_stay_finite() {
    let p = array![[3e300_f64, -4e300], [0.0, 0.0], [1.0, 1.0]];
    let z = array![[3.0, -4.0], [0.0, 2.0], [0.0, 0.0]];
    let loss = Byol::new().with_reduction(Reduction::Sum);
    let per = loss.per_sample(&p, &z).unwrap();
    assert!(per[0].abs() < 1e-15, "{}", per[0]);
    assert_eq!((per[1], per[2]), (2.0, 2.0));
    let (_, g) = loss.forward_backward(&p, &z).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert_eq!(g.row(1).to_vec(), vec![0.0, -2.0 / 1e-12]);
    assert_eq!(g.row(2).to_vec(), vec![0.0, 0.0]);
    let p32 = array![[3e38_f32, 3e38], [1e-40, 0.0]];
    let z32 = array![[1.0_f32, 0.0], [1.0, 0.0]];
    let (v, g) = Byol::new().forward_backward(&p32, &z32).unwrap();
    assert!(v.is_finite() && g.iter().all(|x| x.is_finite()));
}

#[test]
fn errors_name_the_argument_and_the_values() {
    let p = Array2::<f64>::ones((3, 2));
    let loss = Byol::new();
    let e = loss.forward(&p, &Array2::<f64>::ones((3, 3))).unwrap_err();
    assert_eq!(e.to_string(), "targets: expected shape [3, 2], got [3, 3]");
    let e = loss
        .forward(&Array2::<f64>::zeros((0, 2)), &Array2::<f64>::zeros((0, 2)))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::EmptyBatch {
                what: "predictions",
                ..
            }
        ),
        "{e}"
    );
    let z = Array2::<f64>::ones((3, 2));
    assert_grad_errors(
        &loss,
        p.view(),
        z.view(),
        vec![(
            Array2::zeros((3, 1)),
            "grad: expected shape [3, 2], got [3, 1]",
        )],
    );
}

#[test]
fn the_targets_gradient_is_the_loss_with_the_roles_swapped() {
    // 2 - 2 cos(p, z) is symmetric: backward(z, p) is d l / d z, checked
    // against central differences of forward(p, z) in z.
    let p = matrix(random_array(&[4, 3], 40, 1.0));
    let z = matrix(random_array(&[4, 3], 41, 2.0));
    let loss = Byol::new();
    assert_eq!(loss.forward(&p, &z).unwrap(), loss.forward(&z, &p).unwrap());
    let dz = loss.backward(&z, &p).unwrap();
    let f = |v: &[f64]| {
        let z = Array2::from_shape_vec((4, 3), v.to_vec()).unwrap();
        loss.forward(&p, &z).unwrap()
    };
    let x: Vec<f64> = z.iter().copied().collect();
    let g: Vec<f64> = dz.iter().copied().collect();
    classloss::gradcheck::GradCheck::default()
        .check(f, &x, &g)
        .unwrap();
}
