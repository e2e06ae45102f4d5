//! Runners for the noise-robust softmax losses and the class-balanced
//! weights.

use classloss::{
    Differentiable, Float, GeneralizedCrossEntropy, HardBootstrapping, Loss, Reduction,
    SoftBootstrapping, SymmetricCrossEntropy, class_balanced_weights,
};

use crate::case::{Case, Outcome};
use crate::reference::widen;
use crate::single_input_outcome;
use crate::softmax::{labels_1d, logits_2d};

pub fn generalized_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = GeneralizedCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    if let Some(q) = case.opt_f64("q")? {
        loss = loss.with_q(q).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn symmetric_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = SymmetricCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    if let Some(alpha) = case.opt_f64("alpha")? {
        loss = loss.with_alpha(alpha).map_err(|e| e.to_string())?;
    }
    if let Some(beta) = case.opt_f64("beta")? {
        loss = loss.with_beta(beta).map_err(|e| e.to_string())?;
    }
    if let Some(a) = case.opt_f64("log_zero")? {
        loss = loss.with_log_zero(a).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn soft_bootstrapping<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = SoftBootstrapping::<F>::new().with_reduction(case.reduction()?);
    if let Some(beta) = case.opt_f64("beta")? {
        loss = loss.with_beta(beta).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn hard_bootstrapping<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = HardBootstrapping::<F>::new().with_reduction(case.reduction()?);
    if let Some(beta) = case.opt_f64("beta")? {
        loss = loss.with_beta(beta).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
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
