//! Differential privacy (issue 10): releases through the host's DP path follow the declared
//! mechanism, differencing learns no more than ε allows, the budget is spent exactly and
//! once (in the room's ledger and at each broker), and an exhausted budget refuses before
//! any key is requested.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use std::process::Stdio;

use crate::common::{Room, Spec as RoomSpec};
use cleanroom_cli::demo;
use cleanroom_formats::audit::{Decision, Entry, Step, spent_micros};
use cleanroom_formats::kbs_protocol::RefusalKind;
use cleanroom_policy::dp::{Epsilon, Mechanism};
use cleanroom_policy::{Contract, PolicyError};
use cleanroom_room::RoomError;
use cleanroom_room::dp::{self, Contributions, DpQuery, Spec};
use cleanroom_room::engine::Engine;
use cleanroom_room::error::DpRefusal;

/// The demo's contract, with a dp budget on the conversions too (`value` bounded to
/// [0, 100]).
fn contract() -> Contract {
    Contract::parse(&contract_text(), "contract.toml").unwrap()
}

fn contract_text() -> String {
    let text = common::demo_contract_text();
    let roles =
        r#"columns = { metrics = ["value"], filters = ["ts"], join_keys = ["user_id_hash"] }"#;
    let text = text.replacen(
        roles,
        &format!(
            "{roles}\ndp = {{ epsilon = 10.0, max_epsilon_per_run = 1.0, bounds = {{ value = [0.0, 100.0] }} }}"
        ),
        1,
    );
    assert!(
        text.contains("bounds = { value"),
        "the demo contract changed"
    );
    text
}

/// One conversion per user `u0..u{n-1}`, timestamps `1000 + i`, values from `value(i)`.
fn conversions_csv(n: usize, value: impl Fn(usize) -> f64) -> String {
    let mut csv = String::from("user_id_hash,ts,value,order_id\n");
    for i in 0..n {
        csv.push_str(&format!("u{i},{},{},o{i}\n", 1000 + i, value(i)));
    }
    csv
}

/// The host's DP path up to the noise: plan, per-(group, unit) execution, bounding.
async fn contributions(c: &Contract, csv: &str, sql: &str) -> (DpQuery, Contributions) {
    let mut engine = Engine::new(64 << 20).unwrap();
    engine
        .register_rows(c.dataset("conversions").unwrap(), csv.as_bytes())
        .unwrap();
    let q = engine.dp_query(sql).await.unwrap();
    let batches = engine.execute_dp(&q).await.unwrap();
    let contributions = dp::bound(&q, &batches).unwrap();
    (q, contributions)
}

fn spec(q: &DpQuery, epsilon: f64) -> Spec {
    Spec {
        epsilon: Epsilon::parse(epsilon).unwrap(),
        mechanism: Mechanism::Laplace,
        bounds: q.bounds(),
        min_units: 50,
    }
}

fn laplace_cdf(x: f64, b: f64) -> f64 {
    if x < 0.0 {
        0.5 * (x / b).exp()
    } else {
        1.0 - 0.5 * (-x / b).exp()
    }
}

/// Acceptance 6: 1,000 releases of a fixed SUM through the host's DP path follow the Laplace
/// distribution the declared ε and the contract's bounds imply. Kolmogorov-Smirnov against
/// Laplace(b = sensitivity / ε-share); by the Dvoretzky-Kiefer-Wolfowitz inequality
/// P(D > t) <= 2·exp(-2·n·t²), so t = 0.0852 at n = 1000 fails a correct mechanism with
/// probability below 1e-6. The ε OpenDP's privacy maps account for is the declared ε.
#[tokio::test]
async fn dp_releases_follow_the_declared_laplace_mechanism() {
    let c = contract();
    let csv = conversions_csv(2000, |i| (i % 100) as f64 + 0.5);
    let (q, contributions) = contributions(
        &c,
        &csv,
        "SELECT COUNT(DISTINCT user_id_hash) AS users, SUM(value) AS total FROM conversions",
    )
    .await;
    assert_eq!(contributions.units, vec![2000]);
    let exact = contributions.values[0][0];
    assert_eq!(
        exact,
        (0..2000).map(|i| (i % 100) as f64 + 0.5).sum::<f64>()
    );
    let spec = spec(&q, 1.0);
    // Two parts (the group key's threshold, the sum): ε 0.5 each; a unit moves the sum by
    // at most 1 group × 1 row × 100.
    let b = 100.0 / 0.5;
    let n = 1000;
    let mut noise = Vec::with_capacity(n);
    for _ in 0..n {
        let r = dp::release(&contributions, q.measures(), &spec).unwrap();
        assert_eq!(
            r.groups,
            vec![0],
            "a group of 2,000 units passes the threshold"
        );
        let spent = r.epsilon_spent();
        assert!(
            (0.999..=1.0).contains(&spent),
            "ε by the privacy maps: {spent}"
        );
        assert!((r.scales[1] - b).abs() / b < 0.01, "scale {}", r.scales[1]);
        noise.push(r.values[0][0] - exact);
    }
    noise.sort_by(f64::total_cmp);
    let d = noise
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = laplace_cdf(*x, b);
            ((i + 1) as f64 / n as f64 - f).max(f - i as f64 / n as f64)
        })
        .fold(0.0, f64::max);
    let critical = ((2.0f64 / 1e-6).ln() / (2.0 * n as f64)).sqrt();
    assert!(
        d < critical,
        "KS distance {d} >= {critical}: not Laplace({b})"
    );
    // And not just any wide distribution: the noise is not the exact value.
    assert!(noise.iter().filter(|x| **x == 0.0).count() < 5);
}

/// Gaussian noise: what OpenDP's maps account for (ρ turned into (ε, δ)) stays within the
/// declared ε, δ stays within the contract's, and the noise has the calibrated spread (its
/// sample standard deviation within 6 standard errors of the scale).
#[tokio::test]
async fn gaussian_releases_stay_within_the_declared_budget() {
    let c = contract();
    let csv = conversions_csv(2000, |i| (i % 100) as f64);
    let (q, contributions) =
        contributions(&c, &csv, "SELECT SUM(value) AS total FROM conversions").await;
    let exact = contributions.values[0][0];
    let spec = Spec {
        mechanism: Mechanism::Gaussian,
        ..spec(&q, 1.0)
    };
    let n = 1000;
    let mut noise = Vec::with_capacity(n);
    let mut scale = 0.0;
    for _ in 0..n {
        let r = dp::release(&contributions, q.measures(), &spec).unwrap();
        assert!(r.epsilon_spent() <= 1.0, "{}", r.epsilon_spent());
        assert!(r.delta <= q.bounds().delta, "{}", r.delta);
        scale = r.scales[1];
        noise.push(r.values[0][0] - exact);
    }
    let sd = (noise.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
    let se = scale / (2.0 * n as f64).sqrt();
    assert!((sd - scale).abs() < 6.0 * se, "sd {sd}, scale {scale}");
}

/// Acceptance 3, differencing: two approved queries over a large group that differ by one
/// person (`WHERE ts <> <that person's timestamp>`). Without noise, their difference is the
/// person's value, every time; through the DP path, an attacker guessing whether the value
/// is 0 or 100 from the two releases is right no more often than ε allows: for the total ε
/// of what it sees (two releases of ε 0.2), P(right) <= e^0.4 / (1 + e^0.4) = 0.599, checked
/// over 2,000 trials with a 5σ margin (false failure below 1e-6).
#[tokio::test]
async fn differencing_two_queries_learns_no_more_than_epsilon_allows() {
    let c = contract();
    let target_ts = 1000 + 1999;
    let all = "SELECT SUM(value) AS total FROM conversions";
    let without = format!("SELECT SUM(value) AS total FROM conversions WHERE ts <> {target_ts}");
    // The world where the person's value is 0, and the one where it is 100.
    let mut worlds = Vec::new();
    for secret in [0.0, 100.0] {
        let csv = conversions_csv(2000, |i| if i == 1999 { secret } else { (i % 97) as f64 });
        let (qa, ca) = contributions(&c, &csv, all).await;
        let (qb, cb) = contributions(&c, &csv, &without).await;
        worlds.push((qa, ca, qb, cb));
    }
    // Without noise the attack always works.
    for (secret, (_, ca, _, cb)) in [0.0, 100.0].iter().zip(&worlds) {
        assert_eq!(ca.values[0][0] - cb.values[0][0], *secret);
    }
    let epsilon = 0.2;
    let trials = 2000;
    let mut right = 0;
    let mut rng = rand::rngs::OsRng;
    for _ in 0..trials {
        let world = rand::Rng::gen_range(&mut rng, 0..2usize);
        let (qa, ca, qb, cb) = &worlds[world];
        let ra = dp::release(ca, qa.measures(), &spec(qa, epsilon)).unwrap();
        let rb = dp::release(cb, qb.measures(), &spec(qb, epsilon)).unwrap();
        let difference = ra.values[0][0] - rb.values[0][0];
        let guess = usize::from(difference > 50.0);
        right += usize::from(guess == world);
    }
    let rate = right as f64 / trials as f64;
    let e = (2.0 * epsilon).exp();
    let bound = e / (1.0 + e);
    let margin = 5.0 * (0.25 / trials as f64).sqrt();
    assert!(
        rate <= bound + margin,
        "the attacker was right {rate} of the time; ε {} allows {bound}",
        2.0 * epsilon
    );
}

/// Queries the DP path cannot bound are refused, each by what it breaks, before any key.
#[tokio::test]
async fn dp_queries_outside_the_bounded_shapes_are_refused() {
    let c = contract();
    let engine = Engine::for_planning(&[c.dataset("conversions").unwrap()]).unwrap();
    let cases: Vec<(&str, DpRefusal)> = vec![
        (
            "SELECT COUNT(*) AS n FROM conversions HAVING COUNT(*) > 10",
            DpRefusal::Unsupported {
                what: "HAVING (a condition on exact aggregates is not differentially private)",
            },
        ),
        (
            "SELECT SUM(value) * 2 AS twice FROM conversions",
            DpRefusal::Unsupported {
                what: "computing on a released aggregate (noise is added to each aggregate; compute on the result)",
            },
        ),
        (
            "SELECT SUM(value + 1) AS v FROM conversions",
            DpRefusal::Unsupported {
                what: "SUM or AVG of an expression (use a bounded column)",
            },
        ),
        (
            "SELECT COUNT(DISTINCT ts) AS v FROM conversions",
            DpRefusal::Unsupported {
                what: "COUNT(DISTINCT x) of anything but the privacy unit",
            },
        ),
    ];
    for (sql, expected) in cases {
        match engine.dp_query(sql).await {
            Err(RoomError::Dp(got)) => assert_eq!(got, expected, "{sql}"),
            other => panic!("{sql}: expected {expected:?}, got {other:?}"),
        }
    }
    // A metric without bounds has no sensitivity: the impressions declare none.
    let demo = contract();
    let both = Engine::for_planning(&[
        demo.dataset("impressions").unwrap(),
        demo.dataset("conversions").unwrap(),
    ])
    .unwrap();
    match both
        .dp_query(
            "SELECT i.campaign, COUNT(*) AS n FROM impressions i JOIN conversions c ON i.user_id_hash = c.user_id_hash GROUP BY i.campaign",
        )
        .await
    {
        Err(RoomError::Dp(DpRefusal::PrivacyUnits { found: 2 })) => {}
        other => panic!("two privacy units: {other:?}"),
    }
}

/// The contract and workload refuse DP settings that cannot be honoured.
#[test]
fn dp_settings_that_cannot_be_honoured_are_refused_at_parse() {
    let c = contract();
    let workload = |inputs: &str, epsilon: f64| {
        cleanroom_policy::Workload::parse(
            &format!(
                "name = \"w\"\nkind = \"query\"\ninputs = {inputs}\nsql = \"SELECT COUNT(*) FROM conversions\"\ndp = {{ epsilon = {epsilon:?}, mechanism = \"laplace\" }}\n[output]\nrecipients = [\"advertiser\"]\n"
            ),
            "w.toml",
        )
    };
    // An input without a budget.
    let w = workload(r#"["conversions", "conversion-model"]"#, 0.5).unwrap();
    assert!(matches!(
        w.check_against(&c),
        Err(PolicyError::NoDpBudget { dataset, .. }) if dataset == "conversion-model"
    ));
    // Above the per-run cap.
    let w = workload(r#"["conversions"]"#, 2.0).unwrap();
    assert!(matches!(
        w.check_against(&c),
        Err(PolicyError::DpAboveRunCap { dataset, cap, .. }) if dataset == "conversions" && cap == "1"
    ));
    // A budget on a dataset without a privacy unit protects no one.
    let text = contract_text().replacen(
        "privacy_unit = \"user_id_hash\"\n# value leaves",
        "# value leaves",
        1,
    );
    assert!(matches!(
        Contract::parse(&text, "contract.toml"),
        Err(PolicyError::InvalidField { field, .. }) if field == "dp"
    ));
    // ε that cannot be accounted exactly.
    assert!(matches!(
        workload(r#"["conversions"]"#, 0.0000001),
        Err(PolicyError::InvalidValue { field, .. }) if field == "dp.epsilon"
    ));
}

/// The demo room with the impressions' budget set to ε 1 (at most 0.5 a run) and the
/// workload the demo's DP reach at ε 0.5.
async fn dp_room() -> Room {
    let room = Room::new(RoomSpec {
        edit_contract: Box::new(|t| {
            t.replacen(
                "epsilon = 3.0, max_epsilon_per_run = 1.0",
                "epsilon = 1.0, max_epsilon_per_run = 0.5",
                1,
            )
        }),
        ..RoomSpec::default()
    })
    .await;
    std::fs::write(
        &room.workload,
        demo::dp_workload_text(demo::DP_REACH_SQL, 0.5),
    )
    .unwrap();
    room.approve_all();
    room
}

fn spends(entries: &[Entry]) -> Vec<&Entry> {
    entries
        .iter()
        .filter(|e| e.event == Step::Budget && e.decision == Decision::Spent)
        .collect()
}

/// Acceptance 6: the budget is spent exactly (two runs of ε 0.5 spend 1.0 exactly, in the
/// log and at the broker), and an exhausted budget refuses the third run before attestation:
/// no key request reaches the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_refuses_the_run_before_any_key_request() {
    let room = dp_room().await;
    for _ in 0..2 {
        room.run().await.unwrap();
    }
    let entries = room.audit();
    assert_eq!(spends(&entries).len(), 2);
    assert_eq!(spent_micros(&entries, "impressions"), 1_000_000);
    let events_before = room.broker_events("publisher").len();
    let released_before = room.keys_released("publisher");
    assert_eq!(released_before, 2);
    match room.run().await {
        Err(RoomError::Dp(DpRefusal::BudgetExhausted {
            dataset,
            spent,
            total,
            asked,
        })) => {
            assert_eq!(
                (
                    dataset.as_str(),
                    spent.as_str(),
                    total.as_str(),
                    asked.as_str()
                ),
                ("impressions", "1", "1", "0.5")
            );
        }
        other => panic!("expected BudgetExhausted, got {other:?}"),
    }
    let entries = room.audit();
    let refused = entries
        .iter()
        .rev()
        .find(|e| e.decision == Decision::Refused)
        .unwrap();
    assert_eq!(refused.event, Step::Budget);
    assert!(
        !entries
            .iter()
            .skip_while(|e| e.seq <= spends(&entries)[1].seq)
            .any(|e| e.event == Step::Attestation || e.event == Step::KeyRequest),
        "the refused run neither attested nor asked for a key"
    );
    assert_eq!(
        room.broker_events("publisher").len(),
        events_before,
        "the broker saw nothing of the refused run"
    );
    assert_eq!(spends(&entries).len(), 2, "nothing more was spent");
    room.stop().await;
}

/// The broker's own ledger: the operator cuts the room's log back to the head the broker
/// last saw (the key request of the run that spent the rest of the budget, so the broker's
/// rollback check passes) and the room's ledger shows budget that was spent. The broker
/// refuses the key anyway: its ledger is outside the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_back_to_before_a_spend_cannot_spend_the_budget_again_at_the_broker() {
    let room = dp_room().await;
    for _ in 0..2 {
        room.run().await.unwrap();
    }
    let d = common::member_dir(room.root(), "publisher");
    let store =
        cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key")).unwrap();
    let (seen, _) = store
        .audit_head(&hex::encode(room.digest))
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .budget_spent(&hex::encode(room.digest), "impressions")
            .unwrap(),
        1_000_000
    );
    drop(store);
    // Keep the log up to the head the broker saw.
    let log = room.room.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(seen as usize + 1).collect();
    std::fs::write(&log, format!("{}\n", kept.join("\n"))).unwrap();
    assert_eq!(spent_micros(&room.audit(), "impressions"), 500_000);
    match room.run().await {
        Err(RoomError::KeyRefused { kind, .. }) => {
            assert_eq!(kind, RefusalKind::BudgetExhausted)
        }
        other => panic!("expected the broker's BudgetExhausted, got {other:?}"),
    }
    assert!(room.outputs().len() == 2, "nothing more was released");
    room.stop().await;
}

/// Acceptance 6, crash: the room killed between the ledger entry and the output's commit
/// (`budget-recorded`). The budget is spent (on the record) and nothing was released; the
/// next run releases once and spends once more; the crashed spend is never repeated or
/// refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_ledger_and_the_commit_spends_once_and_releases_nothing() {
    let room = dp_room().await;
    let cfg = room.config();
    let status = cleanroom_cli::processes::room_command(&cfg)
        .unwrap()
        .env(
            "CLEANROOM_FAILPOINT",
            cleanroom_room::failpoint::BUDGET_RECORDED,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the room did not stop at the crash point"
    );
    let entries = room.audit();
    let last = entries.last().unwrap();
    assert_eq!((last.event, last.decision), (Step::Budget, Decision::Spent));
    assert!(room.outputs().is_empty(), "nothing released");
    assert_eq!(spent_micros(&entries, "impressions"), 500_000);
    cleanroom_cli::processes::run_room(&cfg).await.unwrap();
    let entries = room.audit();
    assert_eq!(spent_micros(&entries, "impressions"), 1_000_000);
    assert_eq!(spends(&entries).len(), 2, "one spend per release attempt");
    assert_eq!(room.outputs().len(), 1, "released once");
    let committed = entries
        .iter()
        .filter(|e| e.event == Step::Output && e.decision == Decision::Committed)
        .count();
    assert_eq!(committed, 1);
    // The reach it released is noisy, per campaign, and the rare campaign is not there.
    let out = room.open_output();
    assert!(out.starts_with("campaign,reach\n"), "{out}");
    assert!(!out.contains("pilot-x"), "{out}");
    room.stop().await;
}
