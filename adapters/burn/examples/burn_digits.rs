//! A small MLP on the bundled UCI digits, trained in burn with classloss:
//! softmax focal loss on the logits, and ArcFace on the hidden embedding
//! with its class weights learned alongside. The same split as the core
//! crate's `choose_loss` example (seed 2024, 30% test) and the same model
//! and optimizer as `classloss-candle`'s `candle_digits` example.
//!
//! ```text
//! cargo run --release -p classloss-burn --example burn_digits [-- --ndarray]
//! ```
//!
//! The model runs on burn's Flex backend, or NdArray with `--ndarray`.

#![allow(deprecated)] // burn 0.22 deprecates its NdArray backend, which `--ndarray` picks.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData, activation::relu};
use classloss::{ArcFace, SoftmaxFocal};
use classloss_burn::TensorLoss;
use ndarray::{Array2, Axis};

#[allow(dead_code)]
#[path = "../../../examples/choose_loss/rng.rs"]
mod rng;

#[allow(dead_code)]
#[path = "../../../examples/choose_loss/data.rs"]
mod data;

const HIDDEN: usize = 64;
const EPOCHS: usize = 60;
const BATCH: usize = 64;

/// The MLP: 64 -> HIDDEN (ReLU) -> 10, and for ArcFace the class weights
/// on the hidden layer.
#[derive(Module, Debug)]
struct Mlp {
    l1: Linear,
    l2: Linear,
    centers: Param<Tensor<2>>,
}

/// A `(rows, cols)` tensor of the array's values.
fn matrix(a: &Array2<f32>, device: &Device) -> Tensor<2> {
    let data = TensorData::new(
        a.iter().copied().collect::<Vec<_>>(),
        [a.nrows(), a.ncols()],
    );
    Tensor::from_data(data, device)
}

impl Mlp {
    fn new(rng: &mut rng::Rng, device: &Device) -> Self {
        let mut normal = |rows: usize, cols: usize, s: f64| {
            Array2::from_shape_simple_fn((rows, cols), || (rng.normal() * s) as f32)
        };
        let he = |rows: usize| (2.0 / rows as f64).sqrt();
        let w1 = normal(data::PIXELS, HIDDEN, he(data::PIXELS));
        let w2 = normal(HIDDEN, data::CLASSES, he(HIDDEN));
        let centers = normal(data::CLASSES, HIDDEN, 1.0);
        let linear = |w: &Array2<f32>| Linear {
            weight: Param::from_tensor(matrix(w, device)),
            bias: Some(Param::from_tensor(Tensor::zeros([w.ncols()], device))),
        };
        Self {
            l1: linear(&w1),
            l2: linear(&w2),
            centers: Param::from_tensor(matrix(&centers, device)),
        }
    }

    fn hidden(&self, x: Tensor<2>) -> Tensor<2> {
        relu(self.l1.forward(x))
    }
}

/// A tensor's rows as an array.
fn host(t: Tensor<2>) -> Array2<f32> {
    let [n, c] = t.dims();
    let v = t.into_data().try_to_vec::<f32>().expect("f32 data");
    Array2::from_shape_vec((n, c), v).expect("the tensor's shape")
}

/// The fraction of rows whose largest score is at the label.
fn accuracy(scores: &Array2<f32>, labels: &[usize]) -> f64 {
    let hits = scores
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|&(row, &y)| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0 == y
        })
        .count();
    hits as f64 / labels.len() as f64
}

/// Rows scaled to unit norm.
fn unit_rows(t: Tensor<2>) -> Tensor<2> {
    let norm = t
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    t / norm
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = if std::env::args().any(|a| a == "--ndarray") {
        Device::ndarray()
    } else {
        Device::flex()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/digits.csv.gz");
    let all = data::read_digits_gz(&root)?;
    let (train_idx, test_idx) =
        data::stratified_split(&all.labels, data::CLASSES, 0.3, &mut rng::Rng::new(2024));
    let mut xtr = data::rows(&all.pixels, &train_idx);
    let mut xte = data::rows(&all.pixels, &test_idx);
    data::standardize(&mut xtr, &mut [&mut xte]);
    let ytr: Vec<usize> = train_idx.iter().map(|&i| all.labels[i]).collect();
    let yte: Vec<usize> = test_idx.iter().map(|&i| all.labels[i]).collect();
    let n = train_idx.len();
    println!(
        "UCI digits: {n} train, {} test images; MLP 64-{HIDDEN}-10 in burn ({device:?}), {EPOCHS} epochs, batch {BATCH}.",
        test_idx.len()
    );

    let train = device.clone().autodiff();
    for name in [
        "softmax focal (gamma 2)",
        "ArcFace (s 16, m 0.3) on the hidden layer",
    ] {
        let mut rng = rng::Rng::new(7);
        let mut model = Mlp::new(&mut rng, &train);
        let focal = SoftmaxFocal::<f32>::new().with_gamma(2.0)?;
        let arcface = ArcFace::new().with_scale(16.0)?.with_margin(0.3)?;
        let arc = name.starts_with("Arc");
        let lr = if arc { 0.05 } else { 0.1 };
        let momentum = MomentumConfig::new().with_dampening(0.0);
        let mut optim = SgdConfig::new().with_momentum(Some(momentum)).init();
        let mut order: Vec<usize> = (0..n).collect();
        let mut last = 0.0;
        for _ in 0..EPOCHS {
            rng.shuffle(&mut order);
            for batch in order.chunks(BATCH) {
                let x = matrix(&data::rows(&xtr, batch), &train);
                let labels: Vec<i64> = batch.iter().map(|&i| ytr[i] as i64).collect();
                let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.len()]), &train);
                let h = model.hidden(x);
                let loss = if arc {
                    arcface.loss((h, model.centers.val()), y)?
                } else {
                    focal.loss(model.l2.forward(h), y)?
                };
                last = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
            }
        }
        let h = model.hidden(matrix(&xte, &train));
        let scores = if arc {
            // The class whose weight has the largest cosine with the embedding.
            unit_rows(h).matmul(unit_rows(model.centers.val()).transpose())
        } else {
            model.l2.forward(h)
        };
        println!(
            "{name}: last batch loss {last:.4}, test accuracy {:.3}",
            accuracy(&host(scores), &yte)
        );
    }
    Ok(())
}
