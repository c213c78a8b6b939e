//! The host's side of the KBS protocol: auth → attest → resource, with fresh evidence
//! binding the broker's nonce and an ephemeral key the resource is encrypted to.

use cleanroom_attest::report_data_for;
use p384::SecretKey;

use crate::attestation::EvidenceSource;
use crate::error::{Result, RoomError};
use cleanroom_formats::jwe::{self, Jwe};
use cleanroom_formats::kbs_protocol::{
    Attestation, AuthRequest, Challenge, ErrorBody, PROTOCOL_VERSION, RuntimeData, SESSION_COOKIE,
};
use cleanroom_formats::keyfile;
use cleanroom_formats::stream::DataKey;

/// One key request.
#[derive(Debug, Clone)]
pub struct KeyRequest<'a> {
    pub broker: &'a str,
    pub resource: &'a str,
    pub contract_digest: &'a str,
    pub workload_json: &'a str,
    pub approvals: &'a [String],
    /// The room's audit log head (`seq`, `hash`) at the time of the request.
    pub audit_head: (u64, &'a str),
}

fn unreachable(req: &KeyRequest<'_>, e: impl std::fmt::Display) -> RoomError {
    RoomError::BrokerUnreachable {
        broker: req.broker.to_string(),
        reason: e.to_string(),
    }
}

async fn refusal(req: &KeyRequest<'_>, resp: reqwest::Response) -> RoomError {
    let status = resp.status();
    let reason = match resp.json::<ErrorBody>().await {
        Ok(b) => b.detail,
        Err(_) => format!("HTTP {status}"),
    };
    RoomError::KeyRefused {
        broker: req.broker.to_string(),
        resource: req.resource.to_string(),
        reason,
    }
}

/// Run the protocol and return the released key.
pub async fn fetch_key(
    http: &reqwest::Client,
    req: &KeyRequest<'_>,
    evidence: &dyn EvidenceSource,
) -> Result<DataKey> {
    let base = req.broker.trim_end_matches('/');
    let resp = http
        .post(format!("{base}/kbs/v0/auth"))
        .json(&AuthRequest {
            version: PROTOCOL_VERSION.into(),
            tee: evidence.platform().to_string(),
            extra_params: serde_json::Value::String(String::new()),
        })
        .send()
        .await
        .map_err(|e| unreachable(req, e))?;
    if !resp.status().is_success() {
        return Err(refusal(req, resp).await);
    }
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{SESSION_COOKIE}=")))
        .map(str::to_string)
        .ok_or_else(|| unreachable(req, "broker set no session cookie"))?;
    let challenge: Challenge = resp.json().await.map_err(|e| unreachable(req, e))?;

    let tee_key = SecretKey::random(&mut rand::rngs::OsRng);
    let runtime_data = RuntimeData {
        nonce: challenge.nonce,
        tee_pubkey: serde_json::from_str(&tee_key.public_key().to_jwk_string())
            .expect("JWK is JSON"),
        contract_digest: req.contract_digest.to_string(),
        workload: req.workload_json.to_string(),
        approvals: req.approvals.to_vec(),
        audit_seq: req.audit_head.0,
        audit_hash: req.audit_head.1.to_string(),
    };
    let tee_evidence = evidence.collect(report_data_for(&runtime_data.canonical_json()))?;
    let resp = http
        .post(format!("{base}/kbs/v0/attest"))
        .header(reqwest::header::COOKIE, &cookie)
        .json(&Attestation {
            runtime_data,
            tee_evidence: serde_json::to_value(&tee_evidence).expect("a bundle serialises"),
        })
        .send()
        .await
        .map_err(|e| unreachable(req, e))?;
    if !resp.status().is_success() {
        return Err(refusal(req, resp).await);
    }
    let resp = http
        .get(format!("{base}/kbs/v0/resource/{}", req.resource))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .map_err(|e| unreachable(req, e))?;
    if !resp.status().is_success() {
        return Err(refusal(req, resp).await);
    }
    let jwe: Jwe = resp.json().await.map_err(|e| unreachable(req, e))?;
    let plain = jwe::decrypt(&tee_key, &jwe).map_err(|e| unreachable(req, e))?;
    let (key, _) = keyfile::from_json(&plain, req.resource)?;
    Ok(key)
}
