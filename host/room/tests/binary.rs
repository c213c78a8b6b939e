//! The room binary as an operator meets it (and, being an integration test, this makes
//! `cargo test` build `cleanroom-room`, which the CLI's `run` and the end-to-end tests start).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

#[test]
fn room_binary_explains_itself_and_refuses_bad_input() {
    let bin = env!("CARGO_BIN_EXE_cleanroom-room");
    let o = Command::new(bin).args(["run", "--help"]).output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--contract", "--workload", "--dir", "--platform"] {
        assert!(help.contains(flag), "{flag} missing from help: {help}");
    }
    let o = Command::new(bin)
        .args([
            "run",
            "--contract",
            "/nonexistent/contract.toml",
            "--workload",
            "w.toml",
            "--dir",
            "/nonexistent/room",
            "--platform",
            "sim",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/contract.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
