//! The room as a service (issue 11): `cleanroom-room serve` as its own process, members
//! acting on it with the `cleanroom room` CLI as their own processes, the two brokers on
//! loopback. Requests a hostile member or operator could make are refused with their own
//! error and audited; a room whose evidence does not match the member's contract, or whose
//! TLS key is not the attested one, gets nothing.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{Room, Spec, member_dir};
use cleanroom_cli::room_client::{RoomClient, RoomClientError, nonce};
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::room_protocol::{RoomRefusalKind, RunState};
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::request::{OutputFetchPayload, RunRequestPayload};
use cleanroom_room::service::ServiceError;
use cleanroom_verify::evidence::EvidenceError;

/// `cleanroom-room serve` on a free port of 127.0.0.1, killed when dropped.
struct Service {
    child: Child,
    url: String,
    /// Kept open: the service writes to it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(room: &Room, state: &Path, extra: &[&str]) -> Result<Service, String> {
    serve_with_env(room, state, extra, &[])
}

fn serve_with_env(
    room: &Room,
    state: &Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<Service, String> {
    let bin = cleanroom_cli::processes::room_binary().unwrap();
    std::fs::create_dir_all(state).unwrap();
    let stderr_path = state.with_extension("stderr");
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--contract")
        .arg(&room.contract)
        .arg("--sigs")
        .arg(&room.sigs)
        .arg("--state")
        .arg(state)
        .arg("--data")
        .arg(&room.room)
        .args(["--listen", "127.0.0.1:0", "--platform", "sim"])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    match line.strip_prefix("listening on ") {
        Some(url) => Ok(Service {
            child,
            url: url.trim().to_string(),
            _stdout: stdout,
        }),
        None => {
            let status = child.wait().unwrap();
            Err(format!(
                "{:?}: {}",
                status.code(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            ))
        }
    }
}

/// Run the `cleanroom` CLI as its own process; (success, stdout, stderr).
fn cleanroom(args: &[&str]) -> (bool, String, String) {
    let bin = cleanroom_cli::processes::room_binary()
        .unwrap()
        .with_file_name("cleanroom");
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn key(room: &Room, member: &str) -> String {
    member_dir(room.root(), member)
        .join(format!("keys/{member}.sign.key"))
        .display()
        .to_string()
}

fn contract(room: &Room) -> cleanroom_policy::SignedContract {
    cleanroom_formats::load::load_signed_contract(&room.contract, &room.sigs)
        .unwrap()
        .0
}

fn signed(
    room: &Room,
    member: &str,
    t: MessageType,
    created: u64,
    payload: Vec<u8>,
) -> SignedMessage {
    let sk = cleanroom_formats::keys::signing_key(Path::new(&key(room, member))).unwrap();
    SignedMessage::sign(&sk, t, contract(room).digest().0, created, payload)
}

fn now() -> u64 {
    cleanroom_formats::clock::now_unix()
}

/// A fresh run request for `digest` by the advertiser (the proposer and an input owner).
fn run_request(room: &Room, digest: &str) -> SignedMessage {
    signed(
        room,
        "advertiser",
        MessageType::RunRequest,
        now(),
        RunRequestPayload {
            workload_digest: digest.to_string(),
            nonce: nonce(),
        }
        .to_bytes(),
    )
}

/// Send the room's workload proposal and approvals (made by `Room::approve_all`) to the
/// service; returns the workload's digest.
async fn install(client: &RoomClient, room: &Room) -> String {
    let proposal = cleanroom_formats::load::read_proposal(&room.proposal())
        .unwrap()
        .unwrap();
    let digest = client.propose(&proposal).await.unwrap().workload_digest;
    for m in cleanroom_formats::load::read_messages(&room.approvals).unwrap() {
        client.approve(&m).await.unwrap();
    }
    digest
}

fn refused<T: std::fmt::Debug>(r: Result<T, RoomClientError>) -> RoomRefusalKind {
    match r {
        Err(RoomClientError::Refused { kind, .. }) => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Acceptance 1: propose → approve → run → fetch → open → audit fetch → verify, every
/// member step a `cleanroom room` process against the room service process; the audit log
/// verifies against the runs' evidence, fetched from the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_propose_approve_run_and_fetch_through_the_room_service() {
    let room = Room::new(Spec::default()).await;
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let common_args = |sub: &str| -> Vec<String> {
        vec![
            "room".into(),
            sub.into(),
            "--room".into(),
            svc.url.clone(),
            "--contract".into(),
            room.contract.display().to_string(),
            "--sigs".into(),
            room.sigs.display().to_string(),
        ]
    };
    let run_cli = |sub: &str, extra: &[&str]| {
        let mut a = common_args(sub);
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (ok, out, err) = cleanroom(&a);
        assert!(ok, "cleanroom {}: {out}{err}", a.join(" "));
        out
    };
    let out = run_cli("verify", &[]);
    assert!(
        out.contains("verified") && out.contains("(pinned)"),
        "{out}"
    );
    let workload = room.workload.display().to_string();
    let adv = key(&room, "advertiser");
    let publ = key(&room, "publisher");
    let out = run_cli("propose", &["--workload", &workload, "--key", &adv]);
    let digest = out.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        digest,
        cleanroom_formats::load::load_workload(&room.workload)
            .unwrap()
            .digest()
            .hex()
    );
    run_cli("approve", &["--workload", &digest, "--key", &publ]);
    run_cli("approve", &["--workload", &digest, "--key", &adv]);
    let out = run_cli("run", &["--workload", &digest, "--key", &adv, "--wait"]);
    let record: cleanroom_formats::room_protocol::RunRecord =
        serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(record.state, RunState::Committed, "{record:?}");
    assert_eq!(record.outputs.len(), 1);
    let fetched = room.root().join("fetched.cro");
    run_cli(
        "fetch",
        &[
            "--output",
            &record.outputs[0],
            "--key",
            &adv,
            "--out",
            fetched.to_str().unwrap(),
        ],
    );
    assert!(
        room.open_as_advertiser(&fetched)
            .starts_with("campaign,reach"),
        "the advertiser opens the result"
    );
    let audit = room.root().join("audit.jsonl");
    run_cli("audit", &["--out", audit.to_str().unwrap()]);
    // The log verifies against the runs' evidence, fetched from the room itself.
    let client = RoomClient::connect(&svc.url, contract(&room).contract())
        .await
        .unwrap();
    let run_id = record.run_id.clone().unwrap();
    let bundle: cleanroom_attest::EvidenceBundle =
        serde_json::from_slice(&client.run_evidence(&run_id).await.unwrap()).unwrap();
    let host = cleanroom_verify::evidence::verify_host_evidence(
        &bundle,
        contract(&room).contract(),
        now(),
    )
    .unwrap();
    let runs = std::collections::BTreeMap::from([(run_id, host)]);
    let (summary, attested) = cleanroom_verify::audit::verify_against_evidence(
        &std::fs::read(&audit).unwrap(),
        &[],
        &runs,
    )
    .unwrap();
    assert!(attested.checkpoints >= 1, "{summary:?}");
    let entries = cleanroom_formats::audit::parse(&std::fs::read(&audit).unwrap()).unwrap();
    for step in [Step::Proposal, Step::Approval, Step::Run] {
        assert!(
            entries
                .iter()
                .any(|e| e.event == step && e.decision == Decision::Accepted),
            "{step} accepted on the record"
        );
    }
    drop(svc);
    room.stop().await;
}

/// Acceptance 2: requests signed by a non-member, replayed, stale, with a forged signer, for
/// a run the member may not request, or for an output the member does not receive: each
/// refused with its own error, on the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_each_with_its_own_error_and_audited() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    // The workload, proposed and approved through the service.
    let digest = install(&client, &room).await;
    let run_payload = || {
        RunRequestPayload {
            workload_digest: digest.clone(),
            nonce: nonce(),
        }
        .to_bytes()
    };
    // A non-member's key.
    let stranger = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let msg = SignedMessage::sign(
        &stranger,
        MessageType::RunRequest,
        c.digest().0,
        now(),
        run_payload(),
    );
    assert_eq!(
        refused(client.request_run(&msg).await),
        RoomRefusalKind::NotAMember
    );
    // Stale: an hour old.
    let msg = signed(
        &room,
        "advertiser",
        MessageType::RunRequest,
        now() - 3600,
        run_payload(),
    );
    assert_eq!(
        refused(client.request_run(&msg).await),
        RoomRefusalKind::StaleRequest
    );
    // A signature that is not the signer's: the advertiser's request, its payload swapped
    // for another after signing.
    let good = signed(
        &room,
        "advertiser",
        MessageType::RunRequest,
        now(),
        run_payload(),
    );
    let forged = forge_payload(&good, run_payload());
    assert_eq!(
        refused(client.request_run(&forged).await),
        RoomRefusalKind::BadSignature
    );
    // Accepted once, refused when replayed.
    let q = client.request_run(&good).await.unwrap();
    assert_eq!(
        refused(client.request_run(&good).await),
        RoomRefusalKind::Replayed
    );
    let record = client.wait(&q.id).await.unwrap();
    assert_eq!(record.state, RunState::Committed, "{record:?}");
    // The publisher is not a recipient of the advertiser's result.
    let fetch = |member: &str| {
        signed(
            &room,
            member,
            MessageType::OutputFetch,
            now(),
            OutputFetchPayload {
                output: record.outputs[0].clone(),
                nonce: nonce(),
            }
            .to_bytes(),
        )
    };
    assert_eq!(
        refused(client.fetch_output(&fetch("publisher")).await),
        RoomRefusalKind::NotARecipient
    );
    let m = fetch("advertiser");
    assert!(!client.fetch_output(&m).await.unwrap().is_empty());
    assert_eq!(
        refused(client.fetch_output(&m).await),
        RoomRefusalKind::Replayed
    );
    // An output name that climbs out of the outputs directory.
    let m = signed(
        &room,
        "advertiser",
        MessageType::OutputFetch,
        now(),
        OutputFetchPayload {
            output: "../audit.jsonl".into(),
            nonce: nonce(),
        }
        .to_bytes(),
    );
    assert_eq!(
        refused(client.fetch_output(&m).await),
        RoomRefusalKind::UnknownOutput
    );
    // A run's evidence is read only by a run id: a path out of `evidence/` is no run.
    assert_eq!(
        refused(client.run_evidence("%2e%2e%2fcontract.toml").await),
        RoomRefusalKind::UnknownRun
    );
    // The metrics count them by route and status, and carry no data.
    let metrics = client.metrics().await.unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    for expected in [
        "cleanroom_runs{state=\"committed\"} 1",
        "cleanroom_requests_total{route=\"/v1/runs\",status=\"401\"} 2",
        "cleanroom_requests_total{route=\"/v1/runs\",status=\"409\"} 2",
        "cleanroom_requests_total{route=\"/v1/outputs/fetch\",status=\"403\"} 1",
    ] {
        assert!(lines.contains(&expected), "{expected} in {metrics}");
    }
    // Each refusal is on the record.
    let log = cleanroom_formats::audit::parse(&client.audit().await.unwrap()).unwrap();
    let refusals = log
        .iter()
        .filter(|e| e.decision == Decision::Refused && matches!(e.event, Step::Run | Step::Output))
        .count();
    assert_eq!(refusals, 7, "{log:#?}");
    drop(svc);
    room.stop().await;
}

/// The message `m` with its payload replaced (its signature no longer verifies).
fn forge_payload(m: &SignedMessage, payload: Vec<u8>) -> SignedMessage {
    // The COSE structure: re-encode with another payload and the old signature.
    let mut cose = <coset_shim::CoseSign1 as coset_shim::CborSerializable>::from_slice(&strip_tag(
        &m.to_bytes(),
    ))
    .unwrap();
    cose.payload = Some(payload);
    SignedMessage::from_bytes(&coset_shim::CborSerializable::to_vec(cose).unwrap()).unwrap()
}

fn strip_tag(b: &[u8]) -> Vec<u8> {
    // Tag 18 (COSE_Sign1) is one byte, 0xd2.
    if b.first() == Some(&0xd2) {
        b[1..].to_vec()
    } else {
        b.to_vec()
    }
}

mod coset_shim {
    pub use coset::{CborSerializable, CoseSign1};
}

/// A server on 127.0.0.1 with its own TLS key that answers `/v1/evidence` with `evidence`.
async fn impostor(evidence: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let identity = cleanroom_kbs::tls::TlsIdentity::generate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (incoming, _accept) =
        cleanroom_formats::https::incoming(listener, Some(identity.server_config().unwrap()))
            .unwrap();
    let app = axum::Router::new().route(
        "/v1/evidence",
        axum::routing::get(move || {
            let e = evidence.clone();
            async move { e }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(incoming, app).await;
    });
    (format!("https://{addr}"), task)
}

/// A server on 127.0.0.1 presenting a certificate for `key` (carrying `in_certificate` in
/// the room's evidence extension, when given) that answers `/v1/evidence` with `evidence`.
async fn impostor_with_key(
    key: &p384::ecdsa::SigningKey,
    in_certificate: Option<&[u8]>,
    evidence: Vec<u8>,
) -> (String, tokio::task::JoinHandle<()>) {
    use p384::pkcs8::EncodePrivateKey;
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_bytes()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["cleanroom-room".to_string()]).unwrap();
    if let Some(json) = in_certificate {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                cleanroom_formats::tls::ROOM_EVIDENCE_OID,
                cleanroom_formats::tls::encode_certificate_evidence(json).unwrap(),
            ));
    }
    let cert = params.self_signed(&key_pair).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(cleanroom_formats::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8.as_bytes().to_vec().into()),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (incoming, _accept) =
        cleanroom_formats::https::incoming(listener, Some(std::sync::Arc::new(config))).unwrap();
    let app = axum::Router::new().route(
        "/v1/evidence",
        axum::routing::get(move || {
            let e = evidence.clone();
            async move { e }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(incoming, app).await;
    });
    (format!("https://{addr}"), task)
}

/// RA-TLS: the room's certificate carries the report of the evidence it serves, and the
/// member's client checks it. A server holding an attested key that presents a certificate
/// without the evidence, or with another report in it (the room's earlier boot, say), gets
/// nothing, although the evidence it serves verifies and binds the key it presents. The
/// real room's certificate passes (every other test connects to one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_carry_the_served_evidence_gets_nothing() {
    let room = Room::new(Spec::default()).await;
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    let real = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let real_bundle: cleanroom_attest::EvidenceBundle =
        serde_json::from_slice(&boot_evidence(&state)).unwrap();
    let measurement = cleanroom_attest::inspect_unverified(&real_bundle)
        .unwrap()
        .measurement;
    // Evidence of the contract's own (simulated) measurement, binding a key the impostor
    // holds: it verifies, and the TLS key is the attested one.
    let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let key_hex = hex::encode(
        p384::ecdsa::VerifyingKey::from(&key)
            .to_encoded_point(true)
            .as_bytes(),
    );
    let mut bundle = cleanroom_attest::sim::collect(
        measurement,
        c.digest().0,
        cleanroom_verify::evidence::host_identity_report_data(&key_hex, &c.digest().hex()),
    );
    bundle.host_public_key = Some(key_hex);
    bundle.contract_digest = Some(c.digest().hex());
    let served = serde_json::to_vec(&bundle).unwrap();

    // The same server with the served evidence in its certificate is accepted: what the
    // two refusals below change is only the certificate.
    let (url, task) = impostor_with_key(&key, Some(&served), served.clone()).await;
    RoomClient::connect(&url, c.contract()).await.unwrap();
    task.abort();

    let (url, task) = impostor_with_key(&key, None, served.clone()).await;
    match RoomClient::connect(&url, c.contract()).await {
        Err(RoomClientError::CertificateWithoutEvidence { .. }) => {}
        other => panic!("expected CertificateWithoutEvidence, got {other:?}"),
    }
    task.abort();

    let other_report = serde_json::to_vec(&real_bundle).unwrap();
    let (url, task) = impostor_with_key(&key, Some(&other_report), served).await;
    match RoomClient::connect(&url, c.contract()).await {
        Err(RoomClientError::CertificateEvidenceMismatch { what, .. }) => {
            assert_eq!(what, "another report")
        }
        other => panic!("expected CertificateEvidenceMismatch, got {other:?}"),
    }
    task.abort();
    drop(real);
    drop(svc);
    room.stop().await;
}

/// The real room's boot evidence as it keeps it in its state directory.
fn boot_evidence(state: &Path) -> Vec<u8> {
    std::fs::read(
        std::fs::read_dir(state.join("room/evidence"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("boot-")
            })
            .unwrap(),
    )
    .unwrap()
}

/// Acceptance 3: the member's client refuses, before sending anything, a room whose
/// evidence names another contract, one whose evidence has a measurement the contract does
/// not list, and one whose TLS key is not the key its evidence attests (an impostor relaying
/// the real room's evidence). And the room itself refuses to start when its own evidence
/// does not satisfy the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_does_not_prove_the_contract_gets_nothing() {
    let room = Room::new(Spec::default()).await;
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    // Another contract: the member's copy differs (one more guard), so its digest does.
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let other = cleanroom_policy::Contract::parse(
        &text.replacen("max_output_rows = 100000", "max_output_rows = 99999", 1),
        "other.toml",
    )
    .unwrap();
    match RoomClient::connect(&svc.url, &other).await {
        Err(RoomClientError::EvidenceRefused {
            source: EvidenceError::OtherContract { .. },
            ..
        }) => {}
        other => panic!("expected OtherContract, got {other:?}"),
    }
    // An impostor relaying the real room's evidence under its own TLS key.
    let real = boot_evidence(&state);
    let (url, task) = impostor(real).await;
    match RoomClient::connect(&url, c.contract()).await {
        Err(RoomClientError::TlsKeyNotAttested { .. }) => {}
        other => panic!("expected TlsKeyNotAttested, got {other:?}"),
    }
    task.abort();
    // An impostor with simulated evidence of its own: right contract, right binding, but a
    // measurement the contract does not list.
    let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let key_hex = hex::encode(
        p384::ecdsa::VerifyingKey::from(&key)
            .to_encoded_point(true)
            .as_bytes(),
    );
    let mut bundle = cleanroom_attest::sim::collect(
        [0x66; 48],
        c.digest().0,
        cleanroom_verify::evidence::host_identity_report_data(&key_hex, &c.digest().hex()),
    );
    bundle.host_public_key = Some(key_hex);
    bundle.contract_digest = Some(c.digest().hex());
    let (url, task) = impostor(serde_json::to_vec(&bundle).unwrap()).await;
    match RoomClient::connect(&url, c.contract()).await {
        Err(RoomClientError::EvidenceRefused {
            source:
                EvidenceError::Refused(cleanroom_attest::AttestError::MeasurementNotAllowed { .. }),
            ..
        }) => {}
        other => panic!("expected a measurement refusal, got {other:?}"),
    }
    task.abort();
    drop(svc);
    // The room launched with another contract digest refuses to start.
    let err = serve(
        &room,
        &room.root().join("service2"),
        &["--sim-launch-digest", &"ab".repeat(32)],
    )
    .err()
    .unwrap();
    assert!(err.starts_with("Some(1)"), "refused (exit 1): {err}");
    // The refusal itself, in process: the room's own evidence fails the contract.
    let cfg = service_config(&room, &room.root().join("service3"), [0xab; 32]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    match cleanroom_room::service::start(cfg, listener).await {
        Err(cleanroom_room::RoomError::Service(ServiceError::BootAttestation(
            cleanroom_attest::AttestError::HostDataMismatch { .. },
        ))) => {}
        other => panic!("expected BootAttestation(HostDataMismatch), got {other:?}"),
    }
    room.stop().await;
}

/// The service configuration `serve` builds, for `start` in this process (sim evidence of
/// this test binary, whose measurement the test contract lists, launched with `launch`).
fn service_config(
    room: &Room,
    state: &Path,
    launch: [u8; 32],
) -> cleanroom_room::service::ServeConfig {
    cleanroom_room::service::ServeConfig {
        contract: room.contract.clone(),
        contract_sigs: room.sigs.clone(),
        state: state.to_path_buf(),
        data: room.room.clone(),
        evidence: std::sync::Arc::new(cleanroom_room::attestation::SimSource {
            measurement: cleanroom_room::attestation::self_measurement().unwrap(),
            launch_digest: launch,
        }),
        memory_limit: 1 << 30,
        freshness: cleanroom_room::service::DEFAULT_FRESHNESS,
        queue: cleanroom_room::service::DEFAULT_QUEUE,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// Acceptance 5: the operator restores an older copy of the state directory. The room
/// refuses to start on it (a broker saw a newer audit log head: a request replayed into it
/// would find no trace of its nonce), and a run on it gets no keys from the brokers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_state_gets_no_keys_and_accepts_no_replayed_request() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let state = room.root().join("service");
    let c = contract(&room);
    let digest = {
        let svc = serve(&room, &state, &[]).unwrap();
        let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
        let digest = install(&client, &room).await;
        let q = client
            .request_run(&run_request(&room, &digest))
            .await
            .unwrap();
        assert_eq!(client.wait(&q.id).await.unwrap().state, RunState::Committed);
        digest
    };
    let old = room.root().join("service-old");
    copy_dir(&state, &old);
    {
        let svc = serve(&room, &state, &[]).unwrap();
        let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
        let q = client
            .request_run(&run_request(&room, &digest))
            .await
            .unwrap();
        assert_eq!(client.wait(&q.id).await.unwrap().state, RunState::Committed);
    }
    // Restore the older copy.
    std::fs::remove_dir_all(&state).unwrap();
    copy_dir(&old, &state);
    let err = serve(&room, &state, &[]).err().unwrap();
    assert!(err.starts_with("Some(1)"), "refused (exit 1): {err}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    match cleanroom_room::service::start(service_config(&room, &state, room.digest), listener).await
    {
        Err(cleanroom_room::RoomError::Service(ServiceError::RolledBack { .. })) => {}
        other => panic!("expected RolledBack, got {other:?}"),
    }
    // The run itself, on the restored state, gets no keys.
    let files = |ext: &str| state.join(format!("workloads/{digest}.toml{ext}"));
    let cfg = cleanroom_room::run::RunConfig {
        workload: files(""),
        approvals: files(".approvals"),
        proposal: files(".proposal"),
        room_dir: state.join("room"),
        ..room.config()
    };
    match cleanroom_room::run::run(&cfg).await {
        Err(cleanroom_room::RoomError::KeyRefused { kind, .. }) => assert_eq!(
            kind,
            cleanroom_formats::kbs_protocol::RefusalKind::AuditRolledBack
        ),
        other => panic!("expected the brokers' AuditRolledBack, got {other:?}"),
    }
    room.stop().await;
}

/// Acceptance 4: the room service SIGKILLed at random moments while it runs requested runs
/// (25 kills, two run requests each: 50 runs), restarted each time. Afterwards the audit
/// chain verifies (a torn last line is the only damage a kill may leave, and the next boot
/// cuts it), no output exists without its committed audit entry, and every run record is
/// committed with its outputs present, refused, or marked not completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_service_killed_during_runs_stays_consistent() {
    use rand::{Rng, SeedableRng};
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let state = room.root().join("service");
    let c = contract(&room);
    let mut digest = String::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut requested = 0;
    for i in 0..25 {
        let svc = serve(&room, &state, &[]).unwrap();
        let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
        if i == 0 {
            digest = install(&client, &room).await;
        }
        for _ in 0..2 {
            client
                .request_run(&run_request(&room, &digest))
                .await
                .unwrap();
            requested += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(0..2500))).await;
        drop(svc); // SIGKILL
        assert_consistent(&state);
    }
    // A last boot: it recovers what the kills left, and every record has an end.
    let svc = serve(&room, &state, &[]).unwrap();
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let records = client.runs().await.unwrap();
    assert_eq!(records.len(), requested);
    let mut committed = 0;
    for r in &records {
        match r.state {
            RunState::Committed => {
                committed += 1;
                for o in &r.outputs {
                    assert!(state.join("room/outputs").join(o).exists(), "{r:?}");
                }
            }
            RunState::Refused | RunState::NotCompleted | RunState::Cancelled => {}
            RunState::Queued | RunState::Running => panic!("a run without an end: {r:?}"),
        }
    }
    assert!(committed > 0, "some runs complete between kills");
    drop(svc);
    assert_consistent(&state);
    room.stop().await;
}

/// What holds after any kill: the chain verifies up to a torn last line, and every output
/// file has its committed audit entry.
fn assert_consistent(state: &Path) {
    use cleanroom_formats::audit;
    let bytes = std::fs::read(state.join("room/audit.jsonl")).unwrap();
    let complete = match audit::torn_tail(&bytes) {
        Some(len) => &bytes[..len],
        None => &bytes[..],
    };
    cleanroom_verify::audit::verify_bytes(complete).expect("the audit chain verifies");
    let entries = audit::parse(complete).unwrap();
    let committed: std::collections::HashSet<String> = entries
        .iter()
        .filter(|e| e.event == Step::Output && e.decision == Decision::Committed)
        .map(|e| e.subject.clone())
        .collect();
    if let Ok(dir) = std::fs::read_dir(state.join("room/outputs")) {
        for f in dir {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // an interrupted sealing's temporary file, removed by the next run
            }
            assert!(
                committed.contains(&format!("outputs/{name}")),
                "outputs/{name} exists without its committed audit entry"
            );
        }
    }
}

/// Acceptance 7: three members, two data owners and a result-only member (an agency that
/// brings no data and receives the result). The owners propose, approve and run; the agency
/// may not request the run (only the proposer and input owners may), fetches the result it
/// receives and opens it; the owners, who do not receive it, cannot fetch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_two_owners_and_a_result_only_member_collaborate() {
    let room = Room::new(Spec {
        extra_members: vec!["agency".into()],
        edit_contract: Box::new(|t| {
            t.replacen(
                "recipients = [\"advertiser\", \"publisher\"]",
                "recipients = [\"advertiser\", \"publisher\", \"agency\"]",
                1,
            )
        }),
        ..Spec::default()
    })
    .await;
    let text = std::fs::read_to_string(&room.workload).unwrap().replacen(
        "recipients = [\"advertiser\"]",
        "recipients = [\"agency\"]",
        1,
    );
    std::fs::write(&room.workload, text).unwrap();
    room.approve_all();
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    assert_eq!(c.contract().members.len(), 3);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let digest = install(&client, &room).await;
    let by = |member: &str| {
        signed(
            &room,
            member,
            MessageType::RunRequest,
            now(),
            RunRequestPayload {
                workload_digest: digest.clone(),
                nonce: nonce(),
            }
            .to_bytes(),
        )
    };
    assert_eq!(
        refused(client.request_run(&by("agency")).await),
        RoomRefusalKind::RunNotAllowed
    );
    // The publisher owns an input: it may request the run.
    let q = client.request_run(&by("publisher")).await.unwrap();
    let record = client.wait(&q.id).await.unwrap();
    assert_eq!(record.state, RunState::Committed, "{record:?}");
    let fetch = |member: &str| {
        signed(
            &room,
            member,
            MessageType::OutputFetch,
            now(),
            OutputFetchPayload {
                output: record.outputs[0].clone(),
                nonce: nonce(),
            }
            .to_bytes(),
        )
    };
    for owner in ["publisher", "advertiser"] {
        assert_eq!(
            refused(client.fetch_output(&fetch(owner)).await),
            RoomRefusalKind::NotARecipient
        );
    }
    let bytes = client.fetch_output(&fetch("agency")).await.unwrap();
    let sk = cleanroom_formats::keys::encryption_key(
        &member_dir(room.root(), "agency").join("keys/agency.enc.key"),
    )
    .unwrap();
    let opened = cleanroom_formats::envelope::open(&bytes, "agency", &sk).unwrap();
    assert!(String::from_utf8_lossy(&opened.data).starts_with("campaign,reach"));
    drop(svc);
    room.stop().await;
}

/// Suspension through the service: a member's signed `suspend` refuses the queued run before
/// it starts (at step `suspension`, no key requested); its `resume` lets the next run go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_sent_to_the_service_refuses_queued_runs_until_resumed() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let digest = install(&client, &room).await;
    let gov = |t: MessageType| {
        signed(
            &room,
            "publisher",
            t,
            now(),
            cleanroom_policy::governance::GovernancePayload {
                reason: "audit in progress".into(),
            }
            .to_bytes(),
        )
    };
    assert_eq!(
        client.governance(&gov(MessageType::Suspend)).await.unwrap(),
        vec!["publisher".to_string()]
    );
    let released = room.keys_released("publisher");
    let q = client
        .request_run(&run_request(&room, &digest))
        .await
        .unwrap();
    let r = client.wait(&q.id).await.unwrap();
    assert_eq!(r.state, RunState::Refused, "{r:?}");
    // The run's refusal, as the room's error renders it (the record carries its text).
    let suspended = cleanroom_policy::PolicyError::Suspended {
        by: "`publisher`".into(),
    };
    assert_eq!(r.cause, Some(suspended.to_string()), "{r:?}");
    assert_eq!(
        room.keys_released("publisher"),
        released,
        "no key was requested"
    );
    assert!(
        client
            .governance(&gov(MessageType::Resume))
            .await
            .unwrap()
            .is_empty()
    );
    let q = client
        .request_run(&run_request(&room, &digest))
        .await
        .unwrap();
    assert_eq!(client.wait(&q.id).await.unwrap().state, RunState::Committed);
    drop(svc);
    room.stop().await;
}

/// A module workload through the service: the advertiser proposes it with its component
/// (`cleanroom room propose --module`, which inspects the component and uploads it), both
/// owners approve, the run trains in the sandbox and commits. A component no proposal names,
/// or bytes that are not the named digest, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_workload_runs_through_the_service() {
    let room = Room::new(Spec::default()).await;
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let bytes = cleanroom_cli::guest_build::component("training-logreg").unwrap();
    let digest = cleanroom_room::sandbox::digest_hex(&bytes);
    // Before any proposal names it, the component is refused.
    assert_eq!(
        refused(client.put_module(&digest, bytes.clone()).await),
        RoomRefusalKind::UnknownWorkload
    );
    let sql = "SELECT CAST(COUNT(*) AS DOUBLE) AS imps, CASE WHEN COUNT(c.user_id_hash) = 0 THEN 0.0 ELSE 1.0 END AS label FROM impressions i LEFT JOIN (SELECT DISTINCT user_id_hash FROM conversions) c ON i.user_id_hash = c.user_id_hash GROUP BY i.user_id_hash";
    let workload = room.root().join("train.toml");
    std::fs::write(
        &workload,
        format!(
            "name = \"train\"\nkind = \"training\"\ninputs = [\"impressions\", \"conversions\"]\nmodule_digest = \"{digest}\"\n\n[module]\nsql_access = true\n\n[parameters]\nsql = \"{sql}\"\nfeatures = [\"imps\"]\nepochs = 20\n\n[output]\nrecipients = [\"advertiser\"]\nartifact_recipients = [\"advertiser\"]\n"
        ),
    )
    .unwrap();
    let module = room.root().join("training.wasm");
    std::fs::write(&module, &bytes).unwrap();
    let (ok, out, err) = cleanroom(&[
        "room",
        "propose",
        "--room",
        &svc.url,
        "--contract",
        room.contract.to_str().unwrap(),
        "--sigs",
        room.sigs.to_str().unwrap(),
        "--workload",
        workload.to_str().unwrap(),
        "--module",
        module.to_str().unwrap(),
        "--key",
        &key(&room, "advertiser"),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("component {digest} uploaded")),
        "{out}"
    );
    // Bytes that are not the digest they are put under.
    let mut flipped = bytes.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 1;
    assert_eq!(
        refused(client.put_module(&digest, flipped).await),
        RoomRefusalKind::MalformedRequest
    );
    let w = cleanroom_formats::load::load_workload(&workload).unwrap();
    for member in ["publisher", "advertiser"] {
        let m = signed(
            &room,
            member,
            MessageType::WorkloadApprove,
            now(),
            cleanroom_policy::workload::ApprovalPayload::for_workload(&w).to_bytes(),
        );
        client.approve(&m).await.unwrap();
    }
    let q = client
        .request_run(&run_request(&room, &w.digest().hex()))
        .await
        .unwrap();
    let r = client.wait(&q.id).await.unwrap();
    assert_eq!(r.state, RunState::Committed, "{r:?}");
    assert!(r.outputs.len() >= 2, "metrics and the model: {r:?}");
    drop(svc);
    room.stop().await;
}

/// A contract that names `governance.runners`: only they may request runs, whoever owns
/// the inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_contracts_runners_may_request_runs_when_it_names_them() {
    let room = Room::new(Spec {
        extra_members: vec!["agency".into()],
        edit_contract: Box::new(|t| {
            t.replacen(
                "proposers = [\"advertiser\"]",
                "proposers = [\"advertiser\"]\nrunners = [\"agency\"]",
                1,
            )
        }),
        ..Spec::default()
    })
    .await;
    room.approve_all();
    assert_eq!(contract(&room).contract().governance.runners.len(), 1);
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let client = RoomClient::connect(&svc.url, contract(&room).contract())
        .await
        .unwrap();
    let digest = install(&client, &room).await;
    let by = |member: &str| {
        signed(
            &room,
            member,
            MessageType::RunRequest,
            now(),
            RunRequestPayload {
                workload_digest: digest.clone(),
                nonce: nonce(),
            }
            .to_bytes(),
        )
    };
    for owner in ["publisher", "advertiser"] {
        assert_eq!(
            refused(client.request_run(&by(owner)).await),
            RoomRefusalKind::RunNotAllowed
        );
    }
    let q = client.request_run(&by("agency")).await.unwrap();
    assert_eq!(client.wait(&q.id).await.unwrap().state, RunState::Committed);
    drop(svc);
    room.stop().await;
}

/// An owner limits, revokes and restores its approval through the service: a run cap
/// counted in the audit log, an expiry, a revocation (the room stays open to other
/// workloads), and an operator who deletes the revocation from the state directory: the
/// log still records it, so the run is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_caps_expires_and_revokes_its_approval_and_the_operator_cannot_undo_it() {
    use cleanroom_policy::PolicyError;
    use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload};
    use cleanroom_room::RoomError;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let c = contract(&room);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let digest = install(&client, &room).await;
    let w = cleanroom_formats::load::load_workload(&room.workload).unwrap();
    let t0 = now();
    let approve = |at: u64, expires_at: Option<u64>, max_runs: Option<u64>| {
        signed(
            &room,
            "publisher",
            MessageType::WorkloadApprove,
            at,
            ApprovalPayload::for_workload(&w)
                .limited(expires_at, max_runs)
                .to_bytes(),
        )
    };
    let run = || async {
        let q = client
            .request_run(&run_request(&room, &digest))
            .await
            .unwrap();
        client.wait(&q.id).await.unwrap()
    };
    let refused_with = |r: &cleanroom_formats::room_protocol::RunRecord, e: RoomError| {
        assert_eq!(r.state, RunState::Refused, "{r:?}");
        assert_eq!(r.cause, Some(e.to_string()), "{r:?}");
    };

    // At most one run: the first commits, the second is refused.
    client
        .approve(&approve(t0 + 1, None, Some(1)))
        .await
        .unwrap();
    assert_eq!(run().await.state, RunState::Committed);
    refused_with(
        &run().await,
        RoomError::Policy(PolicyError::ApprovalRunsExhausted {
            member: "publisher".into(),
            workload: w.name.clone(),
            max_runs: 1,
            runs: 1,
        }),
    );
    // An approval that has expired.
    client
        .approve(&approve(t0 + 2, Some(t0 - 1), None))
        .await
        .unwrap();
    refused_with(
        &run().await,
        RoomError::Policy(PolicyError::ApprovalExpired {
            member: "publisher".into(),
            workload: w.name.clone(),
            expired_at: t0 - 1,
        }),
    );
    // Unlimited again; then revoked.
    client.approve(&approve(t0 + 3, None, None)).await.unwrap();
    assert_eq!(run().await.state, RunState::Committed);
    let released = room.keys_released("publisher");
    let revocation = signed(
        &room,
        "publisher",
        MessageType::WorkloadRevoke,
        t0 + 4,
        RevocationPayload {
            workload_digest: digest.clone(),
        }
        .to_bytes(),
    );
    client.approve(&revocation).await.unwrap();
    refused_with(
        &run().await,
        RoomError::Policy(PolicyError::ApprovalRevoked {
            member: "publisher".into(),
            workload: w.name.clone(),
        }),
    );
    // The operator removes the revocation from the state directory.
    let approvals = state.join(format!("workloads/{digest}.toml.approvals"));
    let text = std::fs::read_to_string(&approvals).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| *l != revocation.to_base64())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept, text, "the revocation was in the approvals");
    std::fs::write(&approvals, kept).unwrap();
    refused_with(
        &run().await,
        RoomError::RevocationWithheld {
            member: "publisher".into(),
        },
    );
    assert_eq!(
        room.keys_released("publisher"),
        released,
        "no key left after the revocation"
    );
    drop(svc);
    room.stop().await;
}

/// A run is cancelled by a signed `run-cancel` while in flight: it stops before it seals,
/// refused and audited, and nothing is sealed; a member who neither requested the run nor
/// owns one of its inputs may not cancel it; a finished run cannot be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_in_flight_only_by_who_may_and_seals_nothing() {
    use cleanroom_policy::request::RunCancelPayload;
    let room = Room::new(Spec {
        extra_members: vec!["agency".into()],
        ..Spec::default()
    })
    .await;
    room.approve_all();
    let state = room.root().join("service");
    let gate = room.root().join("gate");
    let svc = serve_with_env(
        &room,
        &state,
        &[],
        &[
            (
                "CLEANROOM_PAUSE",
                cleanroom_room::failpoint::BEFORE_SEAL.as_ref(),
            ),
            ("CLEANROOM_PAUSE_UNTIL", gate.as_os_str()),
        ],
    )
    .unwrap();
    let c = contract(&room);
    let client = RoomClient::connect(&svc.url, c.contract()).await.unwrap();
    let digest = install(&client, &room).await;
    let cancel = |member: &str, run: &str| {
        signed(
            &room,
            member,
            MessageType::RunCancel,
            now(),
            RunCancelPayload {
                run: run.to_string(),
                nonce: nonce(),
            }
            .to_bytes(),
        )
    };
    // Run A pauses after its guards, before it seals.
    let a = client
        .request_run(&run_request(&room, &digest))
        .await
        .unwrap();
    // The room is its own process: waiting here blocks nothing it needs.
    common::wait_until_paused(&gate, "run A never reached the seal");
    assert_eq!(
        refused(client.cancel_run(&cancel("agency", &a.id)).await),
        RoomRefusalKind::CancelNotAllowed
    );
    let r = client
        .cancel_run(&cancel("publisher", &a.id))
        .await
        .unwrap();
    assert_eq!(r.state, RunState::Running);
    std::fs::write(&gate, b"").unwrap();
    let a = client.wait(&a.id).await.unwrap();
    assert_eq!(a.state, RunState::Cancelled, "{a:?}");
    assert_eq!(
        a.cause,
        Some(
            cleanroom_room::RoomError::Cancelled {
                member: "publisher".into()
            }
            .to_string()
        )
    );
    assert!(a.outputs.is_empty());
    let outputs = std::fs::read_dir(state.join("room/outputs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(outputs, 0, "nothing sealed");
    // The next run is not affected; once committed it cannot be cancelled.
    let b = client
        .request_run(&run_request(&room, &digest))
        .await
        .unwrap();
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(client.wait(&b.id).await.unwrap().state, RunState::Committed);
    assert_eq!(
        refused(client.cancel_run(&cancel("advertiser", &b.id)).await),
        RoomRefusalKind::RunNotCancellable
    );
    // The cancellation is in the audit log, with the run's refusal.
    let log = client.audit().await.unwrap();
    let text = String::from_utf8(log).unwrap();
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<cleanroom_formats::audit::Entry>(l).ok())
            .any(|e| e.event == Step::Run
                && e.decision == Decision::Refused
                && e.reason
                    == cleanroom_room::RoomError::Cancelled {
                        member: "publisher".into()
                    }
                    .to_string()),
        "the run's refusal is audited"
    );
    drop(svc);
    room.stop().await;
}

/// I5 with the service's kept log (`AuditLog::reopen`): the operator edits an entry of the
/// service's audit log in place, keeping its size, between two requests. The service does
/// not append to the edited log from what it kept: the next request opens the log in full,
/// finds the broken chain and is refused (`Internal`, a storage failure), and the file gains
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_does_not_append_to_a_log_edited_between_requests() {
    let room = Room::new(Spec::default()).await;
    room.propose();
    room.approve_all();
    let state = room.root().join("service");
    let svc = serve(&room, &state, &[]).unwrap();
    let client = RoomClient::connect(&svc.url, contract(&room).contract())
        .await
        .unwrap();
    install(&client, &room).await;
    let log = state.join("room").join(cleanroom_formats::audit::LOG_FILE);
    let text = std::fs::read_to_string(&log).unwrap();
    let edited = text.replacen("verified and stored", "verified and STORED", 1);
    assert_ne!(edited, text);
    assert_eq!(edited.len(), text.len());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
        .unwrap();
    let proposal = cleanroom_formats::load::read_proposal(&room.proposal())
        .unwrap()
        .unwrap();
    assert_eq!(
        refused(client.propose(&proposal).await),
        RoomRefusalKind::Internal
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), edited);
}
