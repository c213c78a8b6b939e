//! Contract parsing, digest, signatures and approvals: each refusal asserts its exact variant.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use base64::Engine;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload};
use cleanroom_policy::{Contract, PolicyError, SignedContract, Workload};
use cleanroom_policy::{approval, governance, proposal};
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

const USAGE: approval::Usage = approval::Usage {
    now: 1_000,
    runs: Some(0),
};

/// An approval by member `seed` signed at `at`, holding until `expires_at` for `max_runs`.
fn approve_limited(
    c: &Contract,
    w: &Workload,
    seed: u8,
    at: u64,
    expires_at: Option<u64>,
    max_runs: Option<u64>,
) -> SignedMessage {
    SignedMessage::sign(
        &key(seed),
        MessageType::WorkloadApprove,
        c.digest().0,
        at,
        ApprovalPayload::for_workload(w)
            .limited(expires_at, max_runs)
            .to_bytes(),
    )
}

fn revoke(c: &Contract, w: &Workload, seed: u8, at: u64) -> SignedMessage {
    SignedMessage::sign(
        &key(seed),
        MessageType::WorkloadRevoke,
        c.digest().0,
        at,
        RevocationPayload {
            workload_digest: w.digest().hex(),
        }
        .to_bytes(),
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

/// Every column type of `docs/formats.md` parses; a type written before the richer types
/// existed keeps its spelling, so the digest of an existing contract does not change.
#[test]
fn column_types_parse_and_keep_their_spelling_in_the_digest() {
    let text = contract_text();
    let typed = text.replacen(
        r#"type = "float64""#,
        r#"type = "timestamp(us, +05:30)""#,
        1,
    );
    let c = parse(&typed).unwrap();
    let ty = c.datasets[1]
        .schema
        .iter()
        .find(|f| f.ty.to_string() == "timestamp(us, +05:30)")
        .map(|f| f.ty.clone());
    assert_eq!(
        ty,
        Some(cleanroom_policy::contract::FieldType::Timestamp {
            unit: cleanroom_policy::contract::TimeUnit::Microsecond,
            timezone: Some("+05:30".into()),
        })
    );
    // Spaces are the writer's: the same type, the same digest.
    let spaced = text.replacen(
        r#"type = "float64""#,
        r#"type = "timestamp( us ,+05:30 )""#,
        1,
    );
    assert_eq!(parse(&spaced).unwrap().digest(), c.digest());
    assert_ne!(parse(&text).unwrap().digest(), c.digest());
}

/// A region time zone (whose offsets depend on the room's tz database) or a misspelled
/// type is refused, naming the type and its line.
#[test]
fn rejects_unknown_column_type_naming_it_and_its_line() {
    for bad in ["timestamp(us, Europe/Paris)", "decimal(40,2)", "int"] {
        let text = contract_text().replacen(r#"type = "float64""#, &format!("type = \"{bad}\""), 1);
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PolicyError::Toml { .. }), "{err:?}");
        assert!(
            msg.contains(&format!("unknown column type `{bad}`")) && msg.contains("line"),
            "{msg}"
        );
    }
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
        USAGE,
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
        approval::check(&s, &w, &[approve(s.contract(), &w, 1)], USAGE).unwrap_err(),
        PolicyError::MissingApproval { owner, .. } if owner == "advertiser"
    ));
}

#[test]
fn revoked_approval_stops_the_workload_until_the_owner_approves_again() {
    let s = signed();
    let w = workload();
    let c = s.contract();
    let mut msgs = vec![approve(c, &w, 1), approve(c, &w, 2), revoke(c, &w, 2, 5)];
    assert!(matches!(
        approval::check(&s, &w, &msgs, USAGE).unwrap_err(),
        PolicyError::ApprovalRevoked { member, .. } if member == "advertiser"
    ));
    // A revocation signed at the same second as an approval wins the tie.
    msgs.push(approve_limited(c, &w, 2, 5, None, None));
    assert!(matches!(
        approval::check(&s, &w, &msgs, USAGE).unwrap_err(),
        PolicyError::ApprovalRevoked { .. }
    ));
    // A later approval restores it.
    msgs.push(approve_limited(c, &w, 2, 6, None, None));
    approval::check(&s, &w, &msgs, USAGE).unwrap();
}

#[test]
fn revocation_replayed_from_another_workload_is_refused() {
    let s = signed();
    let w = workload();
    let mut other = w.clone();
    other.name = "other".into();
    let c = s.contract();
    let msgs = [
        approve(c, &w, 1),
        approve(c, &w, 2),
        revoke(c, &other, 2, 5),
    ];
    assert!(matches!(
        approval::check(&s, &w, &msgs, USAGE).unwrap_err(),
        PolicyError::ApprovalForOtherWorkload { member, .. } if member == "advertiser"
    ));
}

#[test]
fn expired_approval_is_refused() {
    let s = signed();
    let w = workload();
    let c = s.contract();
    let msgs = [
        approve(c, &w, 1),
        approve_limited(c, &w, 2, 1, Some(1_000), None),
    ];
    assert!(matches!(
        approval::check(&s, &w, &msgs, USAGE).unwrap_err(),
        PolicyError::ApprovalExpired { member, expired_at: 1_000, .. } if member == "advertiser"
    ));
    let before = approval::Usage {
        now: 999,
        runs: Some(0),
    };
    approval::check(&s, &w, &msgs, before).unwrap();
}

#[test]
fn approval_run_cap_is_enforced_where_runs_are_counted() {
    let s = signed();
    let w = workload();
    let c = s.contract();
    let msgs = [
        approve(c, &w, 1),
        approve_limited(c, &w, 2, 1, None, Some(2)),
    ];
    let runs = |n| approval::Usage {
        now: 1_000,
        runs: n,
    };
    approval::check(&s, &w, &msgs, runs(Some(1))).unwrap();
    assert!(matches!(
        approval::check(&s, &w, &msgs, runs(Some(2))).unwrap_err(),
        PolicyError::ApprovalRunsExhausted { member, max_runs: 2, runs: 2, .. } if member == "advertiser"
    ));
    // A broker does not count runs (the room does, from the log the brokers pin).
    approval::check(&s, &w, &msgs, runs(None)).unwrap();
}

#[test]
fn rejects_approval_of_edited_sql() {
    let s = signed();
    let w = workload();
    let mut edited = w.clone();
    edited.sql = Some("SELECT email FROM impressions".into());
    let approvals = [approve(s.contract(), &w, 1), approve(s.contract(), &w, 2)];
    assert!(matches!(
        approval::check(&s, &edited, &approvals, USAGE).unwrap_err(),
        PolicyError::ApprovalForOtherWorkload { .. }
    ));
}

#[test]
fn rejects_workload_weakening_the_group_guard() {
    let s = signed();
    let mut w = workload();
    w.guards.min_group_size = Some(2);
    assert!(matches!(
        approval::check(&s, &w, &[], USAGE).unwrap_err(),
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
        approval::check(&s, &w, &[], USAGE).unwrap_err(),
        PolicyError::RecipientNotAllowed { .. }
    ));
}

// ---- Proposals (governance.proposers) ----

const WORKLOAD_TOML: &str = r#"
name = "reach"
kind = "query"
inputs = ["impressions", "conversions"]
sql = "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign"
[output]
recipients = ["advertiser"]
"#;

fn signed_with(extra: &str) -> SignedContract {
    let c = parse(&format!("{}\n{extra}", contract_text())).unwrap();
    let sigs = [accept(&c, 1), accept(&c, 2)];
    SignedContract::verify(c, &sigs).unwrap()
}

fn propose(c: &Contract, toml: &str, seed: u8) -> SignedMessage {
    let payload = proposal::ProposalPayload::new(toml, "workload.toml", None).unwrap();
    SignedMessage::sign(
        &key(seed),
        MessageType::WorkloadPropose,
        c.digest().0,
        1,
        payload.to_bytes(),
    )
}

#[test]
fn proposal_by_a_listed_proposer_carries_the_exact_workload() {
    let s = signed_with("[governance]\nproposers = [\"advertiser\"]\n");
    let p = propose(s.contract(), WORKLOAD_TOML, 2);
    let opened = proposal::open(&s, &p).unwrap();
    assert_eq!(opened.proposer, "advertiser");
    assert_eq!(opened.payload.workload_toml, WORKLOAD_TOML);
    assert_eq!(opened.workload.digest(), workload().digest());
    assert_eq!(
        proposal::require(&s, &workload(), Some(&p)).unwrap(),
        Some("advertiser".to_string())
    );
}

#[test]
fn rejects_proposal_signed_by_a_member_who_may_not_propose() {
    let s = signed_with("[governance]\nproposers = [\"advertiser\"]\n");
    let p = propose(s.contract(), WORKLOAD_TOML, 1);
    assert!(matches!(
        proposal::require(&s, &workload(), Some(&p)).unwrap_err(),
        PolicyError::ProposerNotAllowed { member, .. } if member == "publisher"
    ));
}

#[test]
fn rejects_run_without_proposal_when_contract_names_proposers() {
    let s = signed_with("[governance]\nproposers = [\"advertiser\"]\n");
    assert!(matches!(
        proposal::require(&s, &workload(), None).unwrap_err(),
        PolicyError::MissingProposal { .. }
    ));
    // A contract naming no proposers lets owners approve a workload file directly.
    assert_eq!(
        proposal::require(&signed(), &workload(), None).unwrap(),
        None
    );
}

#[test]
fn rejects_workload_edited_after_its_proposal() {
    let s = signed_with("[governance]\nproposers = [\"advertiser\"]\n");
    let p = propose(s.contract(), WORKLOAD_TOML, 2);
    let mut edited = workload();
    edited.sql = Some("SELECT email FROM impressions".into());
    assert!(matches!(
        proposal::require(&s, &edited, Some(&p)).unwrap_err(),
        PolicyError::ProposalForOtherWorkload { member, .. } if member == "advertiser"
    ));
}

#[test]
fn rejects_proposal_whose_payload_digest_does_not_match_its_text() {
    let s = signed();
    let mut payload = proposal::ProposalPayload::new(WORKLOAD_TOML, "w", None).unwrap();
    payload.workload_toml = payload.workload_toml.replace("count(*)", "min(email)");
    let p = SignedMessage::sign(
        &key(2),
        MessageType::WorkloadPropose,
        s.contract().digest().0,
        1,
        payload.to_bytes(),
    );
    assert!(matches!(
        proposal::open(&s, &p).unwrap_err(),
        PolicyError::MalformedMessage { .. }
    ));
}

#[test]
fn rejects_approval_used_as_a_proposal() {
    let s = signed();
    let a = approve(s.contract(), &workload(), 2);
    assert!(matches!(
        proposal::open(&s, &a).unwrap_err(),
        PolicyError::WrongMessageType { .. }
    ));
}

#[test]
fn rejects_module_proposal_whose_component_digest_differs() {
    let toml = format!(
        "name = \"m\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"{}\"\n[output]\nrecipients = [\"advertiser\"]\n",
        "ab".repeat(32)
    );
    let module = |digest: &str, world: &str| {
        Some(proposal::ModuleSummary {
            digest: digest.into(),
            world: world.into(),
            imports: vec![],
        })
    };
    assert!(proposal::ProposalPayload::new(&toml, "w", module(&"ab".repeat(32), "query")).is_ok());
    assert!(matches!(
        proposal::ProposalPayload::new(&toml, "w", module(&"cd".repeat(32), "query")).unwrap_err(),
        PolicyError::InvalidValue { field, .. } if field == "module_digest"
    ));
    assert!(matches!(
        proposal::ProposalPayload::new(&toml, "w", module(&"ab".repeat(32), "training")).unwrap_err(),
        PolicyError::InvalidValue { field, .. } if field == "kind"
    ));
    assert!(matches!(
        proposal::ProposalPayload::new(&toml, "w", None).unwrap_err(),
        PolicyError::InvalidValue { field, .. } if field == "module_digest"
    ));
}

// ---- Per-row outputs ----

fn scoring(row_level: bool, recipients: &str) -> Workload {
    Workload::parse(
        &format!(
            "name = \"score\"\nkind = \"inference\"\ninputs = [\"impressions\"]\nmodule_digest = \"{}\"\n[output]\nrecipients = {recipients}\nrow_level = {row_level}\n",
            "ab".repeat(32)
        ),
        "w",
    )
    .unwrap()
}

fn with_row_recipients(list: &str) -> SignedContract {
    let text = contract_text()
        .replace(
            "location = \"publisher/impressions.sealed\"",
            &format!("location = \"publisher/impressions.sealed\"\nrow_recipients = {list}"),
        )
        .replace(
            "recipients = [\"advertiser\"]",
            "recipients = [\"advertiser\", \"publisher\"]",
        );
    let c = parse(&text).unwrap();
    let sigs = [accept(&c, 1), accept(&c, 2)];
    SignedContract::verify(c, &sigs).unwrap()
}

#[test]
fn per_row_output_to_a_recipient_the_owner_named_passes() {
    let s = with_row_recipients("[\"publisher\"]");
    scoring(true, "[\"publisher\"]")
        .check_against(s.contract())
        .unwrap();
}

#[test]
fn rejects_per_row_output_to_a_recipient_the_owner_did_not_name() {
    let s = with_row_recipients("[\"publisher\"]");
    assert!(matches!(
        scoring(true, "[\"advertiser\"]").check_against(s.contract()).unwrap_err(),
        PolicyError::RowRecipientNotAllowed { recipient, input, owner }
            if recipient == "advertiser" && input == "impressions" && owner == "publisher"
    ));
    // No row_recipients at all: per-row output is refused to anyone.
    assert!(matches!(
        scoring(true, "[\"advertiser\"]")
            .check_against(signed().contract())
            .unwrap_err(),
        PolicyError::RowRecipientNotAllowed { recipient, .. } if recipient == "advertiser"
    ));
}

#[test]
fn rejects_per_row_output_from_a_sql_workload() {
    let s = with_row_recipients("[\"publisher\"]");
    let mut w = workload();
    w.inputs = vec!["impressions".into()];
    w.output.recipients = vec!["publisher".into()];
    w.output.row_level = true;
    assert!(matches!(
        w.check_against(s.contract()).unwrap_err(),
        PolicyError::RowLevelNotForThisKind
    ));
}

#[test]
fn rejects_row_recipient_who_is_not_a_member() {
    let text = contract_text().replace(
        "location = \"publisher/impressions.sealed\"",
        "location = \"publisher/impressions.sealed\"\nrow_recipients = [\"mallory\"]",
    );
    assert!(matches!(
        parse(&text).unwrap_err(),
        PolicyError::NotAMember { name, .. } if name == "mallory"
    ));
}

// ---- Suspension (I3) ----

fn govern(c: &Contract, seed: u8, ty: MessageType, at: u64) -> SignedMessage {
    SignedMessage::sign(
        &key(seed),
        ty,
        c.digest().0,
        at,
        governance::GovernancePayload {
            reason: "audit pending".into(),
        }
        .to_bytes(),
    )
}

#[test]
fn any_member_suspends_and_only_that_member_resumes() {
    let s = signed();
    let c = s.contract();
    let suspend = govern(c, 1, MessageType::Suspend, 10);
    assert!(matches!(
        governance::check(&s, std::slice::from_ref(&suspend)).unwrap_err(),
        PolicyError::Suspended { by } if by == "`publisher`"
    ));
    // The advertiser's resume does not lift the publisher's suspension.
    let other = govern(c, 2, MessageType::Resume, 20);
    assert!(governance::check(&s, &[suspend.clone(), other.clone()]).is_err());
    let resume = govern(c, 1, MessageType::Resume, 30);
    governance::check(&s, &[suspend, other, resume]).unwrap();
}

#[test]
fn replayed_old_resume_does_not_lift_a_newer_suspension() {
    let s = signed();
    let c = s.contract();
    let old_resume = govern(c, 1, MessageType::Resume, 5);
    let suspend = govern(c, 1, MessageType::Suspend, 10);
    // The operator appends the old resume after the suspension: order in the file does not
    // matter, the newer message wins.
    let st = governance::suspensions(&s, &[suspend, old_resume]).unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].member, "publisher");
    assert_eq!(st[0].since_unix, 10);
}

#[test]
fn rejects_suspension_from_a_non_member_or_another_contract() {
    let s = signed();
    let forged = govern(s.contract(), 9, MessageType::Suspend, 10);
    assert!(matches!(
        governance::check(&s, &[forged]).unwrap_err(),
        PolicyError::SignerNotAMember { .. }
    ));
    let other = parse(&contract_text().replace("adtech", "other")).unwrap();
    let foreign = govern(&other, 1, MessageType::Suspend, 10);
    assert!(matches!(
        governance::check(&s, &[foreign]).unwrap_err(),
        PolicyError::WrongContract { .. }
    ));
    // An approval is not a suspension.
    let a = approve(s.contract(), &workload(), 1);
    assert!(matches!(
        governance::check(&s, &[a]).unwrap_err(),
        PolicyError::WrongMessageType { .. }
    ));
}

// ---------------------------------------------------------------- attestation policy (issue 9)

const H48: &str = "abababababababababababababababababababababababababababababababababababababababababababababababab";
const SNP_MIN_TCB: &str = "min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }";

/// The test contract with `lines` added to its `[attestation]` table.
fn with_attestation(lines: &str) -> String {
    contract_text().replace("\n[outputs]", &format!("{lines}\n\n[outputs]"))
}

fn tdx_line(rtmrs: &str) -> String {
    format!("tdx = {{ mrtd = [\"{H48}\"]{rtmrs} }}")
}

#[test]
fn tdx_policy_without_rtmrs_is_refused_at_contract_parse() {
    // MRTD alone leaves the kernel, initrd, command line and host binary unchecked.
    let err = parse(&with_attestation(&tdx_line(""))).unwrap_err();
    assert!(
        matches!(err, PolicyError::TdxRtmrNotPinned { index: 0, .. }),
        "{err:?}"
    );
    // Each of RTMR0-2 is required on its own.
    for missing in 0..3 {
        let rtmrs: String = (0..3)
            .filter(|i| *i != missing)
            .map(|i| format!(", rtmr{i} = \"{H48}\""))
            .collect();
        let err = parse(&with_attestation(&tdx_line(&rtmrs))).unwrap_err();
        assert!(
            matches!(err, PolicyError::TdxRtmrNotPinned { index, .. } if index == missing),
            "rtmr{missing}: {err:?}"
        );
    }
}

#[test]
fn tdx_policy_pinning_rtmr0_to_2_parses_without_a_tdx_warning() {
    let c = parse(&with_attestation(&tdx_line(&format!(
        ", rtmr0 = \"{H48}\", rtmr1 = \"{H48}\", rtmr2 = \"{H48}\""
    ))))
    .unwrap();
    let h = [0xab; 48];
    let tdx = c.attestation.tdx.as_ref().unwrap();
    assert_eq!(tdx.expected_rtmrs(), [Some(h), Some(h), Some(h), None]);
    // The test contract is a sim contract: that is its only warning.
    assert_eq!(
        c.attestation_warnings(),
        vec![cleanroom_policy::AttestationWarning::SimulationAllowed]
    );
}

#[test]
fn tdx_rtmr_any_is_accepted_and_warned_about_per_register() {
    use cleanroom_policy::AttestationWarning;
    let c = parse(&with_attestation(&tdx_line(&format!(
        ", rtmr0 = \"{H48}\", rtmr1 = \"any\", rtmr2 = \"any\", rtmr3 = \"any\""
    ))))
    .unwrap();
    let tdx = c.attestation.tdx.as_ref().unwrap();
    assert_eq!(tdx.expected_rtmrs(), [Some([0xab; 48]), None, None, None]);
    let warnings = c.attestation_warnings();
    assert_eq!(
        warnings,
        vec![
            AttestationWarning::SimulationAllowed,
            AttestationWarning::TdxRtmrUnchecked { index: 1 },
            AttestationWarning::TdxRtmrUnchecked { index: 2 },
        ]
    );
    let text = warnings[2].to_string();
    assert!(
        text.starts_with("WARNING:") && text.contains("rtmr2"),
        "{text}"
    );
}

#[test]
fn tdx_rtmr_neither_hex_nor_any_is_refused() {
    for bad in ["ANY", "", "none", "abab"] {
        let err = parse(&with_attestation(&tdx_line(&format!(
            ", rtmr0 = \"{H48}\", rtmr1 = \"{H48}\", rtmr2 = \"{bad}\""
        ))))
        .unwrap_err();
        assert!(
            matches!(&err, PolicyError::InvalidValue { field, .. } if field == "attestation.tdx.rtmr2"),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn snp_policy_without_min_tcb_is_refused_at_contract_parse() {
    // Without min_tcb every TCB, all-zero included, would pass.
    let err = parse(&with_attestation(&format!(
        "snp = {{ measurements = [\"{H48}\"] }}"
    )))
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::SnpMinTcbMissing { .. }),
        "{err:?}"
    );
}

#[test]
fn snp_policy_defaults_refuse_the_migration_agent_and_leave_the_digest_unchanged() {
    let snp = |extra: &str| {
        with_attestation(&format!(
            "snp = {{ measurements = [\"{H48}\"], {SNP_MIN_TCB}{extra} }}"
        ))
    };
    let c = parse(&snp("")).unwrap();
    let p = c.attestation.snp.as_ref().unwrap();
    assert!(!p.allow_migration_agent);
    assert!(p.min_abi.is_none());
    // Spelling out the defaults does not change the digest.
    let explicit = parse(&snp(", allow_migration_agent = false")).unwrap();
    assert_eq!(c.digest(), explicit.digest());
    // Setting them does, and is read as written.
    let set = parse(&snp(
        ", allow_migration_agent = true, min_abi = { major = 1, minor = 55 }",
    ))
    .unwrap();
    assert_ne!(c.digest(), set.digest());
    let p = set.attestation.snp.as_ref().unwrap();
    assert!(p.allow_migration_agent);
    assert_eq!(
        p.min_abi,
        Some(cleanroom_policy::contract::SnpAbiVersion {
            major: 1,
            minor: 55
        })
    );
    assert!(
        set.attestation_warnings()
            .contains(&cleanroom_policy::AttestationWarning::SnpMigrationAgentAllowed)
    );
    let err = parse(&snp(", min_abi = { major = 1, minor = 55, build = 3 }")).unwrap_err();
    assert!(matches!(err, PolicyError::Toml { .. }), "{err:?}");
}

#[test]
fn snp_all_zero_min_tcb_and_debug_are_warned_about() {
    use cleanroom_policy::AttestationWarning;
    let c = parse(&with_attestation(&format!(
        "snp = {{ measurements = [\"{H48}\"], min_tcb = {{ bootloader = 0, tee = 0, snp = 0, microcode = 0 }}, allow_debug = true }}"
    )))
    .unwrap();
    let w = c.attestation_warnings();
    assert!(w.contains(&AttestationWarning::SnpMinTcbZero), "{w:?}");
    assert!(
        w.contains(&AttestationWarning::DebugAllowed { platform: "snp" }),
        "{w:?}"
    );
}

// ---------------------------------------------------------------- dataset names (issue 9, item 14)

/// A TOML basic string holding `s` exactly.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn with_dataset_name(name: &str) -> String {
    contract_text().replacen(
        "name = \"impressions\"",
        &format!("name = {}", toml_string(name)),
        1,
    )
}

/// The rule, written independently of the crate: lowercase ASCII words of letters and
/// digits joined by single `_` or `-`, starting with a letter, 1..=64 bytes.
fn is_safe_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && !matches!(b[b.len() - 1], b'_' | b'-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
        && !["__", "--", "_-", "-_"].iter().any(|p| n.contains(p))
}

#[test]
fn dataset_name_with_space_or_colon_is_refused_at_contract_parse() {
    for bad in [
        "my data",
        "a:b",
        "Impressions",
        "",
        "imp--x",
        "imp.x",
        "x\"; DROP TABLE y; --",
        "ïmpressions",
    ] {
        let text = with_dataset_name(bad);
        let at = text.find(&format!("name = {}", toml_string(bad))).unwrap();
        let want_line = text[..at].matches('\n').count() + 1;
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(&err, PolicyError::InvalidName { kind: "dataset", name, line, .. } if name == bad && *line == want_line),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn dataset_names_the_fixtures_use_are_accepted() {
    for good in [
        "impressions",
        "conversion-model",
        "sales",
        "targets",
        "user_id_hash",
        "a",
        &"a".repeat(64),
    ] {
        let c = parse(&with_dataset_name(good)).unwrap();
        assert!(c.dataset(good).is_some(), "{good}");
        assert!(cleanroom_policy::contract::is_valid_dataset_name(good));
    }
    let err = parse(&with_dataset_name(&"a".repeat(65))).unwrap_err();
    assert!(matches!(err, PolicyError::InvalidName { .. }), "{err:?}");
}

#[test]
fn generated_dataset_names_are_accepted_only_when_safe_and_never_panic() {
    const SAFE: &[&str] = &["a", "m", "z", "0", "7", "_", "-"];
    const ANY: &[&str] = &[
        "a", "q", "z", "0", "9", "_", "-", " ", ":", "\"", "'", ".", "/", "\\", "\0", "\n", "\t",
        "\r", "\u{7f}", "\u{200b}", "é", "名", "🦀", "A", "Z", "`", ";", "=", "#", "[", "]", "{",
        "}", "%", "$", "*", "--", "..", "\u{feff}",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let edge_cases: Vec<String> = vec![
        String::new(),
        "a".repeat(63),
        "a".repeat(64),
        "a".repeat(65),
        "a".repeat(10_000),
        "a-".repeat(40),
        "é".repeat(32),
    ];
    let mut generated = Vec::new();
    for i in 0..20_000 {
        let alphabet = if i % 2 == 0 { SAFE } else { ANY };
        let len = usize::try_from(next() % 12).unwrap();
        let mut n = String::new();
        if i % 4 == 0 {
            n.push('a'); // start with a letter often enough to reach the other rules
        }
        for _ in 0..len {
            n.push_str(alphabet[usize::try_from(next()).unwrap() % alphabet.len()]);
        }
        generated.push(n);
    }
    // Every name against the rule; a contract parse (about 20 ms each in a debug build, the
    // member keys dominate) for the edge cases and every 64th generated name.
    for name in edge_cases.iter().chain(&generated) {
        assert_eq!(
            cleanroom_policy::contract::is_valid_dataset_name(name),
            is_safe_name(name),
            "{name:?}"
        );
    }
    let (mut accepted, mut refused) = (0, 0);
    let parsed = edge_cases.iter().chain(generated.iter().step_by(64));
    for name in parsed.filter(|n| n.as_str() != "conversions") {
        match parse(&with_dataset_name(name)) {
            Ok(c) => {
                assert!(is_safe_name(name), "accepted an unsafe name {name:?}");
                assert!(c.dataset(name).is_some());
                accepted += 1;
            }
            Err(PolicyError::InvalidName { name: n, .. }) => {
                assert!(!is_safe_name(name), "refused a safe name {name:?}");
                assert_eq!(&n, name);
                refused += 1;
            }
            Err(e) => panic!("{name:?}: refused with another variant: {e:?}"),
        }
    }
    assert!(
        accepted > 50 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}

// ---- Key brokers are pinned by key (issue 9, item 4) ----

const PIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn with_publisher_broker(key_fields: &str) -> String {
    contract_text().replace(r#"broker = "http://127.0.0.1:1""#, key_fields)
}

#[test]
fn https_broker_without_a_pinned_key_is_refused_at_contract_parse() {
    let err = parse(&with_publisher_broker(
        r#"broker = "https://kbs.publisher.example:8443""#,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::BrokerKeyNotPinned { dataset, .. } if dataset == "impressions"),
        "{err}"
    );
    let c = parse(&with_publisher_broker(&format!(
        r#"broker = "https://kbs.publisher.example:8443", broker_spki_sha256 = "{PIN}""#
    )))
    .unwrap();
    let k = &c.dataset("impressions").unwrap().key;
    assert_eq!(k.broker_spki_sha256.as_ref().unwrap().get_ref(), PIN);
    // A malformed pin names the field.
    let err = parse(&with_publisher_broker(
        r#"broker = "https://kbs.publisher.example:8443", broker_spki_sha256 = "abcd""#,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::InvalidField { field, .. } if field == "key.broker_spki_sha256"),
        "{err}"
    );
}

#[test]
fn plain_http_broker_is_refused_outside_loopback_simulation() {
    for url in [
        "http://10.0.0.5:8080",
        "http://localhost:8080",
        "http://127.0.0.1.evil.example:80",
        "http://127.0.0.1:80@evil.example",
    ] {
        let err = parse(&with_publisher_broker(&format!(r#"broker = "{url}""#))).unwrap_err();
        assert!(
            matches!(&err, PolicyError::PlainHttpBroker { url: u, .. } if u == url),
            "{url}: {err}"
        );
    }
    // 127.0.0.1 is accepted only in a simulation contract.
    let production = contract_text()
        .replace("allow_simulated = true", "allow_simulated = false")
        .replace("platforms = [\"sim\"]", "platforms = [\"snp\"]");
    if let Err(e) = parse(&production) {
        assert!(
            matches!(&e, PolicyError::PlainHttpBroker { .. }),
            "a production contract with an http broker: {e}"
        );
    } else {
        panic!("a production contract with an http broker parsed");
    }
    // A pin on a plain-HTTP broker pins nothing: refused rather than ignored.
    let err = parse(&with_publisher_broker(&format!(
        r#"broker = "http://127.0.0.1:1", broker_spki_sha256 = "{PIN}""#
    )))
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::InvalidField { field, .. } if field == "key.broker_spki_sha256"),
        "{err}"
    );
}

// ---- Privacy units and column roles (issue 10) ----

/// The impressions dataset with `extra` lines added after its key.
fn with_impressions_roles(extra: &str) -> String {
    contract_text().replacen(
        "key = { broker = \"http://127.0.0.1:1\", resource = \"publisher/dataset/impressions\" }\n",
        &format!(
            "key = {{ broker = \"http://127.0.0.1:1\", resource = \"publisher/dataset/impressions\" }}\n{extra}\n"
        ),
        1,
    )
}

#[test]
fn privacy_unit_released_as_a_dimension_is_refused_at_contract_parse() {
    let text = with_impressions_roles(
        "privacy_unit = \"user_id\"\ncolumns = { dimensions = [\"campaign\", \"user_id\"] }",
    );
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, PolicyError::InvalidField { field, .. } if field == "privacy_unit"),
        "{err:?}"
    );
}

#[test]
fn column_role_naming_a_field_that_is_not_allowed_is_refused_at_contract_parse() {
    // `email` is in the schema but not an allowed field: no role can name it.
    let text = with_impressions_roles("columns = { dimensions = [\"email\"] }");
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, PolicyError::InvalidField { field, reason, .. }
            if field == "columns.dimensions" && reason.contains("`email`")),
        "{err:?}"
    );
    let text = with_impressions_roles("privacy_unit = \"email\"");
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(&err, PolicyError::InvalidField { field, .. } if field == "privacy_unit"),
        "{err:?}"
    );
}

#[test]
fn column_roles_and_privacy_warnings() {
    use cleanroom_policy::PrivacyWarning;
    use cleanroom_policy::query_rules::ColumnRole;
    let c = parse(&with_impressions_roles(
        "privacy_unit = \"user_id\"\ncolumns = { dimensions = [\"campaign\"], join_keys = [\"user_id\"] }",
    ))
    .unwrap();
    let imp = c.dataset("impressions").unwrap();
    assert!(imp.column_has_role("campaign", ColumnRole::Dimension));
    assert!(imp.column_has_role("campaign", ColumnRole::Filter));
    assert!(!imp.column_has_role("user_id", ColumnRole::Dimension));
    assert!(imp.column_has_role("user_id", ColumnRole::JoinKey));
    assert!(
        !imp.column_has_role("email", ColumnRole::JoinKey),
        "not allowed"
    );
    assert_eq!(imp.privacy_unit(), Some("user_id"));
    // Undeclared: every allowed field plays every role, and contract verify warns.
    let conv = c.dataset("conversions").unwrap();
    assert!(conv.column_has_role("value", ColumnRole::MinMax));
    assert_eq!(
        c.privacy_warnings(),
        vec![
            PrivacyWarning::ColumnRolesUndeclared {
                dataset: "conversions".into()
            },
            PrivacyWarning::NoPrivacyUnit {
                dataset: "conversions".into()
            },
        ]
    );
    // Declaring neither changes no digest: contracts signed before stay valid.
    assert_eq!(
        parse(&contract_text()).unwrap().digest(),
        parse(&with_impressions_roles("")).unwrap().digest()
    );
}

#[test]
fn module_count_column_is_refused_at_workload_parse() {
    let err = Workload::parse(
        "name = \"m\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"0000000000000000000000000000000000000000000000000000000000000000\"\n[output]\nrecipients = [\"advertiser\"]\n[guards]\ncount_column = \"n\"\n",
        "workload.toml",
    )
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::ModuleCountNotTrusted { .. }),
        "{err:?}"
    );
}
