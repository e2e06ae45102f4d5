//! Fuzz target: the eval family (see `classloss_fuzz::families::eval`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Eval, data, false);
});
