//! Replays the fuzz corpus of the Arrow IPC decoder (`fuzz/corpus/arrow_ipc/`, and crash
//! reproducers in `fuzz/regressions/arrow_ipc/`) through the entry function the fuzz target
//! calls (`fuzz/src/tabular.rs`, included unchanged): no input may panic. Needs the
//! `tabular` feature (on in the workspace's test build).

#![cfg(feature = "tabular")]

#[path = "../../../fuzz/src/tabular.rs"]
mod entry;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{corpus, regressions};

#[test]
fn arrow_ipc_corpus() {
    corpus("arrow_ipc", entry::arrow_ipc);
}

#[test]
fn arrow_ipc_regressions() {
    regressions("arrow_ipc", entry::arrow_ipc);
}
