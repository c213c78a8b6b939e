use crate::Platform;

/// Why evidence was refused. Each variant names the check that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    #[error("evidence platform `{platform}` is not in the allowed platforms")]
    PlatformNotAllowed { platform: Platform },
    #[error(
        "evidence is from the simulated platform (INSECURE) but the policy does not set allow_simulated = true"
    )]
    SimulatedNotAllowed,
    #[error("verification of `{platform}` evidence is not built into this binary")]
    PlatformNotSupported { platform: Platform },
    #[error("evidence is malformed: {what}")]
    Malformed { what: String },
    #[error("certificate chain does not verify: {what}")]
    ChainInvalid { what: String },
    #[error("report signature does not verify with the signing key of the chain")]
    SignatureInvalid,
    #[error("debug is enabled in the guest policy/attributes and the policy forbids it")]
    DebugEnabled,
    #[error("measurement {actual} is not one of the {allowed} allowed measurements")]
    MeasurementNotAllowed { actual: String, allowed: usize },
    #[error("REPORT_DATA does not bind this request: expected {expected}, evidence has {actual}")]
    ReportDataMismatch { expected: String, actual: String },
    #[error(
        "launch-bound data (HOST_DATA / MRCONFIGID) does not match the contract digest: expected {expected}, evidence has {actual}"
    )]
    HostDataMismatch { expected: String, actual: String },
    #[error("TCB {actual} is below the minimum {minimum}")]
    TcbTooLow { actual: String, minimum: String },
}
