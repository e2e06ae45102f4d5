//! Runners for the embedding losses.

use classloss::{
    AngularMargin, AngularMarginHead, ArcFace, CenterInput, CenterLoss, Contrastive, CosFace,
    CosineEmbedding, Embeddings, EmbeddingsGrad, Float, MarginRanking, Pair, PairGrad, Triplet,
    TripletMargin,
};
use ndarray::{Dimension, Ix1};

use crate::case::{Case, Grads, Outcome, grad, outcome};
use crate::reference::{cast, widen};

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
    outcome(&loss, pair, similar.view(), pair_grads)
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
    outcome(&loss, pair, labels.view(), pair_grads)
}

/// The gradients of a pair loss, by input name.
fn pair_grads<F: Float, D: Dimension>(g: PairGrad<F, D>) -> Grads {
    vec![
        ("x1".to_string(), widen(&g.x1.into_dyn())),
        ("x2".to_string(), widen(&g.x2.into_dyn())),
    ]
}

pub fn margin_ranking<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = MarginRanking::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "margin", MarginRanking::with_margin)?;
    case.no_unknown_options()?;
    let vector = |name| {
        cast::<F>(&case.input(name)?)
            .into_dimensionality::<Ix1>()
            .map_err(|e| format!("input {name:?}: {e}"))
    };
    let (x1, x2) = (vector("x1")?, vector("x2")?);
    let labels = case.target_vector::<F>("labels")?;
    let pair = Pair {
        x1: x1.view(),
        x2: x2.view(),
    };
    outcome(&loss, pair, labels.view(), pair_grads)
}

pub fn triplet_margin<F: Float>(case: &Case) -> Result<Outcome, String> {
    let loss = TripletMargin::new().with_reduction(case.reduction()?);
    let loss = case.with_f64(loss, "margin", TripletMargin::with_margin)?;
    let loss = match case.opt_bool("swap")? {
        Some(swap) => loss.with_swap(swap),
        None => loss,
    };
    case.no_unknown_options()?;
    let anchor = case.matrix::<F>("anchor")?;
    let positive = case.matrix::<F>("positive")?;
    let negative = case.matrix::<F>("negative")?;
    let triplet = Triplet {
        anchor: anchor.view(),
        positive: positive.view(),
        negative: negative.view(),
    };
    outcome(&loss, triplet, (), |g| {
        vec![
            ("anchor".to_string(), widen(&g.anchor.into_dyn())),
            ("positive".to_string(), widen(&g.positive.into_dyn())),
            ("negative".to_string(), widen(&g.negative.into_dyn())),
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
    L: AngularMargin
        + Clone
        + for<'a> classloss::Differentiable<
            F,
            Input<'a> = Embeddings<'a, F>,
            Target<'a> = classloss::Labels<'a>,
            PerSample = ndarray::Array1<F>,
            Grad = EmbeddingsGrad<F>,
        >,
    AngularMarginHead<L>: for<'a> classloss::Differentiable<
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
    // The fused head of the same loss (chunks of one sample) passes the
    // case too.
    let head = AngularMarginHead::new(loss.clone())
        .with_chunk_rows(1)
        .map_err(|e| e.to_string())?;
    outcome(&head, input, (&labels).into(), angular_grads)?
        .check(case)
        .map_err(|e| format!("AngularMarginHead: {e}"))?;
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
