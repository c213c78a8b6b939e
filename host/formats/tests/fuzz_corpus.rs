//! Replays the fuzz corpora of the formats parsers (`fuzz/corpus/<target>/`, and the crash
//! reproducers in `fuzz/regressions/<target>/`) through the entry functions the fuzz targets
//! call (`fuzz/src/formats.rs` with `fuzz/src/parts.rs`, included here unchanged): no input
//! may panic. Parse and open results may be `Ok` or `Err`. Needs no sanitizer or nightly
//! build; `fuzz/run.sh` grows the corpora.

#[allow(dead_code)] // the fuzz crate uses the rest (seed writing)
#[path = "../../../fuzz/src/parts.rs"]
mod parts;

#[allow(dead_code)] // the fixed keys are also what fuzz/seedgen seals the seeds with
#[path = "../../../fuzz/src/formats.rs"]
mod entry;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{corpus, regressions};

#[test]
fn pme_key_material_corpus() {
    corpus("pme_key_material", entry::pme_key_material);
}

#[test]
fn sealed_stream_corpus() {
    corpus("sealed_stream", entry::sealed_stream);
}

#[test]
fn output_envelope_corpus() {
    corpus("output_envelope", entry::output_envelope);
}

#[test]
fn key_file_corpus() {
    corpus("key_file", entry::key_file);
}

#[test]
fn file_identity_corpus() {
    corpus("file_identity", entry::file_identity);
}

#[test]
fn kbs_json_corpus() {
    corpus("kbs_json", entry::kbs_json);
}

#[test]
fn jwe_corpus() {
    corpus("jwe", entry::jwe);
}

#[test]
fn audit_log_corpus() {
    corpus("audit_log", entry::audit_log);
}

#[test]
fn crash_reproducers_no_longer_panic() {
    regressions("sealed_stream", entry::sealed_stream);
    regressions("output_envelope", entry::output_envelope);
    regressions("key_file", entry::key_file);
    regressions("file_identity", entry::file_identity);
    regressions("kbs_json", entry::kbs_json);
    regressions("jwe", entry::jwe);
    regressions("audit_log", entry::audit_log);
}
