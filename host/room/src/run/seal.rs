//! Stage 7, seal and commit: each [`Guarded`] output sealed to its recipients (HPKE per
//! recipient around a sealed stream), anchored to the audit log's head, committed
//! atomically and audited. Only a `Guarded` value can be sealed.

use std::path::PathBuf;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::envelope::{self, OutputHeader};
use cleanroom_formats::fsutil::{FileMode, Root};
use cleanroom_policy::message;

use super::guard::{Guarded, OutputKind};
use super::{Ctx, Loaded};
use crate::error::{Result, RoomError};

/// Seals a run's guarded outputs to members and commits them.
pub(super) struct Sealer<'a> {
    room: &'a Root,
    loaded: &'a Loaded,
    run_id: &'a str,
}

impl<'a> Sealer<'a> {
    pub(super) fn new(room: &'a Root, loaded: &'a Loaded, run_id: &'a str) -> Self {
        Self {
            room,
            loaded,
            run_id,
        }
    }

    fn file_name(&self, kind: &OutputKind) -> String {
        let run_id = self.run_id;
        match kind {
            OutputKind::Result => format!("outputs/{run_id}.cro"),
            OutputKind::Table(name) => format!("outputs/{run_id}-table-{name}.cro"),
            OutputKind::Metrics => format!("outputs/{run_id}-metrics.cro"),
            OutputKind::Artifact(name) => format!("outputs/{run_id}-artifact-{name}.cro"),
            OutputKind::Log => format!("outputs/{run_id}-log.cro"),
        }
    }

    /// Seal `g` to its recipients, commit it atomically and audit it.
    pub(super) fn seal(&self, g: Guarded, ctx: &mut Ctx<'_, '_>) -> Result<PathBuf> {
        let contract = self.loaded.contract();
        let workload = self.loaded.workload();
        let insecure = self.loaded.insecure();
        let mut keys = Vec::new();
        for r in &g.recipients {
            let m = contract.member(r).ok_or_else(|| RoomError::BadRecipient {
                recipient: r.clone(),
                what: "not a member of the contract".into(),
            })?;
            let pk = message::x25519_public_from_b64(m.encryption_key.get_ref()).map_err(|e| {
                RoomError::BadRecipient {
                    recipient: r.clone(),
                    what: e.to_string(),
                }
            })?;
            keys.push((r.clone(), pk));
        }
        let anchor = ctx.anchor();
        let header = OutputHeader {
            contract_digest: self.loaded.digest().hex(),
            workload: workload.name.clone(),
            workload_digest: workload.digest().hex(),
            run_id: self.run_id.to_string(),
            created_at: cleanroom_formats::clock::now_rfc3339(),
            insecure,
            format: g.format.into(),
            columns: g.columns,
            rows: g.rows,
            audit_seq: anchor.0,
            audit_hash: anchor.1,
        };
        let sealed =
            envelope::seal(&header, &keys, &g.content).map_err(|e| RoomError::BadRecipient {
                recipient: g.recipients.join(", "),
                what: e.to_string(),
            })?;
        let rel = self.file_name(&g.kind);
        self.room.write_atomic(&rel, &sealed, FileMode::Public)?;
        ctx.ok(
            Step::Output,
            &rel,
            Decision::Committed,
            &format!(
                "{}, {} rows, sealed to {}{}",
                g.format,
                g.rows,
                g.recipients.join(", "),
                if insecure {
                    " (INSECURE: simulated attestation)"
                } else {
                    ""
                }
            ),
        )?;
        Ok(self.room.display(&rel))
    }
}
