//! # cleanroom-kbs
//!
//! The key broker each data owner runs (`cleanroom-kbs`). It holds dataset keys sealed under
//! a master key in SQLite and releases a key only to an attested room running a workload the
//! owner approved (invariant I2), speaking the Confidential Containers KBS protocol (RCAR:
//! `auth` → `attest` → `resource`), with the resource answered as a JWE to the requester's
//! ephemeral key. It trusts the owner's own files and the CPU vendors' roots, nothing else;
//! it contains no room, no engine and no sandbox (a test enforces the dependency direction).
//!
//! ## Module map
//! - [`store`]: the SQLite database, keys sealed under the master key.
//! - [`events`]: the event log's vocabulary and hash chain (`events --verify`).
//! - [`release`]: the release decision, as proof types.
//! - [`server`]: the axum HTTPS server (sessions bounded per client, bodies capped per
//!   route, refusals counted rather than stored in full).
//! - [`tls`]: the broker's self-signed TLS identity (pinned by contracts) and its listener.
//! - [`commands`]: `init|serve|put|events|upgrade` (clap), shared with the `cleanroom` CLI.
//! - [`error`]: the errors, [`KbsError`].
//!
//! The wire types and the JWE are in `cleanroom-formats` (the room speaks them too).

pub mod commands;
pub mod error;
pub mod events;
pub mod release;
pub mod server;
pub mod store;
pub mod tls;

pub use error::KbsError;

/// The classification of this crate's errors in an error chain (for the binaries).
pub fn classify(
    cause: &(dyn std::error::Error + 'static),
) -> Option<cleanroom_formats::ErrorClass> {
    cause.downcast_ref::<KbsError>().map(KbsError::class)
}
