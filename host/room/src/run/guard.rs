//! Stage 6, guard: the host's guards on everything a run produced, before anything is
//! sealed. A [`Guarded`] value is the only thing the seal stage accepts, and only this
//! module makes one.
//!
//! - SQL: groups with fewer distinct privacy units (of every input that declares one; input
//!   rows when none does) than the minimum group size are dropped (the counts are the
//!   host's, added to the plan); the row cap; sealed to the output recipients.
//! - Module tables: grouped by the host, which counts the distinct privacy units (named by
//!   the workload's `guards.unit_column`, each checked against the inputs' units) behind
//!   each group and drops groups below the minimum; or, under `output.row_level` (which the
//!   policy allowed only to recipients every input's owner named), rows pass with the row
//!   cap only.
//! - Module metrics: sealed to the output recipients (as JSON).
//! - Module artifacts (e.g. model weights): sealed only to `output.artifact_recipients`;
//!   a module writing an artifact when the workload names none is refused.
//! - The module's log: kept (sealed to the output recipients) only under the contract's
//!   `logging_consent`, otherwise discarded, on the record.

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_policy::guards::OutputRule;
use cleanroom_policy::workload::OutputFormat;

use super::module::Produced;
use super::{Ctx, Loaded};
use crate::engine::{self, Counted};
use crate::error::{GuardRefusal, Result};
use crate::guards;
use crate::sandbox::OutputName;

/// What an output is, which decides its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OutputKind {
    /// The result of a SQL workload.
    Result,
    Table(OutputName),
    Metrics,
    Artifact(OutputName),
    Log,
}

/// One output that passed every guard, ready to seal. Only this module makes one.
#[derive(Debug)]
pub struct Guarded {
    pub(super) kind: OutputKind,
    pub(super) recipients: Vec<String>,
    pub(super) content: Vec<u8>,
    pub(super) format: &'static str,
    pub(super) columns: Vec<String>,
    pub(super) rows: u64,
}

/// Rows released and dropped, for the run report.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub rows: u64,
    pub dropped: u64,
}

pub(super) fn sql_output(
    loaded: &Loaded,
    counted: Counted,
    ctx: &mut Ctx<'_, '_>,
) -> Result<(Vec<Guarded>, Tally)> {
    let subject = loaded.workload_subject();
    let g = loaded.guards();
    let (batches, dropped) = match guards::drop_small_groups(
        counted.batches,
        &counted.count_columns,
        g.min_group_size,
    ) {
        Ok(x) => x,
        Err(e) => return ctx.refuse(Step::Guard, &subject, e),
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    check_row_cap(loaded, rows, ctx)?;
    ctx.ok(
        Step::Guard,
        &subject,
        Decision::Applied,
        &format!(
            "min_group_size {} {}: {dropped} groups dropped, {rows} rows released (cap {})",
            g.min_group_size,
            if counted
                .count_columns
                .iter()
                .any(|c| c == guards::GROUP_COUNT_COLUMN)
            {
                "input rows (no input declares a privacy unit)"
            } else {
                "distinct privacy units of every input that declares one"
            },
            g.max_output_rows
        ),
    )?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(counted.output_schema);
    result_output(loaded, &schema, &batches, Tally { rows, dropped })
}

/// The ledger: one durable `budget` entry per input of a DP workload, after its noise is
/// drawn and before any of its outputs is sealed.
fn spend_budget(
    loaded: &Loaded,
    dp: &cleanroom_policy::dp::WorkloadDp,
    subject: &str,
    ctx: &mut Ctx<'_, '_>,
) -> Result<()> {
    let spend = dp.spend();
    for name in &loaded.workload().inputs {
        let delta = loaded
            .contract()
            .dataset(name)
            .and_then(|d| d.dp.as_ref())
            .map_or(0.0, |d| d.delta);
        ctx.spend(
            cleanroom_formats::audit::Spend {
                dataset: name.clone(),
                epsilon_micros: spend.micros(),
                delta: format!("{delta:e}"),
            },
            &format!(
                "ε {spend} spent by a {} release of workload {subject}",
                dp.mechanism.as_str()
            ),
        )?;
    }
    crate::failpoint::hit(crate::failpoint::BUDGET_RECORDED);
    Ok(())
}

/// The row cap of a SQL result.
fn check_row_cap(loaded: &Loaded, rows: u64, ctx: &mut Ctx<'_, '_>) -> Result<()> {
    let max = loaded.guards().max_output_rows;
    if rows > max {
        return ctx.refuse(
            Step::Guard,
            &loaded.workload_subject(),
            GuardRefusal::TooManyRows { rows, max },
        );
    }
    Ok(())
}

/// A SQL result that passed its guards, encoded for sealing to the output recipients.
fn result_output(
    loaded: &Loaded,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::array::RecordBatch],
    tally: Tally,
) -> Result<(Vec<Guarded>, Tally)> {
    let workload = loaded.workload();
    let (content, format) = match workload.output.format {
        OutputFormat::Csv => (engine::to_csv(schema, batches)?, "csv"),
        OutputFormat::Json => (engine::to_json_lines(batches)?, "json"),
    };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok((
        vec![Guarded {
            kind: OutputKind::Result,
            recipients: workload.output.recipients.clone(),
            content,
            format,
            columns,
            rows: tally.rows,
        }],
        tally,
    ))
}

/// A DP workload's release: OpenDP's noise and threshold on the bounded contributions,
/// then the budget spent, on the record, before anything is sealed.
///
/// The ledger entries (one per input, ε in exact micro-units) are appended and fsynced
/// before this returns, so before the seal stage records any output: after a crash between
/// the two, the budget is spent and nothing was released; never the reverse. The number of
/// groups the threshold withheld is not recorded (it is not differentially private).
pub(super) fn dp_output(
    loaded: &Loaded,
    produced: super::sql::DpProduced,
    ctx: &mut Ctx<'_, '_>,
) -> Result<(Vec<Guarded>, Tally)> {
    let subject = loaded.workload_subject();
    let workload = loaded.workload();
    let Some(dp) = &workload.dp else {
        return ctx.refuse(
            Step::Guard,
            &subject,
            crate::error::DpRefusal::Unsupported {
                what: "a DP release for a workload without dp",
            },
        );
    };
    let spec = crate::dp::Spec {
        epsilon: dp.spend(),
        mechanism: dp.mechanism,
        bounds: produced.query.bounds(),
        min_units: loaded.guards().min_group_size,
    };
    let q = &produced.query;
    let released = match crate::dp::release(&produced.contributions, q.measures(), &spec)
        .and_then(|r| crate::dp::to_batch(q, &produced.contributions, &r).map(|(s, b)| (r, s, b)))
    {
        Ok(x) => x,
        Err(e) => return ctx.refuse(Step::Guard, &subject, e),
    };
    let (r, schema, batch) = released;
    let rows = batch.num_rows() as u64;
    let g = loaded.guards();
    check_row_cap(loaded, rows, ctx)?;
    ctx.ok(
        Step::Guard,
        &subject,
        Decision::Applied,
        &format!(
            "differential privacy ({}, ε {} by OpenDP's privacy maps, δ {:e}): each privacy unit in at most {} groups with at most {} rows each; group keys released through a noisy threshold of {} distinct units; {rows} rows released (cap {})",
            dp.mechanism.as_str(),
            r.epsilon_spent(),
            r.delta,
            spec.bounds.max_groups_per_unit,
            spec.bounds.max_rows_per_unit,
            r.threshold,
            g.max_output_rows,
        ),
    )?;
    spend_budget(loaded, dp, &subject, ctx)?;
    result_output(
        loaded,
        &schema,
        std::slice::from_ref(&batch),
        Tally { rows, dropped: 0 },
    )
}

/// The module's log, if the contract's logging consent lets it out (else its discarding is
/// recorded).
pub(super) fn module_log(
    loaded: &Loaded,
    log: &crate::sandbox::RunLog,
    ctx: &mut Ctx<'_, '_>,
) -> Result<Option<Guarded>> {
    if log.text.is_empty() {
        return Ok(None);
    }
    if !loaded.contract().governance.logging_consent {
        ctx.ok(
            Step::Log,
            "module log",
            Decision::Discarded,
            "no logging consent in the contract",
        )?;
        return Ok(None);
    }
    Ok(Some(Guarded {
        kind: OutputKind::Log,
        recipients: loaded.workload().output.recipients.clone(),
        content: log.text.as_bytes().to_vec(),
        format: "text",
        columns: vec![],
        rows: 0,
    }))
}

pub(super) fn module_output(
    loaded: &Loaded,
    produced: Produced,
    ctx: &mut Ctx<'_, '_>,
) -> Result<(Vec<Guarded>, Tally)> {
    let workload = loaded.workload();
    let digest = workload.module_digest.as_deref().unwrap_or("-");
    let subject = format!("module {digest}");
    let out = produced.outputs;
    let input_units = produced.input_units;
    ctx.ok(
        Step::Module,
        &subject,
        Decision::Ran,
        &format!(
            "{} tables, {} artifacts, {} metrics",
            out.tables.len(),
            out.artifacts.len(),
            out.metrics.len()
        ),
    )?;
    let g = loaded.guards();
    // Nothing is sealed if any output is refused.
    if !out.artifacts.is_empty() && workload.output.artifact_recipients.is_empty() {
        return ctx.refuse(
            Step::Guard,
            &subject,
            GuardRefusal::ArtifactsWithoutRecipients,
        );
    }
    // The contract's caps on what a module releases beside tables.
    let outputs_rules = &loaded.contract().outputs;
    if let Some(max) = outputs_rules.max_artifact_bytes
        && out.artifacts.values().any(|a| a.len() as u64 > max)
    {
        return ctx.refuse(
            Step::Guard,
            &subject,
            GuardRefusal::ArtifactTooLarge { max },
        );
    }
    if let Some(max) = outputs_rules.max_metrics
        && out.metrics.len() as u64 > max
    {
        return ctx.refuse(Step::Guard, &subject, GuardRefusal::TooManyMetrics { max });
    }
    let recipients = &workload.output.recipients;
    let mut guarded = Vec::new();
    for (name, view) in out.tables {
        let (schema, batches) = match loaded.output_rule() {
            // Per-row output: the policy's proof that every input's owner named every
            // recipient in its row_recipients; no group guard, the row cap still holds.
            OutputRule::PerRow(_) => (view.schema, view.batches),
            // Guarded: the host counts the distinct privacy units behind each group; a count
            // the module wrote claims nothing.
            OutputRule::Grouped => {
                let Some(col) = &workload.guards.unit_column else {
                    return ctx.refuse(Step::Guard, &subject, GuardRefusal::UnitColumnNotDeclared);
                };
                let Some(units) = &input_units else {
                    return ctx.refuse(Step::Guard, &subject, GuardRefusal::NoPrivacyUnitInInputs);
                };
                match guards::count_units(&view.schema, &view.batches, col, units, g.min_group_size)
                {
                    Ok(c) => (c.schema, c.batches),
                    Err(e) => return ctx.refuse(Step::Guard, &subject, e),
                }
            }
        };
        let n: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if n > g.max_output_rows {
            return ctx.refuse(
                Step::Guard,
                &subject,
                GuardRefusal::TooManyTableRows {
                    max: g.max_output_rows,
                },
            );
        }
        guarded.push(Guarded {
            kind: OutputKind::Table(name),
            recipients: recipients.clone(),
            content: engine::to_csv(&schema, &batches)?,
            format: "csv",
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows: n,
        });
    }
    // The counts of a module's tables are the module's choice (a channel it could encode
    // data in): they stay inside the sealed outputs, out of the audit log and the report.
    let applied = match loaded.output_rule() {
        OutputRule::PerRow(_) => format!(
            "per-row output to {} (named in every input's row_recipients), max_output_rows {}",
            recipients.join(", "),
            g.max_output_rows
        ),
        OutputRule::Grouped => format!(
            "min_group_size {} distinct privacy units (the host's count over `{}`), max_output_rows {}",
            g.min_group_size,
            workload.guards.unit_column.as_deref().unwrap_or("-"),
            g.max_output_rows
        ),
    };
    ctx.ok(Step::Guard, &subject, Decision::Applied, &applied)?;
    let metrics: Option<std::collections::BTreeMap<String, f64>> = match &workload.dp {
        None => (!out.metrics.is_empty()).then(|| {
            out.metrics
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect()
        }),
        Some(dp) => {
            let written = out
                .metrics
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect();
            let delta = workload
                .inputs
                .iter()
                .filter_map(|i| loaded.contract().dataset(i)?.dp.as_ref().map(|d| d.delta))
                .fold(f64::MAX, f64::min);
            match crate::dp::noisy_metrics(
                &written,
                &dp.metric_bounds,
                dp.spend(),
                dp.mechanism,
                delta,
            ) {
                Ok((noisy, spent)) => {
                    ctx.ok(
                        Step::Guard,
                        &subject,
                        Decision::Applied,
                        &format!(
                            "differential privacy on the module's metrics ({}, ε {spent} by OpenDP's privacy map): the {} metrics dp.metric_bounds names, each clamped into its bounds",
                            dp.mechanism.as_str(),
                            noisy.len()
                        ),
                    )?;
                    Some(noisy)
                }
                Err(e) => return ctx.refuse(Step::Guard, &subject, e),
            }
        }
    };
    if let Some(metrics) = metrics {
        guarded.push(Guarded {
            kind: OutputKind::Metrics,
            recipients: recipients.clone(),
            content: serde_json::to_vec_pretty(&metrics).expect("an f64 map serialises"),
            format: "json",
            columns: vec![],
            rows: 0,
        });
    }
    for (name, bytes) in out.artifacts {
        guarded.push(Guarded {
            kind: OutputKind::Artifact(name),
            recipients: workload.output.artifact_recipients.clone(),
            content: bytes,
            format: "artifact",
            columns: vec![],
            rows: 0,
        });
    }
    if let Some(log) = module_log(loaded, &produced.log, ctx)? {
        guarded.push(log);
    }
    if let Some(dp) = &workload.dp {
        spend_budget(loaded, dp, &subject, ctx)?;
    }
    Ok((guarded, Tally::default()))
}
