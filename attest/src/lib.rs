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
//! - [`snp`], [`tdx`], [`azure`]: verification of AMD SEV-SNP reports (ARK → ASK/ASVK →
//!   VCEK/VLEK, `sev` crate), Intel TDX quotes with collateral (`dcap-qvl`, RustCrypto) and
//!   Azure vTPM HCL reports wrapping either.
//! - [`collect`]: evidence collection inside a confidential VM (configfs-tsm,
//!   `/dev/sev-guest`, the Azure vTPM) with platform auto-detection.
//! - [`measure`]: reference values: the SEV-SNP launch digest from OVMF, kernel, initrd and
//!   command line; the TDX MRTD from a TDVF image ([`tdvf`]) and RTMR1-2 of a direct kernel
//!   boot by TDVF ([`rtmr`]); the `sim` measurement of a binary.
//! - [`sim`]: a software platform for machines without SEV-SNP or TDX. It is INSECURE by
//!   construction (its root key is public) and is accepted only when the reference values
//!   say `allow_simulated`; every claim it yields is marked `insecure`.
//!
//! ## What it refuses
//! Evidence whose platform is not allowed, whose signature chain or signature does not verify,
//! whose REPORT_DATA or launch-bound data (HOST_DATA / MRCONFIGID) differ from what the caller
//! expects, whose measurement is not in the allowed set, or that has debug enabled; SNP reports
//! whose guest policy allows a migration agent (unless allowed) or requires an ABI below the
//! minimum, or whose TCB is below the minimum; TDX quotes whose RTMRs differ from the pinned
//! values. Every refusal is an [`AttestError`] variant naming the failed check.
//!
//! ## Trust boundary
//! This crate knows nothing of datasets, contracts or keys. The host maps a contract's
//! `[attestation]` section to [`ReferenceValues`] and decides what a [`Verified`] proof buys.

#![forbid(unsafe_code)]

pub mod azure;
pub mod collect;
mod error;
mod evidence;
pub mod measure;
pub mod rtmr;
pub mod sim;
pub mod snp;
pub mod tdvf;
pub mod tdx;

pub use error::AttestError;
pub use evidence::{
    Claims, EvidenceBundle, Expected, Platform, ReferenceValues, SimReference, SnpAbiVersion,
    SnpReference, SnpTcb, TdxReference, Verified, report_data_for,
};

/// Verify `bundle` at unix time `at_unix` against `refs`, requiring the bindings in `expected`.
///
/// Checks, in order: the platform is allowed (and `sim` only with `allow_simulated`); the
/// platform-specific checks ([`snp`], [`tdx`], [`azure`], [`sim`]: certificate chain or
/// collateral valid at `at_unix`, report signature, debug off, SNP guest policy (migration
/// agent, minimum ABI), VMPL / TCB status, measurement in the allowed set, minimum TCB);
/// REPORT_DATA equals `expected.report_data` (on Azure: the vTPM user-data); the launch-bound
/// data (SNP HOST_DATA, the first 32 bytes of TDX MRCONFIGID) equals `expected.host_data`.
/// The first failure is returned. `at_unix` is the verification time in seconds since the
/// epoch; nothing here reads the clock or the network.
pub fn verify(
    bundle: &EvidenceBundle,
    refs: &ReferenceValues,
    expected: &Expected,
    at_unix: u64,
) -> Result<Verified, AttestError> {
    // Name the sharper cause first: simulated evidence where simulation is not allowed.
    if bundle.platform == Platform::Sim && !refs.allow_simulated {
        return Err(AttestError::SimulatedNotAllowed);
    }
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
        Platform::Snp => snp::verify_bundle(bundle, &refs.snp, at_unix)?,
        Platform::Tdx => tdx::verify_bundle(bundle, &refs.tdx, at_unix)?,
        Platform::AzureSnp => azure::verify_snp_bundle(bundle, &refs.snp, at_unix)?,
        Platform::AzureTdx => azure::verify_tdx_bundle(bundle, &refs.tdx, at_unix)?,
    };
    evidence::check_bindings(claims, expected)
}

/// Fields read from evidence WITHOUT verifying it, for tools that build reference values or
/// show a member what a report claims before checking it. Never a basis for a decision: only
/// [`verify`] yields a [`Verified`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub platform: Platform,
    /// SNP MEASUREMENT or TDX MRTD (sim: the claimed measurement).
    pub measurement: [u8; 48],
    /// The request binding as [`verify`] compares it: REPORT_DATA, or on Azure the vTPM
    /// user-data.
    pub report_data: [u8; 64],
    /// SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes).
    pub host_data: Vec<u8>,
    /// SNP only: the VMPL the report was requested at.
    pub vmpl: Option<u32>,
}

/// Read the main fields of `bundle` without verifying anything. See [`Unverified`].
pub fn inspect_unverified(bundle: &EvidenceBundle) -> Result<Unverified, AttestError> {
    use base64::Engine;
    let b64 = |s: &str, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| AttestError::Malformed {
                what: format!("{what} is not base64"),
            })
    };
    let raw = b64(&bundle.report, "report")?;
    let arr = |v: &[u8], what: &str| -> Result<Vec<u8>, AttestError> {
        if v.is_empty() {
            return Err(AttestError::Malformed {
                what: format!("{what} is empty"),
            });
        }
        Ok(v.to_vec())
    };
    let fixed48 = |v: &[u8]| -> Result<[u8; 48], AttestError> {
        <[u8; 48]>::try_from(v).map_err(|_| AttestError::Malformed {
            what: "measurement is not 48 bytes".into(),
        })
    };
    let fixed64 = |v: &[u8]| -> Result<[u8; 64], AttestError> {
        <[u8; 64]>::try_from(v).map_err(|_| AttestError::Malformed {
            what: "report data is not 64 bytes".into(),
        })
    };
    match bundle.platform {
        Platform::Snp | Platform::AzureSnp => {
            let (report_bytes, user_data) = if bundle.platform == Platform::AzureSnp {
                let hcl = azure::parse_hcl_report(&raw)?;
                let ud = hex::decode(hcl.user_data()?).map_err(|_| AttestError::Malformed {
                    what: "user-data".into(),
                })?;
                (hcl.hw_report, Some(ud))
            } else {
                (raw, None)
            };
            let r = snp::parse_report(&report_bytes)?;
            Ok(Unverified {
                platform: bundle.platform,
                measurement: r.measurement,
                report_data: match user_data {
                    Some(ud) => fixed64(&ud)?,
                    None => r.report_data,
                },
                host_data: r.host_data.to_vec(),
                vmpl: Some(r.vmpl),
            })
        }
        Platform::Tdx | Platform::AzureTdx => {
            let (quote_bytes, user_data) = if bundle.platform == Platform::AzureTdx {
                let hcl = azure::parse_hcl_report(&raw)?;
                let ud = hex::decode(hcl.user_data()?).map_err(|_| AttestError::Malformed {
                    what: "user-data".into(),
                })?;
                let q = bundle.td_quote.as_deref().ok_or(AttestError::Malformed {
                    what: "azure-tdx evidence has no td-quote".into(),
                })?;
                (b64(q, "td-quote")?, Some(ud))
            } else {
                (raw, None)
            };
            let q = tdx::parse_td_quote(&quote_bytes)?;
            let td = q.report.as_td10().ok_or(AttestError::Malformed {
                what: "not a TD quote".into(),
            })?;
            Ok(Unverified {
                platform: bundle.platform,
                measurement: td.mr_td,
                report_data: match user_data {
                    Some(ud) => fixed64(&ud)?,
                    None => td.report_data,
                },
                host_data: td.mr_config_id.to_vec(),
                vmpl: None,
            })
        }
        Platform::Sim => {
            let fields = sim::inspect(bundle)?;
            Ok(Unverified {
                platform: Platform::Sim,
                measurement: fixed48(&arr(&fields.0, "measurement")?)?,
                report_data: fixed64(&fields.2)?,
                host_data: fields.1,
                vmpl: None,
            })
        }
    }
}
