//! Stage 5 (module): the approved component (its digest checked against the approval) in
//! the sandbox, linked to its world only, with the views of its tabular inputs, its `file`
//! inputs as artifacts, the contract's limits and, for its `query(sql)` import, the run's
//! engine. What it writes is not released here: the guard stage decides.
//!
//! A module's own error message is attacker-chosen text: it is never put in an error or an
//! audit entry; it reaches the module's log only, and the log leaves only under consent.

use std::collections::BTreeMap;
use std::sync::Arc;

use cleanroom_formats::audit::Step;
use cleanroom_formats::fsutil::{self, Root};
use datafusion::prelude::SessionContext;

use super::{Ctx, Loaded, RunConfig, guard, seal};
use crate::engine::Engine;
use crate::error::{Result, RoomError};
use crate::sandbox::{
    HostQuery, Limits, RunInputs, RunLog, RunOutputs, Sandbox, SandboxConfig, View, World,
};

/// What a module wrote, and its log. Nothing here has passed the guards.
#[derive(Debug)]
pub(super) struct Produced {
    pub outputs: RunOutputs,
    pub log: RunLog,
    /// The privacy units of the inputs (`None` when no input declares one): what the guard
    /// checks a module table's unit column against.
    pub input_units: Option<std::collections::HashSet<String>>,
}

/// The module's `query(sql)` import, answered by the run's engine (same views, queries
/// only), within the module's memory limit and the run's deadline: a query still running at
/// the deadline is dropped, and the module is stopped at its next instruction.
struct EngineQuery {
    ctx: SessionContext,
    /// The inputs, whose query rules the module's SQL obeys.
    datasets: Vec<cleanroom_policy::contract::Dataset>,
    handle: tokio::runtime::Handle,
}

impl HostQuery for EngineQuery {
    fn query(
        &self,
        sql: &str,
        deadline: std::time::Instant,
    ) -> std::result::Result<Vec<arrow::array::RecordBatch>, String> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // Called from the sandbox's blocking thread, never from a runtime worker. The query
        // runs as its own task, so the timeout fires even while it computes; its operators
        // check the deadline themselves (`crate::deadline`), so it also stops computing.
        let (ctx, datasets, sql) = (self.ctx.clone(), self.datasets.clone(), sql.to_string());
        self.handle.block_on(async move {
            let task =
                tokio::spawn(
                    async move { Engine::module_query(&ctx, &datasets, &sql, deadline).await },
                );
            let abort = task.abort_handle();
            match tokio::time::timeout(left, task).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err("the query failed (details withheld)".to_string()),
                Err(_) => {
                    abort.abort();
                    Err("the query ran past the run's deadline".to_string())
                }
            }
        })
    }
}

/// The contract's `[sandbox]` limits over the defaults.
fn limits(loaded: &Loaded) -> Limits {
    let l = &loaded.contract().sandbox;
    let d = Limits::default();
    Limits {
        memory_bytes: l.memory_bytes.map_or(d.memory_bytes, |v| v as usize),
        deadline: l
            .deadline_ms
            .map_or(d.deadline, std::time::Duration::from_millis),
        output_bytes: l.output_bytes.map_or(d.output_bytes, |v| v as usize),
        log_bytes: l.log_bytes.map_or(d.log_bytes, |v| v as usize),
    }
}

pub(super) async fn execute(
    loaded: &mut Loaded,
    digest: &str,
    cfg: &RunConfig,
    room: &Root,
    run_id: &str,
    ctx: &mut Ctx<'_, '_>,
) -> Result<Produced> {
    let subject = format!("module {digest}");
    let bytes = match &cfg.module {
        Some(p) => fsutil::read_file(p),
        None => room.read(&format!("modules/{digest}.wasm")),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return ctx.refuse(Step::Module, &subject, e),
    };
    let sandbox = match Sandbox::new(SandboxConfig::default()) {
        Ok(s) => s,
        Err(e) => return ctx.refuse(Step::Module, &subject, RoomError::Module(e)),
    };
    let module = match sandbox.load(&bytes, digest) {
        Ok(m) => m,
        Err(e) => return ctx.refuse(Step::Module, &subject, RoomError::Module(e)),
    };
    drop(bytes);
    let want = World::from(loaded.workload().kind);
    if module.world() != want {
        return ctx.refuse(
            Step::Module,
            &subject,
            RoomError::ModuleWrongWorld {
                found: module.world().name(),
                expected: want.name(),
            },
        );
    }

    let artifacts = loaded.take_artifacts();
    let mut views = BTreeMap::new();
    for input in &loaded.workload().inputs {
        if artifacts.contains_key(input) {
            continue;
        }
        let (schema, batches) = loaded.engine().view(input).await?;
        views.insert(input.clone(), View { schema, batches });
    }
    let inputs = RunInputs {
        views,
        artifacts,
        params: serde_json::to_string(&loaded.workload().parameters)
            .expect("JSON values serialise"),
    };
    let limits = limits(loaded);
    // The `query` import answers only when the approved workload declares SQL access.
    let query: Option<Arc<dyn HostQuery + Send + Sync>> = if loaded.workload().module.sql_access {
        Some(Arc::new(EngineQuery {
            ctx: loaded.engine().module_context(limits.memory_bytes)?,
            datasets: loaded.engine().datasets().to_vec(),
            handle: tokio::runtime::Handle::current(),
        }))
    } else {
        None
    };
    let (result, log) =
        tokio::task::spawn_blocking(move || sandbox.run_logged(&module, inputs, limits, query))
            .await
            .map_err(|_| RoomError::engine("the sandbox thread failed"))?;

    match result {
        Ok(outputs) => {
            let input_units = if outputs.tables.is_empty() {
                None
            } else {
                loaded.engine().privacy_units().await?
            };
            Ok(Produced {
                outputs,
                log,
                input_units,
            })
        }
        Err(e) => {
            // The log of a failed run (a panic message, say) still leaves only under consent.
            if let Some(g) = guard::module_log(loaded, &log, ctx)? {
                seal::Sealer::new(room, loaded, run_id).seal(g, ctx)?;
            }
            ctx.refuse(Step::Module, &subject, RoomError::Module(e))
        }
    }
}
