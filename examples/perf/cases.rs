//! The measured cells (loss x dtype x shape) and, for each, the three
//! operations timed: the fused call, the unfused pair, the copy floor.

use std::hint::black_box;
use std::rc::Rc;

use classloss::{
    AngularMargin, ArcFace, BceWithLogits, ClassifierLoss, CrossEntropy, Differentiable, Float,
    GeneralizedCrossEntropy, LabelSmoothing, Labels, Loss, Poly1, SigmoidFocal, SoftmaxFocal,
};
use ndarray::{
    Array, Array2, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Dimension, RemoveAxis,
};

use crate::inputs;

/// One cell of the table: a loss on `(n, c)` inputs, or `(n, c, h, w)`
/// ones for a spatial cell, of one float type.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The loss's name, as in the JSON output and in `compare_pytorch.py`.
    pub loss: &'static str,
    /// `"f32"` or `"f64"`.
    pub dtype: &'static str,
    /// Batch size (rows).
    pub n: usize,
    /// Classes (logits per row, or per position of a spatial cell).
    pub c: usize,
    /// The positions `(h, w)` of each sample of a spatial cell (class axis
    /// 1, as in PyTorch), `None` for `(n, c)` inputs.
    pub spatial: Option<(usize, usize)>,
}

impl Case {
    /// The input's dimensions: `[n, c]`, or `[n, c, h, w]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut dims = vec![self.n, self.c];
        dims.extend(self.spatial.map(|(h, w)| [h, w]).into_iter().flatten());
        dims
    }

    /// The number of logits, the unit of "per element".
    pub fn elements(&self) -> usize {
        self.dims().iter().product()
    }

    /// `"4096x1000"`, or `"8x21x128x128"` for a spatial cell.
    pub fn shape(&self) -> String {
        let dims: Vec<String> = self.dims().iter().map(usize::to_string).collect();
        dims.join("x")
    }

    /// What `--filter` matches against: `"cross_entropy f32 4096x1000"`,
    /// `"cross_entropy_spatial f32 8x21x128x128"`.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.loss, self.dtype, self.shape())
    }

    /// Builds the inputs and the three timed operations.
    pub fn prepare(&self) -> Prepared {
        match self.dtype {
            "f32" => prepare::<f32>(self),
            "f64" => prepare::<f64>(self),
            other => unreachable!("dtype {other}"),
        }
    }
}

const fn case(loss: &'static str, dtype: &'static str, n: usize, c: usize) -> Case {
    Case {
        loss,
        dtype,
        n,
        c,
        spatial: None,
    }
}

/// A cell on `(n, c, h, w)` inputs.
const fn spatial_case(
    loss: &'static str,
    dtype: &'static str,
    (n, c, h, w): (usize, usize, usize, usize),
) -> Case {
    Case {
        loss,
        dtype,
        n,
        c,
        spatial: Some((h, w)),
    }
}

/// Every cell, in table order.
pub const CASES: &[Case] = &[
    case("cross_entropy", "f32", 128, 10),
    case("cross_entropy", "f32", 128, 100),
    case("cross_entropy", "f32", 256, 1000),
    case("cross_entropy", "f32", 4096, 1000),
    case("cross_entropy", "f32", 64, 21841),
    case("cross_entropy", "f32", 1024, 32000),
    case("cross_entropy", "f32", 256, 128256),
    case("cross_entropy", "f64", 256, 1000),
    // A batch of 128x128 segmentation maps over 21 classes.
    spatial_case("cross_entropy_spatial", "f32", (8, 21, 128, 128)),
    case("label_smoothing", "f32", 256, 1000),
    case("label_smoothing", "f32", 4096, 1000),
    case("softmax_focal", "f32", 256, 1000),
    case("softmax_focal", "f32", 4096, 1000),
    case("poly1", "f32", 256, 1000),
    case("poly1", "f32", 4096, 1000),
    case("gce", "f32", 256, 1000),
    case("gce", "f32", 4096, 1000),
    case("arcface_cosines", "f32", 512, 10000),
    case("arcface_cosines", "f32", 512, 100000),
    case("bce_with_logits", "f32", 4096, 80),
    case("bce_with_logits", "f32", 1024, 32000),
    case("sigmoid_focal", "f32", 4096, 80),
    case("sigmoid_focal", "f32", 1024, 32000),
];

/// The operations of one cell, owning their inputs and buffers.
pub struct Prepared {
    /// `forward_backward_into` a gradient buffer reused across calls.
    pub fused: Box<dyn FnMut()>,
    /// `forward`, then `backward` (which allocates the gradient).
    pub unfused: Box<dyn FnMut()>,
    /// Reads the input and writes a gradient-sized buffer: the floor.
    pub copy: Box<dyn FnMut()>,
}

fn prepare<F: Float>(case: &Case) -> Prepared {
    let (n, c) = (case.n, case.c);
    let logits = || inputs::logits::<F>(n, c);
    match case.loss {
        "cross_entropy" => cross_entropy(logits(), inputs::labels(n, c), CrossEntropy::new()),
        "cross_entropy_spatial" => {
            let hw = case.spatial.expect("a spatial cell has (h, w)");
            cross_entropy(
                inputs::spatial_logits::<F>(n, c, hw),
                inputs::spatial_labels(n, c, hw),
                CrossEntropy::<F, ndarray::Ix4>::spatial(),
            )
        }
        "label_smoothing" => on_labels(logits(), LabelSmoothing::new()),
        "softmax_focal" => on_labels(logits(), SoftmaxFocal::new()),
        "poly1" => on_labels(logits(), Poly1::new()),
        "gce" => on_labels(logits(), GeneralizedCrossEntropy::new()),
        "arcface_cosines" => on_labels(inputs::cosines::<F>(n, c), ArcFace::new().on_cosines()),
        "bce_with_logits" => on_targets(logits(), BceWithLogits::new()),
        "sigmoid_focal" => on_targets(logits(), SigmoidFocal::new()),
        other => unreachable!("loss {other}"),
    }
}

/// Cross-entropy on `(N, C, ..)` logits and `(N, ..)` labels.
fn cross_entropy<F: Float, D: RemoveAxis + 'static>(
    x: Array<F, D>,
    y: Array<usize, D::Smaller>,
    loss: CrossEntropy<F, D>,
) -> Prepared {
    let l2 = loss.clone();
    timed(
        x,
        y,
        move |x, y, g| loss.forward_backward_into(x, y.view(), g),
        move |x, y| {
            let y = || y.view();
            Ok((l2.forward(x.view(), y())?, l2.backward(x, y())?))
        },
    )
}

/// A loss on `(N, C)` inputs (logits or cosines) and `(N)` labels.
fn on_labels<F: Float, L: ClassifierLoss<F> + Clone + 'static>(x: Array2<F>, loss: L) -> Prepared {
    let l2 = loss.clone();
    let (n, c) = x.dim();
    timed(
        x,
        inputs::labels(n, c),
        move |x, y, g| loss.forward_backward_into(x, Labels::from(y), g),
        move |x, y| {
            let y = || Labels::from(y);
            Ok((l2.forward(x, y())?, l2.backward(x, y())?))
        },
    )
}

/// A binary loss on `(N, K)` logits and targets of the same shape.
fn on_targets<F, L>(x: Array2<F>, loss: L) -> Prepared
where
    F: Float,
    L: Clone + 'static,
    L: for<'a> Differentiable<
            F,
            Input<'a> = ArrayView2<'a, F>,
            Target<'a> = ArrayView2<'a, F>,
            Grad = Array2<F>,
            GradMut<'a> = ArrayViewMut2<'a, F>,
        >,
{
    let l2 = loss.clone();
    let dim = x.raw_dim();
    let targets = inputs::binary_targets::<F>(dim[0], dim[1]);
    timed(
        x,
        (
            LineAligned::copy_of(targets.as_slice().expect("standard layout")),
            dim,
        ),
        move |x, (t, dim), g| loss.forward_backward_into(x, t.view(dim), g),
        move |x, (t, dim)| Ok((l2.forward(x, t.view(dim))?, l2.backward(x, t.view(dim))?)),
    )
}

/// Where every floating-point buffer of a cell starts: a 64-byte cache
/// line, as PyTorch's CPU allocator places every tensor (`c10::alloc_cpu`),
/// so that both sides of `compare_pytorch.py` read and write from the same
/// place within a line. An `ndarray` array starts wherever `malloc` puts
/// it, 16 bytes apart; the spatial kernel runs slower when its gradient
/// sits at another offset within a line than its logits (see the README).
const LINE: usize = 64;

/// `len` values in storage of its own, starting at a [`LINE`] boundary.
struct LineAligned<F> {
    storage: Vec<F>,
    start: usize,
    len: usize,
}

impl<F: Float> LineAligned<F> {
    /// `len` zeros.
    fn zeros(len: usize) -> Self {
        let size = std::mem::size_of::<F>();
        let storage = vec![F::zero(); len + LINE / size];
        // `malloc` aligns to at least 16 bytes, a multiple of `size`.
        let start = (LINE - storage.as_ptr() as usize % LINE) % LINE / size;
        LineAligned {
            storage,
            start,
            len,
        }
    }

    /// A copy of `values`.
    fn copy_of(values: &[F]) -> Self {
        let mut aligned = Self::zeros(values.len());
        aligned.values_mut().copy_from_slice(values);
        aligned
    }

    fn values(&self) -> &[F] {
        &self.storage[self.start..self.start + self.len]
    }

    fn values_mut(&mut self) -> &mut [F] {
        &mut self.storage[self.start..self.start + self.len]
    }

    fn view<D: Dimension>(&self, dim: &D) -> ArrayView<'_, F, D> {
        ArrayView::from_shape(dim.clone(), self.values()).expect("the input's shape")
    }

    fn view_mut<D: Dimension>(&mut self, dim: &D) -> ArrayViewMut<'_, F, D> {
        ArrayViewMut::from_shape(dim.clone(), self.values_mut()).expect("the input's shape")
    }
}

/// Wraps the fused and unfused calls on `x` and target `t` (labels or
/// targets) into the three timed closures, with `x` and the gradient in
/// [`LineAligned`] buffers; a failing call is a bug in the inputs, so it
/// panics.
fn timed<F: Float, D: Dimension + 'static, T: 'static>(
    x: Array<F, D>,
    t: T,
    mut fused: impl FnMut(ArrayView<'_, F, D>, &T, ArrayViewMut<'_, F, D>) -> classloss::Result<F>
    + 'static,
    mut unfused: impl FnMut(ArrayView<'_, F, D>, &T) -> classloss::Result<(F, Array<F, D>)> + 'static,
) -> Prepared {
    let dim = x.raw_dim();
    let x = Rc::new(LineAligned::copy_of(x.as_slice().expect("standard layout")));
    let t = Rc::new(t);
    let mut grad = LineAligned::zeros(x.len);
    let mut out = LineAligned::zeros(x.len);
    Prepared {
        fused: {
            let (x, t, dim) = (Rc::clone(&x), Rc::clone(&t), dim.clone());
            Box::new(move || {
                let v = fused(black_box(x.view(&dim)), &t, grad.view_mut(&dim));
                let v = v.expect("fused call");
                black_box((v, grad.values()));
            })
        },
        unfused: {
            let (x, t, dim) = (Rc::clone(&x), Rc::clone(&t), dim.clone());
            Box::new(move || {
                black_box(unfused(black_box(x.view(&dim)), &t).expect("unfused calls"));
            })
        },
        copy: Box::new(move || {
            out.values_mut().copy_from_slice(black_box(x.values()));
            black_box(out.values());
        }),
    }
}
