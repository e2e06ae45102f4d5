//! Training with noisy labels: the softmax losses that tolerate them
//! (generalized and symmetric cross-entropy, soft and hard bootstrapping)
//! and Co-teaching's small-loss selection.

mod co_teaching;
mod generalized_ce;
mod hard_bootstrapping;
mod soft_bootstrapping;
mod symmetric_ce;

pub use co_teaching::{CoTeachingSchedule, small_loss_indices};
pub use generalized_ce::GeneralizedCrossEntropy;
pub use hard_bootstrapping::HardBootstrapping;
pub use soft_bootstrapping::SoftBootstrapping;
pub use symmetric_ce::SymmetricCrossEntropy;
