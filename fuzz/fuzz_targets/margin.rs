//! Fuzz target: the margin family (see `classloss_fuzz::families::margin`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Margin, data, false);
});
