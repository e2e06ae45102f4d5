//! Contrastive and self-supervised losses on embeddings: NT-Xent
//! (SimCLR), the supervised contrastive loss, and BYOL's regression loss.
//!
//! All three compare rows normalized as PyTorch's `F.normalize` does
//! (`z / max(|z|, 1e-12)`), in `f64`, and differentiate through the
//! normalization (`engine.rs`); NT-Xent and the supervised loss are one
//! softmax over an anchor's cosines to the other rows, with different
//! positives.

mod byol;
mod engine;
mod nt_xent;
mod supervised_contrastive;

pub use byol::Byol;
pub use nt_xent::NtXent;
pub use supervised_contrastive::SupervisedContrastive;
