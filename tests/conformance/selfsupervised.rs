//! Runners for the self-supervised family.

use classloss::{Byol, Float, Labels, NtXent, SupervisedContrastive};

use crate::case::{Case, Outcome, grad, outcome};

pub fn nt_xent<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = NtXent::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "temperature", NtXent::with_temperature)?;
    case.no_unknown_options()?;
    if !case.targets.is_empty() {
        return Err("nt_xent takes no targets".into());
    }
    let z = case.matrix::<F>("embeddings")?;
    outcome(&loss, z.view(), (), grad("embeddings"))
}

pub fn supervised_contrastive<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = SupervisedContrastive::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "temperature", SupervisedContrastive::with_temperature)?;
    case.no_unknown_options()?;
    let (z, labels) = (case.matrix::<F>("embeddings")?, case.labels_1d()?);
    outcome(&loss, z.view(), Labels::from(&labels), grad("embeddings"))
}

pub fn byol<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Byol::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let p = case.matrix::<F>("predictions")?;
    let t = crate::reference::cast::<F>(&case.target_f64("targets")?)
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| format!("target \"targets\": {e}"))?;
    outcome(&loss, p.view(), t.view(), grad("predictions"))
}
