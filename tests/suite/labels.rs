//! Checks shared by the tests of the softmax losses on `(N, C)` logits and
//! `(N)` labels (focal, Poly-1, the noise-robust family), used as
//! `crate::labels` by their modules.

use classloss::{Differentiable, Float, Labels, Loss, Reduction};
use ndarray::{Array1, Array2, ArrayView2, Ix1, Ix2};
use proptest::prelude::*;

use crate::common::{assert_gradient, random_array, random_labels};

pub fn reductions() -> [Reduction; 3] {
    [Reduction::Mean, Reduction::Sum, Reduction::None]
}

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

/// The fused call agrees with `forward` (bit for bit) and with
/// `per_sample` (under the loss's reduction, `Mean` dividing by `N`), and
/// its gradient matches central differences of `forward`.
pub fn assert_consistent_gradient<L>(what: &str, loss: &L, x: &Array2<f64>, y: &Array1<usize>)
where
    L: for<'a> Loss<
            f64,
            Input<'a> = ArrayView2<'a, f64>,
            Target<'a> = Labels<'a>,
            PerSample = Array1<f64>,
        > + Differentiable<f64, Grad = Array2<f64>>,
{
    let (value, grad) = loss.forward_backward(x.view(), y.view()).unwrap();
    assert_eq!(
        value,
        loss.forward(x.view(), y.view()).unwrap(),
        "{what}: fused value differs from forward"
    );
    let per = loss.per_sample(x.view(), y.view()).unwrap();
    assert!(per.iter().all(|v| v.is_finite()), "{what}: {per}");
    let expected = match loss.reduction() {
        Reduction::Mean => per.sum() / x.nrows() as f64,
        Reduction::Sum | Reduction::None => per.sum(),
    };
    assert!(
        (value - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
        "{what}: value {value} but per-sample values give {expected}"
    );
    assert_gradient(
        what,
        |z| {
            let z = z.view().into_dimensionality::<Ix2>().unwrap();
            loss.forward(z, y.view()).unwrap()
        },
        &x.clone().into_dyn(),
        &grad.into_dyn(),
    );
}

/// A buffer full of garbage comes back holding exactly the clean gradient.
pub fn assert_overwrites_dirty_buffer<L>(loss: &L, x: &Array2<f64>, y: &Array1<usize>)
where
    L: for<'a> Loss<f64, Input<'a> = ArrayView2<'a, f64>, Target<'a> = Labels<'a>>
        + Differentiable<f64, Grad = Array2<f64>>,
{
    let clean = loss.backward(x.view(), y.view()).unwrap();
    for garbage in [123.0, f64::NAN, -f64::INFINITY] {
        let mut dirty = Array2::from_elem(x.raw_dim(), garbage);
        let v = loss
            .forward_backward_into(x.view(), y.view(), L::grad_view_mut(&mut dirty))
            .unwrap();
        assert_eq!(dirty, clean, "garbage {garbage}");
        assert_eq!(v, loss.forward(x.view(), y.view()).unwrap());
    }
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
