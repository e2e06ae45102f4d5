//! Runners for the softmax family.

use classloss::{
    ClassTarget, CrossEntropy, Differentiable, Float, KlDivergence, LabelSmoothing, Loss, Poly1,
    Reduction, SmoothingConvention, SoftmaxFocal,
};
use ndarray::{Array1, ArrayD, Ix1, Ix2, IxDyn};

use crate::case::{Case, Outcome};
use crate::reference::{cast, widen};

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
            labels.view(),
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

/// `(N, C)` logits in the case's dtype.
pub fn logits_2d<F: Float>(case: &Case) -> Result<ndarray::Array2<F>, String> {
    cast::<F>(&case.input("logits")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("logits: {e}"))
}

/// `(N)` labels.
pub fn labels_1d(case: &Case) -> Result<ndarray::Array1<usize>, String> {
    case.target_labels("labels")?
        .into_dimensionality::<Ix1>()
        .map_err(|e| format!("labels: {e}"))
}

/// A per-class option array as an `Array1<F>`.
pub fn class_vector<F: Float>(a: &ArrayD<f64>) -> Array1<F> {
    Array1::from_iter(a.iter().map(|&v| F::lit(v)))
}

pub fn softmax_focal<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = SoftmaxFocal::<F>::new().with_reduction(case.reduction()?);
    if let Some(gamma) = case.opt_f64("gamma")? {
        loss = loss.with_gamma(gamma).map_err(|e| e.to_string())?;
    }
    if let Some(alpha) = case.opt_array("alpha")? {
        loss = if alpha.ndim() == 0 {
            loss.with_alpha(alpha.sum())
        } else {
            loss.with_class_alpha(class_vector(&alpha))
        }
        .map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn poly1<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Poly1::<F>::new().with_reduction(case.reduction()?);
    if let Some(eps) = case.opt_f64("epsilon")? {
        loss = loss.with_epsilon(eps).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let labels = labels_1d(case)?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        labels.view(),
        "logits"
    ))
}

pub fn kl_divergence<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = KlDivergence::<F>::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let logits = logits_2d::<F>(case)?;
    let probs = cast::<F>(&case.target_f64("probs")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("probs: {e}"))?;
    Ok(single_input_outcome!(
        loss,
        logits.view(),
        probs.view(),
        "logits"
    ))
}
