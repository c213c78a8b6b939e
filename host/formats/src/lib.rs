//! # cleanroom-formats
//!
//! The formats every party shares, and nothing else: what the room writes, what a broker
//! speaks, what a recipient opens and an auditor checks. No query engine, no sandbox, no
//! server (the `https` listener is a feature only servers turn on): a verifier or a recipient links this crate without wasmtime or DataFusion.
//!
//! ## Module map
//! - [`stream`]: the sealed-stream format (AES-256-GCM segments, header digest as AAD).
//! - [`envelope`]: the output envelope (HPKE per recipient around a sealed stream, signed by
//!   the run's identity key; module-chosen names only in the sealed inner header).
//! - [`keyfile`]: dataset key files; [`keys`]: member signing and encryption key files.
//! - [`identity`]: the identity of a sealed dataset file (what an owner registers with its
//!   key, so the room refuses another version of the file).
//! - [`tls`] (feature `tls`): the pinned-key TLS client configuration for key brokers and
//!   room services; [`https`] (feature `https`): the HTTPS listener both serve on.
//! - [`kbs_protocol`], [`jwe`]: the key broker protocol's wire types and its JWE.
//! - [`room_protocol`]: the room service's wire types.
//! - [`audit`]: the audit log's entry format and its typed vocabulary ([`audit::Step`],
//!   [`audit::Decision`]).
//! - [`load`]: contracts, workloads and signed messages as members hand them around.
//! - [`fsutil`]: cap-std directory handles and atomic commits; [`clock`]: the wall clock.
//! - [`tabular`], [`parquet`], [`ipc`] (feature `tabular`): Arrow schemas of contract
//!   datasets, CSV / JSON parsing, Parquet Modular Encryption, Arrow IPC to and from modules; [`pme`]: the key material of PME files written
//!   by PyArrow's or Spark's key tools (parquet-mr local wrapping).
//! - [`error`]: the errors, [`FormatError`], and [`ErrorClass`], the one map from any error of ours to an
//!   exit code and an HTTP status.

pub mod audit;
pub mod clock;
pub mod envelope;
pub mod error;
pub mod fsutil;
#[cfg(feature = "https")]
pub mod https;
pub mod identity;
#[cfg(feature = "tabular")]
pub mod ipc;
pub mod jwe;
pub mod kbs_protocol;
pub mod keyfile;
pub mod keys;
pub mod load;
#[cfg(feature = "tabular")]
pub mod parquet;
pub mod pme;
pub mod room_protocol;
pub mod stream;
#[cfg(feature = "tabular")]
pub mod tabular;
#[cfg(feature = "tls")]
pub mod tls;

pub use error::{ErrorClass, FormatError, StreamError};
