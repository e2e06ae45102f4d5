//! LOCAL STAND-INS, to be deleted when branch `tools` lands on main: the
//! crate's `classloss::{small_loss_indices, CoTeachingSchedule}` (Han et
//! al. 2018), with the same signatures, so that the switch is an import.

/// The indices, ascending, of the `round((1 - forget_rate) N)` smallest
/// losses (equal losses keep the lower index).
pub fn small_loss_indices(
    losses: &ndarray::Array1<f32>,
    forget_rate: f64,
) -> classloss::Result<Vec<usize>> {
    let n = losses.len();
    let keep = (((1.0 - forget_rate) * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]));
    order.truncate(keep);
    order.sort_unstable();
    Ok(order)
}

/// Forget rate `tau * min(epoch / ramp_epochs, 1)`.
#[derive(Clone, Copy, Debug)]
pub struct CoTeachingSchedule {
    tau: f64,
    ramp_epochs: usize,
}

impl CoTeachingSchedule {
    pub fn new(tau: f64) -> classloss::Result<Self> {
        Ok(CoTeachingSchedule {
            tau,
            ramp_epochs: 10,
        })
    }
    pub fn with_ramp_epochs(self, ramp_epochs: usize) -> classloss::Result<Self> {
        Ok(CoTeachingSchedule {
            ramp_epochs,
            ..self
        })
    }
    pub fn forget_rate(&self, epoch: usize) -> f64 {
        self.tau * (epoch as f64 / self.ramp_epochs as f64).min(1.0)
    }
}
