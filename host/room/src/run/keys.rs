//! Stage 3, keys: each input's key from its owner's broker, over the KBS protocol with
//! fresh evidence binding the broker's nonce, the approvals and the audit log's head.

use std::time::Duration;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::stream::DataKey;
use cleanroom_policy::contract::Dataset;
use cleanroom_policy::message::SignedMessage;

use super::{Attested, Ctx, RunConfig};
use crate::error::{Result, RoomError};
use crate::kbs_client::{self, KeyRequest};

/// An attested run holding every input's key. Only [`request`] makes one.
#[derive(Debug)]
pub struct KeysReleased {
    attested: Attested,
    /// (dataset name, key), in the workload's input order.
    keys: Vec<(String, DataKey)>,
}

impl KeysReleased {
    pub fn attested(&self) -> &Attested {
        &self.attested
    }
    pub(super) fn into_parts(self) -> (Attested, Vec<(String, DataKey)>) {
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(RoomError::engine)?;
    let workload_json = String::from_utf8(workload.canonical_json()).expect("JSON is UTF-8");
    let approvals_b64: Vec<String> = admitted
        .approvals()
        .iter()
        .map(SignedMessage::to_base64)
        .collect();
    let mut keys = Vec::new();
    for input in &workload.inputs {
        let ds: &Dataset = contract
            .dataset(input)
            .expect("approval::check validated the inputs");
        let subject = format!("{input} @ {}", ds.key.broker.get_ref());
        let (seq, hash) = ctx.anchor();
        let req = KeyRequest {
            broker: ds.key.broker.get_ref(),
            resource: ds.key.resource.get_ref(),
            contract_digest: &digest,
            workload_json: &workload_json,
            approvals: &approvals_b64,
            audit_head: (seq, &hash),
        };
        match kbs_client::fetch_key(&http, &req, cfg.evidence.as_ref()).await {
            Ok(k) => {
                ctx.ok(
                    Step::KeyRequest,
                    &subject,
                    Decision::Granted,
                    "released by the owner's broker",
                )?;
                keys.push((input.clone(), k));
            }
            Err(e) => return ctx.refuse(Step::KeyRequest, &subject, e),
        }
    }
    Ok(KeysReleased { attested, keys })
}
