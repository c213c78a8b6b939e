//! Azure confidential VMs: evidence through the vTPM's HCL report.
//!
//! On Azure the guest does not talk to the SEV-SNP firmware or the TDX module itself: the
//! paravisor (HCL) obtains a hardware report whose REPORT_DATA binds a JSON "runtime data"
//! document (`var_data`: the vTPM attestation key, VM configuration and the 64-byte
//! `user-data` the guest wrote to NV index 0x01400002) and stores the whole HCL report in
//! vTPM NV index 0x01400001.
//!
//! Layout of the HCL report:
//! - bytes 0..32: header (`"HCLA"`, version, report size, request type, status, reserved);
//! - bytes 32..1216: the hardware report (an SEV-SNP report, or a TDREPORT padded);
//! - bytes 1216..1236: IGVM request data header (data size, version, report type 2 = SNP /
//!   4 = TDX, hash type 1 = SHA-256 / 2 = SHA-384 / 3 = SHA-512, runtime data size);
//! - from byte 1236: the runtime data JSON (`var_data`), of the size the header says.
//!
//! Checks: the hash of `var_data` equals the start of the hardware REPORT_DATA; then the
//! SNP or TDX checks. The request binding on Azure is the `user-data` in `var_data` (the guest
//! controls nothing else in the report), so [`crate::Claims::report_data`] is that
//! `user-data`; the hardware REPORT_DATA is kept in the claims' details.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::{AttestError, Claims, EvidenceBundle, Platform, SnpReference, TdxReference};

const HEADER_LEN: usize = 32;
const HW_REPORT_END: usize = 1216;
const RUNTIME_HEADER_END: usize = 1236;
/// Size of a TDREPORT (TDREPORT_STRUCT).
const TDREPORT_LEN: usize = 1024;

/// Which hardware report an HCL report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HclReportType {
    Snp,
    Tdx,
}

/// A parsed HCL report.
#[derive(Debug, Clone)]
pub struct HclReport {
    pub report_type: HclReportType,
    /// The hardware report: 1184 bytes (SNP report, or a TDREPORT and padding).
    pub hw_report: Vec<u8>,
    /// Hash algorithm of `var_data` in REPORT_DATA: 1 SHA-256, 2 SHA-384, 3 SHA-512.
    pub hash_type: u32,
    /// The runtime data JSON.
    pub var_data: Vec<u8>,
}

fn malformed(what: impl Into<String>) -> AttestError {
    AttestError::Malformed { what: what.into() }
}

fn le_u32(raw: &[u8], off: usize) -> Result<u32, AttestError> {
    raw.get(off..off + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| malformed("HCL report is truncated"))
}

/// Parse an HCL report (as read from vTPM NV index 0x01400001).
pub fn parse_hcl_report(raw: &[u8]) -> Result<HclReport, AttestError> {
    if raw.len() < RUNTIME_HEADER_END {
        return Err(malformed(format!(
            "HCL report has {} bytes, at least {RUNTIME_HEADER_END} expected",
            raw.len()
        )));
    }
    if &raw[..4] != b"HCLA" {
        return Err(malformed("HCL report does not start with \"HCLA\""));
    }
    let report_type = match le_u32(raw, HW_REPORT_END + 8)? {
        2 => HclReportType::Snp,
        4 => HclReportType::Tdx,
        other => {
            return Err(malformed(format!(
                "HCL report type {other} is not SNP (2) or TDX (4)"
            )));
        }
    };
    let hash_type = le_u32(raw, HW_REPORT_END + 12)?;
    let var_len = le_u32(raw, HW_REPORT_END + 16)? as usize;
    let var_data = raw
        .get(RUNTIME_HEADER_END..RUNTIME_HEADER_END.saturating_add(var_len))
        .ok_or_else(|| {
            malformed(format!(
                "HCL runtime data of {var_len} bytes does not fit in a {}-byte report",
                raw.len()
            ))
        })?
        .to_vec();
    Ok(HclReport {
        report_type,
        hw_report: raw[HEADER_LEN..HW_REPORT_END].to_vec(),
        hash_type,
        var_data,
    })
}

impl HclReport {
    /// The hardware REPORT_DATA (SNP report offset 0x50; TDREPORT offset 128).
    pub fn hw_report_data(&self) -> [u8; 64] {
        let off = match self.report_type {
            HclReportType::Snp => 0x50,
            HclReportType::Tdx => 128,
        };
        let mut out = [0u8; 64];
        out.copy_from_slice(&self.hw_report[off..off + 64]);
        out
    }

    /// Check that REPORT_DATA starts with the hash of the runtime data.
    pub fn check_runtime_data_binding(&self) -> Result<(), AttestError> {
        let digest: Vec<u8> = match self.hash_type {
            1 => Sha256::digest(&self.var_data).to_vec(),
            2 => Sha384::digest(&self.var_data).to_vec(),
            3 => Sha512::digest(&self.var_data).to_vec(),
            other => {
                return Err(malformed(format!(
                    "HCL runtime data hash type {other} is unknown"
                )));
            }
        };
        let rd = self.hw_report_data();
        if rd[..digest.len()] != digest[..] {
            return Err(AttestError::RuntimeDataDigestMismatch {
                expected: hex::encode(&rd[..digest.len()]),
                actual: hex::encode(&digest),
            });
        }
        Ok(())
    }

    /// The runtime data as JSON.
    pub fn runtime_data(&self) -> Result<serde_json::Value, AttestError> {
        serde_json::from_slice(&self.var_data)
            .map_err(|e| malformed(format!("HCL runtime data is not JSON: {e}")))
    }

    /// The 64-byte `user-data` the guest bound through the vTPM, hex.
    pub fn user_data(&self) -> Result<String, AttestError> {
        let json = self.runtime_data()?;
        let text = json
            .get("user-data")
            .and_then(|v| v.as_str())
            .ok_or_else(|| malformed("HCL runtime data has no user-data"))?;
        let bytes = hex::decode(text).map_err(|_| malformed("HCL user-data is not hex"))?;
        if bytes.len() != 64 {
            return Err(malformed(format!(
                "HCL user-data has {} bytes, expected 64",
                bytes.len()
            )));
        }
        Ok(hex::encode(bytes))
    }

    /// The TDREPORT inside a TDX HCL report.
    pub fn td_report(&self) -> Result<&[u8], AttestError> {
        if self.report_type != HclReportType::Tdx {
            return Err(malformed("HCL report does not carry a TDREPORT"));
        }
        Ok(&self.hw_report[..TDREPORT_LEN])
    }
}

fn finish_claims(mut claims: Claims, hcl: &HclReport) -> Result<Claims, AttestError> {
    let user_data = hcl.user_data()?;
    claims.details.insert(
        "hw_report_data".into(),
        std::mem::replace(&mut claims.report_data, user_data),
    );
    claims.details.insert(
        "runtime_data".into(),
        String::from_utf8_lossy(&hcl.var_data).into_owned(),
    );
    Ok(claims)
}

/// Verify an HCL report carrying an SEV-SNP report, with the VCEK/ASK/ARK certificates.
pub fn verify_snp_hcl(
    raw: &[u8],
    certs: &[x509_cert::Certificate],
    refs: &SnpReference,
    at_unix: u64,
) -> Result<Claims, AttestError> {
    let hcl = parse_hcl_report(raw)?;
    if hcl.report_type != HclReportType::Snp {
        return Err(malformed("azure-snp evidence carries a TDX HCL report"));
    }
    let claims =
        crate::snp::verify_report_bytes(&hcl.hw_report, certs, refs, at_unix, Platform::AzureSnp)?;
    hcl.check_runtime_data_binding()?;
    finish_claims(claims, &hcl)
}

/// Verify an HCL report carrying a TDREPORT, with the TD quote made from that TDREPORT and
/// the quote's collateral.
pub fn verify_tdx_hcl(
    raw: &[u8],
    td_quote: &[u8],
    collateral: Option<&dcap_qvl::QuoteCollateralV3>,
    refs: &TdxReference,
    at_unix: u64,
) -> Result<Claims, AttestError> {
    let hcl = parse_hcl_report(raw)?;
    let td_report = hcl.td_report()?;
    hcl.check_runtime_data_binding()?;
    let quote = crate::tdx::parse_td_quote(td_quote)?;
    let td = quote
        .report
        .as_td10()
        .ok_or_else(|| malformed("not a TD quote"))?;
    // The quote must be the one made from this TDREPORT.
    let checks: [(&'static str, &[u8], &[u8]); 3] = [
        ("REPORT_DATA", &td.report_data, &td_report[128..192]),
        ("TD attributes", &td.td_attributes, &td_report[512..520]),
        ("MRTD", &td.mr_td, &td_report[528..576]),
    ];
    for (field, q, r) in checks {
        if q != r {
            return Err(AttestError::QuoteReportMismatch {
                field,
                quote: hex::encode(q),
                report: hex::encode(r),
            });
        }
    }
    let collateral = collateral.ok_or(AttestError::MissingCollateral)?;
    let claims =
        crate::tdx::verify_quote_bytes(td_quote, collateral, refs, at_unix, Platform::AzureTdx)?;
    finish_claims(claims, &hcl)
}

pub(crate) fn verify_snp_bundle(
    bundle: &EvidenceBundle,
    refs: &SnpReference,
    at_unix: u64,
) -> Result<Claims, AttestError> {
    let raw = bundle.report_bytes("HCL report")?;
    let certs = crate::snp::bundle_certificates(bundle)?;
    verify_snp_hcl(&raw, &certs, refs, at_unix)
}

pub(crate) fn verify_tdx_bundle(
    bundle: &EvidenceBundle,
    refs: &TdxReference,
    at_unix: u64,
) -> Result<Claims, AttestError> {
    let raw = bundle.report_bytes("HCL report")?;
    let quote = bundle
        .td_quote
        .as_ref()
        .ok_or_else(|| malformed("azure-tdx evidence has no td-quote"))?;
    let quote = B64
        .decode(quote)
        .map_err(|_| malformed("TD quote is not base64"))?;
    let collateral = bundle
        .collateral
        .as_ref()
        .map(crate::tdx::parse_collateral)
        .transpose()?;
    verify_tdx_hcl(&raw, &quote, collateral.as_ref(), refs, at_unix)
}
