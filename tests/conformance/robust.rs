//! Runners for the noise-robust softmax losses and the class-balanced
//! weights.

use classloss::{
    Float, GeneralizedCrossEntropy, HardBootstrapping, SoftBootstrapping, SymmetricCrossEntropy,
    class_balanced_weights,
};

use crate::case::{Case, Outcome};
use crate::reference::widen;
use crate::softmax::on_logits_and_labels;

pub fn generalized_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = GeneralizedCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "q", GeneralizedCrossEntropy::with_q)?;
    on_logits_and_labels(case, loss)
}

pub fn symmetric_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = SymmetricCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "alpha", SymmetricCrossEntropy::with_alpha)?;
    let loss = case.with_f64(loss, "beta", SymmetricCrossEntropy::with_beta)?;
    let loss = case.with_f64(loss, "log_zero", SymmetricCrossEntropy::with_log_zero)?;
    on_logits_and_labels(case, loss)
}

pub fn soft_bootstrapping<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = SoftBootstrapping::<F>::new().with_reduction(case.reduction()?);
    on_logits_and_labels(
        case,
        case.with_f64(loss, "beta", SoftBootstrapping::with_beta)?,
    )
}

pub fn hard_bootstrapping<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = HardBootstrapping::<F>::new().with_reduction(case.reduction()?);
    on_logits_and_labels(
        case,
        case.with_f64(loss, "beta", HardBootstrapping::with_beta)?,
    )
}

pub fn class_balanced_weights_case<F: Float>(case: &Case) -> Result<Outcome, String> {
    let beta = case
        .opt_f64("beta")?
        .ok_or("option beta: required for class_balanced_weights")?;
    case.no_unknown_options()?;
    let counts = case.target_labels("samples_per_class")?;
    let counts: Vec<usize> = counts.iter().copied().collect();
    let weights = class_balanced_weights::<F>(&counts, beta).map_err(|e| e.to_string())?;
    Ok(Outcome {
        extra: vec![("weights".to_string(), widen(&weights.into_dyn()))],
        ..Outcome::default()
    })
}
