//! # cleanroom-verify
//!
//! What a member, an auditor or a recipient runs to check the room's work, without the
//! room's engine or sandbox: audit log verification, output opening, evidence verification
//! against a contract. Built on `cleanroom-formats`, `cleanroom-policy` and
//! `cleanroom-attest` only; its binary `cleanroom-verify` has no wasmtime, no DataFusion.
//!
//! ## Module map
//! - [`audit`]: the hash chain, checkpoint signatures, output anchors, and which
//!   checkpoints the runs' evidence makes count.
//! - [`evidence`]: a run's identity key as its evidence proves it (REPORT_DATA binding
//!   recomputed, HOST_DATA = the contract digest, the contract's attestation policy).
//! - [`output`]: opening an output signed by its run's attested key.
//! - [`reference`]: a contract's `[attestation]` section as reference values (used by the
//!   room on itself, by every broker, and by members).
//! - [`commands`]: `audit verify|show`, `output open|inspect`, `attest verify` (clap).
//! - [`error`]: the errors, [`VerifyError`].

pub mod audit;
pub mod commands;
pub mod error;
pub mod evidence;
pub mod output;
pub mod reference;

pub use error::VerifyError;

/// Classify any error of ours found in an `anyhow` chain: the exit code of every binary
/// (0 ok, 1 refused by policy or verification, 2 bad input or I/O). Crates above this one
/// pass their own error types through `extra`.
pub fn classify(
    e: &anyhow::Error,
    extra: impl Fn(&(dyn std::error::Error + 'static)) -> Option<cleanroom_formats::ErrorClass>,
) -> cleanroom_formats::ErrorClass {
    use cleanroom_formats::ErrorClass;
    for cause in e.chain() {
        if let Some(c) = extra(cause) {
            return c;
        }
        if let Some(v) = cause.downcast_ref::<VerifyError>() {
            return v.class();
        }
        if let Some(f) = cause.downcast_ref::<cleanroom_formats::FormatError>() {
            return f.class();
        }
        if cause
            .downcast_ref::<cleanroom_policy::PolicyError>()
            .is_some()
            || cause
                .downcast_ref::<cleanroom_attest::AttestError>()
                .is_some()
            || cause.downcast_ref::<audit::AuditError>().is_some()
            || cause.downcast_ref::<evidence::EvidenceError>().is_some()
            || cause.downcast_ref::<output::OutputError>().is_some()
            || cause
                .downcast_ref::<cleanroom_formats::envelope::EnvelopeError>()
                .is_some()
        {
            return ErrorClass::Refused;
        }
    }
    ErrorClass::Invalid
}

/// Print an error chain as one line on stderr and return its exit code; a broken pipe on
/// stdout (`... | head`) is success.
pub fn report(
    e: &anyhow::Error,
    extra: impl Fn(&(dyn std::error::Error + 'static)) -> Option<cleanroom_formats::ErrorClass>,
) -> std::process::ExitCode {
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return std::process::ExitCode::SUCCESS;
    }
    let mut msg = format!("error: {e}");
    for cause in e.chain().skip(1) {
        msg.push_str(&format!(": {cause}"));
    }
    eprintln!("{msg}");
    std::process::ExitCode::from(classify(e, extra).exit_code())
}
