//! Entry functions of the fuzz targets, one per parser of untrusted bytes.
//!
//! Each `fuzz_targets/<name>.rs` calls `policy::<name>`, `attest::<name>`, `formats::<name>`,
//! `tabular::<name>` or `room::<name>` with libFuzzer's input. The replay tests
//! (`policy/tests/fuzz_corpus.rs`, `attest/tests/fuzz_corpus.rs`,
//! `host/formats/tests/fuzz_corpus*.rs`, `host/room/tests/fuzz_corpus.rs`) include these
//! same files with `#[path]` and feed every file of `fuzz/corpus/<name>/` through the same
//! function, so CI replays the corpora without a sanitizer build.
//!
//! The functions use only the public API of `cleanroom-policy` / `cleanroom-attest` /
//! `cleanroom-formats` / `cleanroom-room` and crates those already depend on (no
//! `arbitrary`, no libfuzzer): a replay test can include them unchanged. A function may
//! return early on any error; it panics only when a library call panics or a documented
//! property (noted at the assertion) does not hold.

pub mod attest;
pub mod formats;
pub mod parts;
pub mod policy;
pub mod room;
pub mod tabular;
