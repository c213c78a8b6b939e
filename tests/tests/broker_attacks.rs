//! Issue 9, the operator in the middle and broker robustness (I2, I5, I7): an operator who
//! carries every packet, owns the disk and can flood the brokers gets no key it should not,
//! swallows no suspension, picks no dataset version, and cannot roll the audit log back
//! past a broker. Each test is named after the attack and asserts the exact refusal.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use crate::common::{Room, Spec, member_dir};
use cleanroom_cli::broker_client::GovernanceError;
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::kbs_protocol::{
    Attestation, AuthExtra, AuthRequest, Challenge, ErrorBody, PROTOCOL_VERSION, RefusalKind,
    RuntimeData, SESSION_COOKIE,
};
use cleanroom_kbs::events::{Event, EventKind};
use cleanroom_kbs::server::{self, RunningBroker};
use cleanroom_kbs::store::{MasterKey, Store};
use cleanroom_kbs::tls::TlsIdentity;
use cleanroom_room::RoomError;
use cleanroom_room::attestation::{self, EvidenceSource, SimSource};

const IMP: &str = "data/impressions.parquet.sealed";
const CONV: &str = "data/conversions.csv.sealed";

/// The publisher's broker is taken down and the operator's own answers on its address: a
/// real broker with a certificate of its own (it cannot have the owner's private key) and
/// the signed contract registered, so it answers like the owner's would.
async fn impersonate_publisher(room: &mut Room) -> (RunningBroker, std::path::PathBuf) {
    let addr = room.brokers[0].addr;
    room.brokers.remove(0).stop().await;
    let d = room.root().join("operator");
    std::fs::create_dir_all(&d).unwrap();
    let mk = MasterKey::generate();
    let mk_path = d.join("kbs.master-key");
    std::fs::write(&mk_path, mk.to_file_text().as_bytes()).unwrap();
    let store = Store::init(&d.join("kbs.db"), mk).unwrap();
    let (signed, text) =
        cleanroom_formats::load::load_signed_contract(&room.contract, &room.sigs).unwrap();
    let sigs: Vec<String> = cleanroom_formats::load::read_messages(&room.sigs)
        .unwrap()
        .iter()
        .map(|m| m.to_base64())
        .collect();
    store
        .put_contract(&signed.digest().hex(), &text, &sigs)
        .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let fake = server::spawn(store, listener, Some(&TlsIdentity::generate().unwrap())).unwrap();
    assert_eq!(
        fake.url,
        format!("https://{addr}"),
        "same URL as the pinned broker"
    );
    (fake, d)
}

fn events_at(dir: &Path) -> Vec<Event> {
    cleanroom_kbs::commands::open_store(&dir.join("kbs.db"), &dir.join("kbs.master-key"))
        .unwrap()
        .verify_events()
        .expect("the broker's event log verifies")
        .0
}

/// I2: the operator answers on the publisher's broker address with a broker of its own
/// (its own certificate, the signed contract, a key it chose and a matching sealed file).
/// The room refuses it at the TLS handshake, naming the key it presented, before any request
/// (let alone evidence) reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_refuses_a_broker_impersonated_by_the_operator() {
    let mut room = Room::new(Spec::default()).await;
    room.approve_all();
    let pinned = room.brokers[0].spki_sha256.clone().unwrap();
    let (fake, fake_dir) = impersonate_publisher(&mut room).await;
    // The operator seals its own impressions under its own key and registers it at its
    // broker, as the owner would.
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let (imp, _) = cleanroom_cli::demo::generate(5_000, 99);
    let plain = fake_dir.join("impressions.csv");
    std::fs::write(&plain, imp).unwrap();
    let keys = cleanroom_cli::sealing::seal(
        &parsed,
        &room.contract,
        "impressions",
        &plain,
        &room.room.join(IMP),
        None,
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )
    .unwrap()
    .keys;
    let mut only_key = keys.clone();
    only_key.withheld = None;
    let key_path = fake_dir.join("impressions.key");
    cleanroom_formats::keyfile::write(&key_path, &only_key, "impressions").unwrap();
    let store = cleanroom_kbs::commands::open_store(
        &fake_dir.join("kbs.db"),
        &fake_dir.join("kbs.master-key"),
    )
    .unwrap();
    cleanroom_kbs::commands::put(
        &store,
        &room.contract,
        &room.sigs,
        "impressions",
        &key_path,
        &room.room.join(IMP),
    )
    .unwrap();

    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::BrokerKeyMismatch { pinned: p, presented, .. }
            if *p == pinned && Some(presented) == fake.spki_sha256.as_ref()),
        "{err}"
    );
    room.assert_refused(Step::KeyRequest);
    // Nothing reached the impostor: no attestation, no release.
    let seen = events_at(&fake_dir);
    assert!(
        seen.iter()
            .all(|e| matches!(e.kind, EventKind::Log | EventKind::Register)),
        "the fake broker saw a request: {seen:?}"
    );
    fake.stop().await;
    room.stop().await;
}

/// I3: a member's suspension must reach each broker; the operator, answering for the
/// publisher's broker, would acknowledge it and drop it. The CLI refuses the impostor and
/// reports the delivery as failed; the impostor records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_cannot_be_swallowed_by_a_fake_broker() {
    use cleanroom_cli::commands::contract::ContractFiles;
    use cleanroom_cli::commands::governance::{Delivery, deliver};
    let mut room = Room::new(Spec::default()).await;
    let publisher_url = room.brokers[0].url.clone();
    let (fake, fake_dir) = impersonate_publisher(&mut room).await;
    let d = Delivery {
        contract: ContractFiles {
            contract: room.contract.clone(),
            sigs: None,
        },
        key: room.key_of("advertiser"),
        reason: "contract under review".into(),
        room: None,
        offline: false,
    };
    let done = deliver(cleanroom_policy::MessageType::Suspend, &d)
        .await
        .unwrap();
    let to_publisher = done
        .brokers
        .iter()
        .find(|(url, _)| *url == publisher_url)
        .map(|(_, r)| r)
        .unwrap();
    assert!(
        matches!(to_publisher, Err(GovernanceError::BrokerKeyMismatch { presented, .. })
            if Some(presented) == fake.spki_sha256.as_ref()),
        "{to_publisher:?}"
    );
    // The real advertiser broker took it.
    assert!(
        done.brokers
            .iter()
            .any(|(url, r)| *url != publisher_url && r.is_ok()),
        "{:?}",
        done.brokers
    );
    assert!(
        events_at(&fake_dir)
            .iter()
            .all(|e| e.kind == EventKind::Log),
        "the impostor received the message"
    );
    fake.stop().await;
    room.stop().await;
}

/// Seal `plain` for dataset `ds` under the owner's existing key (a new version of the same
/// dataset) into `out`.
fn reseal(room: &Room, owner: &str, ds: &str, plain: &str, out: &Path) {
    let d = member_dir(room.root(), owner);
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let plain_path = d.join(format!("{ds}-v2.csv"));
    std::fs::write(&plain_path, plain).unwrap();
    let (keys, _) = cleanroom_formats::keyfile::read(&d.join(format!("{ds}.key"))).unwrap();
    cleanroom_cli::sealing::seal(
        &parsed,
        &room.contract,
        ds,
        &plain_path,
        out,
        Some(keys),
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )
    .unwrap();
}

/// I2: under the same key, the operator serves another sealing of a dataset (older or newer)
/// than the one its owner registered, so that two runs of one approved query differ by its
/// choice. The broker releases the registered file's identity with the key; the room refuses
/// any other file, Parquet and sealed CSV alike, until the owner registers the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cannot_swap_in_another_version_of_a_dataset() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    room.run().await.expect("the registered versions run");
    let (imp2, conv2) = cleanroom_cli::demo::generate(6_000, 8);
    for (owner, ds, location, plain) in [
        ("publisher", "impressions", IMP, &imp2),
        ("advertiser", "conversions", CONV, &conv2),
    ] {
        let registered = std::fs::read(room.room.join(location)).unwrap();
        // The owner seals a new version and keeps it (not yet registered); the operator
        // copies it over the registered one.
        let v2 = member_dir(room.root(), owner).join(format!("{ds}-v2.sealed"));
        reseal(&room, owner, ds, plain, &v2);
        std::fs::copy(&v2, room.room.join(location)).unwrap();
        let outputs_before = room.outputs().len();
        let err = room.run().await.unwrap_err();
        assert!(
            matches!(&err, RoomError::DatasetVersionMismatch { dataset, .. } if dataset == ds),
            "{err}"
        );
        assert_eq!(room.outputs().len(), outputs_before, "no output");
        // The registered version runs again once it is back.
        std::fs::write(room.room.join(location), &registered).unwrap();
        room.run().await.expect("the registered version");
        // The owner registers the new version (a new `kbs put`): now only it runs.
        let d = member_dir(room.root(), owner);
        let store =
            cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"))
                .unwrap();
        cleanroom_kbs::commands::put(
            &store,
            &room.contract,
            &room.sigs,
            ds,
            &d.join(format!("{ds}.key")),
            &v2,
        )
        .unwrap();
        let err = room.run().await.unwrap_err();
        assert!(
            matches!(&err, RoomError::DatasetVersionMismatch { dataset, .. } if dataset == ds),
            "the old version is refused once the new one is registered: {err}"
        );
        std::fs::copy(&v2, room.room.join(location)).unwrap();
        room.run().await.expect("the newly registered version runs");
        // The broker's log records both registrations; the room's, the version it read.
        let registrations = room
            .broker_events(owner)
            .into_iter()
            .filter(|e| e.kind == EventKind::Register && e.resource.contains(ds))
            .count();
        assert_eq!(registrations, 2, "both versions registered at the broker");
        let id = cleanroom_formats::identity::FileIdentity::of(
            cleanroom_policy::Contract::parse(
                &std::fs::read_to_string(&room.contract).unwrap(),
                "c",
            )
            .unwrap()
            .dataset(ds)
            .unwrap()
            .format,
            &std::fs::read(&v2).unwrap(),
        )
        .unwrap();
        let entries = room.audit();
        let last_grant = entries
            .iter()
            .rev()
            .find(|e| {
                e.event == Step::KeyRequest
                    && e.decision == Decision::Granted
                    && e.subject.starts_with(ds)
            })
            .unwrap();
        assert!(
            last_grant.reason.contains(&id.to_string()),
            "{}",
            last_grant.reason
        );
    }
    room.stop().await;
}

/// I5: the operator restores an old copy of the audit log and pads it with made-up entries
/// until its head is past the newest one the brokers saw. The head's number is not enough:
/// the room must show the entries from the broker's head to its own, and these do not chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_log_padded_past_the_broker_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    room.run().await.unwrap();
    let log = room.room.join(cleanroom_formats::audit::LOG_FILE);
    let after_first = std::fs::read(&log).unwrap();
    room.run().await.unwrap();
    room.run().await.unwrap();
    let full_len = room.audit().len();

    std::fs::write(&log, &after_first).unwrap();
    {
        let root = cleanroom_formats::fsutil::Root::open(&room.room).unwrap();
        let mut padded = cleanroom_room::audit::AuditLog::open(&root, None).unwrap();
        while padded.entries().len() < full_len + 5 {
            padded
                .append(cleanroom_room::audit::Event {
                    event: Step::Run,
                    subject: "padding",
                    decision: Decision::Ok,
                    reason: "made up by the operator",
                })
                .unwrap();
        }
    }
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::KeyRefused {
                kind: RefusalKind::AuditNotExtended,
                ..
            }
        ),
        "{err}"
    );
    assert!(room.outputs().len() == 3, "no output from the refused run");
    room.stop().await;
}

/// A reqwest client pinned to `b`'s key, its connections from `from`.
fn pinned_client(b: &RunningBroker, from: Option<IpAddr>) -> reqwest::Client {
    let pin = b.spki_sha256.as_ref().unwrap().parse().unwrap();
    let (config, _) = cleanroom_formats::tls::pinned_client_config(pin).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .local_address(from)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// I2 availability: a client floods `/auth` (more than the whole session table held before
/// sessions were bounded per client). Its sessions only evict each other; the room, another
/// client, still gets its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_flood_does_not_lock_out_the_room() {
    /// The table's size before sessions were bounded per client (all of it one flood).
    const OLD_TABLE: usize = 10_000;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let flooder: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    let requests = OLD_TABLE.max(server::MAX_SESSIONS) + 100;
    let mut tasks = Vec::new();
    for b in &room.brokers {
        for part in 0..2 {
            let http = pinned_client(b, Some(flooder));
            let url = format!("{}/kbs/v0/auth", b.url);
            let n = requests / 2 + part;
            tasks.push(tokio::spawn(async move {
                let mut ok = 0usize;
                for _ in 0..n {
                    let r = http
                        .post(&url)
                        .json(&AuthRequest {
                            version: PROTOCOL_VERSION.into(),
                            tee: "sim".into(),
                            extra_params: serde_json::Value::String(String::new()),
                        })
                        .send()
                        .await
                        .unwrap();
                    ok += usize::from(r.status().is_success());
                }
                ok
            }));
        }
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap();
    }
    assert!(granted > 1_000, "the flood ran ({granted} sessions)");
    room.run()
        .await
        .expect("the room gets its keys during and after the flood");
    room.stop().await;
}

/// Auth on `b` from a pinned client; returns (cookie, challenge).
async fn auth(http: &reqwest::Client, b: &RunningBroker, digest: &str) -> (String, Challenge) {
    let resp = http
        .post(format!("{}/kbs/v0/auth", b.url))
        .json(&AuthRequest {
            version: PROTOCOL_VERSION.into(),
            tee: "sim".into(),
            extra_params: serde_json::to_value(AuthExtra {
                contract_digest: digest.into(),
            })
            .unwrap(),
        })
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{SESSION_COOKIE}=")))
        .unwrap()
        .to_string();
    (cookie, resp.json().await.unwrap())
}

/// I2 freshness: once a session's challenge is used, its nonce must be gone, not become
/// the empty string: evidence binding an empty nonce (made once, replayable forever) is
/// refused on that session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_attestation_with_empty_nonce_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let b = &room.brokers[0];
    let http = pinned_client(b, None);
    let digest = hex::encode(room.digest);
    let source = SimSource {
        measurement: attestation::self_measurement().unwrap(),
        launch_digest: room.digest,
    };
    let w = cleanroom_formats::load::load_workload(&room.workload).unwrap();
    let approvals: Vec<String> = cleanroom_formats::load::read_messages(&room.approvals)
        .unwrap()
        .iter()
        .map(|m| m.to_base64())
        .collect();
    let tee = p384::SecretKey::random(&mut rand::rngs::OsRng);
    let attestation = |nonce: String| {
        let runtime_data = RuntimeData {
            nonce,
            tee_pubkey: serde_json::from_str(&tee.public_key().to_jwk_string()).unwrap(),
            contract_digest: digest.clone(),
            workload: String::from_utf8(w.canonical_json()).unwrap(),
            approvals: approvals.clone(),
            audit_seq: 0,
            audit_hash: String::new(),
            audit_proof: Vec::new(),
        };
        let ev = source
            .collect(cleanroom_attest::report_data_for(
                &runtime_data.canonical_json(),
            ))
            .unwrap();
        Attestation {
            runtime_data,
            tee_evidence: serde_json::to_value(&ev).unwrap(),
        }
    };
    let (cookie, challenge) = auth(&http, b, &digest).await;
    let attest = |a: Attestation| {
        http.post(format!("{}/kbs/v0/attest", b.url))
            .header(reqwest::header::COOKIE, &cookie)
            .json(&a)
            .send()
    };
    let first = attest(attestation(challenge.nonce)).await.unwrap();
    assert!(first.status().is_success(), "the fresh attestation passes");
    // Evidence over an empty nonce, presented on the used session.
    let replay = attest(attestation(String::new())).await.unwrap();
    assert_eq!(replay.status(), reqwest::StatusCode::UNAUTHORIZED);
    let body: ErrorBody = replay.json().await.unwrap();
    assert!(matches!(body.kind, RefusalKind::NonceMismatch), "{body:?}");
    room.stop().await;
}

/// I7: the broker's record of a release is what the owner audits. If it cannot be written
/// (disk full, database locked, here a trigger refusing the row), the key is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_is_not_released_when_the_grant_cannot_be_recorded() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let db = member_dir(room.root(), "publisher").join("kbs.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_grant_rows BEFORE INSERT ON events
             WHEN NEW.event = 'release' AND NEW.decision = 'granted'
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::KeyRefused {
                kind: RefusalKind::NotRecorded,
                ..
            }
        ),
        "{err}"
    );
    room.assert_refused(Step::KeyRequest);
    assert_eq!(room.keys_released("publisher"), 0);
    room.stop().await;
}
