//! The broker binary as a data owner meets it (and, being an integration test, this makes
//! `cargo test` build `cleanroom-kbs`, which `cleanroom kbs` and the end-to-end tests start).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

#[test]
fn broker_binary_explains_itself_and_refuses_a_missing_database() {
    let bin = env!("CARGO_BIN_EXE_cleanroom-kbs");
    let o = Command::new(bin).arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in ["init", "serve", "put", "events"] {
        assert!(help.contains(cmd), "{cmd} missing from help: {help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin)
        .arg("events")
        .arg("--db")
        .arg(dir.path().join("missing.db"))
        .arg("--master-key")
        .arg(dir.path().join("missing.key"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
