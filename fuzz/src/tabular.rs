//! Entry functions for the parsers of `cleanroom-formats` behind its `tabular` feature: Arrow
//! IPC streams as a hostile module sends them to the host.
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by
//! `host/formats/tests/fuzz_corpus_tabular.rs` (the corpus replay in CI). Uses only
//! `cleanroom_formats` and `arrow` as it re-exports nothing else.

use cleanroom_formats::ipc;

/// [`ipc::decode`] (the push decoder over the bytes already in memory, batches validated),
/// exactly as the host decodes a module's output tables. Properties: every batch has the
/// stream's schema; what decodes re-encodes ([`ipc::encode`]) to a stream that decodes to the
/// same schema and batches.
pub fn arrow_ipc(data: &[u8]) {
    let Ok((schema, batches)) = ipc::decode(data.to_vec()) else {
        return;
    };
    for b in &batches {
        assert_eq!(b.schema(), schema, "a batch has the stream's schema");
    }
    if let Ok(again) = ipc::encode(&schema, &batches) {
        let (schema2, batches2) = ipc::decode(again).expect("what the host encodes decodes");
        assert_eq!(schema2, schema);
        assert_eq!(batches2, batches);
    }
}
