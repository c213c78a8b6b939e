//! Module workloads through the real run path: per-row inference outputs (allowed only to a
//! recipient every input's owner named) and the hostile-module suite (issue 3, acceptance
//! 2): each hostile module is stopped or capped, leaves an audit entry naming what happened,
//! writes nothing, and the room's next run succeeds.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use cleanroom_cli::error::MemberError;
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_kbs::commands as kbs_cmd;
use std::collections::BTreeMap;

use crate::common::{Room, Spec, member_dir};
use cleanroom_formats::audit::Entry;
use cleanroom_policy::PolicyError;
use cleanroom_room::RoomError;
use cleanroom_room::error::GuardRefusal;
use cleanroom_room::sandbox::SandboxError;

/// Store `bytes` as the room's module and make `body` (with `module_digest` added) the
/// room's workload. Returns the digest.
fn install(room: &Room, bytes: &[u8], body: &str) -> String {
    let digest = cleanroom_room::sandbox::digest_hex(bytes);
    std::fs::create_dir_all(room.room.join("modules")).unwrap();
    std::fs::write(room.room.join(format!("modules/{digest}.wasm")), bytes).unwrap();
    std::fs::write(
        &room.workload,
        body.replace(
            "module_digest = \"\"",
            &format!("module_digest = \"{digest}\""),
        ),
    )
    .unwrap();
    digest
}

// ---- Per-row inference outputs ----

const MODEL: &str = r#"{"kind":"logistic-regression","features":["imps"],"mean":[0.0],"std":[1.0],"weights":[0.5],"bias":-2.0}"#;
const FEATURES: &str =
    "SELECT user_id_hash, CAST(COUNT(*) AS DOUBLE) AS imps FROM impressions GROUP BY user_id_hash";

fn scoring_workload(recipients: &str) -> String {
    format!(
        "name = \"scores\"\nkind = \"inference\"\ninputs = [\"impressions\", \"conversion-model\"]\nmodule_digest = \"\"\n\n[module]\nsql_access = true\n\n[parameters]\nsql = \"{FEATURES}\"\nmodel = \"conversion-model\"\noutput = \"scores\"\nkey = \"user_id_hash\"\n\n[output]\nrecipients = {recipients}\nrow_level = true\n"
    )
}

/// The advertiser seals `MODEL` as the contract's `conversion-model` dataset and registers
/// its key at its broker, as `cleanroom dataset seal` + `kbs put` do.
fn seal_model(room: &Room) {
    let d = member_dir(room.root(), "advertiser");
    let text = std::fs::read_to_string(&room.contract).unwrap();
    let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
    let plain = d.join("model.json");
    std::fs::write(&plain, MODEL).unwrap();
    let k = cleanroom_cli::sealing::seal(
        &parsed,
        &room.contract,
        "conversion-model",
        &plain,
        &room.room.join("data/conversion-model.sealed"),
        None,
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )
    .unwrap()
    .keys;
    let key = d.join("model.key");
    cleanroom_formats::keyfile::write(&key, &k, "conversion-model").unwrap();
    let store = kbs_cmd::open_store(&d.join("kbs.db"), &d.join("kbs.master-key")).unwrap();
    kbs_cmd::put(
        &store,
        &room.contract,
        &room.sigs,
        "conversion-model",
        &key,
        &room.room.join("data/conversion-model.sealed"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_row_scores_reach_only_the_named_recipient() {
    let room = Room::new(Spec::default()).await;
    seal_model(&room);
    let bytes = cleanroom_cli::guest_build::component("inference-score").unwrap();
    install(&room, &bytes, &scoring_workload("[\"publisher\"]"));
    room.approve_all();
    let report = room.run().await.expect("per-row scoring run succeeds");

    let sk = cleanroom_formats::keys::encryption_key(
        &member_dir(room.root(), "publisher").join("keys/publisher.enc.key"),
    )
    .unwrap();
    // The table's name is inside the sealed content (its file is `<run>-<index>.cro`).
    let (file, opened) = report
        .outputs
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter_map(|f| {
            let o = cleanroom_formats::envelope::open(&f, "publisher", &sk).ok()?;
            Some((f, o))
        })
        .find(|(_, o)| o.content.name == "scores")
        .unwrap();
    let (_, recipients) = cleanroom_formats::envelope::inspect(&file).unwrap();
    assert_eq!(
        recipients,
        ["publisher"],
        "per-row scores go to the publisher only"
    );
    let content = String::from_utf8(opened.data.to_vec()).unwrap();

    // Expected: one row per user of the impressions, scored on the host with the same model.
    let (impressions, _) = cleanroom_cli::demo::generate(5_000, 7);
    let mut imps: BTreeMap<&str, f64> = BTreeMap::new();
    for line in impressions.lines().skip(1) {
        *imps.entry(line.split(',').next().unwrap()).or_default() += 1.0;
    }
    let mut lines = content.lines();
    assert_eq!(lines.next(), Some("key,score"));
    let got: BTreeMap<&str, f64> = lines
        .map(|l| {
            let (k, v) = l.split_once(',').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), imps.len(), "one score per user");
    for (user, n) in &imps {
        let want = 1.0 / (1.0 + (-(-2.0 + 0.5 * n)).exp());
        assert!(
            (got[user] - want).abs() < 1e-9,
            "{user}: {} vs {want}",
            got[user]
        );
    }
    // The module's row count stays inside the sealed output, out of the room's report.
    assert_eq!(report.rows, 0);
    let guard = room
        .audit()
        .into_iter()
        .find(|e| e.event == Step::Guard)
        .unwrap();
    assert!(
        guard.reason.contains("per-row output to publisher"),
        "{guard:?}"
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_row_output_to_a_recipient_the_owner_did_not_name_is_refused() {
    // No proposers, so the workload can reach the run without a (refused) proposal.
    let spec = Spec {
        edit_contract: Box::new(|t| t.replace("proposers = [\"advertiser\"]\n", "")),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    let bytes = cleanroom_cli::guest_build::component("inference-score").unwrap();
    // The advertiser wants every publisher user's score for itself.
    install(&room, &bytes, &scoring_workload("[\"advertiser\"]"));

    // Owners' tooling refuses to approve it...
    let err = cleanroom_cli::signing::approve(
        &room.contract,
        &room.sigs,
        &room.workload,
        &room.key_of("advertiser"),
        None,
        &room.approvals,
        |p| p,
    )
    .unwrap_err();
    assert!(
        matches!(&err, MemberError::Policy(PolicyError::RowRecipientNotAllowed { recipient, input, .. })
            if recipient == "advertiser" && input == "impressions"),
        "{err}"
    );
    // ...and approvals signed anyway do not make the room run it.
    let w = cleanroom_formats::load::load_workload(&room.workload).unwrap();
    for m in common::MEMBERS {
        let sk = cleanroom_formats::keys::signing_key(&room.key_of(m)).unwrap();
        let msg = cleanroom_policy::SignedMessage::sign(
            &sk,
            cleanroom_policy::MessageType::WorkloadApprove,
            room.digest,
            1,
            cleanroom_policy::workload::ApprovalPayload::for_workload(&w).to_bytes(),
        );
        cleanroom_cli::signing::append_message(&room.approvals, &msg).unwrap();
    }
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Policy(PolicyError::RowRecipientNotAllowed { recipient, input, .. })
            if recipient == "advertiser" && input == "impressions"),
        "{err}"
    );
    room.assert_refused(Step::Approval);
    assert_eq!(
        room.keys_released("publisher") + room.keys_released("advertiser"),
        0
    );
    room.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_per_row_scores_without_row_level_leave_only_as_groups_of_people() {
    // The same scoring module, but the workload asks for guarded tables: the host groups
    // its per-user scores by score and counts the users in each; no key leaves, and only
    // scores shared by at least min_group_size users do.
    let room = Room::new(Spec::default()).await;
    seal_model(&room);
    let bytes = cleanroom_cli::guest_build::component("inference-score").unwrap();
    let body = scoring_workload("[\"publisher\"]")
        .replace("row_level = true\n", "\n[guards]\nunit_column = \"key\"\n");
    install(&room, &bytes, &body);
    room.approve_all();
    let report = room.run().await.unwrap();
    assert_eq!(report.rows, 0, "a module's counts stay out of the report");
    let file = std::fs::read(
        room.outputs()
            .iter()
            .find(|p| {
                let f = std::fs::read(p).unwrap();
                let sk = cleanroom_formats::keys::encryption_key(
                    &member_dir(room.root(), "publisher").join("keys/publisher.enc.key"),
                )
                .unwrap();
                cleanroom_formats::envelope::open(&f, "publisher", &sk)
                    .is_ok_and(|o| o.content.name == "scores")
            })
            .expect("the scores table"),
    )
    .unwrap();
    let sk = cleanroom_formats::keys::encryption_key(
        &member_dir(room.root(), "publisher").join("keys/publisher.enc.key"),
    )
    .unwrap();
    let opened = cleanroom_formats::envelope::open(&file, "publisher", &sk).unwrap();
    let text = String::from_utf8(opened.data.to_vec()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("score,units"));
    let mut released = 0;
    for l in lines {
        let (_, units) = l.split_once(',').unwrap();
        assert!(units.parse::<u64>().unwrap() >= 50, "{l}");
        released += 1;
    }
    assert!(released >= 1, "the common scores leave: {text}");
    room.stop().await;
}

/// Acceptance (issue 10, 5): a module writing one row per person with a count it declares
/// (1,000,000) releases nothing per person: the host counts the people behind each group.
/// A workload that names the module's count (`count_column`) is refused, and one that
/// names it as the unit column is refused (not people of the inputs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_claiming_a_count_of_a_million_releases_nothing_per_person() {
    let room = Room::new(Spec::default()).await;
    let bytes = hostile("hostile_claims_large_count");
    let body = |guards: &str| {
        format!(
            "name = \"claims\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"\"\n\n[output]\nrecipients = [\"advertiser\"]\n\n[guards]\n{guards}\n"
        )
    };
    install(&room, &bytes, &body("unit_column = \"user_id_hash\""));
    room.approve_all();
    room.run().await.unwrap();
    // The table leaves with its columns and no row: every group held one person.
    assert_eq!(room.open_output().trim(), "who,n,units");

    // The module's count as the workload's count column: refused before anything runs.
    std::fs::remove_file(&room.approvals).unwrap();
    install(&room, &bytes, &body("count_column = \"n\""));
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Policy(PolicyError::ModuleCountNotTrusted { .. })
        ),
        "{err}"
    );
    // The module's count named as the unit column: its values are no one of the inputs.
    install(&room, &bytes, &body("unit_column = \"n\""));
    room.approve_all();
    let before = room.outputs().len();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Guard(GuardRefusal::UnknownPrivacyUnit)),
        "{err}"
    );
    assert_eq!(room.outputs().len(), before);
    room.stop().await;
}

// ---- Hostile modules through the run path ----

/// The entries the last run appended (after the previous checkpoint).
fn last_run(room: &Room) -> Vec<Entry> {
    let all = room.audit();
    let end = all.len() - 1;
    let start = all[..end]
        .iter()
        .rposition(|e| e.event == Step::Checkpoint)
        .map_or(0, |i| i + 1);
    all[start..].to_vec()
}

/// The component bytes of a hostile guest (a crate, or a hand-written .wat).
fn hostile(name: &str) -> Vec<u8> {
    let stem = name.strip_prefix("hostile_").unwrap();
    let wat = cleanroom_cli::guest_build::source_root().join(format!("tests/hostile/{stem}.wat"));
    if wat.is_file() {
        return wat::parse_file(&wat).unwrap();
    }
    cleanroom_cli::guest_build::component(name).unwrap()
}

/// Every hostile guest under tests/hostile, with the workload kind it needs and what its
/// refusal must name. `None`: the module is capped and the run completes.
type Refusal = fn(&SandboxError) -> bool;

const HOSTILE: &[(&str, &str, Option<Refusal>)] = &[
    (
        "hostile_infinite_loop",
        "query",
        Some(|e| matches!(e, SandboxError::DeadlineExceeded { millis: 5000 })),
    ),
    (
        "hostile_memory_bomb",
        "query",
        Some(|e| matches!(e, SandboxError::MemoryLimitExceeded { .. })),
    ),
    (
        "hostile_open_files",
        "query",
        Some(|e| forbids(e, "wasi:filesystem/")),
    ),
    (
        "hostile_open_sockets",
        "query",
        Some(|e| forbids(e, "wasi:sockets/")),
    ),
    (
        "hostile_http_request",
        "query",
        Some(|e| forbids(e, "wasi:http/")),
    ),
    (
        "hostile_read_environment",
        "query",
        Some(|e| forbids(e, "wasi:cli/environment")),
    ),
    (
        "hostile_oversized_output",
        "query",
        Some(|e| matches!(e, SandboxError::OutputCapExceeded { .. })),
    ),
    (
        "hostile_panics",
        "query",
        Some(|e| matches!(e, SandboxError::ModuleTrapped { .. })),
    ),
    (
        "hostile_wasm_trap",
        "query",
        Some(|e| matches!(e, SandboxError::ModuleTrapped { .. })),
    ),
    (
        "hostile_read_other_view",
        "query",
        Some(
            |e| matches!(e, SandboxError::ViewNotInInputs { view } if view == "other_members_secrets"),
        ),
    ),
    (
        "hostile_read_other_artifact",
        "inference",
        Some(
            |e| matches!(e, SandboxError::ArtifactNotInInputs { name } if name == "someone_elses_model"),
        ),
    ),
    (
        "hostile_output_after_run_ended",
        "query",
        Some(|e| matches!(e, SandboxError::CallAfterRunEnded)),
    ),
    (
        "hostile_long_view_name",
        "query",
        Some(
            |e| matches!(e, SandboxError::ViewNotInInputs { view } if view.starts_with("sha256:")),
        ),
    ),
    (
        "hostile_query_cross_join",
        "query",
        Some(|e| matches!(e, SandboxError::DeadlineExceeded { millis: 5000 })),
    ),
    ("hostile_log_flood", "query", None),
];

/// Hostile guests whose run-path test is their own (they release something, guarded).
const HOSTILE_WITH_THEIR_OWN_TEST: &[&str] = &["hostile_claims_large_count"];

/// A refusal listing a forbidden import with this prefix.
fn forbids(e: &SandboxError, prefix: &str) -> bool {
    matches!(e, SandboxError::ForbiddenImports { imports } if imports.iter().any(|i| i.starts_with(prefix)))
}

#[test]
fn every_hostile_guest_is_in_the_run_path_suite() {
    let dir = cleanroom_cli::guest_build::source_root().join("tests/hostile");
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            format!("hostile_{}", name.trim_end_matches(".wat"))
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = HOSTILE
        .iter()
        .map(|h| h.0)
        .chain(HOSTILE_WITH_THEIR_OWN_TEST.iter().copied())
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(found, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_modules_are_stopped_audited_and_the_next_run_succeeds() {
    let spec = Spec {
        // A small memory limit, so the memory bomb meets it long before the deadline even
        // on a loaded machine; a deadline short enough to keep the infinite loop brief.
        edit_contract: Box::new(|t| {
            format!("{t}\n[sandbox]\ndeadline_ms = 5000\nmemory_bytes = 67108864\n")
        }),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    let sql_workload = std::fs::read_to_string(&room.workload).unwrap();
    for (name, kind, refusal) in HOSTILE {
        let body = format!(
            "name = \"{name}\"\nkind = \"{kind}\"\ninputs = [\"impressions\"]\nmodule_digest = \"\"\n\n[module]\nsql_access = true\n\n[output]\nrecipients = [\"advertiser\"]\n\n[guards]\nunit_column = \"user_id_hash\"\n"
        );
        install(&room, &hostile(name), &body);
        std::fs::remove_file(&room.approvals).ok();
        room.approve_all();
        let before = room.outputs().len();
        let result = room.run().await;
        let entries = last_run(&room);
        let module = entries
            .iter()
            .find(|e| e.event == Step::Module)
            .unwrap_or_else(|| panic!("{name}: no module audit entry in {entries:#?}"));
        match refusal {
            Some(refusal) => {
                let err = result.expect_err(name);
                assert!(
                    matches!(&err, RoomError::Module(e) if refusal(e)),
                    "{name}: {err}"
                );
                assert_eq!(module.decision, Decision::Refused, "{name}");
                // The audit entry says what the error says.
                assert_eq!(module.reason, err.to_string(), "{name}");
                assert_eq!(room.outputs().len(), before, "{name} wrote an output");
            }
            None => {
                // Log flooding: the log is capped and, with no logging consent in the
                // contract, discarded; nothing else was written.
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(module.decision, Decision::Ran, "{name}");
                assert!(
                    entries
                        .iter()
                        .any(|e| e.event == Step::Log && e.decision == Decision::Discarded),
                    "{name}: {entries:#?}"
                );
                assert_eq!(room.outputs().len(), before, "{name} wrote an output");
            }
        }
        // The room is unharmed: the approved SQL workload runs next.
        std::fs::write(&room.workload, &sql_workload).unwrap();
        std::fs::remove_file(&room.approvals).unwrap();
        room.approve_all();
        room.run()
            .await
            .unwrap_or_else(|e| panic!("run after {name}: {e}"));
        assert_eq!(room.outputs().len(), before + 1, "after {name}");
    }
    room.stop().await;
}

/// I1: a module that encodes data into a name it asks the host for (here a 100 kB view
/// name) gets nothing longer than the bound back into the error, the audit log or the room
/// binary's stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_cannot_smuggle_data_through_error_text() {
    use cleanroom_room::sandbox::MAX_ECHOED_NAME_BYTES;
    let room = Room::new(Spec::default()).await;
    let body = "name = \"smuggle\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"\"\n\n[output]\nrecipients = [\"advertiser\"]\n\n[guards]\nunit_column = \"user_id_hash\"\n";
    install(&room, &hostile("hostile_long_view_name"), body);
    room.approve_all();
    // The marker the module repeats in the name; no run of it longer than the bound may
    // come out.
    let leaked = |text: &str| text.contains(&"LEAKED-user-4711-spent-1234;".repeat(3));
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Module(SandboxError::ViewNotInInputs { view }) if view.starts_with("sha256:")),
        "{err}"
    );
    assert!(
        !leaked(&err.to_string()) && err.to_string().len() < 300,
        "{err}"
    );
    let log = std::fs::read_to_string(room.room.join("audit.jsonl")).unwrap();
    assert!(
        !log.contains("LEAKED"),
        "the audit log carries the module's text"
    );
    for e in room.audit() {
        assert!(e.reason.len() < 300, "{e:?}");
    }
    // The room binary, as its own process: its stderr says the same, bounded.
    let cfg = room.config();
    let err = cleanroom_cli::processes::run_room(&cfg).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("sha256:"), "{text}");
    assert!(
        !text.contains("LEAKED") && text.len() < 200 + MAX_ECHOED_NAME_BYTES,
        "{text}"
    );
    room.stop().await;
}

/// I1/I4: the host's `query` import runs under the run's deadline: a five-way self join
/// that would take the engine hours is stopped when the deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_query_import_cannot_outlive_the_deadline() {
    let spec = Spec {
        edit_contract: Box::new(|t| format!("{t}\n[sandbox]\ndeadline_ms = 2000\n")),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    let body = "name = \"spin\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"\"\n\n[module]\nsql_access = true\n\n[output]\nrecipients = [\"advertiser\"]\n\n[guards]\nunit_column = \"user_id_hash\"\n";
    install(&room, &hostile("hostile_query_cross_join"), body);
    room.approve_all();
    let t = std::time::Instant::now();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Module(SandboxError::DeadlineExceeded { millis: 2000 })
        ),
        "{err}"
    );
    // Not a timing check: a bound on a hang. The run includes key release and decryption;
    // the join alone would take hours unless it is aborted at the deadline.
    assert!(t.elapsed() < std::time::Duration::from_secs(120));
    room.assert_refused(Step::Module);
    room.stop().await;
}

// ---- docs/modules.md, followed as written ----

/// The command blocks (```sh) and the `# rows.toml` block of docs/modules.md from
/// section 3 on, in order: continuation lines joined, `cargo` commands left out (the test
/// helper builds the guests with the same cargo command).
fn guide_steps() -> (Vec<Vec<String>>, String) {
    let doc =
        std::fs::read_to_string(cleanroom_cli::guest_build::source_root().join("docs/modules.md"))
            .unwrap();
    let doc = &doc[doc.find("## 3. Inspect it").expect("section 3")..];
    let (mut commands, mut rows_toml) = (Vec::new(), None);
    let mut blocks = doc.split("```").skip(1).step_by(2);
    for block in blocks.by_ref() {
        if let Some(body) = block.strip_prefix("sh\n") {
            for line in body.replace("\\\n", " ").lines() {
                let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
                if argv.first().is_some_and(|c| c == "cleanroom") {
                    commands.push(argv);
                }
            }
        } else if let Some(body) = block.strip_prefix("toml\n# rows.toml\n") {
            rows_toml = Some(body.to_string());
        }
    }
    (commands, rows_toml.expect("the guide shows rows.toml"))
}

#[test]
fn the_module_guide_runs_as_written() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let room = rt.block_on(Room::new(Spec::default()));
    let release = cleanroom_cli::guest_build::build().unwrap();
    let bytes = std::fs::read(release.join("rows_per_campaign.wasm")).unwrap();
    let digest = cleanroom_room::sandbox::digest_hex(&bytes);
    let (commands, rows_toml) = guide_steps();
    std::fs::write(
        room.root().join("rows.toml"),
        rows_toml.replace("<digest from cleanroom module inspect>", &digest),
    )
    .unwrap();
    // The guide's paths, mapped onto this room.
    let map = |arg: &str| -> String {
        let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
        if let Some(f) = arg.strip_prefix("guests/target/wasm32-wasip2/release/") {
            p(&release.join(f))
        } else if arg == "contract.toml" {
            p(&room.contract)
        } else if arg.starts_with("rows.toml") {
            p(&room.root().join(arg))
        } else if let Some(k) = arg.strip_prefix("keys/") {
            let member = k.split('.').next().unwrap();
            p(&member_dir(room.root(), member).join("keys").join(k))
        } else if arg == "ROOM" {
            p(&room.room)
        } else if arg.starts_with("ROOM/outputs/<run>") {
            let suffix = arg.rsplit_once("<run>").unwrap().1;
            p(&room
                .outputs()
                .into_iter()
                .find(|o| o.to_string_lossy().ends_with(suffix))
                .expect("the run wrote the output the guide opens"))
        } else {
            arg.to_string()
        }
    };
    let names: Vec<String> = commands.iter().map(|c| c[..3].join(" ")).collect();
    assert_eq!(
        names,
        [
            "cleanroom module inspect",
            "cleanroom module publish",
            "cleanroom workload show",
            "cleanroom workload approve",
            "cleanroom run --contract",
            "cleanroom output open",
        ],
        "the guide's commands changed: update this test with it"
    );
    for argv in &commands {
        let argv: Vec<String> = argv.iter().map(|a| map(a)).collect();
        let cli = <cleanroom_cli::cli::Cli as clap::Parser>::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{}: {e}", argv.join(" ")));
        let code = cleanroom_cli::cli::dispatch(&cli)
            .unwrap_or_else(|e| panic!("{}: {e:#}", argv.join(" ")));
        assert_eq!(code, std::process::ExitCode::SUCCESS, "{}", argv.join(" "));
    }
    // What the advertiser opened: users reached per campaign (the host's count), small
    // campaigns dropped.
    let out = map("ROOM/outputs/<run>-0.cro");
    let sk = cleanroom_formats::keys::encryption_key(
        &member_dir(room.root(), "advertiser").join("keys/advertiser.enc.key"),
    )
    .unwrap();
    let opened =
        cleanroom_formats::envelope::open(&std::fs::read(out).unwrap(), "advertiser", &sk).unwrap();
    assert_eq!(opened.content.name, "rows_per_campaign");
    let content = opened.data;
    let (impressions, _) = cleanroom_cli::demo::generate(5_000, 7);
    let mut users: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for line in impressions.lines().skip(1) {
        let mut f = line.split(',');
        let user = f.next().unwrap().to_string();
        users
            .entry(f.next().unwrap().to_string())
            .or_default()
            .insert(user);
    }
    let mut want: BTreeMap<String, u64> = users
        .into_iter()
        .map(|(c, u)| (c, u.len() as u64))
        .collect();
    want.retain(|_, n| *n >= 50);
    let text = String::from_utf8(content.to_vec()).unwrap();
    assert_eq!(text.lines().next(), Some("campaign,units"));
    let got: BTreeMap<String, u64> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(got, want);
    assert!(!got.contains_key("pilot-x"));
    rt.block_on(room.stop());
}
