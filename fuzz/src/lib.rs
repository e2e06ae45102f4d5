//! The fuzz targets' shared code: the decoder ([`input`]), the contract
//! ([`check`]), the known-issue list ([`known`]) and one module per loss
//! family ([`families`]) that decodes a case and runs it through [`drive`].
//!
//! Every target asserts, for its losses (README, Testing, "Fuzzing"):
//! 1. no panic on any input (an `Err` is fine);
//! 2. with finite inputs and options, each call is `Ok` with a finite value,
//!    per-sample values and gradient, or `Err(Overflow)`; any other error is
//!    the same from every call;
//! 3. `forward` equals the fused value and `backward` the fused gradient,
//!    bit for bit with a contiguous buffer, within a few ulps with a
//!    strided, reversed or transposed one (how often the bits differ is
//!    counted and printed);
//! 4. `per_sample` is the same under each reduction and reduces to
//!    `forward` (`Sum`, `None`, and `Mean` where the divisor is known);
//! 5. in the large mode (the `threads` target), one thread and two give
//!    the same bits;
//! 6. in `f32`, an `Overflow` only where the same call in `f64` has
//!    something beyond `f32`.

pub mod check;
pub mod families;
pub mod input;
pub mod known;

use classloss::{Error, Float, Reduction};

use check::{
    Facts, Kind, Outcome, REDUCTIONS, beyond_f32, check_across, check_outcome, fail, identical,
    overflowed, pool,
};

/// The loss families, one fuzz target each.
#[derive(Clone, Copy, Debug)]
pub enum Family {
    Softmax,
    Robust,
    Binary,
    Margin,
    Metric,
    Eval,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Softmax,
        Family::Robust,
        Family::Binary,
        Family::Margin,
        Family::Metric,
        Family::Eval,
    ];
}

/// Decodes `data` into a case of `family` and checks it. `large` (the
/// `threads` target) tiles the input past the crate's parallel threshold
/// and runs it on pools of 1 and 2 threads. (The family targets do not:
/// libFuzzer's compare tracing finds any magic byte that would pick the
/// large mode, and a large input costs a thousand small ones.)
pub fn run(family: Family, data: &[u8], large: bool) {
    check::LIGHT.store(large, std::sync::atomic::Ordering::Relaxed);
    check::OPTION_MAX.store(0, std::sync::atomic::Ordering::Relaxed);
    check::OPTION_TINY.store(
        f64::INFINITY.to_bits(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut g = input::Gen::new(data, large);
    match family {
        Family::Softmax => families::softmax::run(&mut g),
        Family::Robust => families::robust::run(&mut g),
        Family::Binary => families::binary::run(&mut g),
        Family::Margin => families::margin::run(&mut g),
        Family::Metric => families::metric::run(&mut g),
        Family::Eval => families::eval::run(&mut g),
    }
}

/// One decoded case: it can run its loss in either float type under any
/// reduction.
pub trait Case: std::fmt::Debug + Sync {
    /// What the checks and the known-issue list know about the case.
    fn facts(&self) -> &Facts;
    /// Every call of the loss with reduction `r` in `F`; `None` when a
    /// setter rejected an option (not a failure).
    fn run<F: Float>(&self, r: Reduction) -> Option<Outcome>;
    /// What `Mean` divides by, where the case knows it.
    fn divisor(&self) -> Option<f64>;
    /// Checks of the case's own (`update_centers`).
    fn extra<F: Float>(&self) {}
}

/// Runs the contract on `case` in its float type.
pub fn drive<C: Case>(case: &C, large: bool) {
    if case.facts().f32 {
        drive_as::<f32, C>(case, large)
    } else {
        drive_as::<f64, C>(case, large)
    }
}

fn drive_as<F: Float, C: Case>(case: &C, large: bool) {
    let facts = case.facts();
    // The large mode runs on one thread first, then compares two.
    let first = |r| {
        if large {
            pool(1).install(|| case.run::<F>(r))
        } else {
            case.run::<F>(r)
        }
    };
    let Some(outs) = REDUCTIONS
        .iter()
        .map(|&r| first(r))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let outs: [Outcome; 3] = outs.try_into().expect("three reductions");
    for (r, o) in REDUCTIONS.iter().zip(&outs) {
        check_outcome(facts, *r, o, case);
    }
    check_across(facts, &outs, case.divisor(), case);
    if facts.f32 && facts.finite {
        for (r, o) in REDUCTIONS.iter().zip(&outs) {
            if overflowed(o)
                && let Some(exact) = case.run::<f64>(*r)
                // An f64 twin that rejects the input says nothing of f32's
                // range: the cosine tolerance, 1 + sqrt(eps), is the type's.
                && !matches!(&exact.forward, Err(e) if !matches!(e, Error::Overflow { .. }))
                && !beyond_f32(&exact)
            {
                let what = format!("{r}: f32 gives {o:?}\nf64 on the same inputs: {exact:?}");
                fail(facts, Kind::SpuriousOverflow, &what, case);
            }
        }
    }
    if large {
        for (r, o) in REDUCTIONS.iter().zip(&outs) {
            let Some(other) = pool(2).install(|| case.run::<F>(*r)) else {
                continue;
            };
            if let Err(e) = identical(o, &other) {
                let what = format!("{r}: 1 thread and 2 threads: {e}");
                fail(facts, Kind::Threads, &what, case);
            }
        }
    }
    case.extra::<F>();
}
