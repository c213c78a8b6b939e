//! The verifier binary as an auditor meets it (and, being an integration test, this makes
//! `cargo test` build `cleanroom-verify`).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

#[test]
fn verifier_refuses_an_edited_log_with_exit_1() {
    let bin = env!("CARGO_BIN_EXE_cleanroom-verify");
    let o = Command::new(bin).arg("--help").output().unwrap();
    assert!(o.status.success());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "{\"seq\":0}\n").unwrap();
    let o = Command::new(bin)
        .args(["audit", "verify", "--log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
