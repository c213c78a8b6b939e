//! Replays fuzz corpora through a fuzz target's entry function: no input may panic. Not a
//! module of the fuzz crate: the replay tests of the parsing crates
//! (`policy/tests/fuzz_corpus.rs`, `attest/tests/fuzz_corpus.rs`,
//! `host/formats/tests/fuzz_corpus.rs`) include it with `#[path]`, so CI replays every
//! committed corpus without a sanitizer or nightly build.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The fuzz directory: `fuzz/` in the nearest directory above the including crate that has
/// one (the repository root, one level above `policy/`, two above `host/formats/`).
fn fuzz_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|d| d.join("fuzz"))
        .find(|d| d.join("replay.rs").is_file())
        .unwrap_or_else(|| panic!("no fuzz/replay.rs above {}", manifest.display()))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Feed every file of `dir` to `entry`; fail naming each file that panicked.
fn replay(dir: &Path, entry: fn(&[u8])) -> usize {
    let mut panicked = Vec::new();
    let all = files(dir);
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| entry(&bytes))).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "inputs that panic:\n{}",
        panicked.join("\n")
    );
    all.len()
}

pub fn corpus(target: &str, entry: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(target);
    let n = replay(&dir, entry);
    assert!(n > 0, "{} holds no inputs", dir.display());
}

pub fn regressions(target: &str, entry: fn(&[u8])) {
    replay(&fuzz_dir().join("regressions").join(target), entry);
}
