//! Output guards applied by the host to a query's logical plan and result.
//!
//! Minimum group size: the topmost aggregate of the approved query gets one more aggregate,
//! `count(1)` of the input rows in each group, carried up through the projections, sorts,
//! limits, filters (HAVING) and subquery aliases above it. After execution, rows whose count
//! is below k are dropped and the count column is removed. A query whose output is not an
//! aggregate (no GROUP BY and no aggregate function at the top) is refused: row-level output
//! never leaves through SQL.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::filter_record_batch;
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{
    Aggregate, Filter, Limit, LogicalPlan, Projection, Sort, SubqueryAlias,
};
use datafusion::prelude::{Expr, lit};

use crate::error::{GuardRefusal, QueryRefusal, Result, RoomError};

/// Name of the per-group row count the guard adds. Not a name any approved query may use.
pub const GROUP_COUNT_COLUMN: &str = "__cleanroom_group_rows";

fn df(e: datafusion::error::DataFusionError) -> RoomError {
    RoomError::engine(format!("guard rewrite failed: {}", e.find_root()))
}

/// Add the per-group row count column to `plan` (see module docs).
pub fn add_group_count(plan: LogicalPlan) -> Result<LogicalPlan> {
    if plan
        .schema()
        .fields()
        .iter()
        .any(|f| f.name() == GROUP_COUNT_COLUMN)
    {
        return Err(QueryRefusal::ReservedColumn {
            column: GROUP_COUNT_COLUMN.into(),
        }
        .into());
    }
    rewrite(plan)
}

fn count_col() -> Expr {
    Expr::Column(Column::from_name(GROUP_COUNT_COLUMN))
}

fn rewrite(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(a) => {
            let mut aggr = a.aggr_expr.clone();
            aggr.push(count(lit(1)).alias(GROUP_COUNT_COLUMN));
            Ok(LogicalPlan::Aggregate(
                Aggregate::try_new(a.input.clone(), a.group_expr.clone(), aggr).map_err(df)?,
            ))
        }
        LogicalPlan::Projection(p) => {
            let input = Arc::new(rewrite(Arc::unwrap_or_clone(p.input))?);
            let mut expr = p.expr;
            expr.push(count_col());
            Ok(LogicalPlan::Projection(
                Projection::try_new(expr, input).map_err(df)?,
            ))
        }
        LogicalPlan::Sort(s) => Ok(LogicalPlan::Sort(Sort {
            expr: s.expr,
            input: Arc::new(rewrite(Arc::unwrap_or_clone(s.input))?),
            fetch: s.fetch,
        })),
        LogicalPlan::Limit(l) => Ok(LogicalPlan::Limit(Limit {
            skip: l.skip,
            fetch: l.fetch,
            input: Arc::new(rewrite(Arc::unwrap_or_clone(l.input))?),
        })),
        LogicalPlan::Filter(f) => Ok(LogicalPlan::Filter(
            Filter::try_new(
                f.predicate,
                Arc::new(rewrite(Arc::unwrap_or_clone(f.input))?),
            )
            .map_err(df)?,
        )),
        LogicalPlan::SubqueryAlias(s) => Ok(LogicalPlan::SubqueryAlias(
            SubqueryAlias::try_new(Arc::new(rewrite(Arc::unwrap_or_clone(s.input))?), s.alias)
                .map_err(df)?,
        )),
        other => Err(QueryRefusal::NotAggregate {
            node: other.display().to_string(),
        }
        .into()),
    }
}

/// What happens to the count column once the guard has used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountColumn {
    /// The host added it (SQL): it is not part of the released output.
    Remove,
    /// The workload declared it: it stays in the output.
    Keep,
}

/// Drop rows whose count in `column` is below `k` (a null or negative count is below any k),
/// removing the column under [`CountColumn::Remove`]. Returns the kept batches and how many rows were
/// dropped. A batch without the column is refused: the guard fails closed.
pub fn drop_small_groups(
    batches: Vec<RecordBatch>,
    column: &str,
    k: u64,
    count_column: CountColumn,
) -> Result<(Vec<RecordBatch>, u64)> {
    let mut kept = Vec::with_capacity(batches.len());
    let mut dropped = 0u64;
    for b in batches {
        let idx = b
            .schema()
            .index_of(column)
            .map_err(|_| GuardRefusal::NoCountColumn {
                column: column.into(),
            })?;
        let counts = arrow::compute::cast(b.column(idx), &arrow::datatypes::DataType::Int64)
            .map_err(|_| GuardRefusal::CountNotInteger {
                column: column.into(),
            })?;
        let counts = counts
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| GuardRefusal::CountNotInteger {
                column: column.into(),
            })?;
        let mask: BooleanArray = counts
            .iter()
            .map(|c| Some(c.is_some_and(|c| c >= 0 && c as u64 >= k)))
            .collect();
        dropped += (mask.len() - mask.true_count()) as u64;
        let filtered = filter_record_batch(&b, &mask).map_err(RoomError::engine)?;
        if count_column == CountColumn::Remove {
            let keep: Vec<usize> = (0..filtered.num_columns()).filter(|i| *i != idx).collect();
            kept.push(filtered.project(&keep).map_err(RoomError::engine)?);
        } else {
            kept.push(filtered);
        }
    }
    Ok((kept, dropped))
}
