//! Replays the seed corpus (`fuzz/corpus/<target>/seed-*`, the committed part) and every input
//! a fuzz run ever crashed on (`fuzz/regressions/<target>/`) through the targets, on stable: what
//! the fuzzer found stays fixed without a nightly toolchain.

use std::fs;
use std::path::Path;

/// The inputs in `dir`; in a corpus, only the committed seeds (not what local runs added).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let seeds_only = dir.parent().and_then(Path::file_name) == Some("corpus".as_ref());
    out.retain(|p| {
        p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !seeds_only || n.starts_with("seed-"))
    });
    out.sort();
    out
}

fn replay(kind: &str) -> usize {
    let mut count = 0;
    for target in fuzz_targets::TARGETS {
        for path in files(&fuzz_targets::fuzz_dir().join(kind).join(target)) {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("{target}: {}", path.display());
            assert!(fuzz_targets::run(target, &data));
            count += 1;
        }
    }
    count
}

#[test]
fn the_seed_corpus_passes_every_target() {
    let n = replay("corpus");
    assert!(
        n >= 5 * fuzz_targets::TARGETS.len(),
        "only {n} corpus files"
    );
}

#[test]
fn every_regression_input_passes() {
    replay("regressions");
}

#[test]
fn every_target_has_a_seed_corpus() {
    for target in fuzz_targets::TARGETS {
        let dir = fuzz_targets::fuzz_dir().join("corpus").join(target);
        assert!(!files(&dir).is_empty(), "no corpus in {}", dir.display());
    }
}
