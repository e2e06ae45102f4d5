//! Runners for the softmax family.

use classloss::{
    ClassTarget, ClassifierLoss, CrossEntropy, Float, HierarchicalCrossEntropy, KlDivergence,
    LabelSmoothing, Labels, Ldam, LogitAdjusted, OhemCrossEntropy, OrdinalEmd, Poly1,
    SmoothingConvention, SoftmaxFocal, Sparsemax, Wasserstein,
};
use ndarray::{Ix2, IxDyn};

use crate::case::{Case, Outcome, grad, outcome};
use crate::reference::cast;

/// Runs a loss on `(N, C)` logits and `(N)` labels on the case's, once
/// every option was read.
pub fn on_logits_and_labels<F: Float, L: ClassifierLoss<F>>(
    case: &Case,
    loss: L,
) -> Result<Outcome, String> {
    case.no_unknown_options()?;
    let (logits, labels) = (case.matrix::<F>("logits")?, case.labels_1d()?);
    let target = Labels::from(&labels).into();
    outcome(&loss, logits.view(), target, grad("logits"))
}

pub fn cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut ce = CrossEntropy::<F, IxDyn>::spatial().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_vector("weight")? {
        ce = ce.with_weight(w).map_err(|e| e.to_string())?;
    }
    if let Some(i) = case.opt_usize("ignore_index")? {
        ce = ce.with_ignore_index(i);
    }
    let ce = case.with_f64(ce, "label_smoothing", CrossEntropy::with_label_smoothing)?;
    case.no_unknown_options()?;
    let logits = cast::<F>(&case.input("logits")?);
    let labels;
    let probs;
    let target = if case.has_target("labels") {
        labels = case.target_labels("labels")?;
        ClassTarget::from(&labels)
    } else {
        probs = cast::<F>(&case.target_f64("probs")?);
        ClassTarget::Probs(probs.view())
    };
    outcome(&ce, logits.view(), target, grad("logits"))
}

/// Cross-entropy with the large-model options: PaLM's z-loss and, when
/// the case has it, Gemma 2's logit soft cap.
pub fn cross_entropy_z_loss<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut ce = CrossEntropy::<F>::new().with_reduction(case.reduction()?);
    if let Some(i) = case.opt_usize("ignore_index")? {
        ce = ce.with_ignore_index(i);
    }
    let ce = case.with_f64(ce, "z_loss", CrossEntropy::with_z_loss)?;
    let ce = case.with_f64(ce, "softcap", |ce, cap| ce.with_softcap(Some(cap)))?;
    on_logits_and_labels(case, ce)
}

pub fn ordinal_emd<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = OrdinalEmd::<F>::new().with_reduction(case.reduction()?);
    if let Some(r) = case.opt_usize("r")? {
        let r = u32::try_from(r).map_err(|e| format!("option r: {e}"))?;
        loss = loss.with_r(r).map_err(|e| e.to_string())?;
    }
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let labels;
    let probs;
    let target = if case.has_target("labels") {
        labels = case.labels_1d()?;
        ClassTarget::from(Labels::from(&labels))
    } else {
        probs = cast::<F>(&case.target_f64("probs")?)
            .into_dimensionality::<Ix2>()
            .map_err(|e| format!("probs: {e}"))?;
        ClassTarget::Probs(probs.view())
    };
    outcome(&loss, logits.view(), target, grad("logits"))
}

pub fn label_smoothing<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = LabelSmoothing::new().with_reduction(case.reduction()?);
    let mut loss = case.with_f64(loss, "epsilon", LabelSmoothing::with_epsilon)?;
    if let Some(c) = case.opt_str("convention")? {
        loss = loss.with_convention(match c.as_str() {
            "uniform" => SmoothingConvention::Uniform,
            "off_target" => SmoothingConvention::OffTarget,
            other => return Err(format!("unknown convention {other:?}")),
        });
    }
    on_logits_and_labels::<F, _>(case, loss)
}

pub fn softmax_focal<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = SoftmaxFocal::<F>::new().with_reduction(case.reduction()?);
    let mut loss = case.with_f64(loss, "gamma", SoftmaxFocal::with_gamma)?;
    if let Some(alpha) = case.opt_array("alpha")? {
        loss = match alpha.ndim() {
            0 => loss.with_alpha(alpha.sum()),
            _ => loss.with_class_alpha(cast::<F>(&alpha).into_iter().collect()),
        }
        .map_err(|e| e.to_string())?;
    }
    on_logits_and_labels(case, loss)
}

pub fn poly1<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Poly1::<F>::new().with_reduction(case.reduction()?);
    on_logits_and_labels(case, case.with_f64(loss, "epsilon", Poly1::with_epsilon)?)
}

pub fn logit_adjusted<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = LogitAdjusted::<F>::new().with_reduction(case.reduction()?);
    if let Some(n) = case.opt_vector::<f64>("samples_per_class")? {
        loss = loss.with_samples_per_class(n).map_err(|e| e.to_string())?;
    }
    on_logits_and_labels(case, case.with_f64(loss, "tau", LogitAdjusted::with_tau)?)
}

pub fn ldam<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Ldam::<F>::new().with_reduction(case.reduction()?);
    if let Some(n) = case.opt_vector::<f64>("samples_per_class")? {
        loss = loss.with_samples_per_class(n).map_err(|e| e.to_string())?;
    }
    let loss = case.with_f64(loss, "max_margin", Ldam::with_max_margin)?;
    on_logits_and_labels(case, case.with_f64(loss, "scale", Ldam::with_scale)?)
}

pub fn ohem_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = OhemCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "keep_ratio", OhemCrossEntropy::with_keep_ratio)?;
    on_logits_and_labels(case, loss)
}

pub fn sparsemax<F: Float>(case: &Case) -> Result<Outcome, String> {
    on_logits_and_labels::<F, _>(case, Sparsemax::new().with_reduction(case.reduction()?))
}

pub fn wasserstein<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut loss = Wasserstein::new().with_reduction(case.reduction()?);
    if let Some(m) = case.opt_array("cost")? {
        let m = m
            .into_dimensionality::<Ix2>()
            .map_err(|e| format!("cost: {e}"))?;
        loss = loss.with_cost(m).map_err(|e| e.to_string())?;
    }
    on_logits_and_labels::<F, _>(case, loss)
}

pub fn kl_divergence<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = KlDivergence::<F>::new().with_reduction(case.reduction()?);
    case.no_unknown_options()?;
    let logits = case.matrix::<F>("logits")?;
    let probs = cast::<F>(&case.target_f64("probs")?)
        .into_dimensionality::<Ix2>()
        .map_err(|e| format!("probs: {e}"))?;
    outcome(&loss, logits.view(), probs.view(), grad("logits"))
}

pub fn hierarchical_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = HierarchicalCrossEntropy::new().with_reduction(case.reduction()?);
    let mut loss = case.with_f64(loss, "alpha", HierarchicalCrossEntropy::with_alpha)?;
    if let Some(parents) = case.opt_parents("parents")? {
        loss = loss.with_parents(parents).map_err(|e| e.to_string())?;
    }
    on_logits_and_labels::<F, _>(case, loss)
}
