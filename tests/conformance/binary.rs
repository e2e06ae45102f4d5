//! Runners for the binary (sigmoid) family.

use classloss::{Bce, BceWithLogits, Float, SigmoidFocal};
use ndarray::IxDyn;

use crate::case::{Case, Outcome, on_elements};
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
