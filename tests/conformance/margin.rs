//! Runners for the margin family.

use classloss::{
    CrammerSinger, Exponential, Float, Hinge, LabelSets, MultiLabelMargin, MultiMargin, SoftMargin,
};

use crate::case::{Case, Outcome, grad, on_elements, outcome};
use crate::softmax::on_logits_and_labels;

pub fn hinge<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Hinge::<F>::new().with_reduction(case.reduction()?);
    let mut loss = case.with_f64(loss, "margin", Hinge::with_margin)?;
    if let Some(sq) = case.opt_bool("squared")? {
        loss = loss.with_squared(sq);
    }
    on_elements(case, loss, "scores", "labels")
}

pub fn multi_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = MultiMargin::<F>::new().with_reduction(case.reduction()?);
    if let Some(p) = case.opt_usize("p")? {
        let p = u32::try_from(p).map_err(|e| format!("option p: {e}"))?;
        loss = loss.with_p(p).map_err(|e| e.to_string())?;
    }
    let mut loss = case.with_f64(loss, "margin", MultiMargin::with_margin)?;
    if let Some(w) = case.opt_vector("weight")? {
        loss = loss.with_weight(w).map_err(|e| e.to_string())?;
    }
    on_logits_and_labels(case, loss)
}

pub fn exponential<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Exponential::<F>::new().with_reduction(case.reduction()?);
    on_elements(case, loss, "scores", "labels")
}

pub fn soft_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = SoftMargin::<F, ndarray::IxDyn>::spatial().with_reduction(case.reduction()?);
    on_elements(case, loss, "scores", "labels")
}

pub fn crammer_singer<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = CrammerSinger::<F>::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "margin", CrammerSinger::with_margin)?;
    on_logits_and_labels(case, loss)
}

pub fn multilabel_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = MultiLabelMargin::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let sets = case.label_sets()?;
    outcome(&loss, logits.view(), LabelSets::from(&sets), grad("logits"))
}
