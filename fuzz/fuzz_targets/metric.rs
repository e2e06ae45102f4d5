//! Fuzz target: the metric family (see `classloss_fuzz::families::metric`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Metric, data, false);
});
