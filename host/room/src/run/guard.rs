//! Stage 6, guard: the host's guards on everything a run produced, before anything is
//! sealed. A [`Guarded`] value is the only thing the seal stage accepts, and only this
//! module makes one.
//!
//! - SQL: groups counting fewer input rows than the minimum group size are dropped (the
//!   count is the host's, added to the plan); the row cap; sealed to the output recipients.
//! - Module tables: the workload's `guards.count_column` must be present and rows below the
//!   minimum are dropped, or, under `output.row_level` (which the policy allowed only to
//!   recipients every input's owner named), rows pass with the row cap only.
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
use crate::guards::{self, CountColumn};
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
        guards::GROUP_COUNT_COLUMN,
        g.min_group_size,
        CountColumn::Remove,
    ) {
        Ok(x) => x,
        Err(e) => return ctx.refuse(Step::Guard, &subject, e),
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows > g.max_output_rows {
        return ctx.refuse(
            Step::Guard,
            &subject,
            GuardRefusal::TooManyRows {
                rows,
                max: g.max_output_rows,
            },
        );
    }
    ctx.ok(
        Step::Guard,
        &subject,
        Decision::Applied,
        &format!(
            "min_group_size {}: {dropped} groups dropped, {rows} rows released (cap {})",
            g.min_group_size, g.max_output_rows
        ),
    )?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or(counted.output_schema);
    let workload = loaded.workload();
    let (content, format) = match workload.output.format {
        OutputFormat::Csv => (engine::to_csv(&schema, &batches)?, "csv"),
        OutputFormat::Json => (engine::to_json_lines(&batches)?, "json"),
    };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    Ok((
        vec![Guarded {
            kind: OutputKind::Result,
            recipients: workload.output.recipients.clone(),
            content,
            format,
            columns,
            rows,
        }],
        Tally { rows, dropped },
    ))
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
    let recipients = &workload.output.recipients;
    let mut guarded = Vec::new();
    let mut tally = Tally::default();
    for (name, view) in out.tables {
        let (batches, d) = match loaded.output_rule() {
            // Per-row output: the policy's proof that every input's owner named every
            // recipient in its row_recipients; no group guard, the row cap still holds.
            OutputRule::PerRow(_) => (view.batches, 0),
            OutputRule::Grouped => {
                let Some(col) = &workload.guards.count_column else {
                    return ctx.refuse(Step::Guard, &subject, GuardRefusal::CountColumnNotDeclared);
                };
                match guards::drop_small_groups(
                    view.batches,
                    col,
                    g.min_group_size,
                    CountColumn::Keep,
                ) {
                    Ok(x) => x,
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
                    rows: n,
                    max: g.max_output_rows,
                },
            );
        }
        tally.rows += n;
        tally.dropped += d;
        guarded.push(Guarded {
            kind: OutputKind::Table(name),
            recipients: recipients.clone(),
            content: engine::to_csv(&view.schema, &batches)?,
            format: "csv",
            columns: view
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            rows: n,
        });
    }
    let applied = match loaded.output_rule() {
        OutputRule::PerRow(_) => format!(
            "per-row output to {} (named in every input's row_recipients): {} rows released, max_output_rows {}",
            recipients.join(", "),
            tally.rows,
            g.max_output_rows
        ),
        OutputRule::Grouped => format!(
            "min_group_size {} on `{}`: {} rows dropped, {} rows released",
            g.min_group_size,
            workload.guards.count_column.as_deref().unwrap_or("-"),
            tally.dropped,
            tally.rows
        ),
    };
    ctx.ok(Step::Guard, &subject, Decision::Applied, &applied)?;
    if !out.metrics.is_empty() {
        guarded.push(Guarded {
            kind: OutputKind::Metrics,
            recipients: recipients.clone(),
            content: serde_json::to_vec_pretty(&out.metrics).expect("an f64 map serialises"),
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
    Ok((guarded, tally))
}
