//! Contract parsing, digest, signatures and approvals: each refusal asserts its exact variant.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use base64::Engine;
use cleanroom_policy::approval;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::workload::ApprovalPayload;
use cleanroom_policy::{Contract, PolicyError, SignedContract, Workload};
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePublicKey, LineEnding};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 48]).unwrap()
}

fn pem(seed: u8) -> String {
    VerifyingKey::from(&key(seed))
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn member(name: &str, seed: u8) -> String {
    format!(
        "[[members]]\nname = \"{name}\"\nsigning_key = \"\"\"\n{}\"\"\"\nencryption_key = \"{}\"\n\n",
        pem(seed),
        base64::engine::general_purpose::STANDARD.encode([seed; 32])
    )
}

const DATASETS: &str = r#"
[[datasets]]
name = "impressions"
owner = "publisher"
format = "csv"
schema = [
  { name = "user_id", type = "string" },
  { name = "campaign", type = "string" },
  { name = "email", type = "string" },
]
allowed_fields = ["user_id", "campaign"]
location = "publisher/impressions.sealed"
key = { broker = "http://127.0.0.1:1", resource = "publisher/dataset/impressions" }

[[datasets]]
name = "conversions"
owner = "advertiser"
format = "json"
schema = [ { name = "user_id", type = "string" }, { name = "value", type = "float64" } ]
allowed_fields = ["user_id", "value"]
location = "advertiser/conversions.sealed"
key = { broker = "http://127.0.0.1:2", resource = "advertiser/dataset/conversions" }
"#;

const TAIL: &str = r#"
[attestation]
platforms = ["sim"]
allow_simulated = true
sim = { measurements = ["000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"] }

[outputs]
recipients = ["advertiser"]

[guards]
min_group_size = 50
"#;

fn contract_text() -> String {
    format!(
        "id = \"adtech\"\nversion = 1\n\n{}{}{DATASETS}{TAIL}",
        member("publisher", 1),
        member("advertiser", 2)
    )
}

fn parse(text: &str) -> Result<Contract, PolicyError> {
    Contract::parse(text, "contract.toml")
}

fn workload() -> Workload {
    Workload::parse(
        r#"
name = "reach"
kind = "query"
inputs = ["impressions", "conversions"]
sql = "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign"
[output]
recipients = ["advertiser"]
"#,
        "workload.toml",
    )
    .unwrap()
}

fn accept(c: &Contract, seed: u8) -> SignedMessage {
    SignedMessage::sign(
        &key(seed),
        MessageType::ContractAccept,
        c.digest().0,
        1,
        c.digest().0.to_vec(),
    )
}

fn approve(c: &Contract, w: &Workload, seed: u8) -> SignedMessage {
    SignedMessage::sign(
        &key(seed),
        MessageType::WorkloadApprove,
        c.digest().0,
        1,
        ApprovalPayload::for_workload(w).to_bytes(),
    )
}

fn signed() -> SignedContract {
    let c = parse(&contract_text()).unwrap();
    let sigs = [accept(&c, 1), accept(&c, 2)];
    SignedContract::verify(c, &sigs).unwrap()
}

#[test]
fn digest_ignores_comments_whitespace_and_key_order() {
    let a = parse(&contract_text()).unwrap();
    let reordered = contract_text().replace(
        "id = \"adtech\"\nversion = 1",
        "# a comment\nversion   =   1\nid = \"adtech\"  # trailing",
    );
    let b = parse(&reordered).unwrap();
    assert_eq!(a.digest(), b.digest());
    let changed = contract_text().replace("min_group_size = 50", "min_group_size = 49");
    assert_ne!(a.digest(), parse(&changed).unwrap().digest());
}

#[test]
fn rejects_unknown_field_naming_it_and_its_line() {
    let text = contract_text().replace("[outputs]", "[outputs]\nexfiltrate_to = \"x\"");
    let err = parse(&text).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PolicyError::Toml { .. }), "{err:?}");
    assert!(
        msg.contains("exfiltrate_to") && msg.contains("line"),
        "{msg}"
    );
}

#[test]
fn rejects_duplicate_member_name_with_line() {
    let text = format!(
        "id = \"x\"\nversion = 1\n{}{}{DATASETS}{TAIL}",
        member("publisher", 1),
        member("publisher", 2)
    );
    match parse(&text).unwrap_err() {
        PolicyError::DuplicateName {
            kind, name, line, ..
        } => {
            assert_eq!((kind, name.as_str()), ("member", "publisher"));
            assert_eq!(text.lines().nth(line - 1).unwrap(), "name = \"publisher\"");
            assert!(line > 5);
        }
        e => panic!("wrong error {e:?}"),
    }
}

#[test]
fn rejects_dataset_owner_who_is_not_a_member() {
    let text = contract_text().replace("owner = \"advertiser\"", "owner = \"mallory\"");
    match parse(&text).unwrap_err() {
        PolicyError::NotAMember { name, line, .. } => {
            assert_eq!(name, "mallory");
            assert!(text.lines().nth(line - 1).unwrap().contains("mallory"));
        }
        e => panic!("wrong error {e:?}"),
    }
}

#[test]
fn rejects_allowed_field_outside_schema() {
    let text = contract_text().replace(
        r#"allowed_fields = ["user_id", "value"]"#,
        r#"allowed_fields = ["user_id", "ssn"]"#,
    );
    match parse(&text).unwrap_err() {
        PolicyError::AllowedFieldNotInSchema {
            field,
            dataset,
            line,
            ..
        } => {
            assert_eq!((field.as_str(), dataset.as_str()), ("ssn", "conversions"));
            assert!(text.lines().nth(line - 1).unwrap().contains("ssn"));
        }
        e => panic!("wrong error {e:?}"),
    }
}

#[test]
fn rejects_output_recipient_who_is_not_a_member() {
    let text = contract_text().replace("recipients = [\"advertiser\"]", "recipients = [\"eve\"]");
    assert!(
        matches!(parse(&text).unwrap_err(), PolicyError::NotAMember { name, .. } if name == "eve")
    );
}

#[test]
fn rejects_dataset_location_escaping_data_dir() {
    for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b"] {
        let text = contract_text().replace("publisher/impressions.sealed", bad);
        assert!(
            matches!(parse(&text).unwrap_err(), PolicyError::InvalidField { ref field, .. } if field == "location"),
            "{bad}"
        );
    }
}

#[test]
fn rejects_key_resource_path_traversal() {
    let text = contract_text().replace("publisher/dataset/impressions", "publisher/../impressions");
    assert!(
        matches!(parse(&text).unwrap_err(), PolicyError::InvalidField { ref field, .. } if field == "key.resource")
    );
}

#[test]
fn rejects_sim_platform_without_allow_simulated() {
    let text = contract_text().replace("allow_simulated = true", "allow_simulated = false");
    assert!(
        matches!(parse(&text).unwrap_err(), PolicyError::InvalidField { ref field, .. } if field == "attestation.platforms")
    );
}

#[test]
fn rejects_malformed_member_key() {
    let text = contract_text().replacen(
        "-----BEGIN PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nAAAA",
        1,
    );
    assert!(
        matches!(parse(&text).unwrap_err(), PolicyError::InvalidField { ref field, .. } if field.contains("signing_key"))
    );
}

#[test]
fn contract_signed_by_every_member_verifies() {
    let s = signed();
    assert_eq!(s.digest(), s.contract().digest());
}

#[test]
fn rejects_contract_missing_a_member_signature() {
    let c = parse(&contract_text()).unwrap();
    let sigs = [accept(&c, 1)];
    assert!(matches!(
        SignedContract::verify(c, &sigs).unwrap_err(),
        PolicyError::MissingContractSignature { member } if member == "advertiser"
    ));
}

#[test]
fn rejects_contract_signature_from_non_member() {
    let c = parse(&contract_text()).unwrap();
    let sigs = [accept(&c, 1), accept(&c, 2), accept(&c, 9)];
    assert!(matches!(
        SignedContract::verify(c, &sigs).unwrap_err(),
        PolicyError::SignerNotAMember { .. }
    ));
}

#[test]
fn rejects_acceptance_of_another_contract() {
    let c = parse(&contract_text()).unwrap();
    let other = parse(&contract_text().replace("adtech", "other")).unwrap();
    let sigs = [accept(&c, 1), accept(&other, 2)];
    assert!(matches!(
        SignedContract::verify(c, &sigs).unwrap_err(),
        PolicyError::WrongContract { member, .. } if member == "advertiser"
    ));
}

#[test]
fn rejects_approval_used_as_acceptance() {
    let c = parse(&contract_text()).unwrap();
    let w = workload();
    let sigs = [accept(&c, 1), approve(&c, &w, 2)];
    assert!(matches!(
        SignedContract::verify(c, &sigs).unwrap_err(),
        PolicyError::WrongMessageType { .. }
    ));
}

#[test]
fn workload_approved_by_every_owner_passes() {
    let s = signed();
    let w = workload();
    let a = approval::check(
        &s,
        &w,
        &[approve(s.contract(), &w, 1), approve(s.contract(), &w, 2)],
    )
    .unwrap();
    assert_eq!(
        a.approvers().collect::<Vec<_>>(),
        ["advertiser", "publisher"]
    );
}

#[test]
fn rejects_workload_missing_an_owner_approval() {
    let s = signed();
    let w = workload();
    assert!(matches!(
        approval::check(&s, &w, &[approve(s.contract(), &w, 1)]).unwrap_err(),
        PolicyError::MissingApproval { owner, .. } if owner == "advertiser"
    ));
}

#[test]
fn rejects_approval_of_edited_sql() {
    let s = signed();
    let w = workload();
    let mut edited = w.clone();
    edited.sql = Some("SELECT email FROM impressions".into());
    let approvals = [approve(s.contract(), &w, 1), approve(s.contract(), &w, 2)];
    assert!(matches!(
        approval::check(&s, &edited, &approvals).unwrap_err(),
        PolicyError::ApprovalForOtherWorkload { .. }
    ));
}

#[test]
fn rejects_workload_weakening_the_group_guard() {
    let s = signed();
    let mut w = workload();
    w.guards.min_group_size = Some(2);
    assert!(matches!(
        approval::check(&s, &w, &[]).unwrap_err(),
        PolicyError::GuardWeakerThanContract {
            field: "min_group_size",
            ..
        }
    ));
}

#[test]
fn rejects_workload_output_to_unagreed_recipient() {
    let s = signed();
    let mut w = workload();
    w.output.recipients = vec!["publisher".into()];
    assert!(matches!(
        approval::check(&s, &w, &[]).unwrap_err(),
        PolicyError::RecipientNotAllowed { .. }
    ));
}
