//! Seeds of the `cleanroom-room` targets (`fuzz/src/room.rs`):
//!
//! - `parquet_encrypted`: Parquet files as `cleanroom dataset seal` writes them
//!   (`cleanroom_formats::parquet::write_encrypted` / `encrypted_writer`, the fixed keys of
//!   `room.rs`: per-column keys with a withheld column, uniform encryption, two row groups,
//!   dictionary pages, no rows), as PME's key tools write them (parquet-rs with LKW1 key
//!   material, and PyArrow itself through `tests/python/pyarrow_pme.py` when `python3` has
//!   `pyarrow` and `cryptography`), and files the room must refuse (another dataset's AAD,
//!   another key, plaintext Parquet, a flipped footer byte, a cut file). Each reads back, as
//!   its dataset and no other, exactly the rows written (compared as CSV).
//! - `room_api`: request bodies of every signed route, signed by the contract's members at
//!   [`room::NOW`] (accepted), and refused ones of every kind the checks give; some as bare
//!   COSE_Sign1 bytes (the target wraps them in a body).
//!
//! Encryption draws nonces, data keys and `aad_file_unique` from the OS RNG, so the Parquet
//! seeds use [`kept_or`]: an existing seed that still reads as intended is kept.

use std::sync::Arc;

use arrow::array::RecordBatch;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_formats::keyfile::DatasetKeys;
use cleanroom_formats::pme::LocalWrapKeys;
use cleanroom_formats::stream::DataKey;
use cleanroom_formats::tabular::{allowed, contract_schema, parse_rows, to_csv};
use cleanroom_policy::contract::{DataFormat, Dataset};
use cleanroom_policy::governance::GovernancePayload;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::ProposalPayload;
use cleanroom_policy::request::{OutputFetchPayload, RunCancelPayload, RunRequestPayload};
use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload};

use crate::Corpus;
use crate::formats_seeds::kept_or;
use crate::room::{self, NOW};

fn dataset(name: &str) -> Dataset {
    room::signed_contract()
        .contract()
        .dataset(name)
        .unwrap()
        .clone()
}

/// The rows of `csv` as `dataset`'s contract schema (parsed as `cleanroom dataset seal`
/// parses a CSV input for a Parquet dataset).
fn rows(dataset_name: &str, csv: &str) -> Vec<RecordBatch> {
    let mut ds = dataset(dataset_name);
    ds.format = DataFormat::Csv;
    parse_rows(&ds, csv.as_bytes()).unwrap()
}

/// The CSV the room should read back: the allowed columns of `csv`'s rows.
fn expected_csv(dataset_name: &str, csv: &str) -> Vec<u8> {
    let ds = dataset(dataset_name);
    let schema = contract_schema(&ds);
    let idx: Vec<usize> = allowed(&ds)
        .iter()
        .map(|f| schema.index_of(f).unwrap())
        .collect();
    let view = Arc::new(schema.project(&idx).unwrap());
    let batches: Vec<_> = rows(dataset_name, csv)
        .iter()
        .map(|b| b.project(&idx).unwrap())
        .collect();
    to_csv(&view, &batches).unwrap()
}

/// Whether `file` reads through the room as `dataset` (and as no other) to exactly the
/// allowed columns of `csv`'s rows.
fn reads_as(dataset_name: &'static str, csv: &'static str) -> impl Fn(&[u8]) -> bool {
    let want = expected_csv(dataset_name, csv);
    move |file: &[u8]| {
        room::read_parquet(file, true).iter().all(|(d, r)| match r {
            Ok(r) if *d == dataset_name => r.csv.as_deref() == Some(&want[..]),
            Ok(_) => false,
            Err(_) => *d != dataset_name,
        })
    }
}

fn refused_by_all(file: &[u8]) -> bool {
    room::read_parquet(file, false)
        .iter()
        .all(|(_, r)| r.is_err())
}

const EVENTS: &str = "user_id,campaign,clicks,spend,converted,day,at,amount,email
u-0001,spring,3,12.5,true,2026-03-01,2026-03-01T12:00:00Z,123.45,a@example.com
u-0002,spring,,0.25,false,2026-03-02,2026-03-02T00:00:00.000001Z,-0.01,
u-0003,,9223372036854775807,-1e300,,1970-01-01,1969-12-31T23:59:59Z,9999999.99,c@example.com
,autumn,-1,,true,,,,d@example.com
";

const EVENTS_2: &str = "user_id,campaign,clicks,spend,converted,day,at,amount,email
u-0001,spring,1,1.0,true,2026-03-01,2026-03-01T12:00:00Z,1.00,a@example.com
u-0002,spring,2,2.0,false,2026-03-02,2026-03-01T12:00:01Z,2.00,b@example.com
u-0003,autumn,3,3.0,true,2026-03-03,2026-03-01T12:00:02Z,3.00,c@example.com
u-0004,autumn,4,4.0,false,2026-03-04,2026-03-01T12:00:03Z,4.00,d@example.com
u-0005,winter,5,5.0,true,2026-03-05,2026-03-01T12:00:04Z,5.00,e@example.com
u-0006,winter,6,6.0,false,2026-03-06,2026-03-01T12:00:05Z,6.00,f@example.com
";

const EVENTS_EMPTY: &str = "user_id,campaign,clicks,spend,converted,day,at,amount,email\n";

const CLICKS: &str = "user_id,n,b
u-0001,1,00ff
u-0002,-2147483648,
,2147483647,deadbeef
";

const EVENTS_PME: &str = "user_id_hash,campaign,ts,value,ip_address
9e3779b97f4a7c15,spring-0,1764547200,12.5,192.0.2.1
3c6ef372fe94f82a,spring-1,1764547260,0.99,192.0.2.2
daa66d2c7ddf743f,spring-2,1764547320,-3.0,192.0.2.3
";

/// 40 rows of three campaigns: dictionary-encoded pages.
fn events_dictionary() -> &'static str {
    static T: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut s = String::from(EVENTS_EMPTY);
        for i in 0..40 {
            s.push_str(&format!(
                "u-{:04},{},{},{}.5,{},2026-03-{:02},2026-03-01T00:00:{:02}Z,{}.00,u{}@example.com\n",
                i % 7,
                ["spring", "summer", "autumn"][i % 3],
                i,
                i,
                i % 2 == 0,
                1 + i % 28,
                i % 60,
                i,
                i
            ));
        }
        s
    })
}

/// A file as `cleanroom dataset seal` writes it for `dataset`, from `csv`, in row groups
/// of the given sizes (one per entry; none: a single row group).
fn sealed(keys: &DatasetKeys, dataset_name: &str, csv: &str, groups: &[usize]) -> Vec<u8> {
    let ds = dataset(dataset_name);
    let schema = Arc::new(contract_schema(&ds).as_ref().clone());
    let batches = rows(dataset_name, csv);
    if groups.is_empty() {
        return cleanroom_formats::parquet::write_encrypted(
            keys,
            &allowed(&ds),
            dataset_name,
            schema,
            batches,
        )
        .unwrap();
    }
    let all = &batches[0];
    let mut w = cleanroom_formats::parquet::encrypted_writer(
        Vec::new(),
        keys,
        &allowed(&ds),
        dataset_name,
        schema,
    )
    .unwrap();
    let mut at = 0;
    for n in groups {
        w.write(&all.slice(at, *n)).unwrap();
        w.flush().unwrap();
        at += n;
    }
    w.into_inner().unwrap()
}

/// A file as PME's key tools write it (what `pyarrow_pme.py` writes, by parquet-rs): fresh
/// data keys, LKW1 key material in the footer and each column, the footer and the allowed
/// columns under [`room::MASTER_KEY_ID`], the others under another master key; no AAD
/// prefix.
fn key_tools_file(csv: &str) -> Vec<u8> {
    use parquet::encryption::encrypt::FileEncryptionProperties;
    use parquet::file::properties::WriterProperties;
    let ds = dataset("events_pme");
    let schema = Arc::new(contract_schema(&ds).as_ref().clone());
    let master = LocalWrapKeys::new(room::MASTER_KEY_ID, &room::MASTER_KEY);
    let other = LocalWrapKeys::new(room::OTHER_MASTER_KEY_ID, &room::OTHER_MASTER_KEY);
    let fresh = || *DataKey::generate().key_bytes();
    let nonce = || {
        let k = DataKey::generate();
        let mut n = [0u8; 12];
        n.copy_from_slice(&k.key_bytes()[..12]);
        n
    };
    let footer = fresh();
    let mut enc = FileEncryptionProperties::builder(footer.to_vec())
        .with_footer_key_metadata(master.key_material(&footer, nonce(), true));
    let allowed = allowed(&ds);
    for f in &ds.schema {
        let name = f.name.get_ref();
        let dek = fresh();
        let material = if allowed.contains(name) {
            master.key_material(&dek, nonce(), false)
        } else {
            other.key_material(&dek, nonce(), false)
        };
        enc = enc.with_column_key_and_metadata(name, dek.to_vec(), material);
    }
    let props = WriterProperties::builder()
        .with_file_encryption_properties(enc.build().unwrap())
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    for b in rows("events_pme", csv) {
        w.write(&b).unwrap();
    }
    w.into_inner().unwrap()
}

/// The same file written by PyArrow (`tests/python/pyarrow_pme.py`), or `None` when
/// `python3` with `pyarrow` and `cryptography` is not there.
fn pyarrow_file(csv: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("cleanroom-seedgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let input = dir.join("events.csv");
    let out = dir.join("events.parquet");
    std::fs::write(&input, csv).ok()?;
    let script = crate::repo_dir().join("tests/python/pyarrow_pme.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(&input)
        .arg(&out)
        .arg("user_id_hash=string,campaign=string,ts=int64,value=float64,ip_address=string")
        .arg(room::MASTER_KEY_ID)
        .arg(hex::encode(room::MASTER_KEY))
        .arg("user_id_hash,campaign,ts,value")
        .arg(room::OTHER_MASTER_KEY_ID)
        .arg(hex::encode(room::OTHER_MASTER_KEY))
        .output()
        .ok()?;
    let file = std::fs::read(&out).ok();
    let _ = std::fs::remove_dir_all(&dir);
    if !status.status.success() {
        eprintln!(
            "pyarrow_pme.py failed (python3 with pyarrow and cryptography?): {}",
            String::from_utf8_lossy(&status.stderr)
        );
        return None;
    }
    file
}

fn parquet_seeds(corpus: &mut Corpus) {
    const T: &str = "parquet_encrypted";
    let keys = room::dataset_keys();
    let uniform = DatasetKeys {
        key: keys.key.clone(),
        withheld: None,
    };
    let add = |corpus: &mut Corpus,
               name: &str,
               valid: &dyn Fn(&[u8]) -> bool,
               make: &dyn Fn() -> Vec<u8>| {
        let file = kept_or(T, name, valid, make);
        corpus.add(T, name.to_string(), file);
    };
    add(
        corpus,
        "events-typed-4rows.parquet",
        &reads_as("events", EVENTS),
        &|| sealed(&keys, "events", EVENTS, &[]),
    );
    add(
        corpus,
        "events-two-row-groups-6rows.parquet",
        &reads_as("events", EVENTS_2),
        &|| sealed(&keys, "events", EVENTS_2, &[4, 2]),
    );
    add(
        corpus,
        "events-empty-0rows.parquet",
        &reads_as("events", EVENTS_EMPTY),
        &|| sealed(&keys, "events", EVENTS_EMPTY, &[]),
    );
    add(
        corpus,
        "events-dictionary-40rows.parquet",
        &reads_as("events", events_dictionary()),
        &|| sealed(&keys, "events", events_dictionary(), &[]),
    );
    add(
        corpus,
        "clicks-uniform-3rows.parquet",
        &reads_as("clicks", CLICKS),
        &|| sealed(&uniform, "clicks", CLICKS, &[]),
    );
    add(
        corpus,
        "events_pme-key-tools-3rows.parquet",
        &reads_as("events_pme", EVENTS_PME),
        &|| key_tools_file(EVENTS_PME),
    );
    // PyArrow's own file: kept when it still reads; written again only where PyArrow is.
    let name = "events_pme-pyarrow-3rows.parquet";
    let valid = reads_as("events_pme", EVENTS_PME);
    let path = crate::fuzz_dir()
        .join("corpus")
        .join(T)
        .join(format!("seed-{name}"));
    match std::fs::read(&path).ok().filter(|b| valid(b)) {
        Some(b) => corpus.add(T, name.to_string(), b),
        None => match pyarrow_file(EVENTS_PME) {
            Some(b) => {
                assert!(valid(&b), "PyArrow's file does not read as written");
                corpus.add(T, name.to_string(), b);
            }
            None => eprintln!("seed {T}/{name} not written: no PyArrow"),
        },
    }

    // Refused by every dataset.
    let other_key = DatasetKeys {
        key: DataKey::from_parts([0x11; 16], [0x12; 32]),
        withheld: Some(DataKey::from_parts([0x13; 16], [0x14; 32])),
    };
    add(
        corpus,
        "refused-another-dataset.parquet",
        &refused_by_all,
        &|| {
            let ds = dataset("events");
            let schema = Arc::new(contract_schema(&ds).as_ref().clone());
            cleanroom_formats::parquet::write_encrypted(
                &keys,
                &allowed(&ds),
                "impressions",
                schema,
                rows("events", EVENTS),
            )
            .unwrap()
        },
    );
    add(
        corpus,
        "refused-another-key.parquet",
        &refused_by_all,
        &|| sealed(&other_key, "events", EVENTS, &[]),
    );
    add(
        corpus,
        "refused-plaintext.parquet",
        &refused_by_all,
        &|| {
            let ds = dataset("clicks");
            let schema = Arc::new(contract_schema(&ds).as_ref().clone());
            let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
            for b in rows("clicks", CLICKS) {
                w.write(&b).unwrap();
            }
            w.into_inner().unwrap()
        },
    );
    let good = sealed(&keys, "events", EVENTS, &[]);
    add(
        corpus,
        "refused-flipped-footer.parquet",
        &refused_by_all,
        &|| {
            let mut b = good.clone();
            let at = b.len() - 40;
            b[at] ^= 1;
            b
        },
    );
    add(corpus, "refused-cut.parquet", &refused_by_all, &|| {
        let mut b = good.clone();
        b.drain(good.len() / 2..good.len() - 8);
        b
    });
}

// ------------------------------------------------------------------------ room_api

fn sign(member_seed: u8, t: MessageType, created_at: u64, payload: Vec<u8>) -> SignedMessage {
    let key = p384::ecdsa::SigningKey::from_slice(&[member_seed; 48]).unwrap();
    SignedMessage::sign(
        &key,
        t,
        room::signed_contract().digest().0,
        created_at,
        payload,
    )
}

const PUBLISHER: u8 = 1;
const ADVERTISER: u8 = 2;
const AUDITOR: u8 = 3;
const NOT_A_MEMBER: u8 = 9;

fn api_seeds(corpus: &mut Corpus) {
    const T: &str = "room_api";
    let s = room::stored();
    let digest = s.digest.clone();
    let nonce = |i: u8| format!("{:032x}", u128::from(i) * 0x0101_0101_0101_0101);
    let run = |n: String| {
        RunRequestPayload {
            workload_digest: digest.clone(),
            nonce: n,
        }
        .to_bytes()
    };
    let cancel = |id: &str, n: String| {
        RunCancelPayload {
            run: id.into(),
            nonce: n,
        }
        .to_bytes()
    };
    let fetch = |output: &str, n: String| {
        OutputFetchPayload {
            output: output.into(),
            nonce: n,
        }
        .to_bytes()
    };
    let approval = ApprovalPayload::for_workload(&s.workload);
    let expiring = ApprovalPayload {
        expires_at: Some(NOW + 86_400),
        max_runs: Some(3),
        ..approval.clone()
    };
    let proposal = ProposalPayload::new(room::WORKLOAD_TOML, "workload.toml", None).unwrap();
    let unknown_input = ProposalPayload::new(
        &room::WORKLOAD_TOML.replace("\"events\", ", "\"impressions\", "),
        "workload.toml",
        None,
    )
    .unwrap();
    let w = MessageType::WorkloadPropose;
    let messages: Vec<(&str, SignedMessage)> = vec![
        (
            "accepted-proposal",
            sign(ADVERTISER, w, NOW - 10, proposal.to_bytes()),
        ),
        (
            "accepted-approval",
            sign(
                PUBLISHER,
                MessageType::WorkloadApprove,
                NOW,
                approval.to_bytes(),
            ),
        ),
        (
            "accepted-approval-expiring",
            sign(
                PUBLISHER,
                MessageType::WorkloadApprove,
                NOW,
                expiring.to_bytes(),
            ),
        ),
        (
            "accepted-approval-revoke",
            sign(
                PUBLISHER,
                MessageType::WorkloadRevoke,
                NOW,
                RevocationPayload {
                    workload_digest: digest.clone(),
                }
                .to_bytes(),
            ),
        ),
        (
            "accepted-run-proposer",
            sign(ADVERTISER, MessageType::RunRequest, NOW - 5, run(nonce(1))),
        ),
        (
            "accepted-run-owner",
            sign(PUBLISHER, MessageType::RunRequest, NOW + 5, run(nonce(2))),
        ),
        (
            "accepted-cancel",
            sign(
                ADVERTISER,
                MessageType::RunCancel,
                NOW,
                cancel(room::RUN_ID, nonce(3)),
            ),
        ),
        (
            "accepted-fetch",
            sign(
                ADVERTISER,
                MessageType::OutputFetch,
                NOW,
                fetch(room::OUTPUT, nonce(4)),
            ),
        ),
        (
            "accepted-governance-suspend",
            sign(
                PUBLISHER,
                MessageType::Suspend,
                NOW,
                GovernancePayload {
                    reason: "audit".into(),
                }
                .to_bytes(),
            ),
        ),
        (
            "accepted-governance-resume",
            sign(
                PUBLISHER,
                MessageType::Resume,
                NOW,
                GovernancePayload::default().to_bytes(),
            ),
        ),
        (
            "refused-run-not-allowed",
            sign(AUDITOR, MessageType::RunRequest, NOW, run(nonce(5))),
        ),
        (
            "refused-stale-request",
            sign(
                ADVERTISER,
                MessageType::RunRequest,
                NOW - 301,
                run(nonce(6)),
            ),
        ),
        (
            "refused-malformed-request-nonce",
            sign(
                ADVERTISER,
                MessageType::RunRequest,
                NOW,
                run("NONCE".into()),
            ),
        ),
        (
            "refused-unknown-workload",
            sign(
                ADVERTISER,
                MessageType::RunRequest,
                NOW,
                RunRequestPayload {
                    workload_digest: "ab".repeat(32),
                    nonce: nonce(7),
                }
                .to_bytes(),
            ),
        ),
        (
            "refused-unknown-run",
            sign(
                ADVERTISER,
                MessageType::RunCancel,
                NOW,
                cancel("q-ffffffffffffffff", nonce(8)),
            ),
        ),
        (
            "refused-cancel-not-allowed",
            sign(
                AUDITOR,
                MessageType::RunCancel,
                NOW,
                cancel(room::RUN_ID, nonce(9)),
            ),
        ),
        (
            "refused-not-a-recipient",
            sign(
                PUBLISHER,
                MessageType::OutputFetch,
                NOW,
                fetch(room::OUTPUT, nonce(10)),
            ),
        ),
        (
            "refused-unknown-output-climbing",
            sign(
                ADVERTISER,
                MessageType::OutputFetch,
                NOW,
                fetch("../room/audit.cro", nonce(11)),
            ),
        ),
        (
            "refused-unknown-output",
            sign(
                ADVERTISER,
                MessageType::OutputFetch,
                NOW,
                fetch("x-0.cro", nonce(12)),
            ),
        ),
        (
            "refused-not-a-member",
            sign(NOT_A_MEMBER, MessageType::RunRequest, NOW, run(nonce(13))),
        ),
        (
            "refused-policy-refused-unknown-input",
            sign(ADVERTISER, w, NOW, unknown_input.to_bytes()),
        ),
        (
            "refused-malformed-request-contract-accept",
            sign(
                PUBLISHER,
                MessageType::ContractAccept,
                NOW,
                room::signed_contract().digest().0.to_vec(),
            ),
        ),
        (
            "refused-unknown-workload-approval",
            sign(
                PUBLISHER,
                MessageType::WorkloadApprove,
                NOW,
                ApprovalPayload {
                    workload_digest: "cd".repeat(32),
                    ..approval.clone()
                }
                .to_bytes(),
            ),
        ),
    ];
    for (name, m) in &messages {
        corpus.add(T, format!("{name}.json"), room::body(m));
    }
    // Bare COSE_Sign1 (the target puts it in a body): mutations reach the message itself.
    for (name, m) in messages.iter().filter(|(n, _)| {
        [
            "accepted-proposal",
            "accepted-run-proposer",
            "accepted-fetch",
            "accepted-approval-revoke",
        ]
        .contains(n)
    }) {
        corpus.add(T, format!("{name}.cose"), m.to_bytes());
    }
    let mut bad_sig = messages[4].1.to_bytes();
    *bad_sig.last_mut().unwrap() ^= 1;
    corpus.add(T, "refused-bad-signature.cose", bad_sig);
    // Bodies that carry no message.
    let b64 = messages[4].1.to_base64();
    corpus.add(
        T,
        "refused-malformed-request-unknown-field.json",
        format!("{{\"message\":\"{b64}\",\"extra\":1}}"),
    );
    corpus.add(
        T,
        "refused-malformed-request-not-base64.json",
        "{\"message\":\"!!not base64!!\"}",
    );
    corpus.add(
        T,
        "refused-malformed-request-not-cose.json",
        format!(
            "{{\"message\":\"{}\"}}",
            B64.encode(b"not a COSE_Sign1 message")
        ),
    );
    corpus.add(T, "refused-malformed-request-empty.json", "{}");
}

pub fn room_seeds(corpus: &mut Corpus) {
    parquet_seeds(corpus);
    api_seeds(corpus);
    // Every seed passes its target's entry function (the properties hold on them).
    for bytes in corpus.0["parquet_encrypted"].values() {
        room::parquet_encrypted(bytes);
    }
    for bytes in corpus.0["room_api"].values() {
        room::room_api(bytes);
    }
}
