//! Runners for the evaluation losses (no gradient).

use classloss::{Float, Hamming, Labels, Loss, Reduction, ZeroOne};
use ndarray::Ix2;

use crate::reference::cast;

use crate::case::{Case, Outcome, values};

pub fn zero_one<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = ZeroOne::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let (logits, labels) = (case.matrix::<F>("logits")?, case.labels_1d()?);
    let out = values::<F, _, _>(&loss, logits.view(), Labels::from(&labels))?;
    // forward must agree with the per-sample values it reduces.
    let per = Loss::<F>::per_sample(&loss, &logits, &labels).map_err(|e| e.to_string())?;
    let sum = per.iter().map(|v| v.as_f64()).sum::<f64>();
    let reduced = match loss.reduction() {
        Reduction::Mean => sum / per.len() as f64,
        Reduction::Sum | Reduction::None => sum,
    };
    let value = out.loss.unwrap_or_default();
    if value != reduced {
        return Err(format!(
            "forward {value} differs from the reduced per-sample values {reduced}"
        ));
    }
    Ok(out)
}

pub fn hamming<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Hamming::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "threshold", Hamming::with_threshold)?;
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let targets = cast::<F>(&case.target_f64("targets")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("targets: {e}"))?;
    values::<F, _, _>(&loss, logits.view(), targets.view())
}
