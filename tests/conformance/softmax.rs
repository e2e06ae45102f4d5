//! Runners for the softmax family.

use classloss::{
    ClassTarget, CrossEntropy, Differentiable, Float, LabelSmoothing, Loss, Reduction,
    SmoothingConvention,
};
use ndarray::{Array1, IxDyn};

use crate::case::{Case, Outcome};
use crate::common::{cast, widen};

/// Fills the value, per-sample values (for `none`) and the gradient of any
/// loss whose input is one array.
#[macro_export]
macro_rules! single_input_outcome {
    ($loss:expr, $input:expr, $target:expr, $grad_name:expr) => {{
        let loss = &$loss;
        let value = loss.forward($input, $target).map_err(|e| e.to_string())?;
        let (fused, grad) = loss
            .forward_backward($input, $target)
            .map_err(|e| e.to_string())?;
        if fused != value {
            return Err(format!("fused value {fused} differs from forward {value}"));
        }
        let per = if Loss::<F>::reduction(loss) == Reduction::None {
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
            grads: vec![($grad_name.to_string(), widen(&grad.into_dyn()))],
            extra: vec![],
        }
    }};
}

pub fn cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut ce = CrossEntropy::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_array("weight")? {
        ce = ce
            .with_weight(Array1::from_iter(w.iter().map(|&v| F::lit(v))))
            .map_err(|e| e.to_string())?;
    }
    if let Some(i) = case.opt_usize("ignore_index")? {
        ce = ce.with_ignore_index(i);
    }
    if let Some(eps) = case.opt_f64("label_smoothing")? {
        ce = ce.with_label_smoothing(eps).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?);
    if case.has_target("labels") {
        let labels = case.target_labels("labels")?;
        Ok(single_input_outcome!(
            ce,
            logits.view(),
            ClassTarget::Labels(labels.view()),
            "logits"
        ))
    } else {
        let probs = cast::<F>(&case.target_f64("probs")?);
        Ok(single_input_outcome!(
            ce,
            logits.view(),
            ClassTarget::Probs(probs.view()),
            "logits"
        ))
    }
}

pub fn label_smoothing<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = LabelSmoothing::new().with_reduction(case.reduction()?);
    if let Some(eps) = case.opt_f64("epsilon")? {
        loss = loss.with_epsilon(eps).map_err(|e| e.to_string())?;
    }
    if let Some(c) = case.opt_str("convention")? {
        loss = loss.with_convention(match c.as_str() {
            "uniform" => SmoothingConvention::Uniform,
            "off_target" => SmoothingConvention::OffTarget,
            other => return Err(format!("unknown convention {other:?}")),
        });
    }
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?)
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|e| e.to_string())?;
    let labels = case
        .target_labels("labels")?
        .into_dimensionality::<ndarray::Ix1>()
        .map_err(|e| e.to_string())?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}
