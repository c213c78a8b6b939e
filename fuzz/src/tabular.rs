//! Entry functions for the parsers of `cleanroom-formats` behind its `tabular` feature: Arrow
//! IPC streams as a hostile module sends them to the host.
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by
//! `host/formats/tests/fuzz_corpus_tabular.rs` (the corpus replay in CI). Uses only
//! `cleanroom_formats`.

use cleanroom_formats::ipc;

/// [`ipc::decode`] (the push decoder over the bytes already in memory, batches validated),
/// exactly as the host decodes a module's output tables. Properties: every batch has the
/// stream's schema; what decodes re-encodes ([`ipc::encode`]) to a stream that decodes to as
/// many columns and rows.
///
/// The host catches a panic inside arrow's decoder (`ipc::decode`; arrow-ipc 59 panics on a
/// forged buffer length). libfuzzer-sys installs a panic hook that aborts on every panic,
/// caught or not, so this puts the standard hook back once: a caught panic is then the
/// error it is, and a panic nothing catches still aborts the input (libfuzzer-sys aborts
/// when one unwinds out of the target).
pub fn arrow_ipc(data: &[u8]) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok((schema, batches)) = ipc::decode(data.to_vec()) else {
        return;
    };
    for b in &batches {
        assert_eq!(b.schema(), schema, "a batch has the stream's schema");
    }
    // Not schema equality: a timestamp zone of "" reads back as no zone (arrow-ipc writes
    // an empty zone as absent; `fuzz/regressions/arrow_ipc/empty-timezone-does-not-round-trip`).
    if let Ok(again) = ipc::encode(&schema, &batches) {
        let (schema2, batches2) = ipc::decode(again).expect("what the host encodes decodes");
        assert_eq!(schema2.fields().len(), schema.fields().len());
        assert_eq!(
            batches2.iter().map(|b| b.num_rows()).sum::<usize>(),
            batches.iter().map(|b| b.num_rows()).sum::<usize>()
        );
    }
}
