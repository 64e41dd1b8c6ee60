//! `cargo +nightly fuzz run stream_id`: see `fuzz_targets::targets::stream_id`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_targets::targets::stream_id(data);
});
