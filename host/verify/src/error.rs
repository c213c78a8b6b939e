//! The verifier's errors: each a refusal (exit 1) unless the input could not be read.

use cleanroom_attest::AttestError;
use cleanroom_formats::envelope::EnvelopeError;
use cleanroom_formats::{ErrorClass, FormatError};

use crate::audit::AuditError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("audit log {path}: {source}")]
    AuditBroken {
        path: String,
        #[source]
        source: AuditError,
    },
    #[error("output {path} cannot be opened: {source}")]
    OutputUnopenable {
        path: String,
        #[source]
        source: EnvelopeError,
    },
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestError),
}

impl VerifyError {
    pub fn class(&self) -> ErrorClass {
        match self {
            VerifyError::Format(e) => e.class(),
            VerifyError::AuditBroken { .. }
            | VerifyError::OutputUnopenable { .. }
            | VerifyError::Attestation(_) => ErrorClass::Refused,
        }
    }
}
