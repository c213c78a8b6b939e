//! # cleanroom-policy
//!
//! The rules every member agrees to, as data and pure functions.
//!
//! ## Module map
//! - [`field_type`]: the column types a contract schema declares and their spelling.
//! - [`contract`]: the `contract.toml` model, strict parsing (unknown fields, duplicates,
//!   dangling references are errors naming the field and line) and the contract digest
//!   (SHA-256 of the RFC 8785 canonical JSON of the parsed contract).
//! - [`message`]: COSE_Sign1 (RFC 9052, ES384) signed messages: contract acceptance, workload
//!   proposals and approvals, suspension; member key fingerprints.
//! - [`workload`]: the workload model (SQL and/or module digest, inputs, parameters, output)
//!   and its digest.
//! - [`proposal`]: `workload-propose` messages (the whole workload, and for modules the
//!   component's digest, world and imports) and the `governance.proposers` rule.
//! - [`approval`]: who must sign what before a run may start (invariant I3), producing an
//!   [`approval::Approved`] proof.
//! - [`governance`]: suspend and resume messages and the suspensions in force (I3).
//! - [`query_rules`]: the aggregate and scalar functions a query may use and the column
//!   roles (dimension, metric, min/max, join key, filter) the room judges plans by.
//! - [`dp`]: differential privacy: a dataset's ε budget and contribution bounds, a
//!   workload's `dp` request, ε as an exact quantity (micro-units).
//! - [`request`]: members' signed requests to a room service (run a workload, fetch an
//!   output): freshness, nonce form, who may request a run.
//! - [`guards`]: the effective output guards of a run (minimum rows per input, minimum group
//!   size, output caps).
//!
//! ## What it refuses
//! A contract with unknown fields, duplicate names, owners or recipients that are not
//! members, allowed fields outside the schema, dataset locations that climb out of the data
//! directory, dataset names outside `[a-z0-9_-]` words (they become SQL table names, file
//! names and URL hosts), an SNP policy without `min_tcb`, a TDX policy that neither pins
//! RTMR0-2 nor says `"any"` for them; a contract lacking any member's valid signature, or
//! carrying a signature by a key that is not a member's; a workload missing an approval from
//! the owner of any input. What a contract weakens on purpose (`rtmrN = "any"`, debug,
//! migration agent, simulation) is listed by [`Contract::attestation_warnings`].
//!
//! ## Trust boundary
//! Pure: no I/O, no async, no clock. Time is a parameter (unix seconds). Callers read the
//! files; this crate decides.

#![forbid(unsafe_code)]

pub mod approval;
pub mod contract;
pub mod dp;
mod error;
pub mod field_type;
pub mod governance;
pub mod guards;
pub mod message;
pub mod proposal;
pub mod query_rules;
pub mod request;
pub mod workload;

pub use contract::{AttestationWarning, Contract, ContractDigest, PrivacyWarning, SignedContract};
pub use error::PolicyError;
pub use message::{MessageType, SignedMessage};
pub use workload::Workload;

/// Lowercase hex of SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
