//! Fuzz target: every family on inputs tiled past the crate's parallel
//! threshold, run on a pool of 1 thread and one of 2 (bit-identical results).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&first, rest)) = data.split_first() {
        let family =
            classloss_fuzz::Family::ALL[first as usize % classloss_fuzz::Family::ALL.len()];
        classloss_fuzz::run(family, rest, true);
    }
});
