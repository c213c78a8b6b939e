//! Stage 5 (SQL): the approved SQL, planned over the views with the host's group count
//! added to the plan, executed by the engine. Nothing it produces leaves before the guard.

use cleanroom_formats::audit::Step;

use super::{Ctx, Loaded};
use crate::engine::Counted;
use crate::error::Result;

pub(super) async fn execute(loaded: &Loaded, sql: &str, ctx: &mut Ctx<'_, '_>) -> Result<Counted> {
    match loaded.engine().execute(sql).await {
        Ok(c) => Ok(c),
        Err(e) => ctx.refuse(Step::Query, &loaded.workload_subject(), e),
    }
}
