//! # cleanroom-room
//!
//! The room: what runs inside the confidential VM and what every member's reference
//! measurement covers. Its binary, `cleanroom-room`, contains the run stages, the query
//! engine (DataFusion), the guards, the Wasm sandbox (wasmtime), the audit writer and the
//! evidence sources; it contains no key broker, no demo, no guest build and no member
//! tooling (a test reads `cargo metadata` and enforces that).
//!
//! ## Module map
//! - [`run`]: one run of an approved workload as typed stages (admit → attest → keys →
//!   load → SQL or module → guard → seal), audited at every decision.
//! - [`engine`], [`guards`]: DataFusion over in-memory views of allowed fields; the
//!   minimum-group-size guard as a plan rewrite (distinct privacy units per group).
//! - [`rules`]: the query rules on the logical plan (allowed aggregates and functions,
//!   column roles, joins, where the privacy units are).
//! - [`dp`]: differentially private SQL releases: bounded per-unit contributions and
//!   OpenDP's threshold and noise mechanisms.
//! - [`deadline`]: a deadline checked inside DataFusion's operators (a module's queries).
//! - [`sandbox`]: Wasm components under wasmtime, linked only to their world's imports
//!   (see `wit/` and `docs/modules.md`).
//! - [`service`]: the room as a service (`serve`): boot attestation, attested HTTPS,
//!   members' signed requests, the run queue.
//! - [`requests`]: the service's signed requests as its routes parse and check them before
//!   anything changes (fuzzed: `room_api`).
//! - [`audit`]: the audit-log writer.
//! - [`attestation`]: the room's evidence sources and its `sim` measurement.
//! - [`kbs_client`]: the room's side of the key broker protocol.
//! - [`commands`]: `cleanroom-room run` (clap).
//! - [`error`]: the errors, [`RoomError`] and the typed refusals.
//!
//! ## What it refuses
//! To run without every member's contract signature and every input owner's approval; to
//! ask for keys before its own evidence satisfies the contract; to register any column
//! outside `allowed_fields`; a query breaking the contract's query rules (checked before
//! any key is requested); to release a non-aggregate result or a group with fewer distinct
//! privacy units than the minimum size; to write plaintext results anywhere but inside the sealed envelope.
//!
//! ## Trust boundary
//! Everything outside the confidential VM is untrusted: files (authenticated on read),
//! brokers' network path (the key travels as a JWE to a key bound in the evidence), the
//! operator (sees only sealed outputs and the audit log).

// `deny`, not `forbid`: one module, `sandbox::precompiled`, allows `unsafe` for
// `Component::deserialize` and says why it is sound.
#![deny(unsafe_code)]

pub mod attestation;
pub mod audit;
pub mod commands;
pub mod deadline;
pub mod dp;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod guards;
pub mod kbs_client;
pub mod requests;
pub mod rules;
pub mod run;
pub mod sandbox;
pub mod sealed_parquet;
pub mod sealed_rows;
pub mod service;

pub use error::RoomError;

/// The classification of this crate's errors in an error chain (for the binaries).
pub fn classify(
    cause: &(dyn std::error::Error + 'static),
) -> Option<cleanroom_formats::ErrorClass> {
    cause.downcast_ref::<RoomError>().map(RoomError::class)
}
