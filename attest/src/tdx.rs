//! Intel TDX evidence verification, offline, with `dcap-qvl` (RustCrypto backend).
//!
//! Checks, in order (the first failure is returned):
//! 1. the quote parses and is a TD quote (version 4 or 5), the collateral parses;
//! 2. the collateral's TCB info and QE identity are valid at the verification time
//!    (issueDate <= at <= nextUpdate);
//! 3. `dcap-qvl` verifies at the verification time: Intel root CA → PCK chain (with CRLs),
//!    the QE report signature and its binding of the attestation key, the quote signature,
//!    the TCB info and QE identity signatures, the TCB level matching the platform; it also
//!    refuses DEBUG/profiling, migratable TDs, service TDs and SEPT_VE_DISABLE off;
//! 4. the TCB status is in the allowed set;
//! 5. MRTD is in the allowed set, RTMR0..3 equal the expected values where given;
//! 6. the DEBUG attribute is off (again, explicitly, unless allowed).
//!
//! REPORT_DATA and MRCONFIGID (whose first 32 bytes are the contract digest) are compared by
//! the caller ([`crate::verify`]) as the last step.

use std::collections::BTreeMap;

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{Quote, TDReport10};
use dcap_qvl::verify::QuoteVerifier;

use crate::snp::rfc3339;
use crate::{AttestError, Claims, EvidenceBundle, Platform, TdxReference};

fn malformed(what: impl Into<String>) -> AttestError {
    AttestError::Malformed { what: what.into() }
}

/// Parse an RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) to unix seconds.
pub(crate) fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let time = time.split('.').next()?;
    let mut d = date.split('-').map(|p| p.parse::<u32>().ok());
    let mut t = time.split(':').map(|p| p.parse::<u32>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let dt = der::DateTime::new(
        u16::try_from(y).ok()?,
        u8::try_from(mo).ok()?,
        u8::try_from(da).ok()?,
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(se).ok()?,
    )
    .ok()?;
    Some(dt.unix_duration().as_secs())
}

/// Parse collateral JSON as produced by `dcap-qvl` (and the PCCS clients built on it).
pub fn parse_collateral(value: &serde_json::Value) -> Result<QuoteCollateralV3, AttestError> {
    serde_json::from_value(value.clone()).map_err(|e| AttestError::CollateralMalformed {
        what: e.to_string(),
    })
}

/// Check that the TCB info and QE identity in `collateral` are valid at `at_unix`.
fn check_collateral_window(
    collateral: &QuoteCollateralV3,
    at_unix: u64,
) -> Result<(), AttestError> {
    for (what, json) in [
        ("TCB info", &collateral.tcb_info),
        ("QE identity", &collateral.qe_identity),
    ] {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| AttestError::CollateralMalformed {
                what: format!("{what}: {e}"),
            })?;
        let field = |name: &str| -> Result<u64, AttestError> {
            v.get(name)
                .and_then(|x| x.as_str())
                .and_then(parse_rfc3339_utc)
                .ok_or_else(|| AttestError::CollateralMalformed {
                    what: format!("{what} has no valid {name}"),
                })
        };
        let issue = field("issueDate")?;
        let next = field("nextUpdate")?;
        if at_unix < issue {
            return Err(AttestError::CollateralNotYetValid {
                what: what.into(),
                not_before: rfc3339(issue),
                at: rfc3339(at_unix),
            });
        }
        if at_unix > next {
            return Err(AttestError::CollateralExpired {
                what: what.into(),
                not_after: rfc3339(next),
                at: rfc3339(at_unix),
            });
        }
    }
    Ok(())
}

/// Check the validity dates of the PCK chain in the quote and of the collateral's issuer
/// chains at `at_unix`, so an expired certificate is named (dcap-qvl checks them too).
fn check_certificate_dates(
    quote: &Quote,
    collateral: &QuoteCollateralV3,
    at_unix: u64,
) -> Result<(), AttestError> {
    if let Ok(pck) = quote.raw_cert_chain() {
        let pck: Vec<u8> = pck.iter().copied().take_while(|&b| b != 0).collect();
        for cert in crate::snp::parse_certificates(&[pck])? {
            crate::snp::check_validity(&cert, at_unix)?;
        }
    }
    if let Some(pck) = &collateral.pck_certificate_chain {
        for cert in crate::snp::parse_certificates(&[pck.as_bytes().to_vec()])? {
            crate::snp::check_validity(&cert, at_unix)?;
        }
    }
    for (what, chain) in [
        ("TCB info signing chain", &collateral.tcb_info_issuer_chain),
        (
            "QE identity signing chain",
            &collateral.qe_identity_issuer_chain,
        ),
        ("PCK CRL issuer chain", &collateral.pck_crl_issuer_chain),
    ] {
        let certs = crate::snp::parse_certificates(&[chain.as_bytes().to_vec()]).map_err(|e| {
            AttestError::CollateralMalformed {
                what: format!("{what}: {e}"),
            }
        })?;
        for cert in certs {
            crate::snp::check_validity(&cert, at_unix).map_err(|e| match e {
                AttestError::CertificateExpired {
                    subject,
                    not_after,
                    at,
                } => AttestError::CollateralExpired {
                    what: format!("{what} certificate `{subject}`"),
                    not_after,
                    at,
                },
                AttestError::CertificateNotYetValid {
                    subject,
                    not_before,
                    at,
                } => AttestError::CollateralNotYetValid {
                    what: format!("{what} certificate `{subject}`"),
                    not_before,
                    at,
                },
                other => other,
            })?;
        }
    }
    Ok(())
}

/// Map a `dcap-qvl` failure to the check it names.
fn map_qvl_error(text: String, at_unix: u64) -> AttestError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("debug mode is enabled") || lower.contains("profiling is enabled") {
        return AttestError::DebugEnabled;
    }
    if lower.contains("no matching tcb level") {
        return AttestError::TcbLevelNotFound;
    }
    if lower.contains("expired")
        || lower.contains("notvalidyet")
        || lower.contains("not valid yet")
        || lower.contains("in the future")
    {
        return AttestError::CollateralExpired {
            what: text,
            not_after: "(as dcap-qvl reports)".into(),
            at: rfc3339(at_unix),
        };
    }
    if lower.contains("tcb info")
        || lower.contains("tcb_info")
        || lower.contains("tcbinfo")
        || lower.contains("qe identity")
        || lower.contains("qe_identity")
        || lower.contains("qeidentity")
        || lower.contains("crl")
        || lower.contains("fmspc mismatch")
    {
        return AttestError::CollateralInvalid { what: text };
    }
    if lower.contains("signature is invalid")
        || lower.contains("signature")
        || lower.contains("report hash mismatch")
    {
        return AttestError::SignatureInvalid;
    }
    AttestError::QuoteInvalid { what: text }
}

fn check_td_report(td: &TDReport10, refs: &TdxReference) -> Result<(), AttestError> {
    if !refs.mrtds.contains(&td.mr_td) {
        return Err(AttestError::MeasurementNotAllowed {
            actual: hex::encode(td.mr_td),
            allowed: refs.mrtds.len(),
        });
    }
    let actual = [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3];
    for (index, (want, have)) in refs.rtmrs.iter().zip(actual.iter()).enumerate() {
        if let Some(want) = want
            && want != have
        {
            return Err(AttestError::RtmrMismatch {
                index,
                expected: hex::encode(want),
                actual: hex::encode(have),
            });
        }
    }
    if td_debug(td) && !refs.allow_debug {
        return Err(AttestError::DebugEnabled);
    }
    Ok(())
}

/// TD attribute bit 0 (TUD.DEBUG).
fn td_debug(td: &TDReport10) -> bool {
    td.td_attributes[0] & 0x01 != 0
}

/// Parse a TD quote and return its TD report (version 4 or 5 quotes).
pub fn parse_td_quote(raw: &[u8]) -> Result<Quote, AttestError> {
    let quote = Quote::parse(raw).map_err(|e| malformed(format!("TDX quote: {e:#}")))?;
    if quote.report.as_td10().is_none() {
        return Err(malformed(
            "the quote is an SGX enclave quote, not a TD quote",
        ));
    }
    Ok(quote)
}

/// Verify a raw TD quote with its collateral at `at_unix`, against `refs`.
pub fn verify_quote_bytes(
    raw: &[u8],
    collateral: &QuoteCollateralV3,
    refs: &TdxReference,
    at_unix: u64,
    platform: Platform,
) -> Result<Claims, AttestError> {
    let quote = parse_td_quote(raw)?;
    check_collateral_window(collateral, at_unix)?;
    check_certificate_dates(&quote, collateral, at_unix)?;
    let verifier = QuoteVerifier::new_prod()
        .with_config::<dcap_qvl::configs::RustCryptoConfig>()
        .allow_debug(refs.allow_debug);
    let verified = verifier
        .verify(raw, collateral, at_unix)
        .map_err(|e| map_qvl_error(format!("{e:#}"), at_unix))?;
    if !refs.allowed_tcb_statuses.contains(&verified.status) {
        return Err(AttestError::TcbStatusNotAllowed {
            status: verified.status,
            allowed: refs.allowed_tcb_statuses.clone(),
        });
    }
    let td = verified
        .report
        .as_td10()
        .ok_or_else(|| malformed("verified report is not a TD report"))?;
    // The verified report must be the one we parsed (dcap-qvl parses the same bytes).
    if quote.report.as_td10().map(|t| t.mr_td) != Some(td.mr_td) {
        return Err(malformed("quote parsed inconsistently"));
    }
    check_td_report(td, refs)?;

    let mut details = BTreeMap::new();
    details.insert("quote_version".into(), quote.header.version.to_string());
    details.insert("tcb_status".into(), verified.status.clone());
    if !verified.advisory_ids.is_empty() {
        details.insert("advisory_ids".into(), verified.advisory_ids.join(","));
    }
    for (i, r) in [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3]
        .iter()
        .enumerate()
    {
        details.insert(format!("rtmr{i}"), hex::encode(r));
    }
    details.insert("mr_config_id".into(), hex::encode(td.mr_config_id));
    details.insert("mr_owner".into(), hex::encode(td.mr_owner));
    details.insert("mr_owner_config".into(), hex::encode(td.mr_owner_config));
    details.insert("mr_seam".into(), hex::encode(td.mr_seam));
    details.insert("td_attributes".into(), hex::encode(td.td_attributes));
    details.insert("tee_tcb_svn".into(), hex::encode(td.tee_tcb_svn));
    Ok(Claims {
        platform,
        measurement: hex::encode(td.mr_td),
        report_data: hex::encode(td.report_data),
        host_data: hex::encode(td.mr_config_id),
        tcb: format!(
            "{} (TEE_TCB_SVN {})",
            verified.status,
            hex::encode(td.tee_tcb_svn)
        ),
        debug: td_debug(td),
        insecure: false,
        details,
    })
}

/// Verify a `tdx` evidence bundle: `report` is the base64 quote, `collateral` the JSON
/// collateral.
pub(crate) fn verify_bundle(
    bundle: &EvidenceBundle,
    refs: &TdxReference,
    at_unix: u64,
) -> Result<Claims, AttestError> {
    let raw = bundle.report_bytes("TDX quote")?;
    let collateral = bundle
        .collateral
        .as_ref()
        .ok_or(AttestError::MissingCollateral)?;
    let collateral = parse_collateral(collateral)?;
    verify_quote_bytes(&raw, &collateral, refs, at_unix, Platform::Tdx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v4_td() -> TDReport10 {
        let raw = include_bytes!("../tests/data/tdx-v4/quote.bin");
        let q = parse_td_quote(raw).expect("parses");
        *q.report.as_td10().expect("td")
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2025-06-19T10:16:03Z"),
            Some(1_750_328_163)
        );
        assert_eq!(
            parse_rfc3339_utc("2025-06-19T10:16:03.123Z"),
            Some(1_750_328_163)
        );
        assert_eq!(parse_rfc3339_utc("garbage"), None);
    }

    #[test]
    fn rejects_td_with_debug_attribute() {
        // A genuinely signed debug quote meets this check (the signature refuses an edit).
        let mut td = v4_td();
        td.td_attributes[0] |= 1;
        let refs = TdxReference {
            mrtds: vec![td.mr_td],
            ..TdxReference::default()
        };
        assert!(matches!(
            check_td_report(&td, &refs),
            Err(AttestError::DebugEnabled)
        ));
    }

    #[test]
    fn rejects_unexpected_rtmr() {
        let td = v4_td();
        let mut refs = TdxReference {
            mrtds: vec![td.mr_td],
            ..TdxReference::default()
        };
        refs.rtmrs[2] = Some([0xab; 48]);
        assert!(matches!(
            check_td_report(&td, &refs),
            Err(AttestError::RtmrMismatch { index: 2, .. })
        ));
    }
}
