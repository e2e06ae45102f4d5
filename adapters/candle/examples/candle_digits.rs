//! A small MLP on the bundled UCI digits, trained in candle with classloss:
//! softmax focal loss on the logits, and ArcFace on the hidden embedding
//! with its class weights learned alongside. The same split as the core
//! crate's `choose_loss` example (seed 2024, 30% test).
//!
//! ```text
//! cargo run --release -p classloss-candle --example candle_digits
//! ```

use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use classloss::{ArcFace, SoftmaxFocal};
use classloss_candle::TensorLoss;

#[allow(dead_code)]
#[path = "../../../examples/choose_loss/rng.rs"]
mod rng;

#[allow(dead_code)]
#[path = "../../../examples/choose_loss/data.rs"]
mod data;

const HIDDEN: usize = 64;
const EPOCHS: usize = 60;
const BATCH: usize = 64;

/// The MLP's parameters: 64 -> HIDDEN (ReLU) -> 10, and for ArcFace the
/// class weights on the hidden layer.
struct Mlp {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl Mlp {
    fn new(rng: &mut rng::Rng) -> candle_core::Result<Self> {
        let init = |rows: usize, cols: usize, rng: &mut rng::Rng| {
            let s = (2.0 / rows as f64).sqrt();
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| (rng.normal() * s) as f32)
                .collect();
            Var::from_vec(v, (rows, cols), &Device::Cpu)
        };
        Ok(Self {
            w1: init(data::PIXELS, HIDDEN, rng)?,
            b1: Var::zeros(HIDDEN, DType::F32, &Device::Cpu)?,
            w2: init(HIDDEN, data::CLASSES, rng)?,
            b2: Var::zeros(data::CLASSES, DType::F32, &Device::Cpu)?,
        })
    }

    fn hidden(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(self.w1.as_tensor())?
            .broadcast_add(self.b1.as_tensor())?
            .relu()
    }

    fn logits(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        h.matmul(self.w2.as_tensor())?
            .broadcast_add(self.b2.as_tensor())
    }
}

/// Plain SGD with momentum over a set of variables.
struct Sgd {
    vars: Vec<Var>,
    velocity: Vec<Tensor>,
    lr: f64,
}

impl Sgd {
    fn new(vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        let velocity = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<Result<_, _>>()?;
        Ok(Self { vars, velocity, lr })
    }

    fn step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        let grads = loss.backward()?;
        for (v, m) in self.vars.iter().zip(&mut self.velocity) {
            if let Some(g) = grads.get(v) {
                *m = ((&*m * 0.9)? + g)?;
                v.set(&(v.as_tensor() - (&*m * self.lr)?)?)?;
            }
        }
        Ok(())
    }
}

fn accuracy(pred: &Tensor, y: &Tensor) -> candle_core::Result<f64> {
    let hits = pred.eq(y)?.to_dtype(DType::F32)?.mean_all()?;
    Ok(f64::from(hits.to_scalar::<f32>()?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/digits.csv.gz");
    let all = data::read_digits_gz(&root)?;
    let (train_idx, test_idx) =
        data::stratified_split(&all.labels, data::CLASSES, 0.3, &mut rng::Rng::new(2024));
    let mut xtr = data::rows(&all.pixels, &train_idx);
    let mut xte = data::rows(&all.pixels, &test_idx);
    data::standardize(&mut xtr, &mut [&mut xte]);
    let to_tensor = |x: &ndarray::Array2<f32>| {
        Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), x.dim(), &Device::Cpu)
    };
    let labels = |idx: &[usize]| {
        let y: Vec<u32> = idx.iter().map(|&i| all.labels[i] as u32).collect();
        Tensor::from_vec(y, idx.len(), &Device::Cpu)
    };
    let (xtr, xte) = (to_tensor(&xtr)?, to_tensor(&xte)?);
    let (ytr, yte) = (labels(&train_idx)?, labels(&test_idx)?);
    let n = train_idx.len();
    println!(
        "UCI digits: {n} train, {} test images; MLP 64-{HIDDEN}-10 in candle, {EPOCHS} epochs, batch {BATCH}.",
        test_idx.len()
    );

    for name in [
        "softmax focal (gamma 2)",
        "ArcFace (s 16, m 0.3) on the hidden layer",
    ] {
        let mut rng = rng::Rng::new(7);
        let mlp = Mlp::new(&mut rng)?;
        let focal = SoftmaxFocal::<f32>::new().with_gamma(2.0)?;
        let arcface = ArcFace::new().with_scale(16.0)?.with_margin(0.3)?;
        let centers = {
            let v: Vec<f32> = (0..data::CLASSES * HIDDEN)
                .map(|_| rng.normal() as f32)
                .collect();
            Var::from_vec(v, (data::CLASSES, HIDDEN), &Device::Cpu)?
        };
        let arc = name.starts_with("Arc");
        let mut vars = vec![mlp.w1.clone(), mlp.b1.clone()];
        if arc {
            vars.push(centers.clone());
        } else {
            vars.extend([mlp.w2.clone(), mlp.b2.clone()]);
        }
        let mut sgd = Sgd::new(vars, if arc { 0.05 } else { 0.1 })?;
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut last = 0.0;
        for _ in 0..EPOCHS {
            rng.shuffle(&mut order);
            for batch in order.chunks(BATCH) {
                let idx = Tensor::new(batch, &Device::Cpu)?;
                let (x, y) = (xtr.index_select(&idx, 0)?, ytr.index_select(&idx, 0)?);
                let h = mlp.hidden(&x)?;
                let loss = if arc {
                    arcface.loss((&h, centers.as_tensor()), &y)?
                } else {
                    focal.loss(&mlp.logits(&h)?, &y)?
                };
                last = loss.to_scalar::<f32>()?;
                sgd.step(&loss)?;
            }
        }
        let h = mlp.hidden(&xte)?;
        let pred = if arc {
            // The class whose weight has the largest cosine with the embedding.
            let norm = |t: &Tensor| {
                t.broadcast_div(&t.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?)
            };
            norm(&h)?
                .matmul(&norm(centers.as_tensor())?.t()?)?
                .argmax(D::Minus1)?
        } else {
            mlp.logits(&h)?.argmax(D::Minus1)?
        };
        println!(
            "{name}: last batch loss {last:.4}, test accuracy {:.3}",
            accuracy(&pred, &yte)?
        );
    }
    Ok(())
}
