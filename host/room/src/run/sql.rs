//! Stage 5 (SQL): the approved SQL, planned over the views, checked against the query rules,
//! with the host's group counts added to the plan, executed by the engine. Nothing it
//! produces leaves before the guard.
//!
//! The query rules are checked twice: right after admission, against views with the
//! contract's allowed fields and no rows (so a query that breaks them is refused before the
//! room attests or asks any broker for a key), and again on the plan that executes.

use cleanroom_formats::audit::{Decision, Step, spent_micros};
use cleanroom_policy::dp::Epsilon;

use super::admit::Admitted;
use super::{Ctx, Loaded};
use crate::engine::{Counted, Engine};
use crate::error::{DpRefusal, Result};
use crate::rules;

/// Refuse, before any key is requested, approved SQL that breaks the query rules of its
/// inputs (a module's queries are checked when it makes them), and a DP workload (SQL or
/// module) whose ε its inputs' budgets no longer have.
pub(super) async fn check_before_keys(admitted: &Admitted, ctx: &mut Ctx<'_, '_>) -> Result<()> {
    let workload = admitted.workload();
    let subject = format!("{} ({})", workload.name, workload.digest().hex());
    let Some(sql) = workload
        .sql
        .as_deref()
        .filter(|_| workload.module_digest.is_none())
    else {
        return check_budget(admitted, &subject, ctx);
    };
    let inputs = rules::inputs(admitted.contract().contract(), &workload.inputs);
    // The rules, then the guard's rewrite (which refuses an output that is not an
    // aggregate), on the plan over empty views.
    // The rules, the join rule, and the rewrite that runs (the guard's, which refuses an
    // output that is not an aggregate, or the DP one), on the plan over empty views.
    let check = async {
        let engine = Engine::for_planning(&inputs)?;
        let checked = engine.check(sql).await?;
        rules::check_join_required(checked.plan(), &inputs, &workload.output.recipients)?;
        match workload.dp {
            Some(_) => crate::dp::plan(checked, &inputs).map(|_| ())?,
            None => crate::guards::add_group_count(checked).map(|_| ())?,
        }
        Ok::<_, crate::RoomError>(())
    };
    let checked = check.await;
    match checked {
        Ok(_) => ctx.ok(
            Step::Query,
            &subject,
            Decision::Accepted,
            "the query rules of every input hold (checked before any key is requested)",
        )?,
        Err(e) => return ctx.refuse(Step::Query, &subject, e),
    }
    check_budget(admitted, &subject, ctx)
}

/// A DP workload's ε fits what every input's budget has left, by the room's own ledger (the
/// audit log's budget entries); checked before any key is requested. Each broker checks its
/// own ledger again when it releases the key.
fn check_budget(admitted: &Admitted, subject: &str, ctx: &mut Ctx<'_, '_>) -> Result<()> {
    let workload = admitted.workload();
    let Some(dp) = &workload.dp else {
        return Ok(());
    };
    let asked = dp.spend();
    let contract = admitted.contract().contract();
    let mut left = Vec::new();
    for name in &workload.inputs {
        let Some(budget) = contract.dataset(name).and_then(|d| d.dp.as_ref()) else {
            return ctx.refuse(
                Step::Budget,
                subject,
                DpRefusal::NoBudget {
                    dataset: name.clone(),
                },
            );
        };
        let spent = Epsilon::from_micros(spent_micros(ctx.entries(), name));
        let total = budget.total();
        if spent.checked_add(asked).is_none_or(|after| after > total) {
            return ctx.refuse(
                Step::Budget,
                subject,
                DpRefusal::BudgetExhausted {
                    dataset: name.clone(),
                    spent: spent.to_string(),
                    total: total.to_string(),
                    asked: asked.to_string(),
                },
            );
        }
        left.push(format!("{name} {} of {total}", total.saturating_sub(spent)));
    }
    ctx.ok(
        Step::Budget,
        subject,
        Decision::Accepted,
        &format!(
            "ε {asked} ({}) fits what is left: {}",
            dp.mechanism.as_str(),
            left.join(", ")
        ),
    )
}

/// A DP workload's query, per (group, unit), bounded: what the guard releases with noise.
#[derive(Debug)]
pub(super) struct DpProduced {
    pub query: crate::dp::DpQuery,
    pub contributions: crate::dp::Contributions,
}

pub(super) async fn execute_dp(
    loaded: &Loaded,
    sql: &str,
    ctx: &mut Ctx<'_, '_>,
) -> Result<DpProduced> {
    let engine = loaded.engine();
    let run = async {
        let query = engine.dp_query(sql).await?;
        let batches = engine.execute_dp(&query).await?;
        let contributions = crate::dp::bound(&query, &batches)?;
        Ok::<_, crate::RoomError>(DpProduced {
            query,
            contributions,
        })
    };
    match run.await {
        Ok(p) => Ok(p),
        Err(e) => ctx.refuse(Step::Query, &loaded.workload_subject(), e),
    }
}

pub(super) async fn execute(loaded: &Loaded, sql: &str, ctx: &mut Ctx<'_, '_>) -> Result<Counted> {
    match loaded.engine().execute(sql).await {
        Ok(c) => Ok(c),
        Err(e) => ctx.refuse(Step::Query, &loaded.workload_subject(), e),
    }
}
