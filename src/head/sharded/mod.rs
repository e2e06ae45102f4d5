//! The fused heads with their classes split across processes (Megatron's
//! vocabulary-parallel cross-entropy, insightface's model-parallel Partial
//! FC): each process holds a shard of the weight's rows, the hidden states
//! and labels are the same on every process, and the softmax is completed
//! with a few all-reduces per chunk of tokens.
//!
//! [`ClassShard`] says which classes a process holds; [`ClassSharded`]
//! wraps a head with a [`Collective`] and a shard. Before any other
//! collective, every call exchanges one small table ([`agree`]) so that
//! the processes check each other (the shards tile the classes, the
//! replicated inputs match) and fail together.

mod angular_margin;
mod linear_cross_entropy;
mod partial_fc;

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::distributed::{Collective, ReduceOp, all_reduce_floats};
use crate::engine::parallel::map_blocks;
use crate::engine::softmax_rows::with_lane_mut;
use crate::{Error, Float, Result};

/// The classes one process holds: rows `offset..offset + len` of the full
/// `(classes, D)` classifier weight. Labels stay global (`0..classes`).
///
/// The shards of a group's processes must tile `0..classes` without gaps
/// or overlap, in any order of ranks; a shard may be empty.
///
/// ```
/// use classloss::distributed::ClassShard;
///
/// // 10 classes over 3 processes: 4, 3 and 3 rows.
/// let shards: Vec<_> = (0..3).map(|r| ClassShard::even(10, r, 3).unwrap()).collect();
/// assert_eq!(shards[0].range(), 0..4);
/// assert_eq!(shards[1].range(), 4..7);
/// assert_eq!(shards[2].range(), 7..10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassShard {
    offset: usize,
    len: usize,
    classes: usize,
}

impl ClassShard {
    /// The shard of rows `offset..offset + len` out of `classes >= 1`.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for `classes == 0` or a range past
    /// `classes`.
    pub fn new(offset: usize, len: usize, classes: usize) -> Result<Self> {
        if classes == 0 {
            return Err(Error::InvalidOption {
                name: "classes",
                value: classes.to_string(),
                expected: "an integer >= 1",
            });
        }
        if offset.checked_add(len).is_none_or(|end| end > classes) {
            return Err(Error::InvalidOption {
                name: "shard",
                value: format!("{offset}..{}", offset.saturating_add(len)),
                expected: "a range of rows within 0..classes",
            });
        }
        Ok(Self {
            offset,
            len,
            classes,
        })
    }

    /// Rank `rank`'s shard of `classes` split over `processes` as evenly as
    /// it goes: the first `classes % processes` ranks hold one row more,
    /// in rank order.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for `classes == 0`, `processes == 0`, or
    /// `rank >= processes`.
    pub fn even(classes: usize, rank: usize, processes: usize) -> Result<Self> {
        if processes == 0 || rank >= processes {
            return Err(Error::InvalidOption {
                name: "rank",
                value: format!("{rank} of {processes} processes"),
                expected: "a rank in 0..processes, processes >= 1",
            });
        }
        let (base, extra) = (classes / processes, classes % processes);
        let offset = rank * base + rank.min(extra);
        Self::new(offset, base + usize::from(rank < extra), classes)
    }

    /// The global index of this shard's first class.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The number of classes (weight rows) this shard holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether this shard holds no class.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of classes of the whole head.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The global classes this shard holds.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }

    /// The local row of global class `y`, if this shard holds it.
    #[inline]
    pub(crate) fn local(&self, y: usize) -> Option<usize> {
        y.checked_sub(self.offset).filter(|&c| c < self.len)
    }
}

/// A fused head whose classes are split across the processes of a
/// [`Collective`], each holding one [`ClassShard`] of the weight: for
/// class counts whose weight does not fit one process (10^6-10^7
/// identities, very large vocabularies), as Megatron's vocabulary-parallel
/// cross-entropy and insightface's model-parallel Partial FC split them.
///
/// Implemented for [`LinearCrossEntropy`](crate::LinearCrossEntropy),
/// with all its options, for [`AngularMarginHead`](crate::AngularMarginHead)
/// (ArcFace, CosFace, the combined margin), and for Partial FC on the
/// latter, `ClassSharded<OnSampledClasses<AngularMarginHead<_>>, _>`, each
/// process on the classes it drew from its shard
/// ([`PartialFc::sample_shard`](crate::PartialFc::sample_shard)).
///
/// # Formula
/// The whole head's, computed from the shards' parts. For token `i` and
/// shard `p`, `z_p = W_p h_i + b_p`; then
/// ```text
/// m_i   = max_p max_c z_pc                                  all-reduce (max)
/// S_i   = sum_p sum_c exp(z_pc - m_i)                       all-reduce (sum), with:
/// z_y   = sum_p [y_i in shard p] z_p,y                      the target's logit
/// A_i   = sum_p sum_c w_c (z_pc - m_i)                      (label smoothing only)
/// lse_i = m_i + ln S_i,  nll_y = lse_i - z_y,  sum_c w_c nll_c = W ln S_i - A_i
/// ```
/// and `l_i` is [`LinearCrossEntropy`](crate::LinearCrossEntropy)'s value
/// of these (class and token weights, smoothing, z-loss, soft cap). Each
/// shard writes its columns of `G = dL/dZ` from `exp(z_pc - m_i) / S_i`,
/// so `dW_p = G_p^T H` and `db_p` are its own, and `dH = sum_p G_p W_p` is
/// all-reduced. The result is the single-process head's on the whole
/// weight, to float rounding (tests: every option, 1-3 processes, `f64`
/// to `1e-12`, `f32` to `1e-5`).
///
/// # Shapes
/// - input: [`LinearInput`](crate::LinearInput) with `hidden` `(N, D)`, the
///   same on every process, and this shard's `weight` `(len, D)` and
///   `bias` `(len)`; labels `(N)`, global (`0..classes`), the same on
///   every process; per-token weights as the head's.
/// - value and per-sample values `(N)`: the whole head's, the same bits
///   on every process.
/// - gradient: [`LinearGrad`](crate::LinearGrad) with `hidden` `(N, D)`
///   (the whole head's, on every process) and this shard's `weight`
///   `(len, D)` and `bias` `(len)`.
/// - `Mean` divides by what the head's divides by: the sum of `w_{y_i}`
///   (times the token weights) over the tokens not ignored, from the
///   labels every process holds. Class weights are given for all
///   `classes` classes, on every process.
///
/// # Communication, per call
/// One all-reduce of `9 P` `f64` first (each process's check, shard,
/// shapes and a fingerprint of its replicated inputs); per chunk of `T`
/// tokens, one of `T + P` values of `F` (the maxima, and a failure flag per
/// process) and one of `3 T` `f64`;
/// at the end one of `N D` values of `F` (`dH`, with the gradient). In
/// all, about `N (s + 24) + s N D` bytes for `s = size_of::<F>()`:
/// `4 N (D + 7)` in `f32`, 8.5 MB at `N = 4,096`, `D = 512`, whatever
/// the class count, which a ring all-reduce sends and receives about
/// `2 (P - 1) / P` times per process. Memory per process: the shard's
/// weight and gradient, `2 s D len`, and the head's chunk buffer (48 MiB
/// by default, sized from the largest shard so that every process runs the
/// same chunks).
///
/// # Errors
/// Every process reaches the same verdict from the first all-reduce, so
/// none waits on a collective the others skip:
/// - a process whose own input is invalid returns its error (the head's
///   errors, and `weight` not `(shard.len(), D)`), the others
///   [`Error::PeerFailed`];
/// - shards that do not tile `0..classes`, hidden states of another shape,
///   a gradient asked for on some processes only, or replicated inputs
///   (hidden states, labels, token weights, class weights, options) that
///   differ: [`Error::GroupMismatch`] on every process;
/// - finite inputs whose logits pass `F` on one shard: that process's
///   [`Error::Overflow`], the others `PeerFailed`; a NaN or infinite input
///   on one process: that process gets the NaN or infinity (as the head
///   alone), the others `PeerFailed`.
///
/// # Examples
/// ```
/// use classloss::distributed::{ClassShard, ClassSharded, SingleProcess};
/// use classloss::{Differentiable, LinearCrossEntropy, LinearInput, Loss};
/// use ndarray::{array, s};
///
/// // One process holding every class: the head itself. With `Mpi`
/// // (feature `mpi`), rank r passes `ClassShard::even(V, r, P)`'s rows.
/// let hidden = array![[1.0_f64, 2.0], [0.0, 1.0]];
/// let weight = array![[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]];
/// let labels = array![0_i64, 2];
/// let head = LinearCrossEntropy::new().with_label_smoothing(0.1)?;
/// let shard = ClassShard::even(3, 0, 1)?;
/// let sharded = ClassSharded::new(head.clone(), SingleProcess, shard);
/// let input = LinearInput {
///     hidden: hidden.view(),
///     weight: weight.slice(s![shard.range(), ..]),
///     bias: None,
/// };
/// let (value, grad) = sharded.forward_backward(input, &labels)?;
/// let alone = head.forward(input, &labels)?;
/// assert!((value - alone).abs() < 1e-15);
/// assert_eq!(grad.weight.dim(), (3, 2));
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// `examples/sharded_head.rs` trains a 50,000-class head on 2 processes
/// and checks it against one.
#[derive(Clone, Debug)]
pub struct ClassSharded<H, C> {
    head: H,
    collective: C,
    shard: ClassShard,
}

impl<H, C: Collective> ClassSharded<H, C> {
    /// `head` over the processes of `collective`, this process holding
    /// `shard` (every process passes the same head options).
    pub fn new(head: H, collective: C, shard: ClassShard) -> Self {
        Self {
            head,
            collective,
            shard,
        }
    }

    /// The head each process runs on its shard.
    pub fn head(&self) -> &H {
        &self.head
    }

    /// The processes.
    pub fn collective(&self) -> &C {
        &self.collective
    }

    /// This process's classes.
    pub fn shard(&self) -> ClassShard {
        self.shard
    }
}

impl<H: crate::base::options::Options, C> crate::base::options::Options for ClassSharded<H, C> {
    fn reduction(&self) -> crate::Reduction {
        self.head.reduction()
    }
    fn set_reduction(&mut self, reduction: crate::Reduction) {
        self.head.set_reduction(reduction);
    }
}

/// What one process tells the others at the start of a sharded call.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    /// Its own input was rejected (it returns that error).
    pub failed: bool,
    pub shard: Option<ClassShard>,
    /// `(N, D)` of the hidden states.
    pub hidden: (usize, usize),
    /// Whether it asked for the gradient.
    pub grad: bool,
    /// Whether its inputs are all finite.
    pub finite: bool,
    /// A hash of what every process must pass alike (hidden states,
    /// labels, options), 52 bits so that an `f64` holds it exactly.
    pub fingerprint: u64,
}

const FIELDS: usize = 9;

impl Report {
    fn write(&self, slot: &mut [f64]) {
        let shard = self.shard.unwrap_or(ClassShard {
            offset: 0,
            len: 0,
            classes: 0,
        });
        let fields = [
            f64::from(u8::from(self.failed)),
            shard.offset as f64,
            shard.len as f64,
            shard.classes as f64,
            self.hidden.0 as f64,
            self.hidden.1 as f64,
            f64::from(u8::from(self.grad)),
            f64::from(u8::from(self.finite)),
            self.fingerprint as f64,
        ];
        slot.copy_from_slice(&fields);
    }

    fn read(slot: &[f64]) -> Self {
        let n = |k: usize| slot[k] as usize;
        Report {
            failed: slot[0] != 0.0,
            shard: Some(ClassShard {
                offset: n(1),
                len: n(2),
                classes: n(3),
            }),
            hidden: (n(4), n(5)),
            grad: slot[6] != 0.0,
            finite: slot[7] != 0.0,
            fingerprint: slot[8] as u64,
        }
    }
}

/// What the group agreed at the start of a call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Agreed {
    /// The largest shard's length (the chunk size is chosen from it, the
    /// same on every process).
    pub max_len: usize,
    /// How many processes have an input that is not finite.
    pub not_finite: usize,
}

impl Agreed {
    /// Another process's input is infinite or NaN: the whole head's value
    /// is, and that process reports it (as the head alone would); this
    /// one, whose input is `finite`, stops.
    pub(crate) fn peers_finite(
        &self,
        finite: bool,
        what: &'static str,
        processes: usize,
    ) -> Result<()> {
        if self.not_finite > 0 && finite {
            return Err(Error::PeerFailed {
                what,
                failed: self.not_finite,
                processes,
            });
        }
        Ok(())
    }
}

/// Sums `d hidden` over the processes (each holds its shard's part), with
/// one more entry: whether this process failed after its last collective
/// (`failed_here`: its own error is its to return). A process that did
/// not fail gets [`Error::PeerFailed`] where another did.
pub(crate) fn sum_hidden_grad<F: Float, C: Collective>(
    collective: &C,
    what: &'static str,
    dh: &mut ArrayViewMut2<'_, F>,
    failed_here: bool,
) -> Result<()> {
    let mut flat: Vec<F> = dh.iter().copied().collect();
    flat.push(if failed_here { F::one() } else { F::zero() });
    all_reduce_floats(collective, ReduceOp::Sum, &mut flat);
    let failed = flat.pop().map_or(0, |f| f.as_f64() as usize);
    for (h, v) in dh.iter_mut().zip(flat) {
        *h = v;
    }
    if failed > 0 && !failed_here {
        return Err(Error::PeerFailed {
            what,
            failed,
            processes: collective.size(),
        });
    }
    Ok(())
}

/// Bytes of a chunk's rows per block of the sharded heads' row passes: a
/// block's rows stay in cache, and blocks are the threads' unit of work.
const BLOCK_BYTES: usize = 256 << 10;

/// Rows per block for rows of `v` values of `F`.
fn block_rows<F>(v: usize) -> usize {
    (BLOCK_BYTES / (v.max(1) * std::mem::size_of::<F>())).max(1)
}

/// `row(scratch, r, x)` on every row `r` of `z` (a slice: a copy where the
/// row is not contiguous), blocks of rows in parallel, each block with its
/// own `scratch`; the results in row order.
pub(crate) fn map_rows<F: Float, S: Default, R: Send>(
    z: ArrayView2<'_, F>,
    row: impl Fn(&mut S, usize, &[F]) -> R + Sync,
) -> Vec<R> {
    let block = block_rows::<F>(z.ncols());
    let blocks: Vec<_> = z.axis_chunks_iter(Axis(0), block).enumerate().collect();
    let results = map_blocks(blocks, z.len(), |(b, zb)| {
        let (mut scratch, mut lane) = (S::default(), Vec::new());
        let rows = zb.outer_iter().enumerate();
        rows.map(|(k, x)| {
            let x = match x.as_slice() {
                Some(x) => x,
                None => {
                    lane.clear();
                    lane.extend(x.iter().copied());
                    &lane[..]
                }
            };
            row(&mut scratch, b * block + k, x)
        })
        .collect::<Vec<R>>()
    });
    results.into_iter().flatten().collect()
}

/// [`map_rows`] on rows to write: each row a mutable slice (a copy written
/// back where the row is not contiguous).
pub(crate) fn map_rows_mut<F: Float, S: Default, R: Send>(
    z: &mut ArrayViewMut2<'_, F>,
    row: impl Fn(&mut S, usize, &mut [F]) -> R + Sync,
) -> Vec<R> {
    let block = block_rows::<F>(z.ncols());
    let elements = z.len();
    let blocks: Vec<_> = z.axis_chunks_iter_mut(Axis(0), block).enumerate().collect();
    let results = map_blocks(blocks, elements, |(b, mut zb)| {
        let (mut scratch, mut lane) = (S::default(), Vec::new());
        let rows = zb.outer_iter_mut().enumerate();
        rows.map(|(k, x)| with_lane_mut(x, &mut lane, |x| row(&mut scratch, b * block + k, x)))
            .collect::<Vec<R>>()
    });
    results.into_iter().flatten().collect()
}

/// The exchange at the start of a sharded call: one all-reduce of
/// `9 P` `f64`, every process's [`Report`] in its own slot, so that every
/// process reaches the same verdict from the same table. `local` is this
/// process's own check; its error comes back first.
pub(crate) fn agree<C: Collective, T>(
    collective: &C,
    what: &'static str,
    local: &Result<T>,
    report: Report,
) -> Result<Agreed> {
    let (p, rank) = (collective.size(), collective.rank());
    let mut table = vec![0.0; FIELDS * p];
    let report = if local.is_err() {
        Report {
            failed: true,
            ..Report::default()
        }
    } else {
        report
    };
    report.write(&mut table[FIELDS * rank..FIELDS * (rank + 1)]);
    collective.all_reduce_f64(ReduceOp::Sum, &mut table);
    if let Err(e) = local {
        return Err(e.clone());
    }
    let reports: Vec<Report> = table.chunks(FIELDS).map(Report::read).collect();
    let failed = reports.iter().filter(|r| r.failed).count();
    if failed > 0 {
        return Err(Error::PeerFailed {
            what,
            failed,
            processes: p,
        });
    }
    let by_rank = |f: &dyn Fn(&Report) -> String| -> String {
        let items: Vec<String> = reports.iter().map(f).collect();
        format!("[{}] by rank", items.join(", "))
    };
    let shards: Vec<ClassShard> = reports.iter().filter_map(|r| r.shard).collect();
    let classes = shards[rank].classes;
    let mut sorted = shards.clone();
    sorted.sort_by_key(|s| (s.offset, s.len));
    let mut next = 0;
    let tiles = sorted.iter().all(|s| {
        let ok = s.classes == classes && s.offset == next;
        next = s.offset + s.len;
        ok
    }) && next == classes;
    if !tiles {
        return Err(Error::GroupMismatch {
            what: "shard",
            expected: format!("shards that tile the classes 0..{classes} without gaps or overlap"),
            actual: by_rank(&|r| {
                let s = r.shard.unwrap_or(shards[0]);
                format!("{}..{} of {}", s.offset, s.offset + s.len, s.classes)
            }),
        });
    }
    if reports.iter().any(|r| r.hidden != reports[0].hidden) {
        return Err(Error::GroupMismatch {
            what: "hidden",
            expected: "the same shape (N, D) on every process".to_string(),
            actual: by_rank(&|r| format!("{:?}", r.hidden)),
        });
    }
    if reports.iter().any(|r| r.grad != reports[0].grad) {
        return Err(Error::GroupMismatch {
            what: "grad",
            expected: "a gradient asked for on every process or on none".to_string(),
            actual: by_rank(&|r| r.grad.to_string()),
        });
    }
    if reports
        .iter()
        .any(|r| r.fingerprint != reports[0].fingerprint)
    {
        return Err(Error::GroupMismatch {
            what: "replicated inputs",
            expected: "the same hidden states, labels, token weights and options on every process"
                .to_string(),
            actual: by_rank(&|r| format!("{:013x}", r.fingerprint)),
        });
    }
    Ok(Agreed {
        max_len: shards.iter().map(|s| s.len).max().unwrap_or(0),
        not_finite: reports.iter().filter(|r| !r.finite).count(),
    })
}

/// A 52-bit hash of the values every process must pass alike: not a
/// cryptographic one, a check that catches a process fed another batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    #[inline]
    pub fn word(&mut self, w: u64) {
        let h = (self.0 ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }

    pub fn floats<F: Float>(&mut self, values: impl IntoIterator<Item = F>) {
        for v in values {
            self.word(v.as_f64().to_bits());
        }
    }

    pub fn finish(self) -> u64 {
        self.0 >> 12
    }
}
