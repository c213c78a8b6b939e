//! Stage 5 (SQL): the approved SQL, planned over the views, checked against the query rules,
//! with the host's group counts added to the plan, executed by the engine. Nothing it
//! produces leaves before the guard.
//!
//! The query rules are checked twice: right after admission, against views with the
//! contract's allowed fields and no rows (so a query that breaks them is refused before the
//! room attests or asks any broker for a key), and again on the plan that executes.

use cleanroom_formats::audit::{Decision, Step};

use super::admit::Admitted;
use super::{Ctx, Loaded};
use crate::engine::{Counted, Engine};
use crate::error::Result;
use crate::rules;

/// Refuse, before any key is requested, approved SQL that breaks the query rules of its
/// inputs. Workloads without SQL pass (a module's queries are checked when it makes them).
pub(super) async fn check_before_keys(admitted: &Admitted, ctx: &mut Ctx<'_, '_>) -> Result<()> {
    let workload = admitted.workload();
    let Some(sql) = workload
        .sql
        .as_deref()
        .filter(|_| workload.module_digest.is_none())
    else {
        return Ok(());
    };
    let subject = format!("{} ({})", workload.name, workload.digest().hex());
    let inputs = rules::inputs(admitted.contract().contract(), &workload.inputs);
    // The rules, then the guard's rewrite (which refuses an output that is not an
    // aggregate), on the plan over empty views.
    let checked = match Engine::for_planning(&inputs) {
        Ok(engine) => engine
            .check(sql)
            .await
            .and_then(|c| crate::guards::add_group_count(c).map(|_| ())),
        Err(e) => Err(e),
    };
    match checked {
        Ok(_) => ctx.ok(
            Step::Query,
            &subject,
            Decision::Accepted,
            "the query rules of every input hold (checked before any key is requested)",
        ),
        Err(e) => ctx.refuse(Step::Query, &subject, e),
    }
}

pub(super) async fn execute(loaded: &Loaded, sql: &str, ctx: &mut Ctx<'_, '_>) -> Result<Counted> {
    match loaded.engine().execute(sql).await {
        Ok(c) => Ok(c),
        Err(e) => ctx.refuse(Step::Query, &loaded.workload_subject(), e),
    }
}
