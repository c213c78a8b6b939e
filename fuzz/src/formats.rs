//! Entry functions for the `cleanroom-formats` parsers of untrusted bytes: the sealed stream,
//! the output envelope, dataset and member key files, file identities (sealed-stream header
//! digest, the Thrift FileCryptoMetaData of a PME Parquet file), the KBS protocol's JSON
//! bodies and its JWE, the audit log.
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by `host/formats/tests/fuzz_corpus.rs`
//! (the corpus replay in CI), each next to `parts.rs`. Uses only `cleanroom_formats`,
//! `cleanroom_policy` and crates the formats crate depends on (`base64`, `hex`, `p384`,
//! `serde`, `serde_json`).
//!
//! Everything secret is fixed here ([`stream_key`], [`signer`], [`RECIPIENTS`],
//! [`jwe_key`]) and `fuzz/seedgen` seals and signs the seeds with the same keys, so the seeds
//! open and the fuzzer mutates from files that get past every check. Randomness inside the
//! crate (nonce prefixes, content keys, HPKE and ECDH ephemerals) changes ciphertexts, never
//! what an entry function asserts.

use std::io::Read;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use cleanroom_formats::audit::{self, Entry, ParseError};
use cleanroom_formats::envelope::{self, SIGNATURE_DOMAIN, SIGNATURE_LEN};
use cleanroom_formats::identity::{FileIdentity, IdentityError, MAX_AAD_FILE_UNIQUE};
use cleanroom_formats::jwe::{self, Jwe};
use cleanroom_formats::kbs_protocol::{
    AttestResult, Attestation, AuditHead, AuthExtra, AuthRequest, Challenge, ChallengeExtra,
    ErrorBody, GovernanceRequest, GovernanceResult, RuntimeData,
};
use cleanroom_formats::pme::LocalWrapKeys;
use cleanroom_formats::stream::{self, DataKey, MAX_NAME_LEN, MAX_SEGMENT_SIZE};
use cleanroom_formats::{StreamError, keyfile, keys};
use cleanroom_policy::contract::DataFormat;
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use super::parts;

// ------------------------------------------------------------------------ fixed keys

/// The data key every sealed-stream seed is sealed under.
pub const STREAM_KEY_ID: [u8; 16] = [0x5e; 16];
const STREAM_KEY: [u8; 32] = [0x6b; 32];
/// The dataset name the stream seeds are sealed for (the target opens with and without it).
pub const STREAM_NAME: &str = "impressions";

pub fn stream_key() -> DataKey {
    DataKey::from_parts(STREAM_KEY_ID, STREAM_KEY)
}

/// The run identity key that signs the envelope seeds (and re-signs mutated envelopes).
pub fn signer() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_slice(&[0x31; 48]).expect("a P-384 scalar"))
}

/// [`signer`]'s public key as an envelope header names it.
pub fn signer_hex() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| envelope::host_key_hex(signer().verifying_key()))
}

/// The envelope recipients: name and X25519 private key.
pub const RECIPIENTS: [(&str, [u8; 32]); 2] =
    [("advertiser", [0x41; 32]), ("publisher", [0x42; 32])];

/// The X25519 public key of a recipient's private key.
pub fn recipient_public(private: &[u8; 32]) -> [u8; 32] {
    envelope::public_key(private).expect("any 32 bytes are an X25519 private key")
}

/// The room's ephemeral P-384 key the JWE seeds are encrypted to.
pub fn jwe_key() -> &'static p384::SecretKey {
    static K: OnceLock<p384::SecretKey> = OnceLock::new();
    K.get_or_init(|| p384::SecretKey::from_slice(&[0x51; 48]).expect("a P-384 scalar"))
}

// ------------------------------------------------------------------------ sealed stream

/// A reader handing out at most `step` bytes per call, so that `open_into` meets short
/// reads at every offset.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A sealed file (header and segments): [`stream::peek_header`],
/// [`FileIdentity::of_sealed_stream`], [`stream::open`] with the fixed key (with and without
/// the expected name) and [`stream::open_into`] through a reader of short reads.
/// Properties: a parsed header re-encodes to the bytes it was read from (the file identity
/// relies on it) and stays within its bounds; the identity is that of the header bytes;
/// `open` and `open_into` agree (same plaintext or same error); the expected name only adds
/// a refusal; what opens, sealed again with the header's name and segment size, opens to the
/// same plaintext.
pub fn sealed_stream(data: &[u8]) {
    let key = stream_key();
    let peeked = stream::peek_header(data);
    let header = peeked.as_ref().ok().cloned();
    let identity = FileIdentity::of_sealed_stream(data);
    if let Some(h) = &header {
        let raw = h.encode();
        assert!(data.starts_with(&raw), "the header re-encodes to its bytes");
        assert!((1..=MAX_SEGMENT_SIZE).contains(&h.segment_size));
        assert!(h.name.len() <= MAX_NAME_LEN);
        assert_eq!(
            identity.as_ref().ok(),
            FileIdentity::of_sealed_stream(&raw).as_ref().ok(),
            "the identity is the header's"
        );
    } else if let Err(e) = &peeked {
        assert_eq!(
            identity.err(),
            Some(IdentityError::NotASealedStream(e.to_string())),
            "no header, no identity"
        );
    }

    let whole = stream::open(&key, None, data);
    let mut chunks = Vec::new();
    let step = 1 + data.len() % 61;
    let streamed = stream::open_into(&key, None, &mut Trickle { data, step }, |c| {
        chunks.extend_from_slice(c);
        Ok(())
    });
    match (&whole, &streamed) {
        (Ok(plain), Ok(h)) => {
            assert_eq!(plain[..], chunks[..], "open and open_into agree");
            assert_eq!(Some(h), header.as_ref());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "same error"),
        _ => panic!("open and open_into disagree: {whole:?} / {streamed:?}"),
    }
    let named = stream::open(&key, Some(STREAM_NAME), data);
    match &header {
        Some(h) if h.name == STREAM_NAME => assert_eq!(named.is_ok(), whole.is_ok()),
        // The key is checked before the name.
        Some(h) if !matches!(whole, Err(StreamError::WrongKey { .. })) => assert!(
            matches!(&named, Err(StreamError::WrongName { found, .. }) if found == &h.name),
            "a stream for another name is refused: {named:?}"
        ),
        _ => assert_eq!(
            named.as_ref().err().map(ToString::to_string),
            whole.as_ref().err().map(ToString::to_string),
            "without a header the name adds nothing"
        ),
    }

    if let (Ok(plain), Some(h)) = (&whole, &header) {
        let mut out = Vec::new();
        stream::seal(&key, &h.name, h.segment_size, &mut &plain[..], &mut out)
            .expect("what opened seals again");
        let again = stream::open(&key, Some(&h.name), &out).expect("a fresh sealing opens");
        assert_eq!(again[..], plain[..], "sealed stream round trip");
    }
}

// ------------------------------------------------------------------------ output envelope

/// An output file (`CLRMOUT2`): [`envelope::inspect`], [`envelope::verify_signature`] and
/// [`envelope::open`] as each fixed recipient it names (as the first, when it does not
/// verify); then the same on the input's body (all but its last 96 bytes) re-signed by
/// [`signer`] when its header names that key, so that mutated metadata and content get past
/// the signature to the key unwrap and the stream. Properties: what verifies, inspects to
/// the same header; what does not verify does not open; the header's JSON round-trips with
/// the same hash; a body re-signed by the key its header names verifies; an opened output
/// sealed again opens to the same header, content header and data.
pub fn output_envelope(data: &[u8]) {
    check_envelope(data);
    if data.len() < SIGNATURE_LEN {
        return;
    }
    let body = &data[..data.len() - SIGNATURE_LEN];
    match envelope::inspect(data) {
        Ok((h, _)) if h.host_key == signer_hex() => {}
        _ => return,
    }
    let sig: Signature = signer().sign(&[SIGNATURE_DOMAIN, body].concat());
    let mut file = body.to_vec();
    file.extend_from_slice(&sig.to_bytes());
    assert!(
        check_envelope(&file),
        "a body signed by the key its header names verifies"
    );
}

/// The checks on one file; whether its signature verifies. Opens only as the fixed
/// recipients the file names (each `open` verifies the signature again: slow in the
/// debug-build replay).
fn check_envelope(file: &[u8]) -> bool {
    let inspected = envelope::inspect(file);
    if let Ok((h, _)) = &inspected {
        let json = serde_json::to_vec(h).expect("a header serialises");
        let again: envelope::OutputHeader =
            serde_json::from_slice(&json).expect("a serialised header parses");
        assert_eq!(&again, h, "header JSON round trip");
        assert_eq!(envelope::header_hash(&again), envelope::header_hash(h));
    }
    let verified = envelope::verify_signature(file);
    let Ok((header, _)) = &verified else {
        // Opening refuses with the same error verification gives.
        let opened = envelope::open(file, RECIPIENTS[0].0, &RECIPIENTS[0].1);
        assert_eq!(
            opened.err().map(|e| e.to_string()),
            verified.err().map(|e| e.to_string()),
            "what does not verify does not open"
        );
        return false;
    };
    let (inspected, names) = inspected.expect("what verifies can be inspected");
    assert_eq!(&inspected, header);
    for (name, private) in RECIPIENTS {
        if !names.iter().any(|n| n == name) {
            continue;
        }
        let Ok(o) = envelope::open(file, name, &private) else {
            continue;
        };
        assert_eq!(&o.header, header);
        if o.header.host_key != signer_hex() {
            continue;
        }
        let pk = recipient_public(&private);
        let resealed = envelope::seal(
            &o.header,
            &[(name.to_string(), pk)],
            &o.content,
            &o.data,
            signer(),
        )
        .expect("an opened output seals again");
        let again = envelope::open(&resealed, name, &private).expect("a fresh envelope opens");
        assert_eq!(
            (&again.header, &again.content, &again.data[..]),
            (&o.header, &o.content, &o.data[..]),
            "envelope round trip"
        );
    }
    true
}

// ------------------------------------------------------------------------ key files

/// A scratch file for the parsers that take a path, one per thread (the replay tests run in
/// threads of one process).
fn scratch_path(tag: &str) -> std::path::PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!(
        "cleanroom-fuzz-{tag}-{}-{thread}",
        std::process::id()
    ))
}

/// A key file of any kind: a dataset key file ([`keyfile::from_json`],
/// [`keyfile::released_from_json`], [`keyfile::read`]), a member's signing key
/// ([`keys::signing_key`]), encryption key ([`keys::encryption_key`]) or public key
/// ([`keys::verifying_key_from_pem_file`]); the path-taking readers read the input from a
/// scratch file. Properties: `from_json` and `released_from_json` accept the same files and
/// read the same key; `read` also takes a withheld key, and without one reads what
/// `from_json` reads; every key that parses, written back as the crate writes it, parses to
/// the same key (and file identity).
pub fn key_file(data: &[u8]) {
    let plain = keyfile::from_json(data, "fuzz.key");
    let released = keyfile::released_from_json(data, "fuzz.key");
    assert_eq!(
        plain.is_ok(),
        released.is_ok(),
        "from_json ⇔ released_from_json"
    );
    if let (Ok((key, dataset)), Ok(r)) = (&plain, &released) {
        assert_eq!(key.id, r.key.id);
        assert_eq!(key.key_bytes(), r.key.key_bytes());
        assert_eq!(dataset, &r.dataset);
        let (k2, d2) =
            keyfile::from_json(&keyfile::to_json(key, dataset), "again").expect("to_json parses");
        assert_eq!(
            (k2.id, k2.key_bytes(), &d2),
            (key.id, key.key_bytes(), dataset)
        );
        if let Some(id) = &r.file_id {
            check_identity_text(id);
            let r2 = keyfile::released_from_json(
                &keyfile::released_to_json(&r.key, &r.dataset, id),
                "again",
            )
            .expect("released_to_json parses");
            assert_eq!(r2.file_id.as_ref(), Some(id), "file identity round trip");
            assert_eq!(r2.key.key_bytes(), r.key.key_bytes());
        }
    }

    let path = scratch_path("key");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let read = keyfile::read(&path);
    let signing = keys::signing_key(&path);
    let encryption = keys::encryption_key(&path);
    let _ = std::fs::remove_file(&path);

    match (&read, &plain) {
        (Ok((owner, dataset)), Ok((key, d))) => {
            assert!(owner.withheld.is_none());
            assert_eq!(
                (owner.key.id, owner.key.key_bytes(), dataset),
                (key.id, key.key_bytes(), d)
            );
        }
        (Ok((owner, _)), Err(_)) => {
            assert!(
                owner.withheld.is_some(),
                "read and from_json differ only in withheld keys"
            );
        }
        (Err(_), Ok(_)) => panic!("from_json reads a key file read refuses"),
        (Err(_), Err(_)) => {}
    }

    if let Ok(sk) = signing {
        let pem = sk
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a signing key encodes");
        let again = cleanroom_policy::message::signing_key_from_pem(&pem).expect("and parses");
        assert_eq!(again.to_bytes(), sk.to_bytes(), "signing key round trip");
    }
    if let Ok(k) = encryption {
        let text = format!("{}\n", B64.encode(k.as_slice()));
        let path = scratch_path("enc");
        if std::fs::write(&path, text).is_ok() {
            let again = keys::encryption_key(&path);
            let _ = std::fs::remove_file(&path);
            assert_eq!(
                again.expect("and parses")[..],
                k[..],
                "encryption key round trip"
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(vk) = keys::verifying_key_from_pem_file(text, std::path::Path::new("fuzz.pub"))
    {
        let pem = vk
            .to_public_key_pem(LineEnding::LF)
            .expect("a public key encodes");
        let again = keys::verifying_key_from_pem_file(&pem, std::path::Path::new("again"))
            .expect("and parses");
        assert_eq!(again, vk, "public key round trip");
    }
}

// ------------------------------------------------------------------------ file identity

/// Display, parse and JSON of an identity give it back.
fn check_identity_text(id: &FileIdentity) {
    let text = id.to_string();
    assert_eq!(
        text.parse::<FileIdentity>().as_ref(),
        Ok(id),
        "identity text round trip"
    );
    let json = serde_json::to_string(id).expect("an identity serialises");
    let again: FileIdentity = serde_json::from_str(&json).expect("and parses");
    assert_eq!(&again, id);
    if let FileIdentity::Parquet(u) = id {
        assert!(!u.is_empty() && u.len() <= MAX_AAD_FILE_UNIQUE);
    }
}

/// A sealed dataset file as the room reads its identity before asking for the key:
/// [`FileIdentity::of`] for each format ([`FileIdentity::of_encrypted_parquet`] parses the
/// Thrift compact FileCryptoMetaData of a PME Parquet file, [`FileIdentity::of_sealed_stream`]
/// the sealed-stream header); and the input as identity text (`FromStr`, as a broker's key
/// record carries it). Properties: `of` is the per-format function; every identity that
/// parses round-trips through its text and JSON and keeps `aad_file_unique` within bounds.
pub fn file_identity(data: &[u8]) {
    let parquet = FileIdentity::of_encrypted_parquet(data);
    let sealed = FileIdentity::of_sealed_stream(data);
    for format in [DataFormat::Csv, DataFormat::Json, DataFormat::File] {
        assert_eq!(FileIdentity::of(format, data).ok(), sealed.clone().ok());
    }
    assert_eq!(
        FileIdentity::of(DataFormat::Parquet, data).ok(),
        parquet.clone().ok()
    );
    for id in [parquet.ok(), sealed.ok()].iter().flatten() {
        check_identity_text(id);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = text.parse::<FileIdentity>()
    {
        check_identity_text(&id);
        assert_eq!(
            id.to_string(),
            text.to_ascii_lowercase(),
            "identity text is canonical"
        );
    }
}

// ------------------------------------------------------------------------ PME key material

/// The master key the PME key material seeds are wrapped under, and its id.
pub const PME_MASTER_ID: &str = "publisher-master";
const PME_MASTER: [u8; 32] = [0x4d; 32];

pub fn pme_keys() -> LocalWrapKeys {
    LocalWrapKeys::new(PME_MASTER_ID, &PME_MASTER)
}

/// [`LocalWrapKeys::unwrap_data_key`] over a footer's or a column's key metadata (JSON key
/// material with an LKW1-wrapped data key): the room reads the footer's before anything in
/// the file is authenticated. Properties: an unwrapped data key is an AES key (16, 24 or
/// 32 bytes), and wrapping it again under the same master key unwraps to the same key.
pub fn pme_key_material(data: &[u8]) {
    let keys = pme_keys();
    if let Ok(dek) = keys.unwrap_data_key(data) {
        assert!([16, 24, 32].contains(&dek.len()), "{} bytes", dek.len());
        let again = keys.key_material(&dek, [0x11; 12], false);
        assert_eq!(keys.unwrap_data_key(&again).as_deref(), Ok(&dek[..]));
    }
}

// ------------------------------------------------------------------------ KBS protocol

/// Parse `data` as `T`; when it parses, serialising, parsing and serialising again gives the
/// same JSON.
fn json_round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    let v: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&v).expect("a parsed body serialises");
    let again: T = serde_json::from_slice(&json).expect("a serialised body parses");
    assert_eq!(
        serde_json::to_vec(&again).expect("serialises"),
        json,
        "{} JSON round trip",
        std::any::type_name::<T>()
    );
    Some(v)
}

/// What a broker reads of runtime data, and the canonical JSON REPORT_DATA binds.
fn check_runtime_data(rd: &RuntimeData) {
    let canonical = rd.canonical_json();
    assert_eq!(
        rd.canonical_json(),
        canonical,
        "canonical JSON is deterministic"
    );
    let again: RuntimeData =
        serde_json::from_slice(&canonical).expect("canonical runtime data parses");
    assert_eq!(
        again.canonical_json(),
        canonical,
        "canonical JSON round trip"
    );
    for e in &rd.audit_proof {
        let _hash = e.compute_hash();
    }
}

/// A KBS protocol body, as the broker (auth request, attestation, governance request) or
/// the room (challenge, attestation result, error body, governance result, JWE) reads it:
/// `serde_json` into each type, [`ChallengeExtra::from_value`] on the body and on its
/// `extra-params`, [`RuntimeData::canonical_json`], the audit proof's entry hashes.
/// Properties: every type that parses round-trips through JSON; canonical runtime data is
/// deterministic and round-trips.
pub fn kbs_json(data: &[u8]) {
    if let Some(r) = json_round_trip::<AuthRequest>(data) {
        let _ = serde_json::from_value::<AuthExtra>(r.extra_params);
    }
    if let Some(c) = json_round_trip::<Challenge>(data) {
        let extra = ChallengeExtra::from_value(&c.extra_params);
        if let Some(head) = extra.audit_head {
            let json = serde_json::to_value(&head).expect("a head serialises");
            assert_eq!(serde_json::from_value::<AuditHead>(json).ok(), Some(head));
        }
    }
    let _ = json_round_trip::<AuthExtra>(data);
    let _ = json_round_trip::<AuditHead>(data);
    let _ = json_round_trip::<ChallengeExtra>(data);
    if let Some(rd) = json_round_trip::<RuntimeData>(data) {
        check_runtime_data(&rd);
    }
    if let Some(a) = json_round_trip::<Attestation>(data) {
        check_runtime_data(&a.runtime_data);
    }
    let _ = json_round_trip::<AttestResult>(data);
    let _ = json_round_trip::<ErrorBody>(data);
    let _ = json_round_trip::<GovernanceRequest>(data);
    let _ = json_round_trip::<GovernanceResult>(data);
    let _ = json_round_trip::<Jwe>(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = ChallengeExtra::from_value(&v);
        let _ = ChallengeExtra::from_value(&v["extra-params"]);
    }
}

// ------------------------------------------------------------------------ JWE

/// A KBS resource response: a flattened JWE (JSON), or, for an input that is not one,
/// parts: protected header JSON, encrypted key, IV, ciphertext, tag (raw bytes,
/// base64url-encoded here, so that mutations reach the header JSON, the JWK and the key
/// unwrap rather than break the base64). [`jwe::decrypt`] with [`jwe_key`]; what decrypts
/// is read as the released key file the room expects. Properties: the JWE's JSON round-trips;
/// a decrypted plaintext encrypted again decrypts to the same bytes.
pub fn jwe(data: &[u8]) {
    let jwe = match json_round_trip::<Jwe>(data) {
        Some(j) => j,
        None => {
            let p = parts::split(data);
            let part = |i: usize| B64U.encode(p.get(i).copied().unwrap_or_default());
            Jwe {
                protected: part(0),
                encrypted_key: part(1),
                iv: part(2),
                ciphertext: part(3),
                tag: part(4),
            }
        }
    };
    let key = jwe_key();
    let Ok(plain) = jwe::decrypt(key, &jwe) else {
        return;
    };
    let again = jwe::encrypt(&key.public_key(), &plain);
    let reopened = jwe::decrypt(key, &again).expect("a fresh JWE decrypts");
    assert_eq!(reopened[..], plain[..], "JWE round trip");
    let _ = keyfile::released_from_json(&plain, "resource");
}

// ------------------------------------------------------------------------ audit log

/// The audit log's bytes: [`audit::torn_tail`], [`audit::parse`], each line as an [`Entry`]
/// ([`Entry::compute_hash`], [`Entry::checkpoint_message`]), and [`audit::parse_anchor`] on
/// the text. Properties: a torn tail starts after the last newline and `parse` reports it
/// with its length, and the log cut there is not torn; a parsed log has one entry per
/// non-blank line, and written back (one JSON line each) parses to the same entries with the
/// same hashes; an anchor that parses, printed again, parses the same.
pub fn audit_log(data: &[u8]) {
    let parsed = audit::parse(data);
    match audit::torn_tail(data) {
        Some(cut) => {
            assert!(cut < data.len());
            assert!(cut == 0 || data[cut - 1] == b'\n');
            assert!(!data[cut..].contains(&b'\n'));
            assert!(
                matches!(parsed, Err(ParseError::TornLastLine { bytes, .. }) if bytes == data.len() - cut),
                "a torn tail is reported with its length"
            );
            assert_eq!(audit::torn_tail(&data[..cut]), None);
        }
        None => assert!(!matches!(parsed, Err(ParseError::TornLastLine { .. }))),
    }
    if let Ok(entries) = &parsed {
        let text = std::str::from_utf8(data).expect("a parsed log is UTF-8");
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(entries.len(), lines, "one entry per line");
        let mut log = Vec::new();
        for e in entries {
            log.extend(serde_json::to_vec(e).expect("an entry serialises"));
            log.push(b'\n');
            let _ = e.checkpoint_message();
        }
        let again = audit::parse(&log).expect("a written log parses");
        assert_eq!(&again, entries, "audit log round trip");
        for (a, b) in again.iter().zip(entries) {
            assert_eq!(a.compute_hash(), b.compute_hash());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(64) {
            if let Ok(e) = serde_json::from_str::<Entry>(line) {
                let _hash = e.compute_hash();
            }
            if let Some((seq, hash)) = audit::parse_anchor(line) {
                assert_eq!(
                    audit::parse_anchor(&format!("{seq}:{hash}")),
                    Some((seq, hash)),
                    "anchor round trip"
                );
            }
        }
    }
}
