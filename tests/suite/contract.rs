//! The contract every loss runs, written once.
//!
//! A loss is checked on a [`Case`]: its arguments in `f64` (one of the
//! [`Args`] types below) and what the case has to state itself: the
//! `Mean`'s divisor where it is not the number of per-sample values, its
//! own extreme `f32` inputs where scaling the inputs would make them
//! invalid (probabilities, cosines), and further arguments of the wrong
//! shape (logits with one class more than a class-weight option). For each
//! reduction (`Mean`, `Sum`, `None`), [`check_contract`] asserts:
//!
//! 1. the fused value equals `forward` bit for bit, in `f64` and `f32`
//!    (contiguous buffers);
//! 2. `per_sample` is finite, the same under every reduction, and reduces
//!    to `forward` (`Mean` dividing by the stated divisor) to within the
//!    rounding of the two sums;
//! 3. a gradient buffer pre-filled with NaN (also `123` and `-inf`) is fully
//!    overwritten by `forward_backward_into`, with `backward`'s gradient
//!    and `forward`'s value;
//! 4. an argument of the wrong shape is `Error::ShapeMismatch` naming that
//!    argument, from every call; so is a gradient buffer of the wrong shape
//!    (each part of `EmbeddingsGrad` and `PairGrad`), which is left
//!    untouched. (Where the input is one array it sets the shapes, so the
//!    mismatch is the target's; the embedding losses also get a second input
//!    of the wrong width.)
//! 5. the `f64` gradient matches central differences of `forward`
//!    (`GradCheck`: element by element and along random directions);
//! 6. in `f32`, extreme but finite inputs (the differentiable inputs scaled
//!    by `1e30`, `-1e30` and up to `f32::MAX / 2`, or the case's own) give
//!    a finite value, per-sample values and gradient, or
//!    `Error::Overflow`: never `Ok` of an infinity or a NaN; and an overflow
//!    only where the same call in `f64`, on the same inputs, has a value, a
//!    per-sample value or a gradient entry beyond `f32`.
//!
//! The 0-1 loss has no gradient and runs the value half,
//! [`check_value_contract`] (2, 4 and 6 without the gradient).
//!
//! The loss is given as its `f64` value; the contract rebuilds it with each
//! reduction and in `f32` ([`Rebuild`]).

use classloss::distributed::{ClassSharded, SingleProcess};
use classloss::gradcheck::GradCheck;
use classloss::{
    AngularMargin, AngularMarginHead, ArcFace, Asymmetric, Bce, BceWithLogits, CenterInput,
    CenterLoss, ClassTarget, CombinedMargin, Contrastive, CosFace, CosineEmbedding, CrammerSinger,
    CrossEntropy, Differentiable, Embeddings, EmbeddingsGrad, Error, Exponential, Float,
    FocalAlpha, GeneralizedCrossEntropy, Hamming, HardBootstrapping, HierarchicalCrossEntropy,
    Hinge, KlDivergence, LabelSets, LabelSmoothing, Labels, Ldam, LinearCrossEntropy, LinearGrad,
    LinearInput, LogitAdjusted, Loss, MarginRanking, MultiLabelMargin, MultiLabelSoftMargin,
    MultiMargin, OhemCrossEntropy, OnCosines, OnSampledClasses, OrdinalEmd, Pair, PairGrad, Poly1,
    Reduction, SampledClasses, SampledEmbeddings, SampledLinearInput, SigmoidFocal,
    SoftBootstrapping, SoftMargin, SoftmaxFocal, Sparsemax, SymmetricCrossEntropy, Triplet,
    TripletGrad, TripletMargin, Wasserstein, ZeroOne,
};
use classloss::{Byol, NtXent, SupervisedContrastive};
use ndarray::{
    Array, Array1, Array2, ArrayView, ArrayView1, ArrayView2, Axis, Dimension, Ix2, RemoveAxis,
    Slice,
};

/// The three reductions, in the order the contract runs them.
pub const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

// ------------------------------------------------------------------------
// The loss in either float type

/// A loss the contract can rebuild with any reduction in either float type.
pub trait Rebuild {
    /// The loss in the float type `F`.
    type As<F: Float>;
    /// This loss, with its options, `reduction`, in the float type `F`.
    fn rebuild<F: Float>(&self, reduction: Reduction) -> Self::As<F>;
}

/// Losses whose type does not name the float type: the same value serves
/// both.
macro_rules! rebuild_untyped {
    ($($loss:ty: |$l:ident, $r:ident| $build:expr;)*) => {$(
        impl Rebuild for $loss {
            type As<F: Float> = $loss;
            fn rebuild<F: Float>(&self, $r: Reduction) -> $loss {
                let $l = self.clone();
                $build
            }
        }
    )*};
}

rebuild_untyped! {
    LabelSmoothing: |l, r| l.with_reduction(r);
    ArcFace: |l, r| l.with_reduction(r);
    CosFace: |l, r| l.with_reduction(r);
    CombinedMargin: |l, r| l.with_reduction(r);
    Contrastive: |l, r| l.with_reduction(r);
    CosineEmbedding: |l, r| l.with_reduction(r);
    NtXent: |l, r| l.with_reduction(r);
    SupervisedContrastive: |l, r| l.with_reduction(r);
    Byol: |l, r| l.with_reduction(r);
    CenterLoss: |l, r| l.with_reduction(r);
    ZeroOne: |l, r| l.with_reduction(r);
    Hamming: |l, r| l.with_reduction(r);
    Sparsemax: |l, r| l.with_reduction(r);
    MultiLabelMargin: |l, r| l.with_reduction(r);
    MarginRanking: |l, r| l.with_reduction(r);
    TripletMargin: |l, r| l.with_reduction(r);
    Wasserstein: |l, r| l.with_reduction(r);
    HierarchicalCrossEntropy: |l, r| l.with_reduction(r);
    OnCosines<ArcFace>: |l, r| l.into_inner().with_reduction(r).on_cosines();
    OnCosines<CosFace>: |l, r| l.into_inner().with_reduction(r).on_cosines();
    OnCosines<CombinedMargin>: |l, r| l.into_inner().with_reduction(r).on_cosines();
    AngularMarginHead<ArcFace>: |l, r| rebuild_head(&l, l.loss().clone().with_reduction(r));
    AngularMarginHead<CosFace>: |l, r| rebuild_head(&l, l.loss().clone().with_reduction(r));
    AngularMarginHead<CombinedMargin>: |l, r| rebuild_head(&l, l.loss().clone().with_reduction(r));
}

/// The fused head of `loss` with the chunk of `head`.
fn rebuild_head<L: AngularMargin>(head: &AngularMarginHead<L>, loss: L) -> AngularMarginHead<L> {
    let rebuilt = AngularMarginHead::new(loss);
    match head.chunk_rows() {
        Some(rows) => rebuilt.with_chunk_rows(rows).unwrap(),
        None => rebuilt,
    }
}

/// Losses generic over the float type: rebuilt from their getters, the
/// arrays among their options converted.
macro_rules! rebuild_typed {
    ($($loss:ident [$($d:ident: $bound:path)?] |$l:ident, $r:ident| $build:expr;)*) => {$(
        impl$(<$d: $bound>)? Rebuild for $loss<f64 $(, $d)?> {
            type As<F: Float> = $loss<F $(, $d)?>;
            fn rebuild<F: Float>(&self, $r: Reduction) -> $loss<F $(, $d)?> {
                let $l = self;
                $build
            }
        }
    )*};
}

rebuild_typed! {
    CrossEntropy[D: RemoveAxis] |l, r| {
        let mut ce = CrossEntropy::spatial()
            .with_reduction(r)
            .with_label_smoothing(l.label_smoothing())
            .and_then(|ce| ce.with_z_loss(l.z_loss()))
            .and_then(|ce| ce.with_softcap(l.softcap()))
            .unwrap();
        if let Some(w) = l.weight() {
            ce = ce.with_weight(convert(w)).unwrap();
        }
        match l.ignore_index() {
            Some(i) => ce.with_ignore_index(i64::try_from(i).unwrap()),
            None => ce,
        }
    };
    LinearCrossEntropy[] |l, r| {
        let mut head = LinearCrossEntropy::new()
            .with_reduction(r)
            .with_label_smoothing(l.label_smoothing())
            .and_then(|h| h.with_z_loss(l.z_loss()))
            .and_then(|h| h.with_softcap(l.softcap()))
            .unwrap();
        if let Some(w) = l.class_weight() {
            head = head.with_class_weight(convert(w)).unwrap();
        }
        if let Some(c) = l.chunk_rows() {
            head = head.with_chunk_rows(c).unwrap();
        }
        match l.ignore_index() {
            Some(i) => head.with_ignore_index(i64::try_from(i).unwrap()),
            None => head,
        }
    };
    SoftmaxFocal[] |l, r| {
        let focal = SoftmaxFocal::new().with_reduction(r).with_gamma(l.gamma()).unwrap();
        match l.alpha() {
            FocalAlpha::Scalar(a) => focal.with_alpha(*a),
            FocalAlpha::PerClass(w) => focal.with_class_alpha(convert(w)),
        }
        .unwrap()
    };
    KlDivergence[] |_l, r| KlDivergence::new().with_reduction(r);
    Poly1[] |l, r| Poly1::new().with_reduction(r).with_epsilon(l.epsilon()).unwrap();
    GeneralizedCrossEntropy[] |l, r| GeneralizedCrossEntropy::new()
        .with_reduction(r)
        .with_q(l.q())
        .unwrap();
    SymmetricCrossEntropy[] |l, r| SymmetricCrossEntropy::new()
        .with_reduction(r)
        .with_alpha(l.alpha())
        .and_then(|s| s.with_beta(l.beta()))
        .and_then(|s| s.with_log_zero(l.log_zero()))
        .unwrap();
    SoftBootstrapping[] |l, r| SoftBootstrapping::new()
        .with_reduction(r)
        .with_beta(l.beta())
        .unwrap();
    HardBootstrapping[] |l, r| HardBootstrapping::new()
        .with_reduction(r)
        .with_beta(l.beta())
        .unwrap();
    Bce[D: Dimension] |l, r| match l.weight() {
        Some(w) => Bce::spatial().with_reduction(r).with_weight(convert(w)).unwrap(),
        None => Bce::spatial().with_reduction(r),
    };
    BceWithLogits[D: Dimension] |l, r| {
        let mut loss = BceWithLogits::spatial().with_reduction(r);
        if let Some(w) = l.weight() {
            loss = loss.with_weight(convert(w)).unwrap();
        }
        match l.pos_weight() {
            Some(pw) => loss.with_pos_weight(convert(pw)).unwrap(),
            None => loss,
        }
    };
    SigmoidFocal[D: Dimension] |l, r| SigmoidFocal::spatial()
        .with_reduction(r)
        .with_gamma(l.gamma())
        .and_then(|s| s.with_alpha(l.alpha()))
        .unwrap();
    Hinge[] |l, r| Hinge::new()
        .with_reduction(r)
        .with_margin(l.margin())
        .unwrap()
        .with_squared(l.squared())
        .with_label_convention(l.label_convention());
    Exponential[] |l, r| Exponential::new()
        .with_reduction(r)
        .with_label_convention(l.label_convention());
    SoftMargin[D: Dimension] |l, r| SoftMargin::spatial()
        .with_reduction(r)
        .with_label_convention(l.label_convention());
    Asymmetric[] |l, r| Asymmetric::new()
        .with_reduction(r)
        .with_gamma_neg(l.gamma_neg())
        .and_then(|a| a.with_gamma_pos(l.gamma_pos()))
        .and_then(|a| a.with_clip(l.clip()))
        .unwrap();
    MultiLabelSoftMargin[] |l, r| {
        let loss = MultiLabelSoftMargin::new().with_reduction(r);
        match l.weight() {
            Some(w) => loss.with_weight(convert(w)).unwrap(),
            None => loss,
        }
    };
    OrdinalEmd[] |l, r| OrdinalEmd::new()
        .with_reduction(r)
        .with_r(l.r())
        .unwrap();
    OhemCrossEntropy[] |l, r| OhemCrossEntropy::new()
        .with_reduction(r)
        .with_keep_ratio(l.keep_ratio())
        .unwrap();
    LogitAdjusted[] |l, r| LogitAdjusted::new()
        .with_reduction(r)
        .with_tau(l.tau())
        .and_then(|m| m.with_samples_per_class(l.samples_per_class().cloned().unwrap()))
        .unwrap();
    Ldam[] |l, r| Ldam::new()
        .with_reduction(r)
        .with_max_margin(l.max_margin())
        .and_then(|m| m.with_scale(l.scale()))
        .and_then(|m| m.with_samples_per_class(l.samples_per_class().cloned().unwrap()))
        .unwrap();
    CrammerSinger[] |l, r| CrammerSinger::new()
        .with_reduction(r)
        .with_margin(l.margin())
        .unwrap();
    MultiMargin[] |l, r| {
        let mm = MultiMargin::new()
            .with_reduction(r)
            .with_p(l.p())
            .and_then(|m| m.with_margin(l.margin()))
            .unwrap();
        match l.weight() {
            Some(w) => mm.with_weight(convert(w)).unwrap(),
            None => mm,
        }
    };
}

/// A head on sampled classes, rebuilt as its head is.
/// A class-sharded head on one process (its shard is every class),
/// rebuilt as its head is.
impl<H: Rebuild> Rebuild for ClassSharded<H, SingleProcess> {
    type As<F: Float> = ClassSharded<H::As<F>, SingleProcess>;
    fn rebuild<F: Float>(&self, r: Reduction) -> Self::As<F> {
        ClassSharded::new(self.head().rebuild::<F>(r), SingleProcess, self.shard())
    }
}

impl<H: Rebuild> Rebuild for OnSampledClasses<H> {
    type As<F: Float> = OnSampledClasses<H::As<F>>;
    fn rebuild<F: Float>(&self, reduction: Reduction) -> Self::As<F> {
        OnSampledClasses::new(self.head().rebuild(reduction))
    }
}

/// `a` in the float type `G`.
fn convert<F: Float, G: Float, D: Dimension>(a: &Array<F, D>) -> Array<G, D> {
    a.mapv(|v| G::lit(v.as_f64()))
}

// ------------------------------------------------------------------------
// The arguments

/// The owned arguments of one loss call (inputs and targets), in the float
/// type `F`.
pub trait Args<F: Float>: Clone {
    /// The same arguments in the float type `G`.
    type As<G: Float>: Args<G>;
    /// These arguments in the float type `G`.
    fn cast<G: Float>(&self) -> Self::As<G>;
    /// The differentiable inputs, flattened in the order of the gradient's
    /// [`Values`].
    fn params(&self) -> Vec<f64>;
    /// A copy whose differentiable inputs are `params`.
    fn with_params(&self, params: &[f64]) -> Self;
    /// Copies with one argument of the wrong shape, each with the argument
    /// its error must name.
    fn misshapen(&self) -> Vec<(&'static str, Self)>;
}

/// Arguments that the loss `L` takes.
pub trait ArgsFor<F: Float, L: Loss<F>>: Args<F> {
    /// The input views.
    fn input(&self) -> L::Input<'_>;
    /// The target views.
    fn target(&self) -> L::Target<'_>;
}

/// The values of `a`, widened, in logical (row-major) order.
fn flat<F: Float, D: Dimension>(a: &Array<F, D>) -> impl Iterator<Item = f64> + '_ {
    a.iter().map(|v| v.as_f64())
}

/// An array shaped like `like` holding `values`.
fn refill<F: Float, D: Dimension>(like: &Array<F, D>, values: &[f64]) -> Array<F, D> {
    Array::from_shape_vec(like.raw_dim(), values.iter().map(|&v| F::lit(v)).collect()).unwrap()
}

/// `a` without its last entry along `axis`.
fn shorter<A: Clone, D: Dimension>(a: &Array<A, D>, axis: usize) -> Array<A, D> {
    a.slice_axis(Axis(axis), Slice::from(..-1)).to_owned()
}

/// Scores `(N, C, ...)` and class labels `(N, ...)`: the softmax losses,
/// the multi-class margin, the margins on cosines, the 0-1 loss.
#[derive(Clone, Debug)]
pub struct Labeled<F, D: Dimension> {
    /// The scores, class axis 1.
    pub x: Array<F, D>,
    /// One label per sample (and position).
    pub labels: Array<usize, D::Smaller>,
}

/// `a` with one class more along axis 1 (a copy of class 0).
fn with_extra_class<F: Float, D: RemoveAxis>(a: &Array<F, D>) -> Array<F, D> {
    let first = a.slice_axis(Axis(1), Slice::from(..1));
    ndarray::concatenate(Axis(1), &[a.view(), first]).unwrap()
}

impl<F: Float, D: RemoveAxis> Labeled<F, D> {
    /// Scores and labels.
    pub fn new(x: Array<F, D>, labels: Array<usize, D::Smaller>) -> Self {
        Labeled { x, labels }
    }

    /// The scores with one class more, the labels as they are: a
    /// class-sized option no longer fits.
    pub fn with_extra_class(&self) -> Self {
        let x = with_extra_class(&self.x);
        Labeled { x, ..self.clone() }
    }
}

impl<F: Float, D: Dimension> Args<F> for Labeled<F, D> {
    type As<G: Float> = Labeled<G, D>;
    fn cast<G: Float>(&self) -> Labeled<G, D> {
        Labeled {
            x: convert(&self.x),
            labels: self.labels.clone(),
        }
    }
    fn params(&self) -> Vec<f64> {
        flat(&self.x).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        Labeled {
            x: refill(&self.x, params),
            labels: self.labels.clone(),
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let labels = shorter(&self.labels, 0);
        vec![(
            "labels",
            Labeled {
                labels,
                ..self.clone()
            },
        )]
    }
}

impl<F: Float, D: Dimension, L> ArgsFor<F, L> for Labeled<F, D>
where
    L: for<'a> Loss<F, Input<'a> = ArrayView<'a, F, D>, Target<'a>: From<Labels<'a, D::Smaller>>>,
{
    fn input(&self) -> ArrayView<'_, F, D> {
        self.x.view()
    }
    fn target(&self) -> L::Target<'_> {
        Labels::from(&self.labels).into()
    }
}

/// Converts a view of float targets into a loss's target type.
pub trait FromTargets<'a, F, D: Dimension> {
    /// The target type holding `view`.
    fn from_targets(view: ArrayView<'a, F, D>) -> Self;
}

impl<'a, F, D: Dimension> FromTargets<'a, F, D> for ArrayView<'a, F, D> {
    fn from_targets(view: ArrayView<'a, F, D>) -> Self {
        view
    }
}

impl<'a, F, D: Dimension> FromTargets<'a, F, D> for ClassTarget<'a, F, D> {
    fn from_targets(view: ArrayView<'a, F, D>) -> Self {
        ClassTarget::Probs(view)
    }
}

/// An input and float targets of the same shape: the sigmoid family, the
/// binary margins, KL and cross-entropy on probabilities.
#[derive(Clone, Debug)]
pub struct Paired<F, D: Dimension> {
    /// The input (logits, probabilities, scores).
    pub x: Array<F, D>,
    /// The targets.
    pub t: Array<F, D>,
    /// The targets' name in errors (`targets`, `labels`, `probs`).
    pub name: &'static str,
}

impl<F: Float, D: RemoveAxis> Paired<F, D> {
    /// An input and its targets, named `name` in errors.
    pub fn new(x: Array<F, D>, t: Array<F, D>, name: &'static str) -> Self {
        Paired { x, t, name }
    }

    /// The input and targets with one class more: a class-sized option no
    /// longer fits.
    pub fn with_extra_class(&self) -> Self {
        let (x, t) = (with_extra_class(&self.x), with_extra_class(&self.t));
        Paired {
            x,
            t,
            ..self.clone()
        }
    }
}

impl<F: Float, D: Dimension> Args<F> for Paired<F, D> {
    type As<G: Float> = Paired<G, D>;
    fn cast<G: Float>(&self) -> Paired<G, D> {
        Paired {
            x: convert(&self.x),
            t: convert(&self.t),
            name: self.name,
        }
    }
    fn params(&self) -> Vec<f64> {
        flat(&self.x).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        Paired {
            x: refill(&self.x, params),
            ..self.clone()
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let t = shorter(&self.t, 0);
        vec![(self.name, Paired { t, ..self.clone() })]
    }
}

impl<F: Float, D: Dimension, L> ArgsFor<F, L> for Paired<F, D>
where
    L: for<'a> Loss<F, Input<'a> = ArrayView<'a, F, D>, Target<'a>: FromTargets<'a, F, D>>,
{
    fn input(&self) -> ArrayView<'_, F, D> {
        self.x.view()
    }
    fn target(&self) -> L::Target<'_> {
        FromTargets::from_targets(self.t.view())
    }
}

/// Scores `(N, C)` and a set of classes per sample: the multi-label
/// ranking hinge.
#[derive(Clone, Debug)]
pub struct Ranked<F> {
    /// The scores.
    pub x: Array2<F>,
    /// One set of classes per sample.
    pub sets: Vec<Vec<usize>>,
}

impl<F: Float> Args<F> for Ranked<F> {
    type As<G: Float> = Ranked<G>;
    fn cast<G: Float>(&self) -> Ranked<G> {
        Ranked {
            x: convert(&self.x),
            sets: self.sets.clone(),
        }
    }
    fn params(&self) -> Vec<f64> {
        flat(&self.x).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        Ranked {
            x: refill(&self.x, params),
            sets: self.sets.clone(),
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let sets = self.sets[1..].to_vec();
        vec![(
            "label_sets",
            Ranked {
                sets,
                ..self.clone()
            },
        )]
    }
}

impl<F: Float, L> ArgsFor<F, L> for Ranked<F>
where
    L: for<'a> Loss<F, Input<'a> = ArrayView2<'a, F>, Target<'a> = LabelSets<'a>>,
{
    fn input(&self) -> ArrayView2<'_, F> {
        self.x.view()
    }
    fn target(&self) -> LabelSets<'_> {
        LabelSets::from(&self.sets)
    }
}

/// Two inputs of one rank, flattened one after the other, of which the
/// first `differentiable` take part in the gradient.
fn two_params<F: Float, D: Dimension>(
    a: &Array<F, D>,
    b: &Array<F, D>,
    differentiable: usize,
) -> Vec<f64> {
    flat(a).chain(flat(b)).take(differentiable).collect()
}

/// Embeddings `(N, D)`, class weights `(C, D)` and labels `(N)`: the
/// angular margins.
#[derive(Clone, Debug)]
pub struct Angular<F> {
    /// The embeddings.
    pub e: Array2<F>,
    /// The class weights.
    pub w: Array2<F>,
    /// The labels.
    pub labels: Array1<usize>,
}

impl<F: Float> Args<F> for Angular<F> {
    type As<G: Float> = Angular<G>;
    fn cast<G: Float>(&self) -> Angular<G> {
        let (e, w, labels) = (convert(&self.e), convert(&self.w), self.labels.clone());
        Angular { e, w, labels }
    }
    fn params(&self) -> Vec<f64> {
        two_params(&self.e, &self.w, self.e.len() + self.w.len())
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let (e, w) = params.split_at(self.e.len());
        let (e, w) = (refill(&self.e, e), refill(&self.w, w));
        Angular {
            e,
            w,
            ..self.clone()
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let w = shorter(&self.w, 1);
        let labels = shorter(&self.labels, 0);
        vec![
            ("weight", Angular { w, ..self.clone() }),
            (
                "labels",
                Angular {
                    labels,
                    ..self.clone()
                },
            ),
        ]
    }
}

impl<F: Float, L> ArgsFor<F, L> for Angular<F>
where
    L: for<'a> Loss<F, Input<'a> = Embeddings<'a, F>, Target<'a> = Labels<'a>>,
{
    fn input(&self) -> Embeddings<'_, F> {
        Embeddings {
            embeddings: self.e.view(),
            weight: self.w.view(),
        }
    }
    fn target(&self) -> Labels<'_> {
        Labels::from(&self.labels)
    }
}

/// Pairs of embeddings `(N, D)` (or of scores `(N)`) and a target per
/// pair `(N)`: the contrastive loss's similarity flags, the cosine
/// embedding and margin ranking losses' labels.
#[derive(Clone, Debug)]
pub struct Pairs<F, D: Dimension = Ix2> {
    /// The first member of each pair.
    pub x1: Array<F, D>,
    /// The second member of each pair.
    pub x2: Array<F, D>,
    /// The target of each pair.
    pub target: Array1<F>,
    /// The target's name in errors (`similar`, `labels`).
    pub name: &'static str,
}

impl<F: Float, D: Dimension> Pairs<F, D> {
    /// Pairs and their targets, named `name` in errors.
    pub fn new(x1: Array<F, D>, x2: Array<F, D>, target: Array1<F>, name: &'static str) -> Self {
        Pairs {
            x1,
            x2,
            target,
            name,
        }
    }
}

impl<F: Float, D: Dimension> Args<F> for Pairs<F, D> {
    type As<G: Float> = Pairs<G, D>;
    fn cast<G: Float>(&self) -> Pairs<G, D> {
        let (x1, x2, target) = (convert(&self.x1), convert(&self.x2), convert(&self.target));
        Pairs::new(x1, x2, target, self.name)
    }
    fn params(&self) -> Vec<f64> {
        two_params(&self.x1, &self.x2, self.x1.len() + self.x2.len())
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let (x1, x2) = params.split_at(self.x1.len());
        let (x1, x2) = (refill(&self.x1, x1), refill(&self.x2, x2));
        Pairs {
            x1,
            x2,
            ..self.clone()
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let x2 = shorter(&self.x2, self.x2.ndim() - 1);
        let target = shorter(&self.target, 0);
        vec![
            ("x2", Pairs { x2, ..self.clone() }),
            (
                self.name,
                Pairs {
                    target,
                    ..self.clone()
                },
            ),
        ]
    }
}

impl<F: Float, D: Dimension, L> ArgsFor<F, L> for Pairs<F, D>
where
    L: for<'a> Loss<F, Input<'a> = Pair<'a, F, D>, Target<'a> = ArrayView1<'a, F>>,
{
    fn input(&self) -> Pair<'_, F, D> {
        Pair {
            x1: self.x1.view(),
            x2: self.x2.view(),
        }
    }
    fn target(&self) -> ArrayView1<'_, F> {
        self.target.view()
    }
}

/// Anchors, positives and negatives, each `(N, D)`, and no target: the
/// triplet loss.
#[derive(Clone, Debug)]
pub struct Triplets<F> {
    /// The anchors.
    pub anchor: Array2<F>,
    /// The positives.
    pub positive: Array2<F>,
    /// The negatives.
    pub negative: Array2<F>,
}

impl<F: Float> Args<F> for Triplets<F> {
    type As<G: Float> = Triplets<G>;
    fn cast<G: Float>(&self) -> Triplets<G> {
        Triplets {
            anchor: convert(&self.anchor),
            positive: convert(&self.positive),
            negative: convert(&self.negative),
        }
    }
    fn params(&self) -> Vec<f64> {
        three_params(&self.anchor, &self.positive, &self.negative)
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let (a, rest) = params.split_at(self.anchor.len());
        let (p, n) = rest.split_at(self.positive.len());
        Triplets {
            anchor: refill(&self.anchor, a),
            positive: refill(&self.positive, p),
            negative: refill(&self.negative, n),
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let (positive, negative) = (shorter(&self.positive, 1), shorter(&self.negative, 0));
        vec![
            (
                "positive",
                Triplets {
                    positive,
                    ..self.clone()
                },
            ),
            (
                "negative",
                Triplets {
                    negative,
                    ..self.clone()
                },
            ),
        ]
    }
}

impl<F: Float, L> ArgsFor<F, L> for Triplets<F>
where
    L: for<'a> Loss<F, Input<'a> = Triplet<'a, F>, Target<'a> = ()>,
{
    fn input(&self) -> Triplet<'_, F> {
        Triplet {
            anchor: self.anchor.view(),
            positive: self.positive.view(),
            negative: self.negative.view(),
        }
    }
    fn target(&self) {}
}

/// Hidden states `(N, D)`, a linear layer's weight `(V, D)` and bias
/// `(V)`, and labels `(N)`: the fused linear + cross-entropy head.
#[derive(Clone, Debug)]
pub struct Linear<F> {
    /// The hidden states.
    pub hidden: Array2<F>,
    /// The classifier's weight.
    pub weight: Array2<F>,
    /// The classifier's bias.
    pub bias: Array1<F>,
    /// The labels (`-100` is the ignored label of cases that set it).
    pub labels: Array1<i64>,
    /// Per-token weights, if the case has them (not differentiated).
    pub token_weights: Option<Array1<F>>,
}

impl<F: Float> Args<F> for Linear<F> {
    type As<G: Float> = Linear<G>;
    fn cast<G: Float>(&self) -> Linear<G> {
        Linear {
            hidden: convert(&self.hidden),
            weight: convert(&self.weight),
            bias: convert(&self.bias),
            labels: self.labels.clone(),
            token_weights: self.token_weights.as_ref().map(convert),
        }
    }
    fn params(&self) -> Vec<f64> {
        flat(&self.hidden)
            .chain(flat(&self.weight))
            .chain(flat(&self.bias))
            .collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let (h, rest) = params.split_at(self.hidden.len());
        let (w, b) = rest.split_at(self.weight.len());
        Linear {
            hidden: refill(&self.hidden, h),
            weight: refill(&self.weight, w),
            bias: refill(&self.bias, b),
            ..self.clone()
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let weight = shorter(&self.weight, 1);
        let bias = shorter(&self.bias, 0);
        let labels = shorter(&self.labels, 0);
        let mut out = vec![
            (
                "weight",
                Linear {
                    weight,
                    ..self.clone()
                },
            ),
            (
                "bias",
                Linear {
                    bias,
                    ..self.clone()
                },
            ),
            (
                "labels",
                Linear {
                    labels,
                    ..self.clone()
                },
            ),
        ];
        if let Some(t) = &self.token_weights {
            out.push((
                "token_weights",
                Linear {
                    token_weights: Some(shorter(t, 0)),
                    ..self.clone()
                },
            ));
        }
        out
    }
}

impl<F: Float, L> ArgsFor<F, L> for Linear<F>
where
    L: for<'a> Loss<F, Input<'a> = LinearInput<'a, F>, Target<'a> = ClassTarget<'a, F, Ix2>>,
{
    fn input(&self) -> LinearInput<'_, F> {
        LinearInput {
            hidden: self.hidden.view(),
            weight: self.weight.view(),
            bias: Some(self.bias.view()),
        }
    }
    fn target(&self) -> ClassTarget<'_, F, Ix2> {
        self.class_target()
    }
}

impl<F: Float> Linear<F> {
    /// The labels, with the per-token weights if any.
    pub fn class_target(&self) -> ClassTarget<'_, F, Ix2> {
        match &self.token_weights {
            Some(t) => ClassTarget::WeightedLabels {
                labels: Labels::from(&self.labels),
                weights: t.view(),
            },
            None => ClassTarget::Labels(Labels::from(&self.labels)),
        }
    }
}

impl<F: Float> Values for LinearGrad<F> {
    fn values(&self) -> Vec<f64> {
        let bias = self.bias.iter().flat_map(|b| flat(b));
        flat(&self.hidden)
            .chain(flat(&self.weight))
            .chain(bias)
            .collect()
    }
}

impl<F: Float> GradBuf for LinearGrad<F> {
    fn set_all(&mut self, v: f64) {
        self.hidden.set_all(v);
        self.weight.set_all(v);
        if let Some(b) = self.bias.as_mut() {
            b.set_all(v);
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let mut out = vec![
            (
                "grad.hidden",
                LinearGrad {
                    hidden: wider(&self.hidden),
                    ..self.clone()
                },
            ),
            (
                "grad.weight",
                LinearGrad {
                    weight: wider(&self.weight),
                    ..self.clone()
                },
            ),
        ];
        if let Some(b) = &self.bias {
            out.push((
                "grad.bias",
                LinearGrad {
                    bias: Some(wider(b)),
                    ..self.clone()
                },
            ));
        }
        out
    }
}

/// The rows `classes` of `w`, flattened: the weight's entries a head on
/// sampled classes differentiates.
fn sampled_rows<F: Float>(w: &Array2<F>, classes: &SampledClasses) -> Vec<f64> {
    classes
        .indices()
        .iter()
        .flat_map(|&c| w.row(c).to_vec())
        .map(|v| v.as_f64())
        .collect()
}

/// `w` with its rows `classes` replaced by `values` (row-major).
fn refill_rows<F: Float>(w: &Array2<F>, classes: &SampledClasses, values: &[f64]) -> Array2<F> {
    let mut out = w.clone();
    let d = w.ncols();
    for (k, &c) in classes.indices().iter().enumerate() {
        let row = values[k * d..(k + 1) * d].iter().map(|&v| F::lit(v));
        out.row_mut(c).assign(&Array1::from_iter(row));
    }
    out
}

/// [`Angular`]'s arguments with a sample of the classes: the angular head
/// on sampled classes, whose gradient is for the sampled rows only.
#[derive(Clone, Debug)]
pub struct SampledAngular<F> {
    /// The embeddings, the weight of every class and the labels.
    pub args: Angular<F>,
    /// The sampled classes.
    pub classes: SampledClasses,
}

impl<F: Float> Args<F> for SampledAngular<F> {
    type As<G: Float> = SampledAngular<G>;
    fn cast<G: Float>(&self) -> SampledAngular<G> {
        let args = self.args.cast();
        SampledAngular {
            args,
            classes: self.classes.clone(),
        }
    }
    fn params(&self) -> Vec<f64> {
        let e = flat(&self.args.e);
        e.chain(sampled_rows(&self.args.w, &self.classes)).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let (e, w) = params.split_at(self.args.e.len());
        let args = Angular {
            e: refill(&self.args.e, e),
            w: refill_rows(&self.args.w, &self.classes, w),
            labels: self.args.labels.clone(),
        };
        SampledAngular {
            args,
            classes: self.classes.clone(),
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let with = |(name, args)| {
            let classes = self.classes.clone();
            (name, SampledAngular { args, classes })
        };
        self.args.misshapen().into_iter().map(with).collect()
    }
}

impl<F: Float, L> ArgsFor<F, L> for SampledAngular<F>
where
    L: for<'a> Loss<F, Input<'a> = SampledEmbeddings<'a, F>, Target<'a> = Labels<'a>>,
{
    fn input(&self) -> SampledEmbeddings<'_, F> {
        SampledEmbeddings {
            embeddings: self.args.e.view(),
            weight: self.args.w.view(),
            classes: &self.classes,
        }
    }
    fn target(&self) -> Labels<'_> {
        Labels::from(&self.args.labels)
    }
}

/// [`Linear`]'s arguments with a sample of the classes: the linear head on
/// sampled classes, whose gradient is for the sampled rows of the weight
/// and entries of the bias only.
#[derive(Clone, Debug)]
pub struct SampledLinear<F> {
    /// The hidden states, the layer of every class and the labels.
    pub args: Linear<F>,
    /// The sampled classes.
    pub classes: SampledClasses,
}

impl<F: Float> Args<F> for SampledLinear<F> {
    type As<G: Float> = SampledLinear<G>;
    fn cast<G: Float>(&self) -> SampledLinear<G> {
        let args = self.args.cast();
        SampledLinear {
            args,
            classes: self.classes.clone(),
        }
    }
    fn params(&self) -> Vec<f64> {
        let Linear {
            hidden,
            weight,
            bias,
            ..
        } = &self.args;
        let bias = self.classes.indices().iter().map(|&c| bias[c].as_f64());
        let weight = sampled_rows(weight, &self.classes);
        flat(hidden).chain(weight).chain(bias).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let Linear { hidden, weight, .. } = &self.args;
        let (h, rest) = params.split_at(hidden.len());
        let (w, b) = rest.split_at(self.classes.len() * weight.ncols());
        let mut bias = self.args.bias.clone();
        for (&c, &v) in self.classes.indices().iter().zip(b) {
            bias[c] = F::lit(v);
        }
        let args = Linear {
            hidden: refill(hidden, h),
            weight: refill_rows(weight, &self.classes, w),
            bias,
            ..self.args.clone()
        };
        SampledLinear {
            args,
            classes: self.classes.clone(),
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let with = |(name, args)| {
            let classes = self.classes.clone();
            (name, SampledLinear { args, classes })
        };
        self.args.misshapen().into_iter().map(with).collect()
    }
}

impl<F: Float, L> ArgsFor<F, L> for SampledLinear<F>
where
    L: for<'a> Loss<F, Input<'a> = SampledLinearInput<'a, F>, Target<'a> = ClassTarget<'a, F, Ix2>>,
{
    fn input(&self) -> SampledLinearInput<'_, F> {
        SampledLinearInput {
            hidden: self.args.hidden.view(),
            weight: self.args.weight.view(),
            bias: Some(self.args.bias.view()),
            classes: &self.classes,
        }
    }
    fn target(&self) -> ClassTarget<'_, F, Ix2> {
        self.args.class_target()
    }
}

/// Three arrays flattened one after the other.
fn three_params<F: Float>(a: &Array2<F>, b: &Array2<F>, c: &Array2<F>) -> Vec<f64> {
    flat(a).chain(flat(b)).chain(flat(c)).collect()
}

/// Features `(N, D)`, class centers `(C, D)` (not differentiated) and
/// labels `(N)`: the center loss.
#[derive(Clone, Debug)]
pub struct Centered<F> {
    /// The features.
    pub features: Array2<F>,
    /// The class centers.
    pub centers: Array2<F>,
    /// The labels.
    pub labels: Array1<usize>,
}

impl<F: Float> Args<F> for Centered<F> {
    type As<G: Float> = Centered<G>;
    fn cast<G: Float>(&self) -> Centered<G> {
        let (features, centers) = (convert(&self.features), convert(&self.centers));
        let labels = self.labels.clone();
        Centered {
            features,
            centers,
            labels,
        }
    }
    fn params(&self) -> Vec<f64> {
        two_params(&self.features, &self.centers, self.features.len())
    }
    fn with_params(&self, params: &[f64]) -> Self {
        let features = refill(&self.features, params);
        Centered {
            features,
            ..self.clone()
        }
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let centers = shorter(&self.centers, 1);
        let labels = shorter(&self.labels, 0);
        vec![
            (
                "centers",
                Centered {
                    centers,
                    ..self.clone()
                },
            ),
            (
                "labels",
                Centered {
                    labels,
                    ..self.clone()
                },
            ),
        ]
    }
}

impl<F: Float, L> ArgsFor<F, L> for Centered<F>
where
    L: for<'a> Loss<F, Input<'a> = CenterInput<'a, F>, Target<'a> = Labels<'a>>,
{
    fn input(&self) -> CenterInput<'_, F> {
        CenterInput {
            features: self.features.view(),
            centers: self.centers.view(),
        }
    }
    fn target(&self) -> Labels<'_> {
        Labels::from(&self.labels)
    }
}

/// Embeddings `(2N, D)` alone, without a target: NT-Xent, whose rows
/// pair up by position.
#[derive(Clone, Debug)]
pub struct Unlabeled<F> {
    /// The embeddings.
    pub x: Array2<F>,
}

impl<F: Float> Args<F> for Unlabeled<F> {
    type As<G: Float> = Unlabeled<G>;
    fn cast<G: Float>(&self) -> Unlabeled<G> {
        Unlabeled {
            x: convert(&self.x),
        }
    }
    fn params(&self) -> Vec<f64> {
        flat(&self.x).collect()
    }
    fn with_params(&self, params: &[f64]) -> Self {
        Unlabeled {
            x: refill(&self.x, params),
        }
    }
    /// One row fewer: an odd count, which no pairing fits.
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let x = shorter(&self.x, 0);
        vec![("embeddings", Unlabeled { x })]
    }
}

impl<F: Float, L> ArgsFor<F, L> for Unlabeled<F>
where
    L: for<'a> Loss<F, Input<'a> = ArrayView2<'a, F>, Target<'a> = ()>,
{
    fn input(&self) -> ArrayView2<'_, F> {
        self.x.view()
    }
    fn target(&self) {}
}

// ------------------------------------------------------------------------
// Gradients and per-sample values

/// Every value of a result, widened to `f64`, in the order of
/// [`Args::params`].
pub trait Values {
    /// The values.
    fn values(&self) -> Vec<f64>;
}

/// A gradient buffer: a plain array, [`EmbeddingsGrad`] or [`PairGrad`].
pub trait GradBuf: Values + Sized {
    /// Sets every entry to `v`.
    fn set_all(&mut self, v: f64);
    /// Buffers with one part of the wrong shape, each with the name its
    /// error must give.
    fn misshapen(&self) -> Vec<(&'static str, Self)>;
}

/// A zeroed array with one entry more along the last axis than `a`.
fn wider<F: Float, D: Dimension>(a: &Array<F, D>) -> Array<F, D> {
    let mut dim = a.raw_dim();
    let last = dim.ndim() - 1;
    dim[last] += 1;
    Array::zeros(dim)
}

impl<F: Float, D: Dimension> Values for Array<F, D> {
    fn values(&self) -> Vec<f64> {
        flat(self).collect()
    }
}

impl<F: Float, D: Dimension> GradBuf for Array<F, D> {
    fn set_all(&mut self, v: f64) {
        self.fill(F::lit(v));
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        vec![("grad", wider(self))]
    }
}

impl<F: Float> Values for EmbeddingsGrad<F> {
    fn values(&self) -> Vec<f64> {
        two_params(&self.embeddings, &self.weight, usize::MAX)
    }
}

impl<F: Float> GradBuf for EmbeddingsGrad<F> {
    fn set_all(&mut self, v: f64) {
        self.embeddings.set_all(v);
        self.weight.set_all(v);
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let (embeddings, weight) = (wider(&self.embeddings), wider(&self.weight));
        vec![
            (
                "grad.embeddings",
                EmbeddingsGrad {
                    embeddings,
                    ..self.clone()
                },
            ),
            (
                "grad.weight",
                EmbeddingsGrad {
                    weight,
                    ..self.clone()
                },
            ),
        ]
    }
}

impl<F: Float, D: Dimension> Values for PairGrad<F, D> {
    fn values(&self) -> Vec<f64> {
        two_params(&self.x1, &self.x2, usize::MAX)
    }
}

impl<F: Float, D: Dimension> GradBuf for PairGrad<F, D> {
    fn set_all(&mut self, v: f64) {
        self.x1.set_all(v);
        self.x2.set_all(v);
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let (x1, x2) = (wider(&self.x1), wider(&self.x2));
        vec![
            ("grad.x1", PairGrad { x1, ..self.clone() }),
            ("grad.x2", PairGrad { x2, ..self.clone() }),
        ]
    }
}

impl<F: Float> Values for TripletGrad<F> {
    fn values(&self) -> Vec<f64> {
        three_params(&self.anchor, &self.positive, &self.negative)
    }
}

impl<F: Float> GradBuf for TripletGrad<F> {
    fn set_all(&mut self, v: f64) {
        self.anchor.set_all(v);
        self.positive.set_all(v);
        self.negative.set_all(v);
    }
    fn misshapen(&self) -> Vec<(&'static str, Self)> {
        let anchor = wider(&self.anchor);
        let positive = wider(&self.positive);
        let negative = wider(&self.negative);
        vec![
            (
                "grad.anchor",
                TripletGrad {
                    anchor,
                    ..self.clone()
                },
            ),
            (
                "grad.positive",
                TripletGrad {
                    positive,
                    ..self.clone()
                },
            ),
            (
                "grad.negative",
                TripletGrad {
                    negative,
                    ..self.clone()
                },
            ),
        ]
    }
}

// ------------------------------------------------------------------------
// The case and the contract

/// One loss case: its arguments in `f64`, and what the case states itself.
pub struct Case<A> {
    what: String,
    args: A,
    divisor: Option<f64>,
    extremes: Option<Vec<A>>,
    misshapen: Vec<(&'static str, A)>,
}

impl<A: Args<f64>> Case<A> {
    /// A case named `what` (for failure messages) on `args`.
    pub fn new(what: impl Into<String>, args: A) -> Self {
        Case {
            what: what.into(),
            args,
            divisor: None,
            extremes: None,
            misshapen: Vec::new(),
        }
    }

    /// What `Mean` divides the per-sample values' sum by, where that is not
    /// their number (cross-entropy with class weights or an ignored label).
    pub fn divisor(mut self, divisor: f64) -> Self {
        self.divisor = Some(divisor);
        self
    }

    /// The case's own extreme `f32` inputs (in `f64`, values that `f32`
    /// holds), where scaling the inputs would make them invalid.
    pub fn extremes(mut self, extremes: Vec<A>) -> Self {
        self.extremes = Some(extremes);
        self
    }

    /// One more argument of the wrong shape, with the argument its error
    /// must name.
    pub fn misshapen(mut self, name: &'static str, args: A) -> Self {
        self.misshapen.push((name, args));
        self
    }

    /// Every wrong shape: the arguments' own and the case's.
    fn all_misshapen(&self) -> Vec<(&'static str, A)> {
        let mut all = self.args.misshapen();
        all.extend(self.misshapen.iter().cloned());
        all
    }

    /// The extreme inputs: the case's own, or the differentiable inputs
    /// scaled by `1e30`, `-1e30` and to `f32::MAX / 2` at the largest.
    fn extreme_args(&self) -> Vec<A> {
        if let Some(own) = &self.extremes {
            return own.clone();
        }
        let largest = self
            .args
            .params()
            .iter()
            .fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
        let near_max = 0.5 * f64::from(f32::MAX) / largest;
        [1e30, -1e30, near_max]
            .iter()
            .map(|&k| scaled(&self.args, k))
            .collect()
    }
}

/// `args` with the differentiable inputs multiplied by `k` and rounded to
/// `f32`.
pub fn scaled<A: Args<f64>>(args: &A, k: f64) -> A {
    let params: Vec<f64> = args
        .params()
        .iter()
        .map(|v| f64::from((v * k) as f32))
        .collect();
    args.with_params(&params)
}

/// The value of `result`, or a panic naming the case.
fn ok<T>(what: &str, result: classloss::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// `result` is `Error::ShapeMismatch` naming `name`.
fn assert_shape_error<T>(what: &str, name: &str, result: classloss::Result<T>) {
    match result {
        Err(Error::ShapeMismatch { what: got, .. }) if got == name => {}
        Err(e) => panic!("{what}: expected a shape error naming {name}, got {e}"),
        Ok(_) => panic!("{what}: expected a shape error naming {name}, got Ok"),
    }
}

/// Whether a result in `f64` holds a value beyond `f32` (or overflowed
/// `f64` itself).
fn beyond_f32(exact: &[classloss::Result<Vec<f64>>]) -> bool {
    exact.iter().any(|part| match part {
        Ok(values) => values.iter().any(|v| v.abs() > 0.999 * f64::from(f32::MAX)),
        Err(e) => matches!(e, Error::Overflow { .. }),
    })
}

/// `result` (in `f32`) is finite values, or `Error::Overflow` where
/// something is beyond `f32` in `exact`: the same call in `f64` on the same
/// inputs, with the per-sample values.
fn assert_finite_or_overflow(
    what: &str,
    result: classloss::Result<Vec<f64>>,
    exact: &[classloss::Result<Vec<f64>>],
) {
    match result {
        Ok(values) => assert!(
            values.iter().all(|v| v.is_finite()),
            "{what}: Ok with a value that is not finite: {values:?}"
        ),
        Err(e @ Error::Overflow { .. }) => assert!(
            beyond_f32(exact),
            "{what}: {e}, but in f64 nothing is beyond f32: {exact:?}"
        ),
        Err(e) => panic!("{what}: expected finite values or an overflow error, got {e}"),
    }
}

/// Checks `per_sample` against `forward` and returns the per-sample values.
fn assert_reduces<F, L, A>(what: &str, loss: &L, args: &A, divisor: Option<f64>) -> Vec<f64>
where
    F: Float,
    L: Loss<F, PerSample: Values>,
    A: ArgsFor<F, L>,
{
    let value = ok(what, loss.forward(args.input(), args.target())).as_f64();
    let per = ok(what, loss.per_sample(args.input(), args.target())).values();
    assert!(per.iter().all(|v| v.is_finite()), "{what}: {per:?}");
    let sum: f64 = per.iter().sum();
    let size: f64 = per.iter().map(|v| v.abs()).sum();
    let divisor = match loss.reduction() {
        Reduction::Mean => divisor.unwrap_or(per.len() as f64),
        Reduction::Sum | Reduction::None => 1.0,
    };
    // Both sums round at most once per term, and the value once more.
    let tol = (2 * per.len() + 4) as f64 * F::epsilon().as_f64() * size / divisor;
    assert!(
        (value - sum / divisor).abs() <= tol,
        "{what}: value {value}, but the per-sample values give {} (divisor {divisor})",
        sum / divisor
    );
    per
}

/// Checks the fused call against `forward` and `backward`, with dirty and
/// misshapen buffers, and returns the gradient.
fn assert_fused<F, L, A>(what: &str, loss: &L, args: &A) -> Vec<f64>
where
    F: Float,
    L: Differentiable<F, Grad: GradBuf>,
    A: ArgsFor<F, L>,
{
    let value = ok(what, loss.forward(args.input(), args.target()));
    let (fused, grad) = ok(what, loss.forward_backward(args.input(), args.target()));
    let (fused, value) = (fused.as_f64(), value.as_f64());
    assert_eq!(
        fused.to_bits(),
        value.to_bits(),
        "{what}: fused {fused}, forward {value}"
    );
    let clean = ok(what, loss.backward(args.input(), args.target())).values();
    assert_eq!(
        bits(&grad.values()),
        bits(&clean),
        "{what}: forward_backward vs backward"
    );
    for garbage in [f64::NAN, 123.0, f64::NEG_INFINITY] {
        let mut buffer = loss.zeros_grad(args.input());
        buffer.set_all(garbage);
        let into =
            loss.forward_backward_into(args.input(), args.target(), L::grad_view_mut(&mut buffer));
        let v = ok(what, into);
        assert_eq!(
            v.as_f64().to_bits(),
            value.to_bits(),
            "{what}: buffer of {garbage}"
        );
        assert_eq!(
            bits(&buffer.values()),
            bits(&clean),
            "{what}: buffer of {garbage}"
        );
    }
    for (name, mut bad) in grad.misshapen() {
        bad.set_all(7.0);
        let result =
            loss.forward_backward_into(args.input(), args.target(), L::grad_view_mut(&mut bad));
        assert_shape_error(&format!("{what}: {name} misshapen"), name, result);
        let untouched = bad.values().iter().all(|&v| v == 7.0);
        assert!(untouched, "{what}: {name} was written before the error");
    }
    clean
}

/// The value half of the contract, for every loss (the 0-1 loss runs only
/// this half): 2, 4 and 6 of the module's list without the gradient.
pub fn check_value_contract<L, A>(loss: &L, case: &Case<A>)
where
    L: Rebuild,
    L::As<f64>: Loss<f64, PerSample: Values>,
    L::As<f32>: Loss<f32, PerSample: Values>,
    A: ArgsFor<f64, L::As<f64>>,
    A::As<f32>: ArgsFor<f32, L::As<f32>>,
{
    let args32 = case.args.cast::<f32>();
    let extremes: Vec<_> = case
        .extreme_args()
        .iter()
        .map(|x| x.cast::<f32>())
        .collect();
    // The same inputs in f64 (the targets may round differently).
    let exact: Vec<A> = case.extreme_args().iter().map(|x| scaled(x, 1.0)).collect();
    let mut first: Option<(Vec<u64>, Vec<u64>)> = None;
    for r in REDUCTIONS {
        let what = format!("{} {r}", case.what);
        let (l64, l32) = (loss.rebuild::<f64>(r), loss.rebuild::<f32>(r));
        let per64 = assert_reduces(&format!("{what} f64"), &l64, &case.args, case.divisor);
        let per32 = assert_reduces(&format!("{what} f32"), &l32, &args32, case.divisor);
        let per = (bits(&per64), bits(&per32));
        let first = first.get_or_insert(per.clone());
        assert!(
            *first == per,
            "{what}: per-sample values depend on the reduction"
        );
        for (name, bad) in case.all_misshapen() {
            let what = format!("{what}: {name} misshapen");
            assert_shape_error(&what, name, l64.forward(bad.input(), bad.target()));
            assert_shape_error(&what, name, l64.per_sample(bad.input(), bad.target()));
        }
        for (x, x64) in extremes.iter().zip(&exact) {
            let what = format!("{what}: f32 extremes {:?}", x.params());
            let per64 = l64
                .per_sample(x64.input(), x64.target())
                .map(|p| p.values());
            let value64 = l64.forward(x64.input(), x64.target()).map(|v| vec![v]);
            let value = l32.forward(x.input(), x.target()).map(|v| vec![v.as_f64()]);
            assert_finite_or_overflow(&what, value, &[value64, per64.clone()]);
            let per = l32.per_sample(x.input(), x.target()).map(|p| p.values());
            assert_finite_or_overflow(&what, per, &[per64]);
        }
    }
}

/// The losses that run the whole contract on arguments `A`: one bound for
/// helpers that take any of them.
pub trait Contract<A>: Rebuild {
    /// Runs [`check_contract`].
    fn check(&self, case: &Case<A>);
}

impl<L, A> Contract<A> for L
where
    L: Rebuild,
    L::As<f64>: Differentiable<f64, PerSample: Values, Grad: GradBuf>,
    L::As<f32>: Differentiable<f32, PerSample: Values, Grad: GradBuf>,
    A: ArgsFor<f64, L::As<f64>>,
    A::As<f32>: ArgsFor<f32, L::As<f32>>,
{
    fn check(&self, case: &Case<A>) {
        check_contract(self, case);
    }
}

/// The whole contract (see the module's documentation).
pub fn check_contract<L, A>(loss: &L, case: &Case<A>)
where
    L: Rebuild,
    L::As<f64>: Differentiable<f64, PerSample: Values, Grad: GradBuf>,
    L::As<f32>: Differentiable<f32, PerSample: Values, Grad: GradBuf>,
    A: ArgsFor<f64, L::As<f64>>,
    A::As<f32>: ArgsFor<f32, L::As<f32>>,
{
    check_value_contract(loss, case);
    let args32 = case.args.cast::<f32>();
    let extremes: Vec<_> = case
        .extreme_args()
        .iter()
        .map(|x| x.cast::<f32>())
        .collect();
    // The same inputs in f64 (the targets may round differently).
    let exact: Vec<A> = case.extreme_args().iter().map(|x| scaled(x, 1.0)).collect();
    let params = case.args.params();
    for r in REDUCTIONS {
        let what = format!("{} {r}", case.what);
        let (l64, l32) = (loss.rebuild::<f64>(r), loss.rebuild::<f32>(r));
        let grad = assert_fused(&format!("{what} f64"), &l64, &case.args);
        assert_fused(&format!("{what} f32"), &l32, &args32);
        for (name, bad) in case.all_misshapen() {
            let what = format!("{what}: {name} misshapen");
            assert_shape_error(&what, name, l64.backward(bad.input(), bad.target()));
            let mut buffer = l64.zeros_grad(bad.input());
            let into = l64.forward_backward_into(
                bad.input(),
                bad.target(),
                <L::As<f64> as Differentiable<f64>>::grad_view_mut(&mut buffer),
            );
            assert_shape_error(&what, name, into);
        }
        let f = |p: &[f64]| {
            let at = case.args.with_params(p);
            l64.forward(at.input(), at.target())
                .unwrap_or_else(|e| panic!("{what}: forward at {p:?}: {e}"))
        };
        if let Err(e) = GradCheck::default().check(f, &params, &grad) {
            panic!("{what}: {e}");
        }
        for (x, x64) in extremes.iter().zip(&exact) {
            let what = format!("{what}: f32 extremes {:?}", x.params());
            let fused = l32
                .forward_backward(x.input(), x.target())
                .map(|(v, g)| [vec![v.as_f64()], g.values()].concat());
            let fused64 = l64
                .forward_backward(x64.input(), x64.target())
                .map(|(v, g)| [vec![v], g.values()].concat());
            let per64 = l64
                .per_sample(x64.input(), x64.target())
                .map(|p| p.values());
            assert_finite_or_overflow(&what, fused, &[fused64, per64]);
        }
    }
}
