//! Delivering members' signed suspend/resume messages to key brokers
//! (`POST /cleanroom/v0/governance`).

use cleanroom_formats::kbs_protocol::{
    ErrorBody, GOVERNANCE_PATH, GovernanceRequest, GovernanceResult,
};

/// Why a broker did not take a governance message.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("key broker {broker} could not be reached: {reason}")]
    BrokerUnreachable { broker: String, reason: String },
    #[error("key broker {broker} refused the governance message: {reason}")]
    GovernanceRefused { broker: String, reason: String },
}

/// Deliver a member's signed suspend/resume message to a broker
/// (`POST /cleanroom/v0/governance`); returns the suspensions in force there afterwards.
pub async fn send_governance(
    http: &reqwest::Client,
    broker: &str,
    message_b64: &str,
) -> Result<GovernanceResult, GovernanceError> {
    let base = broker.trim_end_matches('/');
    let failed = |reason: String| GovernanceError::BrokerUnreachable {
        broker: broker.to_string(),
        reason,
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
        let reason = match resp.json::<ErrorBody>().await {
            Ok(b) => b.detail,
            Err(_) => format!("HTTP {status}"),
        };
        return Err(GovernanceError::GovernanceRefused {
            broker: broker.to_string(),
            reason,
        });
    }
    resp.json().await.map_err(|e| failed(e.to_string()))
}
