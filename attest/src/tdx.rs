//! Intel TDX evidence verification, offline, with `dcap-qvl` (RustCrypto backend).
//!
//! Checks, in order (the first failure is returned):
//! 1. the quote parses and is a TD quote (version 4 or 5), the collateral parses;
//! 2. the collateral's TCB info and QE identity are valid at the verification time
//!    (issueDate <= at <= nextUpdate), and so are the certificates of the PCK chain and of
//!    the collateral's issuer chains;
//! 3. the TD's DEBUG attribute (and the profiling bits of TUD) is off unless the reference
//!    allows debug ([`AttestError::DebugEnabled`]);
//! 4. the collateral's TCB info is TDX TCB info for this platform (FMSPC of the PCK
//!    certificate, [`AttestError::FmspcMismatch`]) and one of its TCB levels is met by the
//!    PCK certificate's CPUSVN and PCESVN and the quote's TEE_TCB_SVN (TEE_TCB_SVN2 too for a
//!    TD 1.5), with a TDX module level met where the module version asks for one
//!    ([`AttestError::TcbLevelNotFound`]);
//! 5. `dcap-qvl` verifies at the verification time: Intel root CA → PCK chain (with CRLs),
//!    the QE report signature and its binding of the attestation key, the quote signature,
//!    the TCB info and QE identity signatures, the TCB level again; it also refuses
//!    migratable TDs, service TDs, SEPT_VE_DISABLE off and a Revoked TCB. dcap-qvl 0.7
//!    reports a failure only as text, so whatever it refuses is one
//!    [`AttestError::QuoteInvalid`] whose text is shown, never inspected;
//! 6. the TCB status is in the allowed set;
//! 7. MRTD is in the allowed set, RTMR0..3 equal the expected values where given;
//! 8. the DEBUG attribute is off (again, on the verified report).
//!
//! Steps 2 to 4 run on data dcap-qvl has not verified yet: they only refuse (acceptance
//! needs step 5 too), so running them first changes which refusal is named, never whether
//! a quote passes. A quote with a bad signature *and* a debug TD is refused as
//! `DebugEnabled`.
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

/// The platform's TCB as the PCK certificate's Intel SGX extension states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PckTcb {
    pub(crate) cpu_svn: [u8; 16],
    pub(crate) pce_svn: u16,
    pub(crate) fmspc: [u8; 6],
}

/// OIDs of the Intel SGX extension of a PCK certificate (Intel's PCK certificate profile).
mod sgx_oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub(super) const EXTENSION: Oid = Oid::new_unwrap("1.2.840.113741.1.13.1");
    pub(super) const TCB: Oid = Oid::new_unwrap("1.2.840.113741.1.13.1.2");
    pub(super) const PCESVN: Oid = Oid::new_unwrap("1.2.840.113741.1.13.1.2.17");
    pub(super) const CPUSVN: Oid = Oid::new_unwrap("1.2.840.113741.1.13.1.2.18");
    pub(super) const FMSPC: Oid = Oid::new_unwrap("1.2.840.113741.1.13.1.4");
}

/// The (OID, value) pairs of a DER `SEQUENCE OF SEQUENCE { OID, ANY }`.
fn oid_pairs(der_bytes: &[u8]) -> Result<Vec<(der::asn1::ObjectIdentifier, der::Any)>, der::Error> {
    use der::Decode;
    Vec::<der::Any>::from_der(der_bytes)?
        .iter()
        .map(|item| {
            let pair = item.decode_as::<Vec<der::Any>>()?;
            match pair.as_slice() {
                [oid, value] => Ok((oid.decode_as()?, value.clone())),
                _ => Err(der::Tag::Sequence.length_error()),
            }
        })
        .collect()
}

/// Read CPUSVN, PCESVN and FMSPC from a PCK certificate's Intel SGX extension.
pub(crate) fn pck_tcb(cert: &x509_cert::Certificate) -> Result<PckTcb, AttestError> {
    let bad = |what: &str| malformed(format!("PCK certificate SGX extension: {what}"));
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == sgx_oid::EXTENSION)
        .ok_or_else(|| bad("missing"))?;
    let top = oid_pairs(ext.extn_value.as_bytes()).map_err(|e| bad(&e.to_string()))?;
    let value = |pairs: &[(der::asn1::ObjectIdentifier, der::Any)], oid| {
        pairs
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad(&format!("no {oid}")))
    };
    let octets = |any: der::Any, what: &str| -> Result<Vec<u8>, AttestError> {
        any.decode_as::<der::asn1::OctetString>()
            .map(|o| o.into_bytes())
            .map_err(|e| bad(&format!("{what}: {e}")))
    };
    let tcb = value(&top, sgx_oid::TCB)?;
    let tcb = oid_pairs(&der::Encode::to_der(&tcb).map_err(|e| bad(&e.to_string()))?)
        .map_err(|e| bad(&e.to_string()))?;
    let cpu_svn: [u8; 16] = octets(value(&tcb, sgx_oid::CPUSVN)?, "CPUSVN")?
        .try_into()
        .map_err(|_| bad("CPUSVN is not 16 bytes"))?;
    let pce_svn = value(&tcb, sgx_oid::PCESVN)?
        .decode_as::<u16>()
        .map_err(|e| bad(&format!("PCESVN: {e}")))?;
    let fmspc: [u8; 6] = octets(value(&top, sgx_oid::FMSPC)?, "FMSPC")?
        .try_into()
        .map_err(|_| bad("FMSPC is not 6 bytes"))?;
    Ok(PckTcb {
        cpu_svn,
        pce_svn,
        fmspc,
    })
}

/// The PCK certificate dcap-qvl uses: the leaf of the collateral's PCK chain when it has
/// one, else of the quote's (certification data type 5).
fn pck_leaf(
    quote: &Quote,
    collateral: &QuoteCollateralV3,
) -> Result<x509_cert::Certificate, AttestError> {
    let chain: Vec<u8> = match &collateral.pck_certificate_chain {
        Some(pem) => pem.as_bytes().to_vec(),
        None => quote
            .raw_cert_chain()
            .map_err(|e| AttestError::QuoteInvalid {
                what: format!("no PCK certificate chain in the quote or the collateral ({e:#})"),
            })?
            .iter()
            .copied()
            .take_while(|&b| b != 0)
            .collect(),
    };
    crate::snp::parse_certificates(&[chain])?
        .into_iter()
        .next()
        .ok_or_else(|| malformed("the PCK certificate chain is empty"))
}

/// Whether the platform (`pck`) and the TDX module (`tee_tcb_svn`) meet `level`, as Intel's
/// QVL and dcap-qvl match levels: every SGX component of CPUSVN, PCESVN, and every TDX
/// component of TEE_TCB_SVN at least the level's (components 0 and 1 are left to the TDX
/// module identity when the module version, byte 1, is not 0).
fn level_met(level: &dcap_qvl::TcbLevel, pck: &PckTcb, tee_tcb_svn: &[u8; 16]) -> bool {
    let tcb = &level.tcb;
    if tcb.sgx_components.len() != pck.cpu_svn.len()
        || tcb.tdx_components.len() != tee_tcb_svn.len()
    {
        return false;
    }
    let skip = if tee_tcb_svn[1] > 0 { 2 } else { 0 };
    pck.cpu_svn
        .iter()
        .zip(&tcb.sgx_components)
        .all(|(have, needs)| *have >= needs.svn)
        && pck.pce_svn >= tcb.pce_svn
        && tee_tcb_svn
            .iter()
            .zip(&tcb.tdx_components)
            .skip(skip)
            .all(|(have, needs)| *have >= needs.svn)
}

/// Whether the TDX module of `tee_tcb_svn` meets a level of its module identity (none to
/// meet when the module version, byte 1, is 0).
fn module_level_met(tcb_info: &dcap_qvl::TcbInfo, tee_tcb_svn: &[u8; 16]) -> bool {
    if tee_tcb_svn[1] == 0 {
        return true;
    }
    let wanted = format!("TDX_{:02X}", tee_tcb_svn[1]);
    tcb_info
        .tdx_module_identities
        .iter()
        .find(|id| id.id.eq_ignore_ascii_case(&wanted))
        .is_some_and(|id| id.tcb_levels.iter().any(|l| tee_tcb_svn[0] >= l.tcb.isvsvn))
}

/// Match the platform's TCB against the collateral's TCB info, in our own code, before
/// dcap-qvl: the TCB info is for this platform (FMSPC) and for TDX, and some TCB level is
/// met by the PCK certificate's CPUSVN/PCESVN and by the quote's TEE_TCB_SVN (and, for a
/// TD 1.5, by TEE_TCB_SVN2 too), with a TDX module level met where the module version asks
/// for one. This only refuses; acceptance stays with dcap-qvl, which verifies the TCB info's
/// signature and matches again.
fn check_tcb_level(
    quote: &Quote,
    td: &TDReport10,
    collateral: &QuoteCollateralV3,
) -> Result<(), AttestError> {
    let tcb_info: dcap_qvl::TcbInfo = serde_json::from_str(&collateral.tcb_info).map_err(|e| {
        AttestError::CollateralMalformed {
            what: format!("TCB info: {e}"),
        }
    })?;
    if tcb_info.id != "TDX" || tcb_info.version < 3 {
        return Err(AttestError::CollateralInvalid {
            what: format!(
                "the TCB info is `{}` version {}, not TDX version 3 or later",
                tcb_info.id, tcb_info.version
            ),
        });
    }
    let pck = pck_tcb(&pck_leaf(quote, collateral)?)?;
    if !hex::decode(&tcb_info.fmspc).is_ok_and(|f| f == pck.fmspc) {
        return Err(AttestError::FmspcMismatch {
            collateral: tcb_info.fmspc.to_ascii_uppercase(),
            platform: hex::encode_upper(pck.fmspc),
        });
    }
    let mut svns = vec![td.tee_tcb_svn];
    if let Some(td15) = quote.report.as_td15() {
        svns.push(td15.tee_tcb_svn2);
    }
    for svn in &svns {
        let platform = tcb_info.tcb_levels.iter().any(|l| level_met(l, &pck, svn));
        if !platform || !module_level_met(&tcb_info, svn) {
            return Err(AttestError::TcbLevelNotFound);
        }
    }
    Ok(())
}

/// The TD's DEBUG attribute and the other TUD bits dcap-qvl refuses with it (profiling,
/// bits 4..6): refused unless the reference allows debug.
fn check_td_debug(td: &TDReport10, refs: &TdxReference) -> Result<(), AttestError> {
    if td.td_attributes[0] & 0x71 != 0 && !refs.allow_debug {
        return Err(AttestError::DebugEnabled);
    }
    Ok(())
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
    let parsed_td = quote
        .report
        .as_td10()
        .ok_or_else(|| malformed("the quote has no TD report"))?;
    check_td_debug(parsed_td, refs)?;
    check_tcb_level(&quote, parsed_td, collateral)?;
    // Whatever else dcap-qvl refuses (the PCK chain and CRLs, the QE report and its
    // signature, the quote signature, the collateral signatures, the QE identity, the
    // remaining TD attributes, a Revoked TCB) is one refusal; its text is a detail to show.
    let verifier = QuoteVerifier::new_prod()
        .with_config::<dcap_qvl::configs::RustCryptoConfig>()
        .allow_debug(refs.allow_debug);
    let verified =
        verifier
            .verify(raw, collateral, at_unix)
            .map_err(|e| AttestError::QuoteInvalid {
                what: format!("{e:#}"),
            })?;
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

    fn v4() -> (Quote, QuoteCollateralV3) {
        let q = parse_td_quote(include_bytes!("../tests/data/tdx-v4/quote.bin")).unwrap();
        let c: serde_json::Value =
            serde_json::from_slice(include_bytes!("../tests/data/tdx-v4/collateral.json")).unwrap();
        (q, parse_collateral(&c).unwrap())
    }

    /// The v4 collateral with `edit` applied to every TCB level of its TCB info.
    fn with_levels(
        c: &QuoteCollateralV3,
        edit: impl Fn(&mut serde_json::Value),
    ) -> QuoteCollateralV3 {
        let mut info: serde_json::Value = serde_json::from_str(&c.tcb_info).unwrap();
        for level in info["tcbLevels"].as_array_mut().unwrap() {
            edit(&mut level["tcb"]);
        }
        let mut c = c.clone();
        c.tcb_info = info.to_string();
        c
    }

    #[test]
    fn reads_the_platform_tcb_from_the_pck_certificate() {
        let (q, c) = v4();
        let pck = pck_tcb(&pck_leaf(&q, &c).unwrap()).unwrap();
        assert_eq!(hex::encode_upper(pck.fmspc), "B0C06F000000");
        // The TCB info's first level is met exactly by this platform (UpToDate).
        let info: dcap_qvl::TcbInfo = serde_json::from_str(&c.tcb_info).unwrap();
        let td = *q.report.as_td10().unwrap();
        assert!(level_met(&info.tcb_levels[0], &pck, &td.tee_tcb_svn));
        check_tcb_level(&q, &td, &c).unwrap();
    }

    #[test]
    fn rejects_platform_below_every_sgx_component_level() {
        let (q, c) = v4();
        let c = with_levels(&c, |tcb| tcb["sgxtcbcomponents"][0]["svn"] = 255.into());
        let td = *q.report.as_td10().unwrap();
        assert!(matches!(
            check_tcb_level(&q, &td, &c),
            Err(AttestError::TcbLevelNotFound)
        ));
    }

    #[test]
    fn rejects_platform_below_every_pcesvn_level() {
        let (q, c) = v4();
        let c = with_levels(&c, |tcb| tcb["pcesvn"] = 65535.into());
        let td = *q.report.as_td10().unwrap();
        assert!(matches!(
            check_tcb_level(&q, &td, &c),
            Err(AttestError::TcbLevelNotFound)
        ));
    }

    #[test]
    fn rejects_td_below_every_tdx_component_level() {
        let (q, c) = v4();
        let c = with_levels(&c, |tcb| tcb["tdxtcbcomponents"][2]["svn"] = 255.into());
        let td = *q.report.as_td10().unwrap();
        assert!(matches!(
            check_tcb_level(&q, &td, &c),
            Err(AttestError::TcbLevelNotFound)
        ));
    }

    #[test]
    fn rejects_td_module_below_its_module_identity_levels() {
        let (q, c) = v4();
        let mut td = *q.report.as_td10().unwrap();
        // A module version with no identity in the TCB info.
        td.tee_tcb_svn[1] = 0x7f;
        assert!(matches!(
            check_tcb_level(&q, &td, &c),
            Err(AttestError::TcbLevelNotFound)
        ));
    }

    #[test]
    fn rejects_tcb_info_that_is_not_tdx() {
        let (q, mut c) = v4();
        let mut info: serde_json::Value = serde_json::from_str(&c.tcb_info).unwrap();
        info["id"] = "SGX".into();
        c.tcb_info = info.to_string();
        let td = *q.report.as_td10().unwrap();
        assert!(matches!(
            check_tcb_level(&q, &td, &c),
            Err(AttestError::CollateralInvalid { .. })
        ));
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
