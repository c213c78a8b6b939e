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
}

impl KbsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            KbsError::Format(e) => e.class(),
            KbsError::WrongMasterKey { .. } => ErrorClass::Refused,
            KbsError::Store { .. } | KbsError::BadMasterKey { .. } => ErrorClass::Invalid,
        }
    }
}

pub type Result<T, E = KbsError> = std::result::Result<T, E>;
