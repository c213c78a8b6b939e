//! Replays the fuzz corpora of the attestation parsers (`fuzz/corpus/<target>/`, and the
//! crash reproducers in `fuzz/regressions/<target>/`) through the entry functions the fuzz
//! targets call (`fuzz/src/attest.rs` with `fuzz/src/parts.rs`, included here unchanged): no
//! input may panic. Parse and verification results may be `Ok` or `Err`. Needs no sanitizer
//! or nightly build; `fuzz/run.sh` grows the corpora.

#[allow(dead_code)] // the fuzz crate uses the rest (seed writing)
#[path = "../../fuzz/src/parts.rs"]
mod parts;

#[path = "../../fuzz/src/attest.rs"]
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
fn snp_report_corpus() {
    corpus("snp_report", entry::snp_report);
}

#[test]
fn snp_chain_corpus() {
    corpus("snp_chain", entry::snp_chain);
}

#[test]
fn tdx_quote_corpus() {
    corpus("tdx_quote", entry::tdx_quote);
}

#[test]
fn azure_hcl_corpus() {
    corpus("azure_hcl", entry::azure_hcl);
}

#[test]
fn evidence_json_corpus() {
    corpus("evidence_json", entry::evidence_json);
}

#[test]
fn evidence_parts_corpus() {
    corpus("evidence_parts", entry::evidence_parts);
}

#[test]
fn crash_reproducers_no_longer_panic() {
    regressions("snp_report", entry::snp_report);
    regressions("snp_chain", entry::snp_chain);
    regressions("tdx_quote", entry::tdx_quote);
    regressions("azure_hcl", entry::azure_hcl);
    regressions("evidence_json", entry::evidence_json);
    regressions("evidence_parts", entry::evidence_parts);
}
