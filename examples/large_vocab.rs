//! A next-token model over 16,384 tokens trained with the fused linear +
//! cross-entropy head (`LinearCrossEntropy`), which never holds the
//! `(tokens, vocabulary)` logits, and the memory that saves, measured.
//!
//! The language is synthetic and learnable: token `t` is followed by one
//! of four tokens (`(7919 t + 13 k + 1) mod V`, `k` in 0..4, the first most
//! often), so the best possible loss is the entropy of that choice, 1.11
//! nats. The model is a bigram model: an embedding table `E (V, D)`
//! gives the hidden state of each token, the head `W (V, D)` and bias `b`
//! its logits over the next token. Plain SGD; `dE` gathers the head's
//! `d hidden` by token.
//!
//! The memory: a counting allocator records the peak of live bytes during
//! one fused call, against the same loss and gradients computed by
//! materializing the logits (`H W^T + b`) and running `CrossEntropy` on
//! them.
//!
//! Run: `cargo run --release --example large_vocab` (about 30 s on 2 cores;
//! the loss falls from 9.7, `ln V`, to about 4.1 in 150 steps).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use classloss::{
    CrossEntropy, Differentiable, Labels, LinearCrossEntropy, LinearGrad, LinearInput,
};
use ndarray::{Array1, Array2, Axis};

/// Counts live bytes and their peak, for the memory comparison.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The peak of live bytes above those live before `f`, and `f`'s result.
fn peak_extra<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed) - base, out)
}

const V: usize = 16_384;
const D: usize = 64;
const BATCH: usize = 1_024;
const STEPS: usize = 150;
const LR: f32 = 500.0;
/// The embeddings' rate: a row's gradient is one token's share of the
/// mean, about `1 / BATCH` of the head's, and a token is seen rarely.
const LR_EMBED: f32 = 300.0;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The token that follows `t`: one of four, with probabilities 0.55,
/// 0.25, 0.15, 0.05.
fn next_token(t: usize, rng: &mut Rng) -> usize {
    let u = rng.uniform();
    let k = [0.55, 0.80, 0.95].iter().filter(|&&c| u >= c).count();
    (t * 7919 + 13 * k + 1) % V
}

/// The entropy of the next-token choice: the lowest expected loss.
fn best_loss() -> f64 {
    [0.55_f64, 0.25, 0.15, 0.05]
        .iter()
        .map(|p| -p * p.ln())
        .sum()
}

fn main() -> Result<(), classloss::Error> {
    let mut rng = Rng(0x5EED);
    let mut init = |rows: usize, scale: f32| {
        Array2::from_shape_fn((rows, D), |_| (rng.uniform() - 0.5) * scale)
    };
    let mut embed = init(V, 1.0);
    let mut weight = init(V, 0.1);
    let mut bias = Array1::<f32>::zeros(V);
    let head = LinearCrossEntropy::<f32>::new().with_chunk_rows(128)?;
    let mut grad = LinearGrad {
        hidden: Array2::zeros((BATCH, D)),
        weight: Array2::zeros((V, D)),
        bias: Some(Array1::zeros(V)),
    };
    let mut data = Rng(42);
    println!(
        "next-token model: V = {V} tokens, D = {D}, {BATCH} tokens a step, \
         the fused head in chunks of {} tokens",
        head.chunk_rows_for(V)
    );
    println!(
        "best possible loss (the entropy of the next token): {:.3}",
        best_loss()
    );
    let batch = |data: &mut Rng| {
        let x: Vec<usize> = (0..BATCH)
            .map(|_| (data.next() % V as u64) as usize)
            .collect();
        let y: Array1<usize> = x.iter().map(|&t| next_token(t, data)).collect();
        (x, y)
    };
    for step in 0..=STEPS {
        let (x, y) = batch(&mut data);
        let hidden = embed.select(Axis(0), &x);
        let input = LinearInput {
            hidden: hidden.view(),
            weight: weight.view(),
            bias: Some(bias.view()),
        };
        let value = head.forward_backward_into(input, Labels::from(&y), &mut grad)?;
        if step % 25 == 0 {
            println!("step {step:3}: loss {value:.3}");
        }
        weight.scaled_add(-LR, &grad.weight);
        if let Some(db) = &grad.bias {
            bias.scaled_add(-LR, db);
        }
        for (i, &t) in x.iter().enumerate() {
            embed.row_mut(t).scaled_add(-LR_EMBED, &grad.hidden.row(i));
        }
    }

    // The memory of one step, fused against materialized.
    let (x, y) = batch(&mut data);
    let hidden = embed.select(Axis(0), &x);
    let input = LinearInput {
        hidden: hidden.view(),
        weight: weight.view(),
        bias: Some(bias.view()),
    };
    let (fused_bytes, fused) =
        peak_extra(|| head.forward_backward_into(input, Labels::from(&y), &mut grad));
    let fused = fused?;
    let (plain_bytes, plain) = peak_extra(|| {
        let logits = hidden.dot(&weight.t()) + &bias;
        let (value, g) = CrossEntropy::new().forward_backward(logits.view(), Labels::from(&y))?;
        // The head's three gradients from dL/dlogits, as autograd would.
        let dh = g.dot(&weight);
        let dw = g.t().dot(&hidden);
        let db = g.sum_axis(Axis(0));
        Ok::<_, classloss::Error>((value, dh, dw, db))
    });
    let (value, dh, ..) = plain?;
    let mib = |b: usize| b as f64 / (1u64 << 20) as f64;
    println!(
        "\none step of {BATCH} tokens over {V} classes (f32): loss {fused:.6} fused, {value:.6} \
         materialized"
    );
    let diff = (&dh - &grad.hidden)
        .iter()
        .fold(0.0_f32, |m, v| m.max(v.abs()));
    println!("largest difference of d hidden between the two: {diff:.2e}");
    println!(
        "peak extra memory: fused head {:.1} MiB (two {}-token chunks of logits), \
         materialized {:.1} MiB (logits, their gradient and the products): {:.1}x less",
        mib(fused_bytes),
        head.chunk_rows_for(V),
        mib(plain_bytes),
        plain_bytes as f64 / fused_bytes.max(1) as f64
    );
    Ok(())
}
