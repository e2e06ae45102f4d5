//! Fuzz target: the binary family (see `classloss_fuzz::families::binary`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    classloss_fuzz::run(classloss_fuzz::Family::Binary, data, false);
});
