//! `cargo +nightly fuzz run envelope`: see `fuzz_targets::targets::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_targets::targets::envelope(data);
});
