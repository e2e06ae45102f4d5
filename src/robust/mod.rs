//! Softmax losses that tolerate noisy labels: generalized and symmetric
//! cross-entropy, soft and hard bootstrapping.

mod generalized_ce;
mod hard_bootstrapping;
mod soft_bootstrapping;
mod symmetric_ce;

pub use generalized_ce::GeneralizedCrossEntropy;
pub use hard_bootstrapping::HardBootstrapping;
pub use soft_bootstrapping::SoftBootstrapping;
pub use symmetric_ce::SymmetricCrossEntropy;
