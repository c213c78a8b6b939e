//! The verifier's errors: each a refusal (exit 1) unless the input could not be read.

use cleanroom_attest::AttestError;
use cleanroom_formats::{ErrorClass, FormatError};

use crate::audit::AuditError;
use crate::evidence::EvidenceError;
use crate::output::OutputError;

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
        source: OutputError,
    },
    #[error("evidence {path}: {source}")]
    Evidence {
        path: String,
        #[source]
        source: EvidenceError,
    },
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestError),
}

impl VerifyError {
    pub fn class(&self) -> ErrorClass {
        use cleanroom_formats::envelope::EnvelopeError as E;
        match self {
            VerifyError::Format(e) => e.class(),
            // The wrong name, key or file: bad input, not a verdict on the output.
            VerifyError::OutputUnopenable {
                source:
                    OutputError::Envelope(
                        E::NotARecipient(_) | E::UnwrapFailed(_) | E::NotAnOutput | E::BadMeta,
                    ),
                ..
            } => ErrorClass::Invalid,
            VerifyError::AuditBroken { .. }
            | VerifyError::OutputUnopenable { .. }
            | VerifyError::Evidence { .. }
            | VerifyError::Attestation(_) => ErrorClass::Refused,
        }
    }
}
