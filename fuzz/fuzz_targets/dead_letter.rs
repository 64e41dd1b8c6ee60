//! `cargo +nightly fuzz run dead_letter`: see `fuzz_targets::targets::dead_letter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_targets::targets::dead_letter(data);
});
