//! Replays the fuzz corpora of the policy parsers (`fuzz/corpus/<target>/`, and the crash
//! reproducers in `fuzz/regressions/<target>/`) through the entry functions the fuzz targets
//! call (`fuzz/src/policy.rs`, included here unchanged): no input may panic. Parse results may
//! be `Ok` or `Err`. Needs no sanitizer or nightly build; `fuzz/run.sh` grows the corpora.

#[path = "../../fuzz/src/policy.rs"]
mod entry;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz");

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

fn corpus(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(FUZZ).join("corpus").join(target);
    let n = replay(&dir, entry);
    assert!(n > 0, "{} holds no inputs", dir.display());
}

fn regressions(target: &str, entry: fn(&[u8])) {
    replay(&Path::new(FUZZ).join("regressions").join(target), entry);
}

#[test]
fn contract_toml_corpus() {
    corpus("contract_toml", entry::contract_toml);
}

#[test]
fn workload_toml_corpus() {
    corpus("workload_toml", entry::workload_toml);
}

#[test]
fn cose_bytes_corpus() {
    corpus("cose_bytes", entry::cose_bytes);
}

#[test]
fn cose_base64_corpus() {
    corpus("cose_base64", entry::cose_base64);
}

#[test]
fn crash_reproducers_no_longer_panic() {
    regressions("contract_toml", entry::contract_toml);
    regressions("workload_toml", entry::workload_toml);
    regressions("cose_bytes", entry::cose_bytes);
    regressions("cose_base64", entry::cose_base64);
}
