//! Work split into fixed blocks, run in parallel with the `rayon` feature.
//!
//! The blocks depend only on the input's shape, each block's result is
//! computed by one thread, and the results come back in block order, so a
//! loss that adds its blocks' sums in that order gets the same bits on one
//! thread or many, with or without the feature.
//!
//! The calling thread works too, and never waits for a thread to wake
//! (see [`map_blocks`]): the pool's threads sleep between calls, and on a
//! virtual machine waking one can take longer than a mid-sized call.

/// Below this many elements a call stays on the calling thread.
#[cfg(feature = "rayon")]
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// `run` on every block, results in block order; in parallel when the
/// feature is on, the pool has more than one thread and the input has at
/// least `PARALLEL_MIN_ELEMENTS` elements.
///
/// In parallel, the caller asks the pool for up to `threads() - 1`
/// helpers and then takes blocks one at a time itself; a helper that
/// starts takes blocks the same way, and one that starts after the last
/// block is taken does nothing. The caller so never sleeps: it waits only
/// for the blocks helpers are running. (Handing every block to the pool,
/// as a parallel iterator does, put the caller to sleep and made it wait
/// for sleeping threads to wake: on a Zen 4 VM a 256 x 1000
/// cross-entropy call on two threads took 26 us longer than half the
/// one-thread call, against 36 us for the whole call. A pool of one
/// thread would only add that hand-off, so it runs nothing.)
pub(crate) fn map_blocks<B: Send, R: Send>(
    blocks: Vec<B>,
    elements: usize,
    run: impl Fn(B) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "rayon")]
    if elements >= PARALLEL_MIN_ELEMENTS && blocks.len() > 1 {
        let helpers = (threads() - 1).min(blocks.len() - 1);
        if helpers > 0 {
            return shared::map_blocks(blocks, helpers, run);
        }
    }
    let _ = elements;
    blocks.into_iter().map(run).collect()
}

/// The threads the work of a call may run on: the current pool's with the
/// `rayon` feature (inside `ThreadPool::install`, that pool's), else 1.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads().max(1)
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Blocks shared between the caller and helpers that may join late.
#[cfg(feature = "rayon")]
mod shared {
    use std::any::Any;
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    /// Bit 0 of [`Gate::state`]: the caller has closed the call, and a
    /// helper that starts now must not touch it.
    const CLOSED: usize = 1;
    /// One helper inside the call, counted in [`Gate::state`] above bit 0.
    const HELPER: usize = 2;

    /// A call's work as the helpers see it. Helpers are `'static` jobs of
    /// the pool that may start after the call has returned, so they hold
    /// the gate by `Arc` and reach the call's borrowed work only through
    /// `work`, and only after entering.
    struct Gate {
        /// The next block to take; at or past `blocks`, none is left.
        next: AtomicUsize,
        blocks: usize,
        /// [`CLOSED`] plus [`HELPER`] times the helpers inside the call.
        state: AtomicUsize,
        /// A helper's panic, for the caller to resume.
        panic: Mutex<Option<Box<dyn Any + Send>>>,
        /// The call's `Fn(block index)`, its lifetime erased: valid until
        /// the caller has closed the gate and seen no helper inside.
        work: *const (dyn Fn(usize) + Sync),
    }

    // SAFETY: `work` points to a `Sync` closure and is dereferenced only
    // by helpers inside the call, while the caller keeps it alive
    // (`Close`); everything else in the gate is `Send + Sync`.
    unsafe impl Send for Gate {}
    // SAFETY: as for `Send`.
    unsafe impl Sync for Gate {}

    impl Gate {
        /// Runs blocks until none is left.
        fn take_blocks(&self, work: &(dyn Fn(usize) + Sync)) {
            loop {
                let block = self.next.fetch_add(1, Ordering::Relaxed);
                if block >= self.blocks {
                    return;
                }
                work(block);
            }
        }

        /// A helper's job: enter unless the call is closed, take blocks,
        /// leave. A panic is kept for the caller, not left to the pool
        /// (whose default is to abort).
        fn help(&self) {
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                if state & CLOSED != 0 {
                    return;
                }
                match self.state.compare_exchange_weak(
                    state,
                    state + HELPER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => state = now,
                }
            }
            // SAFETY: the helper entered before the caller closed the gate,
            // and the caller does not return (nor unwind past the work)
            // until every helper that entered has left.
            let work = unsafe { &*self.work };
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.take_blocks(work))) {
                *self.panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(panic);
            }
            self.state.fetch_sub(HELPER, Ordering::Release);
        }
    }

    /// Closes the gate and waits for the helpers inside it to leave; on
    /// drop, so that the caller's own panic waits too.
    struct Close<'g>(&'g Gate);

    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.state.fetch_or(CLOSED, Ordering::AcqRel);
            // A helper inside runs at most one more block: spin, and
            // yield the core if that takes long (it may have been
            // descheduled).
            let mut spins = 0_u32;
            while self.0.state.load(Ordering::Acquire) != CLOSED {
                if spins < 1 << 12 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }

    /// [`super::map_blocks`] on the caller and up to `helpers` pool jobs.
    pub(super) fn map_blocks<B: Send, R: Send>(
        blocks: Vec<B>,
        helpers: usize,
        run: impl Fn(B) -> R + Sync,
    ) -> Vec<R> {
        let inputs: Vec<Mutex<Option<B>>> =
            blocks.into_iter().map(|b| Mutex::new(Some(b))).collect();
        let outputs: Vec<Mutex<Option<R>>> = inputs.iter().map(|_| Mutex::new(None)).collect();
        // Each index is taken once (`Gate::next`), so its input is there.
        let work = |block: usize| {
            let input = inputs[block]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(input) = input {
                let output = run(input);
                *outputs[block]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(output);
            }
        };
        let work: &(dyn Fn(usize) + Sync) = &work;
        // SAFETY: erases the borrow's lifetime; see `Gate::work`.
        let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(work) };
        let gate = Arc::new(Gate {
            next: AtomicUsize::new(0),
            blocks: inputs.len(),
            state: AtomicUsize::new(0),
            panic: Mutex::new(None),
            work: erased,
        });
        {
            let close = Close(&gate);
            for _ in 0..helpers {
                let gate = Arc::clone(&gate);
                rayon::spawn(move || gate.help());
            }
            gate.take_blocks(work);
            drop(close);
        }
        if let Some(panic) = gate
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            resume_unwind(panic);
        }
        // Every block was taken, and every helper that took one has left.
        outputs
            .into_iter()
            .map(|output| {
                output
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expect("every block ran")
            })
            .collect()
    }
}

#[cfg(all(test, feature = "rayon"))]
mod tests {
    use super::map_blocks;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    const ELEMENTS: usize = super::PARALLEL_MIN_ELEMENTS;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
    }

    #[test]
    fn every_block_runs_once_and_results_come_back_in_order() {
        for threads in [2, 3] {
            pool(threads).install(|| {
                for blocks in [2, 3, 17, 200] {
                    let runs = AtomicUsize::new(0);
                    let out = map_blocks((0..blocks).collect(), ELEMENTS, |b: usize| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        // Uneven blocks, so that threads overtake each other.
                        std::hint::black_box((0..(b % 7) * 1000).sum::<usize>());
                        b * b
                    });
                    assert_eq!(out, (0..blocks).map(|b| b * b).collect::<Vec<_>>());
                    assert_eq!(runs.load(Ordering::Relaxed), blocks);
                }
            });
        }
    }

    #[test]
    fn a_panicking_block_reaches_the_caller_and_the_pool_lives_on() {
        let pool = pool(2);
        for bad in [0, 1, 5] {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| {
                    map_blocks((0..8).collect(), ELEMENTS, |b: usize| {
                        assert_ne!(b, bad, "block {bad}");
                        b
                    })
                })
            }));
            assert!(result.is_err(), "block {bad}'s panic was lost");
        }
        let out = pool.install(|| map_blocks((0..8).collect(), ELEMENTS, |b: usize| b + 1));
        assert_eq!(out, (1..9).collect::<Vec<_>>());
    }

    /// With every other thread of the pool busy, the caller runs all the
    /// blocks and returns; the helper it asked for starts after the call
    /// is over and must do nothing.
    #[test]
    fn the_caller_does_not_wait_for_a_busy_pool() {
        let pool = pool(2);
        let (started, wait_started) = mpsc::channel();
        let (release, wait_release) = mpsc::channel::<()>();
        pool.spawn(move || {
            started.send(()).expect("the test waits");
            wait_release.recv().expect("the test releases");
        });
        wait_started.recv().expect("the busy job starts");
        let runs = AtomicUsize::new(0);
        let out = pool.install(|| {
            map_blocks((0..6).collect(), ELEMENTS, |b: usize| {
                runs.fetch_add(1, Ordering::Relaxed);
                b
            })
        });
        assert_eq!(out, (0..6).collect::<Vec<_>>());
        assert_eq!(runs.load(Ordering::Relaxed), 6);
        release.send(()).expect("the busy job waits");
        // The late helper has run by now, or runs on a pool that is
        // dropped next; either way it found the call closed.
        assert_eq!(
            pool.install(|| map_blocks(vec![1, 2], ELEMENTS, |b: i32| -b)),
            vec![-1, -2]
        );
    }
}
