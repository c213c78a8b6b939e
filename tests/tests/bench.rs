//! `cleanroom bench tpch` at SF 0.01 and `cleanroom bench service` small: the benchmarks work
//! end to end (issues 12, 11, 15). Every TPC-H query
//! either runs through the full clean-room path and gives plain DataFusion's rows, or is
//! refused by the room's query rules for a stated reason. No timing is asserted: the
//! figures live in docs/PERFORMANCE.md (`tests/perf/tpch.sh`).

use cleanroom_cli::bench::tpch::{self, Agreement, Options, Outcome};
use cleanroom_cli::bench::tpch_queries;
use cleanroom_kbs::events::{EventDecision, EventKind};
use cleanroom_room::error::{QueryRefusal, RuleViolation};

/// What the room's query rules refuse of TPC-H, by design (docs/privacy.md): subqueries
/// (write them as joins), a SUM whose CASE picks rows by a column (it singles out rows of a
/// large group, as a FILTER clause would), and outputs that release an order's or a
/// customer's key.
fn refused_by_design(query: u8) -> Option<RuleViolation> {
    let subquery = RuleViolation::Unsupported {
        what: "a subquery expression (write it as a join)",
    };
    let sum_of = |dataset: &str, column: &str| RuleViolation::AggregateOfNonMetric {
        function: "sum".into(),
        dataset: dataset.into(),
        column: column.into(),
    };
    let released = |dataset: &str, column: &str| RuleViolation::NotReleasable {
        dataset: dataset.into(),
        column: column.into(),
    };
    Some(match query {
        2 | 4 | 11 | 15 | 16 | 17 | 18 | 20 | 21 | 22 => subquery,
        3 => released("lineitem", "l_orderkey"),
        10 => released("customer", "c_custkey"),
        8 => sum_of("nation", "n_name"),
        12 => sum_of("orders", "o_orderpriority"),
        14 => sum_of("part", "p_type"),
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_at_sf_0_01_runs_every_query_and_what_the_room_releases_equals_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sf: 0.01,
        queries: (1..=22).collect(),
        reps: 1,
        out: dir.path().join("bench"),
        memory_limit: cleanroom_room::engine::DEFAULT_MEMORY_LIMIT,
        duckdb: true,
        key_releases: 10,
    };
    let mut out = Vec::new();
    let report = tpch::run(&opts, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    eprintln!("{text}");

    assert_eq!(report.outcomes.len(), 22);
    let lineitem = report
        .table_rows
        .iter()
        .find(|(t, _)| t == "lineitem")
        .unwrap()
        .1;
    // SF 0.01: 15 000 orders of 1 to 7 lines each.
    assert!(
        (15_000..=105_000).contains(&lineitem),
        "{lineitem} lineitem rows"
    );
    for o in &report.outcomes {
        match o {
            Outcome::Admitted(f) => {
                assert_eq!(refused_by_design(f.query), None, "Q{} ran", f.query);
                assert_ne!(f.agreement, Agreement::Differs, "Q{}: {text}", f.query);
                assert!(f.room_ms > 0.0 && f.datafusion_ms > 0.0);
            }
            Outcome::Refused { query, refusal, .. } => match refusal {
                QueryRefusal::Rule { violation, .. } => {
                    assert_eq!(
                        Some(violation),
                        refused_by_design(*query).as_ref(),
                        "Q{query}"
                    )
                }
                other => panic!("Q{query} refused other than by a rule: {other}"),
            },
            Outcome::OverMemory { query, .. } => {
                panic!("Q{query} needed more than the memory pool at SF 0.01: {text}")
            }
        }
    }
    assert!(report.geomean_ratio.is_some());
    // Key releases were measured against the same broker: every one succeeded (an error
    // would have failed the run), so there are figures.
    let k = report.key_release.as_ref().unwrap();
    assert!(
        k.p50_ms > 0.0 && k.p99_ms >= k.p50_ms && k.per_second > 0.0,
        "{k:?}"
    );
    // The report is written beside the data.
    let md = std::fs::read_to_string(dir.path().join("bench/tpch-sf0.01.md")).unwrap();
    assert!(md.contains("| Q1 |"), "{md}");
    // DuckDB ran every admitted query where its Python package is (CI installs it).
    let with_duckdb = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Admitted(f) if f.duckdb_ms.is_some()))
        .count();
    let admitted = report
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Admitted(_)))
        .count();
    if std::env::var_os("CI").is_some() || crate::common::python_has(&["duckdb"]) {
        assert_eq!(with_duckdb, admitted, "{}", report.duckdb);
    }

    // The room attested once per run at the owner's broker, which released every input of
    // the run in that session.
    let owner = dir.path().join("bench/run/owner");
    let events =
        cleanroom_kbs::commands::open_store(&owner.join("kbs.db"), &owner.join("kbs.master-key"))
            .unwrap()
            .verify_events()
            .unwrap()
            .0;
    let granted = |kind: EventKind| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.decision == EventDecision::Granted)
            .count()
    };
    let admitted_runs: Vec<u8> = report
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Admitted(f) => Some(f.query),
            Outcome::Refused { .. } | Outcome::OverMemory { .. } => None,
        })
        .collect();
    let inputs: usize = admitted_runs
        .iter()
        .map(|n| tpch_queries::QUERIES[usize::from(*n) - 1].tables.len())
        .sum();
    // Then the key-release measurement: one attestation and one release each.
    let measured = report.key_release.as_ref().unwrap().total;
    assert_eq!(granted(EventKind::Attest), admitted_runs.len() + measured);
    assert_eq!(granted(EventKind::Release), inputs + measured);

    // A second run with the same SF reuses the generated data.
    let mut out = Vec::new();
    let again = tpch::run(
        &Options {
            queries: vec![6],
            duckdb: false,
            key_releases: 0,
            ..opts
        },
        &mut out,
    )
    .await
    .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("reusing the data"));
    assert_eq!(again.outcomes.len(), 1);
    assert!(again.key_release.is_none());
}

/// `cleanroom bench service`, small: the room service (its own process) answers every
/// status read and every unique signed proposal of concurrent attested clients, records each
/// accepted proposal in its audit log exactly once (the bench checks the log's chain and
/// counts), and a run requested through it commits. No timing is asserted: the figures
/// live in docs/PERFORMANCE.md and docs/reliability.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_service_under_concurrent_load_answers_and_records_every_request() {
    use cleanroom_cli::bench::service::{ServiceArgs, run};
    let dir = tempfile::tempdir().unwrap();
    let args = ServiceArgs {
        clients: 3,
        seconds: 1.5,
        proposals: 150,
        runs: 1,
        impressions: 5_000,
        out: dir.path().to_path_buf(),
    };
    let report = run(&args, &mut std::io::sink()).await.unwrap();
    assert_eq!(
        (report.service_run_ms.len(), report.one_shot_run_ms.len()),
        (1, 1)
    );
    let [reads, proposals] = &report.phases[..] else {
        panic!("two phases expected: {:?}", report.phases);
    };
    for p in [reads, proposals] {
        assert!(p.requests > 0, "{p:?}");
        assert!(p.errors.is_empty(), "{p:?}");
        assert_eq!(p.ok, p.requests, "{p:?}");
        assert_eq!(p.clients, 3);
    }
    assert!(proposals.requests <= 150);
    assert_eq!(report.audit_accepted_proposals, proposals.ok);
    assert!(dir.path().join("service.md").is_file());
    assert!(dir.path().join("service.json").is_file());
}
