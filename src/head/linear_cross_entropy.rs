//! The fused linear + cross-entropy head: `CrossEntropy(hidden W^T + b)`
//! and its gradients for `hidden`, `W` and `b`, chunk by chunk of tokens,
//! never holding the `(N, V)` logits.

use ndarray::{
    Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, CowArray, Ix1, Ix2,
    s,
};

use crate::base::labels::{Label, Labels};
use crate::base::loss::{Call, Compute, Exact, Signature, run_with};
use crate::base::options::loss_options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{
    about_pow10, check_class_vector, check_values, expect_nonempty, expect_shape, overflow,
};
use crate::engine::linear_chunks::{Linear, LinearGradViews, linear_chunks};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::lanes_lse;
use crate::numerics::times_pow2;
use crate::softmax::{ClassTarget, CrossEntropy};
use crate::{Error, Float, Reduction, Result};

/// The input of [`LinearCrossEntropy`]: the hidden states and the linear
/// layer that maps them to the logits `hidden W^T + b`.
#[derive(Clone, Copy, Debug)]
pub struct LinearInput<'a, F> {
    /// The hidden states (the last layer's outputs), `(N, D)`.
    pub hidden: ArrayView2<'a, F>,
    /// The classifier's weight `W`, one row per class, `(V, D)` (PyTorch's
    /// `nn.Linear(D, V).weight` layout).
    pub weight: ArrayView2<'a, F>,
    /// The classifier's bias `b`, `(V)`, if any.
    pub bias: Option<ArrayView1<'a, F>>,
}

/// The gradient of [`LinearCrossEntropy`] with respect to its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrad<F> {
    /// `d loss / d hidden`, `(N, D)`.
    pub hidden: Array2<F>,
    /// `d loss / d W`, `(V, D)`.
    pub weight: Array2<F>,
    /// `d loss / d b`, `(V)`: present when the input has a bias.
    pub bias: Option<Array1<F>>,
}

/// Mutable views of the caller's gradient buffers, which the fused call
/// overwrites.
#[derive(Debug)]
pub struct LinearGradMut<'g, F> {
    /// Receives `d loss / d hidden`, `(N, D)`.
    pub hidden: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d W`, `(V, D)`.
    pub weight: ArrayViewMut2<'g, F>,
    /// Receives `d loss / d b`, `(V)`; `None` skips it. A buffer given for
    /// an input without a bias receives the gradient of a zero bias (the
    /// column sums of `dL/dZ`, the same whatever the bias).
    pub bias: Option<ArrayViewMut1<'g, F>>,
}

impl<'g, F> From<&'g mut LinearGrad<F>> for LinearGradMut<'g, F> {
    fn from(grad: &'g mut LinearGrad<F>) -> Self {
        LinearGradMut {
            hidden: grad.hidden.view_mut(),
            weight: grad.weight.view_mut(),
            bias: grad.bias.as_mut().map(|b| b.view_mut()),
        }
    }
}

/// The signature of the fused head: a [`LinearInput`], labels `(N)` (or
/// labels with per-token weights, [`ClassTarget::WeightedLabels`]), a
/// gradient for the hidden states, the weight and the bias.
pub struct LinearAndLabels;

impl<F: Float> Signature<F> for LinearAndLabels {
    type Input<'a> = LinearInput<'a, F>;
    type Target<'a> = ClassTarget<'a, F, Ix2>;
    type Samples = Ix1;
    type Grad = LinearGrad<F>;
    type GradMut<'g> = LinearGradMut<'g, F>;

    fn samples(input: &Self::Input<'_>) -> Ix1 {
        Ix1(input.hidden.nrows())
    }
    fn zeros_grad(input: &Self::Input<'_>) -> LinearGrad<F> {
        LinearGrad {
            hidden: Array2::zeros(input.hidden.raw_dim()),
            weight: Array2::zeros(input.weight.raw_dim()),
            bias: input.bias.map(|b| Array1::zeros(b.raw_dim())),
        }
    }
    fn grad_view_mut(grad: &mut LinearGrad<F>) -> LinearGradMut<'_, F> {
        grad.into()
    }
    fn reborrow<'s>(grad: &'s mut Self::GradMut<'_>) -> Self::GradMut<'s> {
        LinearGradMut {
            hidden: grad.hidden.view_mut(),
            weight: grad.weight.view_mut(),
            bias: grad.bias.as_mut().map(|b| b.view_mut()),
        }
    }
    fn scale_grad(grad: &mut Self::GradMut<'_>, factor: F) {
        grad.hidden *= factor;
        grad.weight *= factor;
        if let Some(b) = grad.bias.as_mut() {
            *b *= factor;
        }
    }
    fn all_finite(input: &Self::Input<'_>) -> bool {
        let finite = |v: &F| v.is_finite();
        input.hidden.iter().all(finite)
            && input.weight.iter().all(finite)
            && input.bias.is_none_or(|b| b.iter().all(finite))
    }
}

impl Exact for LinearAndLabels {}

/// The bytes of one default chunk of logits: 48 MiB.
const CHUNK_BYTES: usize = 48 << 20;

/// The fewest tokens of a default chunk, whatever the class count. Each
/// chunk's three products stream the whole weight (the logits and `d
/// hidden` read it, `d W` reads and writes it), about `16 V D` bytes for
/// `6 T V D` flops: with few tokens they run at the memory's speed, not
/// the cores'. At `V = 10^6`, `D = 512`, `N = 256` (f32, one thread) the
/// 48 MiB rule gives chunks of 12 tokens and the call took 60.4 s; chunks
/// of 64 took 22.5 s, of 256 24.2 s. The buffer of 64 tokens is
/// `256 V` bytes, `32 / D` of the weight's own memory (6% at `D = 512`).
const MIN_CHUNK_ROWS: usize = 64;

loss_options! {
    /// Cross-entropy of a linear classifier's logits, fused with the
    /// classifier: the value of `CrossEntropy(hidden W^T + b, labels)` and
    /// its gradients for `hidden`, `W` and `b`, computed a chunk of tokens
    /// at a time so that the `(N, V)` logits and their gradient are never
    /// held whole.
    ///
    /// Use it for the output layer of a model with many classes (a language
    /// model's vocabulary of 32k-256k tokens, 10^5 identities): at
    /// `N = 4,096` tokens and `V = 128,256` classes the logits alone are
    /// 2 GiB of `f32`, and their gradient 2 GiB more.
    ///
    /// # Formula
    /// ```text
    /// Z = hidden W^T + b                                  (N, V), by chunks of rows
    /// l_i = CrossEntropy(Z_i, y_i)                        with every CrossEntropy option
    /// G = dL/dZ                                           (CrossEntropy's gradient, reduced)
    /// dL/dhidden = G W,   dL/dW = G^T hidden,   dL/db = sum_i G_i
    /// ```
    /// The loss is exact: the same value, per-sample values and gradients
    /// as [`CrossEntropy`] on the materialized logits (with the same
    /// options), to float rounding, in `f32` and `f64`. Each chunk of
    /// `chunk_rows` tokens computes its logits `Z_c = H_c W^T + b` into a
    /// reused buffer, runs [`CrossEntropy`] on it a few rows at a time
    /// (in the core's cache, in parallel with the `rayon` feature), writing
    /// `G_c` over the logits, and adds its part of the three products; the
    /// `Mean`'s factor is folded into the products. The products run on
    /// the `gemm` crate, on every thread of the current rayon pool; the
    /// results are the same bits on any thread count.
    ///
    /// # Memory
    /// Beyond the inputs and the gradient buffers: one `chunk_rows x V`
    /// buffer of `F`; per thread, a transposed tile of logits (2 MiB), the
    /// copy of a few rows' logits (256 KiB, or one row where a row is
    /// larger) and `gemm`'s packing (about 1 MiB); and up to 7 partial
    /// products of `d hidden`'s chunk, `chunk_rows x D` each, 4 MiB in all
    /// (one where a single one is larger). The default `chunk_rows` is the
    /// largest count with `chunk_rows * V * size_of::<F>() <= 48 MiB`, but
    /// at least 64 (and at most `N`): at `N = 4,096`, `D = 512`, `V = 128,256` in
    /// `f32` it is 98 rows, a buffer of 47.9 MiB, where the materialized
    /// logits and their gradient take 4 GiB; the peak measured beyond the
    /// inputs and gradients is 58-62 MiB on one and two threads (README,
    /// "Performance"). Larger chunks make the products faster (`d W`'s
    /// inner dimension is the chunk): beyond `V = 196,608` classes (`f32`)
    /// the 48 MiB would hold fewer than 64 tokens, whose products run at
    /// the memory's speed (2.7 times slower at `V = 10^6`), so the default
    /// chunk stays at 64 tokens, a buffer of `64 V size_of::<F>()` bytes,
    /// `32 / D` of the weight's own memory in `f32`.
    ///
    /// # Shapes
    /// - input: [`LinearInput`] of `hidden` `(N, D)`, `weight` `(V, D)`,
    ///   `bias` `(V)` or `None`; labels `(N)` of any integer type.
    /// - per-sample `(N)`; gradient: [`LinearGrad`] (`hidden` `(N, D)`,
    ///   `weight` `(V, D)`, `bias` `(V)` when the input has one).
    /// - `Mean` divides by the sum of the class weights `w_{y_i}` over the
    ///   tokens that are not ignored (their count without class weights),
    ///   as [`CrossEntropy`] and PyTorch; computed once from the labels, not
    ///   per chunk. When it is 0 the mean is 0 with a zero gradient.
    ///
    /// # Options
    /// The options of [`CrossEntropy`], with the same meaning:
    /// - `reduction`: `Mean` (default), `Sum`, `None`.
    /// - `class_weight`: one finite weight `>= 0` per class, `(V)`
    ///   (CrossEntropy's `weight`; named apart from the input's `weight`
    ///   matrix).
    /// - `ignore_index`: a label value, of any integer type, whose tokens
    ///   count for nothing (default none; `with_ignore_index(-100)` for
    ///   PyTorch's padding label).
    /// - `label_smoothing`: `eps` in `[0, 1]`, PyTorch's convention.
    /// - `z_loss`: PaLM's `z lse^2`, `z` finite and `>= 0` (default 0).
    /// - `softcap`: Gemma 2's `cap tanh(x / cap)` on the logits, or `None`.
    /// - `chunk_rows`: tokens per chunk, `>= 1` (default: see *Memory*).
    ///   The results are the same for every chunk size, to float rounding.
    ///
    /// # Errors
    /// An empty batch, zero classes or zero features; `weight` with another
    /// `D` than `hidden`, `bias` not `(V)`, labels not `(N)`, class weights
    /// not `(V)`, a gradient buffer of another shape than its input
    /// ([`Error::ShapeMismatch`] naming the argument: `grad.hidden`,
    /// `grad.weight`, `grad.bias`); a label `>= V` (or negative) that is not
    /// the `ignore_index`; options out of range at their setters. A finite
    /// input whose loss is beyond the float type is [`Error::Overflow`].
    ///
    /// # Examples
    /// ```
    /// use classloss::{Differentiable, LinearCrossEntropy, LinearInput, Loss};
    /// use ndarray::array;
    ///
    /// let hidden = array![[1.0_f64, 2.0], [0.0, 1.0]];
    /// let weight = array![[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]; // V = 3 classes, D = 2
    /// let input = LinearInput { hidden: hidden.view(), weight: weight.view(), bias: None };
    /// let labels = array![0_i64, 1];
    /// let head = LinearCrossEntropy::new().with_chunk_rows(1)?;
    /// // Token 0's logits are [1, 2, 0]: its loss is logsumexp - 1.
    /// let per = head.per_sample(input, &labels)?;
    /// assert!((per[0] - 1.4076059644443801).abs() < 1e-12);
    /// let (loss, grad) = head.forward_backward(input, &labels)?;
    /// assert!((loss - per.mean().unwrap()).abs() < 1e-15);
    /// assert_eq!(grad.hidden.dim(), (2, 2));
    /// assert_eq!(grad.weight.dim(), (3, 2));
    /// assert!(grad.bias.is_none());
    /// # Ok::<(), classloss::Error>(())
    /// ```
    ///
    /// # References
    /// PyTorch, `torch.nn.functional.linear_cross_entropy` (the chunked
    /// path). Liger-Kernel's fused linear cross-entropy: P.-L. Hsu et al.,
    /// "Liger Kernel: Efficient Triton Kernels for LLM Training", 2024,
    /// <https://arxiv.org/abs/2410.10989>. E. Wijmans et al., "Cut Your
    /// Losses in Large-Vocabulary Language Models" (Cut Cross-Entropy),
    /// 2024, <https://arxiv.org/abs/2411.09009>.
    pub struct LinearCrossEntropy<F: Float> {
        ce: CrossEntropy<F> = CrossEntropy::new().with_reduction(Reduction::Sum);
        chunk_rows: Option<usize> = None;
    }

    /// The fused head: mean reduction, no class weights, no ignored label,
    /// no smoothing, no z-loss or soft cap, the default chunk.
    fn new();
}

impl<F: Float> LinearCrossEntropy<F> {
    /// Sets one weight per class, `(V)`, finite and `>= 0` (default none):
    /// CrossEntropy's `weight`.
    pub fn with_class_weight(mut self, class_weight: Array1<F>) -> Result<Self> {
        self.ce = self.ce.with_weight(class_weight)?;
        Ok(self)
    }

    /// The class weights, if any.
    pub fn class_weight(&self) -> Option<&Array1<F>> {
        self.ce.weight()
    }

    /// Sets the label whose tokens are ignored (default none), of any
    /// integer type: PyTorch's `-100` can be written as it is.
    pub fn with_ignore_index(mut self, ignore_index: impl Label) -> Self {
        self.ce = self.ce.with_ignore_index(ignore_index);
        self
    }

    /// The ignored label, if any (widened to `i128`).
    pub fn ignore_index(&self) -> Option<i128> {
        self.ce.ignore_index()
    }

    /// Sets the label smoothing `eps` in `[0, 1]` (default 0).
    pub fn with_label_smoothing(mut self, label_smoothing: f64) -> Result<Self> {
        self.ce = self.ce.with_label_smoothing(label_smoothing)?;
        Ok(self)
    }

    /// The label smoothing `eps`.
    pub fn label_smoothing(&self) -> f64 {
        self.ce.label_smoothing()
    }

    /// Sets the z-loss coefficient `z`, finite and `>= 0` (default 0).
    pub fn with_z_loss(mut self, z_loss: f64) -> Result<Self> {
        self.ce = self.ce.with_z_loss(z_loss)?;
        Ok(self)
    }

    /// The z-loss coefficient `z` (0: none).
    pub fn z_loss(&self) -> f64 {
        self.ce.z_loss()
    }

    /// Sets the logit soft cap, finite and `> 0`, or `None` (default).
    pub fn with_softcap(mut self, softcap: Option<f64>) -> Result<Self> {
        self.ce = self.ce.with_softcap(softcap)?;
        Ok(self)
    }

    /// The logit soft cap, if any.
    pub fn softcap(&self) -> Option<f64> {
        self.ce.softcap()
    }

    /// Sets the tokens per chunk, `>= 1` (default: the largest count whose
    /// `chunk_rows x V` logits fit 48 MiB, at least 64). Larger chunks make larger
    /// matrix products (faster, up to the cache) and use more memory.
    pub fn with_chunk_rows(mut self, chunk_rows: usize) -> Result<Self> {
        if chunk_rows == 0 {
            return Err(Error::InvalidOption {
                name: "chunk_rows",
                value: chunk_rows.to_string(),
                expected: "an integer >= 1",
            });
        }
        self.chunk_rows = Some(chunk_rows);
        Ok(self)
    }

    /// The tokens per chunk set by [`Self::with_chunk_rows`], or `None` for
    /// the default.
    pub fn chunk_rows(&self) -> Option<usize> {
        self.chunk_rows
    }

    /// The tokens per chunk used with `classes` classes: the one set, or
    /// the largest count with `rows * classes * size_of::<F>() <= 48 MiB`,
    /// at least 64. A batch of fewer tokens is one chunk.
    pub fn chunk_rows_for(&self, classes: usize) -> usize {
        self.chunk_rows.unwrap_or_else(|| {
            let row_bytes = classes.max(1).saturating_mul(std::mem::size_of::<F>());
            (CHUNK_BYTES / row_bytes).max(MIN_CHUNK_ROWS)
        })
    }
}

/// The overflow of the first logit beyond `F` in the chunk `z` of rows
/// `start..`, its value computed again in `f64` (cold).
#[cold]
pub(crate) fn logits_overflow<F: Float>(
    input: LinearInput<'_, F>,
    start: usize,
    z: ArrayView2<'_, F>,
) -> Error {
    let (r, c) = z
        .indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map_or((0, 0), |(i, _)| i);
    let x = exact_logit(input, start + r, c);
    overflow::<F>(
        "hidden",
        vec![start + r],
        "a logit of the sample (hidden W^T + b)",
        about_pow10(x.abs().log10()),
    )
}

/// Under a soft cap, a logit beyond `F` (or a product whose partial sums
/// left `F`, which gives NaN) still has a finite loss: `cap tanh(x / cap)`.
/// Such logits are computed again in `f64` (cold); one beyond `F` becomes
/// `+-F::MAX`, which the cap maps to the same `+-cap` (and a zero gradient)
/// as `x` when `cap <= F::MAX / 20`, where `tanh` saturates. A larger cap
/// with such a logit is an overflow.
pub(crate) fn repair_capped_logits<F: Float>(
    input: LinearInput<'_, F>,
    start: usize,
    z: &mut ArrayViewMut2<'_, F>,
    cap: f64,
) -> Result<()> {
    if z.iter().all(|v| v.is_finite()) || !LinearAndLabels::all_finite(&input) {
        return Ok(());
    }
    let max = F::max_value().as_f64();
    for ((r, c), v) in z.indexed_iter_mut() {
        if v.is_finite() {
            continue;
        }
        let x = exact_logit(input, start + r, c);
        if x.abs() <= max {
            *v = F::lit(x);
        } else if cap <= max / 20.0 {
            *v = F::lit(max.copysign(x));
        } else {
            return Err(overflow::<F>(
                "hidden",
                vec![start + r],
                "a logit of the sample (hidden W^T + b)",
                about_pow10(x.abs().log10()),
            ));
        }
    }
    Ok(())
}

/// The logit of token `i` for class `c`, `h_i . w_c + b_c`, in `f64`.
fn exact_logit<F: Float>(input: LinearInput<'_, F>, i: usize, c: usize) -> f64 {
    let h = input.hidden.row(i);
    let w = input.weight.row(c);
    let dot: f64 = h.iter().zip(&w).map(|(a, b)| a.as_f64() * b.as_f64()).sum();
    dot + input.bias.map_or(0.0, |b| b[c].as_f64())
}

/// The bytes of logits one block of [`ChunkRows::loss`] copies: a few rows,
/// which stay in the core's cache while the loss reads them.
const BLOCK_BYTES: usize = 256 << 10;

/// A call's target, checked: the labels and the per-token weights, if any.
pub(crate) struct Checked<'a, F> {
    pub labels: Labels<'a>,
    pub token_weights: Option<ArrayView1<'a, F>>,
}

impl<F: Float> LinearCrossEntropy<F> {
    /// Checks a call whose labels name `classes` classes (the class
    /// weights are `(classes)`) and whose `weight` holds some of them (all
    /// of them here, a shard of them in the class-sharded head): the
    /// shapes, the target's kind, and the labels' range.
    pub(crate) fn check_call<'t>(
        &self,
        input: LinearInput<'_, F>,
        target: ClassTarget<'t, F, Ix2>,
        grad: Option<&LinearGradMut<'_, F>>,
        classes: usize,
    ) -> Result<Checked<'t, F>> {
        let LinearInput {
            hidden,
            weight,
            bias,
        } = input;
        expect_nonempty("hidden", hidden.shape(), 0, "sample")?;
        expect_nonempty("hidden", hidden.shape(), 1, "feature")?;
        if classes == 0 {
            expect_nonempty("weight", weight.shape(), 0, "class")?;
        }
        let (n, d) = hidden.dim();
        let v = weight.nrows();
        expect_shape("weight", weight.shape(), &[v, d])?;
        if let Some(b) = &bias {
            expect_shape("bias", b.shape(), &[v])?;
        }
        if let Some(w) = self.ce.weight() {
            check_class_vector("class_weight", w.len(), classes)?;
        }
        let (labels, token_weights) = match target {
            ClassTarget::Labels(labels) => (labels, None),
            ClassTarget::WeightedLabels { labels, weights } => (labels, Some(weights)),
            ClassTarget::Probs(_) => {
                return Err(Error::UnsupportedTarget {
                    what: "target",
                    expected: "labels or weighted labels (probabilities would be (N, V), the size of the logits the head avoids)",
                    actual: target.kind(),
                });
            }
        };
        labels.expect_shape("labels", &[n])?;
        if let Some(t) = &token_weights {
            expect_shape("token_weights", t.shape(), &[n])?;
            check_values("token_weights", t, "a finite weight >= 0", |t: F| {
                t.is_finite() && t >= F::zero()
            })?;
        }
        labels.check("labels", classes, self.ce.ignore_index())?;
        if let Some(g) = grad {
            expect_shape("grad.hidden", g.hidden.shape(), &[n, d])?;
            expect_shape("grad.weight", g.weight.shape(), &[v, d])?;
            if let Some(b) = &g.bias {
                expect_shape("grad.bias", b.shape(), &[v])?;
            }
        }
        Ok(Checked {
            labels,
            token_weights,
        })
    }

    /// The mean's divisor, from all the labels at once (PyTorch's rule, as
    /// CrossEntropy's: the chunks run with `Sum`), and the cross-entropy
    /// the chunks run: this head's, or for a mean over tiny class weights
    /// one whose weights are scaled by a power of two.
    ///
    /// Tiny class weights (subnormal ones, say): 1 / divisor passes F and
    /// each `w_y nll` keeps few bits. The mean is the same for weights
    /// scaled by any power of two, and the scaling is exact: the chunks run
    /// on weights that bring the divisor to 2^t, with 1 / 2^t well inside
    /// F (2^511 for f64, 2^63 for f32). Not for the per-sample values
    /// (`per_sample`), which are the weighted ones.
    pub(crate) fn mean_plan(
        &self,
        labels: &Labels<'_>,
        token_weights: Option<ArrayView1<'_, F>>,
        per_sample: bool,
    ) -> Result<(std::borrow::Cow<'_, CrossEntropy<F>>, f64)> {
        let ignore = self.ce.ignore_index();
        let class_weight = self.ce.weight();
        let w_y = |y: usize| class_weight.map_or(1.0, |w| w[y].as_f64());
        let divisor: f64 = match &token_weights {
            None => labels.weight_sum(ignore, class_weight),
            Some(weights) => labels
                .classes(ignore)
                .zip(weights.iter())
                .map(|(y, &t_i)| y.map_or(0.0, |y| Float::as_f64(t_i) * w_y(y)))
                .sum(),
        };
        let t = -(F::max_value().as_f64().log2().floor() as i32) / 2;
        let tiny = divisor < times_pow2(1.0, t) || !F::lit(1.0 / divisor).is_finite();
        match (self.reduction, class_weight) {
            (Reduction::Mean, Some(_)) if divisor > 0.0 && tiny && !per_sample => {
                let e = t - divisor.log2().floor() as i32;
                let rescaled = self
                    .ce
                    .with_weights_times_pow2(e, divisor, "class_weight")?;
                Ok((std::borrow::Cow::Owned(rescaled), times_pow2(divisor, e)))
            }
            _ => Ok((std::borrow::Cow::Borrowed(&self.ce), divisor)),
        }
    }
}

/// What every chunk of one call shares.
struct ChunkRows<'c, 'i, 'a, F: Float> {
    ce: &'c CrossEntropy<F>,
    input: LinearInput<'i, F>,
    labels: &'c Labels<'a>,
    token_weights: Option<ArrayView1<'a, F>>,
    want_grad: bool,
}

/// One block of rows of a chunk and its slices of the outputs.
struct Block<'z, F> {
    first: usize,
    z: ArrayViewMut2<'z, F>,
    per: Option<ArrayViewMut1<'z, F>>,
    lse: Option<ArrayViewMut1<'z, F>>,
}

/// `x`'s pieces of `block` rows along axis 0, or as many `None`s.
fn row_blocks<'z, F>(
    x: Option<&'z mut ArrayViewMut1<'_, F>>,
    block: usize,
    count: usize,
) -> Vec<Option<ArrayViewMut1<'z, F>>> {
    match x {
        Some(x) => x.axis_chunks_iter_mut(Axis(0), block).map(Some).collect(),
        None => (0..count).map(|_| None).collect(),
    }
}

impl<F: Float> ChunkRows<'_, '_, '_, F> {
    /// The cross-entropy of one chunk's logits `z` (tokens `start..`),
    /// written as `dL/dZ` over them when a gradient is wanted, by blocks of
    /// rows in parallel (a block's logits are copied aside first: the loss
    /// reads its input and writes its gradient, which cannot be one
    /// buffer); the rows' values into `per` and log-sum-exps into `lse`.
    /// The blocks depend on the shape only and their sums are added in
    /// order, so the result does not depend on the thread count.
    fn loss(
        &self,
        start: usize,
        z: &mut ArrayViewMut2<'_, F>,
        mut per: Option<ArrayViewMut1<'_, F>>,
        mut lse: Option<ArrayViewMut1<'_, F>>,
    ) -> Result<Sum> {
        let (rows, v) = z.dim();
        let block = (BLOCK_BYTES / (v * std::mem::size_of::<F>())).clamp(1, rows);
        let count = rows.div_ceil(block);
        let pers = row_blocks(per.as_mut(), block, count);
        let lses = row_blocks(lse.as_mut(), block, count);
        let blocks: Vec<Block<'_, F>> = z
            .axis_chunks_iter_mut(Axis(0), block)
            .zip(pers.into_iter().zip(lses))
            .enumerate()
            .map(|(k, (z, (per, lse)))| Block {
                first: k * block,
                z,
                per,
                lse,
            })
            .collect();
        let sums = map_blocks(blocks, rows * v, |b| self.block(start, b));
        let mut sum = Sum::default();
        for block_sum in sums {
            sum = sum.then(block_sum?);
        }
        Ok(sum)
    }

    fn block(&self, start: usize, block: Block<'_, F>) -> Result<Sum> {
        let Block {
            first,
            mut z,
            per,
            lse,
        } = block;
        let at = start + first;
        let rows = at..at + z.nrows();
        let target = match self.token_weights {
            Some(t) => ClassTarget::WeightedLabels {
                labels: self.labels.rows(rows.clone()),
                weights: t.slice_move(s![rows]),
            },
            None => ClassTarget::Labels(self.labels.rows(rows)),
        };
        let (totals, logits) = if self.want_grad {
            let logits = z.to_owned();
            let totals = self.ce.compute(Call {
                input: logits.view(),
                target,
                grad: Some(z.view_mut()),
                per,
            })?;
            (totals, CowArray::from(logits))
        } else {
            let totals = self.ce.compute(Call {
                input: z.view(),
                target,
                grad: None,
                per,
            })?;
            (totals, CowArray::from(z.view()))
        };
        if !totals.sum.total.is_finite() && LinearAndLabels::all_finite(&self.input) {
            // Finite inputs whose logits leave F: an overflow of the
            // logits, not a loss of inf or NaN.
            return Err(logits_overflow(self.input, at, logits.view()));
        }
        if let Some(lse) = lse {
            lanes_lse(logits.view(), self.ce.softcap(), lse);
        }
        Ok(totals.sum.shifted(first))
    }
}

impl<F: Float> Compute<F> for LinearCrossEntropy<F> {
    type Sig = LinearAndLabels;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        self.compute_with(call, None)
    }
}

impl<F: Float> LinearCrossEntropy<F> {
    /// The fused value and gradients, as
    /// [`forward_backward_into`](crate::Differentiable::forward_backward_into),
    /// and each token's log-sum-exp `lse_i = logsumexp_c z_ic` of its
    /// logits `z_i = W h_i + b` (capped under `softcap`, as the loss sees
    /// them) written into `lse`, `(N)`: the logits are never held, so this
    /// is the only time it can be had. It costs one more pass over each
    /// chunk's logits while they are in cache (a few percent of the call).
    ///
    /// # Errors
    /// Those of the fused call; `lse` not `(N)` ([`Error::ShapeMismatch`]
    /// naming `lse`).
    ///
    /// ```
    /// use classloss::{Differentiable, LinearCrossEntropy, LinearInput};
    /// use ndarray::{Array1, array};
    ///
    /// let hidden = array![[1.0_f64, 2.0], [0.0, 1.0]];
    /// let weight = array![[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]];
    /// let input = LinearInput { hidden: hidden.view(), weight: weight.view(), bias: None };
    /// let head = LinearCrossEntropy::new();
    /// let mut grad = head.zeros_grad(input);
    /// let mut lse = Array1::zeros(2);
    /// head.forward_backward_lse_into(input, &array![0_i64, 1], &mut grad, &mut lse)?;
    /// // Token 0's logits are [1, 2, 0].
    /// let want = (1f64.exp() + 2f64.exp() + 1.0).ln();
    /// assert!((lse[0] - want).abs() < 1e-15);
    /// # Ok::<(), classloss::Error>(())
    /// ```
    pub fn forward_backward_lse_into<'i, 't, 'g, 'l>(
        &self,
        input: impl Into<LinearInput<'i, F>>,
        target: impl Into<ClassTarget<'t, F, Ix2>>,
        grad: impl Into<LinearGradMut<'g, F>>,
        lse: impl Into<ArrayViewMut1<'l, F>>,
    ) -> Result<F> {
        let mut lse = Some(lse.into());
        run_with(
            self,
            input.into(),
            target.into(),
            Some(grad.into()),
            None,
            |call| self.compute_with(call, lse.take()),
        )
    }

    /// The computation, with the tokens' log-sum-exps into `lse` if given.
    fn compute_with(
        &self,
        call: Call<'_, '_, '_, F, LinearAndLabels>,
        mut lse: Option<ArrayViewMut1<'_, F>>,
    ) -> Result<Totals> {
        let Call {
            input,
            target,
            mut grad,
            mut per,
        } = call;
        let v = input.weight.nrows();
        let checked = self.check_call(input, target, grad.as_ref(), v)?;
        if let Some(l) = &lse {
            expect_shape("lse", l.shape(), &[input.hidden.nrows()])?;
        }
        let Checked {
            labels,
            token_weights,
        } = checked;
        let LinearInput {
            hidden,
            weight,
            bias,
        } = input;
        let n = hidden.nrows();
        let (ce, divisor) = self.mean_plan(&labels, token_weights, per.is_some())?;
        let ce = &*ce;
        let scale: F = self.reduction.grad_scale(divisor);
        let rows = self.chunk_rows_for(v).min(n);
        let grad_views = grad.as_mut().map(|g| LinearGradViews {
            hidden: &mut g.hidden,
            weight: &mut g.weight,
            bias: g.bias.as_mut(),
        });
        let want_grad = grad_views.is_some();
        let linear = Linear {
            hidden,
            weight,
            bias,
        };
        let chunk_rows = ChunkRows {
            ce,
            input,
            labels: &labels,
            token_weights,
            want_grad,
        };
        let sum = linear_chunks(linear, rows, grad_views, scale, |start, z| {
            if let Some(cap) = ce.softcap() {
                repair_capped_logits(input, start, z, cap)?;
            }
            let range = s![start..start + z.nrows()];
            let per = per.as_mut().map(|p| p.slice_mut(range));
            let lse = lse.as_mut().map(|l| l.slice_mut(range));
            chunk_rows.loss(start, z, per, lse)
        })?;
        Ok(Totals {
            sum,
            divisor,
            what: "hidden",
        })
    }
}
