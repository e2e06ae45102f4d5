//! Runners for the embedding losses.

use classloss::{
    ArcFace, CenterInput, CenterLoss, Contrastive, CosFace, Differentiable, Embeddings, Float,
    Loss, Pair, Reduction,
};
use ndarray::{Array1, Ix1, Ix2};

use crate::case::{Case, Outcome};
use crate::reference::{cast, widen};

/// Converts an input to a rank-2 array of the element type under test.
fn matrix<F: Float>(case: &Case, name: &str) -> Result<ndarray::Array2<F>, String> {
    cast::<F>(&case.input(name)?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("input {name:?}: {e}"))
}

fn labels(case: &Case) -> Result<Array1<usize>, String> {
    case.target_labels("labels")?
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("labels: {e}"))
}

/// Fills the value, per-sample values (for `none`) and named gradients of a
/// loss with several inputs; `$grads` maps the gradient to `(name, array)`s.
macro_rules! multi_input_outcome {
    ($loss:expr, $input:expr, $target:expr, |$g:ident| $grads:expr) => {{
        let loss = &$loss;
        let value = loss.forward($input, $target).map_err(|e| e.to_string())?;
        let (fused, $g) = loss
            .forward_backward($input, $target)
            .map_err(|e| e.to_string())?;
        if fused != value {
            return Err(format!("fused value {fused} differs from forward {value}"));
        }
        let per = if loss.reduction() == Reduction::None {
            Some(
                loss.per_sample($input, $target)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Outcome {
            loss: Some(value.as_f64()),
            per_sample: per.map(|p| widen(&p.into_dyn())),
            grads: $grads,
            extra: vec![],
        }
    }};
}

pub fn contrastive<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Contrastive::new().with_reduction(case.reduction()?);
    if let Some(m) = case.opt_f64("margin")? {
        loss = loss.with_margin(m).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let x1 = matrix::<F>(case, "x1")?;
    let x2 = matrix::<F>(case, "x2")?;
    let similar = cast::<F>(&case.target_f64("similar")?)
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("similar: {e}"))?;
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    Ok(multi_input_outcome!(loss, pair, similar.view(), |g| vec![
        ("x1".to_string(), widen(&g.x1.into_dyn())),
        ("x2".to_string(), widen(&g.x2.into_dyn())),
    ]))
}

pub fn center<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = CenterLoss::new().with_reduction(case.reduction()?);
    if let Some(a) = case.opt_f64("alpha")? {
        loss = loss.with_alpha(a).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let features = matrix::<F>(case, "features")?;
    let mut centers = matrix::<F>(case, "centers")?;
    let labels = labels(case)?;
    let input = CenterInput {
        features: features.view(),
        centers: centers.view(),
    };
    let mut out = multi_input_outcome!(loss, input, labels.view(), |g| vec![(
        "features".to_string(),
        widen(&g.into_dyn())
    )]);
    loss.update_centers(features.view(), labels.view(), centers.view_mut())
        .map_err(|e| e.to_string())?;
    out.extra.push((
        "centers_after_update".to_string(),
        widen(&centers.into_dyn()),
    ));
    Ok(out)
}

/// ArcFace and CosFace share their inputs, targets and gradients.
macro_rules! angular_outcome {
    ($loss:expr, $case:expr, $F:ty) => {{
        let e = matrix::<$F>($case, "embeddings")?;
        let w = matrix::<$F>($case, "weight")?;
        let labels = labels($case)?;
        let input = Embeddings {
            embeddings: e.view(),
            weight: w.view(),
        };
        Ok(multi_input_outcome!($loss, input, labels.view(), |g| vec![
            ("embeddings".to_string(), widen(&g.embeddings.into_dyn())),
            ("weight".to_string(), widen(&g.weight.into_dyn())),
        ]))
    }};
}

pub fn arcface<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = ArcFace::new().with_reduction(case.reduction()?);
    if let Some(s) = case.opt_f64("scale")? {
        loss = loss.with_scale(s).map_err(|e| e.to_string())?;
    }
    if let Some(m) = case.opt_f64("margin")? {
        loss = loss.with_margin(m).map_err(|e| e.to_string())?;
    }
    if let Some(easy) = case.opt_bool("easy_margin")? {
        loss = loss.with_easy_margin(easy);
    }
    case.no_unknown_options()?;
    angular_outcome!(loss, case, F)
}

pub fn cosface<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = CosFace::new().with_reduction(case.reduction()?);
    if let Some(s) = case.opt_f64("scale")? {
        loss = loss.with_scale(s).map_err(|e| e.to_string())?;
    }
    if let Some(m) = case.opt_f64("margin")? {
        loss = loss.with_margin(m).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    angular_outcome!(loss, case, F)
}
