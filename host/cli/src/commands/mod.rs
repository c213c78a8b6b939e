//! One module per command family. Each exposes `run(&Args) -> anyhow::Result<ExitCode>`.
//! `kbs` and `run` hand over to the broker's and the room's own binaries
//! ([`delegate`]); `audit`, `output` and `attest` are the verifier's commands.

pub mod contract;
pub mod dataset;
pub mod delegate;
pub mod governance;
pub mod measure;
pub mod member;
pub mod module;
pub mod room;
pub mod workload;
