//! Evaluation losses: measures to report, without gradients.

mod hamming;
mod zero_one;

pub use hamming::Hamming;
pub use zero_one::ZeroOne;
