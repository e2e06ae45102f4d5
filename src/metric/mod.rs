//! Losses on embeddings: pairs (contrastive, cosine embedding), class
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

pub use angular::{AngularMargin, Embeddings, EmbeddingsGrad, EmbeddingsGradMut, OnCosines};
pub use arcface::ArcFace;
pub use center::{CenterInput, CenterLoss};
pub use combined_margin::CombinedMargin;
pub use contrastive::{Contrastive, ContrastiveForm, Pair, PairGrad, PairGradMut};
pub use cosface::CosFace;
pub use cosine_embedding::CosineEmbedding;
