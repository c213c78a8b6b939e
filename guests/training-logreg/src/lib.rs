//! Training module: logistic regression on the join of two members' views.
//!
//! Rows come either from the host engine (`"sql"`: one statement returning the feature
//! columns and a 0/1 `label` column) or from a join done in the module: each row of
//! `features_view` is a training example, joined on `key` with `labels_view`; the label is
//! the row's `label_column` in `labels_view` when given, otherwise 1 when the key appears
//! in `labels_view` (for example: the user converted) and 0 when it does not.
//!
//! Features are standardised; training is full-batch gradient descent with L2.
//!
//! Params (JSON): `{"features_view": "...", "labels_view": "...", "key": "user_id_hash",
//! "features": ["f1", "f2"], "label_column": null, "sql": null, "epochs": 300,
//! "learning_rate": 0.5, "l2": 0.0}`
//!
//! Output artifact `model` (JSON, [`Model`]); metrics `loss`, `accuracy`, `rows`, `epochs`.

use std::collections::HashMap;

use cleanroom_guest::arrow::array::RecordBatch;
use cleanroom_guest::{Error, floats, output, query_sql, read_view, strings, training};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    features_view: Option<String>,
    #[serde(default)]
    labels_view: Option<String>,
    #[serde(default = "default_key")]
    key: String,
    features: Vec<String>,
    #[serde(default)]
    label_column: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default = "default_epochs")]
    epochs: u32,
    #[serde(default = "default_lr")]
    learning_rate: f64,
    #[serde(default)]
    l2: f64,
}

fn default_key() -> String {
    "user_id_hash".into()
}
fn default_epochs() -> u32 {
    300
}
fn default_lr() -> f64 {
    0.5
}

/// The model artifact (also read by the inference module).
#[derive(Serialize, Deserialize)]
pub struct Model {
    /// Always "logistic-regression".
    pub kind: String,
    /// Feature column names, in weight order.
    pub features: Vec<String>,
    /// Per-feature mean used for standardisation.
    pub mean: Vec<f64>,
    /// Per-feature standard deviation used for standardisation (1 when constant).
    pub std: Vec<f64>,
    /// Weights on standardised features.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn rows_from(batches: &[RecordBatch], features: &[String]) -> Result<Vec<Vec<f64>>, Error> {
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<f64>>> = features
            .iter()
            .map(|f| floats(b, f))
            .collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let row: Option<Vec<f64>> = cols.iter().map(|c| c[i]).collect();
            rows.push(row.unwrap_or_default());
        }
    }
    Ok(rows)
}

fn examples(p: &Params) -> Result<(Vec<Vec<f64>>, Vec<f64>), Error> {
    if let Some(sql) = &p.sql {
        let (_, batches) = query_sql(sql)?;
        let x = rows_from(&batches, &p.features)?;
        let mut y = Vec::new();
        for b in &batches {
            y.extend(floats(b, "label")?.into_iter().map(|v| v.unwrap_or(0.0)));
        }
        return Ok(keep_complete(x, y, p.features.len()));
    }
    let fv = p
        .features_view
        .as_deref()
        .ok_or("features_view or sql is required")?;
    let lv = p
        .labels_view
        .as_deref()
        .ok_or("labels_view or sql is required")?;
    let mut labels: HashMap<String, f64> = HashMap::new();
    for b in &read_view(lv)?.1 {
        let keys = strings(b, &p.key)?;
        let vals = match &p.label_column {
            Some(c) => floats(b, c)?,
            None => vec![Some(1.0); b.num_rows()],
        };
        for (k, v) in keys.into_iter().zip(vals) {
            if let (Some(k), Some(v)) = (k, v) {
                let e = labels.entry(k).or_insert(0.0);
                *e = e.max(v);
            }
        }
    }
    let (_, fb) = read_view(fv)?;
    let x = rows_from(&fb, &p.features)?;
    let mut y = Vec::new();
    for b in &fb {
        for k in strings(b, &p.key)? {
            y.push(k.and_then(|k| labels.get(&k).copied()).unwrap_or(0.0));
        }
    }
    Ok(keep_complete(x, y, p.features.len()))
}

fn keep_complete(x: Vec<Vec<f64>>, y: Vec<f64>, d: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    x.into_iter().zip(y).filter(|(r, _)| r.len() == d).unzip()
}

struct Trainer;

impl training::Guest for Trainer {
    fn train(params: String) -> Result<(), Error> {
        cleanroom_guest::init();
        let p: Params = serde_json::from_str(&params).map_err(|e| format!("bad params: {e}"))?;
        if p.features.is_empty() || p.epochs == 0 || p.epochs > 100_000 {
            return Err("need at least one feature and 1..=100000 epochs".into());
        }
        let (x, y) = examples(&p)?;
        let n = x.len();
        if n == 0 {
            return Err("no training rows".into());
        }
        let d = p.features.len();
        let nf = n as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / nf)
            .collect();
        let std: Vec<f64> = (0..d)
            .map(|j| {
                let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / nf;
                if v > 0.0 { v.sqrt() } else { 1.0 }
            })
            .collect();
        let xs: Vec<Vec<f64>> = x
            .iter()
            .map(|r| (0..d).map(|j| (r[j] - mean[j]) / std[j]).collect())
            .collect();
        let (mut w, mut b) = (vec![0.0; d], 0.0);
        for _ in 0..p.epochs {
            let mut gw = vec![0.0; d];
            let mut gb = 0.0;
            for (r, &t) in xs.iter().zip(&y) {
                let z = b + r.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>();
                let e = sigmoid(z) - t;
                for j in 0..d {
                    gw[j] += e * r[j];
                }
                gb += e;
            }
            for j in 0..d {
                w[j] -= p.learning_rate * (gw[j] / nf + p.l2 * w[j]);
            }
            b -= p.learning_rate * gb / nf;
        }
        let (mut loss, mut correct) = (0.0, 0usize);
        for (r, &t) in xs.iter().zip(&y) {
            let s = sigmoid(b + r.iter().zip(&w).map(|(a, c)| a * c).sum::<f64>());
            let s = s.clamp(1e-12, 1.0 - 1e-12);
            loss -= t * s.ln() + (1.0 - t) * (1.0 - s).ln();
            if (s >= 0.5) == (t >= 0.5) {
                correct += 1;
            }
        }
        let model = Model {
            kind: "logistic-regression".into(),
            features: p.features.clone(),
            mean,
            std,
            weights: w,
            bias: b,
        };
        let bytes = serde_json::to_vec(&model).map_err(|e| e.to_string())?;
        output::write_artifact("model", &bytes);
        output::metric("loss", loss / nf);
        output::metric("accuracy", correct as f64 / nf);
        output::metric("rows", nf);
        output::metric("epochs", f64::from(p.epochs));
        Ok(())
    }
}

training::export!(Trainer);
