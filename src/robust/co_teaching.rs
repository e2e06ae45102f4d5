//! Co-teaching (Han et al. 2018): the small-loss selection and the
//! schedule of its forget rate.

use std::cmp::Ordering;

use ndarray::ArrayView1;

use crate::base::validate::{check_input_values, check_option, expect_nonempty, unit_interval};
use crate::{Float, Result};

/// The indices of the samples Co-teaching keeps: the
/// `round((1 - forget_rate) N)` samples with the smallest losses, in
/// ascending index order.
///
/// With noisy labels, a network learns the clean samples first, so early
/// in training the samples of small loss are mostly clean. Co-teaching
/// trains two networks and lets each pick the small-loss samples its peer
/// learns from, so that the errors of one selection are not fed back to
/// the network that made them. Use it with the per-sample losses of any
/// loss ([`crate::Loss::per_sample`], `Reduction::None`) and the forget
/// rate of [`CoTeachingSchedule`].
///
/// # Formula
/// ```text
/// keep = round((1 - forget_rate) N)            (half away from zero)
/// kept = the keep smallest l_i; equal losses keep the lower index first
/// ```
/// The paper's Algorithm 1 keeps at least `R(T) N` samples (a ceiling) and
/// its code truncates (`int(remember_rate * N)`); rounding is within one
/// sample of both and immune to the representation error that makes the
/// truncation of `(1 - 0.9) * 10 = 0.9999999999999998` keep no sample.
/// `forget_rate = 1` keeps none, `0` keeps every sample.
///
/// # Shapes
/// losses `(N)`, `N >= 1`; the result: `keep` indices into it, ascending
/// (ready for `select(Axis(0), &kept)` on the batch).
///
/// # Errors
/// An empty `losses`, a NaN loss ([`crate::Error::InvalidInput`] naming
/// `losses[i]`; an infinite loss is ranked as the largest or smallest), a
/// `forget_rate` outside `[0, 1]` (or NaN).
///
/// # Examples
/// Two networks, A and B, on one batch: each network's small-loss samples
/// are the batch of its peer.
/// ```
/// use classloss::{small_loss_indices, CoTeachingSchedule, CrossEntropy, Differentiable, Loss, Reduction};
/// use ndarray::{array, Array2, Axis};
///
/// // The logits of two networks on a batch of 4; sample 3's label is wrong
/// // (both networks score class 1 high for it).
/// let logits_a = array![[2.0_f64, 0.0], [0.0, 1.5], [1.0, 0.0], [-1.0, 2.0]];
/// let logits_b = array![[1.5_f64, 0.5], [0.5, 2.0], [0.5, 0.0], [-2.0, 1.0]];
/// let labels = array![0_i64, 1, 0, 0];
///
/// let schedule = CoTeachingSchedule::new(0.5)?; // tau: the noise rate; T_k = 10
/// let forget_rate = schedule.forget_rate(5); // 0.5 * 5 / 10
/// assert_eq!(forget_rate, 0.25);
///
/// let per_sample = CrossEntropy::new().with_reduction(Reduction::None);
/// let losses_a = per_sample.per_sample(&logits_a, &labels)?;
/// let losses_b = per_sample.per_sample(&logits_b, &labels)?;
/// // A's small-loss samples train B, and B's train A: round(0.75 * 4) = 3
/// // kept, sample 3 forgotten by both.
/// let for_b = small_loss_indices(&losses_a, forget_rate)?;
/// let for_a = small_loss_indices(&losses_b, forget_rate)?;
/// assert_eq!((for_b.clone(), for_a.clone()), (vec![0, 1, 2], vec![0, 1, 2]));
///
/// // B's step: the fused gradient on the rows A picked.
/// let rows_b = logits_b.select(Axis(0), &for_b);
/// let mut grad_b = Array2::zeros(rows_b.raw_dim());
/// let loss_b = CrossEntropy::new().forward_backward_into(&rows_b, &labels.select(Axis(0), &for_b), &mut grad_b)?;
/// let kept_mean = for_b.iter().map(|&i| losses_b[i]).sum::<f64>() / 3.0;
/// assert!((loss_b - kept_mean).abs() < 1e-12);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// B. Han, Q. Yao, X. Yu, G. Niu, M. Xu, W. Hu, I. Tsang and M. Sugiyama,
/// "Co-teaching: Robust training of deep neural networks with extremely
/// noisy labels", NeurIPS 2018, <https://arxiv.org/abs/1804.06872>
/// (Algorithm 1; code: <https://github.com/bhanML/Co-teaching>).
pub fn small_loss_indices<'a, F: Float>(
    losses: impl Into<ArrayView1<'a, F>>,
    forget_rate: f64,
) -> Result<Vec<usize>> {
    let losses = losses.into();
    unit_interval("forget_rate", forget_rate)?;
    expect_nonempty("losses", losses.shape(), 0, "sample")?;
    check_input_values("losses", &losses, "a loss that is not NaN", |v| !v.is_nan())?;
    let n = losses.len();
    let keep = (((1.0 - forget_rate) * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    // A stable sort: equal losses stay in index order.
    order.sort_by(|&a, &b| losses[a].partial_cmp(&losses[b]).unwrap_or(Ordering::Equal));
    order.truncate(keep);
    order.sort_unstable();
    Ok(order)
}

/// Co-teaching's forget rate by epoch: a linear ramp from 0 to `tau` over
/// the first `T_k` epochs, then `tau`.
///
/// Forgetting nothing at first lets both networks learn the easy, mostly
/// clean patterns before they start to memorize the noise; `tau` should be
/// the noise rate (estimated, if unknown).
///
/// # Formula
/// ```text
/// forget_rate(epoch) = tau min(epoch / T_k, 1)     (the paper's R(T) = 1 - forget_rate(T))
/// ```
/// The paper's Algorithm 1 counts epochs from 1 (`T = 1` forgets
/// `tau / T_k`); its code ramps by `linspace(0, tau, T_k)` over epochs
/// counted from 0, reaching `tau` at epoch `T_k - 1`. Pass the 1-based
/// epoch for Algorithm 1; pass the epochs completed (0 first) for a ramp
/// that starts at 0, as the code's, and reaches `tau` at `T_k`.
///
/// # Options
/// - `tau`: in `[0, 1]`, at construction.
/// - `ramp_epochs`: `T_k >= 1` (default 10, the paper's).
///
/// # Examples
/// ```
/// use classloss::CoTeachingSchedule;
///
/// let schedule = CoTeachingSchedule::new(0.4)?;
/// assert_eq!(schedule.forget_rate(0), 0.0);
/// assert!((schedule.forget_rate(5) - 0.2).abs() < 1e-15);
/// assert_eq!(schedule.forget_rate(10), 0.4);
/// assert_eq!(schedule.forget_rate(200), 0.4);
/// let fast = schedule.with_ramp_epochs(2)?;
/// assert_eq!(fast.forget_rate(1), 0.2);
/// # Ok::<(), classloss::Error>(())
/// ```
///
/// # References
/// B. Han et al., "Co-teaching", NeurIPS 2018,
/// <https://arxiv.org/abs/1804.06872>, section 3 and Algorithm 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoTeachingSchedule {
    tau: f64,
    ramp_epochs: usize,
}

impl CoTeachingSchedule {
    /// A schedule that reaches `tau` (in `[0, 1]`: the noise rate) after
    /// the paper's `T_k = 10` epochs.
    pub fn new(tau: f64) -> Result<Self> {
        unit_interval("tau", tau)?;
        Ok(CoTeachingSchedule {
            tau,
            ramp_epochs: 10,
        })
    }

    /// Sets `T_k`, the epochs of the ramp, at least 1 (default 10).
    pub fn with_ramp_epochs(mut self, ramp_epochs: usize) -> Result<Self> {
        check_option(
            "ramp_epochs",
            ramp_epochs as f64,
            "at least 1 epoch",
            ramp_epochs >= 1,
        )?;
        self.ramp_epochs = ramp_epochs;
        Ok(self)
    }

    /// The final forget rate, `tau`.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// `T_k`, the epochs of the ramp.
    pub fn ramp_epochs(&self) -> usize {
        self.ramp_epochs
    }

    /// `tau min(epoch / T_k, 1)`, in `[0, tau]`.
    pub fn forget_rate(&self, epoch: usize) -> f64 {
        if epoch >= self.ramp_epochs {
            self.tau
        } else {
            self.tau * epoch as f64 / self.ramp_epochs as f64
        }
    }
}
