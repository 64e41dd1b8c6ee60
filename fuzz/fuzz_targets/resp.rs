//! `cargo +nightly fuzz run resp`: see `fuzz_targets::targets::resp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_targets::targets::resp(data);
});
