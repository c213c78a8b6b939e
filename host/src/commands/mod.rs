//! One module per command family. Each exposes `run(&Args) -> anyhow::Result<ExitCode>`.

pub mod attest;
pub mod audit;
pub mod contract;
pub mod dataset;
pub mod governance;
pub mod kbs;
pub mod measure;
pub mod member;
pub mod module;
pub mod output;
pub mod run;
pub mod workload;
