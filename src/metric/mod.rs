//! Losses on pairs and embeddings: pairs (contrastive, cosine embedding,
//! margin ranking), triplets, class
//! centers (center loss)
//! and angular margins on normalized embeddings (ArcFace, CosFace, the
//! combined margin).

pub(crate) mod angular;
mod arcface;
mod center;
mod combined_margin;
mod contrastive;
mod cosface;
pub(crate) mod cosine_embedding;
mod margin_ranking;
mod pairs;
mod triplet_margin;

pub use angular::{AngularMargin, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, OnCosines};
pub use arcface::ArcFace;
pub use center::{CenterInput, CenterLoss};
pub use combined_margin::CombinedMargin;
pub use contrastive::{Contrastive, ContrastiveForm};
pub use cosface::CosFace;
pub use cosine_embedding::CosineEmbedding;
pub use margin_ranking::MarginRanking;
pub use pairs::{Pair, PairGrad, PairGradMut};
pub use triplet_margin::{Triplet, TripletGrad, TripletGradMut, TripletMargin};
