//! The verifier's commands, shared by the `cleanroom-verify` binary and the `cleanroom` CLI:
//! argument parsing and printing only.

pub mod attest;
pub mod audit;
pub mod budget;
pub mod output;
