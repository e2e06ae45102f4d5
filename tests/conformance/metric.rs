//! Runners for the embedding losses.

use classloss::{
    ArcFace, CenterInput, CenterLoss, Contrastive, CosFace, CosineEmbedding, Embeddings,
    EmbeddingsGrad, Float, Pair,
};

use crate::case::{Case, Grads, Outcome, grad, outcome};
use crate::reference::widen;

pub fn contrastive<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = Contrastive::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "margin", Contrastive::with_margin)?;
    case.no_unknown_options()?;
    let (x1, x2) = (case.matrix::<F>("x1")?, case.matrix::<F>("x2")?);
    let similar = case.target_vector::<F>("similar")?;
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    outcome(&loss, pair, similar.view(), |g| {
        vec![
            ("x1".to_string(), widen(&g.x1.into_dyn())),
            ("x2".to_string(), widen(&g.x2.into_dyn())),
        ]
    })
}

pub fn cosine_embedding<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = CosineEmbedding::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "margin", CosineEmbedding::with_margin)?;
    case.no_unknown_options()?;
    let (x1, x2) = (case.matrix::<F>("x1")?, case.matrix::<F>("x2")?);
    let labels = case.target_vector::<F>("labels")?;
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    outcome(&loss, pair, labels.view(), |g| {
        vec![
            ("x1".to_string(), widen(&g.x1.into_dyn())),
            ("x2".to_string(), widen(&g.x2.into_dyn())),
        ]
    })
}

pub fn center<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = CenterLoss::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "alpha", CenterLoss::with_alpha)?;
    case.no_unknown_options()?;
    let features = case.matrix::<F>("features")?;
    let mut centers = case.matrix::<F>("centers")?;
    let labels = case.labels_1d()?;
    let input = CenterInput {
        features: features.view(),
        centers: centers.view(),
    };
    let mut out = outcome(&loss, input, (&labels).into(), grad("features"))?;
    loss.update_centers(features.view(), labels.view(), centers.view_mut())
        .map_err(|e| e.to_string())?;
    out.extra.push((
        "centers_after_update".to_string(),
        widen(&centers.into_dyn()),
    ));
    Ok(out)
}

/// The gradients of an angular-margin loss, named.
fn angular_grads<F: Float>(g: EmbeddingsGrad<F>) -> Grads {
    vec![
        ("embeddings".to_string(), widen(&g.embeddings.into_dyn())),
        ("weight".to_string(), widen(&g.weight.into_dyn())),
    ]
}

/// Runs an angular-margin loss on the case's embeddings, weights and
/// labels, once every option was read.
fn on_embeddings<F: Float, L>(case: &Case, loss: L) -> Result<Outcome, String>
where
    L: for<'a> classloss::Differentiable<
            F,
            Input<'a> = Embeddings<'a, F>,
            Target<'a> = classloss::Labels<'a>,
            PerSample = ndarray::Array1<F>,
            Grad = EmbeddingsGrad<F>,
        >,
{
    case.no_unknown_options()?;
    let (e, w) = (case.matrix::<F>("embeddings")?, case.matrix::<F>("weight")?);
    let labels = case.labels_1d()?;
    let input = Embeddings {
        embeddings: e.view(),
        weight: w.view(),
    };
    outcome(&loss, input, (&labels).into(), angular_grads)
}

pub fn arcface<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = ArcFace::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "scale", ArcFace::with_scale)?;
    let mut loss = case.with_f64(loss, "margin", ArcFace::with_margin)?;
    if let Some(easy) = case.opt_bool("easy_margin")? {
        loss = loss.with_easy_margin(easy);
    }
    on_embeddings::<F, _>(case, loss)
}

pub fn cosface<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = CosFace::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "scale", CosFace::with_scale)?;
    on_embeddings::<F, _>(case, case.with_f64(loss, "margin", CosFace::with_margin)?)
}
