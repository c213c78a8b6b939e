//! The `cleanroom` binary as a user meets it: bad input gets a one-line cause and a non-zero
//! exit, never a panic; the demo runs end to end.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn cleanroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom"))
        .env("CLEANROOM_NO_BIN_BUILD", "1")
        .args(args)
        .output()
        .expect("spawn cleanroom")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A refusal or error: non-zero exit, one line naming the cause, no panic.
fn assert_clean_failure(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic reached the user: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one-line cause expected: {err}"
    );
    assert!(
        err.contains(needle),
        "stderr should mention `{needle}`: {err}"
    );
}

fn keygen(dir: &Path, name: &str) {
    let o = cleanroom(&[
        "member",
        "keygen",
        "--name",
        name,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn help_explains_every_command() {
    let o = cleanroom(&["--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "member",
        "contract",
        "dataset",
        "kbs",
        "workload",
        "governance",
        "run",
        "output",
        "audit",
        "attest",
        "measure",
        "demo",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}: {out}");
    }
}

#[test]
fn missing_contract_file_names_the_file() {
    let o = cleanroom(&[
        "contract",
        "digest",
        "--contract",
        "/nonexistent/contract.toml",
    ]);
    assert_clean_failure(&o, 2, "/nonexistent/contract.toml");
}

#[test]
fn malformed_toml_names_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("contract.toml");
    std::fs::write(&p, "id = \"x\"\nversion = [\n").unwrap();
    let o = cleanroom(&["contract", "digest", "--contract", p.to_str().unwrap()]);
    assert_clean_failure(&o, 1, "line");
}

#[test]
fn encryption_key_given_as_signing_key_is_named() {
    let d = tempfile::tempdir().unwrap();
    keygen(d.path(), "alice");
    let contract = d.path().join("contract.toml");
    let entry = std::fs::read_to_string(d.path().join("alice.member.toml")).unwrap();
    std::fs::write(
        &contract,
        format!("id = \"x\"\nversion = 1\n{entry}\n[attestation]\nplatforms = [\"snp\"]\n"),
    )
    .unwrap();
    let o = cleanroom(&[
        "contract",
        "sign",
        "--contract",
        contract.to_str().unwrap(),
        "--key",
        d.path().join("alice.enc.key").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, 2, "alice.enc.key");
    assert!(stderr(&o).contains("PKCS#8"), "{}", stderr(&o));
}

#[test]
fn keygen_writes_private_keys_mode_0600_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    keygen(d.path(), "alice");
    for f in ["alice.sign.key", "alice.enc.key"] {
        let mode = std::fs::metadata(d.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let o = cleanroom(&[
        "member",
        "keygen",
        "--name",
        "alice",
        "--out",
        d.path().to_str().unwrap(),
    ]);
    assert_clean_failure(&o, 2, "refusing to overwrite");
}

#[test]
fn broker_with_wrong_master_key_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("kbs.db");
    let mk = d.path().join("mk");
    let o = cleanroom(&[
        "kbs",
        "init",
        "--db",
        db.to_str().unwrap(),
        "--master-key-out",
        mk.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other_db = d.path().join("other.db");
    let other_mk = d.path().join("other-mk");
    let o = cleanroom(&[
        "kbs",
        "init",
        "--db",
        other_db.to_str().unwrap(),
        "--master-key-out",
        other_mk.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let o = cleanroom(&[
        "kbs",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--master-key",
        other_mk.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, 1, "wrong master key");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let o = cleanroom(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn demo_prints_guarded_table_and_verified_audit_log() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = cleanroom(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--impressions",
        "20000",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "stdout: {out}\nstderr: {}", stderr(&o));
    assert!(out.contains("audit log verified"), "{out}");
    assert!(
        out.contains("campaign") && out.contains("spring-sale"),
        "{out}"
    );
    assert!(
        !out.contains("pilot-x"),
        "the guard should drop the tiny campaign: {out}"
    );
    // The later steps: per-user scores to the publisher, a suspension that stops a run.
    assert!(out.contains("per-user scores"), "{out}");
    assert!(
        out.contains("the next run is refused: the room is suspended by `publisher`"),
        "{out}"
    );
    // Every member step went through the room service: the members' own files, the
    // service's state.
    assert!(out.contains("advertiser$ cleanroom room propose"), "{out}");
    assert!(out.contains("publisher$ cleanroom room approve"), "{out}");
    for f in [
        "room/contract.toml",
        "service/room/audit.jsonl",
        "advertiser/workload.toml",
        "advertiser/contract.toml",
        "publisher/audit.jsonl",
        "publisher/kbs.db",
        "advertiser/keys/advertiser.enc.key",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // The log the service keeps verifies through the CLI as well, against the runs'
    // evidence in its state directory.
    let o = cleanroom(&[
        "audit",
        "verify",
        "--log",
        dir.join("service/room/audit.jsonl").to_str().unwrap(),
        "--evidence",
        dir.join("service/room/evidence").to_str().unwrap(),
        "--contract",
        dir.join("room/contract.toml").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("audit log verified"));
    // Without the evidence it says plainly that nothing ties the checkpoints to hardware.
    let o = cleanroom(&[
        "audit",
        "verify",
        "--log",
        dir.join("service/room/audit.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("UNVERIFIED"));
}

/// A broker process, killed when dropped.
struct Broker {
    child: std::process::Child,
    /// The contract's `broker = ..., broker_spki_sha256 = ...` for it.
    key_fields: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(db: &Path, mk: &Path) -> Broker {
    use std::io::BufRead;
    // The broker's own binary (what `cleanroom kbs` runs), so that killing it stops it.
    let kbs = Path::new(env!("CARGO_BIN_EXE_cleanroom")).with_file_name("cleanroom-kbs");
    let mut child = Command::new(kbs)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--master-key",
            mk.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut pin) = (String::new(), String::new());
    out.read_line(&mut line).unwrap();
    out.read_line(&mut pin).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"));
    let pin = pin
        .trim()
        .strip_prefix("spki-sha256 ")
        .unwrap_or_else(|| panic!("unexpected: {pin}"));
    Broker {
        key_fields: format!("broker = \"https://{addr}\", broker_spki_sha256 = \"{pin}\""),
        child,
    }
}

fn ok(args: &[&str]) -> String {
    let o = cleanroom(args);
    assert!(
        o.status.success(),
        "cleanroom {}: {}",
        args.join(" "),
        stderr(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every role through the binary: keys, brokers as separate processes, contract signing,
/// sealing, key registration, approval, the run, opening the result, verifying the log.
/// Write `DIR/room/contract.toml` for members alice and bob (keys in `DIR/keys`) on the sim
/// platform, with `body` (datasets, governance, outputs, guards), and have both sign it.
fn write_signed_contract(dir: &Path, id: &str, body: &str) {
    let measurement = ok(&["measure", "sim"]);
    let measurement = measurement.split_whitespace().nth(2).unwrap();
    let members: String = ["alice", "bob"]
        .iter()
        .map(|m| std::fs::read_to_string(dir.join(format!("keys/{m}.member.toml"))).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("room/contract.toml");
    std::fs::create_dir_all(dir.join("room")).unwrap();
    std::fs::write(
        &path,
        format!(
            "id = \"{id}\"\nversion = 1\n{members}\n{body}\n[attestation]\nplatforms = [\"sim\"]\nallow_simulated = true\nsim = {{ measurements = [\"{measurement}\"] }}\n"
        ),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    for m in ["alice", "bob"] {
        let key = dir.join(format!("keys/{m}.sign.key"));
        ok(&[
            "contract",
            "sign",
            "--contract",
            path,
            "--key",
            key.to_str().unwrap(),
        ]);
    }
}

#[test]
fn whole_flow_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
    for m in ["alice", "bob"] {
        ok(&["member", "keygen", "--name", m, "--out", &p("keys")]);
        ok(&[
            "kbs",
            "init",
            "--db",
            &p(&format!("{m}.db")),
            "--master-key-out",
            &p(&format!("{m}.mk")),
        ]);
    }
    let brokers: Vec<Broker> = ["alice", "bob"]
        .iter()
        .map(|m| {
            start_broker(
                &d.path().join(format!("{m}.db")),
                &d.path().join(format!("{m}.mk")),
            )
        })
        .collect();
    write_signed_contract(
        d.path(),
        "cli-flow",
        &format!(
            r#"
[[datasets]]
name = "sales"
owner = "alice"
format = "csv"
schema = [ {{ name = "region", type = "string" }}, {{ name = "amount", type = "int64" }}, {{ name = "customer", type = "string" }} ]
allowed_fields = ["region", "amount"]
location = "sales.sealed"
key = {{ {a}, resource = "alice/dataset/sales" }}

[[datasets]]
name = "targets"
owner = "bob"
format = "json"
schema = [ {{ name = "region", type = "string" }}, {{ name = "target", type = "int64" }} ]
allowed_fields = ["region", "target"]
location = "targets.sealed"
key = {{ {b}, resource = "bob/dataset/targets" }}

[outputs]
recipients = ["bob"]

[guards]
min_group_size = 3
"#,
            a = brokers[0].key_fields,
            b = brokers[1].key_fields
        ),
    );
    ok(&["contract", "verify", "--contract", &p("room/contract.toml")]);

    let mut sales = String::from("region,amount,customer\n");
    for (region, n) in [("north", 4), ("south", 3), ("west", 2)] {
        for i in 0..n {
            sales.push_str(&format!("{region},{},cust-{region}-{i}\n", 10 * (i + 1)));
        }
    }
    std::fs::write(p("sales.csv"), sales).unwrap();
    std::fs::write(p("targets.json"), "{\"region\":\"north\",\"target\":50}\n{\"region\":\"south\",\"target\":70}\n{\"region\":\"west\",\"target\":5}\n").unwrap();
    for (m, ds, input) in [
        ("alice", "sales", "sales.csv"),
        ("bob", "targets", "targets.json"),
    ] {
        ok(&[
            "dataset",
            "seal",
            "--contract",
            &p("room/contract.toml"),
            "--dataset",
            ds,
            "--in",
            &p(input),
            "--out",
            &p(&format!("room/{ds}.sealed")),
            "--key-out",
            &p(&format!("{ds}.key")),
        ]);
        ok(&[
            "dataset",
            "open",
            "--contract",
            &p("room/contract.toml"),
            "--dataset",
            ds,
            "--in",
            &p(&format!("room/{ds}.sealed")),
            "--key",
            &p(&format!("{ds}.key")),
        ]);
        ok(&[
            "kbs",
            "put",
            "--db",
            &p(&format!("{m}.db")),
            "--master-key",
            &p(&format!("{m}.mk")),
            "--contract",
            &p("room/contract.toml"),
            "--dataset",
            ds,
            "--key",
            &p(&format!("{ds}.key")),
            "--sealed",
            &p(&format!("room/{ds}.sealed")),
        ]);
    }
    std::fs::write(
        p("room/workload.toml"),
        r#"name = "sales-vs-target"
kind = "query"
inputs = ["sales", "targets"]
sql = "SELECT s.region, SUM(s.amount) AS sold, MAX(t.target) AS target FROM sales s JOIN targets t ON s.region = t.region GROUP BY s.region ORDER BY s.region"
[output]
recipients = ["bob"]
"#,
    )
    .unwrap();
    // Without approvals the run is refused (exit 1) and no output appears.
    let o = cleanroom(&[
        "run",
        "--contract",
        &p("room/contract.toml"),
        "--workload",
        &p("room/workload.toml"),
        "--dir",
        &p("room"),
        "--platform",
        "sim",
    ]);
    assert_clean_failure(&o, 1, "lacks an approval");
    assert!(!d.path().join("room/outputs").exists());
    for m in ["alice", "bob"] {
        ok(&[
            "workload",
            "approve",
            "--contract",
            &p("room/contract.toml"),
            "--workload",
            &p("room/workload.toml"),
            "--key",
            &p(&format!("keys/{m}.sign.key")),
        ]);
    }
    let out = ok(&[
        "run",
        "--contract",
        &p("room/contract.toml"),
        "--workload",
        &p("room/workload.toml"),
        "--dir",
        &p("room"),
        "--platform",
        "sim",
    ]);
    assert!(out.contains("INSECURE"), "{out}");
    let output = std::fs::read_dir(d.path().join("room/outputs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let opened = cleanroom(&[
        "output",
        "open",
        "--in",
        output.to_str().unwrap(),
        "--name",
        "bob",
        "--key",
        &p("keys/bob.enc.key"),
        "--contract",
        &p("room/contract.toml"),
    ]);
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert!(
        stderr(&opened).contains("signed by run "),
        "{}",
        stderr(&opened)
    );
    // west has 2 sales rows (< 3): dropped. The customer column never left the owner.
    assert_eq!(
        String::from_utf8_lossy(&opened.stdout),
        "region,sold,target\nnorth,100,50\nsouth,60,70\n"
    );
    assert!(stderr(&opened).contains("SIMULATED"));
    // Alice is not a recipient.
    let o = cleanroom(&[
        "output",
        "open",
        "--in",
        output.to_str().unwrap(),
        "--name",
        "alice",
        "--key",
        &p("keys/alice.enc.key"),
        "--contract",
        &p("room/contract.toml"),
    ]);
    assert_clean_failure(&o, 2, "not among this output's recipients");
    // A member verifies the run's evidence against the contract.
    let bundle = std::fs::read_dir(d.path().join("room/evidence"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let v = ok(&[
        "attest",
        "verify",
        bundle.to_str().unwrap(),
        "--policy",
        &p("room/contract.toml"),
    ]);
    assert!(v.starts_with("VERIFIED sim evidence"), "{v}");
    let v = ok(&[
        "audit",
        "verify",
        "--log",
        &p("room/audit.jsonl"),
        "--evidence",
        &p("room/evidence"),
        "--contract",
        &p("room/contract.toml"),
    ]);
    assert!(v.starts_with("audit log verified: "), "{v}");
    // Bob's output anchors the log as it was when the output was sealed.
    let anchor = stderr(&opened)
        .split_whitespace()
        .skip_while(|w| *w != "anchor")
        .nth(1)
        .unwrap()
        .to_string();
    let v = ok(&[
        "audit",
        "verify",
        "--log",
        &p("room/audit.jsonl"),
        "--anchor",
        &anchor,
        "--evidence",
        &p("room/evidence"),
        "--contract",
        &p("room/contract.toml"),
    ]);
    assert!(v.contains("every anchored entry is present (1)"), "{v}");
    let o = cleanroom(&[
        "audit",
        "verify",
        "--log",
        &p("room/audit.jsonl"),
        "--anchor",
        "7:not-hex",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let events = ok(&[
        "kbs",
        "events",
        "--db",
        &p("alice.db"),
        "--master-key",
        &p("alice.mk"),
    ]);
    assert!(
        events.contains("release  granted  alice/dataset/sales"),
        "{events}"
    );

    // Bob suspends the room: the room and both brokers record it; the next run is refused.
    let govern = |what: &str, who: &str| {
        ok(&[
            "governance",
            what,
            "--contract",
            &p("room/contract.toml"),
            "--key",
            &p(&format!("keys/{who}.sign.key")),
            "--reason",
            "contract renewal",
            "--room",
            &p("room"),
        ])
    };
    let said = govern("suspend", "bob");
    assert_eq!(
        said.matches("recorded; suspended by bob").count(),
        2,
        "{said}"
    );
    let run = || {
        cleanroom(&[
            "run",
            "--contract",
            &p("room/contract.toml"),
            "--workload",
            &p("room/workload.toml"),
            "--dir",
            &p("room"),
            "--platform",
            "sim",
        ])
    };
    assert_clean_failure(&run(), 1, "the room is suspended by `bob`");
    let status = ok(&[
        "governance",
        "status",
        "--contract",
        &p("room/contract.toml"),
        "--room",
        &p("room"),
    ]);
    assert!(
        status.starts_with("suspended by `bob` since ") && status.contains("contract renewal"),
        "{status}"
    );
    govern("resume", "bob");
    assert!(run().status.success(), "the run after resume succeeds");
    drop(brokers);
}

/// Issue 3: `module publish` checks a component against its workload and signs the
/// proposal owners approve; the contract's proposers are enforced at publish and approve.
#[test]
fn module_publish_signs_the_proposal_owners_approve() {
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
    for m in ["alice", "bob"] {
        keygen(&d.path().join("keys"), m);
    }
    write_signed_contract(
        d.path(),
        "publish",
        r#"
[[datasets]]
name = "impressions"
owner = "alice"
format = "csv"
schema = [ { name = "campaign", type = "string" }, { name = "user_id", type = "string" } ]
allowed_fields = ["campaign", "user_id"]
location = "impressions.sealed"
key = { broker = "http://127.0.0.1:9", resource = "alice/dataset/impressions" }

[governance]
proposers = ["bob"]

[outputs]
recipients = ["bob"]
"#,
    );
    let guests = cleanroom_cli::guest_build::build().unwrap();
    let funnel = guests.join("query_funnel.wasm");
    let funnel = funnel.to_str().unwrap();
    let inspected = ok(&["module", "inspect", funnel]);
    let digest = inspected
        .lines()
        .next()
        .unwrap()
        .strip_prefix("digest: ")
        .unwrap()
        .to_string();
    let workload = |kind: &str, digest: &str| {
        format!(
            "name = \"funnel\"\nkind = \"{kind}\"\ninputs = [\"impressions\"]\nmodule_digest = \"{digest}\"\n[output]\nrecipients = [\"bob\"]\n[guards]\nunit_column = \"user_id\"\n"
        )
    };
    std::fs::write(p("room/funnel.toml"), workload("query", &digest)).unwrap();
    let publish = |wasm: &str, w: &str, key: &str| {
        cleanroom(&[
            "module",
            "publish",
            wasm,
            "--contract",
            &p("room/contract.toml"),
            "--workload",
            &p(w),
            "--key",
            &p(&format!("keys/{key}.sign.key")),
            "--room",
            &p("room"),
        ])
    };

    // Alice is a member but not a proposer: refused, nothing written.
    let o = publish(funnel, "room/funnel.toml", "alice");
    assert_clean_failure(&o, 1, "may not propose");
    assert!(!d.path().join("room/funnel.toml.proposal").exists());

    // Bob publishes: proposal signed, component stored under its digest.
    let o = publish(funnel, "room/funnel.toml", "bob");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        d.path()
            .join(format!("room/modules/{digest}.wasm"))
            .is_file()
    );
    let shown = ok(&[
        "workload",
        "show",
        "--contract",
        &p("room/contract.toml"),
        "--proposal",
        &p("room/funnel.toml.proposal"),
    ]);
    assert!(shown.contains("proposed by: bob"), "{shown}");
    assert!(
        shown.contains(&format!("module: {digest} (world query)")),
        "{shown}"
    );
    assert!(shown.contains("cleanroom:workload/input@0.1.0"), "{shown}");
    let approved = ok(&[
        "workload",
        "approve",
        "--contract",
        &p("room/contract.toml"),
        "--workload",
        &p("room/funnel.toml"),
        "--key",
        &p("keys/alice.sign.key"),
    ]);
    assert!(approved.contains("(proposed by `bob`)"), "{approved}");

    // The workload edited after the proposal: the owner's approval is refused.
    std::fs::write(
        p("room/funnel.toml"),
        workload("query", &digest).replace("user_id", "uid"),
    )
    .unwrap();
    let approve_alice = || {
        cleanroom(&[
            "workload",
            "approve",
            "--contract",
            &p("room/contract.toml"),
            "--workload",
            &p("room/funnel.toml"),
            "--key",
            &p("keys/alice.sign.key"),
        ])
    };
    assert_clean_failure(&approve_alice(), 1, "proposal from `bob` is for workload");
    // No proposal at all, while the contract names proposers: refused.
    std::fs::remove_file(p("room/funnel.toml.proposal")).unwrap();
    assert_clean_failure(&approve_alice(), 1, "has no proposal");

    // A component of another world than the workload's kind.
    std::fs::write(p("room/train.toml"), workload("training", &digest)).unwrap();
    let o = publish(funnel, "room/train.toml", "bob");
    assert_clean_failure(&o, 1, "is a query module, not a training module");
    assert!(!d.path().join("room/train.toml.proposal").exists());

    // A workload whose module_digest is not the component's.
    let other = format!("{}0", &digest[..63]);
    std::fs::write(p("room/other.toml"), workload("query", &other)).unwrap();
    let o = publish(funnel, "room/other.toml", "bob");
    assert_clean_failure(&o, 1, "module_digest");

    // A component importing the WASI filesystem: refused, offending imports listed.
    let files = guests.join("hostile_open_files.wasm");
    let o = publish(files.to_str().unwrap(), "room/funnel.toml", "bob");
    assert_clean_failure(&o, 1, "wasi:filesystem/");
    assert!(!d.path().join("room/funnel.toml.proposal").exists());
}

// ---- Attestation vectors through the CLI (issue 4, acceptance 1 and 3) ----

fn vector(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../attest/tests/data")
        .join(p)
        .to_str()
        .unwrap()
        .to_string()
}

fn verify_ok(args: &[&str], platform: &str) -> String {
    let o = cleanroom(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    assert!(
        out.starts_with(&format!("VERIFIED {platform} evidence")),
        "{out}"
    );
    out
}

#[test]
fn cli_verifies_milan_snp_report_against_amd_roots() {
    let report = vector("snp-milan/report.hex");
    let vcek = vector("snp-milan/vcek.der");
    let out = verify_ok(
        &[
            "attest",
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--vcek",
            &vcek,
        ],
        "snp",
    );
    assert!(
        out.contains("generation:   Milan") && out.contains("signing_key:  VCEK"),
        "{out}"
    );
}

/// A VLEK chain: VLEK (converted to PEM) plus the Milan ASVK and ARK.
fn vlek_chain(dir: &Path) -> String {
    use base64::Engine;
    let der = std::fs::read(vector("snp-vlek/vlek.der")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let chain = dir.join("vlek-chain.pem");
    std::fs::write(
        &chain,
        pem + &std::fs::read_to_string(vector("snp-vlek/milan_ask_ark_asvk.pem")).unwrap(),
    )
    .unwrap();
    chain.to_str().unwrap().to_string()
}

#[test]
fn cli_refuses_expired_vlek_at_real_clock_and_accepts_it_inside_validity() {
    let d = tempfile::tempdir().unwrap();
    let chain = vlek_chain(d.path());
    let report = vector("snp-vlek/report.bin");
    let args = [
        "attest",
        "verify",
        "--platform",
        "snp",
        "--report",
        &report,
        "--chain",
        &chain,
    ];
    assert_clean_failure(&cleanroom(&args), 1, "expired");
    let mut at = args.to_vec();
    at.extend(["--at", "2025-06-01T00:00:00Z"]);
    let out = verify_ok(&at, "snp");
    assert!(
        out.contains("signing_key:  VLEK") && out.contains("vmpl:         1"),
        "{out}"
    );
}

#[test]
fn cli_tdx_v4_is_up_to_date_inside_its_window_and_expired_now() {
    let (q, c) = (vector("tdx-v4/quote.bin"), vector("tdx-v4/collateral.json"));
    let args = [
        "attest",
        "verify",
        "--platform",
        "tdx",
        "--quote",
        &q,
        "--collateral",
        &c,
    ];
    assert_clean_failure(&cleanroom(&args), 1, "expired");
    let mut at = args.to_vec();
    at.extend(["--at", "2025-07-01T00:00:00Z"]);
    assert!(verify_ok(&at, "tdx").contains("UpToDate"));
}

#[test]
fn cli_tdx_outdated_quote_matches_no_tcb_level() {
    let (q, c) = (
        vector("tdx-outdated/quote.bin"),
        vector("tdx-outdated/collateral.json"),
    );
    let o = cleanroom(&[
        "attest",
        "verify",
        "--platform",
        "tdx",
        "--quote",
        &q,
        "--collateral",
        &c,
        "--at",
        "2026-03-01T00:00:00Z",
    ]);
    assert_clean_failure(&o, 1, "no TCB level");
}

#[test]
fn cli_verifies_azure_snp_hcl_report() {
    let (h, c) = (
        vector("snp-azure-hcl/hcl-report.bin"),
        vector("snp-azure-hcl/vcek_ask_ark.pem"),
    );
    verify_ok(
        &[
            "attest",
            "verify",
            "--platform",
            "azure-snp",
            "--hcl-report",
            &h,
            "--chain",
            &c,
        ],
        "azure-snp",
    );
}

#[test]
fn cli_measure_snp_reproduces_known_launch_digests() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = empty.to_str().unwrap();
    let ovmf = vector("snp-measurement/ovmf_AmdSev_suffix.bin");
    for (features, digest) in [
        (
            "0x1",
            "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5",
        ),
        (
            "0x21",
            "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
        ),
    ] {
        let out = ok(&[
            "measure",
            "snp",
            "--ovmf",
            &ovmf,
            "--kernel",
            e,
            "--initrd",
            e,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--guest-features",
            features,
        ]);
        assert!(out.contains(digest), "{features}: {out}");
    }
}

/// `dataset import-master-key` (an owner bringing a PyArrow-encrypted Parquet file): the
/// key file it writes is the owner's only (0600); a dataset the contract gives no
/// `key.master_key_id`, or a master key that is not 64 hex digits, is refused naming it.
#[test]
fn import_master_key_writes_a_private_key_file_and_refuses_what_does_not_fit() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = |s: &str| d.path().join(s).to_str().unwrap().to_string();
    for m in ["alice", "bob"] {
        ok(&["member", "keygen", "--name", m, "--out", &p("keys")]);
    }
    let dataset = |name: &str, extra: &str| {
        format!(
            "[[datasets]]\nname = \"{name}\"\nowner = \"alice\"\nformat = \"parquet\"\nschema = [ {{ name = \"v\", type = \"int64\" }} ]\nallowed_fields = [\"v\"]\nlocation = \"{name}.sealed\"\nkey = {{ broker = \"http://127.0.0.1:1\", resource = \"alice/dataset/{name}\"{extra} }}\n"
        )
    };
    let body = format!(
        "{}{}[outputs]\nrecipients = [\"bob\"]\n",
        dataset("brought", ", master_key_id = \"alice-master\""),
        dataset("sealed", "")
    );
    write_signed_contract(d.path(), "import-master-key", &body);
    std::fs::write(p("master.hex"), "ab".repeat(32)).unwrap();
    std::fs::write(p("short.hex"), "ab".repeat(16)).unwrap();
    let import = |dataset: &str, key: &str, out: &str| {
        cleanroom(&[
            "dataset",
            "import-master-key",
            "--contract",
            &p("room/contract.toml"),
            "--dataset",
            dataset,
            "--master-key",
            &p(key),
            "--key-out",
            &p(out),
        ])
    };
    let o = import("brought", "master.hex", "brought.key");
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = std::fs::metadata(p("brought.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_clean_failure(
        &import("sealed", "master.hex", "sealed.key"),
        2,
        "has no key.master_key_id",
    );
    assert_clean_failure(
        &import("brought", "short.hex", "short.key"),
        2,
        "64 hexadecimal digits",
    );
    assert!(!Path::new(&p("sealed.key")).exists() && !Path::new(&p("short.key")).exists());
}
