//! The module branch of a run: load the approved component (its digest checked), give it
//! the views of its tabular inputs and its `file` inputs as artifacts, run it in the
//! sandbox, then apply the host's guards to everything it wrote before sealing:
//!
//! - tables: the workload's `guards.count_column` must be present; rows counting fewer
//!   input rows than the minimum group size are dropped; row cap; sealed to the output
//!   recipients;
//! - metrics: sealed to the output recipients (as JSON);
//! - artifacts (e.g. model weights): sealed only to `output.artifact_recipients`; a module
//!   writing an artifact when the workload names none is refused;
//! - the module's log: kept (sealed to the output recipients) only under the contract's
//!   `logging_consent`, otherwise discarded.
//!
//! A module's own error message is attacker-chosen text: it is never put in an error or an
//! audit entry; it reaches the log only, and the log only under consent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use cleanroom_policy::Workload;
use cleanroom_policy::guards::EffectiveGuards;
use datafusion::prelude::SessionContext;

use crate::engine::{self, Engine};
use crate::error::{HostError, Result};
use crate::fsutil::{self, Root};
use crate::guards;
use crate::run::{Ctx, RunConfig, Sealer};
use crate::sandbox::{
    HostQuery, Limits, RunInputs, Sandbox, SandboxConfig, SandboxError, View, World,
};

/// The module's `query(sql)` import, answered by the run's engine (same views, queries only).
struct EngineQuery {
    ctx: SessionContext,
    handle: tokio::runtime::Handle,
}

impl HostQuery for EngineQuery {
    fn query(&self, sql: &str) -> std::result::Result<Vec<arrow::array::RecordBatch>, String> {
        // Called from the sandbox's blocking thread, never from a runtime worker.
        self.handle.block_on(Engine::module_query(&self.ctx, sql))
    }
}

/// What a refused module run says: the error, except a module's own message.
fn describe(e: &SandboxError) -> String {
    match e {
        SandboxError::ModuleFailed { .. } => {
            "the module returned an error (its message is module-chosen text: withheld)".into()
        }
        other => other.to_string(),
    }
}

fn safe_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(HostError::QueryRefused {
            reason: format!("module {kind} name is not [A-Za-z0-9_-]{{1,64}}"),
        });
    }
    Ok(())
}

/// Run the module; returns (sealed outputs, rows released, rows dropped by the guard).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_module(
    cfg: &RunConfig,
    room: &Root,
    workload: &Workload,
    digest: &str,
    eng: &Engine,
    artifacts: BTreeMap<String, Vec<u8>>,
    g: &EffectiveGuards,
    sealer: &Sealer<'_>,
    ctx: &mut Ctx<'_, '_>,
) -> Result<(Vec<PathBuf>, u64, u64)> {
    let subject = format!("module {digest}");
    let bytes = match &cfg.module {
        Some(p) => fsutil::read_file(p),
        None => room.read(&format!("modules/{digest}.wasm")),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return ctx.refuse("module", &subject, e),
    };
    let sandbox = match Sandbox::new(SandboxConfig::default()) {
        Ok(s) => s,
        Err(e) => return ctx.refuse("module", &subject, HostError::Module(e.to_string())),
    };
    let loaded = match sandbox.load(&bytes, digest) {
        Ok(m) => m,
        Err(e) => return ctx.refuse("module", &subject, HostError::Module(describe(&e))),
    };
    drop(bytes);
    let want = World::from(workload.kind);
    if loaded.world() != want {
        return ctx.refuse(
            "module",
            &subject,
            HostError::Module(format!(
                "component implements world `{}`, the workload is a {} workload",
                loaded.world().name(),
                want.name()
            )),
        );
    }

    let mut views = BTreeMap::new();
    for input in &workload.inputs {
        if artifacts.contains_key(input) {
            continue;
        }
        let (schema, batches) = eng.view(input).await?;
        views.insert(input.clone(), View { schema, batches });
    }
    let inputs = RunInputs {
        views,
        artifacts,
        params: serde_json::to_string(&workload.parameters).expect("JSON values serialise"),
    };
    let query: Arc<dyn HostQuery + Send + Sync> = Arc::new(EngineQuery {
        ctx: eng.context(),
        handle: tokio::runtime::Handle::current(),
    });
    let l = &sealer.contract.sandbox;
    let d = Limits::default();
    let limits = Limits {
        memory_bytes: l.memory_bytes.map_or(d.memory_bytes, |v| v as usize),
        deadline: l
            .deadline_ms
            .map_or(d.deadline, std::time::Duration::from_millis),
        output_bytes: l.output_bytes.map_or(d.output_bytes, |v| v as usize),
        log_bytes: l.log_bytes.map_or(d.log_bytes, |v| v as usize),
    };
    let (result, log) = tokio::task::spawn_blocking(move || {
        sandbox.run_logged(&loaded, inputs, limits, Some(query))
    })
    .await
    .map_err(|_| HostError::Module("the sandbox thread failed".into()))?;

    let recipients = &workload.output.recipients;
    let run_id = sealer.run_id;
    let mut written = Vec::new();
    let consent = sealer.contract.governance.logging_consent;
    let keep_log = |ctx: &mut Ctx<'_, '_>, written: &mut Vec<PathBuf>| -> Result<()> {
        if log.text.is_empty() {
            return Ok(());
        }
        if consent {
            written.push(sealer.seal(
                &format!("outputs/{run_id}-log.cro"),
                recipients,
                log.text.as_bytes(),
                "text",
                vec![],
                0,
                ctx,
            )?);
        } else {
            ctx.ok(
                "log",
                "module log",
                "discarded",
                "no logging consent in the contract",
            )?;
        }
        Ok(())
    };
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            keep_log(ctx, &mut written)?;
            return ctx.refuse("module", &subject, HostError::Module(describe(&e)));
        }
    };
    ctx.ok(
        "module",
        &subject,
        "ran",
        &format!(
            "{} tables, {} artifacts, {} metrics",
            out.tables.len(),
            out.artifacts.len(),
            out.metrics.len()
        ),
    )?;

    // Guards before anything is sealed: nothing is written if any output is refused.
    if !out.artifacts.is_empty() && workload.output.artifact_recipients.is_empty() {
        return ctx.refuse(
            "guard",
            &subject,
            HostError::QueryRefused {
                reason: "the module wrote artifacts but the workload names no artifact_recipients"
                    .into(),
            },
        );
    }
    let row_level = workload.output.row_level;
    let mut tables = Vec::new();
    let (mut rows, mut dropped) = (0u64, 0u64);
    for (name, view) in out.tables {
        if let Err(e) = safe_name("table", &name) {
            return ctx.refuse("guard", &subject, e);
        }
        let (batches, d) = if row_level {
            // Per-row output: the policy checked that every input's owner named every
            // recipient in its row_recipients; no group guard, the row cap still holds.
            (view.batches, 0)
        } else {
            let Some(col) = &workload.guards.count_column else {
                return ctx.refuse(
                    "guard",
                    &subject,
                    HostError::QueryRefused {
                        reason: format!(
                            "module wrote table `{name}` but the workload sets no guards.count_column"
                        ),
                    },
                );
            };
            match guards::drop_small_groups(view.batches, col, g.min_group_size, false) {
                Ok(x) => x,
                Err(e) => return ctx.refuse("guard", &subject, e),
            }
        };
        let n: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if n > g.max_output_rows {
            return ctx.refuse(
                "guard",
                &subject,
                HostError::QueryRefused {
                    reason: format!(
                        "table `{name}` has {n} rows, more than max_output_rows {}",
                        g.max_output_rows
                    ),
                },
            );
        }
        rows += n;
        dropped += d;
        tables.push((name, view.schema, batches, n));
    }
    for name in out.artifacts.keys() {
        if let Err(e) = safe_name("artifact", name) {
            return ctx.refuse("guard", &subject, e);
        }
    }
    let applied = if row_level {
        format!(
            "per-row output to {} (named in every input's row_recipients): {rows} rows released, max_output_rows {}",
            recipients.join(", "),
            g.max_output_rows
        )
    } else {
        format!(
            "min_group_size {} on `{}`: {dropped} rows dropped, {rows} rows released",
            g.min_group_size,
            workload.guards.count_column.as_deref().unwrap_or("-")
        )
    };
    ctx.ok("guard", &subject, "applied", &applied)?;

    for (name, schema, batches, n) in tables {
        let csv = engine::to_csv(&schema, &batches)?;
        let cols = schema.fields().iter().map(|f| f.name().clone()).collect();
        written.push(sealer.seal(
            &format!("outputs/{run_id}-table-{name}.cro"),
            recipients,
            &csv,
            "csv",
            cols,
            n,
            ctx,
        )?);
    }
    if !out.metrics.is_empty() {
        let json = serde_json::to_vec_pretty(&out.metrics).expect("f64 map serialises");
        written.push(sealer.seal(
            &format!("outputs/{run_id}-metrics.cro"),
            recipients,
            &json,
            "json",
            vec![],
            0,
            ctx,
        )?);
    }
    for (name, bytes) in &out.artifacts {
        written.push(sealer.seal(
            &format!("outputs/{run_id}-artifact-{name}.cro"),
            &workload.output.artifact_recipients,
            bytes,
            "artifact",
            vec![],
            0,
            ctx,
        )?);
    }
    keep_log(ctx, &mut written)?;
    Ok((written, rows, dropped))
}
