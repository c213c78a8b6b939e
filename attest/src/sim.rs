//! The simulated platform (`sim`): INSECURE, for development and CI only.
//!
//! A sim report carries the same fields a hardware report binds (measurement, launch-bound
//! HOST_DATA, REPORT_DATA, TCB, debug) and is signed by a "chip" key that a "root" key
//! certifies, so the verifier runs the same chain, signature and binding checks as on
//! hardware. But the root key is derived from a public constant: anyone can forge sim
//! evidence. That is why [`crate::verify`] accepts it only under `allow_simulated`, and why
//! every claim it yields says `insecure: true`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

use crate::{AttestError, Claims, EvidenceBundle, Platform, SimReference};

/// Seed of the well-known sim root key. Public by design: sim evidence proves nothing.
const SIM_ROOT_SEED: &[u8] = b"cleanroom sim root key: INSECURE, public by design";
const CHIP_CERT_DOMAIN: &[u8] = b"cleanroom-sim-chip-key\0";
const REPORT_DOMAIN: &[u8] = b"cleanroom-sim-report\0";
/// The TCB every sim report claims.
pub const SIM_TCB: u64 = 1;

/// The fields a sim report binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimReport {
    pub version: u32,
    /// 48 bytes, hex: SHA-384 of the host binary.
    pub measurement: String,
    /// 32 bytes, hex: the launch-bound contract digest.
    pub host_data: String,
    /// 64 bytes, hex.
    pub report_data: String,
    pub tcb: u64,
    pub debug: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedSimReport {
    /// base64 of the report's JSON bytes (signed as they are).
    report: String,
    /// hex, fixed-size ECDSA P-384 signature by the chip key.
    signature: String,
    /// hex SEC1 compressed chip public key.
    chip_key: String,
    /// hex, the root's signature over the chip key.
    chip_key_signature: String,
}

/// A software signer standing in for the hardware's attestation engine.
#[derive(Debug)]
pub struct SimSigner {
    root: SigningKey,
    chip: SigningKey,
}

fn key_from_seed(seed: &[u8]) -> SigningKey {
    // Hash-to-scalar by rehashing until the digest is a valid non-zero scalar (first try in
    // practice: the P-384 order is within 2^-190 of 2^384).
    let mut digest = Sha384::digest(seed);
    loop {
        if let Ok(key) = SigningKey::from_slice(&digest) {
            return key;
        }
        digest = Sha384::digest(digest);
    }
}

impl SimSigner {
    /// A signer with the well-known root and a chip key derived from `chip_seed`.
    pub fn new(chip_seed: &[u8]) -> Self {
        Self::with_root(SIM_ROOT_SEED, chip_seed)
    }

    /// A signer with another root: its evidence must fail verification (tests only).
    pub fn with_root(root_seed: &[u8], chip_seed: &[u8]) -> Self {
        let mut chip_material = b"cleanroom sim chip: ".to_vec();
        chip_material.extend_from_slice(chip_seed);
        Self {
            root: key_from_seed(root_seed),
            chip: key_from_seed(&chip_material),
        }
    }

    /// Produce an evidence bundle for `report`.
    pub fn sign(&self, report: &SimReport) -> EvidenceBundle {
        let report_bytes = serde_json::to_vec(report).expect("SimReport serialises");
        let chip_pub = VerifyingKey::from(&self.chip).to_encoded_point(true);
        let chip_sig: Signature = self
            .root
            .sign(&[CHIP_CERT_DOMAIN, chip_pub.as_bytes()].concat());
        let sig: Signature = self.chip.sign(&[REPORT_DOMAIN, &report_bytes].concat());
        let signed = SignedSimReport {
            report: B64.encode(&report_bytes),
            signature: hex::encode(sig.to_bytes()),
            chip_key: hex::encode(chip_pub.as_bytes()),
            chip_key_signature: hex::encode(chip_sig.to_bytes()),
        };
        EvidenceBundle {
            platform: Platform::Sim,
            report: B64.encode(serde_json::to_vec(&signed).expect("serialises")),
            cert_chain: Vec::new(),
            collateral: None,
            td_quote: None,
            host_public_key: None,
            contract_digest: None,
        }
    }
}

/// Collect sim evidence, as a host on a machine without SNP/TDX does.
pub fn collect(
    measurement: [u8; 48],
    host_data: [u8; 32],
    report_data: [u8; 64],
) -> EvidenceBundle {
    SimSigner::new(b"default").sign(&SimReport {
        version: 1,
        measurement: hex::encode(measurement),
        host_data: hex::encode(host_data),
        report_data: hex::encode(report_data),
        tcb: SIM_TCB,
        debug: false,
    })
}

fn malformed(what: impl Into<String>) -> AttestError {
    AttestError::Malformed { what: what.into() }
}

fn decode_hex_len(field: &str, value: &str, len: usize) -> Result<Vec<u8>, AttestError> {
    let bytes = hex::decode(value).map_err(|_| malformed(format!("sim {field} is not hex")))?;
    if bytes.len() != len {
        return Err(malformed(format!(
            "sim {field} has {} bytes, expected {len}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Verify the chain and signature of a sim bundle and check it against `refs`.
pub(crate) fn verify_report(
    bundle: &EvidenceBundle,
    refs: &SimReference,
) -> Result<Claims, AttestError> {
    let outer = B64
        .decode(&bundle.report)
        .map_err(|_| malformed("sim report is not base64"))?;
    let signed: SignedSimReport = serde_json::from_slice(&outer)
        .map_err(|e| malformed(format!("sim report envelope: {e}")))?;

    let root = VerifyingKey::from(&key_from_seed(SIM_ROOT_SEED));
    let chip_bytes = hex::decode(&signed.chip_key).map_err(|_| malformed("sim chip key hex"))?;
    let chip = VerifyingKey::from_sec1_bytes(&chip_bytes)
        .map_err(|_| malformed("sim chip key is not a P-384 point"))?;
    let chip_sig = Signature::from_slice(&decode_hex_len(
        "chip key signature",
        &signed.chip_key_signature,
        96,
    )?)
    .map_err(|_| malformed("sim chip key signature"))?;
    root.verify(&[CHIP_CERT_DOMAIN, &chip_bytes].concat(), &chip_sig)
        .map_err(|_| AttestError::ChainInvalid {
            what: "sim chip key is not certified by the sim root key".into(),
        })?;

    let report_bytes = B64
        .decode(&signed.report)
        .map_err(|_| malformed("sim report body is not base64"))?;
    let sig = Signature::from_slice(&decode_hex_len("signature", &signed.signature, 96)?)
        .map_err(|_| malformed("sim report signature"))?;
    chip.verify(&[REPORT_DOMAIN, &report_bytes].concat(), &sig)
        .map_err(|_| AttestError::SignatureInvalid)?;

    let report: SimReport = serde_json::from_slice(&report_bytes)
        .map_err(|e| malformed(format!("sim report body: {e}")))?;
    let measurement = decode_hex_len("measurement", &report.measurement, 48)?;
    decode_hex_len("host_data", &report.host_data, 32)?;
    decode_hex_len("report_data", &report.report_data, 64)?;
    if report.debug {
        return Err(AttestError::DebugEnabled);
    }
    if !refs.measurements.iter().any(|m| m[..] == measurement[..]) {
        return Err(AttestError::MeasurementNotAllowed {
            actual: report.measurement,
            allowed: refs.measurements.len(),
        });
    }
    Ok(Claims {
        platform: Platform::Sim,
        measurement: report.measurement,
        report_data: report.report_data,
        host_data: report.host_data,
        tcb: report.tcb.to_string(),
        debug: report.debug,
        insecure: true,
        details: Default::default(),
    })
}

/// (measurement, host_data, report_data) of a sim bundle.
type SimFields = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The claimed fields of a sim bundle, NOT verified.
pub(crate) fn inspect(bundle: &EvidenceBundle) -> Result<SimFields, AttestError> {
    let outer = B64
        .decode(&bundle.report)
        .map_err(|_| malformed("sim report is not base64"))?;
    let signed: SignedSimReport = serde_json::from_slice(&outer)
        .map_err(|e| malformed(format!("sim report envelope: {e}")))?;
    let report_bytes = B64
        .decode(&signed.report)
        .map_err(|_| malformed("sim report body is not base64"))?;
    let report: SimReport = serde_json::from_slice(&report_bytes)
        .map_err(|e| malformed(format!("sim report body: {e}")))?;
    Ok((
        decode_hex_len("measurement", &report.measurement, 48)?,
        decode_hex_len("host_data", &report.host_data, 32)?,
        decode_hex_len("report_data", &report.report_data, 64)?,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Expected, ReferenceValues, verify};

    fn refs(m: [u8; 48]) -> ReferenceValues {
        ReferenceValues {
            allowed_platforms: vec![Platform::Sim],
            allow_simulated: true,
            sim: SimReference {
                measurements: vec![m],
            },
            ..ReferenceValues::default()
        }
    }

    fn expected() -> Expected {
        Expected {
            report_data: [7; 64],
            host_data: [9; 32],
        }
    }

    #[test]
    fn accepts_sim_evidence_under_allow_simulated_and_marks_it_insecure() {
        let ev = collect([1; 48], [9; 32], [7; 64]);
        let v = verify(&ev, &refs([1; 48]), &expected(), 0).expect("verifies");
        assert!(v.claims().insecure);
        assert_eq!(v.claims().platform, Platform::Sim);
    }

    #[test]
    fn rejects_sim_evidence_without_allow_simulated() {
        let ev = collect([1; 48], [9; 32], [7; 64]);
        let mut r = refs([1; 48]);
        r.allow_simulated = false;
        assert!(matches!(
            verify(&ev, &r, &expected(), 0),
            Err(AttestError::SimulatedNotAllowed)
        ));
    }

    #[test]
    fn rejects_sim_report_certified_by_other_root() {
        let ev = SimSigner::with_root(b"attacker root", b"chip").sign(&SimReport {
            version: 1,
            measurement: hex::encode([1u8; 48]),
            host_data: hex::encode([9u8; 32]),
            report_data: hex::encode([7u8; 64]),
            tcb: SIM_TCB,
            debug: false,
        });
        assert!(matches!(
            verify(&ev, &refs([1; 48]), &expected(), 0),
            Err(AttestError::ChainInvalid { .. })
        ));
    }

    #[test]
    fn rejects_sim_report_with_edited_body() {
        let ev = collect([1; 48], [9; 32], [7; 64]);
        let outer = B64.decode(&ev.report).unwrap();
        let mut signed: SignedSimReport = serde_json::from_slice(&outer).unwrap();
        let body = B64.decode(&signed.report).unwrap();
        let edited = String::from_utf8(body)
            .unwrap()
            .replace(&hex::encode([9u8; 32]), &hex::encode([8u8; 32]));
        signed.report = B64.encode(edited);
        let mut forged = ev.clone();
        forged.report = B64.encode(serde_json::to_vec(&signed).unwrap());
        assert!(matches!(
            verify(&forged, &refs([1; 48]), &expected(), 0),
            Err(AttestError::SignatureInvalid)
        ));
    }

    #[test]
    fn rejects_unlisted_measurement() {
        let ev = collect([2; 48], [9; 32], [7; 64]);
        assert!(matches!(
            verify(&ev, &refs([1; 48]), &expected(), 0),
            Err(AttestError::MeasurementNotAllowed { .. })
        ));
    }

    #[test]
    fn rejects_evidence_bound_to_other_contract() {
        let ev = collect([1; 48], [3; 32], [7; 64]);
        assert!(matches!(
            verify(&ev, &refs([1; 48]), &expected(), 0),
            Err(AttestError::HostDataMismatch { .. })
        ));
    }

    #[test]
    fn rejects_evidence_not_bound_to_request() {
        let ev = collect([1; 48], [9; 32], [6; 64]);
        assert!(matches!(
            verify(&ev, &refs([1; 48]), &expected(), 0),
            Err(AttestError::ReportDataMismatch { .. })
        ));
    }

    #[test]
    fn rejects_debug_sim_report() {
        let ev = SimSigner::new(b"x").sign(&SimReport {
            version: 1,
            measurement: hex::encode([1u8; 48]),
            host_data: hex::encode([9u8; 32]),
            report_data: hex::encode([7u8; 64]),
            tcb: SIM_TCB,
            debug: true,
        });
        assert!(matches!(
            verify(&ev, &refs([1; 48]), &expected(), 0),
            Err(AttestError::DebugEnabled)
        ));
    }
}
