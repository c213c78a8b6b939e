//! Replays the fuzz corpora of the policy parsers (`fuzz/corpus/<target>/`, and the crash
//! reproducers in `fuzz/regressions/<target>/`) through the entry functions the fuzz targets
//! call (`fuzz/src/policy.rs`, included here unchanged): no input may panic. Parse results may
//! be `Ok` or `Err`. Needs no sanitizer or nightly build; `fuzz/run.sh` grows the corpora.

#[path = "../../fuzz/src/policy.rs"]
mod entry;

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::{corpus, regressions};

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
