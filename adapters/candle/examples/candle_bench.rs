//! classloss in candle against candle-nn's cross-entropy, side by side in
//! one run (f32, CPU): the loss alone (value and the gradient of the
//! logits through candle's autograd) and one training step of an MLP
//! (forward, loss, backward). Each figure is the median time per call
//! (`examples/perf/measure.rs` of the core crate).
//!
//! ```text
//! cargo run --release -p classloss-candle --example candle_bench [-- --quick]
//! ```
//!
//! Columns of the loss table:
//! - `core fused`: the core crate's `forward_backward_into` on an ndarray
//!   view with a reused gradient buffer (the floor for the adapter);
//! - `adapter`: `CrossEntropy::loss` on a candle `Var`, then `backward()`;
//!   the forward runs the fused call once and keeps the gradient;
//! - `recompute`: what computing the value in the forward and the gradient
//!   in the backward would cost: the adapter's value-only forward (on an
//!   untracked tensor) plus the adapter's cached path;
//! - `candle-nn`: `candle_nn::loss::cross_entropy`, then `backward()`;
//! - `forward`: the adapter's part of `adapter`: the forward alone (the
//!   fused call writing the gradient), without `backward()`. The rest is
//!   candle's backward, which for any op's input gradient, whoever
//!   computed it, runs `GradStore::or_insert` (`zeros_like`) and an `add`
//!   into a new tensor.

use std::hint::black_box;

use candle_core::{Device, Tensor, Var};
use classloss::{CrossEntropy, Differentiable, Labels};
use classloss_adapter_kit::testing::bench_inputs;
use classloss_candle::TensorLoss;
use ndarray::Array2;

#[allow(dead_code)]
#[path = "../../../examples/perf/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../../../examples/perf/measure.rs"]
mod measure;

use measure::{Budget, ns_per_call};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Budget::QUICK
    } else {
        Budget::DEFAULT
    };
    let dev = Device::Cpu;
    let start = load::Snapshot::now();
    let ce = CrossEntropy::<f32>::new();

    println!("loss alone: value + gradient of the logits, f32, ns per call (median)");
    println!(
        "| N x C | core fused | adapter | forward | recompute | candle-nn | candle-nn / adapter | adapter / core | forward / core |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, c) in [(128, 10), (256, 1000), (1024, 32000)] {
        let (x, y) = bench_inputs(n, c);
        let y = y.mapv(|v| v as u32);
        let mut grad = Array2::<f32>::zeros((n, c));
        let core = ns_per_call(&budget, || {
            black_box(
                ce.forward_backward_into(x.view(), Labels::from(&y), grad.view_mut())
                    .unwrap(),
            );
        });
        let xt = Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), (n, c), &dev)?;
        let yt = Tensor::from_vec(y.to_vec(), n, &dev)?;
        let var = Var::from_tensor(&xt)?;
        let adapter = ns_per_call(&budget, || {
            let out = ce.loss(var.as_tensor(), &yt).unwrap();
            black_box(out.backward().unwrap());
        });
        let value_only = ns_per_call(&budget, || {
            black_box(ce.loss(&xt, &yt).unwrap());
        });
        let nn = ns_per_call(&budget, || {
            let out = candle_nn::loss::cross_entropy(var.as_tensor(), &yt).unwrap();
            black_box(out.backward().unwrap());
        });
        let forward = ns_per_call(&budget, || {
            black_box(ce.loss(var.as_tensor(), &yt).unwrap());
        });
        println!(
            "| {n} x {c} | {core:.0} | {adapter:.0} | {forward:.0} | {:.0} | {nn:.0} | {:.1}x | {:.2}x | {:.2}x |",
            value_only + adapter,
            nn / adapter,
            adapter / core,
            forward / core
        );
    }

    println!();
    println!(
        "training step: MLP 64-128-C, batch N, forward + loss + backward, f32, ns per step (median)"
    );
    println!("| N x C | classloss | candle-nn | candle-nn / classloss |");
    println!("| --- | ---: | ---: | ---: |");
    for (n, c) in [(256, 1000), (1024, 32000)] {
        let (x, y) = bench_inputs(n, 64);
        let y = y.mapv(|v| v as u32);
        let y = y.mapv(|v| v * (c as u32 / 64) % c as u32);
        let xt = Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), (n, 64), &dev)?;
        let yt = Tensor::from_vec(y.to_vec(), n, &dev)?;
        let w1 = Var::from_tensor(&(Tensor::randn(0f32, 0.1, (64, 128), &dev)?))?;
        let w2 = Var::from_tensor(&(Tensor::randn(0f32, 0.05, (128, c), &dev)?))?;
        let logits = || -> candle_core::Result<Tensor> {
            xt.matmul(w1.as_tensor())?.relu()?.matmul(w2.as_tensor())
        };
        let ours = ns_per_call(&budget, || {
            let out = ce.loss(&logits().unwrap(), &yt).unwrap();
            black_box(out.backward().unwrap());
        });
        let nn = ns_per_call(&budget, || {
            let out = candle_nn::loss::cross_entropy(&logits().unwrap(), &yt).unwrap();
            black_box(out.backward().unwrap());
        });
        println!("| {n} x {c} | {ours:.0} | {nn:.0} | {:.2}x |", nn / ours);
    }
    if let Some(busy) = start.and_then(|s| s.others_since(2)) {
        println!(
            "\nother processes kept {busy:.2} cores busy meanwhile (above 0.1, the numbers are disturbed)"
        );
    }
    Ok(())
}
