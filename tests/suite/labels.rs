//! Inputs and checks shared by the tests of the softmax losses on `(N, C)`
//! logits and `(N)` labels (focal, Poly-1, the noise-robust family), used
//! as `crate::labels` by their modules. (What every loss must satisfy is in
//! `crate::contract`.)

use crate::common::{matrix, random_array, random_labels, vector};
use crate::contract::{Case, Contract, Labeled, Rebuild};
use classloss::{
    ClassifierLoss, CrossEntropy, Differentiable, Error, Float, Labels, Loss, Reduction,
};
use ndarray::{Array1, Array2, ArrayView2, Ix2};
use proptest::prelude::*;

/// Random `(n, c)` logits in `[-scale, scale]` and labels in `0..c`.
pub fn random_case(n: usize, c: usize, seed: u64, scale: f64) -> (Array2<f64>, Array1<usize>) {
    let x = matrix(random_array(&[n, c], seed, scale));
    let y = vector(random_labels(&[n], c, seed + 1000));
    (x, y)
}

/// [`random_case`] as the contract's arguments.
pub fn random_labeled(n: usize, c: usize, seed: u64, scale: f64) -> Labeled<f64, Ix2> {
    let (x, y) = random_case(n, c, seed, scale);
    Labeled::new(x, y)
}

/// The contract of each of `losses` (with its name) on `(7, 5)` logits in
/// `[-3, 3]` and labels drawn from `seed`.
pub fn contract_on_random_rows<L>(seed: u64, losses: impl IntoIterator<Item = (String, L)>)
where
    L: Contract<Labeled<f64, Ix2>>,
{
    let args = random_labeled(7, 5, seed, 3.0);
    for (what, loss) in losses {
        loss.check(&Case::new(what, args.clone()));
    }
}

/// The input errors of the value calls of every loss on `(N, C)` scores
/// and labels, with their exact messages.
pub fn assert_label_errors_of_values<L>(loss: &L)
where
    L: for<'a> Loss<f64, Input<'a> = ArrayView2<'a, f64>, Target<'a>: From<Labels<'a>>>,
{
    let x = Array2::<f64>::zeros((2, 3));
    let msg = |r: classloss::Result<f64>| r.unwrap_err().to_string();
    let labels = |l: Vec<usize>| Array1::from(l);
    // labels of the wrong shape
    assert_eq!(
        msg(loss.forward(x.view(), Labels::from(&labels(vec![0])))),
        "labels: expected shape [2], got [1]"
    );
    // a label out of range
    let e = loss
        .forward(x.view(), Labels::from(&labels(vec![0, 3])))
        .unwrap_err();
    assert!(matches!(
        e,
        Error::LabelOutOfRange {
            label: 3,
            num_classes: 3,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "labels[1]: label 3 is out of range for 3 classes (expected 0..=2)"
    );
    // the same through per_sample
    let per = loss.per_sample(x.view(), Labels::from(&labels(vec![5, 0])));
    assert!(matches!(per, Err(Error::LabelOutOfRange { label: 5, .. })));
    // an empty batch and an empty class axis
    assert_eq!(
        msg(loss.forward(Array2::zeros((0, 3)).view(), Labels::from(&labels(vec![])))),
        "logits: expected at least one sample, got an empty array of shape [0, 3]"
    );
    assert_eq!(
        msg(loss.forward(
            Array2::zeros((2, 0)).view(),
            Labels::from(&labels(vec![0, 0]))
        )),
        "logits: expected at least one class, got an empty array of shape [2, 0]"
    );
}

/// The input errors every differentiable loss on `(N, C)` scores and
/// labels reports, with their exact messages: those of the value calls, and
/// a gradient buffer of the wrong shape (left unwritten).
pub fn assert_label_errors<L>(loss: &L)
where
    L: for<'a> Differentiable<
            f64,
            Input<'a> = ArrayView2<'a, f64>,
            Target<'a>: From<Labels<'a>>,
            Grad = Array2<f64>,
        >,
{
    assert_label_errors_of_values(loss);
    let x = Array2::<f64>::zeros((2, 3));
    let labels = Array1::from(vec![0_usize, 1]);
    let mut g = Array2::zeros((2, 2));
    let e = loss
        .forward_backward_into(x.view(), Labels::from(&labels), L::grad_view_mut(&mut g))
        .unwrap_err();
    assert_eq!(e.to_string(), "grad: expected shape [2, 3], got [2, 2]");
    assert!(g.iter().all(|&v| v == 0.0));
}

/// `loss` equals `k` times cross-entropy on `(x, y)`: the value and the
/// gradient, to `1e-12` relative (absolute below 1).
pub fn assert_scaled_cross_entropy<L: ClassifierLoss<f64>>(
    loss: &L,
    x: &Array2<f64>,
    y: &Array1<usize>,
    k: f64,
) -> Result<(), TestCaseError> {
    let (a, ga) = loss.forward_backward(x, Labels::from(y)).unwrap();
    let (b, gb) = CrossEntropy::new().forward_backward(x, y).unwrap();
    let near = |p: f64, q: f64| (p - q).abs() <= 1e-12 * q.abs().max(1.0);
    prop_assert!(near(a, k * b), "value {} vs {} times {}", a, k, b);
    for (p, q) in ga.iter().zip(&gb) {
        prop_assert!(near(*p, k * q), "gradient {} vs {} times {}", p, k, q);
    }
    Ok(())
}

/// Adding `shift` to every logit changes neither the value nor the
/// gradient of `loss` (to `1e-9`).
pub fn assert_shift_invariant<L: ClassifierLoss<f64>>(
    loss: &L,
    x: &Array2<f64>,
    y: &Array1<usize>,
    shift: f64,
) -> Result<(), TestCaseError> {
    let (a, ga) = loss.forward_backward(x, Labels::from(y)).unwrap();
    let (b, gb) = loss
        .forward_backward(&(x + shift), Labels::from(y))
        .unwrap();
    prop_assert!((a - b).abs() <= 1e-9 * (1.0 + a.abs()), "{} vs {}", a, b);
    prop_assert!(ga.iter().zip(&gb).all(|(p, q)| (p - q).abs() < 1e-9));
    Ok(())
}

/// The `f32` version of `loss` agrees with the `f64` one (value and
/// gradient) on `(x, y)` (see [`assert_f32_close`]).
pub fn assert_f32_agrees<L>(
    loss: &L,
    x: &Array2<f64>,
    y: &Array1<usize>,
) -> Result<(), TestCaseError>
where
    L: Rebuild,
    L::As<f64>: ClassifierLoss<f64>,
    L::As<f32>: ClassifierLoss<f32>,
{
    let (l64, l32) = (
        loss.rebuild::<f64>(Reduction::Mean),
        loss.rebuild::<f32>(Reduction::Mean),
    );
    let a = l64.forward_backward(x, Labels::from(y)).unwrap();
    let b = l32
        .forward_backward(&x.mapv(|v| v as f32), Labels::from(y))
        .unwrap();
    assert_f32_close((a.0, &a.1), (b.0, &b.1), 1e-5)
}

/// `f32` logits at `±1e30` and labels: a confidently wrong row (label 1),
/// a uniform row, a confidently right row.
pub fn extreme_rows() -> (Array2<f32>, Array1<usize>) {
    let x = ndarray::array![
        [1e30_f32, -1e30, 0.0],
        [-1e30, -1e30, -1e30],
        [1e30, -1e30, 0.0]
    ];
    (x, ndarray::array![1_usize, 2, 0])
}

/// `loss`'s per-sample values and gradient on [`extreme_rows`]; the
/// gradient is finite.
pub fn on_extreme_rows<L: ClassifierLoss<f32>>(loss: &L) -> (Array1<f32>, Array2<f32>) {
    let (x, y) = extreme_rows();
    let per = loss.per_sample(&x, Labels::from(&y)).unwrap();
    let g = loss.backward(&x, Labels::from(&y)).unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g}");
    (per, g)
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

/// `(N, C)` scores drawn from `value` and labels, `N` in `rows`, `C` in
/// `classes`.
pub fn labeled_rows<S>(
    rows: std::ops::Range<usize>,
    classes: std::ops::Range<usize>,
    value: S,
) -> impl Strategy<Value = (Array2<f64>, Array1<usize>)>
where
    S: Strategy<Value = f64> + Clone,
{
    (rows, classes).prop_flat_map(move |(n, c)| {
        (
            proptest::collection::vec(value.clone(), n * c),
            proptest::collection::vec(0..c, n),
        )
            .prop_map(move |(v, l)| (Array2::from_shape_vec((n, c), v).unwrap(), Array1::from(l)))
    })
}

/// `(N, C)` logits in `[-30, 30]` and labels, `N` in 1..6, `C` in 2..7.
pub fn logits_and_labels() -> impl Strategy<Value = (Array2<f64>, Array1<usize>)> {
    labeled_rows(1..6, 2..7, -30.0f64..30.0)
}

/// `a` and `b` agree within `tol * (1 + |a|)` element-wise.
pub fn close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(p, q)| (p - q).abs() <= tol * (1.0 + p.abs()))
}
