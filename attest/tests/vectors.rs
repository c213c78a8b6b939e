//! Real attestation evidence (see `tests/data/README.md` for provenance): every vector
//! passes or fails exactly as the README says, and mutations of the real vectors are refused
//! naming the check that stops them.

#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_attest::{
    AttestError, EvidenceBundle, Expected, Platform, ReferenceValues, SnpAbiVersion, SnpReference,
    SnpTcb, TdxReference, Verified, report_data_for, verify,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// 2025-06-01T00:00:00Z: inside the VLEK's validity (2024-12-10 .. 2025-12-10).
const JUNE_2025: u64 = 1_748_736_000;
/// 2025-07-01T00:00:00Z: inside tdx-v4's collateral window (2025-06-19 .. 2025-07-19).
const JULY_2025: u64 = 1_751_328_000;
/// 2026-03-01T00:00:00Z: inside tdx-outdated's collateral window (2026-02-18 .. 2026-03-20).
const MARCH_2026: u64 = 1_772_323_200;
/// 2020-01-01T00:00:00Z: before the Milan VCEK was issued (2023-04-03).
const JAN_2020: u64 = 1_577_836_800;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{path}")).unwrap()
}

fn read_text(path: &str) -> String {
    String::from_utf8(read(path)).unwrap()
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Split a PEM bundle into its certificates, in file order.
fn pem_blocks(text: &str) -> Vec<String> {
    let end = "-----END CERTIFICATE-----";
    text.split_inclusive(end)
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| b.trim_start().to_string())
        .collect()
}

// ---------------------------------------------------------------- SNP fixtures

fn milan_report() -> Vec<u8> {
    hex::decode(
        read_text("snp-milan/report.hex")
            .split_whitespace()
            .collect::<String>(),
    )
    .unwrap()
}

fn milan_vcek() -> String {
    pem(&read("snp-milan/vcek.der"))
}

/// [ASK, ARK] as in the file.
fn milan_ask_ark() -> Vec<String> {
    pem_blocks(&read_text("snp-milan/ask_ark.pem"))
}

fn vlek_report() -> Vec<u8> {
    read("snp-vlek/report.bin")
}

fn vlek_cert() -> String {
    pem(&read("snp-vlek/vlek.der"))
}

/// [ASK, ARK, ASVK] as in the file.
fn milan_ask_ark_asvk() -> Vec<String> {
    pem_blocks(&read_text("snp-vlek/milan_ask_ark_asvk.pem"))
}

fn azure_hcl() -> Vec<u8> {
    read("snp-azure-hcl/hcl-report.bin")
}

/// [VCEK, ASK, ARK] as in the file.
fn azure_vcek_ask_ark() -> Vec<String> {
    pem_blocks(&read_text("snp-azure-hcl/vcek_ask_ark.pem"))
}

fn bundle(platform: Platform, report: &[u8], chain: Vec<String>) -> EvidenceBundle {
    EvidenceBundle {
        platform,
        report: B64.encode(report),
        cert_chain: chain,
        collateral: None,
        td_quote: None,
        host_public_key: None,
        contract_digest: None,
    }
}

fn snp_field<const N: usize>(report: &[u8], off: usize) -> [u8; N] {
    report[off..off + N].try_into().unwrap()
}

/// Reference values accepting exactly this SNP report's measurement, VMPL and TCB.
fn snp_refs(report: &[u8], platform: Platform) -> ReferenceValues {
    let vmpl = u32::from_le_bytes(snp_field(report, 0x30));
    ReferenceValues {
        allowed_platforms: vec![platform],
        snp: SnpReference {
            measurements: vec![snp_field(report, 0x90)],
            vmpl: Some(vmpl),
            min_tcb: SnpTcb {
                bootloader: report[0x180],
                tee: report[0x181],
                snp: report[0x186],
                microcode: report[0x187],
                fmc: None,
            },
            ..SnpReference::default()
        },
        ..ReferenceValues::default()
    }
}

/// The bindings the report actually carries (as a broker would expect them if it had
/// asked with that REPORT_DATA).
fn snp_own_bindings(report: &[u8]) -> Expected {
    Expected {
        report_data: snp_field(report, 0x50),
        host_data: snp_field(report, 0xc0),
    }
}

fn milan_bundle() -> EvidenceBundle {
    let mut chain = vec![milan_vcek()];
    chain.extend(milan_ask_ark());
    bundle(Platform::Snp, &milan_report(), chain)
}

fn verify_milan(report: &[u8], chain: Vec<String>, at: u64) -> Result<Verified, AttestError> {
    let pristine = milan_report();
    verify(
        &bundle(Platform::Snp, report, chain),
        &snp_refs(&pristine, Platform::Snp),
        &snp_own_bindings(&pristine),
        at,
    )
}

fn milan_chain() -> Vec<String> {
    let mut chain = vec![milan_vcek()];
    chain.extend(milan_ask_ark());
    chain
}

fn flip(mut bytes: Vec<u8>, offset: usize, bit: u8) -> Vec<u8> {
    bytes[offset] ^= 1 << bit;
    bytes
}

// ---------------------------------------------------------------- SNP: vectors as the README says

#[test]
fn snp_milan_vector_verifies_with_its_vcek_and_chain_at_the_real_clock() {
    let v = verify_milan(&milan_report(), milan_chain(), now()).unwrap();
    let c = v.claims();
    assert_eq!(c.platform, Platform::Snp);
    assert_eq!(
        c.measurement,
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(c.tcb, "bootloader=3 tee=0 snp=8 microcode=115");
    assert_eq!(c.details["signing_key"], "VCEK");
    assert_eq!(c.details["generation"], "Milan");
    assert!(!c.debug && !c.insecure);
}

#[test]
fn snp_milan_vector_verifies_with_the_vcek_alone_against_amds_builtin_roots() {
    verify_milan(&milan_report(), vec![milan_vcek()], now()).unwrap();
}

#[test]
fn snp_vlek_vector_verifies_inside_the_vlek_validity() {
    let report = vlek_report();
    let mut chain = vec![vlek_cert()];
    chain.extend(milan_ask_ark_asvk());
    let v = verify(
        &bundle(Platform::Snp, &report, chain),
        &snp_refs(&report, Platform::Snp),
        &snp_own_bindings(&report),
        JUNE_2025,
    )
    .unwrap();
    assert_eq!(v.claims().details["signing_key"], "VLEK");
    assert_eq!(v.claims().details["vmpl"], "1");
}

#[test]
fn rejects_vlek_whose_certificate_expired_at_the_real_clock() {
    let report = vlek_report();
    let mut chain = vec![vlek_cert()];
    chain.extend(milan_ask_ark_asvk());
    let err = verify(
        &bundle(Platform::Snp, &report, chain),
        &snp_refs(&report, Platform::Snp),
        &snp_own_bindings(&report),
        now(),
    )
    .unwrap_err();
    match err {
        AttestError::CertificateExpired {
            subject, not_after, ..
        } => {
            assert_eq!(subject, "SEV-VLEK");
            assert_eq!(not_after, "2025-12-10T22:14:21Z");
        }
        other => panic!("expected CertificateExpired, got {other:?}"),
    }
}

#[test]
fn snp_azure_hcl_vector_verifies_and_binds_its_runtime_data() {
    let hcl = azure_hcl();
    let snp = hcl[32..1216].to_vec();
    let refs = snp_refs(&snp, Platform::AzureSnp);
    let expected = Expected {
        // On Azure the request binding is the vTPM user-data (zeros in this vector).
        report_data: [0; 64],
        host_data: snp_field(&snp, 0xc0),
    };
    let v = verify(
        &bundle(Platform::AzureSnp, &hcl, azure_vcek_ask_ark()),
        &refs,
        &expected,
        now(),
    )
    .unwrap();
    let c = v.claims();
    assert_eq!(c.platform, Platform::AzureSnp);
    assert_eq!(
        c.details["hw_report_data"],
        "b3fbad6514c83caeb0380882145e49f794229ef37c421b91fc47ff93556bafac0000000000000000000000000000000000000000000000000000000000000000"
    );
    assert!(c.details["runtime_data"].contains("HCLAkPub"));
}

#[test]
fn hcl_report_layout_is_as_the_readme_says() {
    let hcl = cleanroom_attest::azure::parse_hcl_report(&azure_hcl()).unwrap();
    assert_eq!(hcl.report_type, cleanroom_attest::azure::HclReportType::Snp);
    assert_eq!(hcl.var_data, azure_hcl()[1236..1236 + hcl.var_data.len()]);
    hcl.check_runtime_data_binding().unwrap();
}

// ---------------------------------------------------------------- SNP: mutations

#[test]
fn rejects_report_with_flipped_signature_bit() {
    let err = verify_milan(&flip(milan_report(), 0x2a0, 0), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_measurement_bit() {
    let err = verify_milan(&flip(milan_report(), 0x90, 3), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_report_data_bit() {
    let err = verify_milan(&flip(milan_report(), 0x50, 0), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_host_data_bit() {
    let err = verify_milan(&flip(milan_report(), 0xc0 + 31, 7), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_reported_tcb_bit() {
    // REPORTED_TCB.snp 8 -> 9: the VCEK certifies 8, so the extension check names it first.
    let err = verify_milan(&flip(milan_report(), 0x186, 0), milan_chain(), now()).unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::VekTcbMismatch {
                field: "snp",
                report: 9,
                certificate: 8
            }
        ),
        "{err:?}"
    );
}

#[test]
fn rejects_report_with_flipped_current_tcb_bit() {
    let err = verify_milan(&flip(milan_report(), 0x3e, 0), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_policy_debug_bit() {
    // Policy bit 19 (DEBUG) is bit 3 of byte 10.
    let err = verify_milan(&flip(milan_report(), 8 + 2, 3), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_vmpl_bit() {
    let err = verify_milan(&flip(milan_report(), 0x30, 0), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_report_with_flipped_reserved_byte() {
    // Reserved bytes must be zero: the parser refuses the report before any crypto (and the
    // signature, checked over the raw bytes, covers them too).
    let err = verify_milan(&flip(milan_report(), 0x200, 0), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::Malformed { .. }), "{err:?}");
}

#[test]
fn rejects_milan_report_against_the_genoa_chain() {
    let chain = vec![
        milan_vcek(),
        String::from_utf8(sev::certs::snp::builtin::genoa::ASK.to_vec()).unwrap(),
        String::from_utf8(sev::certs::snp::builtin::genoa::ARK.to_vec()).unwrap(),
    ];
    let err = verify_milan(&milan_report(), chain, now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::GenerationMismatch { report, chain } if report == "Milan" && chain == "Genoa"),
        "{err:?}"
    );
}

#[test]
fn rejects_vcek_under_an_ask_of_another_generation() {
    let chain = vec![
        milan_vcek(),
        String::from_utf8(sev::certs::snp::builtin::genoa::ASK.to_vec()).unwrap(),
        milan_ask_ark()[1].clone(),
    ];
    let err = verify_milan(&milan_report(), chain, now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::CertificateSignatureInvalid { signer, subject } if signer == "ARK-Milan" && subject == "SEV-Genoa"),
        "{err:?}"
    );
}

#[test]
fn rejects_vlek_checked_against_the_ask_instead_of_the_asvk() {
    let report = vlek_report();
    let ask_ark = milan_ask_ark();
    let chain = vec![vlek_cert(), ask_ark[0].clone(), ask_ark[1].clone()];
    let err = verify(
        &bundle(Platform::Snp, &report, chain),
        &snp_refs(&report, Platform::Snp),
        &snp_own_bindings(&report),
        JUNE_2025,
    )
    .unwrap_err();
    assert!(
        matches!(&err, AttestError::CertificateSignatureInvalid { signer, subject } if signer == "SEV-Milan" && subject == "SEV-VLEK"),
        "{err:?}"
    );
}

#[test]
fn rejects_vlek_report_without_the_asvk() {
    let report = vlek_report();
    let err = verify(
        &bundle(Platform::Snp, &report, vec![vlek_cert()]),
        &snp_refs(&report, Platform::Snp),
        &snp_own_bindings(&report),
        JUNE_2025,
    )
    .unwrap_err();
    assert!(
        matches!(&err, AttestError::MissingCertificate { role } if role == "ASVK"),
        "{err:?}"
    );
}

#[test]
fn rejects_report_signed_by_other_chip() {
    // The Azure vector's VCEK is a genuine Milan VCEK of another chip.
    let mut chain = vec![azure_vcek_ask_ark()[0].clone()];
    chain.extend(milan_ask_ark());
    let err = verify_milan(&milan_report(), chain, now()).unwrap_err();
    assert!(
        matches!(err, AttestError::VcekChipIdMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_vcek_signed_report_presented_with_a_vlek() {
    let mut chain = vec![vlek_cert()];
    chain.extend(milan_ask_ark_asvk());
    let err = verify_milan(&milan_report(), chain, JUNE_2025).unwrap_err();
    assert!(
        matches!(&err, AttestError::SigningKeyMismatch { report, certificate } if report == "VCEK" && certificate == "VLEK"),
        "{err:?}"
    );
}

#[test]
fn rejects_chain_rooted_in_a_self_made_root() {
    // A self-signed root that is not AMD's (Intel's SGX root CA from the TDX collateral).
    let collateral: serde_json::Value =
        serde_json::from_slice(&read("tdx-v4/collateral.json")).unwrap();
    let intel = pem_blocks(collateral["tcb_info_issuer_chain"].as_str().unwrap());
    let chain = vec![milan_vcek(), milan_ask_ark()[0].clone(), intel[1].clone()];
    let err = verify_milan(&milan_report(), chain, now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::UntrustedRoot { subject } if subject.contains("Intel")),
        "{err:?}"
    );
}

#[test]
fn rejects_vcek_before_its_validity() {
    let err = verify_milan(&milan_report(), milan_chain(), JAN_2020).unwrap_err();
    assert!(
        matches!(&err, AttestError::CertificateNotYetValid { subject, .. } if subject == "SEV-VCEK"),
        "{err:?}"
    );
}

#[test]
fn rejects_tcb_below_the_contract_minimum() {
    let report = milan_report();
    let mut refs = snp_refs(&report, Platform::Snp);
    refs.snp.min_tcb.snp = 9;
    let err = verify(&milan_bundle(), &refs, &snp_own_bindings(&report), now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::TcbTooLow { actual, minimum } if actual.contains("snp=8") && minimum.contains("snp=9")),
        "{err:?}"
    );
}

#[test]
fn snp_report_below_minimum_abi_is_refused() {
    // The real, signed Milan report's guest policy requires ABI 0.0: a contract asking for a
    // guest launched with ABI >= 0.1 refuses it, after the chain and signature verified.
    let report = milan_report();
    let mut refs = snp_refs(&report, Platform::Snp);
    refs.snp.min_abi = Some(SnpAbiVersion { major: 0, minor: 1 });
    let err = verify(&milan_bundle(), &refs, &snp_own_bindings(&report), now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::AbiVersionTooLow { actual, minimum } if actual == "0.0" && minimum == "0.1"),
        "{err:?}"
    );
}

#[test]
fn snp_azure_report_at_its_minimum_abi_passes_and_names_it() {
    // The Azure vector's guest policy is 0x3001f: ABI 0.31, MIGRATE_MA off.
    let hcl = azure_hcl();
    let snp = hcl[32..1216].to_vec();
    let mut refs = snp_refs(&snp, Platform::AzureSnp);
    refs.snp.min_abi = Some(SnpAbiVersion {
        major: 0,
        minor: 31,
    });
    let expected = Expected {
        report_data: [0; 64],
        host_data: snp_field(&snp, 0xc0),
    };
    let bundle = bundle(Platform::AzureSnp, &hcl, azure_vcek_ask_ark());
    let v = verify(&bundle, &refs, &expected, now()).unwrap();
    assert_eq!(v.claims().details["guest_policy_abi"], "0.31");
    refs.snp.min_abi = Some(SnpAbiVersion {
        major: 0,
        minor: 32,
    });
    let err = verify(&bundle, &refs, &expected, now()).unwrap_err();
    assert!(
        matches!(err, AttestError::AbiVersionTooLow { .. }),
        "{err:?}"
    );
}

#[test]
fn real_snp_vectors_pass_with_the_default_migration_agent_refusal() {
    // The default reference refuses MIGRATE_MA; none of the real reports sets it, and the
    // bit is covered by the report signature (a flipped bit 18 is refused as a bad signature).
    let report = milan_report();
    let refs = snp_refs(&report, Platform::Snp);
    assert!(!refs.snp.allow_migration_agent && refs.snp.min_abi.is_none());
    verify(&milan_bundle(), &refs, &snp_own_bindings(&report), now()).unwrap();
    // Policy bit 18 (MIGRATE_MA) is bit 2 of byte 10.
    let err = verify_milan(&flip(milan_report(), 8 + 2, 2), milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

#[test]
fn rejects_measurement_not_in_the_contract() {
    let report = milan_report();
    let mut refs = snp_refs(&report, Platform::Snp);
    refs.snp.measurements = vec![[0x11; 48]];
    let err = verify(&milan_bundle(), &refs, &snp_own_bindings(&report), now()).unwrap_err();
    assert!(
        matches!(err, AttestError::MeasurementNotAllowed { allowed: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_vmpl1_report_when_the_contract_names_no_vmpl() {
    let report = vlek_report();
    let mut refs = snp_refs(&report, Platform::Snp);
    refs.snp.vmpl = None;
    let mut chain = vec![vlek_cert()];
    chain.extend(milan_ask_ark_asvk());
    let err = verify(
        &bundle(Platform::Snp, &report, chain),
        &refs,
        &snp_own_bindings(&report),
        JUNE_2025,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::VmplNotAllowed {
                actual: 1,
                expected: 0
            }
        ),
        "{err:?}"
    );
}

#[test]
fn rejects_report_launched_for_another_contract() {
    let report = milan_report();
    let mut expected = snp_own_bindings(&report);
    expected.host_data = [0x42; 32];
    let err = verify(
        &milan_bundle(),
        &snp_refs(&report, Platform::Snp),
        &expected,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::HostDataMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_snp_evidence_when_the_contract_allows_only_tdx() {
    let report = milan_report();
    let mut refs = snp_refs(&report, Platform::Snp);
    refs.allowed_platforms = vec![Platform::Tdx];
    let err = verify(&milan_bundle(), &refs, &snp_own_bindings(&report), now()).unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::PlatformNotAllowed {
                platform: Platform::Snp
            }
        ),
        "{err:?}"
    );
}

#[test]
fn default_reference_values_refuse_every_real_vector() {
    let refs = ReferenceValues::default();
    let err = verify(
        &milan_bundle(),
        &refs,
        &snp_own_bindings(&milan_report()),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::PlatformNotAllowed { .. }),
        "{err:?}"
    );
    let refs = ReferenceValues {
        allowed_platforms: vec![Platform::Snp, Platform::Tdx],
        ..ReferenceValues::default()
    };
    let err = verify(
        &milan_bundle(),
        &refs,
        &snp_own_bindings(&milan_report()),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::MeasurementNotAllowed { allowed: 0, .. }),
        "{err:?}"
    );
    let err = verify(
        &tdx_v4_bundle(),
        &refs,
        &tdx_own_bindings(&read("tdx-v4/quote.bin")),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::TcbStatusNotAllowed { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_truncated_report() {
    let report = milan_report();
    let err = verify_milan(&report[..1000], milan_chain(), now()).unwrap_err();
    assert!(matches!(err, AttestError::Malformed { .. }), "{err:?}");
}

#[test]
fn rejects_azure_hcl_report_whose_runtime_data_was_edited() {
    let mut hcl = azure_hcl();
    // Flip a bit inside the runtime data JSON (the vmUniqueId).
    let pos = hcl.windows(10).position(|w| w == b"vmUniqueId").unwrap();
    hcl[pos + 14] ^= 1;
    let snp = hcl[32..1216].to_vec();
    let err = verify(
        &bundle(Platform::AzureSnp, &hcl, azure_vcek_ask_ark()),
        &snp_refs(&snp, Platform::AzureSnp),
        &Expected {
            report_data: [0; 64],
            host_data: [0; 32],
        },
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::RuntimeDataDigestMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_azure_hcl_report_with_flipped_snp_report_bit() {
    let hcl = flip(azure_hcl(), 32 + 0x90, 0);
    let snp = azure_hcl()[32..1216].to_vec();
    let err = verify(
        &bundle(Platform::AzureSnp, &hcl, azure_vcek_ask_ark()),
        &snp_refs(&snp, Platform::AzureSnp),
        &Expected {
            report_data: [0; 64],
            host_data: [0; 32],
        },
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::SignatureInvalid), "{err:?}");
}

// ---------------------------------------------------------------- TDX fixtures

fn tdx_bundle(quote: &[u8], collateral: &str) -> EvidenceBundle {
    EvidenceBundle {
        platform: Platform::Tdx,
        report: B64.encode(quote),
        cert_chain: Vec::new(),
        collateral: Some(serde_json::from_slice(&read(collateral)).unwrap()),
        td_quote: None,
        host_public_key: None,
        contract_digest: None,
    }
}

fn tdx_v4_bundle() -> EvidenceBundle {
    tdx_bundle(&read("tdx-v4/quote.bin"), "tdx-v4/collateral.json")
}

/// Offsets in a v4 quote: 48-byte header, then the TD report body.
const TD_BODY: usize = 48;
const MRTD: usize = TD_BODY + 136;
const MRCONFIGID: usize = TD_BODY + 184;
const RTMR0: usize = TD_BODY + 328;
const TD_REPORT_DATA: usize = TD_BODY + 520;
const TD_ATTRIBUTES: usize = TD_BODY + 120;

fn tdx_refs(quote: &[u8], platform: Platform) -> ReferenceValues {
    let mut rtmrs = [None; 4];
    for (i, r) in rtmrs.iter_mut().enumerate() {
        *r = Some(snp_field::<48>(quote, RTMR0 + 48 * i));
    }
    ReferenceValues {
        allowed_platforms: vec![platform],
        tdx: TdxReference {
            mrtds: vec![snp_field(quote, MRTD)],
            rtmrs,
            allowed_tcb_statuses: vec!["UpToDate".into()],
            allow_debug: false,
        },
        ..ReferenceValues::default()
    }
}

fn tdx_own_bindings(quote: &[u8]) -> Expected {
    Expected {
        report_data: snp_field(quote, TD_REPORT_DATA),
        host_data: snp_field(quote, MRCONFIGID),
    }
}

fn verify_tdx_v4(quote: &[u8], at: u64) -> Result<Verified, AttestError> {
    let pristine = read("tdx-v4/quote.bin");
    verify(
        &tdx_bundle(quote, "tdx-v4/collateral.json"),
        &tdx_refs(&pristine, Platform::Tdx),
        &tdx_own_bindings(&pristine),
        at,
    )
}

// ---------------------------------------------------------------- TDX: vectors as the README says

#[test]
fn tdx_v4_vector_is_up_to_date_inside_its_collateral_window() {
    let v = verify_tdx_v4(&read("tdx-v4/quote.bin"), JULY_2025).unwrap();
    let c = v.claims();
    assert_eq!(c.platform, Platform::Tdx);
    assert_eq!(c.details["tcb_status"], "UpToDate");
    assert!(c.tcb.starts_with("UpToDate"));
    assert_eq!(
        c.measurement,
        hex::encode(&read("tdx-v4/quote.bin")[MRTD..MRTD + 48])
    );
    assert!(!c.debug);
}

#[test]
fn rejects_tdx_collateral_expired_at_the_real_clock() {
    let err = verify_tdx_v4(&read("tdx-v4/quote.bin"), now()).unwrap_err();
    assert!(
        matches!(&err, AttestError::CollateralExpired { what, .. } if what == "TCB info"),
        "{err:?}"
    );
}

#[test]
fn rejects_tdx_outdated_vector_with_no_matching_tcb_level() {
    let quote = read("tdx-outdated/quote.bin");
    let err = verify(
        &tdx_bundle(&quote, "tdx-outdated/collateral.json"),
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        MARCH_2026,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::TcbLevelNotFound), "{err:?}");
}

#[test]
fn tdx_azure_vector_quote_belongs_to_its_hcl_report_but_has_no_collateral() {
    let hcl_raw = read("tdx-azure/hcl-report.bin");
    let quote = read("tdx-azure/td-quote.bin");
    let hcl = cleanroom_attest::azure::parse_hcl_report(&hcl_raw).unwrap();
    assert_eq!(hcl.report_type, cleanroom_attest::azure::HclReportType::Tdx);
    hcl.check_runtime_data_binding().unwrap();
    let td = hcl.td_report().unwrap();
    assert_eq!(&quote[MRTD..MRTD + 48], &td[528..576]);
    assert_eq!(&quote[TD_REPORT_DATA..TD_REPORT_DATA + 64], &td[128..192]);

    let evidence = EvidenceBundle {
        platform: Platform::AzureTdx,
        report: B64.encode(&hcl_raw),
        cert_chain: Vec::new(),
        collateral: None,
        td_quote: Some(B64.encode(&quote)),
        host_public_key: None,
        contract_digest: None,
    };
    let err = verify(
        &evidence,
        &tdx_refs(&quote, Platform::AzureTdx),
        &tdx_own_bindings(&quote),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::MissingCollateral), "{err:?}");
}

#[test]
fn rejects_azure_td_quote_from_another_tdreport() {
    // The tdx-v4 quote presented with the Azure HCL report.
    let evidence = EvidenceBundle {
        platform: Platform::AzureTdx,
        report: B64.encode(read("tdx-azure/hcl-report.bin")),
        cert_chain: Vec::new(),
        collateral: Some(serde_json::from_slice(&read("tdx-v4/collateral.json")).unwrap()),
        td_quote: Some(B64.encode(read("tdx-v4/quote.bin"))),
        host_public_key: None,
        contract_digest: None,
    };
    let quote = read("tdx-v4/quote.bin");
    let err = verify(
        &evidence,
        &tdx_refs(&quote, Platform::AzureTdx),
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::QuoteReportMismatch {
                field: "REPORT_DATA",
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- TDX: mutations

#[test]
fn rejects_tdx_quote_with_flipped_signature_bit() {
    let quote = read("tdx-v4/quote.bin");
    // Auth data: u32 length at 632, then the 64-byte ECDSA signature.
    let err = verify_tdx_v4(&flip(quote, 636 + 10, 0), JULY_2025).unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_quote_with_flipped_mrtd_bit() {
    let err = verify_tdx_v4(&flip(read("tdx-v4/quote.bin"), MRTD, 0), JULY_2025).unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_quote_with_flipped_report_data_bit() {
    let err = verify_tdx_v4(
        &flip(read("tdx-v4/quote.bin"), TD_REPORT_DATA, 0),
        JULY_2025,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_quote_with_flipped_mrconfigid_bit() {
    let err = verify_tdx_v4(&flip(read("tdx-v4/quote.bin"), MRCONFIGID, 0), JULY_2025).unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_quote_with_debug_attribute_set() {
    // Checked on the parsed quote before dcap-qvl: named `DebugEnabled` whether or not the
    // quote is signed (a genuinely signed debug TD meets the same check).
    let err =
        verify_tdx_v4(&flip(read("tdx-v4/quote.bin"), TD_ATTRIBUTES, 0), JULY_2025).unwrap_err();
    assert!(matches!(err, AttestError::DebugEnabled), "{err:?}");
}

#[test]
fn rejects_tdx_quote_with_profiling_attribute_set() {
    // TUD bit 4: the TD is under debug too (its state is open to the host).
    let err =
        verify_tdx_v4(&flip(read("tdx-v4/quote.bin"), TD_ATTRIBUTES, 4), JULY_2025).unwrap_err();
    assert!(matches!(err, AttestError::DebugEnabled), "{err:?}");
}

#[test]
fn rejects_tdx_debug_quote_edited_when_the_contract_allows_debug() {
    // With debug allowed, the edited attribute is caught by the quote signature.
    let pristine = read("tdx-v4/quote.bin");
    let mut refs = tdx_refs(&pristine, Platform::Tdx);
    refs.tdx.allow_debug = true;
    let err = verify(
        &tdx_bundle(
            &flip(pristine.clone(), TD_ATTRIBUTES, 0),
            "tdx-v4/collateral.json",
        ),
        &refs,
        &tdx_own_bindings(&pristine),
        JULY_2025,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_tcb_status_not_in_the_contract() {
    let quote = read("tdx-v4/quote.bin");
    let mut refs = tdx_refs(&quote, Platform::Tdx);
    refs.tdx.allowed_tcb_statuses = vec!["OutOfDate".into()];
    let err = verify(
        &tdx_v4_bundle(),
        &refs,
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(&err, AttestError::TcbStatusNotAllowed { status, .. } if status == "UpToDate"),
        "{err:?}"
    );
}

#[test]
fn rejects_tdx_mrtd_not_in_the_contract() {
    let quote = read("tdx-v4/quote.bin");
    let mut refs = tdx_refs(&quote, Platform::Tdx);
    refs.tdx.mrtds = vec![[0x22; 48]];
    let err = verify(
        &tdx_v4_bundle(),
        &refs,
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::MeasurementNotAllowed { .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_tdx_rtmr_not_as_the_contract_expects() {
    let quote = read("tdx-v4/quote.bin");
    let mut refs = tdx_refs(&quote, Platform::Tdx);
    refs.tdx.rtmrs[1] = Some([0x33; 48]);
    let err = verify(
        &tdx_v4_bundle(),
        &refs,
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::RtmrMismatch { index: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn rejects_tdx_collateral_with_edited_tcb_info() {
    // The operator edits the TCB info so the platform's level reads differently: the TCB
    // info's signature (checked by dcap-qvl) refuses it.
    let quote = read("tdx-v4/quote.bin");
    let mut ev = tdx_v4_bundle();
    let collateral = ev.collateral.as_mut().unwrap();
    let tcb_info = collateral["tcb_info"].as_str().unwrap().replacen(
        "\"UpToDate\"",
        "\"SWHardeningNeeded\"",
        1,
    );
    collateral["tcb_info"] = serde_json::Value::String(tcb_info);
    let err = verify(
        &ev,
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

/// The operator lowers every SVN a TCB level requires in the outdated platform's TCB info, so
/// that our own level matching passes: the TCB info's signature still refuses it.
#[test]
fn rejects_tdx_outdated_platform_with_tcb_levels_lowered_in_the_collateral() {
    let quote = read("tdx-outdated/quote.bin");
    let mut ev = tdx_bundle(&quote, "tdx-outdated/collateral.json");
    let collateral = ev.collateral.as_mut().unwrap();
    let mut tcb_info: serde_json::Value =
        serde_json::from_str(collateral["tcb_info"].as_str().unwrap()).unwrap();
    fn lower(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if k == "svn" || k == "pcesvn" || k == "isvsvn" {
                        *x = 0.into();
                    } else {
                        lower(x);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(lower),
            _ => {}
        }
    }
    lower(&mut tcb_info["tcbLevels"]);
    lower(&mut tcb_info["tdxModuleIdentities"]);
    collateral["tcb_info"] = serde_json::Value::String(tcb_info.to_string());
    let err = verify(
        &ev,
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        MARCH_2026,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::QuoteInvalid { .. }), "{err:?}");
}

#[test]
fn rejects_tdx_collateral_with_unknown_tcb_status() {
    let quote = read("tdx-v4/quote.bin");
    let mut ev = tdx_v4_bundle();
    let collateral = ev.collateral.as_mut().unwrap();
    let tcb_info = collateral["tcb_info"]
        .as_str()
        .unwrap()
        .replacen("UpToDate", "UpToDatf", 1);
    collateral["tcb_info"] = serde_json::Value::String(tcb_info);
    let err = verify(
        &ev,
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(
        matches!(err, AttestError::CollateralMalformed { .. }),
        "{err:?}"
    );
}

/// The operator presents the TCB info of another platform (another FMSPC, here the one of
/// the outdated vector, whose TCB levels differ).
#[test]
fn rejects_tdx_collateral_of_another_platform() {
    let quote = read("tdx-v4/quote.bin");
    let err = verify(
        &tdx_bundle(&quote, "tdx-outdated/collateral.json"),
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        MARCH_2026,
    )
    .unwrap_err();
    assert!(
        matches!(&err, AttestError::FmspcMismatch { collateral, platform }
            if collateral == "90C06F000000" && platform == "B0C06F000000"),
        "{err:?}"
    );
}

#[test]
fn rejects_tdx_evidence_without_collateral() {
    let quote = read("tdx-v4/quote.bin");
    let mut ev = tdx_v4_bundle();
    ev.collateral = None;
    let err = verify(
        &ev,
        &tdx_refs(&quote, Platform::Tdx),
        &tdx_own_bindings(&quote),
        JULY_2025,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::MissingCollateral), "{err:?}");
}

// ---------------------------------------------------------------- acceptance 4: broker decision

/// The REPORT_DATA a key broker expects for a fresh request: SHA-384 of the canonical JSON
/// runtime data with the broker's random nonce.
fn fresh_request_binding() -> [u8; 64] {
    let nonce: [u8; 32] = rand::random();
    let runtime_data = format!(
        r#"{{"nonce":"{}","tee-pubkey":{{"crv":"P-384","kty":"EC"}}}}"#,
        B64.encode(nonce)
    );
    report_data_for(runtime_data.as_bytes())
}

fn broker_cases() -> Vec<(&'static str, EvidenceBundle, ReferenceValues, Expected, u64)> {
    let milan = milan_report();
    let vlek = vlek_report();
    let mut vlek_chain = vec![vlek_cert()];
    vlek_chain.extend(milan_ask_ark_asvk());
    let hcl = azure_hcl();
    let azure_snp = hcl[32..1216].to_vec();
    let tdx = read("tdx-v4/quote.bin");
    vec![
        (
            "snp-milan",
            milan_bundle(),
            snp_refs(&milan, Platform::Snp),
            snp_own_bindings(&milan),
            now(),
        ),
        (
            "snp-vlek",
            bundle(Platform::Snp, &vlek, vlek_chain),
            snp_refs(&vlek, Platform::Snp),
            snp_own_bindings(&vlek),
            JUNE_2025,
        ),
        (
            "snp-azure-hcl",
            bundle(Platform::AzureSnp, &hcl, azure_vcek_ask_ark()),
            snp_refs(&azure_snp, Platform::AzureSnp),
            Expected {
                report_data: [0; 64],
                host_data: snp_field(&azure_snp, 0xc0),
            },
            now(),
        ),
        (
            "tdx-v4",
            tdx_v4_bundle(),
            tdx_refs(&tdx, Platform::Tdx),
            tdx_own_bindings(&tdx),
            JULY_2025,
        ),
    ]
}

#[test]
fn broker_accepts_real_vectors_bound_to_their_own_report_data() {
    for (name, evidence, refs, expected, at) in broker_cases() {
        if let Err(e) = verify(&evidence, &refs, &expected, at) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn broker_refuses_real_vectors_not_bound_to_its_fresh_nonce() {
    for (name, evidence, refs, mut expected, at) in broker_cases() {
        expected.report_data = fresh_request_binding();
        match verify(&evidence, &refs, &expected, at) {
            Err(AttestError::ReportDataMismatch { expected: e, .. }) => {
                assert_eq!(e, hex::encode(expected.report_data), "{name}");
            }
            other => panic!("{name}: expected ReportDataMismatch, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- acceptance 3: launch digests

fn empty_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cleanroom-attest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, b"").unwrap();
    path
}

fn measurement_input(features: u64) -> cleanroom_attest::measure::SnpMeasureInput {
    cleanroom_attest::measure::SnpMeasureInput {
        ovmf: format!("{DATA}/snp-measurement/ovmf_AmdSev_suffix.bin").into(),
        kernel: Some(empty_file("kernel")),
        initrd: Some(empty_file("initrd")),
        append: None,
        vcpus: 1,
        vcpu_type: "EPYC-v4".into(),
        guest_features: features,
        vmm: Some("QEMU".into()),
    }
}

#[test]
fn snp_ovmf_hash_is_as_the_readme_says() {
    let hash = cleanroom_attest::measure::snp_ovmf_hash(
        format!("{DATA}/snp-measurement/ovmf_AmdSev_suffix.bin").as_ref(),
    )
    .unwrap();
    assert_eq!(
        hex::encode(hash),
        "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
    );
}

#[test]
fn snp_launch_digest_with_guest_features_0x1_is_as_the_readme_says() {
    let digest = cleanroom_attest::measure::snp_launch_digest(&measurement_input(0x1)).unwrap();
    assert_eq!(
        hex::encode(digest),
        "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"
    );
}

#[test]
fn snp_launch_digest_with_guest_features_0x21_is_as_the_readme_says() {
    let digest = cleanroom_attest::measure::snp_launch_digest(&measurement_input(0x21)).unwrap();
    assert_eq!(
        hex::encode(digest),
        "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"
    );
}

#[test]
fn snp_launch_digest_changes_with_the_kernel_command_line() {
    // Value from the sev crate's own test suite (same OVMF, append "console=ttyS0 loglevel=7").
    let mut input = measurement_input(0x1);
    input.append = Some("console=ttyS0 loglevel=7".into());
    let digest = cleanroom_attest::measure::snp_launch_digest(&input).unwrap();
    assert_eq!(
        hex::encode(digest),
        "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"
    );
}

#[test]
fn snp_measure_refuses_unknown_vcpu_type_and_missing_files() {
    let mut input = measurement_input(0x1);
    input.vcpu_type = "Pentium-II".into();
    assert!(matches!(
        cleanroom_attest::measure::snp_launch_digest(&input),
        Err(cleanroom_attest::measure::MeasureError::UnknownVcpuType(_))
    ));
    let mut input = measurement_input(0x1);
    input.ovmf = "/nonexistent/OVMF.fd".into();
    assert!(matches!(
        cleanroom_attest::measure::snp_launch_digest(&input),
        Err(cleanroom_attest::measure::MeasureError::Io { .. })
    ));
    let mut input = measurement_input(0x1);
    input.kernel = None;
    assert!(matches!(
        cleanroom_attest::measure::snp_launch_digest(&input),
        Err(cleanroom_attest::measure::MeasureError::KernelRequired)
    ));
}

#[test]
fn tdx_reference_values_are_read_from_a_trusted_quote() {
    let quote = read("tdx-v4/quote.bin");
    let r = cleanroom_attest::measure::tdx_reference_from_quote(&quote).unwrap();
    assert_eq!(&r.mrtd[..], &quote[MRTD..MRTD + 48]);
    assert_eq!(&r.rtmrs[3][..], &quote[RTMR0 + 144..RTMR0 + 192]);
}

// ---------------------------------------------------------------- collection on this machine

fn fake_root(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cleanroom-attest-root-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn collection_without_any_attestation_device_names_what_is_missing() {
    let root = fake_root("none");
    let err = cleanroom_attest::collect::Collector::with_root(&root)
        .collect([0; 64])
        .unwrap_err();
    match &err {
        AttestError::NoAttestationDevice { tried } => {
            let tried = tried.join(" ");
            for path in [
                "sys/kernel/config/tsm/report",
                "dev/sev-guest",
                "dev/tdx_guest",
                "dev/tpmrm0",
            ] {
                assert!(tried.contains(path), "{tried}");
            }
        }
        other => panic!("expected NoAttestationDevice, got {other:?}"),
    }
    assert!(err.to_string().contains("sim"));
}

#[test]
fn collection_through_tdx_guest_ioctl_is_refused_clearly() {
    let root = fake_root("tdx");
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::write(root.join("dev/tdx_guest"), b"").unwrap();
    let err = cleanroom_attest::collect::Collector::with_root(&root)
        .collect([0; 64])
        .unwrap_err();
    assert!(
        matches!(&err, AttestError::CollectionNotSupported { what, .. } if what.contains("configfs-tsm")),
        "{err:?}"
    );
}

#[test]
fn collection_through_a_broken_configfs_tsm_names_the_file() {
    // A directory standing in for configfs-tsm, without the kernel behind it.
    let root = fake_root("tsm");
    std::fs::create_dir_all(root.join("sys/kernel/config/tsm/report")).unwrap();
    let err = cleanroom_attest::collect::Collector::with_root(&root)
        .collect([0; 64])
        .unwrap_err();
    assert!(
        matches!(&err, AttestError::CollectionFailed { source_path, .. } if source_path.ends_with("provider")),
        "{err:?}"
    );
}

#[test]
fn sim_measurement_is_sha384_of_the_binary() {
    let m = cleanroom_attest::measure::sim_measurement(b"abc");
    assert_eq!(
        hex::encode(m),
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
    );
    cleanroom_attest::measure::sim_measurement_of_current_exe().unwrap();
}
