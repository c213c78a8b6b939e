//! Stage 3, keys: each input's key from its owner's broker (TLS pinned to the broker key
//! the contract names), over the KBS protocol with fresh evidence binding the broker's
//! nonce, the approvals and the audit log's head (with the entries proving it extends the
//! head the broker saw). The room attests once per broker and run; the broker releases
//! each input it holds in that session. Each key comes with the identity of the sealed file its owner
//! registered; [`check_file_identity`] holds the file the room reads to it.

use std::time::Duration;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::identity::FileIdentity;
use cleanroom_formats::stream::DataKey;
use cleanroom_policy::contract::{DataFormat, Dataset};
use cleanroom_policy::message::SignedMessage;

use super::{Attested, Ctx, RunConfig};
use crate::error::{Result, RoomError};
use crate::kbs_client::{self, BrokerClient, KeyRequest, Session};

/// An attested run holding every input's key. Only [`request`] makes one.
#[derive(Debug)]
pub struct KeysReleased {
    attested: Attested,
    /// (dataset name, key, identity of the sealed file registered with it), in the
    /// workload's input order.
    keys: Vec<(String, DataKey, FileIdentity)>,
}

impl KeysReleased {
    pub fn attested(&self) -> &Attested {
        &self.attested
    }
    pub(super) fn into_parts(self) -> (Attested, Vec<(String, DataKey, FileIdentity)>) {
        (self.attested, self.keys)
    }
}

pub(super) async fn request(
    attested: Attested,
    cfg: &RunConfig,
    ctx: &mut Ctx<'_, '_>,
) -> Result<KeysReleased> {
    let admitted = attested.admitted();
    let contract = admitted.contract().contract();
    let digest = admitted.contract().digest().hex();
    let workload = admitted.workload();
    let workload_json = String::from_utf8(workload.canonical_json()).expect("JSON is UTF-8");
    let approvals_b64: Vec<String> = admitted
        .approvals()
        .iter()
        .map(SignedMessage::to_base64)
        .collect();
    let mut keys = Vec::new();
    // One attested session per broker (and pin): the first input it holds opens it, bound
    // to the audit head at that moment; the broker releases each further input's key in it.
    let mut sessions: Vec<(&str, Option<&str>, BrokerClient, Session)> = Vec::new();
    for input in &workload.inputs {
        let ds: &Dataset = contract
            .dataset(input)
            .expect("approval::check validated the inputs");
        let subject = format!("{input} @ {}", ds.key.broker.get_ref());
        let broker = ds.key.broker.get_ref();
        let pin = ds
            .key
            .broker_spki_sha256
            .as_ref()
            .map(|p| p.get_ref().as_str());
        let (seq, hash) = ctx.anchor();
        let req = KeyRequest {
            broker,
            resource: ds.key.resource.get_ref(),
            contract_digest: &digest,
            workload_json: &workload_json,
            approvals: &approvals_b64,
            audit_head: (seq, &hash),
            audit_log: ctx.entries(),
        };
        let open = sessions
            .iter()
            .position(|(b, p, ..)| *b == broker.as_str() && *p == pin);
        let fetched = match open {
            Some(i) => {
                let (.., client, session) = &sessions[i];
                kbs_client::release(client, session, &req).await
            }
            None => match BrokerClient::new(broker, pin, Duration::from_secs(30)) {
                Ok(client) => {
                    match kbs_client::attest(&client, &req, cfg.evidence.as_ref()).await {
                        Ok(session) => {
                            let released = kbs_client::release(&client, &session, &req).await;
                            sessions.push((broker.as_str(), pin, client, session));
                            released
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
        };
        let released = match fetched {
            Ok(r) => r,
            Err(e) => return ctx.refuse(Step::KeyRequest, &subject, e),
        };
        let Some(file_id) = released.file_id else {
            return ctx.refuse(
                Step::KeyRequest,
                &subject,
                RoomError::DatasetIdentityNotReleased {
                    dataset: input.clone(),
                    broker: broker.clone(),
                },
            );
        };
        ctx.ok(
            Step::KeyRequest,
            &subject,
            Decision::Granted,
            &format!("released by the owner's broker for sealed file {file_id}"),
        )?;
        keys.push((input.clone(), released.key, file_id));
    }
    Ok(KeysReleased { attested, keys })
}

/// Hold the sealed file of `dataset` to the identity its owner registered with the key.
///
/// `Err`: the file is another version (refuse before decrypting anything). `Ok(Some(e))`:
/// the file has no readable identity (not a sealed stream, not encrypted Parquet); the caller
/// lets the format's own reader refuse it first and refuses with `e` if that reader did not.
pub(super) fn check_file_identity(
    dataset: &str,
    format: DataFormat,
    sealed: &[u8],
    registered: &FileIdentity,
) -> Result<Option<RoomError>> {
    match FileIdentity::of(format, sealed) {
        Ok(found) if &found == registered => Ok(None),
        Ok(found) => Err(RoomError::DatasetVersionMismatch {
            dataset: dataset.to_string(),
            registered: registered.to_string(),
            found: found.to_string(),
        }),
        Err(e) => Ok(Some(RoomError::DatasetUnidentifiable {
            dataset: dataset.to_string(),
            reason: e.to_string(),
        })),
    }
}
