//! Output guards applied by the host to a query's logical plan and result.
//!
//! Minimum group size: the topmost aggregate of the approved query gets more aggregates, the
//! host's counts of each group: `count(DISTINCT unit)` for the privacy unit of every scan of
//! a dataset that declares one (found by [`crate::rules::check`]), or `count(1)` of the
//! input rows when no input declares a unit. They are carried up through the projections,
//! sorts, limits, filters (HAVING) and subquery aliases above it. After execution, rows
//! where any count is below k are dropped and the count columns are removed. A query whose
//! output is not an aggregate (no GROUP BY and no aggregate function at the top) is refused:
//! row-level output never leaves through SQL.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::filter_record_batch;
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{
    Aggregate, Filter, Limit, LogicalPlan, Projection, Sort, SubqueryAlias,
};
use datafusion::prelude::{Expr, lit};

use crate::error::{GuardRefusal, QueryRefusal, Result, RoomError};
use crate::rules::CheckedPlan;

/// Name of the per-group row count the guard adds when no input declares a privacy unit.
/// Not a name any approved query may use (nor anything starting with [`RESERVED_PREFIX`]).
pub const GROUP_COUNT_COLUMN: &str = "__cleanroom_group_rows";

/// Prefix of every column the guard adds; a query's output may not use it.
pub const RESERVED_PREFIX: &str = "__cleanroom_";

fn df(e: datafusion::error::DataFusionError) -> RoomError {
    RoomError::engine(format!("guard rewrite failed: {}", e.find_root()))
}

/// Add the host's per-group counts to a checked plan (see module docs). Returns the plan and
/// the names of the count columns it carries.
pub fn add_group_count(checked: CheckedPlan) -> Result<(LogicalPlan, Vec<String>)> {
    let (plan, units) = checked.into_parts();
    if let Some(f) = plan
        .schema()
        .fields()
        .iter()
        .find(|f| f.name().starts_with(RESERVED_PREFIX))
    {
        return Err(QueryRefusal::ReservedColumn {
            column: f.name().clone(),
        }
        .into());
    }
    let counts: Vec<(String, Expr)> = if units.is_empty() {
        vec![(GROUP_COUNT_COLUMN.to_string(), count(lit(1)))]
    } else {
        units
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("{RESERVED_PREFIX}units_{i}"),
                    count_distinct(Expr::Column(c)),
                )
            })
            .collect()
    };
    let names: Vec<String> = counts.iter().map(|(n, _)| n.clone()).collect();
    Ok((rewrite(plan, &counts)?, names))
}

fn rewrite(plan: LogicalPlan, counts: &[(String, Expr)]) -> Result<LogicalPlan> {
    let carried = || {
        counts
            .iter()
            .map(|(n, _)| Expr::Column(Column::from_name(n.as_str())))
    };
    match plan {
        LogicalPlan::Aggregate(a) => {
            let mut aggr = a.aggr_expr.clone();
            aggr.extend(counts.iter().map(|(n, e)| e.clone().alias(n.as_str())));
            Ok(LogicalPlan::Aggregate(
                Aggregate::try_new(a.input.clone(), a.group_expr.clone(), aggr).map_err(df)?,
            ))
        }
        LogicalPlan::Projection(p) => {
            let input = Arc::new(rewrite(Arc::unwrap_or_clone(p.input), counts)?);
            let mut expr = p.expr;
            expr.extend(carried());
            Ok(LogicalPlan::Projection(
                Projection::try_new(expr, input).map_err(df)?,
            ))
        }
        LogicalPlan::Sort(s) => Ok(LogicalPlan::Sort(Sort {
            expr: s.expr,
            input: Arc::new(rewrite(Arc::unwrap_or_clone(s.input), counts)?),
            fetch: s.fetch,
        })),
        LogicalPlan::Limit(l) => Ok(LogicalPlan::Limit(Limit {
            skip: l.skip,
            fetch: l.fetch,
            input: Arc::new(rewrite(Arc::unwrap_or_clone(l.input), counts)?),
        })),
        LogicalPlan::Filter(f) => Ok(LogicalPlan::Filter(
            Filter::try_new(
                f.predicate,
                Arc::new(rewrite(Arc::unwrap_or_clone(f.input), counts)?),
            )
            .map_err(df)?,
        )),
        LogicalPlan::SubqueryAlias(s) => Ok(LogicalPlan::SubqueryAlias(
            SubqueryAlias::try_new(
                Arc::new(rewrite(Arc::unwrap_or_clone(s.input), counts)?),
                s.alias,
            )
            .map_err(df)?,
        )),
        other => Err(QueryRefusal::NotAggregate {
            node: other.display().to_string(),
        }
        .into()),
    }
}

/// Drop rows where any of the counts in `columns` is below `k` (a null or negative count is
/// below any k), and remove those columns (the host's counts are not part of the released
/// output). Returns the kept batches and how many rows were dropped. A batch without one of the columns is refused: the
/// guard fails closed.
pub fn drop_small_groups(
    batches: Vec<RecordBatch>,
    columns: &[String],
    k: u64,
) -> Result<(Vec<RecordBatch>, u64)> {
    if columns.is_empty() {
        return Err(GuardRefusal::NoCountColumn {
            column: String::new(),
        }
        .into());
    }
    let mut kept = Vec::with_capacity(batches.len());
    let mut dropped = 0u64;
    for b in batches {
        let mut mask = vec![true; b.num_rows()];
        let mut idxs = Vec::with_capacity(columns.len());
        for column in columns {
            let idx = b
                .schema()
                .index_of(column)
                .map_err(|_| GuardRefusal::NoCountColumn {
                    column: column.clone(),
                })?;
            idxs.push(idx);
            let counts = arrow::compute::cast(b.column(idx), &arrow::datatypes::DataType::Int64)
                .map_err(|_| GuardRefusal::CountNotInteger {
                    column: column.clone(),
                })?;
            let counts = counts
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| GuardRefusal::CountNotInteger {
                    column: column.clone(),
                })?;
            for (m, c) in mask.iter_mut().zip(counts.iter()) {
                *m &= c.is_some_and(|c| c >= 0 && c as u64 >= k);
            }
        }
        let mask = BooleanArray::from(mask);
        dropped += (mask.len() - mask.true_count()) as u64;
        let filtered = filter_record_batch(&b, &mask).map_err(RoomError::engine)?;
        let keep: Vec<usize> = (0..filtered.num_columns())
            .filter(|i| !idxs.contains(i))
            .collect();
        kept.push(filtered.project(&keep).map_err(RoomError::engine)?);
    }
    Ok((kept, dropped))
}

/// Name of the column of distinct privacy units the host adds to a module's guarded table.
pub const UNITS_COLUMN: &str = "units";

/// A module table after the host's aggregation: one row per group (the table's columns but
/// the unit column), with [`UNITS_COLUMN`], groups below `k` units dropped.
#[derive(Debug)]
pub struct UnitCounted {
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub dropped: u64,
}

/// Guard a module's table by the privacy units it names: every value of `unit_column` must
/// be one of `units` (the privacy units of the run's inputs; a module cannot invent people),
/// the table is grouped by its other columns, each group counts its distinct units, and
/// groups with fewer than `k` are dropped. The unit column never leaves; a count the module
/// wrote is just another group column, so it claims nothing.
pub fn count_units(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    unit_column: &str,
    units: &std::collections::HashSet<String>,
    k: u64,
) -> std::result::Result<UnitCounted, GuardRefusal> {
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::row::{RowConverter, SortField};
    use std::collections::{BTreeMap, HashSet};

    let unit_idx = schema
        .index_of(unit_column)
        .map_err(|_| GuardRefusal::NoUnitColumn)?;
    let key_idx: Vec<usize> = (0..schema.fields().len())
        .filter(|i| *i != unit_idx)
        .collect();
    if key_idx
        .iter()
        .any(|i| schema.field(*i).name() == UNITS_COLUMN)
    {
        return Err(GuardRefusal::UnitsColumnTaken);
    }
    let fields: Vec<SortField> = key_idx
        .iter()
        .map(|i| SortField::new(schema.field(*i).data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(|_| GuardRefusal::UnsupportedTable)?;
    // Group key (row format) → distinct units. A BTreeMap keeps the output order stable.
    let mut groups: BTreeMap<arrow::row::OwnedRow, HashSet<String>> = BTreeMap::new();
    for b in batches {
        let unit = arrow::compute::cast(b.column(unit_idx), &DataType::Utf8)
            .map_err(|_| GuardRefusal::UnknownPrivacyUnit)?;
        let unit = unit
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or(GuardRefusal::UnknownPrivacyUnit)?;
        let cols: Vec<_> = key_idx.iter().map(|i| b.column(*i).clone()).collect();
        let rows = converter
            .convert_columns(&cols)
            .map_err(|_| GuardRefusal::UnsupportedTable)?;
        for (r, u) in rows.iter().zip(unit.iter()) {
            match u {
                Some(u) if units.contains(u) => {
                    groups.entry(r.owned()).or_default().insert(u.to_string());
                }
                _ => return Err(GuardRefusal::UnknownPrivacyUnit),
            }
        }
    }
    let total = groups.len() as u64;
    let kept: Vec<(arrow::row::OwnedRow, i64)> = groups
        .into_iter()
        .filter(|(_, u)| u.len() as u64 >= k)
        .map(|(r, u)| (r, u.len() as i64))
        .collect();
    let dropped = total - kept.len() as u64;
    let mut out_fields: Vec<Field> = key_idx.iter().map(|i| schema.field(*i).clone()).collect();
    out_fields.push(Field::new(UNITS_COLUMN, DataType::Int64, false));
    let out_schema = Arc::new(Schema::new(out_fields));
    let mut columns = converter
        .convert_rows(kept.iter().map(|(r, _)| r.row()))
        .map_err(|_| GuardRefusal::UnsupportedTable)?;
    columns.push(Arc::new(Int64Array::from_iter_values(
        kept.iter().map(|(_, n)| *n),
    )));
    let batch = RecordBatch::try_new(out_schema.clone(), columns)
        .map_err(|_| GuardRefusal::UnsupportedTable)?;
    Ok(UnitCounted {
        schema: out_schema,
        batches: vec![batch],
        dropped,
    })
}
