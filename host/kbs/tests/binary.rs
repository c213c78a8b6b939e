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
    for cmd in ["init", "serve", "put", "events", "upgrade"] {
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

fn kbs(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom-kbs"))
        .args(args)
        .output()
        .unwrap()
}

/// `events --verify` as an owner runs it: 0 and the head on an intact log, 1 and the first
/// broken row when the operator edited the database file; a database whose chain columns
/// were removed (or one made before the chain) is refused (2) until `upgrade` chains it.
#[test]
fn events_verify_names_an_operator_edit_and_upgrade_chains_an_unchained_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kbs.db");
    let key = dir.path().join("kbs.master-key");
    let (db_arg, key_arg) = (db.as_os_str(), key.as_os_str());
    let o = kbs(&[
        "init".as_ref(),
        "--db".as_ref(),
        db_arg,
        "--master-key-out".as_ref(),
        key_arg,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verify = || {
        kbs(&[
            "events".as_ref(),
            "--db".as_ref(),
            db_arg,
            "--master-key".as_ref(),
            key_arg,
            "--verify".as_ref(),
        ])
    };
    let o = verify();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("event log verifies: 1 events, head 0:"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let sql = |s: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(s)
            .unwrap()
    };
    sql("UPDATE events SET reason = 'edited' WHERE seq = 0");
    let o = verify();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The chain removed: the broker refuses the database until its owner chains it again.
    sql("DROP INDEX events_seq;
         ALTER TABLE events DROP COLUMN hash;
         ALTER TABLE events DROP COLUMN prev;
         ALTER TABLE events DROP COLUMN seq;
         DELETE FROM meta WHERE k = 'events_head';");
    assert_eq!(verify().status.code(), Some(2));
    let o = kbs(&[
        "upgrade".as_ref(),
        "--db".as_ref(),
        db_arg,
        "--master-key".as_ref(),
        key_arg,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = verify();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("event log verifies: 2 events, head 1:"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
