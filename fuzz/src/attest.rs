//! Entry functions for the `cleanroom-attest` parsers: SEV-SNP reports and certificate
//! chains, TDX quotes with collateral, Azure HCL reports, evidence bundles.
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by `attest/tests/fuzz_corpus.rs` (the
//! corpus replay in CI), each next to `parts.rs`. Uses only `cleanroom_attest` and crates it
//! depends on (`base64`, `hex`, `serde_json`).
//!
//! Verification runs against fixed reference values ([`refs`]) built from the real vectors in
//! `attest/tests/data`, at fixed times (`parts::JULY_2025` etc.), never at the clock, so a
//! corpus replays the same way on every machine and every day.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_attest::{
    EvidenceBundle, Expected, Platform, ReferenceValues, SimReference, SnpReference, TdxReference,
    azure, measure, snp, tdx,
};

use super::parts::{self, Control};

/// The `sim` measurement the fixed reference values accept (seedgen signs sim evidence of it).
pub const SIM_MEASUREMENT: [u8; 48] = [0x5a; 48];

/// The real vectors, embedded (paths relative to this file). Some are read only by seedgen.
#[allow(dead_code)]
pub struct Vectors {
    pub milan_report: Vec<u8>,
    pub milan_certs: Vec<Vec<u8>>,
    pub vlek_report: &'static [u8],
    pub vlek_certs: Vec<Vec<u8>>,
    pub azure_snp_hcl: &'static [u8],
    pub azure_snp_certs: Vec<Vec<u8>>,
    pub tdx_v4_quote: &'static [u8],
    pub tdx_v4_collateral: &'static [u8],
    pub tdx_outdated_quote: &'static [u8],
    pub tdx_outdated_collateral: &'static [u8],
    pub azure_tdx_hcl: &'static [u8],
    pub azure_tdx_quote: &'static [u8],
}

pub fn vectors() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        let milan_hex: String = include_str!("../../attest/tests/data/snp-milan/report.hex")
            .split_whitespace()
            .collect();
        Vectors {
            milan_report: hex::decode(milan_hex).unwrap_or_default(),
            milan_certs: vec![
                include_bytes!("../../attest/tests/data/snp-milan/vcek.der").to_vec(),
                include_bytes!("../../attest/tests/data/snp-milan/ask_ark.pem").to_vec(),
            ],
            vlek_report: include_bytes!("../../attest/tests/data/snp-vlek/report.bin"),
            vlek_certs: vec![
                include_bytes!("../../attest/tests/data/snp-vlek/vlek.der").to_vec(),
                include_bytes!("../../attest/tests/data/snp-vlek/milan_ask_ark_asvk.pem").to_vec(),
            ],
            azure_snp_hcl: include_bytes!("../../attest/tests/data/snp-azure-hcl/hcl-report.bin"),
            azure_snp_certs: vec![
                include_bytes!("../../attest/tests/data/snp-azure-hcl/vcek_ask_ark.pem").to_vec(),
            ],
            tdx_v4_quote: include_bytes!("../../attest/tests/data/tdx-v4/quote.bin"),
            tdx_v4_collateral: include_bytes!("../../attest/tests/data/tdx-v4/collateral.json"),
            tdx_outdated_quote: include_bytes!("../../attest/tests/data/tdx-outdated/quote.bin"),
            tdx_outdated_collateral: include_bytes!(
                "../../attest/tests/data/tdx-outdated/collateral.json"
            ),
            azure_tdx_hcl: include_bytes!("../../attest/tests/data/tdx-azure/hcl-report.bin"),
            azure_tdx_quote: include_bytes!("../../attest/tests/data/tdx-azure/td-quote.bin"),
        }
    })
}

/// The SNP report inside the Azure SNP HCL report (bytes 32..1216).
fn azure_snp_report(v: &Vectors) -> &[u8] {
    v.azure_snp_hcl.get(32..1216).unwrap_or_default()
}

/// Fixed reference values: every platform allowed (sim too); the measurements (SNP
/// MEASUREMENT, TDX MRTD) of the real vectors and [`SIM_MEASUREMENT`]; minimum TCB zero; every
/// Intel TCB status except `Revoked`; debug refused. `vmpl` is the required SNP VMPL.
pub fn refs(vmpl: Option<u32>) -> ReferenceValues {
    static BASE: OnceLock<ReferenceValues> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let v = vectors();
        let snp_measurements = [
            v.milan_report.as_slice(),
            v.vlek_report,
            azure_snp_report(v),
        ]
        .iter()
        .filter_map(|r| snp::parse_report(r).ok())
        .map(|r| r.measurement)
        .collect();
        let mrtds = [v.tdx_v4_quote, v.tdx_outdated_quote, v.azure_tdx_quote]
            .iter()
            .filter_map(|q| measure::tdx_reference_from_quote(q).ok())
            .map(|t| t.mrtd)
            .collect();
        ReferenceValues {
            allowed_platforms: vec![
                Platform::Snp,
                Platform::Tdx,
                Platform::AzureSnp,
                Platform::AzureTdx,
                Platform::Sim,
            ],
            allow_simulated: true,
            sim: SimReference {
                measurements: vec![SIM_MEASUREMENT],
            },
            snp: SnpReference {
                measurements: snp_measurements,
                ..SnpReference::default()
            },
            tdx: TdxReference {
                mrtds,
                allowed_tcb_statuses: [
                    "UpToDate",
                    "SWHardeningNeeded",
                    "ConfigurationNeeded",
                    "ConfigurationAndSWHardeningNeeded",
                    "OutOfDate",
                    "OutOfDateConfigurationNeeded",
                ]
                .map(String::from)
                .to_vec(),
                ..TdxReference::default()
            },
        }
    });
    let mut r = base.clone();
    r.snp.vmpl = vmpl;
    r
}

/// Raw SEV-SNP report bytes: [`snp::parse_report`] on the input and on the input cut or
/// zero-padded to 1184 bytes (most inputs have another length, and the length check is the
/// first thing the parser does).
pub fn snp_report(data: &[u8]) {
    let _ = snp::parse_report(data);
    let mut fixed = data.to_vec();
    fixed.resize(snp::REPORT_LEN, 0);
    if let Ok(r) = snp::parse_report(&fixed) {
        let _ = (r.key_info.signing_key(), r.policy.debug_allowed(), r.vmpl);
    }
}

/// Parts: control, SNP report, then one part per certificate entry (PEM text, one or more
/// blocks, or DER). [`snp::parse_certificates`], then [`snp::verify_report_bytes`] of the report
/// with those certificates. Control byte 0 (mod 4) picks the report: 0 the input's part, 1 the
/// Milan vector, 2 the VLEK vector, 3 the Azure vector's SNP report.
pub fn snp_chain(data: &[u8]) {
    let p = parts::split(data);
    let ctl = Control::new(p[0]);
    let entries: Vec<Vec<u8>> = p.iter().skip(2).map(|e| e.to_vec()).collect();
    let Ok(certs) = snp::parse_certificates(&entries) else {
        return;
    };
    let v = vectors();
    let report = match ctl.source() % 4 {
        0 => p.get(1).copied().unwrap_or_default(),
        1 => v.milan_report.as_slice(),
        2 => v.vlek_report,
        _ => azure_snp_report(v),
    };
    let refs = refs(ctl.vmpl());
    let _ = snp::verify_report_bytes(report, &certs, &refs.snp, ctl.time(), Platform::Snp);
}

/// Parts: control, TD quote, collateral JSON. [`measure::tdx_reference_from_quote`],
/// [`tdx::parse_td_quote`], [`tdx::parse_collateral`], then [`tdx::verify_quote_bytes`].
/// Control byte 0 picks, in bits 0..2, the quote (0 the input's part, 1 tdx-v4, 2
/// tdx-outdated, 3 tdx-azure) and in bits 2..4 the collateral (0 the input's part, 1 tdx-v4,
/// 2 tdx-outdated, 3 none).
pub fn tdx_quote(data: &[u8]) {
    let p = parts::split(data);
    let ctl = Control::new(p[0]);
    let v = vectors();
    let quote = match ctl.source() & 3 {
        0 => p.get(1).copied().unwrap_or_default(),
        1 => v.tdx_v4_quote,
        2 => v.tdx_outdated_quote,
        _ => v.azure_tdx_quote,
    };
    let collateral = match (ctl.source() >> 2) & 3 {
        0 => p.get(2).copied().unwrap_or_default(),
        1 => v.tdx_v4_collateral,
        2 => v.tdx_outdated_collateral,
        _ => return,
    };
    if let Ok(values) = measure::tdx_reference_from_quote(quote) {
        let q = tdx::parse_td_quote(quote).expect("a quote measure accepts parses");
        let td = q
            .report
            .as_td10()
            .expect("a parsed TD quote has a TD report");
        assert_eq!(values.mrtd, td.mr_td);
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(collateral) else {
        return;
    };
    let Ok(collateral) = tdx::parse_collateral(&json) else {
        return;
    };
    let refs = refs(None);
    let _ = tdx::verify_quote_bytes(quote, &collateral, &refs.tdx, ctl.time(), Platform::Tdx);
}

/// An Azure vTPM HCL report: [`azure::parse_hcl_report`] and every accessor; when the runtime
/// data binding holds, [`azure::verify_snp_hcl`] with the Azure vector's certificates or
/// [`azure::verify_tdx_hcl`] with the Azure TD quote (no collateral), in July 2025.
pub fn azure_hcl(data: &[u8]) {
    let Ok(hcl) = azure::parse_hcl_report(data) else {
        return;
    };
    let _ = hcl.hw_report_data();
    let _ = hcl.runtime_data();
    let _ = hcl.user_data();
    let _ = hcl.td_report();
    if hcl.check_runtime_data_binding().is_err() {
        return;
    }
    let v = vectors();
    let refs = refs(None);
    match hcl.report_type {
        azure::HclReportType::Snp => {
            let Ok(certs) = snp::parse_certificates(&v.azure_snp_certs) else {
                return;
            };
            let _ = azure::verify_snp_hcl(data, &certs, &refs.snp, parts::JULY_2025);
        }
        azure::HclReportType::Tdx => {
            let _ =
                azure::verify_tdx_hcl(data, v.azure_tdx_quote, None, &refs.tdx, parts::JULY_2025);
        }
    }
}

/// Evidence bundle JSON (what a host serves and a broker checks): parse, then
/// [`check_bundle`] in July 2025 with VMPL 0 required.
pub fn evidence_json(data: &[u8]) {
    let Ok(bundle) = serde_json::from_slice::<EvidenceBundle>(data) else {
        return;
    };
    check_bundle(&bundle, parts::JULY_2025, None);
}

/// Parts: control, raw report (or HCL report, or sim report envelope), TD quote (empty:
/// none), collateral JSON (empty or not JSON: none), then one part per `cert_chain` entry.
/// Builds the bundle (base64-encoding the binary parts, which the JSON target's mutations
/// rarely keep valid), then [`check_bundle`]. Control byte 0 (mod 5) picks the platform:
/// snp, tdx, azure-snp, azure-tdx, sim.
pub fn evidence_parts(data: &[u8]) {
    let p = parts::split(data);
    let ctl = Control::new(p[0]);
    let platform = [
        Platform::Snp,
        Platform::Tdx,
        Platform::AzureSnp,
        Platform::AzureTdx,
        Platform::Sim,
    ][usize::from(ctl.source() % 5)];
    let part = |i: usize| p.get(i).copied().unwrap_or_default();
    let bundle = EvidenceBundle {
        platform,
        report: B64.encode(part(1)),
        cert_chain: p
            .iter()
            .skip(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect(),
        collateral: serde_json::from_slice(part(3)).ok(),
        td_quote: (!part(2).is_empty()).then(|| B64.encode(part(2))),
        host_public_key: None,
        contract_digest: None,
    };
    check_bundle(&bundle, ctl.time(), ctl.vmpl());
}

/// [`cleanroom_attest::inspect_unverified`], then [`cleanroom_attest::verify`] against
/// [`refs`] at `at_unix`, expecting the bindings the bundle claims (so that the real vectors
/// pass every check). Properties: serialising a parsed bundle is stable; what `verify`
/// accepts, `inspect_unverified` reads the same way.
pub fn check_bundle(bundle: &EvidenceBundle, at_unix: u64, vmpl: Option<u32>) {
    let json = serde_json::to_vec(bundle).expect("a bundle serialises");
    let again: EvidenceBundle = serde_json::from_slice(&json).expect("a serialised bundle parses");
    assert_eq!(
        serde_json::to_vec(&again).expect("serialises"),
        json,
        "bundle JSON round trip"
    );

    let unverified = cleanroom_attest::inspect_unverified(bundle);
    let expected = match &unverified {
        Ok(u) => {
            let mut host_data = [0u8; 32];
            let n = u.host_data.len().min(32);
            host_data[..n].copy_from_slice(&u.host_data[..n]);
            Expected {
                report_data: u.report_data,
                host_data,
            }
        }
        Err(_) => Expected {
            report_data: [0; 64],
            host_data: [0; 32],
        },
    };
    let verified = cleanroom_attest::verify(bundle, &refs(vmpl), &expected, at_unix);
    if let Ok(v) = &verified {
        let u = unverified
            .as_ref()
            .expect("evidence that verifies can be inspected");
        let claims = v.claims();
        assert_eq!(claims.platform, u.platform);
        assert_eq!(claims.measurement, hex::encode(u.measurement));
        assert_eq!(claims.report_data, hex::encode(u.report_data));
        assert_eq!(claims.insecure, u.platform == Platform::Sim);
    }
}
