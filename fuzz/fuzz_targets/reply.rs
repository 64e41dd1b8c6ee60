//! `cargo +nightly fuzz run reply`: see `fuzz_targets::targets::reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_targets::targets::reply(data);
});
