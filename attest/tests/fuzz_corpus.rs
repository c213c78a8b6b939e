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

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::{corpus, regressions};

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
