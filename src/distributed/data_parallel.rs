//! Data parallelism: one loss over a global batch whose samples are split
//! across processes.

use ndarray::Array;

use crate::base::loss::{Call, Compute, Signature};
use crate::base::options::Options;
use crate::base::reduction::{Sum, Totals};
use crate::base::validate::{about_pow10, overflow};
use crate::numerics::times_pow2;
use crate::{Error, Float, Reduction, Result};

use super::collective::{Collective, ReduceOp};

/// Any loss of the crate over a batch split across the processes of a
/// [`Collective`]: each process passes its own samples, and the value and
/// gradients are those of the loss on the concatenated batch.
///
/// - `Mean`: the value is the global mean, `sum_p S_p / sum_p D_p`, over
///   every process's sum `S_p` and divisor `D_p` (the count of counted
///   samples, or for class weights the sum of the counted samples'
///   weights: the loss's own *Shapes* section says which). Every process
///   gets the same value. Each gradient is this process's part of the
///   gradient of the global mean, so that the processes' gradients
///   concatenated are the single-process gradient of the concatenated
///   batch (to float rounding); a replicated parameter's gradient is the
///   all-reduced sum of the processes' (the model's optimizer does that).
/// - `Sum`: the value is the global sum; the gradients are local, as they
///   are already the concatenated batch's.
/// - `None`: the per-sample values are local; nothing is communicated.
///
/// That holds for every loss whose samples' values depend on their own
/// sample only. The losses that couple a batch see each process's part as
/// a batch of its own: `OhemCrossEntropy` keeps the hardest of the local
/// samples, `NtXent` and `SupervisedContrastive` contrast within the local
/// samples. Their `DataParallel` mean is the mean over the processes' own
/// values, which is not the concatenated batch's loss.
///
/// Communication per call: one all-reduce of 3 `f64` (the sum, the
/// divisor, and a failure count), a second of 1 `f64` only when the global
/// sum passes `f64`. The local loss runs as it would alone, with its own
/// threads.
///
/// Every process of the group must make the same calls in the same order.
/// A process whose input is invalid returns its error, and the others an
/// [`Error::PeerFailed`], so that none waits on a collective the others
/// skip. A finite batch whose global value passes the float type is an
/// [`Error::Overflow`] on every process. An infinite or NaN input on one
/// process makes the global value infinite or NaN: that process returns
/// it, as the loss alone would, and the others (whose inputs are finite)
/// an [`Error::Overflow`].
///
/// ```
/// use classloss::distributed::{DataParallel, SingleProcess};
/// use classloss::{CrossEntropy, Differentiable, Loss};
/// use ndarray::array;
///
/// // On one process it is the loss itself; with `Mpi` (feature `mpi`)
/// // each process passes its own rows.
/// let loss = DataParallel::new(CrossEntropy::<f64>::new(), SingleProcess);
/// let logits = array![[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]];
/// let labels = array![0_i64, 2];
/// let alone = CrossEntropy::new().forward(logits.view(), &labels)?;
/// assert_eq!(loss.forward(logits.view(), &labels)?, alone);
/// # Ok::<(), classloss::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DataParallel<L, C> {
    loss: L,
    collective: C,
}

impl<L, C: Collective> DataParallel<L, C> {
    /// `loss` over the processes of `collective` (its reduction is the
    /// loss's own).
    pub fn new(loss: L, collective: C) -> Self {
        Self { loss, collective }
    }

    /// The loss each process runs on its samples.
    pub fn loss(&self) -> &L {
        &self.loss
    }

    /// The processes.
    pub fn collective(&self) -> &C {
        &self.collective
    }
}

impl<L: Options, C> Options for DataParallel<L, C> {
    fn reduction(&self) -> Reduction {
        self.loss.reduction()
    }
    fn set_reduction(&mut self, reduction: Reduction) {
        self.loss.set_reduction(reduction);
    }
}

const WHAT: &str = "DataParallel";

impl<F: Float, L: Compute<F> + Clone, C: Collective> Compute<F> for DataParallel<L, C> {
    type Sig = L::Sig;

    fn compute(&self, call: Call<'_, '_, '_, F, Self::Sig>) -> Result<Totals> {
        let reduction = self.loss.reduction();
        if reduction == Reduction::None {
            return self.loss.compute(call);
        }
        let Call {
            input,
            target,
            mut grad,
            per,
        } = call;
        let local = self.loss.compute(Call {
            input: input.clone(),
            target: target.clone(),
            grad: grad.as_mut().map(|g| L::Sig::reborrow(g)),
            per,
        });
        let mut global = match &local {
            Ok(t) => [t.sum.total, t.divisor, 0.0],
            Err(_) => [0.0, 0.0, 1.0],
        };
        self.collective.all_reduce_f64(ReduceOp::Sum, &mut global);
        let local = local?;
        let [total, divisor, failed] = global;
        if failed > 0.0 {
            return Err(Error::PeerFailed {
                what: WHAT,
                failed: failed as usize,
                processes: self.collective.size(),
            });
        }
        // `Sum`'s gradient is already the whole batch's; `Mean`'s is
        // rescaled to the global divisor.
        let mean = reduction == Reduction::Mean;
        if let Some(g) = grad.as_mut().filter(|_| mean) {
            if local.divisor > 0.0 {
                // The local mean's gradient, `grad S_p / D_p`, rescaled to
                // the global mean's.
                L::Sig::scale_grad(g, F::lit(local.divisor / divisor));
            } else if divisor > 0.0 {
                // The local mean's gradient is 0 (nothing counted here) but
                // the global mean's need not be (label smoothing reaches
                // classes of weight 0): the sum's gradient, scaled.
                let mut sum = self.loss.clone();
                sum.set_reduction(Reduction::Sum);
                sum.compute(Call {
                    input: input.clone(),
                    target: target.clone(),
                    grad: Some(L::Sig::reborrow(g)),
                    per: None,
                })?;
                L::Sig::scale_grad(g, F::lit(1.0 / divisor));
            }
        }
        if mean && total.is_infinite() && divisor > 0.0 {
            // Finite sums whose total passes f64 (every process sees the
            // same total, so all take this branch): their mean may fit.
            // The sums scaled by 2^-128 (exact), over the divisor, added.
            let scaled = if local.sum.total.is_finite() {
                times_pow2(local.sum.total, -128)
            } else {
                // This process's own sum passes f64: its values, each
                // scaled (as the single-process loss does).
                let mut values = Array::zeros(L::Sig::samples(&input));
                self.loss.compute(Call {
                    input,
                    target,
                    grad: None,
                    per: Some(values.view_mut()),
                })?;
                values.iter().map(|v| times_pow2(v.as_f64(), -128)).sum()
            };
            let mut mean = [scaled / divisor];
            self.collective.all_reduce_f64(ReduceOp::Sum, &mut mean);
            let log2 = mean[0].abs().log2() + 128.0;
            if log2 >= 1024.0 {
                // Beyond f64 even as a mean: the error here, on every
                // process alike (the single-process rule would compute
                // the values again, a collective some processes skip).
                return Err(overflow::<F>(
                    local.what,
                    Vec::new(),
                    "the mean of the per-sample losses",
                    about_pow10(log2 * std::f64::consts::LOG10_2),
                ));
            }
            return Ok(Totals {
                sum: Sum {
                    total: times_pow2(mean[0], 128),
                    ..local.sum
                },
                divisor: 1.0,
                what: local.what,
            });
        }
        Ok(Totals {
            sum: Sum { total, ..local.sum },
            divisor,
            what: local.what,
        })
    }
}
