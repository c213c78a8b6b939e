//! # cleanroom-attest
//!
//! Hardware attestation for Cleanroom: collecting evidence inside a confidential VM and
//! verifying evidence offline against reference values.
//!
//! ## What this crate does
//! - [`EvidenceBundle`]: the JSON evidence a host serves and a key broker checks (platform, raw
//!   report or quote, certificate chain or collateral, host identity key, contract digest).
//! - [`verify`]: a pure function from (bundle, [`ReferenceValues`], [`Expected`] bindings,
//!   verification time) to a [`Verified`] proof carrying the [`Claims`]. It never touches the
//!   network and never reads the clock: the time is a parameter.
//! - [`sim`]: a software platform for machines without SEV-SNP or TDX. It is INSECURE by
//!   construction (its root key is public) and is accepted only when the reference values
//!   say `allow_simulated`; every claim it yields is marked `insecure`.
//!
//! ## What it refuses
//! Evidence whose platform is not allowed, whose signature chain or signature does not verify,
//! whose REPORT_DATA or launch-bound data (HOST_DATA / MRCONFIGID) differ from what the caller
//! expects, whose measurement is not in the allowed set, or that has debug enabled. Every
//! refusal is an [`AttestError`] variant naming the failed check.
//!
//! ## Trust boundary
//! This crate knows nothing of datasets, contracts or keys. The host maps a contract's
//! `[attestation]` section to [`ReferenceValues`] and decides what a [`Verified`] proof buys.

#![forbid(unsafe_code)]

mod error;
mod evidence;
pub mod sim;

pub use error::AttestError;
pub use evidence::{
    Claims, EvidenceBundle, Expected, Platform, ReferenceValues, SimReference, Verified,
    report_data_for,
};

/// Verify `bundle` at unix time `at_unix` against `refs`, requiring the bindings in `expected`.
///
/// Checks, in order: the platform is allowed (and `sim` only with `allow_simulated`); the
/// platform-specific signature chain and report signature; debug is off; the measurement is
/// in the allowed set; REPORT_DATA equals `expected.report_data`; the launch-bound data equals
/// `expected.host_data`. The first failure is returned.
pub fn verify(
    bundle: &EvidenceBundle,
    refs: &ReferenceValues,
    expected: &Expected,
    at_unix: u64,
) -> Result<Verified, AttestError> {
    if !refs.allowed_platforms.contains(&bundle.platform) {
        return Err(AttestError::PlatformNotAllowed {
            platform: bundle.platform,
        });
    }
    let claims = match bundle.platform {
        Platform::Sim => {
            if !refs.allow_simulated {
                return Err(AttestError::SimulatedNotAllowed);
            }
            sim::verify_report(bundle, &refs.sim)?
        }
        other => return Err(AttestError::PlatformNotSupported { platform: other }),
    };
    let _ = at_unix;
    evidence::check_bindings(claims, expected)
}
