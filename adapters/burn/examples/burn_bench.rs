//! classloss in burn against burn's own cross-entropy, side by side in one
//! run (f32, CPU, on Flex and on NdArray): the loss alone (value and the
//! gradient of the logits through burn's autodiff) and one training step
//! of an MLP (forward, loss, backward). Each figure is the median time per
//! call (`examples/perf/measure.rs` of the core crate).
//!
//! ```text
//! cargo run --release -p classloss-burn --example burn_bench [-- --quick]
//! ```
//!
//! Columns of the loss table, per backend:
//! - `core fused`: the core crate's `forward_backward_into` on an ndarray
//!   view with a reused gradient buffer (the floor for the adapter);
//! - `classloss`: `CrossEntropy::loss` on a tensor that requires a
//!   gradient, then `backward()`;
//! - `burn`: burn's `CrossEntropyLoss::forward`, then `backward()`.

#![allow(deprecated)] // burn 0.22 deprecates its NdArray backend, which this bench still measures.

use std::hint::black_box;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData, activation::relu};
use classloss::{CrossEntropy, Differentiable, Labels};
use classloss_adapter_kit::testing::bench_inputs;
use classloss_burn::TensorLoss;
use ndarray::{Array1, Array2};

#[allow(dead_code)]
#[path = "../../../examples/perf/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../../../examples/perf/measure.rs"]
mod measure;

use measure::{Budget, ns_per_call};

fn tensors(x: &Array2<f32>, y: &Array1<i64>, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let xt = TensorData::new(
        x.iter().copied().collect::<Vec<_>>(),
        [x.nrows(), x.ncols()],
    );
    let yt = TensorData::new(y.to_vec(), [y.len()]);
    (Tensor::from_data(xt, device), Tensor::from_data(yt, device))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Budget::QUICK
    } else {
        Budget::DEFAULT
    };
    let start = load::Snapshot::now();
    let ce = CrossEntropy::<f32>::new();
    let backends = [("Flex", Device::flex()), ("NdArray", Device::ndarray())];

    println!("loss alone: value + gradient of the logits, f32, ns per call (median)");
    println!(
        "| N x C | core fused | backend | classloss | burn | burn / classloss | classloss / core |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    for (n, c) in [(128, 10), (256, 1000), (1024, 32000)] {
        let (x, y) = bench_inputs(n, c);
        let mut grad = Array2::<f32>::zeros((n, c));
        let core = ns_per_call(&budget, || {
            black_box(
                ce.forward_backward_into(x.view(), Labels::from(&y), grad.view_mut())
                    .unwrap(),
            );
        });
        for (name, device) in &backends {
            let device = device.clone().autodiff();
            let (xt, yt) = tensors(&x, &y, &device);
            let xt = xt.require_grad();
            let ours = ns_per_call(&budget, || {
                let out = ce.loss(xt.clone(), yt.clone()).unwrap();
                black_box(out.backward());
            });
            let burn_ce = CrossEntropyLossConfig::new().init(&device);
            let theirs = ns_per_call(&budget, || {
                let out = burn_ce.forward(xt.clone(), yt.clone());
                black_box(out.backward());
            });
            println!(
                "| {n} x {c} | {core:.0} | {name} | {ours:.0} | {theirs:.0} | {:.1}x | {:.2}x |",
                theirs / ours,
                ours / core
            );
        }
    }

    println!();
    println!(
        "training step: MLP 64-128-C, batch N, forward + loss + backward, f32, ns per step (median)"
    );
    println!("| N x C | backend | classloss | burn | burn / classloss |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (n, c) in [(256, 1000), (1024, 32000)] {
        let (x, y) = bench_inputs(n, 64);
        let y = y.mapv(|v| v * (c as i64 / 64) % c as i64);
        for (name, device) in &backends {
            let device = device.clone().autodiff();
            let (xt, yt) = tensors(&x, &y, &device);
            let normal = |s: f64, shape: [usize; 2]| {
                Tensor::<2>::random(shape, Distribution::Normal(0.0, s), &device).require_grad()
            };
            let (w1, w2) = (normal(0.1, [64, 128]), normal(0.05, [128, c]));
            let logits = || relu(xt.clone().matmul(w1.clone())).matmul(w2.clone());
            let ours = ns_per_call(&budget, || {
                let out = ce.loss(logits(), yt.clone()).unwrap();
                black_box(out.backward());
            });
            let burn_ce = CrossEntropyLossConfig::new().init(&device);
            let theirs = ns_per_call(&budget, || {
                let out = burn_ce.forward(logits(), yt.clone());
                black_box(out.backward());
            });
            println!(
                "| {n} x {c} | {name} | {ours:.0} | {theirs:.0} | {:.2}x |",
                theirs / ours
            );
        }
    }
    if let Some(busy) = start.and_then(|s| s.others_since(2)) {
        println!(
            "\nother processes kept {busy:.2} cores busy meanwhile (above 0.1, the numbers are disturbed)"
        );
    }
    Ok(())
}
