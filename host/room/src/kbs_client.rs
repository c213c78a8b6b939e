//! The host's side of the KBS protocol: auth → attest → resource, with fresh evidence
//! binding the broker's nonce and an ephemeral key the resource is encrypted to.
//!
//! Brokers are reached over TLS pinned to the key the contract names
//! (`broker_spki_sha256`, [`cleanroom_formats::tls`]): a server presenting any other key is
//! refused during the handshake, before a byte of the request (or any evidence) is sent.
//! Plain `http://` is used only where the contract allows it (127.0.0.1 under
//! `allow_simulated`). The key comes back with the identity of the sealed file its owner
//! registered, and the room's audit log head comes with the entries that prove it extends
//! the head the broker last saw.

use std::sync::Arc;
use std::time::Duration;

use cleanroom_attest::report_data_for;
use p384::SecretKey;

use crate::attestation::EvidenceSource;
use crate::error::{Result, RoomError};
use cleanroom_formats::audit::Entry;
use cleanroom_formats::jwe::{self, Jwe};
use cleanroom_formats::kbs_protocol::{
    Attestation, AuthExtra, AuthRequest, Challenge, ChallengeExtra, ErrorBody, PROTOCOL_VERSION,
    RefusalKind, RuntimeData, SESSION_COOKIE,
};
use cleanroom_formats::keyfile::{self, Released};
use cleanroom_formats::tls::{self, PinnedVerifier};

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
    /// The room's audit log up to that head: the entries after the head the broker names
    /// in its challenge are sent as the proof that the log extends it.
    pub audit_log: &'a [Entry],
}

/// An HTTP client for one broker: TLS pinned to the broker's key, or plain HTTP where the
/// contract allows it.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    broker: String,
    http: reqwest::Client,
    verifier: Option<Arc<PinnedVerifier>>,
}

impl BrokerClient {
    /// A client for `broker` (the contract's URL) pinned to `spki_sha256` (the contract's
    /// `broker_spki_sha256`, required for `https://`).
    pub fn new(broker: &str, spki_sha256: Option<&str>, timeout: Duration) -> Result<Self> {
        let not_pinned = |reason: String| RoomError::BrokerNotPinned {
            broker: broker.to_string(),
            reason,
        };
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        let (builder, verifier) = match tls::broker_client_config(broker, spki_sha256)
            .map_err(|e| not_pinned(e.to_string()))?
        {
            Some((config, verifier)) => (builder.use_preconfigured_tls(config), Some(verifier)),
            None => (builder, None),
        };
        let http = builder.build().map_err(RoomError::engine)?;
        Ok(Self {
            broker: broker.to_string(),
            http,
            verifier,
        })
    }

    /// A failed exchange: the pin refused the server, or the broker was not reached.
    fn failed(&self, e: impl std::fmt::Display) -> RoomError {
        if let Some(v) = &self.verifier
            && let Some(presented) = v.presented_instead()
        {
            return RoomError::BrokerKeyMismatch {
                broker: self.broker.clone(),
                pinned: v.pin().to_string(),
                presented,
            };
        }
        RoomError::BrokerUnreachable {
            broker: self.broker.clone(),
            reason: e.to_string(),
        }
    }

    fn base(&self) -> &str {
        self.broker.trim_end_matches('/')
    }
}

async fn refusal(req: &KeyRequest<'_>, resp: reqwest::Response) -> RoomError {
    let status = resp.status();
    let (kind, reason) = match resp.json::<ErrorBody>().await {
        Ok(b) => (b.kind, b.detail),
        Err(_) => (RefusalKind::Unknown, format!("HTTP {status}")),
    };
    RoomError::KeyRefused {
        broker: req.broker.to_string(),
        resource: req.resource.to_string(),
        kind,
        reason,
    }
}

/// The entries of `log` after the broker's head, up to the presented head: what proves the
/// presented head extends the broker's.
fn audit_proof(log: &[Entry], broker_head: Option<u64>, head: u64) -> Vec<Entry> {
    match broker_head {
        Some(seen) if seen < head => log
            .iter()
            .filter(|e| e.seq > seen && e.seq <= head)
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// `POST /kbs/v0/auth` for `contract_digest`: the broker's answer as it came.
async fn auth(
    client: &BrokerClient,
    contract_digest: &str,
    platform: cleanroom_attest::Platform,
) -> Result<reqwest::Response> {
    client
        .http
        .post(format!("{}/kbs/v0/auth", client.base()))
        .json(&AuthRequest {
            version: PROTOCOL_VERSION.into(),
            tee: platform.to_string(),
            extra_params: serde_json::to_value(AuthExtra {
                contract_digest: contract_digest.to_string(),
            })
            .expect("serialises"),
        })
        .send()
        .await
        .map_err(|e| client.failed(e))
}

/// The audit log head (`seq`, `hash`) the broker last saw from a room of this contract, as
/// its challenge names it (`auth` only; nothing is attested or released).
pub async fn seen_head(
    client: &BrokerClient,
    contract_digest: &str,
    platform: cleanroom_attest::Platform,
) -> Result<Option<(u64, String)>> {
    let resp = auth(client, contract_digest, platform).await?;
    if !resp.status().is_success() {
        return Err(client.failed(format!("auth answered HTTP {}", resp.status())));
    }
    let challenge: Challenge = resp.json().await.map_err(|e| client.failed(e))?;
    Ok(ChallengeExtra::from_value(&challenge.extra_params)
        .audit_head
        .map(|h| (h.seq, h.hash)))
}

/// Run the protocol and return the released key with the identity of its sealed file.
pub async fn fetch_key(
    client: &BrokerClient,
    req: &KeyRequest<'_>,
    evidence: &dyn EvidenceSource,
) -> Result<Released> {
    let session = attest(client, req, evidence).await?;
    release(client, &session, req).await
}

/// An attested session at one broker: the broker released nothing yet, but will release
/// the key of any resource of the attested workload's inputs it holds, encrypted to the
/// session's TEE key (which never leaves this process). One session serves every input
/// the run needs from that broker.
pub struct Session {
    cookie: String,
    tee_key: SecretKey,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { .. }")
    }
}

/// `auth` then `attest`: fresh evidence binding the broker's nonce, a new TEE key, the
/// workload, its approvals and the audit head of `req`. A refusal names `req.resource`.
pub async fn attest(
    client: &BrokerClient,
    req: &KeyRequest<'_>,
    evidence: &dyn EvidenceSource,
) -> Result<Session> {
    let base = client.base();
    let http = &client.http;
    let resp = auth(client, req.contract_digest, evidence.platform()).await?;
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
        .ok_or_else(|| client.failed("broker set no session cookie"))?;
    let challenge: Challenge = resp.json().await.map_err(|e| client.failed(e))?;
    let broker_head = ChallengeExtra::from_value(&challenge.extra_params)
        .audit_head
        .map(|h| h.seq);

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
        audit_proof: audit_proof(req.audit_log, broker_head, req.audit_head.0),
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
        .map_err(|e| client.failed(e))?;
    if !resp.status().is_success() {
        return Err(refusal(req, resp).await);
    }
    Ok(Session { cookie, tee_key })
}

/// `GET resource` in an attested `session`: the key of `req.resource` with the identity of
/// its sealed file, decrypted with the session's TEE key.
pub async fn release(
    client: &BrokerClient,
    session: &Session,
    req: &KeyRequest<'_>,
) -> Result<Released> {
    let resp = client
        .http
        .get(format!(
            "{}/kbs/v0/resource/{}",
            client.base(),
            req.resource
        ))
        .header(reqwest::header::COOKIE, &session.cookie)
        .send()
        .await
        .map_err(|e| client.failed(e))?;
    if !resp.status().is_success() {
        return Err(refusal(req, resp).await);
    }
    let jwe: Jwe = resp.json().await.map_err(|e| client.failed(e))?;
    let plain = jwe::decrypt(&session.tee_key, &jwe).map_err(|e| client.failed(e))?;
    Ok(keyfile::released_from_json(&plain, req.resource)?)
}
