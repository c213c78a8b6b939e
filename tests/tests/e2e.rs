//! End-to-end: two members, two key brokers on 127.0.0.1, sealed data, the real run path.
//! Each refusal is named after the attack it stops and checks: the error names the cause,
//! no output file exists, the refusing broker released no key, and the audit log records it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use crate::common::{Room, Spec};
use cleanroom_attest::AttestError;
use cleanroom_cli::broker_client::GovernanceError;
use cleanroom_cli::error::MemberError;
use cleanroom_formats::audit::Step;
use cleanroom_formats::kbs_protocol::RefusalKind;
use cleanroom_formats::{FormatError, StreamError};
use cleanroom_kbs::events::{EventDecision, EventKind};
use cleanroom_policy::PolicyError;
use cleanroom_room::attestation::{self, SimSource};
use cleanroom_room::error::{DpRefusal, GuardRefusal, QueryRefusal, RoomError};
use cleanroom_room::sandbox::SandboxError;
use std::collections::BTreeMap;

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

const CONV: &str = "data/conversions.csv.sealed";
const IMP: &str = "data/impressions.parquet.sealed";

/// Ask a member's broker for its dataset key directly, with evidence from `source`.
async fn request_key(
    room: &Room,
    broker: usize,
    resource: &str,
    source: &SimSource,
) -> Result<(), RoomError> {
    let w = cleanroom_formats::load::load_workload(&room.workload).unwrap();
    let approvals: Vec<String> = cleanroom_formats::load::read_messages(&room.approvals)
        .unwrap()
        .iter()
        .map(|m| m.to_base64())
        .collect();
    let digest = hex::encode(room.digest);
    let workload_json = String::from_utf8(w.canonical_json()).unwrap();
    let b = &room.brokers[broker];
    let req = cleanroom_room::kbs_client::KeyRequest {
        broker: &b.url,
        resource,
        contract_digest: &digest,
        workload_json: &workload_json,
        approvals: &approvals,
        audit_head: (0, ""),
        audit_log: &[],
    };
    let client = cleanroom_room::kbs_client::BrokerClient::new(
        &b.url,
        b.spki_sha256.as_deref(),
        std::time::Duration::from_secs(30),
    )?;
    cleanroom_room::kbs_client::fetch_key(&client, &req, source)
        .await
        .map(|_| ())
}

fn sim(launch_digest: [u8; 32]) -> SimSource {
    SimSource {
        measurement: attestation::self_measurement().unwrap(),
        launch_digest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_combine_sealed_data_under_guards() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let report = room.run().await.expect("run succeeds");
    assert!(report.insecure, "sim runs are marked insecure");
    assert_eq!(
        report.input_rows,
        vec![("impressions".into(), 5000), ("conversions".into(), 1000)]
    );
    let out = room.open_output();
    let header = out.lines().next().unwrap();
    assert_eq!(
        header,
        "campaign,reach,impressions,converters,conversion_rate_pct,conversion_value"
    );
    // The tiny pilot campaign reaches fewer than 50 users: dropped by the guard.
    assert!(!out.contains("pilot-x"), "{out}");
    assert!(out.contains("spring-sale"), "{out}");
    assert!(report.groups_dropped >= 1);
    assert_eq!(room.keys_released("publisher"), 1);
    assert_eq!(room.keys_released("advertiser"), 1);
    let events: Vec<String> = room
        .audit()
        .iter()
        .map(|e| format!("{}:{}", e.event, e.decision))
        .collect();
    assert_eq!(
        events,
        [
            "contract:accepted",
            "suspension:none",
            "proposal:accepted",
            "approval:granted",
            "query:accepted",
            "attestation:verified",
            "key-request:granted",
            "key-request:granted",
            "decrypt:ok",
            "decrypt:ok",
            "guard:applied",
            // No suspension arrived while the run was in flight.
            "suspension:none",
            "output:committed",
            "checkpoint:signed"
        ]
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_every_owner_approval_is_refused_before_any_key_request() {
    let room = Room::new(Spec::default()).await;
    room.approve("publisher");
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::MissingApproval { owner, .. }) if owner == "advertiser"),
        "{err}"
    );
    let reason = room.assert_refused(Step::Approval);
    assert!(reason.contains("advertiser"), "{reason}");
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_launched_with_another_contract_refuses_itself() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let cfg = room.config_with(sim([0x42; 32]));
    let err = cleanroom_room::run::run(&cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            RoomError::Attestation(AttestError::HostDataMismatch { .. })
        ),
        "{err}"
    );
    room.assert_refused(Step::Attestation);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

/// The broker itself refuses evidence bound to another contract (a host that skipped its
/// self-check, or a forged request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refuses_evidence_bound_to_another_contract() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let err = request_key(&room, 1, "advertiser/dataset/conversions", &sim([0x42; 32]))
        .await
        .unwrap_err();
    match &err {
        RoomError::KeyRefused { reason, .. } => {
            assert!(reason.contains("launch-bound data"), "{reason}")
        }
        e => panic!("wrong error {e}"),
    }
    assert_eq!(room.keys_released("advertiser"), 0);
    let ev = room.broker_events("advertiser");
    assert!(
        ev.iter().any(|e| e.kind == EventKind::Attest
            && e.decision == EventDecision::Refused
            && e.reason.contains("HOST_DATA")),
        "{ev:?}"
    );
    // The same request with the right binding succeeds: the refusal was for the binding.
    request_key(
        &room,
        1,
        "advertiser/dataset/conversions",
        &sim(room.digest),
    )
    .await
    .expect("released");
    assert_eq!(room.keys_released("advertiser"), 1);
    room.stop().await;
}

/// A contract that does not allow simulation: the host refuses its own sim evidence, and a
/// broker refuses it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_evidence_is_refused_when_contract_disallows_simulation() {
    let spec = Spec {
        edit_contract: Box::new(|t| {
            t.replace("platforms = [\"sim\"]", "platforms = [\"snp\"]")
                .replace("allow_simulated = true", "allow_simulated = false")
        }),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            err,
            RoomError::Attestation(AttestError::SimulatedNotAllowed)
        ),
        "{err}"
    );
    room.assert_refused(Step::Attestation);

    let err = request_key(&room, 0, "publisher/dataset/impressions", &sim(room.digest))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RoomError::KeyRefused { kind: RefusalKind::EvidenceRefused, reason, .. } if reason.contains("allow_simulated")),
        "{err}"
    );
    assert_eq!(room.keys_released("publisher"), 0);
    room.stop().await;
}

async fn tampered_run(tamper: impl FnOnce(&Room), segment_size: u32) -> (Room, RoomError) {
    let room = Room::new(Spec {
        segment_size,
        ..Spec::default()
    })
    .await;
    room.approve_all();
    tamper(&room);
    let err = room.run().await.unwrap_err();
    room.assert_refused(Step::Decrypt);
    (room, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_csv_with_flipped_byte_is_refused() {
    let (room, err) = tampered_run(|r| flip_byte(&r.room.join(CONV), 5000), 4096).await;
    assert!(
        matches!(
            err,
            RoomError::Format(FormatError::Sealed {
                source: StreamError::SegmentAuthFailed { index: 1 },
                ..
            })
        ),
        "{err}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_sealed_csv_is_refused() {
    let (room, err) = tampered_run(
        |r| {
            let p = r.room.join(CONV);
            let b = std::fs::read(&p).unwrap();
            // Cut at a segment boundary: header + 3 full segments.
            let header = 8 + 1 + 16 + 2 + "conversions".len() + 4 + 7;
            std::fs::write(&p, &b[..header + 3 * (4096 + 16)]).unwrap();
        },
        4096,
    )
    .await;
    assert!(
        matches!(
            err,
            RoomError::Format(FormatError::Sealed {
                source: StreamError::Truncated { after: 2 },
                ..
            })
        ),
        "{err}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_csv_with_reordered_segments_is_refused() {
    let (room, err) = tampered_run(
        |r| {
            let p = r.room.join(CONV);
            let mut b = std::fs::read(&p).unwrap();
            let h = 8 + 1 + 16 + 2 + "conversions".len() + 4 + 7;
            let n = 4096 + 16;
            let first = b[h..h + n].to_vec();
            let second = b[h + n..h + 2 * n].to_vec();
            b[h..h + n].copy_from_slice(&second);
            b[h + n..h + 2 * n].copy_from_slice(&first);
            std::fs::write(&p, b).unwrap();
        },
        4096,
    )
    .await;
    assert!(
        matches!(
            err,
            RoomError::Format(FormatError::Sealed {
                source: StreamError::SegmentAuthFailed { index: 0 },
                ..
            })
        ),
        "{err}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_spliced_from_another_sealed_file_is_refused() {
    let (room, err) = tampered_run(
        |r| {
            // The owner sealed the same data twice under the same key; splice segment 1.
            let d = common::member_dir(r.root(), "advertiser");
            let other = r.root().join("other.sealed");
            let contract = cleanroom_policy::Contract::parse(
                &std::fs::read_to_string(&r.contract).unwrap(),
                "c",
            )
            .unwrap();
            let plain = r.root().join("again.csv");
            std::fs::write(&plain, common::Spec::default().conversions_csv).unwrap();
            let (k, _) = cleanroom_formats::keyfile::read(&d.join("conversions.key")).unwrap();
            cleanroom_cli::sealing::seal(
                &contract,
                &r.contract,
                "conversions",
                &plain,
                &other,
                Some(k),
                4096,
            )
            .unwrap();
            let theirs = std::fs::read(&other).unwrap();
            let p = r.room.join(CONV);
            let mut ours = std::fs::read(&p).unwrap();
            let h = 8 + 1 + 16 + 2 + "conversions".len() + 4 + 7;
            let n = 4096 + 16;
            ours[h + n..h + 2 * n].copy_from_slice(&theirs[h + n..h + 2 * n]);
            std::fs::write(&p, ours).unwrap();
        },
        4096,
    )
    .await;
    assert!(
        matches!(
            err,
            RoomError::Format(FormatError::Sealed {
                source: StreamError::SegmentAuthFailed { index: 1 },
                ..
            })
        ),
        "{err}"
    );
    room.stop().await;
}

/// A flipped byte in what the room reads (the first column chunk, `user_id_hash`, which is
/// allowed; or the encrypted footer) fails authentication. Pages of columns outside
/// `allowed_fields` are never read, let alone decrypted.
/// The operator flips one byte of the sealed Parquet file: in the footer, the room refuses
/// it when it reads the footer, before any query; in a page, when the query reads that page
/// (pages are decrypted as they are scanned). Either way the error names the dataset and no
/// output exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_parquet_with_flipped_byte_is_refused() {
    for (in_footer, step) in [(false, Step::Query), (true, Step::Decrypt)] {
        let room = Room::new(Spec::default()).await;
        room.approve_all();
        let p = room.room.join(IMP);
        let len = std::fs::metadata(&p).unwrap().len() as usize;
        flip_byte(&p, if in_footer { len - 40 } else { 100 });
        let err = room.run().await.unwrap_err();
        room.assert_refused(step);
        assert!(
            matches!(&err, RoomError::Format(FormatError::DatasetUnreadable { dataset, format: "parquet", .. }) if dataset == "impressions"),
            "{err}"
        );
        room.stop().await;
    }
}

/// I2: the operator replaces the sealed Parquet file with a plaintext one of the same
/// schema (rows it chose): the room refuses to read anything not encrypted as the contract
/// says, before any row is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_parquet_substituted_for_sealed_dataset_is_refused() {
    let (room, err) = tampered_run(
        |r| {
            use arrow::array::{ArrayRef, StringArray};
            let col =
                |v: &str| -> ArrayRef { std::sync::Arc::new(StringArray::from(vec![v; 2000])) };
            let batch = arrow::array::RecordBatch::try_from_iter([
                ("user_id_hash", col("chosen-by-the-operator")),
                ("campaign", col("spring")),
                ("site", col("example.org")),
                ("ts", col("2026-01-01")),
                ("ip_address", col("10.0.0.1")),
            ])
            .unwrap();
            let mut out = Vec::new();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            assert!(out.ends_with(b"PAR1"));
            std::fs::write(r.room.join(IMP), out).unwrap();
        },
        4096,
    )
    .await;
    assert!(
        matches!(&err, RoomError::InputNotSealed { dataset, .. } if dataset == "impressions"),
        "{err}"
    );
    room.stop().await;
}

/// DESIGN "per-column keys": a Parquet column outside `allowed_fields` is encrypted under the
/// owner's withheld key, which never reaches the broker, so what the broker releases to the
/// room cannot decrypt it; the owner's full key file can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_outside_allowed_fields_cannot_be_decrypted_with_the_released_key() {
    use cleanroom_formats::keyfile::{self, DatasetKeys};
    use cleanroom_formats::parquet::read_encrypted;
    let room = Room::new(Spec::default()).await;
    let owner_file = common::member_dir(room.root(), "publisher").join("impressions.key");
    let (owner, _) = keyfile::read(&owner_file).unwrap();
    assert!(
        owner.withheld.is_some(),
        "ip_address is withheld: a withheld key exists"
    );
    let sealed = std::fs::read(room.room.join(IMP)).unwrap();
    let all: Vec<String> = ["user_id_hash", "campaign", "ts", "site", "ip_address"]
        .map(String::from)
        .to_vec();
    let allowed = all[..4].to_vec();

    // The owner reads every column.
    let (schema, _) =
        read_encrypted(&owner, &all, &allowed, "impressions", sealed.clone()).unwrap();
    assert!(schema.field_with_name("ip_address").is_ok());
    // With only the released key, reading ip_address fails, even trying that key for it.
    let released = DatasetKeys {
        key: owner.key.clone(),
        withheld: None,
    };
    assert!(read_encrypted(&released, &all, &allowed, "impressions", sealed.clone()).is_err());
    assert!(read_encrypted(&released, &all, &all, "impressions", sealed).is_err());
    // The owner's key file, withheld key included, is refused as a broker key file.
    let err = keyfile::from_json(&std::fs::read(&owner_file).unwrap(), "owner").unwrap_err();
    assert!(
        matches!(&err, FormatError::BadKeyFile { path, what } if path == "owner" && what.contains("withheld")),
        "{err}"
    );
    // And the room still runs on the allowed columns.
    room.approve_all();
    room.run()
        .await
        .expect("the run reads only allowed columns");
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_reading_a_column_outside_allowed_fields_is_refused() {
    let spec = Spec {
        sql: "SELECT ip_address, COUNT(*) AS n FROM impressions GROUP BY ip_address".into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::ColumnNotAllowed { column, views } if column == "ip_address" && views == "impressions"),
        "{err}"
    );
    let reason = room.assert_refused(Step::Query);
    assert!(
        reason.contains("ip_address") && reason.contains("allowed_fields"),
        "{reason}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_sql_output_is_refused() {
    // Row values of a join key: refused by the query rules (only dimensions leave as is).
    let spec = Spec {
        sql: "SELECT user_id_hash, campaign FROM impressions".into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Query(QueryRefusal::Rule {
                violation: cleanroom_room::error::RuleViolation::NotReleasable { .. },
                ..
            })
        ),
        "{err}"
    );
    room.assert_refused(Step::Query);
    room.stop().await;
    // Row-level output of dimensions only: not an aggregate, refused before any key.
    let spec = Spec {
        sql: "SELECT campaign, site FROM impressions".into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Query(QueryRefusal::NotAggregate { .. })),
        "{err}"
    );
    room.assert_refused(Step::Query);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_signature_from_a_non_member_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let outsider = room.root().join("outsider");
    cleanroom_cli::keygen::keygen("mallory", &outsider).unwrap();
    // Mallory's acceptance of the same contract, appended to the signatures file.
    let sk = cleanroom_formats::keys::signing_key(&outsider.join("mallory.sign.key")).unwrap();
    let msg = cleanroom_policy::message::SignedMessage::sign(
        &sk,
        cleanroom_policy::MessageType::ContractAccept,
        room.digest,
        1,
        room.digest.to_vec(),
    );
    cleanroom_cli::signing::append_message(&room.sigs, &msg).unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(err, RoomError::Policy(PolicyError::SignerNotAMember { .. })),
        "{err}"
    );
    room.assert_refused(Step::Contract);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

/// Acceptance 3: a group of k-1 rows never appears; a group of k does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_k_minus_one_is_dropped_and_group_of_k_is_released() {
    let mut csv = String::from("user_id_hash,campaign,ts,site,ip_address\n");
    for (campaign, n) in [("bulk", 1000), ("exactly-k", 50), ("k-minus-one", 49)] {
        for i in 0..n {
            csv.push_str(&format!("u{campaign}{i},{campaign},1,s,10.0.0.1\n"));
        }
    }
    let spec = Spec {
        impressions_csv: csv,
        sql: "SELECT campaign, COUNT(*) AS n FROM impressions GROUP BY campaign ORDER BY campaign"
            .into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let report = room.run().await.unwrap();
    let out = room.open_output();
    assert_eq!(out, "campaign,n\nbulk,1000\nexactly-k,50\n");
    assert_eq!(report.groups_dropped, 1);
    room.stop().await;
}

/// Acceptance 4: no plaintext reaches disk. A marker planted in an allowed and a disallowed
/// column is searched for in every file under the run's directory and the temp dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_marker_reaches_any_file() {
    let marker = format!("PLAINTEXT-MARKER-{:016x}", rand_u64());
    let (mut imp, mut conv) = cleanroom_cli::demo::generate(5_000, 11);
    // 60 users in the marker campaign, each with a conversion: the campaign passes the
    // guard, which counts both inputs' distinct users.
    for i in 0..60 {
        imp.push_str(&format!("{marker}-u{i},{marker},1,s,{marker}\n"));
        conv.push_str(&format!("{marker}-u{i},2,1.00,{marker}\n"));
    }
    let spec = Spec {
        impressions_csv: imp,
        conversions_csv: conv,
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    room.run().await.unwrap();
    // The marker campaign passed the guard: it is in the sealed output...
    assert!(room.open_output().contains(&marker));
    // ...but in no file, anywhere we can look.
    let mut scanned = 0;
    for dir in [room.root().to_path_buf(), std::env::temp_dir()] {
        scanned += scan_for(&dir, marker.as_bytes());
    }
    assert!(scanned > 5, "scanned {scanned} files");
    room.stop().await;
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn scan_for(dir: &std::path::Path, needle: &[u8]) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            n += scan_for(&p, needle);
        } else if ft.is_file()
            && let Ok(bytes) = std::fs::read(&p)
        {
            n += 1;
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "plaintext marker found in {}",
                p.display()
            );
        }
    }
    n
}

/// Acceptance 5: a broker restarted on the same database still releases the key; with the
/// wrong master key it refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_on_same_database_still_releases() {
    let mut room = Room::new(Spec::default()).await;
    room.approve_all();
    let addr = room.brokers[1].addr;
    room.brokers.pop().unwrap().stop().await;
    let d = common::member_dir(room.root(), "advertiser");
    let store =
        cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key")).unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    room.brokers.push(
        cleanroom_kbs::server::spawn(
            store,
            listener,
            Some(&common::broker_identity(room.root(), "advertiser")),
        )
        .unwrap(),
    );
    room.run().await.expect("restarted broker releases the key");
    assert_eq!(room.keys_released("advertiser"), 1);

    let wrong = room.root().join("wrong.master-key");
    std::fs::write(
        &wrong,
        cleanroom_kbs::store::MasterKey::generate()
            .to_file_text()
            .as_bytes(),
    )
    .unwrap();
    let err = cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &wrong).unwrap_err();
    assert!(
        matches!(err, cleanroom_kbs::KbsError::WrongMasterKey { .. }),
        "{err}"
    );
    room.stop().await;
}

/// Replace the room's workload with a training workload of `training-logreg` (the module
/// stored under `stored` bytes), approved by both owners. Returns the approved digest.
fn training_workload(
    room: &Room,
    stored: impl FnOnce(Vec<u8>) -> Vec<u8>,
    artifact_recipients: &str,
) -> String {
    let bytes = cleanroom_cli::guest_build::component("training-logreg").unwrap();
    let digest = cleanroom_room::sandbox::digest_hex(&bytes);
    std::fs::create_dir_all(room.room.join("modules")).unwrap();
    std::fs::write(
        room.room.join(format!("modules/{digest}.wasm")),
        stored(bytes),
    )
    .unwrap();
    let sql = "SELECT CAST(COUNT(*) AS DOUBLE) AS imps, CASE WHEN COUNT(c.user_id_hash) = 0 THEN 0.0 ELSE 1.0 END AS label FROM impressions i LEFT JOIN (SELECT DISTINCT user_id_hash FROM conversions) c ON i.user_id_hash = c.user_id_hash GROUP BY i.user_id_hash";
    std::fs::write(
        &room.workload,
        format!(
            "name = \"train\"\nkind = \"training\"\ninputs = [\"impressions\", \"conversions\"]\nmodule_digest = \"{digest}\"\n\n[module]\nsql_access = true\n\n[parameters]\nsql = \"{sql}\"\nfeatures = [\"imps\"]\nepochs = 50\n\n[output]\nrecipients = [\"advertiser\"]\n{artifact_recipients}"
        ),
    )
    .unwrap();
    room.approve_all();
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_module_runs_and_seals_weights_to_model_recipient_only() {
    let room = Room::new(Spec::default()).await;
    training_workload(&room, |b| b, "artifact_recipients = [\"advertiser\"]\n");
    let report = room.run().await.expect("module run succeeds");
    // What each output is, the advertiser reads inside it (the file names say nothing).
    let sk = cleanroom_formats::keys::encryption_key(
        &common::member_dir(room.root(), "advertiser").join("keys/advertiser.enc.key"),
    )
    .unwrap();
    let kinds: Vec<(
        cleanroom_formats::envelope::ContentKind,
        String,
        Vec<String>,
    )> = report
        .outputs
        .iter()
        .map(|p| {
            let file = std::fs::read(p).unwrap();
            let (_, recipients) = cleanroom_formats::envelope::inspect(&file).unwrap();
            let c = cleanroom_formats::envelope::open(&file, "advertiser", &sk)
                .unwrap()
                .content;
            (c.kind, c.name, recipients)
        })
        .collect();
    use cleanroom_formats::envelope::ContentKind;
    assert!(
        kinds.iter().any(|k| k.0 == ContentKind::Metrics),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| (k.0, k.1.as_str(), k.2.clone())
            == (
                ContentKind::Artifact,
                "model",
                vec!["advertiser".to_string()]
            )),
        "{kinds:?}"
    );
    let events: Vec<String> = room
        .audit()
        .iter()
        .map(|e| format!("{}:{}", e.event, e.decision))
        .collect();
    assert!(events.contains(&"module:ran".to_string()), "{events:?}");
    room.stop().await;
}

/// Issue 10: a module's metrics under `dp.metric_bounds` leave with OpenDP noise, exactly
/// the named metrics (clamped into their bounds), and the run spends ε from every input's
/// budget on the record; a metric the module writes that the workload does not name is
/// refused without its (module-chosen) name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_metrics_under_dp_are_noisy_bounded_and_spend_the_budget() {
    let spec = Spec {
        // The conversions get a budget too (the training reads both datasets).
        edit_contract: Box::new(|t| {
            let roles = r#"columns = { metrics = ["value"], filters = ["ts"], join_keys = ["user_id_hash"] }"#;
            t.replacen(
                roles,
                &format!("{roles}\ndp = {{ epsilon = 2.0, max_epsilon_per_run = 1.0 }}"),
                1,
            )
        }),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    let dp = |bounds: &str| {
        format!(
            "dp = {{ epsilon = 1.0, mechanism = \"laplace\", metric_bounds = {{ {bounds} }} }}\n"
        )
    };
    let with_dp = |bounds: &str| {
        let text = std::fs::read_to_string(&room.workload).unwrap();
        let text = text.replacen("\n[module]", &format!("\n{}\n[module]", dp(bounds)), 1);
        std::fs::write(&room.workload, text).unwrap();
        // The approvals of the workload without dp are for another digest.
        std::fs::remove_file(&room.approvals).unwrap();
        room.approve_all();
    };
    training_workload(&room, |b| b, "artifact_recipients = [\"advertiser\"]\n");
    with_dp(
        "loss = [0.0, 5.0], accuracy = [0.0, 1.0], rows = [0.0, 10000.0], epochs = [0.0, 100.0], extra = [0.0, 1.0]",
    );
    let report = room.run().await.expect("the module run succeeds");
    let sk = cleanroom_formats::keys::encryption_key(
        &common::member_dir(room.root(), "advertiser").join("keys/advertiser.enc.key"),
    )
    .unwrap();
    let metrics: BTreeMap<String, f64> = report
        .outputs
        .iter()
        .find_map(|p| {
            let o =
                cleanroom_formats::envelope::open(&std::fs::read(p).unwrap(), "advertiser", &sk)
                    .unwrap();
            (o.content.kind == cleanroom_formats::envelope::ContentKind::Metrics)
                .then(|| serde_json::from_slice(&o.data).unwrap())
        })
        .unwrap();
    let names: Vec<&str> = metrics.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["accuracy", "epochs", "extra", "loss", "rows"],
        "exactly the named metrics"
    );
    // `epochs` is 50 exactly; its noise has scale (sum of the ranges) / ε = 10106.
    assert_ne!(metrics["epochs"], 50.0, "the metrics are noisy");
    let entries = room.audit();
    assert_eq!(
        cleanroom_formats::audit::spent_micros(&entries, "impressions"),
        1_000_000
    );
    assert_eq!(
        cleanroom_formats::audit::spent_micros(&entries, "conversions"),
        1_000_000
    );
    // Bounds that leave out a metric the module writes: refused, nothing sealed.
    training_workload(&room, |b| b, "artifact_recipients = [\"advertiser\"]\n");
    with_dp("loss = [0.0, 5.0]");
    let before = room.outputs().len();
    match room.run().await {
        Err(RoomError::Dp(DpRefusal::MetricWithoutBounds)) => {}
        other => panic!("expected MetricWithoutBounds, got {other:?}"),
    }
    assert_eq!(room.outputs().len(), before);
    room.stop().await;
}

/// Issue 3, acceptance 3, through the run path: one flipped bit and the module does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_differing_from_approved_digest_by_one_bit_does_not_run() {
    let room = Room::new(Spec::default()).await;
    training_workload(
        &room,
        |mut b| {
            let i = b.len() / 2;
            b[i] ^= 0x01;
            b
        },
        "artifact_recipients = [\"advertiser\"]\n",
    );
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Module(SandboxError::DigestMismatch { .. })),
        "{err}"
    );
    room.assert_refused(Step::Module);
    room.stop().await;
}

/// Weights must have an agreed recipient: a module writing an artifact the workload does not
/// route to a model recipient is refused, and nothing at all is sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_artifact_without_agreed_recipient_is_refused() {
    let room = Room::new(Spec::default()).await;
    training_workload(&room, |b| b, "");
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Guard(GuardRefusal::ArtifactsWithoutRecipients)
        ),
        "{err}"
    );
    room.assert_refused(Step::Guard);
    room.stop().await;
}

/// The contract's `[sandbox]` limits apply to module runs: a 300 ms deadline stops an
/// infinite loop (the default is 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_deadline_stops_an_infinite_loop() {
    let spec = Spec {
        edit_contract: Box::new(|t| format!("{t}\n[sandbox]\ndeadline_ms = 300\n")),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    let bytes = cleanroom_cli::guest_build::component("hostile_infinite_loop").unwrap();
    let digest = cleanroom_room::sandbox::digest_hex(&bytes);
    std::fs::create_dir_all(room.room.join("modules")).unwrap();
    std::fs::write(room.room.join(format!("modules/{digest}.wasm")), bytes).unwrap();
    std::fs::write(
        &room.workload,
        format!(
            "name = \"spin\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"{digest}\"\n\n[output]\nrecipients = [\"advertiser\"]\n\n[guards]\nunit_column = \"user_id_hash\"\n"
        ),
    )
    .unwrap();
    room.approve_all();
    let err = room.run().await.unwrap_err();
    // The error names the deadline in force: the contract's, not the 30 s default.
    assert!(
        matches!(
            &err,
            RoomError::Module(SandboxError::DeadlineExceeded { millis: 300 })
        ),
        "{err}"
    );
    room.assert_refused(Step::Module);
    room.stop().await;
}

// ---- Governance: who may propose (the demo contract names the advertiser) ----

/// Sign a proposal of the room's current workload as `member`, bypassing the CLI's own
/// check (which refuses a member outside governance.proposers before signing).
fn forge_proposal(room: &Room, member: &str) {
    use cleanroom_policy::message::{MessageType, SignedMessage};
    let text = std::fs::read_to_string(&room.workload).unwrap();
    let payload =
        cleanroom_policy::proposal::ProposalPayload::new(&text, "workload.toml", None).unwrap();
    let sk = cleanroom_formats::keys::signing_key(&room.key_of(member)).unwrap();
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadPropose,
        room.digest,
        1,
        payload.to_bytes(),
    );
    std::fs::write(room.proposal(), format!("{}\n", msg.to_base64())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_proposal_is_refused_when_contract_names_proposers() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    std::fs::remove_file(room.proposal()).unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::MissingProposal { .. })),
        "{err}"
    );
    room.assert_refused(Step::Proposal);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

/// An owner's tooling refuses, before writing anything, to seal a dataset with the key of
/// another dataset, or a Parquet file whose column has another type than the contract's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealing_with_another_datasets_key_or_a_mistyped_column_is_refused() {
    let room = Room::new(Spec::default()).await;
    let d = common::member_dir(room.root(), "advertiser");
    let err = cleanroom_cli::sealing::read_key_for(&d.join("conversions.key"), "impressions")
        .unwrap_err();
    assert!(
        matches!(&err, MemberError::KeyOfAnotherDataset { key_dataset, dataset, .. }
            if key_dataset == "conversions" && dataset == "impressions"),
        "{err}"
    );
    // `user_id_hash` is a string in the contract; this file has it as int64.
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("user_id_hash", arrow::datatypes::DataType::Int64, false),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![std::sync::Arc::new(arrow::array::Int64Array::from(vec![
            1, 2,
        ]))],
    )
    .unwrap();
    let plain = room.root().join("mistyped.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&plain).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let out = room.root().join("mistyped.sealed");
    let key_out = room.root().join("mistyped.key");
    let err = cleanroom_cli::sealing::seal_with_key_file(
        &parsed,
        &room.contract,
        "impressions",
        &plain,
        &out,
        None,
        Some(&key_out),
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )
    .unwrap_err();
    assert!(
        matches!(&err, MemberError::ColumnMismatch { column, want, found, .. }
            if column == "user_id_hash" && want == "string" && found == "Int64"),
        "{err}"
    );
    assert!(!out.exists() && !key_out.exists());
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposal_by_a_member_who_may_not_propose_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    // The publisher signs its own proposal of the same workload: valid COSE, wrong proposer.
    forge_proposal(&room, "publisher");
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::ProposerNotAllowed { member, .. }) if member == "publisher"),
        "{err}"
    );
    room.assert_refused(Step::Proposal);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    // The CLI refuses to sign such a proposal in the first place.
    let err = cleanroom_cli::signing::propose(
        &room.contract,
        &room.sigs,
        &room.workload,
        &room.key_of("publisher"),
        None,
        &room.root().join("p"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, MemberError::Policy(PolicyError::ProposerNotAllowed { member, .. }) if member == "publisher"),
        "{err}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_edited_after_its_proposal_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let text = std::fs::read_to_string(&room.workload).unwrap();
    std::fs::write(
        &room.workload,
        text.replace("min_group_size = 50", "min_group_size = 51"),
    )
    .unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Policy(PolicyError::ProposalForOtherWorkload { .. })
        ),
        "{err}"
    );
    room.assert_refused(Step::Proposal);
    room.stop().await;
}

// ---- Suspension (I3): any member can suspend; it takes effect before the next run ----

async fn governance(room: &Room, member: &str, kind: cleanroom_policy::MessageType, to_room: bool) {
    use cleanroom_cli::commands::contract::ContractFiles;
    use cleanroom_cli::commands::governance::{Delivery, deliver};
    let d = Delivery {
        contract: ContractFiles {
            contract: room.contract.clone(),
            sigs: None,
        },
        key: room.key_of(member),
        reason: "data-sharing agreement under review".into(),
        room: to_room.then(|| room.room.clone()),
        offline: false,
    };
    let done = deliver(kind, &d).await.unwrap();
    assert_eq!(done.member, member);
    assert_eq!(done.brokers.len(), 2, "delivered to both brokers");
    for (url, r) in &done.brokers {
        assert!(r.is_ok(), "{url}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_room_refuses_the_next_run_before_any_key_request() {
    use cleanroom_policy::MessageType;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    // The advertiser is not the owner of impressions, yet its suspension stops everything.
    governance(&room, "advertiser", MessageType::Suspend, true).await;
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::Suspended { by }) if by == "`advertiser`"),
        "{err}"
    );
    room.assert_refused(Step::Suspension);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_refuse_keys_while_suspended_even_if_the_room_record_is_deleted() {
    use cleanroom_policy::MessageType;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    governance(&room, "publisher", MessageType::Suspend, true).await;
    // A hostile operator deletes the room's record of the suspension.
    std::fs::remove_file(room.room.join(cleanroom_formats::load::GOVERNANCE_FILE)).unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::KeyRefused { kind: RefusalKind::Suspended, reason, .. } if reason.contains("suspended by `publisher`")),
        "{err}"
    );
    room.assert_refused(Step::KeyRequest);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_suspending_member_lifts_its_suspension() {
    use cleanroom_policy::MessageType;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    governance(&room, "advertiser", MessageType::Suspend, true).await;
    // The publisher's resume does not overrule the advertiser.
    governance(&room, "publisher", MessageType::Resume, true).await;
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::Suspended { .. })),
        "{err}"
    );
    // The advertiser resumes: the next run starts and gets its keys.
    governance(&room, "advertiser", MessageType::Resume, true).await;
    room.run().await.expect("the run after resume succeeds");
    assert_eq!(room.outputs().len(), 1);
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_rejects_a_suspension_signed_by_a_non_member() {
    use cleanroom_policy::MessageType;
    use cleanroom_policy::message::SignedMessage;
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let outsider = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let forged = SignedMessage::sign(
        &outsider,
        MessageType::Suspend,
        room.digest,
        cleanroom_formats::clock::now_unix(),
        b"{\"reason\":\"\"}".to_vec(),
    );
    let b = &room.brokers[0];
    let err = cleanroom_cli::broker_client::send_governance(
        &b.url,
        b.spki_sha256.as_deref(),
        &forged.to_base64(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, GovernanceError::GovernanceRefused { reason, .. } if reason.contains("not the key of any member")),
        "{err}"
    );
    // Nothing was recorded: the room runs.
    room.run()
        .await
        .expect("the forged suspension has no effect");
    room.stop().await;
}

/// I5: a copy of the log cut before a later run still verifies on its own (it is a prefix
/// that ends in a checkpoint), but every output carries the log's head when it was sealed,
/// and a log without that entry fails against the anchor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_cut_before_an_outputs_anchor_is_detected() {
    use cleanroom_verify::audit::{AuditError, verify_bytes, verify_with_anchors};
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    room.run().await.unwrap();
    let log_path = room.room.join("audit.jsonl");
    let after_first = std::fs::read(&log_path).unwrap();
    let second = room.run().await.unwrap();
    let full = std::fs::read(&log_path).unwrap();

    let sk = cleanroom_formats::keys::encryption_key(
        &common::member_dir(room.root(), "advertiser").join("keys/advertiser.enc.key"),
    )
    .unwrap();
    let sealed = std::fs::read(&second.outputs[0]).unwrap();
    let header = cleanroom_formats::envelope::open(&sealed, "advertiser", &sk)
        .unwrap()
        .header;
    let anchor = [(header.audit_seq, header.audit_hash.clone())];
    // I6: the sealed header itself says the run's attestation was simulated.
    assert!(
        header.insecure,
        "a sim run's output must be marked insecure"
    );
    // The anchor is the entry just before the output's own `output` entry.
    let entries = room.audit();
    assert_eq!(entries[header.audit_seq as usize].hash, header.audit_hash);
    assert_eq!(entries[header.audit_seq as usize + 1].event, Step::Output);

    verify_with_anchors(&full, &anchor).expect("the whole log holds the anchor");
    // The operator hands out the log as it was after the first run.
    verify_bytes(&after_first).expect("a cut log verifies on its own");
    let err = verify_with_anchors(&after_first, &anchor).unwrap_err();
    assert!(
        matches!(&err, AuditError::AnchorMissing { seq, .. } if *seq == header.audit_seq),
        "{err}"
    );
    room.stop().await;
}

/// The governance route is open to anyone (the signature is the authentication): junk is
/// refused, and only a bounded number of refusals per minute reach the broker's event table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_junk_flood_is_refused_and_its_recording_bounded() {
    use cleanroom_kbs::server::MAX_RECORDED_GOVERNANCE_REFUSALS_PER_MINUTE as MAX;
    let room = Room::new(Spec::default()).await;
    let b = &room.brokers[0];
    for i in 0..(MAX + 40) {
        let err = cleanroom_cli::broker_client::send_governance(
            &b.url,
            b.spki_sha256.as_deref(),
            &format!("junk{i}"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, GovernanceError::GovernanceRefused { .. }),
            "{err}"
        );
    }
    let recorded = room
        .broker_events("publisher")
        .iter()
        .filter(|e| e.kind == EventKind::Governance && e.decision == EventDecision::Refused)
        .count();
    assert_eq!(recorded, MAX as usize);
    room.stop().await;
}

/// I5 at the brokers: every key request carries the room's audit head, bound by the
/// evidence; a broker that has seen a later head for the contract refuses a host whose log
/// was rolled back (cut to a prefix) or replaced (deleted and restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_refuse_a_room_whose_audit_log_was_rolled_back() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    room.run().await.unwrap();
    let log = room.room.join("audit.jsonl");
    let full = std::fs::read(&log).unwrap();
    room.run().await.expect("a second run, log intact");

    // Rolled back: the log as it was after the first run (a valid prefix on its own).
    std::fs::write(&log, &full).unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::KeyRefused {
                kind: RefusalKind::AuditRolledBack,
                ..
            }
        ),
        "{err}"
    );
    // Replaced: no log at all; the host starts a new one at entry 0.
    std::fs::remove_file(&log).unwrap();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::KeyRefused { reason, .. } if reason.contains("rolled back or replaced")),
        "{err}"
    );
    assert!(
        room.broker_events("publisher")
            .iter()
            .any(|e| e.kind == EventKind::Attest
                && e.decision == EventDecision::Refused
                && e.reason.contains("audit log")),
        "the broker records the refusal"
    );
    room.stop().await;
}

/// Issue 10: what a module releases beside tables is capped by the contract: an artifact over
/// `outputs.max_artifact_bytes`, or more metrics than `outputs.max_metrics`, refuses the run
/// and nothing is sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_artifact_and_metric_caps_of_the_contract_are_enforced() {
    for cap in ["max_artifact_bytes = 16", "max_metrics = 1"] {
        let spec = Spec {
            edit_contract: Box::new(move |t| {
                t.replacen(
                    "model_recipients = [\"advertiser\"]\n",
                    &format!("model_recipients = [\"advertiser\"]\n{cap}\n"),
                    1,
                )
            }),
            ..Spec::default()
        };
        let room = Room::new(spec).await;
        training_workload(&room, |b| b, "artifact_recipients = [\"advertiser\"]\n");
        let err = room.run().await.unwrap_err();
        match cap {
            "max_artifact_bytes = 16" => assert!(
                matches!(
                    &err,
                    RoomError::Guard(GuardRefusal::ArtifactTooLarge { max: 16 })
                ),
                "{err}"
            ),
            _ => assert!(
                matches!(
                    &err,
                    RoomError::Guard(GuardRefusal::TooManyMetrics { max: 1 })
                ),
                "{err}"
            ),
        }
        room.assert_refused(Step::Guard);
        room.stop().await;
    }
}

/// The demo's data with a timestamp (seconds, no zone) in the publisher's Parquet dataset and
/// a timestamp (milliseconds, UTC), a date and a decimal in the advertiser's CSV dataset, as
/// their owners would write them.
fn typed_demo_data() -> (String, String) {
    use chrono::DateTime;
    let (imp, conv) = cleanroom_cli::demo::generate(5_000, 7);
    let at = |secs: &str| DateTime::from_timestamp(secs.parse().unwrap(), 0).unwrap();
    let mut imp_out = String::new();
    for (i, line) in imp.lines().enumerate() {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        if i > 0 {
            f[2] = at(&f[2]).format("%Y-%m-%dT%H:%M:%S").to_string();
        }
        imp_out.push_str(&f.join(","));
        imp_out.push('\n');
    }
    let mut conv_out = String::from("user_id_hash,ts,day,value,order_id\n");
    for (i, line) in conv.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let t = at(f[1]) + chrono::TimeDelta::milliseconds((i % 1000) as i64);
        conv_out.push_str(&format!(
            "{},{},{},{},{}\n",
            f[0],
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            t.format("%Y-%m-%d"),
            f[2],
            f[3]
        ));
    }
    (imp_out, conv_out)
}

const TYPED_SQL: &str = "WITH exposed AS (
    SELECT campaign, user_id_hash FROM impressions
    WHERE ts >= TIMESTAMP '2026-01-03 00:00:00'
    GROUP BY campaign, user_id_hash
), converted AS (
    SELECT user_id_hash, COUNT(*) AS conversions, SUM(value) AS value
    FROM conversions
    WHERE day >= DATE '2026-01-02' AND ts < TIMESTAMP '2026-01-28T00:00:00Z'
    GROUP BY user_id_hash
)
SELECT e.campaign,
       COUNT(*) AS reach,
       COUNT(c.user_id_hash) AS converters,
       SUM(c.conversions) AS conversions,
       SUM(c.value) AS conversion_value
FROM exposed e LEFT JOIN converted c ON e.user_id_hash = c.user_id_hash
GROUP BY e.campaign
ORDER BY e.campaign";

/// Dates, timestamps (two units, with and without zone) and decimals sealed from CSV (one
/// dataset as Parquet, one as sealed CSV) are joined, filtered and summed in the room, and
/// the output is what DataFusion computes on the plaintext, with its own CSV reader, minus
/// the groups the guard drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_timestamps_and_decimals_sealed_from_csv_give_datafusions_answer() {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::prelude::{CsvReadOptions, SessionContext};
    let (imp, conv) = typed_demo_data();
    let room = Room::new(Spec {
        impressions_csv: imp.clone(),
        conversions_csv: conv.clone(),
        sql: TYPED_SQL.into(),
        edit_contract: Box::new(|t| {
            t.replacen(
                r#"{ name = "ts", type = "int64" }"#,
                r#"{ name = "ts", type = "timestamp(s)" }"#,
                1,
            )
            .replacen(
                r#"{ name = "ts", type = "int64" }"#,
                r#"{ name = "ts", type = "timestamp(ms, UTC)" },
  { name = "day", type = "date" }"#,
                1,
            )
            .replace(
                r#"{ name = "value", type = "float64" }"#,
                r#"{ name = "value", type = "decimal(12,2)" }"#,
            )
            .replace(
                r#"allowed_fields = ["user_id_hash", "ts", "value"]"#,
                r#"allowed_fields = ["user_id_hash", "ts", "day", "value"]"#,
            )
            .replace(
                r#"columns = { metrics = ["value"], filters = ["ts"]"#,
                r#"columns = { metrics = ["value"], filters = ["ts", "day"]"#,
            )
        }),
        ..Spec::default()
    })
    .await;
    room.approve_all();
    let report = room.run().await.expect("run succeeds");
    assert_eq!(
        report.input_rows,
        vec![("impressions".into(), 5000), ("conversions".into(), 1000)]
    );
    let released = room.open_output();

    // The same query on the plaintext, read by DataFusion's own CSV reader.
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let text = |f: &str| Field::new(f, DataType::Utf8, true);
    for (name, csv, fields) in [
        (
            "impressions",
            &imp,
            vec![
                text("user_id_hash"),
                text("campaign"),
                Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
                text("site"),
                text("ip_address"),
            ],
        ),
        (
            "conversions",
            &conv,
            vec![
                text("user_id_hash"),
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    true,
                ),
                Field::new("day", DataType::Date32, true),
                Field::new("value", DataType::Decimal128(12, 2), true),
                text("order_id"),
            ],
        ),
    ] {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, csv).unwrap();
        let schema = Schema::new(fields);
        ctx.register_csv(
            name,
            path.to_str().unwrap(),
            CsvReadOptions::new().schema(&schema),
        )
        .await
        .unwrap();
    }
    let batches = ctx.sql(TYPED_SQL).await.unwrap().collect().await.unwrap();
    let mut plain = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut plain);
        for b in &batches {
            w.write(b).unwrap();
        }
    }
    let plain = String::from_utf8(plain).unwrap();
    // The guard drops groups with fewer than 50 distinct users of either dataset.
    let mut expected: Vec<&str> = Vec::new();
    for (i, line) in plain.lines().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if i == 0 || (f[1].parse::<u64>().unwrap() >= 50 && f[2].parse::<u64>().unwrap() >= 50) {
            expected.push(line);
        }
    }
    assert!(expected.len() >= 4, "{plain}");
    assert!(
        expected[1..]
            .iter()
            .all(|l| l.split(',').nth(4).unwrap().contains('.')),
        "the sums are decimals: {plain}"
    );
    assert_eq!(released.lines().collect::<Vec<_>>(), expected, "{plain}");
    room.stop().await;
}

/// The operator rewrites `dataset`'s sealed file with an older version its owner sealed
/// under the same key, after the room checked the registered version's identity and before the
/// query reads it (the room paused at `inputs-loaded`). Returns the room, the reason the run
/// was refused with at its query step and the room's exit status.
async fn swapped_during_the_run(
    dataset: &str,
    owner: &str,
    location: &str,
) -> (Room, String, Option<i32>) {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let d = common::member_dir(room.root(), owner);
    let keys =
        cleanroom_cli::sealing::read_key_for(&d.join(format!("{dataset}.key")), dataset).unwrap();
    let (imp, conv) = cleanroom_cli::demo::generate(5_000, 99);
    let plain = room.root().join("older.csv");
    std::fs::write(&plain, if dataset == "impressions" { imp } else { conv }).unwrap();
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let sealed = cleanroom_cli::sealing::seal_to_bytes(
        &parsed,
        &room.contract,
        dataset,
        &plain,
        Some(keys),
        4096,
    )
    .unwrap();
    let older_path = room.root().join("older.sealed");
    std::fs::write(&older_path, &sealed.bytes).unwrap();

    let gate = room.root().join("gate");
    let mut child = cleanroom_cli::processes::room_command(&room.config())
        .unwrap()
        .env("CLEANROOM_PAUSE", cleanroom_room::failpoint::INPUTS_LOADED)
        .env("CLEANROOM_PAUSE_UNTIL", &gate)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until_paused(&gate, "the run never loaded its inputs");
    // Rewritten in place (the same inode: what the room opened at registration), the
    // strongest form of the swap.
    std::fs::write(
        room.room.join(location),
        std::fs::read(&older_path).unwrap(),
    )
    .unwrap();
    std::fs::write(&gate, b"").unwrap();
    let status = child.wait().unwrap().code();
    let reason = room.assert_refused(Step::Query);
    (room, reason, status)
}

/// I2, Parquet scanned in place: the room reads the footer it pinned at registration, so
/// the older file's pages do not authenticate: refused naming the dataset, nothing released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_swapped_for_an_older_version_during_the_run_is_refused() {
    let (room, reason, status) = swapped_during_the_run("impressions", "publisher", IMP).await;
    let expected = RoomError::from(FormatError::DatasetUnreadable {
        dataset: "impressions".into(),
        format: "parquet",
        what: cleanroom_room::engine::PAGE_UNREADABLE.into(),
    });
    assert_eq!(reason, expected.to_string());
    assert_eq!(status, Some(i32::from(expected.class().exit_code())));
    room.stop().await;
}

/// I2, sealed CSV streamed into the scan: the room decrypts with the header it pinned at
/// registration (every segment's AAD), so the older sealing's first segment fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_csv_swapped_for_an_older_version_during_the_run_is_refused() {
    let (room, reason, status) = swapped_during_the_run("conversions", "advertiser", CONV).await;
    let expected = RoomError::from(FormatError::Sealed {
        path: room.room.join(CONV).display().to_string(),
        source: StreamError::SegmentAuthFailed { index: 0 },
    });
    assert_eq!(reason, expected.to_string());
    assert_eq!(status, Some(i32::from(expected.class().exit_code())));
    room.stop().await;
}

/// Keys never in a plan: a Parquet input registered for scanning in place names its key
/// only through the run's key store, so no plan display, `EXPLAIN VERBOSE` (in the session a
/// module's `query` import runs in), table option or engine debug output holds the key, in
/// hex, base64 or raw bytes; and an `EXPLAIN` workload is refused without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plan_explain_or_error_carries_a_dataset_key() {
    use base64::Engine as _;
    let room = Room::new(Spec::default()).await;
    let d = common::member_dir(room.root(), "publisher");
    let keys =
        cleanroom_cli::sealing::read_key_for(&d.join("impressions.key"), "impressions").unwrap();
    let key = keys.key.key_bytes().to_vec();
    let forms = [
        hex::encode(&key),
        hex::encode_upper(&key),
        base64::engine::general_purpose::STANDARD.encode(&key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key),
        String::from_utf8_lossy(&key).into_owned(),
    ];
    let holds_key = |text: &str| forms.iter().any(|f| text.contains(f.as_str()));

    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let ds = parsed.dataset("impressions").unwrap();
    let mut engine = cleanroom_room::engine::Engine::new(1 << 30).unwrap();
    let data = cleanroom_formats::fsutil::Root::open(&room.room).unwrap();
    engine
        .register_parquet(ds, &keys.key, &data, IMP)
        .await
        .unwrap();
    assert!(!holds_key(&format!("{engine:?}")));
    let ctx = engine.module_context(1 << 30).unwrap();
    let mut seen = String::new();
    for sql in [
        "EXPLAIN VERBOSE SELECT campaign, COUNT(*) FROM impressions WHERE ts > 5 GROUP BY campaign",
        "EXPLAIN ANALYZE SELECT campaign, COUNT(*) FROM impressions GROUP BY campaign",
    ] {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        seen.push_str(&cleanroom_room::engine::pretty(&batches));
    }
    assert!(
        seen.contains("impressions"),
        "the plans were displayed: {seen}"
    );
    let table = ctx.table_provider("impressions").await.unwrap();
    seen.push_str(&format!("{table:?}"));
    seen.push_str(&format!("{:?}", ctx.state().table_options()));
    seen.push_str(&format!("{:?}", ctx.state().config_options()));
    assert!(
        !holds_key(&seen),
        "a key appears in a plan or option display"
    );

    // The same statement as a released workload is refused, without the key.
    let room = Room::new(Spec {
        sql: "EXPLAIN VERBOSE SELECT campaign, COUNT(*) AS n FROM impressions GROUP BY campaign"
            .into(),
        ..Spec::default()
    })
    .await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    let d = common::member_dir(room.root(), "publisher");
    let keys =
        cleanroom_cli::sealing::read_key_for(&d.join("impressions.key"), "impressions").unwrap();
    let key = keys.key.key_bytes().to_vec();
    assert!(
        matches!(&err, RoomError::Query(QueryRefusal::Rule { violation: cleanroom_room::error::RuleViolation::Unsupported { .. }, node }) if node == "Explain"),
        "{err:?}"
    );
    let audit = std::fs::read_to_string(room.room.join("audit.jsonl")).unwrap();
    for text in [format!("{err} {err:?}"), audit] {
        assert!(!text.contains(&hex::encode(&key)));
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(&key)));
    }
    room.stop().await;
}

/// Spilling is off (no plaintext on disk), so a query that needs more memory than the run's
/// pool stops with a refusal naming the limit, not a crash, and nothing is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_needing_more_than_the_memory_pool_is_refused_naming_the_limit() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let mut cfg = room.config();
    cfg.memory_limit = 64 << 10;
    let err = cleanroom_room::run::run(&cfg).await.unwrap_err();
    assert!(
        matches!(err, RoomError::MemoryLimitReached { limit_bytes } if limit_bytes == 64 << 10),
        "{err:?}"
    );
    room.assert_refused(Step::Query);
    room.stop().await;
}

/// Issue 12, acceptance 4: an owner who already writes Parquet Modular Encryption with
/// PyArrow's standard API (CryptoFactory, internal key material, parquet-mr local wrapping)
/// imports its master key (`dataset import-master-key`), registers it and the file's
/// identity at its broker, and the room reads the file as written: the output equals the
/// same data sealed by Cleanroom. One flipped byte in the footer refuses it before the
/// query; one in a page the query reads refuses it at the query; the withheld column stays
/// under another master key the room never has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_file_written_by_pyarrow_is_read_as_written_and_a_flipped_byte_refuses_it() {
    if !common::python_has(&["pyarrow", "cryptography"]) {
        return;
    }
    let reference = Room::new(Spec::default()).await;
    reference.approve_all();
    reference.run().await.expect("the reference run succeeds");
    let want = reference.open_output();
    reference.stop().await;

    let room = Room::new(Spec {
        edit_contract: Box::new(|t| {
            t.replace(
                r#"resource = "publisher/dataset/impressions" }"#,
                r#"resource = "publisher/dataset/impressions", master_key_id = "publisher-master" }"#,
            )
        }),
        ..Spec::default()
    })
    .await;
    let d = common::member_dir(room.root(), "publisher");
    let csv = d.join("impressions-plain.csv");
    std::fs::write(&csv, cleanroom_cli::demo::generate(5_000, 7).0).unwrap();
    let master: [u8; 32] = rand::random();
    let other: [u8; 32] = rand::random();
    let sealed = room.room.join(IMP);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/pyarrow_pme.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&csv)
        .arg(&sealed)
        .arg("user_id_hash=string,campaign=string,ts=int64,site=string,ip_address=string")
        .arg("publisher-master")
        .arg(hex::encode(master))
        .arg("user_id_hash,campaign,ts,site")
        .arg("publisher-private")
        .arg(hex::encode(other))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master_file = d.join("impressions.master-key");
    std::fs::write(&master_file, hex::encode(master)).unwrap();
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let key_file = d.join("impressions.key");
    std::fs::remove_file(&key_file).unwrap();
    cleanroom_cli::sealing::import_master_key(
        &parsed,
        &room.contract,
        "impressions",
        &master_file,
        &key_file,
    )
    .unwrap();
    let store =
        cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key")).unwrap();
    cleanroom_kbs::commands::put(
        &store,
        &room.contract,
        &room.sigs,
        "impressions",
        &key_file,
        &sealed,
    )
    .unwrap();
    room.approve_all();
    room.run().await.expect("the room reads PyArrow's file");
    assert_eq!(room.open_output(), want);

    let good = std::fs::read(&sealed).unwrap();
    for (at, step) in [(good.len() - 40, Step::Decrypt), (100, Step::Query)] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&sealed, &bad).unwrap();
        let err = room.run().await.unwrap_err();
        assert!(
            matches!(&err, RoomError::Format(FormatError::DatasetUnreadable { dataset, format: "parquet", .. }) if dataset == "impressions"),
            "{err:?}"
        );
        let entries = room.audit();
        let refused = entries
            .iter()
            .rev()
            .find(|e| e.decision == cleanroom_formats::audit::Decision::Refused)
            .unwrap();
        assert_eq!(refused.event, step, "flipped at byte {at}");
    }
    assert_eq!(
        room.outputs().len(),
        1,
        "only the first run released anything"
    );
    room.stop().await;
}
