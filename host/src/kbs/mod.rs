//! The key broker (`cleanroom kbs`): each data owner runs one. It holds dataset keys sealed
//! under a master key in SQLite and releases a key only to an attested host running an
//! approved workload (invariant I2), speaking the Confidential Containers KBS protocol
//! (RCAR: `auth` → `attest` → `resource`), with the resource answered as a JWE to the
//! requester's ephemeral key.
//!
//! - [`protocol`]: the wire types shared by client and server.
//! - [`jwe`]: JWE ECDH-ES+A256KW / A256GCM on P-384 (RFC 7516/7518).
//! - [`store`]: the SQLite database, keys sealed under the master key.
//! - [`release`]: the release decision, as proof types.
//! - [`server`]: the axum HTTP server.
//! - [`client`]: the host side of the protocol.

pub mod client;
pub mod jwe;
pub mod protocol;
pub mod release;
pub mod server;
pub mod store;
