//! A classifier head over many classes, split by classes across MPI
//! processes (`ClassSharded<LinearCrossEntropy>`), trained with SGD; rank 0
//! also trains the same model on one process, with the whole weight, and
//! prints both losses step by step.
//!
//! The task is synthetic and learnable: class `c` has a prototype `p_c`
//! (`D` numbers in [-1, 1], a hash of `c`), a sample of class `c` is
//! `p_c` plus noise, and the labels follow a Zipf-like law (class `c`
//! about as often as `1 / (c + 1)`), as words and identities do. The model
//! is a replicated adapter `A (D, D)`, initialized to the identity, then the
//! head `W (V, D)` and bias `b (V)`, initialized to zero, so the first loss
//! is `ln V` (minus the smoothing's part). Each process holds rows
//! `shard.range()` of `W` and `b` and updates them with its own `dW`, `db`;
//! `d hidden` is the whole head's on every process, so each updates its
//! copy of `A` alike (the head checks, at each call, that every process
//! passed the same hidden states).
//!
//! Run (release; `--features mpi` needs `libopenmpi-dev openmpi-bin
//! libclang-dev`; as root add `OMPI_ALLOW_RUN_AS_ROOT=1
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`):
//!
//! ```sh
//! cargo build --release --features mpi --example sharded_head
//! mpirun -np 2 target/release/examples/sharded_head
//! ```
//!
//! Options: `--classes V` (default 50,000), `--dim D` (128), `--tokens N`
//! per step (512), `--steps S` (12), `--lr` (8), `--chunk-rows T` (the
//! head's default), `--no-reference` (rank 0
//! skips the single-process run: for sizes whose whole weight does not fit
//! one process). It exits with an error if the sharded loss and the
//! single-process loss differ by more than `1e-4` (relative) at any step.

use std::error::Error;
use std::time::Instant;

use classloss::distributed::{ClassShard, ClassSharded, Collective, Mpi};
use classloss::{
    ClassTarget, Differentiable, LinearCrossEntropy, LinearGrad, LinearGradMut, LinearInput,
};
use ndarray::{Array1, Array2, Ix2};

/// The run's sizes and options, from the command line.
#[derive(Clone, Copy, Debug)]
struct Args {
    classes: usize,
    dim: usize,
    tokens: usize,
    steps: usize,
    lr: f32,
    reference: bool,
    chunk_rows: Option<usize>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        classes: 50_000,
        dim: 128,
        tokens: 512,
        steps: 12,
        lr: 8.0,
        reference: true,
        chunk_rows: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag}: expected a value"));
        match flag.as_str() {
            "--classes" => args.classes = value()?.parse()?,
            "--dim" => args.dim = value()?.parse()?,
            "--tokens" => args.tokens = value()?.parse()?,
            "--steps" => args.steps = value()?.parse()?,
            "--lr" => args.lr = value()?.parse()?,
            "--no-reference" => args.reference = false,
            "--chunk-rows" => args.chunk_rows = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// A number in [-1, 1) from `(stream, i)`.
fn noise(stream: u64, i: u64) -> f32 {
    let mut z = stream
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 29;
    ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Step `step`'s batch, the same on every process: the labels (Zipf-like)
/// and the inputs `p_y + noise`.
fn batch(args: &Args, step: usize) -> (Array2<f32>, Array1<i64>) {
    let (n, d, v) = (args.tokens, args.dim, args.classes);
    let labels = Array1::from_shape_fn(n, |i| {
        // (V + 1)^u - 1 for u uniform in [0, 1): about 1 / (c + 1).
        let u = 0.5 * (noise(1, (step * n + i) as u64) + 1.0);
        let c = ((v as f64 + 1.0).powf(f64::from(u)) - 1.0) as usize;
        c.min(v - 1) as i64
    });
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let c = labels[i] as u64;
        noise(2, c * d as u64 + j as u64) + 0.5 * noise(3, ((step * n + i) * d + j) as u64)
    });
    (x, labels)
}

/// The adapter's learning rate, relative to the head's.
const ADAPTER_LR: f32 = 1e-3;

/// One model's parameters (the adapter, and the head's rows it holds), and
/// the buffer the head writes their gradient into at every step.
struct Model {
    adapter: Array2<f32>,
    weight: Array2<f32>,
    bias: Array1<f32>,
    grad: LinearGrad<f32>,
}

impl Model {
    fn new(n: usize, d: usize, rows: usize) -> Self {
        Model {
            adapter: Array2::eye(d),
            weight: Array2::zeros((rows, d)),
            bias: Array1::zeros(rows),
            grad: LinearGrad {
                hidden: Array2::zeros((n, d)),
                weight: Array2::zeros((rows, d)),
                bias: Some(Array1::zeros(rows)),
            },
        }
    }

    /// One SGD step of `head` on `(x, labels)`: the loss, and the seconds
    /// the head's fused call took.
    fn step<L>(&mut self, head: &L, x: &Array2<f32>, labels: &Array1<i64>, lr: f32) -> (f32, f64)
    where
        L: for<'a, 't, 'g> Differentiable<
                f32,
                Input<'a> = LinearInput<'a, f32>,
                Target<'t> = ClassTarget<'t, f32, Ix2>,
                GradMut<'g> = LinearGradMut<'g, f32>,
            >,
    {
        let hidden = x.dot(&self.adapter);
        let input = LinearInput {
            hidden: hidden.view(),
            weight: self.weight.view(),
            bias: Some(self.bias.view()),
        };
        let start = Instant::now();
        let loss = head
            .forward_backward_into(input, labels, &mut self.grad)
            .unwrap_or_else(|e| panic!("the head rejected the step: {e}"));
        let seconds = start.elapsed().as_secs_f64();
        let grad = &self.grad;
        // The adapter's gradient sums over every token: a smaller step.
        self.adapter
            .scaled_add(-lr * ADAPTER_LR, &x.t().dot(&grad.hidden));
        self.weight.scaled_add(-lr, &grad.weight);
        if let Some(db) = &grad.bias {
            self.bias.scaled_add(-lr, db);
        }
        (loss, seconds)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let universe = mpi::initialize().ok_or("MPI did not initialize")?;
    let group = Mpi::new(universe.world());
    let (rank, size) = (group.rank(), group.size());
    let args = parse_args()?;
    let shard = ClassShard::even(args.classes, rank, size)?;
    let mut head = LinearCrossEntropy::<f32>::new().with_label_smoothing(0.1)?;
    if let Some(rows) = args.chunk_rows {
        head = head.with_chunk_rows(rows)?;
    }
    let sharded = ClassSharded::new(head.clone(), &group, shard);
    let mut model = Model::new(args.tokens, args.dim, shard.len());
    let mut reference =
        (rank == 0 && args.reference).then(|| Model::new(args.tokens, args.dim, args.classes));

    if rank == 0 {
        let (n, d, v) = (args.tokens as f64, args.dim as f64, args.classes as f64);
        let chunk = head
            .chunk_rows_for(args.classes.div_ceil(size))
            .min(args.tokens);
        println!(
            "{v} classes over {size} process(es), D = {d}, {n} tokens per step, chunks of {chunk} tokens"
        );
        println!(
            "per process: W and dW {:.0} MB; per step: {:.2} MB all-reduced (4 N (D + 7) bytes)",
            8.0 * d * (v / size as f64).ceil() / 1e6,
            4.0 * n * (d + 7.0) / 1e6,
        );
        println!("step  sharded loss  single-process loss  relative difference  head time (s)");
    }
    let mut worst: f64 = 0.0;
    let (mut times, mut alone_times) = (Vec::new(), Vec::new());
    for step in 0..args.steps {
        let (x, labels) = batch(&args, step);
        // Rank 0's own time in the head's call (the others wait for it
        // in the collectives, and while it runs the reference).
        let (loss, seconds) = model.step(&sharded, &x, &labels, args.lr);
        times.push(seconds);
        if let Some(full) = reference.as_mut() {
            let (alone, alone_seconds) = full.step(&head, &x, &labels, args.lr);
            alone_times.push(alone_seconds);
            let diff = f64::from((loss - alone).abs()) / f64::from(alone.abs());
            worst = worst.max(diff);
            println!("{step:>4}  {loss:>12.6}  {alone:>19.6}  {diff:>19.1e}  {seconds:>13.3}");
        } else if rank == 0 {
            println!(
                "{step:>4}  {loss:>12.6}  {:>19}  {:>19}  {seconds:>13.3}",
                "-", "-"
            );
        }
    }
    if rank == 0 {
        let median = |t: &mut Vec<f64>| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        println!("median head time {:.3} s (rank 0)", median(&mut times));
        if reference.is_some() {
            let alone = median(&mut alone_times);
            println!("median single-process head time {alone:.3} s (LinearCrossEntropy, rank 0)");
            println!("largest relative difference {worst:.1e}");
            if worst > 1e-4 {
                return Err(format!(
                    "the sharded loss differs from the single-process loss by {worst:.1e}"
                )
                .into());
            }
        }
    }
    Ok(())
}
