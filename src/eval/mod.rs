//! Evaluation losses: measures to report, without gradients.

mod zero_one;

pub use zero_one::ZeroOne;
