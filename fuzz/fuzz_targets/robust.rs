//! Fuzz target: the robust family (see `classloss_fuzz::families::robust`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Robust, data, false);
});
