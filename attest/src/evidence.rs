use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

use crate::AttestError;

/// A confidential-computing platform whose evidence Cleanroom understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    Snp,
    Tdx,
    AzureSnp,
    AzureTdx,
    /// Software-signed evidence for development and CI. INSECURE.
    Sim,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Snp => "snp",
            Platform::Tdx => "tdx",
            Platform::AzureSnp => "azure-snp",
            Platform::AzureTdx => "azure-tdx",
            Platform::Sim => "sim",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "snp" => Platform::Snp,
            "tdx" => Platform::Tdx,
            "azure-snp" => Platform::AzureSnp,
            "azure-tdx" => Platform::AzureTdx,
            "sim" => Platform::Sim,
            other => {
                return Err(format!(
                    "unknown platform `{other}` (expected snp, tdx, azure-snp, azure-tdx or sim)"
                ));
            }
        })
    }
}

/// Evidence as it travels (JSON): what a host serves and sends to key brokers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EvidenceBundle {
    pub platform: Platform,
    /// The raw report / quote / HCL report / sim report, base64 (standard alphabet).
    pub report: String,
    /// Certificates the verifier needs (PEM), leaf first, when the platform has a chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_chain: Vec<String>,
    /// TDX collateral (JSON as produced by `dcap-qvl`), when the platform is TDX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<serde_json::Value>,
    /// `azure-tdx` only: the TD quote (base64) that accompanies the HCL report in `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub td_quote: Option<String>,
    /// The host identity public key (SEC1 hex) bound in REPORT_DATA, when the host serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_public_key: Option<String>,
    /// The contract digest (hex) the host was launched with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_digest: Option<String>,
}

impl EvidenceBundle {
    /// The raw report / quote / HCL report bytes; `what` names it in the error.
    pub(crate) fn report_bytes(&self, what: &str) -> Result<Vec<u8>, AttestError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.report)
            .map_err(|_| AttestError::Malformed {
                what: format!("{what} is not base64"),
            })
    }
}

/// Reference values: what a verifier accepts. Built by the host from a contract.
///
/// The `Default` refuses everything: no platform is allowed and every allowed-value list is
/// empty.
#[derive(Debug, Clone, Default)]
pub struct ReferenceValues {
    pub allowed_platforms: Vec<Platform>,
    /// Accept `sim` evidence (INSECURE). Off unless the contract says so.
    pub allow_simulated: bool,
    pub sim: SimReference,
    /// Reference values for `snp` and `azure-snp` evidence.
    pub snp: SnpReference,
    /// Reference values for `tdx` and `azure-tdx` evidence.
    pub tdx: TdxReference,
}

/// Reference values for AMD SEV-SNP evidence.
#[derive(Debug, Clone, Default)]
pub struct SnpReference {
    /// Allowed launch digests (MEASUREMENT). Empty refuses every report.
    pub measurements: Vec<[u8; 48]>,
    /// Minimum REPORTED_TCB, component by component.
    pub min_tcb: SnpTcb,
    /// Accept a guest policy with DEBUG allowed. Default false.
    pub allow_debug: bool,
    /// Required VMPL of the report. `None` means VMPL 0 (fail closed: a report requested
    /// from a less privileged VMPL is refused unless the contract names that VMPL).
    pub vmpl: Option<u32>,
    /// Accept a guest policy with MIGRATE_MA set (a migration agent may be associated with
    /// the guest and move its memory elsewhere). Default false: such a report is refused
    /// with [`crate::AttestError::MigrationAgentAllowed`].
    pub allow_migration_agent: bool,
    /// Minimum ABI version (ABI_MAJOR.ABI_MINOR) the report's guest policy must require of
    /// the firmware. `None` (the default) leaves it unchecked.
    pub min_abi: Option<SnpAbiVersion>,
}

/// An SEV-SNP firmware ABI version as a guest policy states it (ABI_MAJOR, ABI_MINOR).
/// Ordered major first, then minor.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct SnpAbiVersion {
    pub major: u8,
    pub minor: u8,
}

impl std::fmt::Display for SnpAbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// An SEV-SNP TCB version (security patch levels). `fmc` exists on Turin and later only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
}

impl std::fmt::Display for SnpTcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bootloader={} tee={} snp={} microcode={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )?;
        if let Some(fmc) = self.fmc {
            write!(f, " fmc={fmc}")?;
        }
        Ok(())
    }
}

/// Reference values for Intel TDX evidence.
#[derive(Debug, Clone, Default)]
pub struct TdxReference {
    /// Allowed MRTD values (the TD firmware measurement). Empty refuses every quote.
    pub mrtds: Vec<[u8; 48]>,
    /// Expected RTMR0..RTMR3; `None` leaves that register unchecked.
    pub rtmrs: [Option<[u8; 48]>; 4],
    /// Allowed TCB statuses, as Intel names them (e.g. `UpToDate`, `SWHardeningNeeded`).
    /// Empty refuses every quote.
    pub allowed_tcb_statuses: Vec<String>,
    /// Accept a TD with the DEBUG attribute. Default false.
    pub allow_debug: bool,
}

/// Reference values for the simulated platform.
#[derive(Debug, Clone, Default)]
pub struct SimReference {
    /// Allowed 48-byte measurements (SHA-384 of the host binary for `sim`).
    pub measurements: Vec<[u8; 48]>,
}

/// What the evidence must bind: REPORT_DATA and the launch-bound data.
#[derive(Debug, Clone)]
pub struct Expected {
    pub report_data: [u8; 64],
    /// The 32-byte contract digest (SNP HOST_DATA, or the first 32 bytes of TDX MRCONFIGID).
    pub host_data: [u8; 32],
}

/// Claims read from verified evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub platform: Platform,
    pub measurement: String,
    pub report_data: String,
    pub host_data: String,
    pub tcb: String,
    pub debug: bool,
    /// True for `sim`: such evidence proves nothing about hardware.
    pub insecure: bool,
    /// Platform-specific verified fields (VMPL, signing key, chip ID, TDX TCB status, RTMRs,
    /// Azure runtime data...), for display and audit.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, String>,
}

/// Proof that evidence passed every check in [`crate::verify`]. Only this crate constructs it.
#[derive(Debug, Clone)]
pub struct Verified {
    claims: Claims,
}

impl Verified {
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
}

/// REPORT_DATA for a request: SHA-384 of `canonical_json` in the first 48 bytes, zeros after.
pub fn report_data_for(canonical_json: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..48].copy_from_slice(&Sha384::digest(canonical_json));
    out
}

pub(crate) fn check_bindings(claims: Claims, expected: &Expected) -> Result<Verified, AttestError> {
    let want_rd = hex::encode(expected.report_data);
    if claims.report_data != want_rd {
        return Err(AttestError::ReportDataMismatch {
            expected: want_rd,
            actual: claims.report_data,
        });
    }
    let want_hd = hex::encode(expected.host_data);
    if !claims.host_data.starts_with(&want_hd) {
        return Err(AttestError::HostDataMismatch {
            expected: want_hd,
            actual: claims.host_data,
        });
    }
    Ok(Verified { claims })
}
