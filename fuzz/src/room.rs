//! Entry functions for the room's readers of untrusted bytes (`cleanroom-room`): an
//! encrypted Parquet input as a run registers and scans it, and the room service's signed
//! request bodies as its routes parse and check them before anything changes.
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by `host/room/tests/fuzz_corpus.rs`
//! (the corpus replay in CI). Uses only `cleanroom_room`, `cleanroom_formats`,
//! `cleanroom_policy` and crates the room depends on (`tokio`, `p384`, `serde_json`, `base64`).
//!
//! Everything is fixed here: the contract ([`contract_toml`], signed by its three members'
//! fixed keys, [`member_key`]), the Parquet keys the room is released ([`released_key`]),
//! the time ([`NOW`]) and the service's stored state ([`stored`]: one proposed workload, one
//! queued run, one output). `fuzz/seedgen` seals and signs the seeds with the same keys, so
//! the seeds get past every check and the fuzzer mutates from there.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_formats::fsutil::Root;
use cleanroom_formats::identity::FileIdentity;
use cleanroom_formats::keyfile::DatasetKeys;
use cleanroom_formats::room_protocol::{ErrorBody, RoomRefusalKind};
use cleanroom_formats::stream::DataKey;
use cleanroom_formats::tabular::to_csv;
use cleanroom_policy::contract::{DataFormat, Dataset};
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::ProposalPayload;
use cleanroom_policy::workload::Workload;
use cleanroom_policy::{Contract, SignedContract};
use cleanroom_room::RoomError;
use cleanroom_room::engine::Engine;
use cleanroom_room::requests::{self, RequestRefusal};
use cleanroom_room::service::{RunRecord, RunState};
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePublicKey, LineEnding};

// ------------------------------------------------------------------------ the contract

/// The members of the room contract and the seeds of their fixed signing keys: `publisher`
/// owns the Parquet datasets, `advertiser` proposes the workload and receives the outputs,
/// `auditor` is neither.
pub const MEMBERS: [(&str, u8); 3] = [("publisher", 1), ("advertiser", 2), ("auditor", 3)];

/// A member's signing key (P-384 scalar `[seed; 48]`), or `None` for a non-member.
pub fn member_key(name: &str) -> Option<SigningKey> {
    MEMBERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, seed)| SigningKey::from_slice(&[*seed; 48]).expect("a P-384 scalar"))
}

/// The room contract: three members; Parquet datasets `events` (sealed by `cleanroom dataset
/// seal`, `email` outside `allowed_fields`, so under the owner's withheld key), `clicks`
/// (every column allowed: uniform encryption) and `events_pme` (written with PME's key tools
/// as PyArrow writes it: `master_key_id`); a CSV dataset of the advertiser's.
pub fn contract_toml() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut t = String::from("id = \"fuzz-room\"\nversion = 1\n\n");
        for (name, seed) in MEMBERS {
            let key = member_key(name).expect("a member");
            let pem = VerifyingKey::from(&key)
                .to_public_key_pem(LineEnding::LF)
                .expect("a public key encodes");
            t.push_str(&format!(
                "[[members]]\nname = \"{name}\"\nsigning_key = \"\"\"\n{pem}\"\"\"\nencryption_key = \"{}\"\n\n",
                B64.encode([seed; 32])
            ));
        }
        t.push_str(DATASETS);
        t
    })
}

const DATASETS: &str = r#"[[datasets]]
name = "events"
owner = "publisher"
format = "parquet"
schema = [
  { name = "user_id", type = "string" },
  { name = "campaign", type = "string" },
  { name = "clicks", type = "int64" },
  { name = "spend", type = "float64" },
  { name = "converted", type = "bool" },
  { name = "day", type = "date" },
  { name = "at", type = "timestamp(us, UTC)" },
  { name = "amount", type = "decimal(9,2)" },
  { name = "email", type = "string" },
]
allowed_fields = ["user_id", "campaign", "clicks", "spend", "converted", "day", "at", "amount"]
location = "publisher/events.parquet"
key = { broker = "http://127.0.0.1:1", resource = "publisher/dataset/events" }

[[datasets]]
name = "clicks"
owner = "publisher"
format = "parquet"
schema = [
  { name = "user_id", type = "string" },
  { name = "n", type = "int32" },
  { name = "b", type = "binary" },
]
allowed_fields = ["user_id", "n", "b"]
location = "publisher/clicks.parquet"
key = { broker = "http://127.0.0.1:1", resource = "publisher/dataset/clicks" }

[[datasets]]
name = "events_pme"
owner = "publisher"
format = "parquet"
schema = [
  { name = "user_id_hash", type = "string" },
  { name = "campaign", type = "string" },
  { name = "ts", type = "int64" },
  { name = "value", type = "float64" },
  { name = "ip_address", type = "string" },
]
allowed_fields = ["user_id_hash", "campaign", "ts", "value"]
location = "publisher/events-pme.parquet"
key = { broker = "http://127.0.0.1:1", resource = "publisher/dataset/events-pme", master_key_id = "publisher-master" }

[[datasets]]
name = "conversions"
owner = "advertiser"
format = "csv"
schema = [ { name = "user_id", type = "string" }, { name = "value", type = "float64" } ]
allowed_fields = ["user_id", "value"]
location = "advertiser/conversions.sealed"
key = { broker = "http://127.0.0.1:2", resource = "advertiser/dataset/conversions" }

[attestation]
platforms = ["sim"]
allow_simulated = true
sim = { measurements = ["5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"] }

[outputs]
recipients = ["advertiser"]

[guards]
min_group_size = 50
"#;

/// The room contract with every member's `contract-accept` (signed at a fixed time).
pub fn signed_contract() -> &'static SignedContract {
    static C: OnceLock<SignedContract> = OnceLock::new();
    C.get_or_init(|| {
        let contract = Contract::parse(contract_toml(), "fuzz room contract").expect("parses");
        let d = contract.digest().0;
        let sigs: Vec<SignedMessage> = MEMBERS
            .iter()
            .map(|(n, _)| {
                let key = member_key(n).expect("a member");
                SignedMessage::sign(
                    &key,
                    MessageType::ContractAccept,
                    d,
                    NOW - 86_400,
                    d.to_vec(),
                )
            })
            .collect();
        SignedContract::verify(contract, &sigs).expect("every member accepted")
    })
}

fn dataset(name: &str) -> &'static Dataset {
    signed_contract()
        .contract()
        .dataset(name)
        .expect("a dataset of the room contract")
}

// ------------------------------------------------------------------------ encrypted Parquet

/// The Parquet datasets every input is registered as, in this order.
pub const PARQUET_DATASETS: [&str; 3] = ["events", "clicks", "events_pme"];

/// The key the owner's broker releases for `events` and `clicks` (footer and allowed
/// columns), and the withheld key of `events`' other columns (never released to the room).
pub const PARQUET_KEY_ID: [u8; 16] = [0x7a; 16];
const PARQUET_KEY: [u8; 32] = [0x7b; 32];
pub const WITHHELD_KEY_ID: [u8; 16] = [0x7c; 16];
const WITHHELD_KEY: [u8; 32] = [0x7d; 32];
/// `events_pme`'s master keys: the one the broker releases (its contract `master_key_id`)
/// and the one the withheld column's data key is wrapped under (the owner keeps it).
pub const MASTER_KEY_ID: &str = "publisher-master";
pub const MASTER_KEY: [u8; 32] = [0x4d; 32];
pub const OTHER_MASTER_KEY_ID: &str = "publisher-private";
pub const OTHER_MASTER_KEY: [u8; 32] = [0x50; 32];

/// The keys `cleanroom dataset seal` seals `events` and `clicks` with (the owner's: with
/// the withheld key).
pub fn dataset_keys() -> DatasetKeys {
    DatasetKeys {
        key: DataKey::from_parts(PARQUET_KEY_ID, PARQUET_KEY),
        withheld: Some(DataKey::from_parts(WITHHELD_KEY_ID, WITHHELD_KEY)),
    }
}

/// What the room is released for `dataset`: the dataset key, or for `events_pme` the
/// master key (as `dataset import-master-key` stores it).
pub fn released_key(dataset: &str) -> DataKey {
    if dataset == "events_pme" {
        DataKey::from_parts([0x4d; 16], MASTER_KEY)
    } else {
        DataKey::from_parts(PARQUET_KEY_ID, PARQUET_KEY)
    }
}

/// A file read through the room: what its footer states and what a full scan read.
#[derive(Debug)]
pub struct ReadBack {
    /// The row count the (authenticated) footer states.
    pub stated_rows: u64,
    /// The rows a scan of the view read.
    pub rows: u64,
    /// The view's columns (the dataset's allowed fields).
    pub columns: Vec<String>,
    /// The identity of the file (`FileIdentity::of` on the bytes the room pinned).
    pub identity: Option<FileIdentity>,
    /// The rows as CSV (when asked for).
    pub csv: Option<Vec<u8>>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A data directory of this process and thread (the replay tests run in threads of one
/// process), holding the one input file.
fn data_dir() -> std::path::PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let dir = std::env::temp_dir().join(format!(
        "cleanroom-fuzz-parquet-{}-{thread}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The input file's name in the data directory.
const LOCATION: &str = "input.parquet";

/// Memory the engine may use (the run's pool; a scan of a small file needs little).
const MEMORY_LIMIT: usize = 64 << 20;

/// `data` as the encrypted Parquet file of each of [`PARQUET_DATASETS`], read as a run reads
/// it: one [`Engine`] (as a run's), the file written to its data directory,
/// [`Engine::register_parquet`] with the dataset's released key (magic and footer pinned,
/// footer decrypted and checked against the contract's schema, the table registered for
/// DataFusion's Parquet reader through the room's `EncryptionFactory` and pinned-tail
/// object store), [`FileIdentity::of`] on the pinned bytes (the run then compares it with
/// the owner's registration), then [`Engine::view`] (every allowed column, every row, each
/// page decrypted and authenticated as it is read). With `csv`, the rows read as CSV.
pub fn read_parquet(data: &[u8], csv: bool) -> Vec<(&'static str, Result<ReadBack, RoomError>)> {
    read_parquet_as(&PARQUET_DATASETS, data, csv)
}

/// [`read_parquet`] as the `datasets` given.
fn read_parquet_as(
    datasets: &[&'static str],
    data: &[u8],
    csv: bool,
) -> Vec<(&'static str, Result<ReadBack, RoomError>)> {
    let dir = data_dir();
    if std::fs::write(dir.join(LOCATION), data).is_err() {
        return Vec::new();
    }
    let Ok(root) = Root::open(&dir) else {
        return Vec::new();
    };
    runtime().block_on(async {
        let mut engine = match Engine::new(MEMORY_LIMIT) {
            Ok(e) => e,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for &name in datasets {
            let ds = dataset(name);
            let read = async {
                let (stated_rows, pinned) = engine
                    .register_parquet(ds, &released_key(name), &root, LOCATION)
                    .await?;
                let identity = FileIdentity::of(DataFormat::Parquet, &pinned).ok();
                let (schema, batches) = engine.view(name).await?;
                for b in &batches {
                    assert_eq!(b.schema(), schema, "a batch has the view's schema");
                }
                let csv = if csv {
                    to_csv(&schema, &batches).ok()
                } else {
                    None
                };
                Ok(ReadBack {
                    stated_rows,
                    rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
                    columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
                    identity,
                    csv,
                })
            }
            .await;
            out.push((name, read));
        }
        out
    })
}

/// [`read_parquet`]. Properties: a file that reads has the row count its authenticated
/// footer states and exactly the dataset's allowed columns; a file that does not read is
/// refused naming the dataset as not sealed or unreadable Parquet (or the memory limit),
/// never as another error. And the identity the room pins a file's version with is the
/// `aad_file_unique` the reader authenticated it under: a file that reads as a sealed
/// dataset (`events`, `clicks`) and has an identity still reads with its FileCryptoMetaData
/// written anew from that identity alone ([`with_crypto_metadata_of`]). A file that reads
/// without an identity is refused by the run (`DatasetUnidentifiable`): the identity reader
/// is stricter than parquet-rs, on purpose.
pub fn parquet_encrypted(data: &[u8]) {
    for (name, read) in read_parquet(data, false) {
        match read {
            Ok(r) => {
                assert_eq!(
                    r.rows, r.stated_rows,
                    "`{name}`: the rows its footer states"
                );
                assert_eq!(
                    r.columns,
                    cleanroom_formats::tabular::allowed(dataset(name)),
                    "`{name}`: the allowed columns"
                );
                if let (Some(FileIdentity::Parquet(unique)), true) =
                    (&r.identity, name != "events_pme")
                {
                    let again = with_crypto_metadata_of(data, unique)
                        .iter()
                        .any(|f| read_parquet_as(&[name], f, false)[0].1.is_ok());
                    assert!(
                        again,
                        "`{name}`: read under another aad_file_unique than its identity {unique:02x?}"
                    );
                }
            }
            Err(e) => check_refusal(name, &e),
        }
    }
}

/// `file` (whose footer length and magics are valid: it read) with its FileCryptoMetaData
/// replaced by the canonical one of `unique`: `{1: {1: AES_GCM_V1 {2: unique}}}`, no key
/// metadata. Where the FileCryptoMetaData ends is not parsed: one candidate for each place
/// the encrypted footer could start (its 4-byte length says it ends where the footer region
/// does, and it holds at least a nonce and a tag).
pub fn with_crypto_metadata_of(file: &[u8], unique: &[u8]) -> Vec<Vec<u8>> {
    let n = file.len();
    let u32_at =
        |p: usize| u32::from_le_bytes(file[p..p + 4].try_into().expect("4 bytes")) as usize;
    let start = n - 8 - u32_at(n - 8);
    let mut meta = vec![0x1c, 0x1c, 0x28, unique.len() as u8];
    meta.extend_from_slice(unique);
    meta.extend_from_slice(&[0, 0, 0]);
    (start..n - 12)
        .filter(|&p| u32_at(p) == n - 8 - (p + 4) && u32_at(p) >= 28)
        .map(|p| {
            let mut out = file[..start].to_vec();
            out.extend_from_slice(&meta);
            out.extend_from_slice(&file[p..n - 8]);
            out.extend_from_slice(&((meta.len() + n - 8 - p) as u32).to_le_bytes());
            out.extend_from_slice(b"PARE");
            out
        })
        .collect()
}

fn check_refusal(name: &str, e: &RoomError) {
    match e {
        RoomError::InputNotSealed { dataset, .. } => assert_eq!(dataset, name),
        RoomError::Format(cleanroom_formats::FormatError::DatasetUnreadable {
            dataset,
            format,
            ..
        }) => assert_eq!((dataset.as_str(), *format), (name, "parquet")),
        RoomError::MemoryLimitReached { .. } => {}
        other => panic!("`{name}`: refused with an unexpected error: {other:?}"),
    }
}

// ------------------------------------------------------------------------ room service

/// The room service's clock for the checks: 2026-06-01T00:00:00Z.
pub const NOW: u64 = 1_780_272_000;
/// Its freshness window (the default of `cleanroom-room serve`).
pub const WINDOW: u64 = cleanroom_room::service::DEFAULT_FRESHNESS;

/// The workload the service holds, as `advertiser` proposed it.
pub const WORKLOAD_TOML: &str = r#"name = "reach"
kind = "query"
inputs = ["events", "conversions"]
sql = "SELECT campaign, count(*) AS n FROM events GROUP BY campaign"

[output]
recipients = ["advertiser"]
"#;

/// The id of the run the service holds (queued, requested by `advertiser`).
pub const RUN_ID: &str = "q-0011223344556677";
/// The output the service holds (for `advertiser`).
pub const OUTPUT: &str = "20260601T000000Z-0123456789ab-0.cro";

/// The service's state the checks read: the stored workload (the proposal signed by
/// `advertiser`, opened as the service opens a stored proposal), its proposer, the run, and
/// the recipients of the output.
pub struct Stored {
    pub workload: Workload,
    pub digest: String,
    pub proposer: Option<String>,
    pub run: RunRecord,
    pub recipients: Vec<String>,
}

pub fn stored() -> &'static Stored {
    static S: OnceLock<Stored> = OnceLock::new();
    S.get_or_init(|| {
        let contract = signed_contract();
        let payload = ProposalPayload::new(WORKLOAD_TOML, "workload.toml", None)
            .expect("the workload parses");
        let proposal = SignedMessage::sign(
            &member_key("advertiser").expect("a member"),
            MessageType::WorkloadPropose,
            contract.digest().0,
            NOW - 3_600,
            payload.to_bytes(),
        );
        let opened = cleanroom_policy::proposal::open(contract, &proposal).expect("it opens");
        let digest = opened.workload.digest().hex();
        Stored {
            run: RunRecord {
                id: RUN_ID.into(),
                workload_digest: digest.clone(),
                requested_by: opened.proposer.clone(),
                state: RunState::Queued,
                run_id: None,
                outputs: vec![],
                cause: None,
            },
            proposer: Some(opened.proposer),
            workload: opened.workload,
            digest,
            recipients: vec!["advertiser".into()],
        }
    })
}

fn stored_workload(digest: &str) -> Result<(Workload, Option<String>), RequestRefusal> {
    let s = stored();
    if digest == s.digest {
        Ok((s.workload.clone(), s.proposer.clone()))
    } else {
        Err(RequestRefusal::UnknownWorkload {
            digest: digest.chars().take(64).collect(),
        })
    }
}

fn stored_run(id: &str) -> Result<(RunRecord, Workload), RequestRefusal> {
    let s = stored();
    if id == s.run.id {
        Ok((s.run.clone(), stored_workload(&s.run.workload_digest)?.0))
    } else {
        Err(RequestRefusal::UnknownRun {
            id: id.chars().take(64).collect(),
        })
    }
}

/// What a route accepted: the member, and what the request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Proposal { member: String, digest: String },
    Approval { member: String, digest: String },
    Run { member: String, nonce: String },
    Cancel { member: String, nonce: String },
    Fetch { member: String, nonce: String },
    Governance { member: String },
}

/// A body through each signed route's checks, as the handlers make them (`requests`, with
/// the stored state of [`stored`] and the clock at [`NOW`]): what each route accepts or
/// its refusal. `Err` if the body has no message.
pub fn check_routes(
    body: &[u8],
) -> Result<(SignedMessage, Vec<Result<Accepted, RequestRefusal>>), RequestRefusal> {
    let c = signed_contract();
    let s = stored();
    let msg = requests::signed_message(body)?;
    let proposal = cleanroom_policy::proposal::open(c, &msg)
        .map(|p| Accepted::Proposal {
            member: p.proposer,
            digest: p.payload.workload_digest,
        })
        .map_err(RequestRefusal::from);
    let approval = requests::verify_approval(c, &msg).and_then(|(member, digest)| {
        let (w, _) = stored_workload(&digest)?;
        assert_eq!(w.digest().hex(), digest);
        Ok(Accepted::Approval { member, digest })
    });
    let run = requests::verify_run_request(c, &msg, NOW, WINDOW, stored_workload).map(|f| {
        Accepted::Run {
            member: f.member().into(),
            nonce: f.payload().nonce.clone(),
        }
    });
    let cancel = requests::verify_run_cancel(c, &msg, NOW, WINDOW, stored_run).map(|(f, r)| {
        assert_eq!(r.id, f.payload().run, "the run it names");
        Accepted::Cancel {
            member: f.member().into(),
            nonce: f.payload().nonce.clone(),
        }
    });
    let fetch = requests::verify_fetch(c, &msg, NOW, WINDOW).and_then(|f| {
        let name = &f.payload().output;
        assert!(requests::is_output_name(name));
        if name != OUTPUT {
            return Err(RequestRefusal::UnknownOutput { name: name.clone() });
        }
        if !s.recipients.iter().any(|r| r == f.member()) {
            return Err(RequestRefusal::NotARecipient {
                member: f.member().into(),
                name: name.clone(),
            });
        }
        Ok(Accepted::Fetch {
            member: f.member().into(),
            nonce: f.payload().nonce.clone(),
        })
    });
    let governance = cleanroom_policy::governance::verify(c, &msg)
        .map(|member| Accepted::Governance { member })
        .map_err(RequestRefusal::from);
    Ok((
        msg,
        vec![proposal, approval, run, cancel, fetch, governance],
    ))
}

/// A request body as `{"message": ...}` around a message.
pub fn body(msg: &SignedMessage) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "message": msg.to_base64() })).expect("JSON")
}

/// A refusal is a client error with a stable wire kind that a client reads back.
fn check_request_refusal(r: &RequestRefusal) {
    let kind = r.kind();
    assert_ne!(kind, RoomRefusalKind::Unknown);
    assert!(
        r.status().is_client_error(),
        "a check refuses with a 4xx: {r:?} -> {}",
        r.status()
    );
    let json = serde_json::to_vec(&ErrorBody {
        kind,
        detail: r.to_string(),
    })
    .expect("an error body serialises");
    let back: ErrorBody = serde_json::from_slice(&json).expect("and parses");
    assert_eq!(
        back.kind, kind,
        "the client reads the kind the service sent"
    );
}

fn is_nonce(n: &str) -> bool {
    n.len() == 32 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One body through [`check_routes`]. Properties: every refusal is a 4xx with a stable kind
/// that round-trips through the error body; a message is accepted by at most one route,
/// and only of its type; an accepted run, cancel or fetch is fresh (within [`WINDOW`] of
/// [`NOW`]) with a 32-hex-digit nonce; an accepted run is by the proposer or an input's
/// owner, an accepted fetch by a recipient; what the service stores of an accepted message
/// (`to_base64`, read back as a body) is accepted again to the same outcome.
fn check_body(bytes: &[u8]) -> Option<SignedMessage> {
    let (msg, routes) = match check_routes(bytes) {
        Ok(r) => r,
        Err(e) => {
            check_request_refusal(&e);
            return None;
        }
    };
    let mut accepted = None;
    for r in &routes {
        match r {
            Ok(a) => {
                assert!(
                    accepted.is_none(),
                    "accepted by two routes: {accepted:?}, {a:?}"
                );
                accepted = Some(a.clone());
            }
            Err(e) => check_request_refusal(e),
        }
    }
    let s = stored();
    let c = signed_contract().contract();
    let fresh = || assert!(msg.created_at.abs_diff(NOW) <= WINDOW, "fresh");
    match &accepted {
        None => {}
        Some(Accepted::Proposal { .. }) => {
            assert_eq!(msg.message_type, MessageType::WorkloadPropose)
        }
        Some(Accepted::Approval { digest, .. }) => {
            assert!(matches!(
                msg.message_type,
                MessageType::WorkloadApprove | MessageType::WorkloadRevoke
            ));
            assert_eq!(digest, &s.digest);
        }
        Some(Accepted::Run { member, nonce }) => {
            assert_eq!(msg.message_type, MessageType::RunRequest);
            fresh();
            assert!(is_nonce(nonce));
            let owner = s
                .workload
                .inputs
                .iter()
                .any(|i| c.dataset(i).is_some_and(|d| d.owner.get_ref() == member));
            assert!(owner || s.proposer.as_deref() == Some(member.as_str()));
        }
        Some(Accepted::Cancel { nonce, .. }) => {
            assert_eq!(msg.message_type, MessageType::RunCancel);
            fresh();
            assert!(is_nonce(nonce));
        }
        Some(Accepted::Fetch { member, nonce }) => {
            assert_eq!(msg.message_type, MessageType::OutputFetch);
            fresh();
            assert!(is_nonce(nonce));
            assert!(s.recipients.contains(member));
        }
        Some(Accepted::Governance { .. }) => {
            assert!(matches!(
                msg.message_type,
                MessageType::Suspend | MessageType::Resume
            ))
        }
    }
    if accepted.is_some() {
        let (_, again) = check_routes(&body(&msg)).expect("a stored message parses again");
        let again: Vec<_> = again.into_iter().filter_map(Result::ok).collect();
        assert_eq!(
            again,
            accepted.iter().cloned().collect::<Vec<_>>(),
            "stored, it is accepted again"
        );
    }
    Some(msg)
}

/// A signed request body through the room service's checks: the input is a body (it starts
/// with `{`), else a COSE_Sign1 message the target puts in a body (base64). Each body goes
/// through every signed route's checks ([`check_routes`], properties at `check_body`);
/// then, when the message parses and its `kid` is a member's, the same message re-signed by
/// that member's fixed key goes through them again, so that mutated payloads and headers get
/// past the signature to the checks after it.
pub fn room_api(data: &[u8]) {
    let wrapped;
    let body_bytes = if data.first() == Some(&b'{') {
        data
    } else {
        wrapped =
            serde_json::to_vec(&serde_json::json!({ "message": B64.encode(data) })).expect("JSON");
        &wrapped[..]
    };
    let Some(msg) = check_body(body_bytes) else {
        return;
    };
    let Some(member) = signed_contract().contract().member_by_kid(&msg.kid) else {
        return;
    };
    let key = member_key(member.name.get_ref()).expect("every member has a fixed key");
    let resigned = SignedMessage::sign(
        &key,
        msg.message_type,
        msg.contract_digest,
        msg.created_at,
        msg.payload.clone(),
    );
    check_body(&body(&resigned));
}
