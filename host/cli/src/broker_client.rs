//! Delivering members' signed suspend/resume messages to key brokers
//! (`POST /cleanroom/v0/governance`), over TLS pinned to the broker key the contract names:
//! a server presenting another key (the operator answering for the broker, to swallow a
//! suspension) is refused during the handshake and the delivery reported as failed.

use std::sync::Arc;
use std::time::Duration;

use cleanroom_formats::kbs_protocol::{
    ErrorBody, GOVERNANCE_PATH, GovernanceRequest, GovernanceResult, RefusalKind,
};
use cleanroom_formats::tls::{self, PinnedVerifier};

/// Why a broker did not take a governance message.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("key broker {broker} could not be reached: {reason}")]
    BrokerUnreachable { broker: String, reason: String },
    #[error(
        "key broker {broker} did not present the key the contract pins (SPKI SHA-256 {pinned}; it presented {presented}): not delivered"
    )]
    BrokerKeyMismatch {
        broker: String,
        pinned: String,
        presented: String,
    },
    #[error("key broker {broker}: {reason}")]
    BrokerNotPinned { broker: String, reason: String },
    #[error("key broker {broker} refused the governance message: {reason}")]
    GovernanceRefused {
        broker: String,
        kind: RefusalKind,
        reason: String,
    },
}

/// A client for `broker`: TLS pinned to `spki_sha256` for https (required), plain HTTP for
/// the http:// brokers a simulation contract may name.
fn client(
    broker: &str,
    spki_sha256: Option<&str>,
) -> Result<(reqwest::Client, Option<Arc<PinnedVerifier>>), GovernanceError> {
    let not_pinned = |reason: String| GovernanceError::BrokerNotPinned {
        broker: broker.to_string(),
        reason,
    };
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    let (builder, verifier) = match tls::broker_client_config(broker, spki_sha256)
        .map_err(|e| not_pinned(e.to_string()))?
    {
        Some((config, verifier)) => (builder.use_preconfigured_tls(config), Some(verifier)),
        None => (builder, None),
    };
    let http = builder
        .build()
        .map_err(|e| not_pinned(format!("TLS client: {e}")))?;
    Ok((http, verifier))
}

/// Deliver a member's signed suspend/resume message to a broker
/// (`POST /cleanroom/v0/governance`) pinned to `spki_sha256`; returns the suspensions in
/// force there afterwards.
pub async fn send_governance(
    broker: &str,
    spki_sha256: Option<&str>,
    message_b64: &str,
) -> Result<GovernanceResult, GovernanceError> {
    let (http, verifier) = client(broker, spki_sha256)?;
    let base = broker.trim_end_matches('/');
    let failed = |reason: String| {
        if let Some(v) = &verifier
            && let Some(presented) = v.presented_instead()
        {
            return GovernanceError::BrokerKeyMismatch {
                broker: broker.to_string(),
                pinned: v.pin().to_string(),
                presented,
            };
        }
        GovernanceError::BrokerUnreachable {
            broker: broker.to_string(),
            reason,
        }
    };
    let resp = http
        .post(format!("{base}{GOVERNANCE_PATH}"))
        .json(&GovernanceRequest {
            message: message_b64.to_string(),
        })
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let (kind, reason) = match resp.json::<ErrorBody>().await {
            Ok(b) => (b.kind, b.detail),
            Err(_) => (RefusalKind::Unknown, format!("HTTP {status}")),
        };
        return Err(GovernanceError::GovernanceRefused {
            broker: broker.to_string(),
            kind,
            reason,
        });
    }
    resp.json().await.map_err(|e| failed(e.to_string()))
}
