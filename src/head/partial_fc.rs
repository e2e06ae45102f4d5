//! Partial FC: the fused heads on a sampled subset of the classes that
//! always holds the batch's positive classes, with the gradient for the
//! sampled rows of the weight matrix only.

use std::marker::PhantomData;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, s};

use super::linear_cross_entropy::LinearAndLabels;
use crate::base::labels::{Label, Labels};
use crate::base::loss::{Call, Compute, Exact, Signature};
use crate::base::options::Options;
use crate::base::reduction::Totals;
use crate::base::validate::{
    at_least_one_count, check_class_vector, expect_shape, positive_at_most_one,
};
use crate::engine::angular::{Embeddings, EmbeddingsAndLabels, Sealed};
use crate::head::sharded::ClassShard;
use crate::head::{AngularMarginHead, LinearCrossEntropy, LinearInput};
use crate::numerics::random::SplitMix64;
use crate::softmax::ClassTarget;
use crate::{Error, Float, Reduction, Result};

/// Partial FC's class sampler (An et al., CVPR 2022): from a batch's
/// labels, the classes a step trains on.
///
/// Every positive class of the batch (each class some label names) is in
/// the sample; the other classes are drawn uniformly at random, without
/// replacement, up to
/// ```text
/// |S| = max(#positives, floor(sample_rate * C))
/// ```
/// classes, as insightface's `PartialFC_V2` (`int(sample_rate *
/// num_local)`, a floor; when the positives alone are more, the sample is
/// the positives). The one case insightface leaves empty, a batch whose
/// every label is ignored with `floor(sample_rate * C) = 0`, samples one
/// class, so that the head has a class. The indices come back sorted, in a
/// [`SampledClasses`]; run a head on them with [`OnSampledClasses`].
///
/// The draw is a deterministic function of the labels, `C`, the rate and
/// the caller's `seed` (pass the step number, say): the same arguments give
/// the same sample on any machine and thread count. Each subset of the
/// negative classes of the right size is equally likely, as in insightface,
/// whose random stream (`torch.rand` and a top-k) this does not reproduce:
/// one pass over the classes (Knuth's selection sampling) with SplitMix64,
/// `O(C)` time and, beyond the sample, the batch's sorted positives.
///
/// # Options
/// - `sample_rate` `r` in `(0, 1]`; `r = 1` samples every class.
/// - `ignore_index`: a label value, of any integer type, that names no
///   positive (default none), for [`LinearCrossEntropy`]'s ignored tokens.
///
/// # Errors
/// A `sample_rate` outside `(0, 1]` (at [`PartialFc::new`]); no classes; a
/// label `>= C` or negative (other than the `ignore_index`).
///
/// # Examples
/// ```
/// use classloss::PartialFc;
/// use ndarray::array;
///
/// let labels = array![7_i64, 2, 7, 40];
/// let pfc = PartialFc::new(0.1)?;
/// let s = pfc.sample(&labels, 100, 1)?;      // step 1's classes out of 100
/// assert_eq!(s.len(), 10);                    // floor(0.1 * 100)
/// assert!([2, 7, 40].iter().all(|c| s.position(*c).is_some()));
/// assert!(s.indices().windows(2).all(|p| p[0] < p[1]));
/// assert_eq!(pfc.sample(&labels, 100, 1)?, s); // deterministic per seed
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// X. An, J. Deng, J. Guo, Z. Feng, X. Zhu, J. Yang, T. Liu, "Killing Two
/// Birds with One Stone: Efficient and Robust Training of Face Recognition
/// CNNs by Partial FC", CVPR 2022, <https://arxiv.org/abs/2203.15565>;
/// insightface's `partial_fc_v2.py`,
/// <https://github.com/deepinsight/insightface/blob/master/recognition/arcface_torch/partial_fc_v2.py>.
/// D. E. Knuth, *The Art of Computer Programming*, vol. 2, 3.4.2
/// (Algorithm S).
#[derive(Clone, Debug, PartialEq)]
pub struct PartialFc {
    sample_rate: f64,
    ignore_index: Option<i128>,
}

impl PartialFc {
    /// The sampler of rate `sample_rate` in `(0, 1]`.
    pub fn new(sample_rate: f64) -> Result<Self> {
        positive_at_most_one("sample_rate", sample_rate)?;
        Ok(PartialFc {
            sample_rate,
            ignore_index: None,
        })
    }

    /// The sample rate `r`.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// Sets the label that names no positive class (default none), of any
    /// integer type.
    pub fn with_ignore_index(mut self, ignore_index: impl Label) -> Self {
        self.ignore_index = Some(ignore_index.to_i128());
        self
    }

    /// The ignored label, if any (widened to `i128`).
    pub fn ignore_index(&self) -> Option<i128> {
        self.ignore_index
    }

    /// The size of the sample from `classes` classes with `positives`
    /// positive ones: `max(positives, floor(r classes))`, and 1 when both
    /// are 0.
    pub fn sample_size(&self, classes: usize, positives: usize) -> usize {
        let drawn = (self.sample_rate * classes as f64).floor() as usize;
        positives.max(drawn.min(classes)).max(1)
    }

    /// The classes of one step: every class a label of `labels` (`(N)`, any
    /// integer type) names, and others drawn uniformly from `0..classes`
    /// with `seed`, sorted.
    pub fn sample<'l>(
        &self,
        labels: impl Into<Labels<'l>>,
        classes: usize,
        seed: u64,
    ) -> Result<SampledClasses> {
        let labels = labels.into();
        at_least_one_count("classes", classes)?;
        labels.check("labels", classes, self.ignore_index)?;
        let positives = labels.classes(self.ignore_index).flatten().collect();
        Ok(self.draw(positives, classes, seed))
    }

    /// The classes of one step on one process of a class-sharded head
    /// ([`ClassSharded`](crate::distributed::ClassSharded)), drawn from
    /// its shard alone, as insightface's model-parallel `PartialFC_V2` draws
    /// on each rank: every class of `shard` that a label of `labels` names
    /// (labels are global, `0..shard.classes()`), and others drawn
    /// uniformly from the shard's classes, up to `max(#positives,
    /// floor(r len))` classes (at least 1; none for an empty shard). The
    /// indices are the shard's rows (`0..shard.len()`), sorted; run the
    /// sharded head on them with
    /// `ClassSharded::new(OnSampledClasses::new(head), group, shard)`. The
    /// shard's offset is mixed into `seed`, so that the shards draw
    /// independently with the same seed (pass the step number, say).
    ///
    /// ```
    /// use classloss::distributed::ClassShard;
    /// use classloss::PartialFc;
    /// use ndarray::array;
    ///
    /// let labels = array![7_i64, 2, 7, 40];
    /// let shard = ClassShard::even(100, 0, 2)?; // classes 0..50
    /// let s = PartialFc::new(0.1)?.sample_shard(&labels, shard, 1)?;
    /// assert_eq!(s.len(), 5);                   // floor(0.1 * 50)
    /// assert!([2, 7, 40].iter().all(|c| s.position(*c).is_some()));
    /// # Ok::<(), classloss::Error>(())
    /// ```
    pub fn sample_shard<'l>(
        &self,
        labels: impl Into<Labels<'l>>,
        shard: ClassShard,
        seed: u64,
    ) -> Result<SampledClasses> {
        let labels = labels.into();
        labels.check("labels", shard.classes(), self.ignore_index)?;
        if shard.is_empty() {
            return Ok(SampledClasses {
                indices: Vec::new(),
                classes: 0,
            });
        }
        let positives = (labels.classes(self.ignore_index).flatten())
            .filter_map(|y| shard.local(y))
            .collect();
        let seed = SplitMix64(seed ^ (shard.offset() as u64).rotate_left(32)).next();
        Ok(self.draw(positives, shard.len(), seed))
    }

    /// The sample of `0..classes` (`classes >= 1`) holding `positives`.
    fn draw(&self, mut positives: Vec<usize>, classes: usize, seed: u64) -> SampledClasses {
        positives.sort_unstable();
        positives.dedup();
        let size = self.sample_size(classes, positives.len());
        let mut need = size - positives.len();
        let mut left = classes - positives.len();
        let mut rng = SplitMix64(seed);
        let mut indices = Vec::with_capacity(size);
        let mut next_positive = positives.iter().peekable();
        for c in 0..classes {
            if next_positive.peek() == Some(&&c) {
                next_positive.next();
                indices.push(c);
                continue;
            }
            if need == 0 {
                // Only positives remain to be taken.
                indices.extend(next_positive.copied());
                break;
            }
            // Knuth's selection sampling: each of the `left` candidates
            // still to come is taken with probability need / left.
            if rng.uniform() * (left as f64) < need as f64 {
                indices.push(c);
                need -= 1;
            }
            left -= 1;
        }
        SampledClasses { indices, classes }
    }
}

/// The sorted indices `S` of the classes a step trains on, out of `C`: what
/// [`PartialFc::sample`] draws, or the caller's own
/// ([`SampledClasses::new`]). [`OnSampledClasses`] runs a head on them.
///
/// Label `y` becomes `position(y)`, its place in `S`; the head's gradient
/// for the weight is the `(|S|, D)` rows of `S` in this order: hand it to
/// the optimizer with [`SampledClasses::indices`] (the rows it updates), or
/// [`SampledClasses::scatter`] it into a `(C, D)` buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampledClasses {
    indices: Vec<usize>,
    classes: usize,
}

impl SampledClasses {
    /// The caller's classes `indices` out of `classes`: at least one,
    /// strictly increasing (sorted, no repeats), each `< classes`. That
    /// they hold every label of a batch is checked when a head runs.
    pub fn new(indices: Vec<usize>, classes: usize) -> Result<Self> {
        if indices.is_empty() {
            return Err(Error::EmptyBatch {
                what: "indices",
                unit: "class",
                shape: "[0]".to_string(),
            });
        }
        let bad = |k: usize, expected| Error::InvalidInput {
            what: "indices",
            index: vec![k],
            value: indices[k] as f64,
            expected,
        };
        if let Some(k) = indices.windows(2).position(|p| p[0] >= p[1]) {
            return Err(bad(k + 1, "sorted class indices without repeats"));
        }
        if let Some(k) = indices.iter().position(|&c| c >= classes) {
            return Err(bad(k, "a class index below the number of classes"));
        }
        Ok(SampledClasses { indices, classes })
    }

    /// The sampled classes, sorted.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// `|S|`, the number of sampled classes.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no class is sampled (never: a sample has at least one).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `C`, the number of classes sampled from.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The place of `class` in the sample, if sampled.
    pub fn position(&self, class: usize) -> Option<usize> {
        self.indices.binary_search(&class).ok()
    }

    /// The rows of `S` of a `(C, ...)` matrix (the class weights), `(|S|,
    /// ...)`: a copy of `|S| D` values.
    pub fn gather<F: Clone>(&self, rows: ArrayView2<'_, F>) -> Result<Array2<F>> {
        check_class_vector("rows", rows.nrows(), self.classes)?;
        Ok(rows.select(Axis(0), &self.indices))
    }

    /// Writes the `(|S|, D)` rows of `sampled` (a gradient of the sampled
    /// rows) into rows `S` of `full` `(C, D)`; the other rows of `full` are
    /// left as they are.
    pub fn scatter<F: Clone>(
        &self,
        sampled: ArrayView2<'_, F>,
        mut full: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let d = sampled.ncols();
        expect_shape("sampled", sampled.shape(), &[self.len(), d])?;
        expect_shape("full", full.shape(), &[self.classes, d])?;
        for (&c, row) in self.indices.iter().zip(sampled.rows()) {
            full.row_mut(c).assign(&row);
        }
        Ok(())
    }

    /// Each label's place in `S` (`ignore`d labels as `-1`), for labels
    /// `(n)` in `0..C`: a label outside `S` is an error naming it.
    fn remap(&self, labels: &Labels<'_>, n: usize, ignore: Option<i128>) -> Result<Array1<i64>> {
        labels.expect_shape("labels", &[n])?;
        labels.check("labels", self.classes, ignore)?;
        let mut out = Array1::zeros(n);
        for (i, (label, o)) in labels.classes(ignore).zip(&mut out).enumerate() {
            *o = match label {
                None => -1,
                Some(y) => match self.position(y) {
                    Some(p) => p as i64,
                    None => {
                        return Err(Error::InvalidTarget {
                            what: "labels",
                            index: vec![i],
                            value: y as f64,
                            expected: "a class among the sampled classes",
                        });
                    }
                },
            };
        }
        Ok(out)
    }
}

/// A fused head run on a [`SampledClasses`] `S` (Partial FC): the head's
/// value, per-sample values and gradients on the class rows of `S` alone,
/// with each label `y` replaced by its place in `S`; the weight's gradient
/// is `(|S|, D)`, for the sampled rows only.
///
/// Exactly the head on `weight.select(Axis(0), S)` with the labels mapped
/// into `S`: with [`AngularMarginHead`], the angular margin's softmax over
/// the sampled classes (Partial FC as the paper and insightface); with
/// [`LinearCrossEntropy`], the same for cross-entropy (its class weights,
/// bias and ignored label follow the classes, per-token weights
/// ([`ClassTarget::WeightedLabels`]) stay with their tokens; label
/// smoothing spreads over the `|S|` sampled classes). `S` must hold every label that is not
/// ignored, as [`PartialFc::sample`]'s always does.
///
/// # Memory
/// The head's own, for `|S|` classes, plus the gathered rows of the weight
/// (`|S| x D` values; the bias's and class weights', `|S|` each) and the
/// mapped labels (`N` integers).
///
/// # Shapes
/// - input: [`SampledEmbeddings`] or [`SampledLinearInput`]: the head's
///   input with every class, `weight (C, D)` (and `bias (C)`), and `S`;
///   labels `(N)` in `0..C` (for the linear head a [`ClassTarget`] of
///   labels, with per-token weights or not).
/// - per-sample `(N)`; gradient: [`EmbeddingsGrad`](crate::EmbeddingsGrad)
///   or [`LinearGrad`](crate::LinearGrad) with `weight (|S|, D)` (and
///   `bias (|S|)`), row `k` for class `S.indices()[k]`.
/// - `Mean` divides as the head does (by `N` for the angular margins).
///
/// # Errors
/// The head's, and: `weight` (or `bias`, or the class weights) without `C`
/// rows ([`Error::ShapeMismatch`]); a label `>= C`
/// ([`Error::LabelOutOfRange`]); a label not in `S`
/// ([`Error::InvalidTarget`] naming it); for the linear head, probabilities
/// (its [`Error::UnsupportedTarget`]).
///
/// # Examples
/// ```
/// use classloss::{
///     AngularMarginHead, CosFace, Differentiable, OnSampledClasses, PartialFc, SampledEmbeddings,
/// };
/// use ndarray::{array, Array2};
///
/// let e = array![[1.0_f32, 0.5], [-0.5, 1.0]];
/// let w = Array2::from_shape_fn((50, 2), |(c, k)| ((c * 7 + k * 3) % 11) as f32 - 5.0);
/// let labels = array![3_u32, 41];
/// let classes = PartialFc::new(0.2)?.sample(&labels, 50, 7)?; // 10 of 50 classes
/// let head = OnSampledClasses::new(AngularMarginHead::new(CosFace::new()));
/// let input = SampledEmbeddings { embeddings: e.view(), weight: w.view(), classes: &classes };
/// let (loss, grad) = head.forward_backward(input, &labels)?;
/// assert!(loss.is_finite());
/// assert_eq!(grad.weight.dim(), (10, 2)); // the sampled rows only
/// // An optimizer updates rows classes.indices() of w with grad.weight.
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// As [`PartialFc`].
#[derive(Clone, Debug, PartialEq)]
pub struct OnSampledClasses<H> {
    head: H,
}

impl<H> OnSampledClasses<H> {
    /// `head` on sampled classes.
    pub fn new(head: H) -> Self {
        OnSampledClasses { head }
    }

    /// The wrapped head, whose options apply.
    pub fn head(&self) -> &H {
        &self.head
    }

    /// Unwraps the head.
    pub fn into_inner(self) -> H {
        self.head
    }
}

impl<H: Options> Options for OnSampledClasses<H> {
    fn reduction(&self) -> Reduction {
        self.head.reduction()
    }
    fn set_reduction(&mut self, reduction: Reduction) {
        Options::set_reduction(&mut self.head, reduction);
    }
}

/// The input of [`AngularMarginHead`] on sampled classes: embeddings, the
/// class weights of every class, and the classes of the step.
#[derive(Clone, Copy, Debug)]
pub struct SampledEmbeddings<'a, F> {
    /// One embedding per sample, `(N, D)`.
    pub embeddings: ArrayView2<'a, F>,
    /// The weight of every class, `(C, D)`.
    pub weight: ArrayView2<'a, F>,
    /// The sampled classes `S`, out of `C`.
    pub classes: &'a SampledClasses,
}

/// The input of [`LinearCrossEntropy`] on sampled classes: hidden states,
/// the linear layer of every class, and the classes of the step.
#[derive(Clone, Copy, Debug)]
pub struct SampledLinearInput<'a, F> {
    /// The hidden states, `(N, D)`.
    pub hidden: ArrayView2<'a, F>,
    /// The weight of every class, `(C, D)`.
    pub weight: ArrayView2<'a, F>,
    /// The bias of every class, `(C)`, if any.
    pub bias: Option<ArrayView1<'a, F>>,
    /// The sampled classes `S`, out of `C`.
    pub classes: &'a SampledClasses,
}

/// A head's signature whose input can come with every class and a sample
/// of them: the sampled input's type, what its shapes are, and whether
/// what the loss reads of it is finite.
pub trait Samplable<F: Float>: Signature<F> {
    /// The input with every class and the sample.
    type Sampled<'a>: Clone;
    /// The head's input of the same shapes as the sampled one (the
    /// weight's first `|S|` rows, for shapes only).
    fn shaped<'a>(input: &Self::Sampled<'a>) -> Self::Input<'a>;
    /// Whether every value the sampled input feeds the loss is finite.
    fn sampled_finite(input: &Self::Sampled<'_>) -> bool;
}

/// The signature of a head on sampled classes: its own, with the sampled
/// input.
pub struct Sampled<S>(PhantomData<S>);

impl<F: Float, S: Samplable<F>> Signature<F> for Sampled<S> {
    type Input<'a> = S::Sampled<'a>;
    type Target<'a> = S::Target<'a>;
    type Samples = S::Samples;
    type Grad = S::Grad;
    type GradMut<'g> = S::GradMut<'g>;

    fn samples(input: &Self::Input<'_>) -> S::Samples {
        S::samples(&S::shaped(input))
    }
    fn zeros_grad(input: &Self::Input<'_>) -> S::Grad {
        S::zeros_grad(&S::shaped(input))
    }
    fn grad_view_mut(grad: &mut S::Grad) -> S::GradMut<'_> {
        S::grad_view_mut(grad)
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        S::reborrow(grad)
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        S::scale_grad(grad, factor)
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        S::sampled_finite(input)
    }
}

impl<S: Exact> Exact for Sampled<S> {}

/// The first `|S|` rows of `weight`, at most all of them.
fn first_rows<'a, F>(weight: ArrayView2<'a, F>, classes: &SampledClasses) -> ArrayView2<'a, F> {
    let rows = classes.len().min(weight.nrows());
    weight.slice_move(s![..rows, ..])
}

/// Whether the rows `classes` of `weight` (those it has) are finite.
fn rows_finite<F: Float>(weight: ArrayView2<'_, F>, classes: &SampledClasses) -> bool {
    let finite = |c: &usize| *c >= weight.nrows() || weight.row(*c).iter().all(|v| v.is_finite());
    classes.indices().iter().all(finite)
}

impl<F: Float> Samplable<F> for EmbeddingsAndLabels {
    type Sampled<'a> = SampledEmbeddings<'a, F>;

    fn shaped<'a>(input: &Self::Sampled<'a>) -> Self::Input<'a> {
        Embeddings {
            embeddings: input.embeddings,
            weight: first_rows(input.weight, input.classes),
        }
    }
    fn sampled_finite(input: &SampledEmbeddings<'_, F>) -> bool {
        input.embeddings.iter().all(|v| v.is_finite()) && rows_finite(input.weight, input.classes)
    }
}

impl<F: Float> Samplable<F> for LinearAndLabels {
    type Sampled<'a> = SampledLinearInput<'a, F>;

    fn shaped<'a>(input: &Self::Sampled<'a>) -> Self::Input<'a> {
        let bias = |b: ArrayView1<'a, F>| b.slice_move(s![..input.classes.len().min(b.len())]);
        LinearInput {
            hidden: input.hidden,
            weight: first_rows(input.weight, input.classes),
            bias: input.bias.map(bias),
        }
    }
    fn sampled_finite(input: &SampledLinearInput<'_, F>) -> bool {
        let bias_finite = |c: &usize| {
            input
                .bias
                .is_none_or(|b| b.get(*c).is_none_or(|v| v.is_finite()))
        };
        input.hidden.iter().all(|v| v.is_finite())
            && rows_finite(input.weight, input.classes)
            && input.classes.indices().iter().all(bias_finite)
    }
}

impl<F: Float, L: Sealed> Compute<F> for OnSampledClasses<AngularMarginHead<L>> {
    type Sig = Sampled<EmbeddingsAndLabels>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input,
            target: labels,
            grad,
            per,
        } = call;
        let SampledEmbeddings {
            embeddings,
            weight,
            classes,
        } = input;
        let (n, d) = embeddings.dim();
        expect_shape("weight", weight.shape(), &[classes.classes(), d])?;
        let remapped = classes.remap(&labels, n, None)?;
        let gathered = classes.gather(weight)?;
        let inner = Embeddings {
            embeddings,
            weight: gathered.view(),
        };
        self.head.compute(Call {
            input: inner,
            target: Labels::from(&remapped),
            grad,
            per,
        })
    }
}

impl<F: Float> Compute<F> for OnSampledClasses<LinearCrossEntropy<F>> {
    type Sig = Sampled<LinearAndLabels>;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let Call {
            input,
            target,
            grad,
            per,
        } = call;
        let SampledLinearInput {
            hidden,
            weight,
            bias,
            classes,
        } = input;
        let (n, d) = hidden.dim();
        let c = classes.classes();
        expect_shape("weight", weight.shape(), &[c, d])?;
        if let Some(b) = &bias {
            expect_shape("bias", b.shape(), &[c])?;
        }
        let mut head = self.head.clone();
        if let Some(w) = self.head.class_weight() {
            check_class_vector("class_weight", w.len(), c)?;
            head = head.with_class_weight(w.select(Axis(0), classes.indices()))?;
        }
        let ignore = self.head.ignore_index();
        let remapped;
        let target = match target {
            ClassTarget::Labels(labels) => {
                remapped = classes.remap(&labels, n, ignore)?;
                ClassTarget::Labels(Labels::from(&remapped))
            }
            ClassTarget::WeightedLabels { labels, weights } => {
                remapped = classes.remap(&labels, n, ignore)?;
                let labels = Labels::from(&remapped);
                ClassTarget::WeightedLabels { labels, weights }
            }
            // The head takes no probabilities: its error.
            ClassTarget::Probs(probs) => ClassTarget::Probs(probs),
        };
        if ignore.is_some() {
            // The ignored labels are -1 among the places in S.
            head = head.with_ignore_index(-1_i64);
        }
        let gathered = classes.gather(weight)?;
        let bias = bias.map(|b| b.select(Axis(0), classes.indices()));
        let inner = LinearInput {
            hidden,
            weight: gathered.view(),
            bias: bias.as_ref().map(|b| b.view()),
        };
        head.compute(Call {
            input: inner,
            target,
            grad,
            per,
        })
    }
}
