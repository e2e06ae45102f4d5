//! Runners for the evaluation losses (no gradient).

use classloss::{Float, Loss, Reduction, ZeroOne};
use ndarray::{Ix1, Ix2};

use crate::case::{Case, Outcome};
use crate::reference::{cast, widen};

pub fn zero_one<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = ZeroOne::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("logits: {e}"))?;
    let labels = case
        .target_labels("labels")?
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("labels: {e}"))?;
    let value: F = loss
        .forward(logits.view(), labels.view())
        .map_err(|e| e.to_string())?;
    let per = loss
        .per_sample(logits.view(), labels.view())
        .map_err(|e| e.to_string())?;
    // forward must agree with the per-sample values it reduces.
    let n = per.len() as f64;
    let sum = per.iter().map(|v| v.as_f64()).sum::<f64>();
    let reduced = match loss.reduction() {
        Reduction::Mean => sum / n,
        Reduction::Sum | Reduction::None => sum,
    };
    if value.as_f64() != reduced {
        return Err(format!(
            "forward {value} differs from the reduced per-sample values {reduced}"
        ));
    }
    Ok(Outcome {
        loss: Some(value.as_f64()),
        per_sample: (loss.reduction() == Reduction::None).then(|| widen(&per.into_dyn())),
        grads: vec![],
        extra: vec![],
    })
}
