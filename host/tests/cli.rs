//! The `cleanroom` binary as a user meets it: bad input gets a one-line cause and a non-zero
//! exit, never a panic; the demo runs end to end.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn cleanroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom"))
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
        "member", "contract", "dataset", "kbs", "workload", "run", "output", "audit", "attest",
        "measure", "demo",
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
    for f in [
        "room/contract.toml",
        "room/audit.jsonl",
        "room/workload.toml",
        "publisher/kbs.db",
        "advertiser/keys/advertiser.enc.key",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // The log it leaves verifies through the CLI as well.
    let o = cleanroom(&[
        "audit",
        "verify",
        "--log",
        dir.join("room/audit.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("audit log verified"));
}
