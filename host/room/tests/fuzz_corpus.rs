//! Replays the fuzz corpora of the room's readers (`fuzz/corpus/parquet_encrypted/`,
//! `fuzz/corpus/room_api/`, and the crash reproducers in `fuzz/regressions/<target>/`)
//! through the entry functions the fuzz targets call (`fuzz/src/room.rs`, included
//! unchanged): no input may panic or break a property. Needs no sanitizer or nightly build;
//! `fuzz/run.sh` grows the corpora.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // the fixed keys are also what fuzz/seedgen seals and signs the seeds with
#[path = "../../../fuzz/src/room.rs"]
mod entry;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{corpus, regressions};

#[test]
fn parquet_encrypted_corpus() {
    corpus("parquet_encrypted", entry::parquet_encrypted);
}

#[test]
fn room_api_corpus() {
    corpus("room_api", entry::room_api);
}

#[test]
fn crash_reproducers_no_longer_panic() {
    regressions("parquet_encrypted", entry::parquet_encrypted);
    regressions("room_api", entry::room_api);
}

/// The seeds as written: `seed-<dataset>-<what>-<n>rows.parquet` reads through the room as
/// `<dataset>` to `n` rows (and as no other dataset); `seed-refused-*` reads as none.
#[test]
fn parquet_encrypted_seeds_read_back_their_rows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/parquet_encrypted");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(seed) = name.strip_prefix("seed-") else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let reads = entry::read_parquet(&bytes, false);
        assert_eq!(reads.len(), entry::PARQUET_DATASETS.len());
        let expected = entry::PARQUET_DATASETS.iter().find_map(|d| {
            let rest = seed.strip_prefix(&format!("{d}-"))?;
            let n = rest.strip_suffix("rows.parquet")?.rsplit('-').next()?;
            Some((*d, n.parse::<u64>().unwrap()))
        });
        assert!(
            expected.is_some() || seed.starts_with("refused-"),
            "{name}: not a seed name the test knows"
        );
        for (d, read) in &reads {
            match (expected, read) {
                (Some((want, n)), Ok(r)) if want == *d => {
                    assert_eq!((r.rows, r.stated_rows), (n, n), "{name} as {d}");
                }
                (Some((want, _)), Err(e)) if want == *d => panic!("{name} as {d}: {e}"),
                (_, Ok(r)) => panic!("{name} reads as {d} too: {r:?}"),
                (_, Err(_)) => {}
            }
        }
        seen += 1;
    }
    assert!(seen >= 5, "{} holds {seen} seeds", dir.display());
}

/// The seeds as written: `seed-accepted-<route>-*` is accepted by that route (and only it),
/// `seed-refused-<kind>-*` refused by every route, with `<kind>` among the refusals.
#[test]
fn room_api_seeds_are_accepted_or_refused_as_named() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/room_api");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(seed) = name.strip_prefix("seed-") else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let body = if bytes.first() == Some(&b'{') {
            bytes.clone()
        } else {
            let msg = cleanroom_policy::message::SignedMessage::from_bytes(&bytes).unwrap();
            entry::body(&msg)
        };
        let outcome = entry::check_routes(&body);
        if let Some(route) = seed.strip_prefix("accepted-") {
            let (_, routes) = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
            let accepted: Vec<_> = routes.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(accepted.len(), 1, "{name}: {routes:?}");
            let what = format!("{:?}", accepted[0]).to_lowercase();
            let route = route.split(['-', '.']).next().unwrap();
            assert!(what.starts_with(route), "{name}: accepted as {what}");
        } else {
            let kind = seed
                .strip_prefix("refused-")
                .unwrap_or_else(|| panic!("{name}: not a seed name the test knows"));
            // The refusal of the route the message's type goes to (or of the body).
            let refusal = match &outcome {
                Err(e) => e,
                Ok((msg, routes)) => {
                    assert!(routes.iter().all(Result::is_err), "{name}: {routes:?}");
                    use cleanroom_policy::message::MessageType as T;
                    let route = match msg.message_type {
                        T::WorkloadPropose | T::ContractAccept => 0,
                        T::WorkloadApprove | T::WorkloadRevoke => 1,
                        T::RunRequest => 2,
                        T::RunCancel => 3,
                        T::OutputFetch => 4,
                        T::Suspend | T::Resume => 5,
                    };
                    routes[route].as_ref().unwrap_err()
                }
            };
            let got = serde_json::to_string(&refusal.kind()).unwrap();
            assert!(
                kind.starts_with(got.trim_matches('"')),
                "{name}: refused as {got}: {refusal}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 10, "{} holds {seen} seeds", dir.display());
}
