//! The broker's errors (the release decision's refusals are [`crate::release::Refusal`]).

use cleanroom_formats::{ErrorClass, FormatError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KbsError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("key broker database {path}: {what}")]
    Store { path: String, what: String },
    #[error("the broker master key does not open database {path} (wrong master key?)")]
    WrongMasterKey { path: String },
    #[error("broker master key {path}: not a broker master key (base64 of 32 bytes)")]
    BadMasterKey { path: String },
    #[error("cannot listen: {what}")]
    Listen { what: String },
    #[error("broker TLS identity: {what}")]
    Tls { what: String },
    #[error("refusing to serve plain HTTP on {addr}: plain HTTP is for 127.0.0.1 only")]
    PlainHttpNotLoopback { addr: String },
    #[error(
        "key broker database {path} was made before the event log was chained; chain it once with `cleanroom-kbs upgrade --db {path} --master-key FILE` (its events so far are chained as they are found)"
    )]
    EventLogUnchained { path: String },
    #[error("dataset `{dataset}` is not in {contract}")]
    UnknownDataset { dataset: String, contract: String },
    #[error("{path} is the key of dataset `{key_dataset}`, not `{dataset}`")]
    KeyOfAnotherDataset {
        path: String,
        key_dataset: String,
        dataset: String,
    },
    #[error("sealed file {path}: {what}")]
    SealedFileUnidentifiable { path: String, what: String },
    #[error("the broker's event log does not verify: {0}")]
    EventChain(#[from] crate::events::EventChainError),
}

impl KbsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            KbsError::Format(e) => e.class(),
            KbsError::WrongMasterKey { .. } | KbsError::EventChain(_) => ErrorClass::Refused,
            KbsError::Store { .. }
            | KbsError::BadMasterKey { .. }
            | KbsError::Tls { .. }
            | KbsError::Listen { .. }
            | KbsError::PlainHttpNotLoopback { .. }
            | KbsError::EventLogUnchained { .. }
            | KbsError::UnknownDataset { .. }
            | KbsError::KeyOfAnotherDataset { .. }
            | KbsError::SealedFileUnidentifiable { .. } => ErrorClass::Invalid,
        }
    }
}

pub type Result<T, E = KbsError> = std::result::Result<T, E>;
