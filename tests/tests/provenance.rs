//! What outputs and logs prove, for recipients and auditors (issue 9, items 2, 7, 9, 12, 15):
//! a module's names stay inside the sealed content; an output is the attested run's only if
//! the key bound in that run's evidence signed it; an audit checkpoint counts only if its key
//! is the one its run's evidence binds; `attest verify` recomputes the host-key binding; and
//! an output opens with standard Python libraries following docs/formats.md alone.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::common::{Room, Spec, member_dir};
use cleanroom_attest::{AttestError, EvidenceBundle};
use cleanroom_formats::audit::{Entry, Step, ZERO};
use cleanroom_formats::envelope::{self, ContentHeader, ContentKind, OutputHeader};
use cleanroom_verify::VerifyError;
use cleanroom_verify::audit::{AuditError, verify_against_evidence, verify_bytes};
use cleanroom_verify::evidence::{EvidenceError, verify_host_evidence};
use cleanroom_verify::output::{OutputError, open_verified};
use p384::ecdsa::SigningKey;
use p384::ecdsa::signature::Signer;

/// Run `cleanroom ARGS...` in-process; the error, if any, as the CLI would see it.
fn cleanroom(args: &[&str]) -> anyhow::Result<ExitCode> {
    let argv: Vec<&str> = std::iter::once("cleanroom")
        .chain(args.iter().copied())
        .collect();
    let cli = <cleanroom_cli::cli::Cli as clap::Parser>::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
    cleanroom_cli::cli::dispatch(&cli)
}

fn verify_error(e: &anyhow::Error) -> &VerifyError {
    e.downcast_ref::<VerifyError>()
        .unwrap_or_else(|| panic!("not a VerifyError: {e:#}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn now() -> u64 {
    cleanroom_formats::clock::now_unix()
}

fn contract(room: &Room) -> cleanroom_policy::Contract {
    cleanroom_formats::load::load_signed_contract(&room.contract, &room.sigs)
        .unwrap()
        .0
        .contract()
        .clone()
}

fn evidence_path(room: &Room, run_id: &str) -> PathBuf {
    room.room.join(format!("evidence/{run_id}.json"))
}

fn bundle(room: &Room, run_id: &str) -> EvidenceBundle {
    serde_json::from_slice(&std::fs::read(evidence_path(room, run_id)).unwrap()).unwrap()
}

fn enc_key(room: &Room, member: &str) -> PathBuf {
    member_dir(room.root(), member).join(format!("keys/{member}.enc.key"))
}

fn enc_secret(room: &Room, member: &str) -> [u8; 32] {
    *cleanroom_formats::keys::encryption_key(&enc_key(room, member)).unwrap()
}

// ---- Item 2: nothing a module chose outside the sealed content ----

const MARKER: &str = "zqxleakmarker7f3e";

/// An Arrow IPC stream: one row, columns `MARKER` and `n` (the workload's count column).
fn marker_table_ipc() -> Vec<u8> {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use sha2::Digest;
    use std::sync::Arc;
    // One row for a real privacy unit of the inputs (the demo data's first user), so that
    // the host's guard accepts the table and groups it (one unit: dropped, 0 rows).
    let unit = hex::encode(&sha2::Sha256::digest("demo-user-0")[..12]);
    let schema = Arc::new(Schema::new(vec![
        Field::new(MARKER, DataType::Int64, false),
        Field::new("user_id_hash", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec![unit])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

/// A training component, in the component text format, that names a table, a column, a
/// metric and an artifact `MARKER` (a module choosing its names to carry data).
fn marker_module() -> Vec<u8> {
    let ipc = marker_table_ipc();
    let escaped: String = ipc.iter().map(|b| format!("\\{b:02x}")).collect();
    let n = MARKER.len();
    let wat = format!(
        r#"(component
  (import "cleanroom:workload/output@0.1.0" (instance $output
    (export "write-batches" (func (param "table" string) (param "batches" (list u8))))
    (export "write-artifact" (func (param "name" string) (param "bytes" (list u8))))
    (export "metric" (func (param "name" string) (param "value" f64)))
  ))
  (core module $Mem (memory (export "memory") 2))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias export $output "write-batches" (func $wb_f))
  (alias export $output "write-artifact" (func $wa_f))
  (alias export $output "metric" (func $metric_f))
  (core func $wb (canon lower (func $wb_f) (memory $memory)))
  (core func $wa (canon lower (func $wa_f) (memory $memory)))
  (core func $metric (canon lower (func $metric_f) (memory $memory)))
  (core module $Main
    (import "env" "memory" (memory 2))
    (import "env" "write-batches" (func $wb (param i32 i32 i32 i32)))
    (import "env" "write-artifact" (func $wa (param i32 i32 i32 i32)))
    (import "env" "metric" (func $metric (param i32 i32 f64)))
    (data (i32.const 16) "{MARKER}")
    (data (i32.const 4096) "{escaped}")
    (global $heap (mut i32) (i32.const 65536))
    (func (export "train") (param i32 i32) (result i32)
      (call $wb (i32.const 16) (i32.const {n}) (i32.const 4096) (i32.const {ipc_len}))
      (call $wa (i32.const 16) (i32.const {n}) (i32.const 16) (i32.const {n}))
      (call $metric (i32.const 16) (i32.const {n}) (f64.const 1))
      (i32.store8 (i32.const 64) (i32.const 0))
      (i32.const 64))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (local.get $p))
  )
  (core instance $env
    (export "memory" (memory $memory))
    (export "write-batches" (func $wb))
    (export "write-artifact" (func $wa))
    (export "metric" (func $metric)))
  (core instance $main (instantiate $Main (with "env" (instance $env))))
  (alias core export $main "train" (core func $train_core))
  (alias core export $main "realloc" (core func $realloc))
  (func $train (param "params" string) (result (result (error string)))
    (canon lift (core func $train_core) (memory $memory) (realloc $realloc)))
  (export "train" (func $train))
)"#,
        ipc_len = ipc.len()
    );
    wat::parse_str(&wat).unwrap()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_header_reveals_nothing_a_module_chose() {
    let room = Room::new(Spec::default()).await;
    let bytes = marker_module();
    let digest = cleanroom_room::sandbox::digest_hex(&bytes);
    std::fs::create_dir_all(room.room.join("modules")).unwrap();
    std::fs::write(room.room.join(format!("modules/{digest}.wasm")), &bytes).unwrap();
    std::fs::write(
        &room.workload,
        format!(
            "name = \"names\"\nkind = \"training\"\ninputs = [\"impressions\"]\nmodule_digest = \"{digest}\"\n\n[output]\nrecipients = [\"advertiser\"]\nartifact_recipients = [\"advertiser\"]\n\n[guards]\nunit_column = \"user_id_hash\"\n"
        ),
    )
    .unwrap();
    room.approve_all();
    let report = room.run().await.expect("the module run succeeds");
    assert_eq!(report.outputs.len(), 3, "a table, metrics and an artifact");

    let contract = contract(&room);
    let evidence = bundle(&room, &report.run_id);
    let sk = enc_secret(&room, "advertiser");
    let mut inner = Vec::new();
    for (i, path) in report.outputs.iter().enumerate() {
        // File names: the run id and the host's index only.
        let file_name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(file_name, format!("{}-{i}.cro", report.run_id));
        let file = std::fs::read(path).unwrap();
        // Nowhere in the file: not in the plaintext header, not in the recipients.
        assert!(!contains(&file, MARKER), "{file_name} carries the marker");
        let (header, _) = envelope::inspect(&file).unwrap();
        assert!(!contains(&serde_json::to_vec(&header).unwrap(), MARKER));
        assert_eq!(header.index, i as u32);
        // Inside the sealed content, where the recipient reads it.
        let v = open_verified(&file, "advertiser", &sk, &contract, &evidence, now()).unwrap();
        inner.push(v.opened.content);
    }
    let find = |kind: ContentKind| inner.iter().find(|c| c.kind == kind).unwrap();
    let table = find(ContentKind::Table);
    assert_eq!(
        (table.name.as_str(), table.columns.clone(), table.rows),
        (MARKER, vec![MARKER.to_string(), "units".to_string()], 0)
    );
    assert_eq!(find(ContentKind::Artifact).name, MARKER);
    assert_eq!(find(ContentKind::Metrics).kind, ContentKind::Metrics);

    // Not in the audit log (subjects name outputs by index), not in any file name.
    let log = std::fs::read(room.room.join("audit.jsonl")).unwrap();
    assert!(!contains(&log, MARKER), "the audit log carries the marker");
    let outputs: Vec<Entry> = room
        .audit()
        .into_iter()
        .filter(|e| e.event == Step::Output)
        .collect();
    assert_eq!(outputs.len(), 3);
    for (i, e) in outputs.iter().enumerate() {
        assert_eq!(e.subject, format!("outputs/{}-{i}.cro", report.run_id));
    }
    for dir in ["outputs", "evidence"] {
        for f in std::fs::read_dir(room.room.join(dir)).unwrap() {
            let f = f.unwrap().path();
            assert!(!contains(s(&f).as_bytes(), MARKER), "{}", f.display());
            assert!(
                !contains(&std::fs::read(&f).unwrap(), MARKER),
                "{}",
                f.display()
            );
        }
    }
    room.stop().await;
}

// ---- Item 9: an output forged with a recipient's public key ----

/// What a forger knows: the contract (recipients' public keys) and a genuine output's
/// plaintext header. It seals its own content to the advertiser and signs it.
fn forge(genuine: &OutputHeader, advertiser_pk: [u8; 32], claim_key: Option<&str>) -> Vec<u8> {
    let forger = SigningKey::random(&mut rand::rngs::OsRng);
    let header = OutputHeader {
        host_key: envelope::host_key_hex(forger.verifying_key()),
        ..genuine.clone()
    };
    let content = ContentHeader {
        kind: ContentKind::Result,
        name: String::new(),
        workload: "campaign-reach-and-conversion".into(),
        format: "csv".into(),
        columns: vec!["campaign".into(), "reach".into()],
        rows: 1,
    };
    let file = envelope::seal(
        &header,
        &[("advertiser".into(), advertiser_pk)],
        &content,
        b"campaign,reach\nspring-sale,999999\n",
        &forger,
    )
    .unwrap();
    match claim_key {
        None => file,
        // Claim the attested key instead (same length): the signature no longer verifies.
        Some(k) => {
            let ours = header.host_key.as_bytes();
            let at = file.windows(ours.len()).position(|w| w == ours).unwrap();
            let mut f = file.clone();
            f[at..at + ours.len()].copy_from_slice(k.as_bytes());
            f
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_forged_with_a_recipients_public_key_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let report = room.run().await.unwrap();
    let contract = contract(&room);
    let evidence = bundle(&room, &report.run_id);
    let sk = enc_secret(&room, "advertiser");
    let genuine = std::fs::read(&report.outputs[0]).unwrap();
    let v = open_verified(&genuine, "advertiser", &sk, &contract, &evidence, now())
        .expect("the genuine output is the attested run's");
    assert_eq!(v.opened.header.host_key, v.host.host_key_hex);
    assert_eq!(
        Some(v.host.host_key_hex.as_str()),
        evidence.host_public_key.as_deref()
    );

    let advertiser_pk = cleanroom_policy::message::x25519_public_from_b64(
        contract
            .member("advertiser")
            .unwrap()
            .encryption_key
            .get_ref(),
    )
    .unwrap();
    let (header, _) = envelope::inspect(&genuine).unwrap();
    let forged = forge(&header, advertiser_pk, None);
    // HPKE base mode alone cannot tell: the forgery opens.
    let opened = envelope::open(&forged, "advertiser", &sk).unwrap();
    assert_eq!(&opened.data[..], b"campaign,reach\nspring-sale,999999\n");
    // Its signer is not the key the run's evidence binds.
    let err = open_verified(&forged, "advertiser", &sk, &contract, &evidence, now()).unwrap_err();
    assert!(
        matches!(&err, OutputError::SignerNotAttested { run, .. } if *run == report.run_id),
        "{err}"
    );
    // Claiming the attested key, it fails the signature.
    let claimed = forge(&header, advertiser_pk, Some(&v.host.host_key_hex));
    let err = open_verified(&claimed, "advertiser", &sk, &contract, &evidence, now()).unwrap_err();
    assert!(
        matches!(
            &err,
            OutputError::Envelope(envelope::EnvelopeError::SignatureInvalid)
        ),
        "{err}"
    );

    // Through `cleanroom output open`, which finds ROOM/evidence/<run>.json itself.
    let path = room.room.join("outputs/forged.cro");
    std::fs::write(&path, &forged).unwrap();
    let key = enc_key(&room, "advertiser");
    let args = |p: &Path| {
        [
            "output",
            "open",
            "--in",
            s(p),
            "--name",
            "advertiser",
            "--key",
            s(&key),
            "--contract",
            s(&room.contract),
            "--out",
        ]
        .map(str::to_string)
    };
    let out = room.root().join("opened.csv");
    let run = |p: &Path| {
        let mut a: Vec<String> = args(p).to_vec();
        a.push(s(&out).to_string());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cleanroom(&a)
    };
    let err = run(&path).unwrap_err();
    assert!(
        matches!(
            verify_error(&err),
            VerifyError::OutputUnopenable {
                source: OutputError::SignerNotAttested { .. },
                ..
            }
        ),
        "{err:#}"
    );
    assert!(!out.exists(), "nothing of a forgery is written");
    assert_eq!(run(&report.outputs[0]).unwrap(), ExitCode::SUCCESS);
    room.stop().await;
}

// ---- Item 7: an audit log rewritten and re-signed by the operator ----

/// The operator's rewrite: `edit` every entry, recompute every hash and link, and re-sign
/// every checkpoint with a key of its own.
fn rewrite(log: &[u8], edit: impl Fn(&mut Entry)) -> Vec<u8> {
    let operator = SigningKey::random(&mut rand::rngs::OsRng);
    let mut prev = ZERO.to_string();
    let mut out = String::new();
    for line in std::str::from_utf8(log).unwrap().lines() {
        let mut e: Entry = serde_json::from_str(line).unwrap();
        edit(&mut e);
        e.prev = prev.clone();
        if e.event == Step::Checkpoint {
            let sig: p384::ecdsa::Signature = operator.sign(&e.checkpoint_message());
            e.host_key = Some(envelope::host_key_hex(operator.verifying_key()));
            e.signature = Some(hex::encode(sig.to_bytes()));
        }
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        out.push_str(&serde_json::to_string(&e).unwrap());
        out.push('\n');
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_re_signed_by_the_operator_is_refused() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let first = room.run().await.unwrap();
    // A run refused before it attested: its checkpoint has no evidence behind it.
    std::fs::rename(&room.approvals, room.root().join("approvals.bak")).unwrap();
    room.run().await.unwrap_err();
    std::fs::rename(room.root().join("approvals.bak"), &room.approvals).unwrap();
    let second = room.run().await.unwrap();

    let log_path = room.room.join("audit.jsonl");
    let log = std::fs::read(&log_path).unwrap();
    let contract = contract(&room);
    let runs: BTreeMap<String, _> = [&first.run_id, &second.run_id]
        .into_iter()
        .map(|r| {
            (
                r.clone(),
                verify_host_evidence(&bundle(&room, r), &contract, now()).unwrap(),
            )
        })
        .collect();
    let (summary, attested) = verify_against_evidence(&log, &[], &runs).unwrap();
    assert_eq!(
        (
            attested.checkpoints,
            attested.unattested,
            attested.uncovered_tail
        ),
        (2, 1, 0)
    );
    assert_eq!(attested.insecure, 2, "sim evidence is INSECURE");
    assert!(attested.runs_without_checkpoint.is_empty());

    // The operator removes the INSECURE marks and re-signs the whole log.
    let rewritten = rewrite(&log, |e| {
        if e.insecure.is_some() {
            e.insecure = Some(false);
            e.reason = "signed by the attested host identity key".into();
        }
    });
    let chain = verify_bytes(&rewritten).expect("chain and signatures alone do not notice");
    assert_eq!(
        (chain.entries, chain.insecure_checkpoints),
        (summary.entries, 0)
    );
    let first_checkpoint = |text: &[u8]| {
        std::str::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Entry>(l).unwrap())
            .find(|e| e.event == Step::Checkpoint)
            .unwrap()
            .seq
    };
    let err = verify_against_evidence(&rewritten, &[], &runs).unwrap_err();
    assert!(
        matches!(&err, AuditError::CheckpointKeyNotAttested { seq, run }
            if *seq == first_checkpoint(&log) && *run == first.run_id),
        "{err}"
    );
    // Renaming the runs as well: no checkpoint is tied to any evidence.
    let renamed = rewrite(&log, |e| {
        e.run = e.run.as_ref().map(|r| format!("{r}-x"));
    });
    let err = verify_against_evidence(&renamed, &[], &runs).unwrap_err();
    assert!(
        matches!(err, AuditError::NoAttestedCheckpoint { entries } if entries == summary.entries),
        "{err}"
    );

    // Through `cleanroom audit verify`: refused with the evidence, UNVERIFIED without it.
    std::fs::write(&log_path, &rewritten).unwrap();
    let evidence_dir = room.room.join("evidence");
    let with_evidence = [
        "audit",
        "verify",
        "--log",
        s(&log_path),
        "--evidence",
        s(&evidence_dir),
        "--contract",
        s(&room.contract),
    ];
    let err = cleanroom(&with_evidence).unwrap_err();
    assert!(
        matches!(
            verify_error(&err),
            VerifyError::AuditBroken {
                source: AuditError::CheckpointKeyNotAttested { .. },
                ..
            }
        ),
        "{err:#}"
    );
    assert_eq!(
        cleanroom(&["audit", "verify", "--log", s(&log_path)]).unwrap(),
        ExitCode::from(1),
        "without evidence: UNVERIFIED"
    );
    std::fs::write(&log_path, &log).unwrap();
    assert_eq!(cleanroom(&with_evidence).unwrap(), ExitCode::SUCCESS);
    room.stop().await;
}

// ---- Item 12: a bundle whose host key was swapped ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_with_swapped_host_key_fails_member_verification() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let report = room.run().await.unwrap();
    let genuine = evidence_path(&room, &report.run_id);
    let verify =
        |bundle: &Path| cleanroom(&["attest", "verify", s(bundle), "--policy", s(&room.contract)]);
    assert_eq!(verify(&genuine).unwrap(), ExitCode::SUCCESS);

    // The operator serves the genuine evidence with a key of its own.
    let mut swapped = bundle(&room, &report.run_id);
    let operator = SigningKey::random(&mut rand::rngs::OsRng);
    swapped.host_public_key = Some(envelope::host_key_hex(operator.verifying_key()));
    let path = room.root().join("swapped.json");
    std::fs::write(&path, serde_json::to_vec(&swapped).unwrap()).unwrap();
    let err = verify(&path).unwrap_err();
    assert!(
        matches!(
            verify_error(&err),
            VerifyError::Evidence {
                source: EvidenceError::Refused(AttestError::ReportDataMismatch { .. }),
                ..
            }
        ),
        "{err:#}"
    );
    // A bundle is verified against a contract, never against its own claims.
    let usage = <cleanroom_cli::cli::Cli as clap::Parser>::try_parse_from([
        "cleanroom",
        "attest",
        "verify",
        s(&genuine),
    ])
    .expect_err("BUNDLE.json without --policy is a usage error");
    assert_eq!(
        usage.kind(),
        clap::error::ErrorKind::MissingRequiredArgument,
        "{usage}"
    );
    room.stop().await;
}

// ---- Item 15: test vectors, opened by Rust and by Python following the doc ----

fn vectors_dir() -> PathBuf {
    cleanroom_cli::guest_build::source_root().join("tests/vectors/output")
}

/// The checked-in vector: `CLEANROOM_WRITE_VECTORS=1` writes a new one (fixed keys; HPKE
/// and the stream's nonce prefix are random, so the file differs each time).
#[test]
fn output_test_vectors_open_as_documented() {
    let dir = vectors_dir();
    if std::env::var_os("CLEANROOM_WRITE_VECTORS").is_some() {
        let signer = SigningKey::from_slice(&[0x42; 48]).unwrap();
        let recipient_sk = [0x24u8; 32];
        let recipient_pk = envelope::public_key(&recipient_sk).unwrap();
        let header = OutputHeader {
            contract_digest: "9c1c01dc3ac1445a500251fc34a15d3e75a849df09e8a3cde4bc6a43b7c2a7e9"
                .into(),
            workload_digest: "5f8e0bd5b2a0c4d0ad2e6cd6a7b1e1a1b3f5c0d6e7f8091a2b3c4d5e6f708192"
                .into(),
            run_id: "20260101T000000Z-0123456789ab".into(),
            index: 0,
            created_at: "2026-01-01T00:00:00Z".into(),
            insecure: true,
            audit_seq: 10,
            audit_hash: "1b4f0e9851971998e732078544c96b36c3d01cedf7caa332359d6f1d83567014".into(),
            host_key: envelope::host_key_hex(signer.verifying_key()),
        };
        let content = ContentHeader {
            kind: ContentKind::Result,
            name: String::new(),
            workload: "campaign-reach-and-conversion".into(),
            format: "csv".into(),
            columns: vec!["campaign".into(), "reach".into()],
            rows: 2,
        };
        let data = "campaign,reach\nspring-sale,1204\nloyalty,388\n";
        let file = envelope::seal(
            &header,
            &[("alice".into(), recipient_pk)],
            &content,
            data.as_bytes(),
            &signer,
        )
        .unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("output.cro"), file).unwrap();
        let vector = serde_json::json!({
            "description": "A Cleanroom output (docs/formats.md, Output envelope) sealed to recipient `alice`, signed by host_key. Open it with recipient_private_key (X25519, raw 32 bytes, hex); its content is content_header then data.",
            "recipient": "alice",
            "recipient_private_key": hex::encode(recipient_sk),
            "recipient_public_key": hex::encode(recipient_pk),
            "host_key": header.host_key,
            "header": header,
            "header_hash": hex::encode(envelope::header_hash(&header)),
            "content_header": content,
            "data": data,
        });
        std::fs::write(
            dir.join("vector.json"),
            serde_json::to_string_pretty(&vector).unwrap() + "\n",
        )
        .unwrap();
    }
    let vector: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vector.json")).unwrap()).unwrap();
    let file = std::fs::read(dir.join("output.cro")).unwrap();
    let sk: [u8; 32] = hex::decode(vector["recipient_private_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let opened = envelope::open(&file, vector["recipient"].as_str().unwrap(), &sk).unwrap();
    assert_eq!(
        serde_json::to_value(&opened.header).unwrap(),
        vector["header"]
    );
    assert_eq!(
        hex::encode(envelope::header_hash(&opened.header)),
        vector["header_hash"].as_str().unwrap()
    );
    assert_eq!(
        serde_json::to_value(&opened.content).unwrap(),
        vector["content_header"]
    );
    assert_eq!(
        &opened.data[..],
        vector["data"].as_str().unwrap().as_bytes()
    );
    let (_, key) = envelope::verify_signature(&file).unwrap();
    assert_eq!(
        envelope::host_key_hex(&key),
        vector["host_key"].as_str().unwrap()
    );
}

/// tests/python/open_output.py opens the vector with pyhpke and cryptography following
/// docs/formats.md alone, and checks the signature. Skipped (loudly) only on a machine whose
/// python3 lacks those packages; under CI (`CI` set) a missing package fails.
#[test]
fn output_opens_with_python_following_the_format_doc() {
    let root = cleanroom_cli::guest_build::source_root();
    if !common::python_has(&["pyhpke", "cryptography"]) {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/python/open_output.py"))
        .arg(vectors_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
