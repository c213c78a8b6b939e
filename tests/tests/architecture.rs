//! The crates follow the trust domains (docs/architecture.md): the dependency direction is
//! read from `cargo tree` (normal dependencies, transitively, as cargo resolved them)
//! and checked here, so an edge that breaks it fails the suite.
//!
//! - the room never depends on the key broker or the CLI;
//! - the key broker never depends on the room, the CLI, DataFusion or wasmtime;
//! - the formats and the verifier never depend on DataFusion, wasmtime or axum, nor on the
//!   room, the broker or the CLI (the formats on `cleanroom-policy` at most);
//! - `cleanroom-policy` and `cleanroom-attest` depend on nothing of ours.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

const OURS: [&str; 7] = [
    "cleanroom-policy",
    "cleanroom-attest",
    "cleanroom-formats",
    "cleanroom-verify",
    "cleanroom-kbs",
    "cleanroom-room",
    "cleanroom-cli",
];

/// Every package `krate` depends on through normal (non-dev, non-build) dependencies, as
/// cargo resolved them for this platform (`cargo tree -e normal`).
fn closure(krate: &str) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            krate,
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {krate}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1) // the crate itself
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn closures() -> BTreeMap<String, BTreeSet<String>> {
    OURS.iter().map(|k| (k.to_string(), closure(k))).collect()
}

/// Every forbidden edge, as "crate → forbidden dependency".
fn violations(closures: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let ours = OURS;
    let engine = ["datafusion", "wasmtime", "wasmtime-wasi"];
    let rules: Vec<(&str, Vec<&str>)> = vec![
        ("cleanroom-policy", ours.to_vec()),
        ("cleanroom-attest", ours.to_vec()),
        (
            "cleanroom-formats",
            [&ours[1..], &engine[..], &["axum"]].concat(),
        ),
        (
            "cleanroom-verify",
            [
                &["cleanroom-kbs", "cleanroom-room", "cleanroom-cli", "axum"][..],
                &engine[..],
            ]
            .concat(),
        ),
        (
            "cleanroom-kbs",
            [&["cleanroom-room", "cleanroom-cli"][..], &engine[..]].concat(),
        ),
        ("cleanroom-room", vec!["cleanroom-kbs", "cleanroom-cli"]),
    ];
    let mut v = Vec::new();
    for (krate, forbidden) in rules {
        let deps = &closures[krate];
        for f in forbidden {
            if f != krate && deps.contains(f) {
                v.push(format!("{krate} → {f}"));
            }
        }
    }
    v
}

#[test]
fn crates_depend_only_in_the_direction_of_trust() {
    assert_eq!(violations(&closures()), Vec::<String>::new());
}

#[test]
fn a_forbidden_edge_is_caught() {
    // The check itself can fail: add edges the rules forbid to the real closures.
    let mut c = closures();
    let kbs = c["cleanroom-kbs"].clone();
    let room = c["cleanroom-room"].clone();
    let room_deps = c.get_mut("cleanroom-room").unwrap();
    room_deps.insert("cleanroom-kbs".into());
    room_deps.extend(kbs);
    let kbs_deps = c.get_mut("cleanroom-kbs").unwrap();
    kbs_deps.insert("cleanroom-room".into());
    kbs_deps.extend(room);
    c.get_mut("cleanroom-formats")
        .unwrap()
        .insert("axum".into());
    let v = violations(&c);
    for edge in [
        "cleanroom-room → cleanroom-kbs",
        "cleanroom-kbs → cleanroom-room",
        "cleanroom-kbs → datafusion",
        "cleanroom-kbs → wasmtime",
        "cleanroom-formats → axum",
    ] {
        assert!(v.contains(&edge.to_string()), "{edge} not caught: {v:?}");
    }
}
