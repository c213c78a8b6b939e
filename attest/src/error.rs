use crate::Platform;

/// Why evidence was refused. Each variant names the check that failed and carries the
/// offending values, so a refusal printed to an operator or a member says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    // ---- policy-level ----
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

    // ---- certificate chains (SNP: ARK -> ASK/ASVK -> VCEK/VLEK; sim: root -> chip) ----
    #[error("certificate chain does not verify: {what}")]
    ChainInvalid { what: String },
    #[error(
        "the {role} certificate is missing from the evidence (no network fetch on the verification path)"
    )]
    MissingCertificate { role: String },
    #[error(
        "root certificate `{subject}` is not one of AMD's published ARKs (Milan, Genoa, Turin)"
    )]
    UntrustedRoot { subject: String },
    #[error("certificate `{subject}` is not signed by `{signer}`")]
    CertificateSignatureInvalid { signer: String, subject: String },
    #[error("certificate `{subject}` expired at {not_after} (verification time {at})")]
    CertificateExpired {
        subject: String,
        not_after: String,
        at: String,
    },
    #[error("certificate `{subject}` is not valid before {not_before} (verification time {at})")]
    CertificateNotYetValid {
        subject: String,
        not_before: String,
        at: String,
    },
    #[error(
        "the report comes from an AMD {report} part but the chain is rooted in the {chain} ARK"
    )]
    GenerationMismatch { report: String, chain: String },
    #[error(
        "the report says it is signed by the {report} but the endorsement certificate is a {certificate}"
    )]
    SigningKeyMismatch { report: String, certificate: String },
    #[error("the report is not signed (signing key field = {signing_key})")]
    ReportUnsigned { signing_key: u32 },

    // ---- the report itself ----
    #[error("report signature does not verify with the signing key of the chain")]
    SignatureInvalid,
    #[error(
        "the VCEK is for chip {certificate}, but the report comes from chip {report} (VCEK of another chip)"
    )]
    VcekChipIdMismatch { report: String, certificate: String },
    #[error(
        "the endorsement key certifies {field} SPL {certificate} but the report's REPORTED_TCB has {report}"
    )]
    VekTcbMismatch {
        field: &'static str,
        report: u8,
        certificate: u8,
    },
    #[error("debug is enabled in the guest policy/attributes and the policy forbids it")]
    DebugEnabled,
    #[error(
        "the guest policy allows a migration agent (MIGRATE_MA), which could move the guest's memory elsewhere, and the policy does not set allow_migration_agent"
    )]
    MigrationAgentAllowed,
    #[error(
        "the guest policy requires firmware ABI {actual}, below the minimum ABI {minimum} the policy asks for"
    )]
    AbiVersionTooLow { actual: String, minimum: String },
    #[error("report was requested at VMPL {actual}, the policy requires VMPL {expected}")]
    VmplNotAllowed { actual: u32, expected: u32 },
    #[error("measurement {actual} is not one of the {allowed} allowed measurements")]
    MeasurementNotAllowed { actual: String, allowed: usize },
    #[error("TCB {actual} is below the minimum {minimum}")]
    TcbTooLow { actual: String, minimum: String },

    // ---- TDX ----
    #[error("TDX evidence comes without collateral (no network fetch on the verification path)")]
    MissingCollateral,
    #[error("TDX collateral is malformed: {what}")]
    CollateralMalformed { what: String },
    #[error("TDX collateral {what} expired at {not_after} (verification time {at})")]
    CollateralExpired {
        what: String,
        not_after: String,
        at: String,
    },
    #[error("TDX collateral {what} is not valid before {not_before} (verification time {at})")]
    CollateralNotYetValid {
        what: String,
        not_before: String,
        at: String,
    },
    #[error("TDX collateral does not verify: {what}")]
    CollateralInvalid { what: String },
    #[error(
        "the collateral's TCB info is for platform FMSPC {collateral}, the PCK certificate is for FMSPC {platform}"
    )]
    FmspcMismatch {
        collateral: String,
        platform: String,
    },
    #[error("the quote's platform TCB matches no TCB level in the collateral's TCB info")]
    TcbLevelNotFound,
    #[error("TDX TCB status `{status}` is not in the allowed statuses {allowed:?}")]
    TcbStatusNotAllowed {
        status: String,
        allowed: Vec<String>,
    },
    #[error("TDX quote does not verify: {what}")]
    QuoteInvalid { what: String },
    #[error("RTMR{index} is {actual}, the policy expects {expected}")]
    RtmrMismatch {
        index: usize,
        expected: String,
        actual: String,
    },

    // ---- Azure vTPM HCL report ----
    #[error("SHA-256 of the HCL report's runtime data is {actual}, REPORT_DATA binds {expected}")]
    RuntimeDataDigestMismatch { expected: String, actual: String },
    #[error(
        "the TD quote does not belong to the HCL report: {field} in the quote is {quote}, in the TDREPORT {report}"
    )]
    QuoteReportMismatch {
        field: &'static str,
        quote: String,
        report: String,
    },

    // ---- bindings ----
    #[error("REPORT_DATA does not bind this request: expected {expected}, evidence has {actual}")]
    ReportDataMismatch { expected: String, actual: String },
    #[error(
        "launch-bound data (HOST_DATA / MRCONFIGID) does not match the contract digest: expected {expected}, evidence has {actual}"
    )]
    HostDataMismatch { expected: String, actual: String },

    // ---- collection in the VM ----
    #[error(
        "no attestation device found: tried {}. Is this a SEV-SNP or TDX confidential VM? Use the `sim` platform for development (INSECURE)",
        tried.join(", ")
    )]
    NoAttestationDevice { tried: Vec<String> },
    #[error("collecting evidence through {source_path} failed: {what}")]
    CollectionFailed { source_path: String, what: String },
    #[error("collecting evidence through {source_path} is not supported by this build: {what}")]
    CollectionNotSupported { source_path: String, what: String },
}
