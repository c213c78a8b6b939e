//! A member's client of a room service (`cleanroom-room serve`). Before it sends anything,
//! it fetches the room's evidence, verifies it against the member's own copy of the
//! contract (the offline verifier: reference values, the contract digest in launch data,
//! the identity key in REPORT_DATA), and checks that the TLS key the room presented is that
//! attested key and that the certificate carrying it carries that same report (RA-TLS);
//! every later request goes over TLS pinned to it. A room that fails any of this gets
//! nothing.

use cleanroom_formats::room_protocol::{
    Accepted, ErrorBody, MessageBody, RoomRefusalKind, RunAccepted, RunRecord,
};
use cleanroom_formats::tls::{
    SpkiPin, capture_client_config, certificate_evidence, pinned_client_config, spki_pin_of_der,
};
use cleanroom_policy::Contract;
use cleanroom_policy::message::SignedMessage;
use cleanroom_verify::evidence::{AttestedHost, EvidenceError, verify_host_evidence};
use p384::pkcs8::EncodePublicKey;

/// Why a member's client refused a room or a room refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomClientError {
    #[error("room {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("room {url} sent no evidence bundle: {reason}")]
    NoEvidence { url: String, reason: String },
    #[error(
        "room {url}: its evidence does not satisfy the contract, so nothing was sent: {source}"
    )]
    EvidenceRefused {
        url: String,
        #[source]
        source: EvidenceError,
    },
    #[error(
        "room {url} presented TLS key {presented}, not the key its evidence attests ({attested}): nothing was sent"
    )]
    TlsKeyNotAttested {
        url: String,
        presented: String,
        attested: String,
    },
    #[error(
        "room {url}: its TLS certificate carries no attestation evidence (the room service puts its report there), so nothing was sent"
    )]
    CertificateWithoutEvidence { url: String },
    #[error(
        "room {url}: the evidence in its TLS certificate is not the evidence it serves ({what}), so nothing was sent"
    )]
    CertificateEvidenceMismatch { url: String, what: String },
    #[error("room refused the request ({kind:?}): {detail}")]
    Refused {
        kind: RoomRefusalKind,
        detail: String,
    },
    #[error("room sent an answer that is not what the API describes: {reason}")]
    BadAnswer { reason: String },
}

type Result<T> = std::result::Result<T, RoomClientError>;

/// The certificate the room presented must carry, in its evidence extension, the report
/// (platform, report, TD quote, identity key, contract digest) of the evidence it served and
/// this client verified: the key it proved in the handshake is bound to that very report.
fn check_certificate_evidence(
    url: &str,
    cert: Option<Vec<u8>>,
    served: &cleanroom_attest::EvidenceBundle,
) -> Result<()> {
    let mismatch = |what: &str| RoomClientError::CertificateEvidenceMismatch {
        url: url.to_string(),
        what: what.to_string(),
    };
    let json = cert
        .as_deref()
        .map(certificate_evidence)
        .transpose()
        .map_err(|e| mismatch(&e.to_string()))?
        .flatten()
        .ok_or_else(|| RoomClientError::CertificateWithoutEvidence {
            url: url.to_string(),
        })?;
    let carried: cleanroom_attest::EvidenceBundle = serde_json::from_slice(&json)
        .map_err(|e| mismatch(&format!("not an evidence bundle: {e}")))?;
    let differs = [
        (carried.platform != served.platform, "platform"),
        (carried.report != served.report, "report"),
        (carried.td_quote != served.td_quote, "TD quote"),
        (
            carried.host_public_key != served.host_public_key,
            "identity key",
        ),
        (
            carried.contract_digest != served.contract_digest,
            "contract digest",
        ),
    ];
    match differs.iter().find(|(d, _)| *d) {
        Some((_, what)) => Err(mismatch(&format!("another {what}"))),
        None => Ok(()),
    }
}

/// A room whose evidence verified against the contract, reached over TLS pinned to its
/// attested key. Only [`RoomClient::connect`] makes one.
#[derive(Debug)]
pub struct RoomClient {
    url: String,
    http: reqwest::Client,
    attested: AttestedHost,
    pin: SpkiPin,
}

fn client(config: rustls::ClientConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| RoomClientError::BadAnswer {
            reason: e.to_string(),
        })
}

impl RoomClient {
    /// Verify the room at `url` (`https://HOST:PORT`) against `contract` and pin its key.
    pub async fn connect(url: &str, contract: &Contract) -> Result<Self> {
        let url = url.trim_end_matches('/').to_string();
        let unreachable = |e: &dyn std::fmt::Display| RoomClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        if !url.starts_with("https://") {
            return Err(unreachable(&"a room is reached over https:// only"));
        }
        let (config, capture) = capture_client_config().map_err(|e| unreachable(&e))?;
        let first = client(config)?;
        let body = first
            .get(format!("{url}/v1/evidence"))
            .send()
            .await
            .map_err(|e| unreachable(&e))?
            .bytes()
            .await
            .map_err(|e| unreachable(&e))?;
        let bundle: cleanroom_attest::EvidenceBundle =
            serde_json::from_slice(&body).map_err(|e| RoomClientError::NoEvidence {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let attested =
            verify_host_evidence(&bundle, contract, cleanroom_formats::clock::now_unix()).map_err(
                |source| RoomClientError::EvidenceRefused {
                    url: url.clone(),
                    source,
                },
            )?;
        let spki =
            attested
                .host_key
                .to_public_key_der()
                .map_err(|e| RoomClientError::BadAnswer {
                    reason: e.to_string(),
                })?;
        let pin = spki_pin_of_der(spki.as_bytes());
        match capture.presented() {
            Some(p) if p == pin => {}
            other => {
                return Err(RoomClientError::TlsKeyNotAttested {
                    url,
                    presented: other.map_or("nothing".into(), |p| p.to_string()),
                    attested: pin.to_string(),
                });
            }
        }
        check_certificate_evidence(&url, capture.presented_certificate(), &bundle)?;
        let (config, _) = pinned_client_config(pin).map_err(|e| unreachable(&e))?;
        Ok(Self {
            http: client(config)?,
            url,
            attested,
            pin,
        })
    }

    pub fn attested(&self) -> &AttestedHost {
        &self.attested
    }
    pub fn pin(&self) -> SpkiPin {
        self.pin
    }

    async fn answer(&self, r: reqwest::Response) -> Result<bytes::Bytes> {
        let status = r.status();
        let body = r.bytes().await.map_err(|e| RoomClientError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        if status.is_success() {
            return Ok(body);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => Err(RoomClientError::Refused {
                kind: e.kind,
                detail: e.detail,
            }),
            Err(_) => Err(RoomClientError::BadAnswer {
                reason: format!("HTTP {status} without an error body"),
            }),
        }
    }

    async fn get(&self, path: &str) -> Result<bytes::Bytes> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| RoomClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        self.answer(r).await
    }

    async fn post(&self, path: &str, msg: &SignedMessage) -> Result<bytes::Bytes> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&MessageBody {
                message: msg.to_base64(),
            })
            .send()
            .await
            .map_err(|e| RoomClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        self.answer(r).await
    }

    fn parse<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
        serde_json::from_slice(b).map_err(|e| RoomClientError::BadAnswer {
            reason: e.to_string(),
        })
    }

    pub async fn propose(&self, msg: &SignedMessage) -> Result<Accepted> {
        Self::parse(&self.post("/v1/proposals", msg).await?)
    }
    pub async fn approve(&self, msg: &SignedMessage) -> Result<Accepted> {
        Self::parse(&self.post("/v1/approvals", msg).await?)
    }
    pub async fn request_run(&self, msg: &SignedMessage) -> Result<RunAccepted> {
        Self::parse(&self.post("/v1/runs", msg).await?)
    }
    /// Cancel a queued run (a signed `run-cancel`); returns its record.
    pub async fn cancel_run(&self, msg: &SignedMessage) -> Result<RunRecord> {
        Self::parse(&self.post("/v1/runs/cancel", msg).await?)
    }
    /// Upload the Wasm component a proposal names.
    pub async fn put_module(&self, digest: &str, bytes: Vec<u8>) -> Result<()> {
        let r = self
            .http
            .put(format!("{}/v1/modules/{digest}", self.url))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes)
            .send()
            .await
            .map_err(|e| RoomClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        self.answer(r).await.map(|_| ())
    }

    /// Send a `suspend` or `resume`; returns the members suspending afterwards.
    pub async fn governance(&self, msg: &SignedMessage) -> Result<Vec<String>> {
        let v: serde_json::Value = Self::parse(&self.post("/v1/governance", msg).await?)?;
        Ok(v.get("suspended_by")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
    pub async fn fetch_output(&self, msg: &SignedMessage) -> Result<Vec<u8>> {
        Ok(self.post("/v1/outputs/fetch", msg).await?.to_vec())
    }
    pub async fn run(&self, id: &str) -> Result<RunRecord> {
        Self::parse(&self.get(&format!("/v1/runs/{id}")).await?)
    }
    pub async fn runs(&self) -> Result<Vec<RunRecord>> {
        Self::parse(&self.get("/v1/runs").await?)
    }
    /// A stored workload: (its TOML text, its proposal as base64 COSE).
    pub async fn workload(&self, digest: &str) -> Result<(String, String)> {
        let v: serde_json::Value =
            Self::parse(&self.get(&format!("/v1/workloads/{digest}")).await?)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| RoomClientError::BadAnswer {
                    reason: format!("no `{k}` in the workload answer"),
                })
        };
        Ok((field("workload_toml")?, field("proposal")?))
    }
    /// A run's evidence bundle.
    pub async fn run_evidence(&self, run: &str) -> Result<Vec<u8>> {
        Ok(self
            .get(&format!("/v1/evidence/runs/{run}"))
            .await?
            .to_vec())
    }
    /// The room's boot evidence (what [`RoomClient::connect`] verified).
    pub async fn evidence(&self) -> Result<Vec<u8>> {
        Ok(self.get("/v1/evidence").await?.to_vec())
    }
    pub async fn audit(&self) -> Result<Vec<u8>> {
        Ok(self.get("/v1/audit").await?.to_vec())
    }
    /// The Prometheus text metrics.
    pub async fn metrics(&self) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.get("/v1/metrics").await?).into_owned())
    }
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        Self::parse(&self.get("/v1/openapi.json").await?)
    }

    /// Wait until run `id` is no longer queued or running. Polls after 10 ms, then twice as
    /// long each time up to every 200 ms: a short run (the demo query commits in ~150-350 ms
    /// through the service) is seen soon after it ends, a long one costs 5 reads a second.
    pub async fn wait(&self, id: &str) -> Result<RunRecord> {
        use cleanroom_formats::room_protocol::RunState;
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            let r = self.run(id).await?;
            if !matches!(r.state, RunState::Queued | RunState::Running) {
                return Ok(r);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
    }
}

/// A fresh nonce for a signed request.
pub fn nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
