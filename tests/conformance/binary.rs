//! Runners for the binary (sigmoid) family.

use classloss::{Bce, BceWithLogits, Differentiable, Float, Loss, Reduction, SigmoidFocal};
use ndarray::{Array1, IxDyn};

use crate::case::{Case, Outcome};
use crate::reference::{cast, widen};
use crate::single_input_outcome;

pub fn bce<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Bce::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_array("weight")? {
        loss = loss.with_weight(cast::<F>(&w)).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let probs = cast::<F>(&case.input("probs")?);
    let targets = cast::<F>(&case.target_f64("targets")?);
    // bce/60 (exact 0/1 probabilities) has no expected gradient; the
    // outcome's gradient is then simply not compared.
    Ok(single_input_outcome!(
        loss,
        probs.view(),
        targets.view(),
        "probs"
    ))
}

pub fn bce_with_logits<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = BceWithLogits::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_array("weight")? {
        loss = loss.with_weight(cast::<F>(&w)).map_err(|e| e.to_string())?;
    }
    if let Some(pw) = case.opt_array("pos_weight")? {
        loss = loss
            .with_pos_weight(Array1::from_iter(pw.iter().map(|&v| F::lit(v))))
            .map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?);
    let targets = cast::<F>(&case.target_f64("targets")?);
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        targets.view(),
        "logits"
    ))
}

pub fn sigmoid_focal<F: Float>(case: &Case) -> Result<Outcome, String> {
    // `alpha: null` means no weighting; an absent `alpha` is torchvision's
    // default, which is also ours.
    let has_alpha = case.options.contains_key("alpha");
    let alpha = case.opt_f64("alpha")?;
    let mut loss = SigmoidFocal::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if has_alpha {
        loss = loss.with_alpha(alpha).map_err(|e| e.to_string())?;
    }
    if let Some(gamma) = case.opt_f64("gamma")? {
        loss = loss.with_gamma(gamma).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?);
    let targets = cast::<F>(&case.target_f64("targets")?);
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        targets.view(),
        "logits"
    ))
}
