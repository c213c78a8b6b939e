//! Seeds of the `cleanroom-formats` targets: files the crate's own APIs seal, sign and
//! encrypt with the fixed keys of `fuzz/src/formats.rs` (so they open in the targets), and
//! the shapes the room, the brokers and the CLI write (compare `/tmp`-free runs of
//! `cleanroom demo`: key files, an audit log, KBS bodies, a PME Parquet trailer).
//!
//! Sealing draws nonce prefixes, content keys and ephemeral keys from the OS RNG, so a fresh
//! sealed, enveloped or JWE seed differs on every run: [`kept_or`] keeps an existing seed
//! that still opens as intended and makes a new one only otherwise, so that re-running
//! seedgen changes nothing unless a format changed. Everything else is deterministic.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use cleanroom_attest::sim::{SIM_TCB, SimReport, SimSigner};
use cleanroom_formats::audit::{self, Decision, Entry, Step};
use cleanroom_formats::envelope::{self, ContentHeader, ContentKind, OutputHeader};
use cleanroom_formats::identity::FileIdentity;
use cleanroom_formats::jwe::{self, Jwe};
use cleanroom_formats::kbs_protocol::{
    AttestResult, Attestation, AuditHead, AuthExtra, AuthRequest, Challenge, ChallengeExtra,
    ErrorBody, GovernanceRequest, GovernanceResult, PROTOCOL_VERSION, RefusalKind, RuntimeData,
};
use cleanroom_formats::keyfile::{self, DatasetKeys};
use cleanroom_formats::stream::{self, DEFAULT_SEGMENT_SIZE, DataKey};
use cleanroom_formats::{StreamError, audit::ParseError};
use cleanroom_policy::governance::GovernancePayload;
use cleanroom_policy::message::{MessageType, SignedMessage};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::formats::{self as f, RECIPIENTS, STREAM_NAME};
use crate::{Corpus, fuzz_dir, parts_seed};

/// The existing seed `fuzz/corpus/<target>/seed-<name>` if `valid` accepts it, else `make()`
/// (which `valid` must accept).
pub(crate) fn kept_or(
    target: &str,
    name: &str,
    valid: impl Fn(&[u8]) -> bool,
    make: impl FnOnce() -> Vec<u8>,
) -> Vec<u8> {
    let path = fuzz_dir()
        .join("corpus")
        .join(target)
        .join(format!("seed-{name}"));
    if let Ok(b) = std::fs::read(&path)
        && valid(&b)
    {
        return b;
    }
    let b = make();
    assert!(valid(&b), "fresh seed {target}/{name} is not as intended");
    b
}

const RUN_ID: &str = "20261201T080431Z-5befc163f959";
const CONTRACT_DIGEST: &str = "8204bd572bd7d93da7f56e6b10f1a12a610cddf2368b157bc385b3b75bcf0ade";
const WORKLOAD_DIGEST: &str = "26cc8d1741796252b2d9b5875142ab6dd7bcc262dcd0e671b6fa8ddcc035d248";

fn csv_rows(n: usize) -> Vec<u8> {
    let mut s = String::from("user_id_hash,campaign,ts,site\n");
    for i in 0..n {
        s.push_str(&format!(
            "{:016x},spring-{},{},news.example\n",
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            i % 3,
            1_764_547_200 + i * 60
        ));
    }
    s.into_bytes()
}

fn seal_stream(key: &DataKey, name: &str, segment: u32, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    stream::seal(key, name, segment, &mut &plain[..], &mut out).unwrap();
    out
}

// ------------------------------------------------------------------------ sealed stream

/// Returns the CSV sealed file (the file_identity target reuses it).
fn stream_seeds(corpus: &mut Corpus) -> Vec<u8> {
    const T: &str = "sealed_stream";
    let key = f::stream_key();
    let opens_to = |name: &'static str, plain: Vec<u8>| {
        move |b: &[u8]| {
            stream::open(&f::stream_key(), Some(name), b).is_ok_and(|p| p[..] == plain[..])
        }
    };
    let csv = csv_rows(12);
    let csv_sealed = kept_or(T, "csv-seg64", opens_to(STREAM_NAME, csv.clone()), || {
        seal_stream(&key, STREAM_NAME, 64, &csv)
    });
    corpus.add(T, "csv-seg64", csv_sealed.clone());

    let boundary = vec![b'x'; 128];
    corpus.add(
        T,
        "two-full-segments",
        kept_or(
            T,
            "two-full-segments",
            opens_to(STREAM_NAME, boundary.clone()),
            || seal_stream(&key, STREAM_NAME, 64, &boundary),
        ),
    );
    corpus.add(
        T,
        "empty",
        kept_or(T, "empty", opens_to(STREAM_NAME, Vec::new()), || {
            seal_stream(&key, STREAM_NAME, 64, &[])
        }),
    );
    let json = b"{\"user_id_hash\":\"9e3779b97f4a7c15\",\"ts\":1764547200,\"value\":12.5}\n{\"user_id_hash\":\"3c6ef372fe94f82a\",\"ts\":1764547260,\"value\":0.99}\n".to_vec();
    corpus.add(
        T,
        "json-default-segment",
        kept_or(
            T,
            "json-default-segment",
            opens_to("conversions", json.clone()),
            || seal_stream(&key, "conversions", DEFAULT_SEGMENT_SIZE, &json),
        ),
    );
    let model: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    corpus.add(
        T,
        "model-file",
        kept_or(
            T,
            "model-file",
            opens_to("conversion-model", model.clone()),
            || seal_stream(&key, "conversion-model", 256, &model),
        ),
    );
    // Cut after a complete non-final segment: reported as truncated.
    let truncated = |b: &[u8]| {
        matches!(
            stream::open(&f::stream_key(), None, b),
            Err(StreamError::Truncated { .. })
        )
    };
    corpus.add(
        T,
        "truncated",
        kept_or(T, "truncated", truncated, || {
            let full = seal_stream(&key, STREAM_NAME, 64, &csv);
            let header = stream::peek_header(&full).unwrap().encode().len();
            full[..header + 2 * (64 + 16)].to_vec()
        }),
    );
    let other = DataKey::from_parts([0x77; 16], [0x78; 32]);
    let wrong_key = |b: &[u8]| {
        matches!(
            stream::open(&f::stream_key(), None, b),
            Err(StreamError::WrongKey { .. })
        )
    };
    corpus.add(
        T,
        "other-key",
        kept_or(T, "other-key", wrong_key, || {
            seal_stream(&other, STREAM_NAME, 64, &csv[..100])
        }),
    );
    csv_sealed
}

// ------------------------------------------------------------------------ file identity

/// A PME Parquet file's tail as parquet-rs writes it (checked against a file `cleanroom
/// dataset seal` wrote): FileCryptoMetaData { 1: AES_GCM_V1 { 2: aad_file_unique (8 bytes),
/// 3: supply_aad_prefix = true }, 2: key_metadata (the key id, hex) }, then the encrypted
/// footer (length, nonce, ciphertext, tag), its length and `PARE`. `ctr` writes
/// AES_GCM_CTR_V1 with a stored aad_prefix instead.
fn pme_file(ctr: bool) -> Vec<u8> {
    let mut meta = vec![0x1c]; // field 1, struct: encryption_algorithm
    if ctr {
        meta.push(0x2c); // field 2, struct: AES_GCM_CTR_V1
        meta.push(0x18); // field 1, binary: aad_prefix
        let prefix = b"cleanroom:dataset:impressions";
        meta.push(prefix.len() as u8);
        meta.extend_from_slice(prefix);
        meta.push(0x18); // field 2, binary: aad_file_unique
    } else {
        meta.push(0x1c); // field 1, struct: AES_GCM_V1
        meta.push(0x28); // field 2, binary: aad_file_unique
    }
    meta.push(8);
    meta.extend_from_slice(&[0x71, 0xbb, 0x1f, 0x6a, 0x2f, 0x5b, 0xc6, 0xdc]);
    meta.push(if ctr { 0x12 } else { 0x11 }); // field 3, bool: supply_aad_prefix
    meta.push(0); // end of the algorithm variant
    meta.push(0); // end of the union
    meta.push(0x18); // field 2, binary: key_metadata
    let kid = hex::encode(f::STREAM_KEY_ID);
    meta.push(kid.len() as u8);
    meta.extend_from_slice(kid.as_bytes());
    meta.push(0); // end of FileCryptoMetaData
    let mut footer = Vec::new();
    let ct: Vec<u8> = (0..48u32).map(|i| (i * 37 % 256) as u8).collect();
    footer.extend_from_slice(&((12 + ct.len() + 16) as u32).to_le_bytes());
    footer.extend_from_slice(&[0x0e; 12]);
    footer.extend_from_slice(&ct);
    footer.extend_from_slice(&[0xa5; 16]);
    let mut file = b"PARE".to_vec();
    file.extend((0..64u32).map(|i| (i * 101 % 256) as u8)); // an encrypted page
    let tail_len = meta.len() + footer.len();
    file.extend_from_slice(&meta);
    file.extend_from_slice(&footer);
    file.extend_from_slice(&(tail_len as u32).to_le_bytes());
    file.extend_from_slice(b"PARE");
    file
}

fn identity_seeds(corpus: &mut Corpus, sealed: &[u8]) {
    const T: &str = "file_identity";
    for (name, ctr) in [("pme-gcm", false), ("pme-gcm-ctr", true)] {
        let file = pme_file(ctr);
        let id = FileIdentity::of_encrypted_parquet(&file).unwrap();
        assert_eq!(id.to_string(), "parquet:aad-file-unique:71bb1f6a2f5bc6dc");
        corpus.add(T, format!("{name}.parquet"), file);
    }
    let mut plaintext_footer = pme_file(false);
    let n = plaintext_footer.len();
    plaintext_footer[..4].copy_from_slice(b"PAR1");
    plaintext_footer[n - 4..].copy_from_slice(b"PAR1");
    corpus.add(T, "plaintext-footer.parquet", plaintext_footer);
    // The sealed stream's header and first segment (the identity reads the header only).
    let header = stream::peek_header(sealed).unwrap().encode().len();
    let head = sealed[..header + 80].to_vec();
    let id = FileIdentity::of_sealed_stream(&head).unwrap();
    corpus.add(T, "sealed-stream-head", head);
    corpus.add(T, "stream-id.txt", id.to_string());
    corpus.add(
        T,
        "parquet-id.txt",
        FileIdentity::of_encrypted_parquet(&pme_file(false))
            .unwrap()
            .to_string(),
    );
}

// ------------------------------------------------------------------------ key files

fn key_seeds(corpus: &mut Corpus) {
    const T: &str = "key_file";
    let key = f::stream_key();
    corpus.add(
        T,
        "dataset.key",
        keyfile::to_json(&key, STREAM_NAME).to_vec(),
    );
    let stream_id = FileIdentity::Stream([0x3c; 32]);
    let parquet_id = FileIdentity::Parquet(vec![0x71, 0xbb, 0x1f, 0x6a, 0x2f, 0x5b, 0xc6, 0xdc]);
    corpus.add(
        T,
        "released-stream.key",
        keyfile::released_to_json(&key, "conversions", &stream_id).to_vec(),
    );
    corpus.add(
        T,
        "released-parquet.key",
        keyfile::released_to_json(&key, STREAM_NAME, &parquet_id).to_vec(),
    );
    // An owner's Parquet key file with the withheld column key (written by keyfile::write).
    let path = std::env::temp_dir().join(format!("cleanroom-seedgen-{}.key", std::process::id()));
    let owner = DatasetKeys {
        key: key.clone(),
        withheld: Some(DataKey::from_parts([0x55; 16], [0x15; 32])),
    };
    keyfile::write(&path, &owner, STREAM_NAME).unwrap();
    let withheld = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        keyfile::from_json(&withheld, "w"),
        Err(cleanroom_formats::FormatError::BadKeyFile { .. })
    ));
    corpus.add(T, "owner-withheld.key", withheld);
    // A member's keys as `cleanroom member keygen` writes them.
    corpus.add(
        T,
        "member.sign.key",
        f::signer()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
    );
    corpus.add(
        T,
        "member.sign.pub",
        f::signer()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    );
    corpus.add(
        T,
        "member.enc.key",
        format!("{}\n", B64.encode(RECIPIENTS[0].1)),
    );
}

// ------------------------------------------------------------------------ audit log

/// An entry of the room's run (built from JSON, so that optional fields added to [`Entry`]
/// stay absent).
fn entry(
    seq: u64,
    prev: &str,
    time: &str,
    event: Step,
    subject: &str,
    decision: Decision,
    reason: &str,
) -> Entry {
    serde_json::from_value(serde_json::json!({
        "seq": seq,
        "prev": prev,
        "time": time,
        "event": event,
        "subject": subject,
        "decision": decision,
        "reason": reason,
        "run": RUN_ID,
    }))
    .unwrap()
}

/// A run's log as the room writes it: hash-chained entries, a signed checkpoint at the end.
fn audit_entries() -> Vec<Entry> {
    let steps: [(Step, &str, Decision, &str); 8] = [
        (
            Step::Contract,
            "demo-campaign-measurement (8204bd572bd7d93da7f56e6b10f1a12a610cddf2368b157bc385b3b75bcf0ade)",
            Decision::Accepted,
            "signed by every member",
        ),
        (
            Step::Suspension,
            "contract 8204bd572bd7d93da7f56e6b10f1a12a610cddf2368b157bc385b3b75bcf0ade",
            Decision::None,
            "no member's suspension is in force",
        ),
        (
            Step::Approval,
            "campaign-reach-and-conversion",
            Decision::Granted,
            "approved by publisher, advertiser",
        ),
        (
            Step::Attestation,
            "sim",
            Decision::Verified,
            "SIMULATED attestation (INSECURE)",
        ),
        (
            Step::KeyRequest,
            "publisher/dataset/impressions",
            Decision::Granted,
            "released by http://127.0.0.1:8081",
        ),
        (
            Step::Guard,
            "min_group_size 50",
            Decision::Refused,
            "2 groups below 50 rows suppressed",
        ),
        (
            Step::Output,
            "outputs/20261201T080431Z-5befc163f959-0.cro",
            Decision::Committed,
            "sealed to advertiser",
        ),
        (Step::Run, RUN_ID, Decision::Ran, "ok"),
    ];
    let mut entries: Vec<Entry> = Vec::new();
    let mut prev = audit::ZERO.to_string();
    for (i, (event, subject, decision, reason)) in steps.into_iter().enumerate() {
        let mut e = entry(
            i as u64,
            &prev,
            &format!("2026-12-01T08:04:31.{:03}Z", 172 + i * 11),
            event,
            subject,
            decision,
            reason,
        );
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        entries.push(e);
    }
    let mut cp = entry(
        8,
        &prev,
        "2026-12-01T08:04:31.301Z",
        Step::Checkpoint,
        "chain head",
        Decision::Signed,
        "signed by a host whose attestation is SIMULATED (INSECURE)",
    );
    let sig: Signature = f::signer().sign(&cp.checkpoint_message());
    cp.host_key = Some(f::signer_hex().to_string());
    cp.signature = Some(hex::encode(sig.to_bytes()));
    cp.insecure = Some(true);
    cp.hash = cp.compute_hash();
    entries.push(cp);
    entries
}

fn audit_seeds(corpus: &mut Corpus, entries: &[Entry]) {
    const T: &str = "audit_log";
    let mut log = Vec::new();
    for e in entries {
        log.extend(serde_json::to_vec(e).unwrap());
        log.push(b'\n');
    }
    assert_eq!(audit::parse(&log).unwrap(), entries);
    for w in entries.windows(2) {
        assert_eq!(w[1].prev, w[0].hash, "the seed log is a chain");
    }
    let torn = log[..log.len() - 40].to_vec();
    assert!(matches!(
        audit::parse(&torn),
        Err(ParseError::TornLastLine { seq: 8, .. })
    ));
    let first_line = log.iter().position(|b| *b == b'\n').unwrap() + 1;
    let crlf = String::from_utf8(log[..first_line].to_vec())
        .unwrap()
        .replace('\n', "\r\n\n");
    let last = entries.last().unwrap();
    corpus.add(T, "run.jsonl", log.clone());
    corpus.add(T, "torn.jsonl", torn);
    corpus.add(T, "first-line-crlf.jsonl", crlf);
    corpus.add(T, "anchor.txt", format!("{}:{}\n", last.seq, last.hash));
}

// ------------------------------------------------------------------------ KBS protocol, JWE

fn released_key_plaintext() -> Vec<u8> {
    keyfile::released_to_json(
        &f::stream_key(),
        STREAM_NAME,
        &FileIdentity::Stream([0x3c; 32]),
    )
    .to_vec()
}

fn jwe_seeds(corpus: &mut Corpus) -> Vec<u8> {
    const T: &str = "jwe";
    let plain = released_key_plaintext();
    let decrypts_to = |plain: Vec<u8>| {
        move |b: &[u8]| {
            serde_json::from_slice::<Jwe>(b)
                .ok()
                .and_then(|j| jwe::decrypt(f::jwe_key(), &j).ok())
                .is_some_and(|p| p[..] == plain[..])
        }
    };
    let json = kept_or(T, "released-key.json", decrypts_to(plain.clone()), || {
        serde_json::to_vec(&jwe::encrypt(&f::jwe_key().public_key(), &plain)).unwrap()
    });
    corpus.add(T, "released-key.json", json.clone());
    // The same JWE as parts (raw bytes of each base64url field).
    let j: Jwe = serde_json::from_slice(&json).unwrap();
    let raw: Vec<Vec<u8>> = [&j.protected, &j.encrypted_key, &j.iv, &j.ciphertext, &j.tag]
        .iter()
        .map(|s| B64U.decode(s).unwrap())
        .collect();
    let p: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
    corpus.add(T, "released-key.parts", parts_seed(&p));
    // Encrypted to another key: parses, does not decrypt.
    let other = p384::SecretKey::from_slice(&[0x52; 48]).unwrap();
    let refused = |b: &[u8]| {
        serde_json::from_slice::<Jwe>(b)
            .ok()
            .is_some_and(|j| jwe::decrypt(f::jwe_key(), &j).is_err())
    };
    corpus.add(
        T,
        "other-key.json",
        kept_or(T, "other-key.json", refused, || {
            serde_json::to_vec(&jwe::encrypt(&other.public_key(), b"{}")).unwrap()
        }),
    );
    let empty = kept_or(T, "empty.json", decrypts_to(Vec::new()), || {
        serde_json::to_vec_pretty(&jwe::encrypt(&f::jwe_key().public_key(), b"")).unwrap()
    });
    corpus.add(T, "empty.json", empty);
    json
}

fn kbs_seeds(corpus: &mut Corpus, entries: &[Entry], jwe_json: &[u8]) {
    const T: &str = "kbs_json";
    corpus.add(
        T,
        "auth-request.json",
        json(&AuthRequest {
            version: PROTOCOL_VERSION.into(),
            tee: "snp".into(),
            extra_params: serde_json::to_value(AuthExtra {
                contract_digest: CONTRACT_DIGEST.into(),
            })
            .unwrap(),
        }),
    );
    let head = AuditHead {
        seq: entries[5].seq,
        hash: entries[5].hash.clone(),
    };
    corpus.add(
        T,
        "challenge.json",
        json(&Challenge {
            nonce: B64.encode([0x6e; 32]),
            extra_params: serde_json::to_value(ChallengeExtra {
                audit_head: Some(head),
            })
            .unwrap(),
        }),
    );
    corpus.add(
        T,
        "challenge-rcar.json",
        br#"{"nonce":"Y2xlYW5yb29tLW5vbmNlLTAwMDAwMDAwMDAwMDAwMDA=","extra-params":""}"#.to_vec(),
    );
    let sim = SimSigner::new(b"seedgen");
    let evidence = sim.sign(&SimReport {
        version: 1,
        measurement: hex::encode(crate::attest::SIM_MEASUREMENT),
        host_data: CONTRACT_DIGEST.into(),
        report_data: hex::encode([7u8; 64]),
        tcb: SIM_TCB,
        debug: false,
    });
    let approve = SignedMessage::sign(
        &crate::key(2),
        MessageType::WorkloadApprove,
        [0x82; 32],
        1_764_547_200,
        WORKLOAD_DIGEST.as_bytes().to_vec(),
    );
    let tee_pubkey: serde_json::Value =
        serde_json::from_str(&f::jwe_key().public_key().to_jwk_string()).unwrap();
    let last = entries.len() - 2;
    let runtime = RuntimeData {
        nonce: B64.encode([0x6e; 32]),
        tee_pubkey,
        contract_digest: CONTRACT_DIGEST.into(),
        workload: r#"{"inputs":["impressions","conversions"],"kind":"query","name":"reach","output":{"recipients":["advertiser"]},"sql":"SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign"}"#.into(),
        approvals: vec![approve.to_base64()],
        audit_seq: entries[last].seq,
        audit_hash: entries[last].hash.clone(),
        audit_proof: entries[6..=last].to_vec(),
    };
    corpus.add(
        T,
        "attestation.json",
        json(&Attestation {
            runtime_data: runtime.clone(),
            tee_evidence: serde_json::to_value(&evidence).unwrap(),
        }),
    );
    corpus.add(T, "runtime-data.canonical.json", runtime.canonical_json());
    corpus.add(
        T,
        "attest-result.json",
        json(&AttestResult {
            platform: "sim".into(),
            insecure: true,
            measurement: hex::encode(crate::attest::SIM_MEASUREMENT),
        }),
    );
    corpus.add(
        T,
        "error-rolled-back.json",
        json(&ErrorBody {
            kind: RefusalKind::AuditRolledBack,
            detail: "audit head 3 is older than head 5 already presented for this contract".into(),
        }),
    );
    corpus.add(
        T,
        "error-unknown-kind.json",
        br#"{"type":"a-kind-from-a-newer-broker","detail":"?"}"#.to_vec(),
    );
    let suspend = SignedMessage::sign(
        &crate::key(1),
        MessageType::Suspend,
        [0x82; 32],
        1_764_547_300,
        GovernancePayload {
            reason: "audit".into(),
        }
        .to_bytes(),
    );
    corpus.add(
        T,
        "governance-request.json",
        json(&GovernanceRequest {
            message: suspend.to_base64(),
        }),
    );
    corpus.add(
        T,
        "governance-result.json",
        json(&GovernanceResult {
            member: "publisher".into(),
            suspended_by: vec!["publisher".into()],
        }),
    );
    corpus.add(T, "resource-jwe.json", jwe_json.to_vec());
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

// ------------------------------------------------------------------------ output envelope

fn envelope_seeds(corpus: &mut Corpus, entries: &[Entry]) {
    const T: &str = "output_envelope";
    let other_signer = SigningKey::from_slice(&[0x32; 48]).unwrap();
    let header = |index: u32, signer: &SigningKey| OutputHeader {
        contract_digest: CONTRACT_DIGEST.into(),
        workload_digest: WORKLOAD_DIGEST.into(),
        run_id: RUN_ID.into(),
        index,
        created_at: "2026-12-01T08:04:31.290Z".into(),
        insecure: true,
        audit_seq: entries[6].seq,
        audit_hash: entries[6].hash.clone(),
        host_key: envelope::host_key_hex(signer.verifying_key()),
    };
    let content =
        |kind: ContentKind, name: &str, format: &str, columns: &[&str], rows: u64| ContentHeader {
            kind,
            name: name.into(),
            workload: "campaign-reach-and-conversion".into(),
            format: format.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        };
    let both: Vec<(String, [u8; 32])> = RECIPIENTS
        .iter()
        .map(|(n, sk)| (n.to_string(), f::recipient_public(sk)))
        .collect();
    let model: Vec<u8> = (0..256u32).map(|i| (i * 13 % 256) as u8).collect();
    #[allow(clippy::type_complexity)]
    let seeds: Vec<(&str, OutputHeader, Vec<(String, [u8; 32])>, ContentHeader, Vec<u8>, &SigningKey)> = vec![
        (
            "result-csv.cro",
            header(0, f::signer()),
            both[..1].to_vec(),
            content(ContentKind::Result, "", "csv", &["campaign", "reach", "value"], 2),
            b"campaign,reach,value\nspring-0,1204,5120.5\nspring-1,988,4211.25\n".to_vec(),
            f::signer(),
        ),
        (
            "table-json-two-recipients.cro",
            header(1, f::signer()),
            both.clone(),
            content(ContentKind::Table, "scores", "json", &["user_id_hash", "score"], 2),
            b"{\"user_id_hash\":\"9e3779b97f4a7c15\",\"score\":0.82}\n{\"user_id_hash\":\"3c6ef372fe94f82a\",\"score\":0.11}\n".to_vec(),
            f::signer(),
        ),
        (
            "metrics.cro",
            header(2, f::signer()),
            both[..1].to_vec(),
            content(ContentKind::Metrics, "", "json", &[], 0),
            br#"{"auc":0.71,"loss":0.4187}"#.to_vec(),
            f::signer(),
        ),
        (
            "artifact.cro",
            header(3, f::signer()),
            both[1..].to_vec(),
            content(ContentKind::Artifact, "conversion-model", "artifact", &[], 0),
            model,
            f::signer(),
        ),
        (
            "log-empty.cro",
            header(4, f::signer()),
            both[..1].to_vec(),
            content(ContentKind::Log, "", "text", &[], 0),
            Vec::new(),
            f::signer(),
        ),
        (
            "other-signer.cro",
            header(0, &other_signer),
            both[..1].to_vec(),
            content(ContentKind::Result, "", "csv", &["n"], 1),
            b"n\n7\n".to_vec(),
            &other_signer,
        ),
    ];
    for (name, h, recipients, c, data, signer) in seeds {
        let valid = |b: &[u8]| {
            recipients.iter().all(|(r, _)| {
                let sk = RECIPIENTS.iter().find(|(n, _)| n == r).unwrap().1;
                envelope::open(b, r, &sk)
                    .is_ok_and(|o| o.header == h && o.content == c && o.data[..] == data[..])
            })
        };
        let file = kept_or(T, name, valid, || {
            envelope::seal(&h, &recipients, &c, &data, signer).unwrap()
        });
        corpus.add(T, name, file);
    }
}

/// Arrow IPC streams as the host encodes tables (what a module's output looks like): every
/// column type a contract declares, one and several batches, nulls, an empty table.
fn ipc_seeds(corpus: &mut Corpus) {
    const T: &str = "arrow_ipc";
    let fixture =
        std::fs::read_to_string(crate::fuzz_dir().join("fixtures/contract.toml")).unwrap();
    let typed = fixture.replace(
        r#"schema = [ { name = "user_id", type = "string" }, { name = "value", type = "float64" } ]"#,
        r#"schema = [ { name = "user_id", type = "string" }, { name = "value", type = "float64" },
  { name = "b", type = "binary" }, { name = "t", type = "bool" }, { name = "i8", type = "int8" },
  { name = "u64", type = "uint64" }, { name = "f32", type = "float32" },
  { name = "d", type = "decimal(7,2)" }, { name = "day", type = "date" },
  { name = "at", type = "timestamp(ns, +05:30)" } ]"#,
    );
    assert_ne!(typed, fixture, "the fixture's conversions schema changed");
    let contract = cleanroom_policy::Contract::parse(&typed, "fixture").unwrap();
    let ds = contract.dataset("conversions").unwrap();
    let rows = r#"{"user_id":"u1","value":1.5,"b":"00ff","t":true,"i8":-8,"u64":18446744073709551615,"f32":0.25,"d":"12345.67","day":"2026-03-01","at":"2026-03-01T12:00:00"}
{"user_id":null,"value":null,"b":null,"t":null,"i8":null,"u64":null,"f32":null,"d":null,"day":null,"at":null}
{"user_id":"u2","value":-2.5e10,"b":"","t":false,"i8":127,"u64":0,"f32":-1.0,"d":"-0.01","day":"1970-01-01","at":"1969-12-31T23:59:59.999999999+00:00"}
"#;
    let batches = cleanroom_formats::tabular::parse_rows(ds, rows.as_bytes()).unwrap();
    let schema = batches[0].schema();
    let one = cleanroom_formats::ipc::encode(&schema, &batches).unwrap();
    let several =
        cleanroom_formats::ipc::encode(&schema, &[batches[0].slice(0, 1), batches[0].slice(1, 2)])
            .unwrap();
    let empty = cleanroom_formats::ipc::encode(&schema, &[]).unwrap();
    for (name, bytes) in [
        ("typed-one-batch", one),
        ("typed-two-batches", several),
        ("typed-empty", empty),
    ] {
        let (s, b) = cleanroom_formats::ipc::decode(bytes.clone()).unwrap();
        assert_eq!(s, schema);
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>() % 3, 0);
        corpus.add(T, name, bytes);
    }
}

fn pme_seeds(corpus: &mut Corpus) {
    const T: &str = "pme_key_material";
    let keys = f::pme_keys();
    for (name, len, footer) in [
        ("footer-16", 16, true),
        ("column-24", 24, false),
        ("column-32", 32, false),
    ] {
        let m = keys.key_material(&vec![0x2a; len], [0x0c; 12], footer);
        assert_eq!(keys.unwrap_data_key(&m), Ok(vec![0x2a; len]));
        corpus.add(T, name, m);
    }
    // A column under another master key (the room never holds it).
    let other = cleanroom_formats::pme::LocalWrapKeys::new("publisher-private", &[0x50; 32]);
    corpus.add(
        T,
        "other-master",
        other.key_material(&[0x2a; 16], [0x0c; 12], false),
    );
    // The key id alone, as a file sealed by Cleanroom carries it.
    corpus.add(T, "cleanroom-key-id", "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e");
}

pub fn formats_seeds(corpus: &mut Corpus) {
    let sealed = stream_seeds(corpus);
    identity_seeds(corpus, &sealed);
    key_seeds(corpus);
    let entries = audit_entries();
    audit_seeds(corpus, &entries);
    let jwe_json = jwe_seeds(corpus);
    kbs_seeds(corpus, &entries, &jwe_json);
    envelope_seeds(corpus, &entries);
    pme_seeds(corpus);
    ipc_seeds(corpus);

    // Every seed passes its target's entry function (the properties hold on them).
    type EntryFn = fn(&[u8]);
    let targets: [(&str, EntryFn); 9] = [
        ("sealed_stream", f::sealed_stream),
        ("output_envelope", f::output_envelope),
        ("key_file", f::key_file),
        ("file_identity", f::file_identity),
        ("kbs_json", f::kbs_json),
        ("jwe", f::jwe),
        ("audit_log", f::audit_log),
        ("pme_key_material", f::pme_key_material),
        ("arrow_ipc", crate::tabular::arrow_ipc),
    ];
    for (target, entry) in targets {
        for bytes in corpus.0[target].values() {
            entry(bytes);
        }
    }
}
