//! Stage 2, attest: the room's own evidence, binding a fresh identity key in REPORT_DATA
//! and launched with the contract digest, must satisfy the contract's attestation policy
//! before the room asks anyone for a key. The bundle is kept under `evidence/<run>.json`.

use cleanroom_attest::Expected;
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::{FileMode, Root};
use cleanroom_verify::evidence::host_identity_report_data;
use cleanroom_verify::reference::reference_values;
use p384::ecdsa::{SigningKey, VerifyingKey};

use super::{Admitted, Ctx, RunConfig};
use crate::error::Result;

/// An admitted workload in a room whose evidence satisfies the contract. Only [`attest`]
/// makes one.
#[derive(Debug)]
pub struct Attested {
    admitted: Admitted,
    insecure: bool,
}

impl Attested {
    pub fn admitted(&self) -> &Admitted {
        &self.admitted
    }
    /// Whether the evidence is simulated (INSECURE; the outputs and the log say so).
    pub fn insecure(&self) -> bool {
        self.insecure
    }
}

pub(super) fn attest(
    admitted: Admitted,
    cfg: &RunConfig,
    room: &Root,
    run_id: &str,
    identity: &SigningKey,
    ctx: &mut Ctx<'_, '_>,
) -> Result<Attested> {
    let digest = admitted.contract().digest();
    let host_key_hex = hex::encode(
        VerifyingKey::from(identity)
            .to_encoded_point(true)
            .as_bytes(),
    );
    // The binding every verifier recomputes (`cleanroom_verify::evidence`).
    let report_data = host_identity_report_data(&host_key_hex, &digest.hex());
    let mut bundle = match cfg.evidence.collect(report_data) {
        Ok(b) => b,
        Err(e) => return ctx.refuse(Step::Attestation, "host", e),
    };
    let refs = reference_values(admitted.contract().contract());
    let verified = match cleanroom_attest::verify(
        &bundle,
        &refs,
        &Expected {
            report_data,
            host_data: digest.0,
        },
        cleanroom_formats::clock::now_unix(),
    ) {
        Ok(v) => v,
        Err(e) => return ctx.refuse(Step::Attestation, "host", e),
    };
    let insecure = verified.claims().insecure;
    bundle.host_public_key = Some(host_key_hex);
    bundle.contract_digest = Some(digest.hex());
    room.write_atomic(
        &format!("evidence/{run_id}.json"),
        &serde_json::to_vec_pretty(&bundle).expect("a bundle serialises"),
        FileMode::Public,
    )?;
    ctx.ok(
        Step::Attestation,
        "host",
        Decision::Verified,
        &format!(
            "platform {} measurement {}{}",
            verified.claims().platform,
            &verified.claims().measurement[..16],
            if insecure {
                " — SIMULATED, INSECURE"
            } else {
                ""
            }
        ),
    )?;
    Ok(Attested { admitted, insecure })
}
