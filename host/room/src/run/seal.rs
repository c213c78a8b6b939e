//! Stage 7, seal and commit: each [`Guarded`] output sealed to its recipients (HPKE per
//! recipient around a sealed stream), anchored to the audit log's head, signed by the run's
//! attested identity key, committed atomically and audited. Only a `Guarded` value can be
//! sealed.
//!
//! Everything a module chose (what the output is, its name, format, columns, row count) goes
//! into the sealed inner header; the plaintext header, the file name
//! (`outputs/<run>-<index>.cro`) and the audit entry carry only what the host decides.

use std::path::PathBuf;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::envelope::{self, ContentHeader, ContentKind, OutputHeader};
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

    /// Named by the run and the host's index only: no name a module chose.
    fn file_name(&self, index: u32) -> String {
        format!("outputs/{}-{index}.cro", self.run_id)
    }

    /// Seal `g` to its recipients as the run's next output, sign it with the run's identity
    /// key, commit it atomically and audit it.
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
        let index = ctx.next_output_index();
        let identity = ctx.identity();
        let header = OutputHeader {
            contract_digest: self.loaded.digest().hex(),
            workload_digest: workload.digest().hex(),
            run_id: self.run_id.to_string(),
            index,
            created_at: cleanroom_formats::clock::now_rfc3339(),
            insecure,
            audit_seq: anchor.0,
            audit_hash: anchor.1,
            host_key: envelope::host_key_hex(identity.verifying_key()),
        };
        let (kind, name) = match g.kind {
            OutputKind::Result => (ContentKind::Result, String::new()),
            OutputKind::Table(name) => (ContentKind::Table, name.to_string()),
            OutputKind::Metrics => (ContentKind::Metrics, String::new()),
            OutputKind::Artifact(name) => (ContentKind::Artifact, name.to_string()),
            OutputKind::Log => (ContentKind::Log, String::new()),
        };
        let content = ContentHeader {
            kind,
            name,
            workload: workload.name.clone(),
            format: g.format.into(),
            columns: g.columns,
            rows: g.rows,
        };
        let sealed =
            envelope::seal(&header, &keys, &content, &g.content, identity).map_err(|e| {
                RoomError::BadRecipient {
                    recipient: g.recipients.join(", "),
                    what: e.to_string(),
                }
            })?;
        let rel = self.file_name(index);
        // The record first, then the file: a crash between the two leaves a record without
        // a file (the next run records that), never an output no audit entry names.
        ctx.ok(
            Step::Output,
            &rel,
            Decision::Committed,
            &format!(
                "output {index}, signed by the run's identity key, sealed to {}{}",
                g.recipients.join(", "),
                if insecure {
                    " (INSECURE: simulated attestation)"
                } else {
                    ""
                }
            ),
        )?;
        crate::failpoint::hit(crate::failpoint::OUTPUT_RECORDED);
        if let Err(e) = self.room.write_atomic(&rel, &sealed, FileMode::Public) {
            return ctx.refuse(Step::Output, &rel, e);
        }
        crate::failpoint::hit(crate::failpoint::OUTPUT_WRITTEN);
        Ok(self.room.display(&rel))
    }
}
