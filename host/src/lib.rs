//! # cleanroom-host
//!
//! The `cleanroom` binary and its library: everything that touches files, the network or
//! the clock. Policy decisions come from `cleanroom-policy` (pure), attestation verdicts
//! from `cleanroom-attest`.
//!
//! ## Module map
//! - [`cli`], [`commands`]: the command-line interface, one module per command family.
//! - [`run`]: one run of an approved workload, end to end, audited at every decision.
//! - [`engine`], [`guards`]: DataFusion over in-memory views of allowed fields; the
//!   minimum-group-size guard as a plan rewrite; output caps.
//! - [`kbs`]: the key broker (server, client, release decision, SQLite store, JWE).
//! - [`seal`]: the sealed-stream format, Parquet Modular Encryption, the HPKE output envelope.
//! - [`audit`]: the hash-chained, checkpoint-signed audit log.
//! - [`attestation`]: the host's evidence sources and contract → reference values.
//! - [`fsutil`]: cap-std directory handles and atomic commits; [`keys`]: member key files.
//! - [`sandbox`]: Wasm components under wasmtime, linked only to their world's imports
//!   (see `wit/` and `docs/modules.md`).
//! - [`demo`]: the two-party demo.
//!
//! ## What it refuses
//! To run without every member's contract signature and every input owner's approval; to
//! ask for keys before its own evidence satisfies the contract; to register any column
//! outside `allowed_fields`; to release a non-aggregate result or a group below the minimum
//! size; to write plaintext results anywhere but inside the sealed envelope.
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
pub mod cli;
pub mod clock;
pub mod commands;
pub mod demo;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod guards;
pub mod guest_build;
pub mod kbs;
pub mod keys;
pub mod module_run;
pub mod run;
pub mod sandbox;
pub mod seal;
