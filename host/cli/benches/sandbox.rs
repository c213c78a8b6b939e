//! Wasm sandbox figures: instantiation latency of a precompiled component with the pooling
//! allocator (p50, p99), an aggregation in the guest against the same loop native (ratio, same
//! run), and host-to-guest input throughput. Run: `cargo bench -p cleanroom-cli --bench
//! sandbox` (see docs/PERFORMANCE.md). Builds the guest modules from source first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use cleanroom_room::sandbox::{Limits, RunInputs, Sandbox, SandboxConfig, View, digest_hex};

const CAMPAIGNS: &[&str] = &[
    "spring-sale",
    "brand-awareness",
    "retargeting",
    "new-product",
    "loyalty",
    "pilot-x",
];

fn impressions(rows: usize, batch_rows: usize) -> View {
    let schema = Arc::new(Schema::new(vec![
        Field::new("campaign", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
    ]));
    let batches = (0..rows.div_ceil(batch_rows))
        .map(|b| {
            let n = batch_rows.min(rows - b * batch_rows);
            let start = b * batch_rows;
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        (start..start + n).map(|i| CAMPAIGNS[(i * 7919) % CAMPAIGNS.len()]),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        (start..start + n).map(|i| i as i64),
                    )),
                ],
            )
            .expect("batch")
        })
        .collect();
    View { schema, batches }
}

/// The guest's loop (guests/rows-per-campaign), natively.
fn native_rows_per_campaign(v: &View) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::<String, i64>::new();
    for b in &v.batches {
        let col = b.column_by_name("campaign").expect("column");
        let col = col.as_any().downcast_ref::<StringArray>().expect("utf8");
        for c in col.iter().flatten() {
            *counts.entry(c.to_string()).or_default() += 1;
        }
    }
    counts
}

fn ipc_bytes(v: &View) -> usize {
    let mut buf = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &v.schema).expect("writer");
    for b in &v.batches {
        w.write(b).expect("write");
    }
    w.finish().expect("finish");
    buf.len()
}

fn inputs(v: &View) -> RunInputs {
    RunInputs {
        views: BTreeMap::from([("impressions".to_string(), v.clone())]),
        artifacts: BTreeMap::new(),
        params: "{}".into(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let bytes = cleanroom_cli::guest_build::component("rows-per-campaign").expect("guests build");
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let t = Instant::now();
    let m = sandbox.load(&bytes, &digest_hex(&bytes)).expect("load");
    println!(
        "sandbox: rows-per-campaign component, {} KiB, compiled in {:.0} ms",
        bytes.len() / 1024,
        t.elapsed().as_secs_f64() * 1000.0
    );

    // Instantiation: a run of the precompiled component on a 10-row view, 300 times.
    let tiny = impressions(10, 10);
    let mut lat: Vec<Duration> = (0..300)
        .map(|_| {
            let t = Instant::now();
            sandbox
                .run(&m, inputs(&tiny), Limits::default(), None)
                .expect("run");
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "  instantiate + run on 10 rows (pooling allocator), 300 runs: p50 {:.2} ms, p99 {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );

    // Aggregation over 4M rows in 64k-row batches: guest vs native, best of 3 each.
    let big = impressions(4_000_000, 65_536);
    let native = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(native_rows_per_campaign(&big));
            t.elapsed()
        })
        .min()
        .expect("3 runs");
    let guest = (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = sandbox
                .run(&m, inputs(&big), Limits::default(), None)
                .expect("run");
            std::hint::black_box(out);
            t.elapsed()
        })
        .min()
        .expect("3 runs");
    let ipc = ipc_bytes(&big);
    println!(
        "  rows per campaign over 4M rows: native {:.1} ms, guest {:.1} ms (incl. transfer): {:.2}x native",
        native.as_secs_f64() * 1000.0,
        guest.as_secs_f64() * 1000.0,
        guest.as_secs_f64() / native.as_secs_f64()
    );
    println!(
        "  host-to-guest input: {:.1} MB of Arrow IPC in {:.1} ms: {:.2} GB/s (lower bound: includes the aggregation)",
        ipc as f64 / 1e6,
        guest.as_secs_f64() * 1000.0,
        ipc as f64 / guest.as_secs_f64() / 1e9
    );
}
