//! Inference module: scores one view's rows with a logistic-regression model given as an
//! input artifact (the training module's `model` JSON format).
//!
//! Params (JSON): `{"view": "...", "sql": null, "model": "model", "output": "histogram" |
//! "scores", "buckets": 10, "key": "user_id_hash"}`. Rows come from `view`, or from `sql`
//! answered by the host engine over the same views (for features that are aggregates).
//!
//! `histogram` (the default) writes table `score_histogram(bucket int64, low float64,
//! high float64, <key> utf8)` over [0, 1), one row per scored row, for the host to count the
//! distinct units per bucket (workload `guards.unit_column = "<key>"`); `scores` writes table
//! `scores(key utf8, score float64)` (per-row scores, only for a contract that names a
//! recipient for them).
//! Metrics: `rows`, `mean_score`.

use cleanroom_guest::arrow::array::{Float64Array, Int64Array, StringArray};
use cleanroom_guest::{
    Error, arc, batch, floats, inference, input, output, query_sql, read_view, strings, write_table,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    view: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_output")]
    output: String,
    #[serde(default = "default_buckets")]
    buckets: usize,
    #[serde(default = "default_key")]
    key: String,
}

fn default_model() -> String {
    "model".into()
}
fn default_output() -> String {
    "histogram".into()
}
fn default_buckets() -> usize {
    10
}
fn default_key() -> String {
    "user_id_hash".into()
}

#[derive(Deserialize)]
struct Model {
    kind: String,
    features: Vec<String>,
    mean: Vec<f64>,
    std: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

struct Scorer;

impl inference::Guest for Scorer {
    fn infer(params: String) -> Result<(), Error> {
        cleanroom_guest::init();
        let p: Params = serde_json::from_str(&params).map_err(|e| format!("bad params: {e}"))?;
        if p.buckets == 0 || p.buckets > 1000 {
            return Err("buckets must be 1..=1000".into());
        }
        let m: Model = serde_json::from_slice(&input::read_artifact(&p.model))
            .map_err(|e| format!("bad model: {e}"))?;
        let d = m.features.len();
        if m.kind != "logistic-regression"
            || m.mean.len() != d
            || m.std.len() != d
            || m.weights.len() != d
        {
            return Err("unsupported or inconsistent model".into());
        }
        let (_, batches) = match (&p.view, &p.sql) {
            (Some(v), None) => read_view(v)?,
            (None, Some(q)) => query_sql(q)?,
            _ => return Err("give exactly one of `view` and `sql`".into()),
        };
        let mut keys = Vec::new();
        let mut scores = Vec::new();
        for b in &batches {
            let cols: Vec<Vec<Option<f64>>> = m
                .features
                .iter()
                .map(|f| floats(b, f))
                .collect::<Result<_, _>>()?;
            // Both outputs name each row's key: per-row scores, and the histogram's privacy
            // unit (the host counts distinct keys per bucket).
            let k = strings(b, &p.key)?;
            for i in 0..b.num_rows() {
                let Some(row) = cols.iter().map(|c| c[i]).collect::<Option<Vec<f64>>>() else {
                    continue;
                };
                let z = m.bias
                    + (0..d)
                        .map(|j| (row[j] - m.mean[j]) / m.std[j] * m.weights[j])
                        .sum::<f64>();
                scores.push(1.0 / (1.0 + (-z).exp()));
                if let Some(key) = k.get(i) {
                    keys.push(key.clone());
                }
            }
        }
        let n = scores.len();
        output::metric("rows", n as f64);
        let mean = if n == 0 {
            0.0
        } else {
            scores.iter().sum::<f64>() / n as f64
        };
        output::metric("mean_score", mean);
        match p.output.as_str() {
            "histogram" => {
                // One row per scored row: its bucket and its privacy unit (`key`). The host
                // counts the distinct units in each bucket; this module counts nothing.
                if keys.len() != scores.len() {
                    return Err(format!(
                        "the histogram needs the `{}` column (the privacy unit) in its rows",
                        p.key
                    )
                    .into());
                }
                // i / n, not i * (1 / n): exact for tenths, so bounds print as 0.3, not 0.30000000000000004.
                let n_buckets = p.buckets as f64;
                let bucket: Vec<i64> = scores
                    .iter()
                    .map(|s| ((s * n_buckets) as usize).min(p.buckets - 1) as i64)
                    .collect();
                let out = batch(vec![
                    ("bucket", arc(Int64Array::from(bucket.clone()))),
                    (
                        "low",
                        arc(Float64Array::from_iter_values(
                            bucket.iter().map(|i| *i as f64 / n_buckets),
                        )),
                    ),
                    (
                        "high",
                        arc(Float64Array::from_iter_values(
                            bucket.iter().map(|i| (*i + 1) as f64 / n_buckets),
                        )),
                    ),
                    (p.key.as_str(), arc(StringArray::from(keys))),
                ])?;
                write_table("score_histogram", &out.schema(), &[out])
            }
            "scores" => {
                let out = batch(vec![
                    ("key", arc(StringArray::from(keys))),
                    ("score", arc(Float64Array::from(scores))),
                ])?;
                write_table("scores", &out.schema(), &[out])
            }
            _ => Err("output must be histogram or scores".into()),
        }
    }
}

inference::export!(Scorer);
