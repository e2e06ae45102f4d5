//! Runners for the fused heads.

use classloss::{ClassTarget, Float, Labels, LinearCrossEntropy, LinearInput};
use ndarray::Ix1;

use crate::case::{Case, Outcome, outcome};
use crate::reference::{cast, widen};

/// The fused linear + cross-entropy head: `hidden (N, D)`, `weight (V, D)`,
/// an optional `bias (V)`; gradients for each.
pub fn linear_cross_entropy<F: Float>(case: &Case) -> Result<Outcome, String> {
    let mut head = LinearCrossEntropy::<F>::new().with_reduction(case.reduction()?);
    if let Some(w) = case.opt_vector("class_weight")? {
        head = head.with_class_weight(w).map_err(|e| e.to_string())?;
    }
    if let Some(i) = case.opt_usize("ignore_index")? {
        head = head.with_ignore_index(i);
    }
    let head = case.with_f64(
        head,
        "label_smoothing",
        LinearCrossEntropy::with_label_smoothing,
    )?;
    case.no_unknown_options()?;
    let hidden = case.matrix::<F>("hidden")?;
    let weight = case.matrix::<F>("weight")?;
    let bias = if case.inputs.contains_key("bias") {
        Some(
            cast::<F>(&case.input("bias")?)
                .into_dimensionality::<Ix1>()
                .map_err(|e| format!("input \"bias\": {e}"))?,
        )
    } else {
        None
    };
    let labels = case.labels_1d()?;
    let input = LinearInput {
        hidden: hidden.view(),
        weight: weight.view(),
        bias: bias.as_ref().map(|b| b.view()),
    };
    outcome(
        &head,
        input,
        ClassTarget::Labels(Labels::from(&labels)),
        |g| {
            let mut grads = vec![
                ("hidden".to_string(), widen(&g.hidden.into_dyn())),
                ("weight".to_string(), widen(&g.weight.into_dyn())),
            ];
            if let Some(b) = g.bias {
                grads.push(("bias".to_string(), widen(&b.into_dyn())));
            }
            grads
        },
    )
}
