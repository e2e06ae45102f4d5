//! Evaluation: the 0-1 and Hamming losses (measures without gradients),
//! and the metrics to report beside them: F1 (per class, macro, micro),
//! ROC AUC and average precision one class against the rest, and the
//! thresholds that maximize F1 on held-out scores.

mod f1;
mod hamming;
mod per_class;
mod ranking;
mod sweep;
mod target;
mod thresholds;
mod zero_one;

pub use f1::{F1Scores, ZeroDivision, argmax_predictions, multiclass_f1, multilabel_f1};
pub use hamming::Hamming;
pub use per_class::PerClassMetric;
pub use ranking::{average_precision, roc_auc};
pub use target::EvalTarget;
pub use thresholds::{ThresholdMode, Thresholds, multilabel_predictions, pick_f1_thresholds};
pub use zero_one::ZeroOne;
