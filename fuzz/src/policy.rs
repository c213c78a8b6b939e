//! Entry functions for the `cleanroom-policy` parsers: contract and workload TOML, COSE_Sign1
//! signed messages (bytes and base64).
//!
//! Included by `fuzz/src/lib.rs` (the fuzz targets) and by `policy/tests/fuzz_corpus.rs` (the
//! corpus replay in CI). Uses only `cleanroom_policy` and `std`.

use std::sync::OnceLock;

use cleanroom_policy::guards::EffectiveGuards;
use cleanroom_policy::proposal::ProposalPayload;
use cleanroom_policy::workload::ApprovalPayload;
use cleanroom_policy::{Contract, ContractDigest, SignedMessage, Workload, sha256_hex};

/// A valid two-member contract (written by `fuzz/seedgen`) that workloads are checked
/// against. `None` if it stops parsing after a format change: the targets then skip the
/// contract checks rather than fail.
fn fixture_contract() -> Option<&'static Contract> {
    static CONTRACT: OnceLock<Option<Contract>> = OnceLock::new();
    CONTRACT
        .get_or_init(|| Contract::parse(include_str!("../fixtures/contract.toml"), "fixture").ok())
        .as_ref()
}

/// `contract.toml` text: [`Contract::parse`], then the digest and lookups of what parsed.
pub fn contract_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(contract) = Contract::parse(text, "contract.toml") else {
        return;
    };
    let json = contract.canonical_json();
    let digest = contract.digest();
    // The digest is SHA-256 of the canonical JSON, and that is JSON.
    assert_eq!(digest.hex(), sha256_hex(&json));
    assert!(
        std::str::from_utf8(&json).is_ok(),
        "canonical JSON is UTF-8"
    );
    assert_eq!(ContractDigest::from_hex(&digest.hex()), Some(digest));
    // Parsing is deterministic.
    let again = Contract::parse(text, "contract.toml").expect("a contract parses twice");
    assert_eq!(again.digest(), digest);
    for m in &contract.members {
        assert!(contract.member(m.name.get_ref()).is_some());
    }
    for d in &contract.datasets {
        assert!(contract.dataset(d.name.get_ref()).is_some());
    }
}

/// `workload.toml` text: [`Workload::parse`] (and the proposal payload built from it), the
/// digest and approval payload, and the checks against the fixture contract.
pub fn workload_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A proposal carries workload text from another member; building one parses it too.
    let _ = ProposalPayload::new(text, "workload.toml", None).map(|p| p.to_bytes());
    let Ok(workload) = Workload::parse(text, "workload.toml") else {
        return;
    };
    let digest = workload.digest();
    assert_eq!(digest.hex(), sha256_hex(&workload.canonical_json()));
    // What owners sign round-trips.
    let approval = ApprovalPayload::for_workload(&workload);
    assert_eq!(
        ApprovalPayload::from_bytes(&approval.to_bytes()),
        Some(approval)
    );
    if let Some(contract) = fixture_contract()
        && workload.check_against(contract).is_ok()
    {
        let guards = EffectiveGuards::for_run(contract, &workload);
        let _ = guards.group_released(guards.min_group_size);
    }
}

/// COSE_Sign1 bytes: [`SignedMessage::from_bytes`].
pub fn cose_bytes(data: &[u8]) {
    if let Ok(msg) = SignedMessage::from_bytes(data) {
        check_message(&msg);
    }
}

/// One base64 COSE_Sign1 message (a line of a `.sigs` / `.approvals` file):
/// [`SignedMessage::from_base64`].
pub fn cose_base64(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = SignedMessage::from_base64(text) {
        check_message(&msg);
    }
}

/// What is done with a parsed message before its signature is checked: re-encoding (the
/// room stores messages it received), the approval payload, the signer lookup.
fn check_message(msg: &SignedMessage) {
    let bytes = msg.to_bytes();
    let again = SignedMessage::from_bytes(&bytes).expect("a re-encoded message parses");
    assert_eq!(again.kid, msg.kid);
    assert_eq!(again.message_type, msg.message_type);
    assert_eq!(again.contract_digest, msg.contract_digest);
    assert_eq!(again.created_at, msg.created_at);
    assert_eq!(again.payload, msg.payload);
    assert_eq!(again.to_bytes(), bytes, "re-encoding is stable");
    let b64 = SignedMessage::from_base64(&msg.to_base64()).expect("base64 round trip");
    assert_eq!(b64.payload, msg.payload);
    let _ = ApprovalPayload::from_bytes(&msg.payload);
    if let Some(contract) = fixture_contract() {
        let _ = contract.member_by_kid(&msg.kid);
    }
}
