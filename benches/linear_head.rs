//! One measurement of the fused linear + cross-entropy head for
//! `benches/compare_linear_ce.py`: the wall time of
//! `LinearCrossEntropy`'s [`forward_backward_into`](classloss::Differentiable::forward_backward_into) (forward and the
//! gradients for hidden, weight and bias) and the peak resident memory it
//! adds, in a fresh process.
//!
//! Inputs (f32): `hidden (N, D)` uniform in `[-1, 1)`, `weight (V, D)`
//! uniform in `[-0.05, 0.05)`, a zero bias `(V)`, labels `(N)` (`i64`)
//! uniform in `0..V`. The head is `LinearCrossEntropy::<f32>::new()` (mean,
//! the default chunk `chunk_rows_for(V)` tokens) unless `--chunk-rows` is
//! given, on `--threads` rayon threads.
//!
//! The sequence: build the inputs and the gradient buffer
//! (`head.zeros_grad(input)`), one warm-up call into it, then
//! `malloc_trim(0)` (glibc: memory that the warm-up freed and malloc kept
//! is given back, so it is not counted as the baseline), the baseline
//! `VmRSS` (inputs, gradient buffers, code), `VmHWM` reset by writing `5`
//! to `/proc/self/clear_refs`, then `--steps` timed calls into the same
//! buffer. `peak_kib` is `VmHWM` after them: the peak extra memory is
//! `peak_kib - baseline_kib`. If the reset is refused (`hwm_reset: false`)
//! the peak is the process's whole life; the inputs are generated in place
//! and the warm-up is one call like the others, so it is still the peak of
//! a call, plus any setup peak above it.
//!
//! Prints one JSON line:
//! `{"bench": "linear_head", "path": "classloss", "n", "d", "v", "threads",
//! "chunk_rows", "steps_s": [...], "median_s", "loss", "baseline_kib",
//! "peak_kib", "hwm_reset", "simd"}`.
//!
//! ```sh
//! cargo run --release -p classloss-bench --bin linear_head -- \
//!     --n 2048 --d 1024 --v 32000 --threads 1 --steps 3
//! ```

#[path = "support.rs"]
mod support;

use std::fs;
use std::hint::black_box;
use std::time::Instant;

use classloss::{Differentiable, Labels, LinearCrossEntropy, LinearInput};
use ndarray::Array1;

use support::{Args, Rng, json_list, median, uniform, use_threads};

const USAGE: &str = "usage: linear_head --n N --d D --v V [--threads 1] [--steps 3] \
                     [--chunk-rows K] [--seed 1]";

fn main() {
    let args = Args::parse(
        USAGE,
        &["n", "d", "v", "threads", "steps", "chunk-rows", "seed"],
    );
    let (n, d, v) = (args.get("n", 0), args.get("d", 0), args.get("v", 0));
    if n == 0 || d == 0 || v == 0 {
        eprintln!("--n, --d and --v are required and positive\n{USAGE}");
        std::process::exit(2);
    }
    let threads = args.get("threads", 1);
    let steps = args.get("steps", 3);
    let seed = args.get("seed", 1u64);
    use_threads(threads);

    let hidden = uniform(n, d, -1.0, 1.0, seed);
    let weight = uniform(v, d, -0.05, 0.05, seed + 1);
    let bias = Array1::<f32>::zeros(v);
    let mut rng = Rng::new(seed + 2);
    let labels = Array1::from_shape_simple_fn(n, || (rng.next_u64() % v as u64) as i64);

    let mut head = LinearCrossEntropy::<f32>::new();
    let chunk_rows = args.get("chunk-rows", 0);
    if chunk_rows > 0 {
        head = head.with_chunk_rows(chunk_rows).expect("chunk rows >= 1");
    }
    let input = LinearInput {
        hidden: hidden.view(),
        weight: weight.view(),
        bias: Some(bias.view()),
    };
    let mut grad = head.zeros_grad(input);
    let mut step = || {
        head.forward_backward_into(input, Labels::from(&labels), &mut grad)
            .expect("valid inputs")
    };

    let mut loss = step(); // warm-up: the gradient buffers are now resident
    trim_heap();
    let baseline_kib = status_kib("VmRSS");
    let hwm_reset = reset_peak();
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t0 = Instant::now();
        loss = black_box(step());
        times.push(t0.elapsed().as_secs_f64());
    }
    let peak_kib = status_kib("VmHWM");

    println!(
        "{{\"bench\": \"linear_head\", \"path\": \"classloss\", \"n\": {n}, \"d\": {d}, \
         \"v\": {v}, \"threads\": {threads}, \"chunk_rows\": {}, \"steps_s\": {}, \
         \"median_s\": {:?}, \"loss\": {:?}, \"baseline_kib\": {baseline_kib}, \
         \"peak_kib\": {peak_kib}, \"hwm_reset\": {hwm_reset}, \"simd\": \"{}\"}}",
        head.chunk_rows_for(v).min(n),
        json_list(&times),
        median(&mut times.clone()),
        f64::from(loss),
        classloss::numerics::simd_level().as_str(),
    );
}

/// A field of `/proc/self/status` in KiB (0 off Linux).
fn status_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current `VmRSS`; whether the kernel took it.
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
        && status_kib("VmHWM") <= status_kib("VmRSS") + 64
}

/// Gives the heap's free pages back to the OS (glibc's `malloc_trim`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim takes a byte count and touches only
    // free memory of malloc's own arenas.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}
