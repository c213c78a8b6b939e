//! A deadline inside DataFusion's execution: every operator's output stream ends with an
//! error once the deadline has passed.
//!
//! Why: a query's operators run inside one poll of the consuming stream for as long as
//! their inputs are in memory (a hash join producing billions of rows never returns
//! `Pending`), so neither a timeout around the query nor aborting its task stops it. Each
//! operator's stream is polled once per output batch, so checking the clock there bounds the
//! overrun to one batch of one operator. Used for a module's `query` import, whose SQL the
//! module chooses.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// The error an operator's stream ends with once the deadline has passed.
pub const DEADLINE_PASSED: &str = "the run's deadline passed";

/// `plan` with every operator wrapped so that its stream fails after `deadline`.
pub fn wrap(plan: Arc<dyn ExecutionPlan>, deadline: Instant) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(Transformed::yes(Arc::new(DeadlineExec {
            input: node,
            deadline,
        }) as Arc<dyn ExecutionPlan>))
    })
    .map(|t| t.data)
}

#[derive(Debug)]
struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    deadline: Instant,
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("DeadlineExec")
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(DeadlineExec {
                input,
                deadline: self.deadline,
            })),
            _ => Err(DataFusionError::Internal(
                "DeadlineExec has exactly one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let deadline = self.deadline;
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let checked = input.map(move |batch| {
            if Instant::now() >= deadline {
                Err(DataFusionError::ResourcesExhausted(DEADLINE_PASSED.into()))
            } else {
                batch
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, checked)))
    }
}
