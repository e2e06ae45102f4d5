//! Runners for the margin family.

use classloss::{Differentiable, Exponential, Float, Hinge, Loss, MultiMargin, Reduction};
use ndarray::{Array1, Ix1, Ix2};

use crate::case::{Case, Outcome};
use crate::reference::{cast, widen};

/// The case's `scores` and `labels` (as floats), both `(N)`.
fn scores_and_signs<F: Float>(case: &Case) -> Result<(Array1<F>, Array1<F>), String> {
    let scores = cast::<F>(&case.input("scores")?)
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("scores: {e}"))?;
    let labels = cast::<F>(&case.target_f64("labels")?)
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("labels: {e}"))?;
    Ok((scores, labels))
}

pub fn hinge<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Hinge::<F>::new().with_reduction(case.reduction()?);
    if let Some(m) = case.opt_f64("margin")? {
        loss = loss.with_margin(m).map_err(|e| e.to_string())?;
    }
    if let Some(sq) = case.opt_bool("squared")? {
        loss = loss.with_squared(sq);
    }
    case.no_unknown_options()?;
    let (scores, labels) = scores_and_signs::<F>(case)?;
    Ok(crate::single_input_outcome!(
        loss,
        scores.view(),
        labels.view(),
        "scores"
    ))
}

pub fn multi_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = MultiMargin::<F>::new().with_reduction(case.reduction()?);
    if let Some(p) = case.opt_usize("p")? {
        let p = u32::try_from(p).map_err(|e| format!("option p: {e}"))?;
        loss = loss.with_p(p).map_err(|e| e.to_string())?;
    }
    if let Some(m) = case.opt_f64("margin")? {
        loss = loss.with_margin(m).map_err(|e| e.to_string())?;
    }
    if let Some(w) = case.opt_array("weight")? {
        loss = loss
            .with_weight(Array1::from_iter(w.iter().map(|&v| F::lit(v))))
            .map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("logits: {e}"))?;
    let labels = case
        .target_labels("labels")?
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("labels: {e}"))?;
    Ok(crate::single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn exponential<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Exponential::<F>::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let (scores, labels) = scores_and_signs::<F>(case)?;
    Ok(crate::single_input_outcome!(
        loss,
        scores.view(),
        labels.view(),
        "scores"
    ))
}
