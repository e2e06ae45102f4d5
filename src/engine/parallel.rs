//! Work split into fixed blocks, run in parallel with the `rayon` feature.
//!
//! The blocks depend only on the input's shape, each block's result is
//! computed by one thread, and the results come back in block order, so a
//! loss that adds its blocks' sums in that order gets the same bits on one
//! thread or many, with or without the feature.

/// Below this many elements a call stays on the calling thread.
#[cfg(feature = "rayon")]
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// `run` on every block, in parallel when the feature is on, the pool has
/// more than one thread and the input has at least `PARALLEL_MIN_ELEMENTS`
/// elements; results in block order. A pool of one thread would only add
/// a hand-off: the caller sleeps while the pool's thread runs the blocks
/// (on a Zen 4 machine the two context switches were 15% of a
/// 4096 x 80 BCE call's samples).
pub(crate) fn map_blocks<B: Send, R: Send>(
    blocks: Vec<B>,
    elements: usize,
    run: impl Fn(B) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "rayon")]
    if elements >= PARALLEL_MIN_ELEMENTS && blocks.len() > 1 && threads() > 1 {
        use rayon::prelude::*;
        return blocks.into_par_iter().map(&run).collect();
    }
    let _ = elements;
    blocks.into_iter().map(run).collect()
}

/// The threads the work of a call may run on: the current pool's with the
/// `rayon` feature (inside `ThreadPool::install`, that pool's), else 1.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}
