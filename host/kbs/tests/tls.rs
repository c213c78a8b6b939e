//! The broker's TLS identity as an owner meets it: `init` writes a self-signed certificate
//! and a private key (mode 0600) beside the database and prints the key's SPKI SHA-256,
//! which `serve` then presents; plain HTTP only on loopback.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

#[test]
fn init_writes_a_tls_identity_and_serve_presents_the_printed_key() {
    let bin = env!("CARGO_BIN_EXE_cleanroom-kbs");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kbs.db");
    let mk = dir.path().join("kbs.master-key");
    let o = Command::new(bin)
        .args(["init", "--db"])
        .arg(&db)
        .arg("--master-key-out")
        .arg(&mk)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("spki-sha256 "))
        .unwrap_or_else(|| panic!("no spki-sha256 line: {out}"))
        .to_string();
    let cert = dir.path().join("kbs.db.tls-cert.pem");
    let key = dir.path().join("kbs.db.tls-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the TLS key is private");
    let pin =
        cleanroom_formats::tls::spki_pin_of_pem(&std::fs::read_to_string(&cert).unwrap()).unwrap();
    assert_eq!(pin.to_string(), printed);

    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .arg("--master-key")
        .arg(&mk)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let served = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listening.starts_with("listening on 127.0.0.1:"),
        "{listening}"
    );
    assert_eq!(served, format!("spki-sha256 {printed}"));

    // Plain HTTP is refused off loopback.
    let o = Command::new(bin)
        .args(["serve", "--plain-http", "--listen", "0.0.0.0:0", "--db"])
        .arg(&db)
        .arg("--master-key")
        .arg(&mk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plain HTTP is for 127.0.0.1 only"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
