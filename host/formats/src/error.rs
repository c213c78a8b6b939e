//! Errors of the shared formats, and the one classification every crate's errors map to
//! (exit code for the binaries, HTTP status for the servers).

use std::path::PathBuf;

use cleanroom_policy::PolicyError;

/// How an error is reported: refused by policy or verification, or a bad input / I/O error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Refused by policy or verification (exit 1; HTTP 403).
    Refused,
    /// Bad input, I/O, or anything else (exit 2; HTTP 400 or 500).
    Invalid,
}

impl ErrorClass {
    /// The process exit code: 1 refused, 2 bad input or I/O.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Refused => 1,
            ErrorClass::Invalid => 2,
        }
    }

    /// The HTTP status a server answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::Refused => 403,
            ErrorClass::Invalid => 400,
        }
    }
}

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

/// Errors reading and writing the shared file formats.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
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
    #[error("{path}: not a file name")]
    NotAFileName { path: String },
    #[error("writing a table failed: {what}")]
    Tabular { what: String },
    #[error("dataset `{dataset}` could not be read as {format}: {what}")]
    DatasetUnreadable {
        dataset: String,
        format: &'static str,
        what: String,
    },
}

impl FormatError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            FormatError::Policy(_) | FormatError::Sealed { .. } => ErrorClass::Refused,
            FormatError::DatasetUnreadable { .. } | FormatError::Tabular { .. } => {
                ErrorClass::Invalid
            }
            FormatError::Io { .. }
            | FormatError::BadFile { .. }
            | FormatError::BadKeyFile { .. }
            | FormatError::NotAFileName { .. } => ErrorClass::Invalid,
        }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
