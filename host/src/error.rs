//! The host's error type: one enum, variants named for what went wrong, carrying the input
//! they concern (file names, member and dataset names; never data values).

use std::path::PathBuf;

use cleanroom_attest::AttestError;
use cleanroom_policy::PolicyError;

/// Errors of the sealed-stream format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("not a Cleanroom sealed stream (bad magic)")]
    BadMagic,
    #[error("unsupported sealed-stream version {0}")]
    UnsupportedVersion(u8),
    #[error("sealed-stream header is malformed: {0}")]
    BadHeader(&'static str),
    #[error("sealed with key id {found}, but the key given has id {expected}")]
    WrongKey { expected: String, found: String },
    #[error("sealed for `{found}`, expected `{expected}`")]
    WrongName { expected: String, found: String },
    #[error(
        "segment {index} failed authentication (modified, reordered, or taken from another file)"
    )]
    SegmentAuthFailed { index: u32 },
    #[error("stream is truncated: it ends after segment {after} without its final segment")]
    Truncated { after: u32 },
    #[error("too many segments")]
    TooManySegments,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestError),
    #[error("{path}: sealed stream: {source}")]
    Sealed {
        path: String,
        #[source]
        source: StreamError,
    },
    #[error("{path}: {what}")]
    BadFile { path: String, what: String },
    #[error("key file {path}: {what}")]
    BadKeyFile { path: String, what: String },
    #[error("key broker {broker} refused the key for `{resource}`: {reason}")]
    KeyRefused {
        broker: String,
        resource: String,
        reason: String,
    },
    #[error("key broker {broker} could not be reached: {reason}")]
    BrokerUnreachable { broker: String, reason: String },
    #[error("key broker {broker} refused the governance message: {reason}")]
    GovernanceRefused { broker: String, reason: String },
    #[error("key broker database {path}: {what}")]
    BrokerStore { path: String, what: String },
    #[error("the broker master key does not open database {path} (wrong master key?)")]
    WrongMasterKey { path: String },
    #[error("dataset `{dataset}` has {rows} rows, fewer than its min_rows {min_rows}")]
    TooFewRows {
        dataset: String,
        rows: u64,
        min_rows: u64,
    },
    #[error("column `{column}` is not in allowed_fields of {views}")]
    ColumnNotAllowed { column: String, views: String },
    #[error("query refused: {reason}")]
    QueryRefused { reason: String },
    #[error(
        "query failed while executing ({category}); details are withheld because they may contain data values"
    )]
    QueryFailed { category: &'static str },
    #[error("dataset `{dataset}` could not be read as {format}: {what}")]
    DatasetUnreadable {
        dataset: String,
        format: &'static str,
        what: String,
    },
    #[error("output recipient `{recipient}` has no usable encryption key: {what}")]
    BadRecipient { recipient: String, what: String },
    #[error("output {path} cannot be opened: {what}")]
    OutputUnopenable { path: String, what: String },
    #[error("audit log {path}: entry {seq}: {what}")]
    AuditBroken {
        path: String,
        seq: u64,
        what: String,
    },
    #[error("module refused: {0}")]
    Module(String),
    #[error("{0}")]
    Usage(String),
}

impl HostError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this error is a refusal by policy (exit 1) rather than an operational error
    /// (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            HostError::Policy(_)
                | HostError::Attestation(_)
                | HostError::Sealed { .. }
                | HostError::KeyRefused { .. }
                | HostError::GovernanceRefused { .. }
                | HostError::TooFewRows { .. }
                | HostError::ColumnNotAllowed { .. }
                | HostError::QueryRefused { .. }
                | HostError::Module(_)
                | HostError::AuditBroken { .. }
                | HostError::WrongMasterKey { .. }
        )
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
