//! Component tests of the Wasm sandbox: every guest under guests/ and tests/hostile/ runs
//! here in wasmtime (issue 3, acceptance 1-3). Each guest has a test module named after
//! it; `foreach_guest!(assert_test_exists)` makes a guest without one fail to compile.
//!
//! The guests are built from source on first use (`cargo build --release --target
//! wasm32-wasip2` in guests/, incremental), so `cargo test -p cleanroom-tests --test
//! scenarios sandbox::` always tests the current sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use cleanroom_room::sandbox::{
    CacheOutcome, HostQuery, Limits, LoadedModule, RunInputs, RunOutputs, Sandbox, SandboxConfig,
    SandboxError, View, World, digest_hex, inspect,
};

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
foreach_guest!(assert_test_exists);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Build the guest workspace once per test process and return its release directory.
fn guest_release_dir() -> &'static Path {
    cleanroom_cli::guest_build::build().expect("building the guests")
}

/// The component bytes of guest `name` (a crate, or a hand-written .wat hostile guest).
fn guest(name: &str) -> Vec<u8> {
    if let Some(stem) = name.strip_prefix("hostile_") {
        let wat = root().join("tests/hostile").join(format!("{stem}.wat"));
        if wat.is_file() {
            let text = std::fs::read_to_string(&wat).expect("read wat");
            return wat::parse_str(&text).expect("valid component text");
        }
    }
    let path = guest_release_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn sandbox() -> &'static Sandbox {
    static S: OnceLock<Sandbox> = OnceLock::new();
    S.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

fn load(name: &str) -> LoadedModule {
    let bytes = guest(name);
    sandbox().load(&bytes, &digest_hex(&bytes)).expect("load")
}

fn run(m: &LoadedModule, inputs: RunInputs, limits: Limits) -> Result<RunOutputs, SandboxError> {
    sandbox().run(m, inputs, limits, None)
}

fn view(batch: RecordBatch) -> View {
    View {
        schema: batch.schema(),
        batches: vec![batch],
    }
}

/// A small known data set: publisher impressions and advertiser conversions.
fn ads_views() -> BTreeMap<String, View> {
    let day = 86_400i64;
    // user, campaign, ts
    let imps = [
        ("u1", "spring", 0),
        ("u1", "spring", 5 * day), // later impression of the same campaign: ignored
        ("u2", "spring", 0),
        ("u3", "spring", day),
        ("u4", "autumn", 0),
        ("u5", "autumn", 0),
    ];
    let impressions = RecordBatch::try_from_iter(vec![
        (
            "user_id_hash",
            Arc::new(StringArray::from_iter_values(imps.iter().map(|r| r.0))) as _,
        ),
        (
            "campaign",
            Arc::new(StringArray::from_iter_values(imps.iter().map(|r| r.1))) as _,
        ),
        (
            "ts",
            Arc::new(Int64Array::from_iter_values(imps.iter().map(|r| r.2))) as _,
        ),
        (
            "site",
            Arc::new(StringArray::from_iter_values(
                imps.iter().map(|_| "news.example"),
            )) as _,
        ),
    ])
    .expect("impressions");
    // user, ts, value
    let convs = [
        ("u1", day / 2, 10.0),    // spring day 0
        ("u2", 2 * day + 1, 5.0), // spring day 2
        ("u3", 0, 99.0),          // before u3's impression: ignored
        ("u4", 7 * day, 1.0),     // autumn day 7
        ("u9", 0, 50.0),          // never impressed
    ];
    let conversions = RecordBatch::try_from_iter(vec![
        (
            "user_id_hash",
            Arc::new(StringArray::from_iter_values(convs.iter().map(|r| r.0))) as _,
        ),
        (
            "ts",
            Arc::new(Int64Array::from_iter_values(convs.iter().map(|r| r.1))) as _,
        ),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(convs.iter().map(|r| r.2))) as _,
        ),
    ])
    .expect("conversions");
    BTreeMap::from([
        ("impressions".to_string(), view(impressions)),
        ("conversions".to_string(), view(conversions)),
    ])
}

/// Deterministic pseudo-random numbers in [0, 1) (xorshift), so the data set is fixed.
fn uniform(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// A linearly separable set: publisher features (f1, f2) per user, advertiser conversions
/// for exactly the users with f1 + 2*f2 > 1.5, with a margin of 0.1 around the boundary.
fn separable_views(n: usize) -> BTreeMap<String, View> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let (mut users, mut f1, mut f2, mut conv_users) = (vec![], vec![], vec![], vec![]);
    while users.len() < n {
        let (a, b) = (uniform(&mut s), uniform(&mut s));
        let margin = a + 2.0 * b - 1.5;
        if margin.abs() < 0.1 {
            continue;
        }
        let u = format!("user-{}", users.len());
        if margin > 0.0 {
            conv_users.push(u.clone());
        }
        users.push(u);
        f1.push(a);
        f2.push(b);
    }
    let features = RecordBatch::try_from_iter(vec![
        ("user_id_hash", Arc::new(StringArray::from(users)) as _),
        ("f1", Arc::new(Float64Array::from(f1)) as _),
        ("f2", Arc::new(Float64Array::from(f2)) as _),
    ])
    .expect("features");
    let nconv = conv_users.len();
    let conversions = RecordBatch::try_from_iter(vec![
        ("user_id_hash", Arc::new(StringArray::from(conv_users)) as _),
        ("ts", Arc::new(Int64Array::from(vec![0i64; nconv])) as _),
        ("value", Arc::new(Float64Array::from(vec![1.0; nconv])) as _),
    ])
    .expect("conversions");
    BTreeMap::from([
        ("features".to_string(), view(features)),
        ("conversions".to_string(), view(conversions)),
    ])
}

const TRAIN_PARAMS: &str = r#"{"features_view": "features", "labels_view": "conversions",
    "features": ["f1", "f2"], "epochs": 500, "learning_rate": 1.0}"#;

fn train(n: usize) -> RunOutputs {
    let m = load("training_logreg");
    let inputs = RunInputs {
        views: separable_views(n),
        params: TRAIN_PARAMS.into(),
        ..Default::default()
    };
    run(&m, inputs, Limits::default()).expect("training run")
}

/// The next run on the same sandbox succeeds (after a hostile one).
fn next_run_succeeds() {
    let m = load("query_funnel");
    let inputs = RunInputs {
        views: ads_views(),
        ..Default::default()
    };
    let out = run(&m, inputs, Limits::default()).expect("the next run succeeds");
    assert!(out.tables.contains_key("funnel"));
}

fn expect_err(name: &str, inputs: RunInputs, limits: Limits) -> SandboxError {
    expect_err_timed(name, inputs, limits).0
}

/// Run hostile guest `name`, expect it to fail, and check the next run succeeds; returns
/// the error and how long the failing run took.
fn expect_err_timed(name: &str, inputs: RunInputs, limits: Limits) -> (SandboxError, Duration) {
    let m = load(name);
    let t0 = Instant::now();
    let err = run(&m, inputs, limits).expect_err("the hostile module must fail");
    let took = t0.elapsed();
    next_run_succeeds();
    (err, took)
}

fn assert_forbidden(name: &str, prefix: &str) {
    let bytes = guest(name);
    let info = inspect(&bytes).expect("inspect");
    assert!(
        info.forbidden_imports.iter().any(|i| i.starts_with(prefix)),
        "{name}: expected an import starting with {prefix}, got {:?}",
        info.imports
    );
    // Refused at publish ...
    let publish = cleanroom_cli::signing::check_publishable(&info, World::Query);
    assert!(
        matches!(&publish, Err(SandboxError::ForbiddenImports { imports }) if imports.iter().any(|i| i.starts_with(prefix))),
        "{publish:?}"
    );
    // ... and at load, even with an approved digest.
    let err = sandbox()
        .load(&bytes, &info.digest)
        .expect_err("load must refuse");
    match err {
        SandboxError::ForbiddenImports { imports } => {
            assert_eq!(imports, info.forbidden_imports);
        }
        other => panic!("expected ForbiddenImports, got {other:?}"),
    }
    next_run_succeeds();
}

mod query_funnel {
    use super::*;

    #[test]
    fn funnel_counts_users_by_days_to_convert() {
        let m = load("query_funnel");
        assert_eq!(m.world(), World::Query);
        let inputs = RunInputs {
            views: ads_views(),
            params: r#"{"max_days": 7}"#.into(),
            ..Default::default()
        };
        let out = run(&m, inputs, Limits::default()).expect("run");
        let t = &out.tables["funnel"];
        let mut got = BTreeMap::new();
        for b in &t.batches {
            let c = b.column(0).as_string::<i32>();
            let d = b.column(1).as_primitive::<Int64Type>();
            let u = b.column(2).as_string::<i32>();
            for i in 0..b.num_rows() {
                got.insert((c.value(i).to_string(), u.value(i).to_string()), d.value(i));
            }
        }
        // One row per (campaign, user), for the host to count users per (campaign, days).
        assert_eq!(got.len(), 5, "{got:?}");
        // spring: u1, u2, u3 impressed; u1 converts on day 0 (10.0), u2 on day 2 (5.0);
        // u3's only conversion precedes its impression.
        assert_eq!(got[&("spring".into(), "u1".into())], 0);
        assert_eq!(got[&("spring".into(), "u2".into())], 2);
        assert_eq!(got[&("spring".into(), "u3".into())], -1);
        // autumn: u4, u5 impressed; u4 converts on day 7 (1.0).
        assert_eq!(got[&("autumn".into(), "u4".into())], 7);
        assert_eq!(got[&("autumn".into(), "u5".into())], -1);
        assert_eq!(out.metrics["conversion_value"], 16.0);
        assert_eq!(out.metrics["impressed_users"], 5.0);
        assert_eq!(out.metrics["converted_users"], 3.0);
    }

    #[test]
    fn one_bit_flip_of_an_approved_module_does_not_run() {
        let bytes = guest("query_funnel");
        let approved = digest_hex(&bytes);
        for bit in [0usize, 7, bytes.len() * 4, bytes.len() * 8 - 1] {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let err = sandbox()
                .load(&flipped, &approved)
                .expect_err("must not load");
            assert!(
                matches!(&err, SandboxError::DigestMismatch { approved: a, actual } if *a == approved && *actual == digest_hex(&flipped)),
                "{err:?}"
            );
        }
        assert_eq!(
            sandbox()
                .load(&bytes, "not-a-digest")
                .expect_err("malformed"),
            SandboxError::MalformedDigest
        );
    }

    #[test]
    fn tampered_cache_entry_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SandboxConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            cache_key: Some([7; 32]),
            max_concurrent_runs: 2,
            ..Default::default()
        };
        let bytes = guest("query_funnel");
        let digest = digest_hex(&bytes);
        let fresh = || Sandbox::new(cfg.clone()).expect("sandbox");
        let sb = fresh();
        assert_eq!(
            sb.load(&bytes, &digest).expect("load").cache_outcome(),
            CacheOutcome::Miss
        );
        // The same sandbox keeps the compiled module in memory.
        assert_eq!(
            sb.load(&bytes, &digest).expect("load").cache_outcome(),
            CacheOutcome::Memory
        );
        // Same key, a new sandbox (as after a restart): the disk entry is reused.
        assert_eq!(
            fresh().load(&bytes, &digest).expect("load").cache_outcome(),
            CacheOutcome::Hit
        );
        // Flip one byte of the precompiled code: refused and rebuilt.
        let entry = dir.path().join(format!("{digest}.cwasm"));
        let mut code = std::fs::read(&entry).expect("entry");
        let mid = code.len() / 2;
        code[mid] ^= 0x01;
        std::fs::write(&entry, &code).expect("tamper");
        let sb = fresh();
        let m = sb.load(&bytes, &digest).expect("load");
        assert_eq!(m.cache_outcome(), CacheOutcome::RebuiltTampered);
        let inputs = RunInputs {
            views: ads_views(),
            ..Default::default()
        };
        sb.run(&m, inputs, Limits::default(), None)
            .expect("rebuilt module runs");
        assert_eq!(
            fresh().load(&bytes, &digest).expect("load").cache_outcome(),
            CacheOutcome::Hit
        );
        // A truncated entry is rebuilt too.
        std::fs::write(&entry, &code[..10]).expect("truncate");
        assert_eq!(
            fresh().load(&bytes, &digest).expect("load").cache_outcome(),
            CacheOutcome::RebuiltTampered
        );
        // An entry written under another key (another host) is not trusted.
        let other = Sandbox::new(SandboxConfig {
            cache_key: Some([8; 32]),
            ..cfg
        })
        .expect("sandbox");
        let m = other.load(&bytes, &digest).expect("load");
        assert_eq!(m.cache_outcome(), CacheOutcome::RebuiltTampered);
        // A module loaded by one sandbox does not run in another.
        let err = other
            .run(
                &load("query_funnel"),
                RunInputs::default(),
                Limits::default(),
                None,
            )
            .expect_err("foreign module");
        assert_eq!(err, SandboxError::ForeignModule);
    }
}

mod training_logreg {
    use super::*;

    #[test]
    fn training_reaches_97_percent_accuracy_on_separable_data() {
        let out = train(400);
        let acc = out.metrics["accuracy"];
        assert!(acc >= 0.97, "accuracy {acc}");
        assert!(out.metrics["loss"] < 0.2, "loss {}", out.metrics["loss"]);
        assert_eq!(out.metrics["rows"], 400.0);
        let model: serde_json::Value =
            serde_json::from_slice(&out.artifacts["model"]).expect("model json");
        assert_eq!(model["kind"], "logistic-regression");
        assert!(out.tables.is_empty());
    }

    /// The join through the host's SQL callback instead of in the module.
    struct JoinedRows(RecordBatch);
    impl HostQuery for JoinedRows {
        fn query(&self, sql: &str, _deadline: Instant) -> Result<Vec<RecordBatch>, String> {
            if sql.contains("JOIN") {
                Ok(vec![self.0.clone()])
            } else {
                Err("unsupported statement".into())
            }
        }
    }

    #[test]
    fn training_through_the_host_query_callback() {
        let views = separable_views(200);
        let f = &views["features"].batches[0];
        let converted: std::collections::HashSet<String> = views["conversions"].batches[0]
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let users = f.column(0).as_string::<i32>();
        let label: Vec<f64> = (0..f.num_rows())
            .map(|i| {
                if converted.contains(users.value(i)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let joined = RecordBatch::try_from_iter(vec![
            ("f1", f.column(1).clone()),
            ("f2", f.column(2).clone()),
            ("label", Arc::new(Float64Array::from(label)) as _),
        ])
        .expect("joined");
        let m = load("training_logreg");
        let inputs = RunInputs {
            views,
            params: r#"{"sql": "SELECT f1, f2, label FROM features LEFT JOIN conversions USING (user_id_hash)",
                        "features": ["f1", "f2"], "epochs": 500, "learning_rate": 1.0}"#
                .into(),
            ..Default::default()
        };
        let out = sandbox()
            .run(
                &m,
                inputs,
                Limits::default(),
                Some(Arc::new(JoinedRows(joined))),
            )
            .expect("run");
        assert!(out.metrics["accuracy"] >= 0.97, "{:?}", out.metrics);
    }
}

mod inference_score {
    use super::*;

    fn host_score(model: &serde_json::Value, x: &[f64]) -> f64 {
        let f = |k: &str| -> Vec<f64> {
            model[k]
                .as_array()
                .expect("array")
                .iter()
                .map(|v| v.as_f64().expect("f64"))
                .collect()
        };
        let (mean, std, w) = (f("mean"), f("std"), f("weights"));
        let z: f64 = model["bias"].as_f64().expect("bias")
            + (0..x.len())
                .map(|j| (x[j] - mean[j]) / std[j] * w[j])
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn inference_matches_the_host_computation_of_the_same_model() {
        let trained = train(300);
        let model_bytes = trained.artifacts["model"].clone();
        let model: serde_json::Value = serde_json::from_slice(&model_bytes).expect("model");
        // Score another member's (fresh) data.
        let views = separable_views(120);
        let scored = views["features"].clone();
        let m = load("inference_score");
        assert_eq!(m.world(), World::Inference);
        let run_with = |output: &str| {
            let inputs = RunInputs {
                views: BTreeMap::from([("audience".to_string(), scored.clone())]),
                artifacts: BTreeMap::from([("weights".to_string(), model_bytes.clone())]),
                params: format!(
                    r#"{{"view": "audience", "model": "weights", "output": "{output}", "buckets": 4}}"#
                ),
            };
            run(&m, inputs, Limits::default()).expect("inference run")
        };
        let b = &scored.batches[0];
        let users = b.column(0).as_string::<i32>();
        let (f1, f2) = (
            b.column(1).as_primitive::<Float64Type>(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        let expected: Vec<(String, f64)> = (0..b.num_rows())
            .map(|i| {
                (
                    users.value(i).to_string(),
                    host_score(&model, &[f1.value(i), f2.value(i)]),
                )
            })
            .collect();

        let out = run_with("scores");
        let t = &out.tables["scores"].batches[0];
        assert_eq!(t.num_rows(), expected.len());
        let (k, s) = (
            t.column(0).as_string::<i32>(),
            t.column(1).as_primitive::<Float64Type>(),
        );
        for (i, (user, score)) in expected.iter().enumerate() {
            assert_eq!(k.value(i), user);
            assert!(
                (s.value(i) - score).abs() < 1e-12,
                "row {i}: {} vs {score}",
                s.value(i)
            );
        }

        // The histogram: one (bucket, user) row per scored row, for the host to count
        // users per bucket; the module counts nothing.
        let out = run_with("histogram");
        let t = &out.tables["score_histogram"].batches[0];
        let bucket = t
            .column_by_name("bucket")
            .expect("bucket")
            .as_primitive::<Int64Type>();
        let user = t
            .column_by_name("user_id_hash")
            .expect("the unit column")
            .as_string::<i32>();
        assert_eq!(t.num_rows(), expected.len());
        for (i, (u, s)) in expected.iter().enumerate() {
            assert_eq!(user.value(i), u);
            assert_eq!(bucket.value(i), ((s * 4.0) as i64).min(3));
        }
        let mean = expected.iter().map(|(_, s)| s).sum::<f64>() / expected.len() as f64;
        assert!((out.metrics["mean_score"] - mean).abs() < 1e-12);
    }
}

mod hostile_infinite_loop {
    use super::*;

    #[test]
    fn infinite_loop_is_stopped_at_deadline() {
        let limits = Limits {
            deadline: Duration::from_millis(300),
            ..Limits::default()
        };
        let (err, took) = expect_err_timed("hostile_infinite_loop", RunInputs::default(), limits);
        assert_eq!(err, SandboxError::DeadlineExceeded { millis: 300 });
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
}

mod hostile_memory_bomb {
    use super::*;

    #[test]
    fn memory_bomb_is_stopped_at_limit() {
        let limits = Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        };
        let err = expect_err("hostile_memory_bomb", RunInputs::default(), limits);
        assert_eq!(
            err,
            SandboxError::MemoryLimitExceeded {
                limit_bytes: 64 << 20
            }
        );
    }
}

mod hostile_open_files {
    #[test]
    fn module_cannot_open_files() {
        super::assert_forbidden("hostile_open_files", "wasi:filesystem/");
    }
}

mod hostile_open_sockets {
    #[test]
    fn module_cannot_open_sockets() {
        super::assert_forbidden("hostile_open_sockets", "wasi:sockets/");
    }
}

mod hostile_http_request {
    #[test]
    fn module_cannot_make_http_requests() {
        super::assert_forbidden("hostile_http_request", "wasi:http/");
    }
}

mod hostile_read_environment {
    #[test]
    fn module_cannot_read_environment_or_arguments() {
        super::assert_forbidden("hostile_read_environment", "wasi:cli/environment");
    }
}

mod hostile_oversized_output {
    use super::*;

    #[test]
    fn oversized_output_is_capped() {
        let limits = Limits {
            output_bytes: 4 << 20,
            ..Limits::default()
        };
        let err = expect_err("hostile_oversized_output", RunInputs::default(), limits);
        assert_eq!(
            err,
            SandboxError::OutputCapExceeded {
                limit_bytes: 4 << 20
            }
        );
    }
}

mod hostile_log_flood {
    use super::*;

    #[test]
    fn log_flooding_is_capped() {
        let m = load("hostile_log_flood");
        let limits = Limits {
            log_bytes: 10_000,
            ..Limits::default()
        };
        let out = run(&m, RunInputs::default(), limits).expect("a flooding module still completes");
        assert!(out.log.len() <= 10_000, "{}", out.log.len());
        assert!(out.log_truncated);
        next_run_succeeds();
    }
}

mod hostile_wasm_trap {
    use super::*;

    #[test]
    fn module_trap_is_a_clean_error() {
        let err = expect_err("hostile_wasm_trap", RunInputs::default(), Limits::default());
        assert!(
            matches!(&err, SandboxError::ModuleTrapped { trap } if trap.contains("unreachable")),
            "{err:?}"
        );
    }
}

mod hostile_panics {
    use super::*;

    #[test]
    fn module_panic_is_a_clean_error() {
        let inputs = RunInputs {
            views: ads_views(),
            ..Default::default()
        };
        let err = expect_err("hostile_panics", inputs, Limits::default());
        assert!(
            matches!(&err, SandboxError::ModuleTrapped { trap } if trap.contains("unreachable")),
            "{err:?}"
        );
        // The error names the trap only: no input data (a user id from the views).
        assert!(!err.to_string().contains("u1"));
    }
}

mod hostile_read_other_view {
    use super::*;

    #[test]
    fn module_cannot_read_a_view_outside_its_inputs() {
        let inputs = RunInputs {
            views: ads_views(),
            ..Default::default()
        };
        let err = expect_err("hostile_read_other_view", inputs, Limits::default());
        assert_eq!(
            err,
            SandboxError::ViewNotInInputs {
                view: "other_members_secrets".into()
            }
        );
    }
}

mod hostile_long_view_name {
    use super::*;

    #[test]
    fn a_long_view_name_comes_back_as_a_hash() {
        let inputs = RunInputs {
            views: ads_views(),
            ..Default::default()
        };
        let err = expect_err("hostile_long_view_name", inputs, Limits::default());
        // The name the guest asks for (tests/hostile/long_view_name): it comes back only as
        // its bounded form, a hash, and the error stays short.
        let asked = "LEAKED-user-4711-spent-1234;".repeat(100_000 / 28);
        let echoed = cleanroom_room::sandbox::echo_name(&asked);
        assert!(echoed.starts_with("sha256:"), "{echoed}");
        assert_eq!(err, SandboxError::ViewNotInInputs { view: echoed });
        assert!(err.to_string().len() < 200, "{err}");
    }
}

mod hostile_claims_large_count {
    use super::*;
    use cleanroom_room::error::GuardRefusal;
    use cleanroom_room::guards::count_units;

    #[test]
    fn a_count_the_module_declares_claims_nothing() {
        let m = load("hostile_claims_large_count");
        let out = run(
            &m,
            RunInputs {
                views: ads_views(),
                ..Default::default()
            },
            Limits::default(),
        )
        .expect("the run ends");
        let t = &out.tables["per_person"];
        let rows: usize = t.batches.iter().map(|b| b.num_rows()).sum();
        assert!(rows >= 2, "one row per person");
        // The privacy units of the inputs: here, every user the view holds.
        let units: std::collections::HashSet<String> = t
            .batches
            .iter()
            .flat_map(|b| {
                let c = b.column(2).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        // One person per group, whatever `n` says: every group is dropped.
        let c = count_units(&t.schema, &t.batches, "user_id_hash", &units, 2).unwrap();
        assert_eq!(c.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        assert_eq!(c.dropped, rows as u64);
        let names: Vec<&str> = c
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["who", "n", "units"]);
        // Its count named as the unit column: not a privacy unit of the inputs.
        assert_eq!(
            count_units(&t.schema, &t.batches, "n", &units, 2).unwrap_err(),
            GuardRefusal::UnknownPrivacyUnit
        );
        // Without the per-person column, the one real group leaves with the host's count.
        let schema = Arc::new(t.schema.project(&[1, 2]).unwrap());
        let batches: Vec<_> = t
            .batches
            .iter()
            .map(|b| b.project(&[1, 2]).unwrap())
            .collect();
        let c = count_units(&schema, &batches, "user_id_hash", &units, 2).unwrap();
        let b = &c.batches[0];
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 1_000_000);
        assert_eq!(
            b.column(1).as_primitive::<Int64Type>().value(0),
            rows as i64
        );
    }
}

mod hostile_query_cross_join {
    use super::*;

    #[test]
    fn without_sql_access_the_query_import_answers_nothing() {
        // No query callback given (the workload did not declare sql_access): the module's
        // query gets an error back and the run ends normally with nothing written.
        let m = load("hostile_query_cross_join");
        let out = run(
            &m,
            RunInputs {
                views: ads_views(),
                ..Default::default()
            },
            Limits::default(),
        )
        .expect("the run ends");
        assert!(out.tables.is_empty() && out.artifacts.is_empty());
    }
}

mod hostile_read_other_artifact {
    use super::*;

    #[test]
    fn module_cannot_read_an_artifact_outside_its_inputs() {
        let inputs = RunInputs {
            artifacts: BTreeMap::from([("model".to_string(), b"{}".to_vec())]),
            ..Default::default()
        };
        let err = expect_err("hostile_read_other_artifact", inputs, Limits::default());
        assert_eq!(
            err,
            SandboxError::ArtifactNotInInputs {
                name: "someone_elses_model".into()
            }
        );
    }
}

mod hostile_output_after_run_ended {
    use super::*;

    #[test]
    fn module_cannot_write_output_after_its_run_ended() {
        let err = expect_err(
            "hostile_output_after_run_ended",
            RunInputs::default(),
            Limits::default(),
        );
        assert_eq!(err, SandboxError::CallAfterRunEnded);
    }
}

mod rows_per_campaign {
    use super::*;

    /// The code block of docs/modules.md that starts with `first_line`.
    fn doc_block(first_line: &str) -> String {
        let doc = std::fs::read_to_string(root().join("docs/modules.md")).expect("docs/modules.md");
        let start = doc
            .find(first_line)
            .unwrap_or_else(|| panic!("{first_line} not in the guide"));
        let body = &doc[start + first_line.len() + 1..];
        body[..body.find("```").expect("closing fence")].to_string()
    }

    #[test]
    fn the_guide_example_is_this_guest_verbatim_and_runs() {
        let dir = root().join("guests/rows-per-campaign");
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("read");
        assert_eq!(
            doc_block("// guests/rows-per-campaign/src/lib.rs"),
            read("src/lib.rs")
        );
        assert_eq!(
            doc_block("# guests/rows-per-campaign/Cargo.toml"),
            read("Cargo.toml")
        );
        let m = load("rows_per_campaign");
        let out = run(
            &m,
            RunInputs {
                views: ads_views(),
                ..Default::default()
            },
            Limits::default(),
        )
        .expect("run");
        // One (campaign, user) pair per user reached; the host counts them.
        let b = &out.tables["rows_per_campaign"].batches[0];
        let c = b.column(0).as_string::<i32>();
        let u = b.column(1).as_string::<i32>();
        let got: Vec<(&str, &str)> = (0..b.num_rows())
            .map(|i| (c.value(i), u.value(i)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("autumn", "u4"),
                ("autumn", "u5"),
                ("spring", "u1"),
                ("spring", "u2"),
                ("spring", "u3")
            ]
        );
    }
}

#[test]
fn module_error_message_is_cut() {
    // The funnel echoes an unknown parameter name in its error: 10 000 bytes of it.
    let m = load("query_funnel");
    let inputs = RunInputs {
        views: ads_views(),
        params: format!(r#"{{"{}": 1}}"#, "x".repeat(10_000)),
        ..Default::default()
    };
    let err = run(&m, inputs, Limits::default()).expect_err("bad params");
    match err {
        SandboxError::ModuleFailed { message } => {
            assert_eq!(
                message.len(),
                cleanroom_room::sandbox::MAX_ERROR_MESSAGE_BYTES
            );
            assert!(
                message.starts_with("bad params: unknown field"),
                "{message}"
            );
        }
        other => panic!("expected ModuleFailed, got {other:?}"),
    }
}

#[test]
fn view_schema_mismatch_is_refused_before_running() {
    let m = load("query_funnel");
    let mut views = ads_views();
    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    views.get_mut("impressions").expect("view").schema = other;
    let err = run(
        &m,
        RunInputs {
            views,
            ..Default::default()
        },
        Limits::default(),
    )
    .expect_err("refused");
    assert!(matches!(err, SandboxError::InvalidInputs(_)), "{err:?}");
}
