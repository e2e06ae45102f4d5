//! Timing one operation: warm up, calibrate a batch size, then take the
//! median time per call over several batches.

use std::time::{Duration, Instant};

/// How long to spend on one measurement.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// The total time of the timed batches (calibration and warm-up aside).
    pub target: Duration,
    /// How many batches the median is taken over.
    pub batches: usize,
    /// The fewest batches when a single call takes longer than a batch's
    /// share of the target (large shapes).
    pub min_batches: usize,
}

impl Budget {
    /// The default run: about 0.3 s per measurement, median of 5 batches.
    pub const DEFAULT: Budget = Budget {
        target: Duration::from_millis(300),
        batches: 5,
        min_batches: 3,
    };

    /// `--quick`: a smoke run, the numbers are rough.
    pub const QUICK: Budget = Budget {
        target: Duration::from_millis(20),
        batches: 3,
        min_batches: 1,
    };
}

/// Times `iters` calls of `f`.
pub fn time(iters: u64, f: &mut impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

/// The median of several batches' time per call of `f`, in nanoseconds.
///
/// `f` must keep its result observable (`std::hint::black_box`) so the
/// compiler cannot drop the work. The first call is a warm-up (page faults
/// of fresh buffers, cold caches) and is not counted.
pub fn ns_per_call(budget: &Budget, mut f: impl FnMut()) -> f64 {
    f();
    let per_batch = budget.target / budget.batches as u32;

    // Calibrate: double the count until a run takes a tenth of a batch.
    let mut iters = 1u64;
    let per_call = loop {
        let t = time(iters, &mut f);
        if t * 10 >= per_batch || iters >= 1 << 30 {
            break t.as_secs_f64() / iters as f64;
        }
        iters *= 2;
    };

    let per_batch = per_batch.as_secs_f64();
    let mut samples = Vec::with_capacity(budget.batches);
    let (batches, iters) = if per_call >= per_batch {
        // Slow calls: one call per batch, as many as the target allows; the
        // calibration call (one call, after the warm-up) is the first.
        samples.push(per_call * 1e9);
        let fit = (budget.target.as_secs_f64() / per_call) as usize;
        (fit.clamp(budget.min_batches, budget.batches), 1)
    } else {
        (
            budget.batches,
            (per_batch / per_call).round().max(1.0) as u64,
        )
    };
    while samples.len() < batches {
        samples.push(time(iters, &mut f).as_nanos() as f64 / iters as f64);
    }
    median(&mut samples)
}

/// The median (the mean of the middle two for an even count).
fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}
