//! Runners for the binary (sigmoid) family.

use classloss::{Asymmetric, Bce, BceWithLogits, Float, MultiLabelSoftMargin, SigmoidFocal};
use ndarray::{Ix2, IxDyn};

use crate::case::{Case, Outcome, grad, on_elements, outcome};
use crate::reference::cast;

pub fn bce<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Bce::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_array("weight")? {
        loss = loss.with_weight(cast::<F>(&w)).map_err(|e| e.to_string())?;
    }
    // bce/60 (exact 0/1 probabilities) has no expected gradient; the
    // outcome's gradient is then simply not compared.
    on_elements(case, loss, "probs", "targets")
}

pub fn bce_with_logits<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = BceWithLogits::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_array("weight")? {
        loss = loss.with_weight(cast::<F>(&w)).map_err(|e| e.to_string())?;
    }
    if let Some(pw) = case.opt_vector("pos_weight")? {
        loss = loss.with_pos_weight(pw).map_err(|e| e.to_string())?;
    }
    on_elements(case, loss, "logits", "targets")
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
    let loss = case.with_f64(loss, "gamma", SigmoidFocal::with_gamma)?;
    on_elements(case, loss, "logits", "targets")
}

pub fn multilabel_soft_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = MultiLabelSoftMargin::<F>::new().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_vector("weight")? {
        loss = loss.with_weight(w).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let targets = cast::<F>(&case.target_f64("targets")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("targets: {e}"))?;
    outcome(&loss, logits.view(), targets.view(), grad("logits"))
}

pub fn asymmetric<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Asymmetric::<F>::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "gamma_neg", Asymmetric::with_gamma_neg)?;
    let loss = case.with_f64(loss, "gamma_pos", Asymmetric::with_gamma_pos)?;
    let loss = case.with_f64(loss, "clip", Asymmetric::with_clip)?;
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let targets = cast::<F>(&case.target_f64("targets")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("targets: {e}"))?;
    outcome(&loss, logits.view(), targets.view(), grad("logits"))
}
