//! Every integration test of `classloss`, gathered into one test crate so
//! that `cargo test` compiles and links one binary instead of one per file.
//! Each module is the tests of one loss (or one topic); a new test file goes
//! here as a module, not as a new `tests/*.rs`.
//!
//! Every loss runs the one contract of `contract.rs` (fused value equals
//! `forward`, per-sample values reduce to it, dirty and misshapen buffers,
//! shape errors, the gradient against finite differences, `f32` extremes)
//! from its module's `contract` test: `cargo test --test suite contract`
//! runs them all.
//!
//! Run one module with `cargo test --test suite cross_entropy::`. The
//! PyTorch reference cases run in the other test binary, `tests/conformance`.
//! proptest keeps the seeds of past failures of module `m` in
//! `tests/proptest-regressions/m.txt` (its default place for a test crate
//! with a `main.rs`) and replays them first.

mod common;
mod contract;
mod group;
mod labels;

mod allocation;
mod angular_margin_head;
mod api;
mod arcface;
mod asymmetric;
mod bce;
mod bce_with_logits;
mod byol;
mod center;
mod class_balanced_weights;
mod class_sharded;
mod co_teaching;
mod combined_margin;
mod contrastive;
mod cosface;
mod cosine_embedding;
mod crammer_singer;
mod cross_entropy;
mod cross_entropy_large;
mod data_parallel;
mod example_pieces;
mod exponential;
mod f1_thresholds;
mod float_edges;
mod frequency_weights;
mod generalized_cross_entropy;
mod hamming;
mod hard_bootstrapping;
mod hierarchical_cross_entropy;
mod hinge;
mod kl_divergence;
mod label_smoothing;
mod linear_cross_entropy;
mod long_tail;
mod loss_scaler;
mod margin_ranking;
mod multi_margin;
mod multilabel_margin;
mod multilabel_soft_margin;
mod nt_xent;
mod ohem;
mod ordinal_emd;
mod parallel;
mod partial_fc;
mod poly1;
mod ranking;
mod sigmoid_focal;
mod soft_bootstrapping;
mod soft_margin;
mod softmax_focal;
mod sparsemax;
mod supervised_contrastive;
mod symmetric_cross_entropy;
mod triplet_margin;
mod wasserstein;
mod zero_one;
