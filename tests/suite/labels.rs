//! Inputs and checks shared by the tests of the softmax losses on `(N, C)`
//! logits and `(N)` labels (focal, Poly-1, the noise-robust family), used
//! as `crate::labels` by their modules. (What every loss must satisfy is in
//! `crate::contract`.)

use classloss::{Differentiable, Float, Labels, Loss};
use ndarray::{Array1, Array2, ArrayView2, Ix1, Ix2};
use proptest::prelude::*;

use crate::common::{random_array, random_labels};
use crate::contract::Labeled;

/// Random `(n, c)` logits in `[-scale, scale]` and labels in `0..c`.
pub fn random_case(n: usize, c: usize, seed: u64, scale: f64) -> (Array2<f64>, Array1<usize>) {
    let x = random_array(&[n, c], seed, scale)
        .into_dimensionality::<Ix2>()
        .unwrap();
    let y = random_labels(&[n], c, seed + 1000)
        .into_dimensionality::<Ix1>()
        .unwrap();
    (x, y)
}

/// [`random_case`] as the contract's arguments.
pub fn random_labeled(n: usize, c: usize, seed: u64, scale: f64) -> Labeled<f64, Ix2> {
    let (x, y) = random_case(n, c, seed, scale);
    Labeled::new(x, y)
}

/// The input errors every loss on labels reports, with their exact
/// messages.
pub fn assert_label_errors<L>(loss: &L)
where
    L: for<'a> Loss<f64, Input<'a> = ArrayView2<'a, f64>, Target<'a> = Labels<'a>>
        + Differentiable<f64, Grad = Array2<f64>>,
{
    let x = Array2::<f64>::zeros((2, 3));
    let msg = |r: classloss::Result<f64>| r.unwrap_err().to_string();
    // labels of the wrong shape
    assert_eq!(
        msg(loss.forward(x.view(), Array1::from(vec![0_usize]).view())),
        "labels: expected shape [2], got [1]"
    );
    // a label out of range
    let e = loss
        .forward(x.view(), Array1::from(vec![0_usize, 3]).view())
        .unwrap_err();
    assert!(matches!(
        e,
        classloss::Error::LabelOutOfRange {
            label: 3,
            num_classes: 3,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "labels[1]: label 3 is out of range for 3 classes (expected 0..=2)"
    );
    // the same through per_sample and the fused call
    assert!(
        loss.per_sample(x.view(), Array1::from(vec![5_usize, 0]).view())
            .is_err()
    );
    // an empty batch and an empty class axis
    assert_eq!(
        msg(loss.forward(
            Array2::zeros((0, 3)).view(),
            Array1::<usize>::zeros(0).view()
        )),
        "logits: expected at least one sample, got an empty array of shape [0, 3]"
    );
    assert_eq!(
        msg(loss.forward(
            Array2::zeros((2, 0)).view(),
            Array1::from(vec![0_usize, 0]).view()
        )),
        "logits: expected at least one class, got an empty array of shape [2, 0]"
    );
    // a gradient buffer of the wrong shape
    let mut g = Array2::zeros((2, 2));
    assert_eq!(
        msg(loss.forward_backward_into(
            x.view(),
            Array1::from(vec![0_usize, 1]).view(),
            L::grad_view_mut(&mut g)
        )),
        "grad: expected shape [2, 3], got [2, 2]"
    );
    // ... and the buffer was not written before the error
    assert!(g.iter().all(|&v| v == 0.0));
}

/// `(f64 value, f64 gradient)` and `(f32 value, f32 gradient)` agree to
/// `f32` precision.
pub fn assert_f32_close(
    a: (f64, &Array2<f64>),
    b: (f32, &Array2<f32>),
    rtol: f64,
) -> Result<(), TestCaseError> {
    let (va, ga) = a;
    let (vb, gb) = b;
    prop_assert!(
        (va - vb.as_f64()).abs() <= rtol * (1.0 + va.abs()),
        "value {} vs {}",
        va,
        vb
    );
    let scale = ga.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
    for (p, q) in ga.iter().zip(gb.iter()) {
        prop_assert!(
            (p - q.as_f64()).abs() <= rtol * scale,
            "gradient {} vs {}",
            p,
            q
        );
    }
    Ok(())
}

/// `(N, C)` logits in `[-30, 30]` and labels, `N` in 1..6, `C` in 2..7.
pub fn logits_and_labels() -> impl Strategy<Value = (Array2<f64>, Array1<usize>)> {
    (1usize..6, 2usize..7).prop_flat_map(|(n, c)| {
        (
            proptest::collection::vec(-30.0f64..30.0, n * c),
            proptest::collection::vec(0..c, n),
        )
            .prop_map(move |(v, l)| (Array2::from_shape_vec((n, c), v).unwrap(), Array1::from(l)))
    })
}

/// `a` and `b` agree within `tol * (1 + |a|)` element-wise.
pub fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(p, q)| (p - q).abs() <= tol * (1.0 + p.abs()))
}
