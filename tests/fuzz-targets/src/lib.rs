//! The bodies of the fuzz targets in `fuzz/`: every parser of bytes the bus did not write
//! (replies from Redis, entries and dead letters another service wrote, envelopes), driven from
//! raw fuzzer input. Each target checks what its parser promises beyond not panicking (round
//! trips, agreement between parsers); a panic anywhere is a finding.
//!
//! The same functions replay the seed corpus and every regression input as ordinary tests on
//! stable (`tests/corpus.rs`), so a crash found once stays fixed without a nightly toolchain.
//!
//! | target        | input                                                    |
//! |---------------|----------------------------------------------------------|
//! | `resp`        | raw RESP2/RESP3 bytes, parsed by redis-rs, then by ours  |
//! | `reply`       | a `redis::Value` built from bytes ([`value`])            |
//! | `dead_letter` | a dead-letter entry: `id\0field\0value\0...`             |
//! | `envelope`    | envelope JSON, decoded through the registry              |
//! | `stream_id`   | a stream entry id                                        |

pub mod events;
pub mod targets;
pub mod value;

use std::path::{Path, PathBuf};

/// Every target, by name (`fuzz/fuzz_targets/<name>.rs`, `fuzz/corpus/<name>/`).
pub const TARGETS: &[&str] = &["resp", "reply", "dead_letter", "envelope", "stream_id"];

/// Runs target `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "resp" => targets::resp(data),
        "reply" => targets::reply(data),
        "dead_letter" => targets::dead_letter(data),
        "envelope" => targets::envelope(data),
        "stream_id" => targets::stream_id(data),
        _ => return false,
    }
    true
}

/// The `fuzz/` directory of the repository.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}
