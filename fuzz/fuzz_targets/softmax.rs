//! Fuzz target: the softmax family (see `classloss_fuzz::families::softmax`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Softmax, data, false);
});
