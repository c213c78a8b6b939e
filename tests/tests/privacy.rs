//! Privacy guards against a hostile query (issue 10): the query rules on the logical plan,
//! the distinct-privacy-unit threshold, and execution errors that say nothing about values.
//! The rules are checked on the demo's contract (column roles and privacy units declared),
//! with the real DataFusion planner; whole runs show the refusal comes before any key.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use crate::common::{Room, Spec};
use cleanroom_cli::demo;
use cleanroom_formats::audit::Step;
use cleanroom_kbs::events::EventKind;
use cleanroom_policy::Contract;
use cleanroom_policy::contract::Dataset;
use cleanroom_room::RoomError;
use cleanroom_room::engine::Engine;
use cleanroom_room::error::{QueryRefusal, RuleViolation};
use cleanroom_room::rules::Destination;

/// The demo's contract (roles and privacy units as the demo declares them), parsed.
fn demo_contract() -> Contract {
    Contract::parse(&common::demo_contract_text(), "contract.toml").unwrap()
}

fn inputs(c: &Contract) -> Vec<&Dataset> {
    ["impressions", "conversions"]
        .iter()
        .map(|n| c.dataset(n).unwrap())
        .collect()
}

async fn check(c: &Contract, sql: &str, to: Destination) -> Result<(), RoomError> {
    let engine = Engine::for_planning(&inputs(c)).unwrap();
    engine.check_for(sql, to).await.map(|_| ())
}

/// The violation a refused query broke.
fn violation(r: Result<(), RoomError>, sql: &str) -> RuleViolation {
    match r {
        Err(RoomError::Query(QueryRefusal::Rule { violation, .. })) => violation,
        other => panic!("{sql}: expected a rule refusal, got {other:?}"),
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Acceptance 1 and 2: every way the review found (and more) to get row values out through
/// an approved query, each refused by the rule it breaks.
#[tokio::test]
async fn queries_that_release_row_values_are_refused_by_the_rule_they_break() {
    let c = demo_contract();
    let cases: Vec<(&str, RuleViolation)> = vec![
        // The review's attack: every row of the dataset in one group of 20,000.
        (
            "SELECT string_agg(user_id_hash || ':' || CAST(value AS VARCHAR), ';') AS rows FROM conversions",
            RuleViolation::AggregateNotAllowed {
                function: s("string_agg"),
            },
        ),
        (
            "SELECT campaign, array_agg(user_id_hash) AS users FROM impressions GROUP BY campaign",
            RuleViolation::AggregateNotAllowed {
                function: s("array_agg"),
            },
        ),
        (
            "SELECT first_value(value) AS v FROM conversions",
            RuleViolation::AggregateNotAllowed {
                function: s("first_value"),
            },
        ),
        (
            "SELECT median(value) AS v FROM conversions",
            RuleViolation::AggregateNotAllowed {
                function: s("median"),
            },
        ),
        // An aggregate of a CASE that selects one row.
        (
            "SELECT max(CASE WHEN user_id_hash = 'x' THEN value END) AS v FROM conversions",
            RuleViolation::MinMaxNotDeclared {
                function: s("max"),
                dataset: s("conversions"),
                column: s("user_id_hash"),
            },
        ),
        (
            "SELECT sum(CASE WHEN user_id_hash = 'x' THEN value ELSE 0 END) AS v FROM conversions",
            RuleViolation::AggregateOfNonMetric {
                function: s("sum"),
                dataset: s("conversions"),
                column: s("user_id_hash"),
            },
        ),
        (
            "SELECT count(CASE WHEN user_id_hash = 'x' THEN 1 END) AS n FROM conversions",
            RuleViolation::CountOfExpression,
        ),
        (
            "SELECT sum(value) FILTER (WHERE user_id_hash = 'x') AS v FROM conversions",
            RuleViolation::AggregateFilter,
        ),
        // MIN/MAX on a column the contract does not declare min_max.
        (
            "SELECT min(value) AS v FROM conversions",
            RuleViolation::MinMaxNotDeclared {
                function: s("min"),
                dataset: s("conversions"),
                column: s("value"),
            },
        ),
        (
            "SELECT campaign, max(ts) AS last FROM impressions GROUP BY campaign",
            RuleViolation::MinMaxNotDeclared {
                function: s("max"),
                dataset: s("impressions"),
                column: s("ts"),
            },
        ),
        // Window functions.
        (
            "SELECT campaign, row_number() OVER (PARTITION BY campaign ORDER BY ts) AS r FROM impressions",
            RuleViolation::WindowFunction {
                function: s("row_number"),
            },
        ),
        (
            "SELECT campaign, lag(site) OVER (ORDER BY ts) AS prev FROM impressions",
            RuleViolation::WindowFunction { function: s("lag") },
        ),
        // A join key (here the privacy unit) released as a group.
        (
            "SELECT user_id_hash, count(*) AS n FROM impressions GROUP BY user_id_hash",
            RuleViolation::NotReleasable {
                dataset: s("impressions"),
                column: s("user_id_hash"),
            },
        ),
        // A metric released as is, through a group key.
        (
            "SELECT value, count(*) AS n FROM conversions GROUP BY value",
            RuleViolation::NotReleasable {
                dataset: s("conversions"),
                column: s("value"),
            },
        ),
        // Row multiplication: a dataset cross-joined with VALUES, grouped by an identifier.
        (
            "SELECT i.user_id_hash, count(*) AS n FROM impressions i CROSS JOIN (VALUES (1),(2),(3),(4),(5)) v(x) GROUP BY i.user_id_hash",
            RuleViolation::RowSource { table: s("VALUES") },
        ),
        // A join without an equality key, and one on a column that is not a join key.
        (
            "SELECT i.campaign, count(*) AS n FROM impressions i JOIN conversions c ON i.ts < c.ts GROUP BY i.campaign",
            RuleViolation::JoinWithoutKey,
        ),
        (
            "SELECT i.campaign, count(*) AS n FROM impressions i CROSS JOIN conversions c GROUP BY i.campaign",
            RuleViolation::JoinWithoutKey,
        ),
        (
            "SELECT i.campaign, count(*) AS n FROM impressions i JOIN conversions c ON i.ts = c.ts GROUP BY i.campaign",
            RuleViolation::NotAJoinKey {
                dataset: s("impressions"),
                column: s("ts"),
            },
        ),
        // Differencing by a condition on one person.
        (
            "SELECT campaign, count(*) AS n FROM impressions WHERE user_id_hash <> 'x' GROUP BY campaign",
            RuleViolation::NotFilterable {
                dataset: s("impressions"),
                column: s("user_id_hash"),
            },
        ),
        (
            "SELECT ascii(campaign) AS h, count(*) AS n FROM impressions GROUP BY ascii(campaign)",
            RuleViolation::ScalarFunctionNotAllowed {
                function: s("ascii"),
            },
        ),
        // A subquery whose groups drop the privacy unit: the host could not count people.
        (
            "WITH per_site AS (SELECT site, campaign, count(*) AS n FROM impressions GROUP BY site, campaign) \
             SELECT campaign, sum(n) AS n FROM per_site GROUP BY campaign",
            RuleViolation::PrivacyUnitNotTracked {
                dataset: s("impressions"),
                column: s("user_id_hash"),
            },
        ),
    ];
    for (sql, want) in cases {
        let got = violation(check(&c, sql, Destination::Release).await, sql);
        assert_eq!(got, want, "{sql}");
    }
    // Table functions are row sources too (the name DataFusion gives the scan is its own).
    let sql = "SELECT i.campaign, count(*) AS n FROM impressions i JOIN generate_series(1, 5) g ON i.ts = g.value GROUP BY i.campaign";
    match check(&c, sql, Destination::Release).await {
        Err(RoomError::Query(QueryRefusal::Rule {
            violation: RuleViolation::RowSource { .. },
            ..
        })) => {}
        other => panic!("{sql}: {other:?}"),
    }
    // Subquery expressions are refused (write them as joins).
    let sql = "SELECT campaign, count(*) AS n FROM impressions WHERE user_id_hash IN (SELECT user_id_hash FROM conversions) GROUP BY campaign";
    assert!(matches!(
        violation(check(&c, sql, Destination::Release).await, sql),
        RuleViolation::Unsupported { .. } | RuleViolation::NotFilterable { .. }
    ));
}

/// Acceptance 8: the demo's query, and the SQL its modules run through the `query` import,
/// pass the rules unchanged; the demo's query is counted by both inputs' privacy units.
#[tokio::test]
async fn the_demo_queries_pass_the_rules() {
    let c = demo_contract();
    let engine = Engine::for_planning(&inputs(&c)).unwrap();
    let checked = engine.check(demo::DEMO_SQL).await.unwrap();
    let (_, units) = checked.into_parts();
    assert_eq!(units.len(), 2, "{units:?}");
    assert!(units.iter().all(|u| u.name == "user_id_hash"), "{units:?}");
    // The modules' feature queries return one row per user to the sandbox: allowed there,
    // refused as a released output.
    let features = "SELECT i.user_id_hash, LN(1.0 + COUNT(*)) AS imps, CAST(COUNT(DISTINCT i.site) AS DOUBLE) AS sites, \
        CASE WHEN COUNT(c.user_id_hash) = 0 THEN 0.0 ELSE 1.0 END AS label \
        FROM impressions i LEFT JOIN (SELECT DISTINCT user_id_hash FROM conversions) c \
        ON i.user_id_hash = c.user_id_hash GROUP BY i.user_id_hash";
    check(&c, features, Destination::Sandbox).await.unwrap();
    assert_eq!(
        violation(check(&c, features, Destination::Release).await, features),
        RuleViolation::NotReleasable {
            dataset: s("impressions"),
            column: s("user_id_hash"),
        }
    );
    // The function rules hold inside the sandbox too.
    let sql = "SELECT string_agg(user_id_hash, ',') AS u FROM impressions";
    assert_eq!(
        violation(check(&c, sql, Destination::Sandbox).await, sql),
        RuleViolation::AggregateNotAllowed {
            function: s("string_agg")
        }
    );
}

/// Acceptance 1, as a whole run: an approved `string_agg` query is refused before the room
/// attests or asks any broker for a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_string_agg_query_is_refused_before_keys_are_requested() {
    let spec = Spec {
        sql: "SELECT string_agg(user_id_hash || ':' || CAST(value AS VARCHAR), ';') AS rows FROM conversions".into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let err = room.run().await.unwrap_err();
    assert!(
        matches!(
            &err,
            RoomError::Query(QueryRefusal::Rule {
                violation: RuleViolation::AggregateNotAllowed { function },
                ..
            }) if function == "string_agg"
        ),
        "{err}"
    );
    room.assert_refused(Step::Query);
    let audit = room.audit();
    assert!(
        !audit
            .iter()
            .any(|e| e.event == Step::Attestation || e.event == Step::KeyRequest),
        "{audit:#?}"
    );
    for member in common::MEMBERS {
        assert!(
            room.broker_events(member)
                .iter()
                .all(|e| e.kind != EventKind::Attest && e.kind != EventKind::Release),
            "{member}"
        );
    }
    room.stop().await;
}

/// impressions CSV rows: `users` distinct users in `campaign`, `rows_each` rows per user.
fn impressions(out: &mut String, campaign: &str, users: usize, rows_each: usize, tag: &str) {
    use std::fmt::Write;
    for u in 0..users {
        for r in 0..rows_each {
            let _ = writeln!(
                out,
                "{tag}-user-{u},{campaign},{},news.example,10.0.0.1",
                1_767_225_600 + r
            );
        }
    }
}

/// Acceptance 4: a group with k-1 distinct privacy units but many rows (one person, many
/// purchases) is dropped; a group with k distinct units passes. k = 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_few_people_with_many_rows_is_dropped() {
    let mut imp = String::from("user_id_hash,campaign,ts,site,ip_address\n");
    impressions(&mut imp, "one-person", 1, 600, "a");
    impressions(&mut imp, "forty-nine", 49, 20, "b");
    impressions(&mut imp, "fifty", 50, 1, "c");
    let spec = Spec {
        impressions_csv: imp,
        sql: "SELECT campaign, COUNT(*) AS impressions FROM impressions GROUP BY campaign ORDER BY campaign".into(),
        ..Spec::default()
    };
    let room = Room::new(spec).await;
    room.approve_all();
    let report = room.run().await.unwrap();
    assert_eq!(report.groups_dropped, 2);
    let out = room.open_output();
    assert_eq!(out.trim(), "campaign,impressions\nfifty,50", "{out}");
    let guard = room
        .audit()
        .into_iter()
        .find(|e| e.event == Step::Guard)
        .unwrap();
    assert!(guard.reason.contains("distinct privacy units"), "{guard:?}");
    assert!(guard.reason.contains("2 groups dropped"), "{guard:?}");
    room.stop().await;
}

/// Acceptance 7: execution errors (a cast, a division by zero) that depend on a data value
/// are one category, the same whichever value and whichever error: the error and the audit
/// entry say nothing about the value.
#[tokio::test]
async fn an_execution_error_on_a_secret_value_looks_like_any_other() {
    let c = demo_contract();
    let conversions = c.dataset("conversions").unwrap();
    let run = |csv: String, sql: &'static str| {
        let conversions = conversions.clone();
        async move {
            let mut engine = Engine::new(64 << 20).unwrap();
            engine.register_rows(&conversions, csv.as_bytes()).unwrap();
            engine.execute(sql).await.unwrap_err()
        }
    };
    // 100 public rows with values 100.5 ..= 199.5, and one secret row.
    let rows = |secret: &str| {
        let mut csv = String::from("user_id_hash,ts,value,order_id\n");
        for i in 0..100 {
            csv.push_str(&format!("u{i},1767225600,{}.5,o{i}\n", 100 + i));
        }
        csv.push_str(&format!("secret,1767225600,{secret},o-secret\n"));
        csv
    };
    // Integer division by (value - 42): fails only on the secret row, whose value is 42.
    let on_secret =
        "SELECT SUM(CAST(value AS BIGINT) / (CAST(value AS BIGINT) - 42)) AS v FROM conversions";
    // The same, by (value - 150): fails on a public row.
    let on_public =
        "SELECT SUM(CAST(value AS BIGINT) / (CAST(value AS BIGINT) - 150)) AS v FROM conversions";
    // A cast of each value's text with a suffix: another kind of error, on every row.
    let cast = "SELECT SUM(CAST(CAST(value AS VARCHAR) || 'x' AS BIGINT)) AS v FROM conversions";
    let errors = [
        run(rows("42"), on_secret).await,
        run(rows("7"), on_public).await,
        run(rows("7"), cast).await,
    ];
    for e in &errors {
        assert!(
            matches!(
                e,
                RoomError::QueryFailed {
                    category: "execution error"
                }
            ),
            "{e}"
        );
        assert_eq!(e.to_string(), errors[0].to_string());
    }
}

/// `join_required`: a dataset whose owner requires it is read only inner-joined with the
/// querier's own data (a dataset owned by an output recipient); alone, or only
/// outer-joined (which keeps its unmatched rows), it is refused, before any key.
#[tokio::test]
async fn a_join_required_dataset_is_released_only_joined_with_the_querier_data() {
    let text = common::demo_contract_text().replacen(
        "privacy_unit = \"user_id_hash\"\n# What SQL",
        "privacy_unit = \"user_id_hash\"\njoin_required = true\n# What SQL",
        1,
    );
    let c = Contract::parse(&text, "contract.toml").unwrap();
    assert!(c.dataset("impressions").unwrap().join_required);
    let engine = Engine::for_planning(&inputs(&c)).unwrap();
    let judge = |sql: &'static str, recipients: &'static [&'static str]| {
        let engine = &engine;
        let c = &c;
        async move {
            let checked = engine.check(sql).await.unwrap();
            let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
            cleanroom_room::rules::check_join_required(checked.plan(), &inputs(c), &recipients)
        }
    };
    let alone = "SELECT campaign, COUNT(*) AS n FROM impressions GROUP BY campaign";
    let inner = "SELECT i.campaign, COUNT(*) AS n FROM impressions i JOIN conversions c ON i.user_id_hash = c.user_id_hash GROUP BY i.campaign";
    let refused = |r: Result<(), QueryRefusal>| match r {
        Err(QueryRefusal::Rule { violation, .. }) => violation,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let join_required = RuleViolation::JoinRequired {
        dataset: s("impressions"),
    };
    // The advertiser queries: the impressions only with its conversions, inner-joined.
    assert_eq!(refused(judge(alone, &["advertiser"]).await), join_required);
    assert_eq!(
        refused(judge(demo::DEMO_SQL, &["advertiser"]).await),
        join_required
    );
    judge(inner, &["advertiser"]).await.unwrap();
    // The publisher owns the impressions: its own data, no join needed.
    judge(alone, &["publisher"]).await.unwrap();
}

/// The join rule holds in a run, before any key: the demo's query keeps every exposed user
/// (a LEFT JOIN), so with `join_required` on the impressions it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_required_dataset_read_alone_is_refused_before_any_key() {
    let room = Room::new(Spec {
        edit_contract: Box::new(|t| {
            t.replacen(
                "privacy_unit = \"user_id_hash\"\n# What SQL",
                "privacy_unit = \"user_id_hash\"\njoin_required = true\n# What SQL",
                1,
            )
        }),
        ..Spec::default()
    })
    .await;
    room.approve_all();
    match room.run().await {
        Err(RoomError::Query(QueryRefusal::Rule { violation, .. })) => assert_eq!(
            violation,
            RuleViolation::JoinRequired {
                dataset: s("impressions")
            }
        ),
        other => panic!("expected JoinRequired, got {other:?}"),
    }
    room.assert_refused(Step::Query);
    assert_eq!(room.keys_released("publisher"), 0);
    assert_eq!(room.keys_released("advertiser"), 0);
    room.stop().await;
}
