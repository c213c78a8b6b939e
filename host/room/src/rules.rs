//! The query rules, applied to the DataFusion logical plan of a query as planned (before the
//! optimizer rewrites it): which functions it may use, what each dataset's columns may do
//! (`cleanroom_policy::query_rules`), which joins it may make, and, for a released output,
//! where the privacy units of its inputs are so the guard can count them.
//!
//! The check follows every column of every plan node back to the dataset columns it is
//! computed from ([`Lineage`]), and whether they were aggregated on the way. Then:
//!
//! - an aggregate is one of the allowed ones: COUNT of plain columns or `*` (DISTINCT
//!   allowed), SUM/AVG whose un-aggregated inputs are metrics, MIN/MAX of `min_max` columns
//!   only; no FILTER clause; no window function at all;
//! - every scalar function is on the allow-list; no subquery expression, no GROUPING SETS,
//!   no UNNEST, no VALUES, no table function: rows come only from the contract's datasets;
//! - a join has an equality on declared join keys (plain columns on both sides; as planned
//!   from SQL, the `left = right` conjuncts of its ON condition); its other conditions, WHERE
//!   and HAVING use only dimensions, filter columns and aggregates;
//! - for a released output, every column reaching it is computed from dimensions and
//!   aggregates only (a join key, a metric or a privacy unit never leaves as is), and the
//!   privacy unit of every scan of a dataset that declares one reaches the output's aggregate
//!   as a plain column (so the host can count distinct units per group).
//!
//! Only [`check`] makes a [`CheckedPlan`]: the engine executes nothing else.

use std::collections::BTreeSet;

use cleanroom_policy::contract::Dataset;
use cleanroom_policy::query_rules::{
    self, ColumnRole, METRIC_AGGREGATES, VALUE_AGGREGATES, aggregate_allowed,
};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Aggregate, Distinct, LogicalPlan, Operator};
use datafusion::prelude::Expr;

use crate::error::{QueryRefusal, RuleViolation};

/// Where a query's result goes, which decides the rules on its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Released (after the guard) to the output recipients: only dimensions and aggregates
    /// may reach it, and the privacy units must reach its aggregate.
    Release,
    /// Returned to a module inside the sandbox (`query` import): the function and join rules
    /// hold, the result may hold any allowed column (it never leaves but through the guards).
    Sandbox,
}

/// A dataset column as scanned: which scan (a dataset joined with itself is two), which
/// dataset, which column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Base {
    scan: usize,
    dataset: String,
    column: String,
}

/// What a plan column is computed from.
#[derive(Debug, Clone, Default)]
struct Lineage {
    /// Dataset columns whose row values reach it without passing through an aggregate.
    raw: BTreeSet<Base>,
    /// Whether aggregated values reach it.
    aggregated: bool,
    /// The dataset column it is, unchanged (a plain column, or a group key that is one).
    identity: Option<Base>,
}

impl Lineage {
    fn constant() -> Self {
        Self::default()
    }
    fn merge(&mut self, other: &Lineage) {
        self.raw.extend(other.raw.iter().cloned());
        self.aggregated |= other.aggregated;
        self.identity = None;
    }
}

/// A refusal while checking: the violation, and the plan node it was found at.
struct Refused {
    violation: RuleViolation,
    node: Option<String>,
}

impl From<RuleViolation> for Refused {
    fn from(violation: RuleViolation) -> Self {
        Refused {
            violation,
            node: None,
        }
    }
}

type Checked<T> = std::result::Result<T, Refused>;

/// A plan the query rules admit. For a released output, `units` are the columns of the
/// output aggregate's input holding each scanned dataset's privacy unit.
#[derive(Debug)]
pub struct CheckedPlan {
    plan: LogicalPlan,
    units: Vec<Column>,
}

impl CheckedPlan {
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }
    /// The plan and the privacy unit columns of its output aggregate's input (empty when no
    /// input declares a unit, or for a sandbox query).
    pub fn into_parts(self) -> (LogicalPlan, Vec<Column>) {
        (self.plan, self.units)
    }
}

/// Check `plan` against the rules of `datasets` (the workload's inputs) for `destination`.
pub fn check(
    plan: LogicalPlan,
    datasets: &[&Dataset],
    destination: Destination,
) -> Result<CheckedPlan, QueryRefusal> {
    let refuse = |r: Refused, plan: &LogicalPlan| QueryRefusal::Rule {
        violation: r.violation,
        node: r.node.unwrap_or_else(|| plan.display().to_string()),
    };
    let mut walker = Walker {
        datasets,
        scans: Vec::new(),
    };
    let lineage = walker.walk(&plan).map_err(|r| refuse(r, &plan))?;
    if destination == Destination::Sandbox {
        return Ok(CheckedPlan {
            plan,
            units: Vec::new(),
        });
    }
    for l in &lineage {
        if let Some(b) = l
            .raw
            .iter()
            .find(|b| !walker.has_role(b, ColumnRole::Dimension))
        {
            return Err(refuse(
                RuleViolation::NotReleasable {
                    dataset: b.dataset.clone(),
                    column: b.column.clone(),
                }
                .into(),
                &plan,
            ));
        }
    }
    let units = walker.units(&plan).map_err(|r| refuse(r, &plan))?;
    Ok(CheckedPlan { plan, units })
}

struct Walker<'a> {
    datasets: &'a [&'a Dataset],
    /// The dataset of each table scan met, in order.
    scans: Vec<String>,
}

impl Walker<'_> {
    fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets
            .iter()
            .copied()
            .find(|d| d.name.get_ref() == name)
    }

    fn has_role(&self, b: &Base, role: ColumnRole) -> bool {
        self.dataset(&b.dataset)
            .is_some_and(|d| d.column_has_role(&b.column, role))
    }

    fn require_role(&self, l: &Lineage, role: ColumnRole) -> Checked<()> {
        let ok_for = |b: &Base| {
            self.has_role(b, role)
                || (role == ColumnRole::Filter && self.has_role(b, ColumnRole::Dimension))
        };
        match l.raw.iter().find(|b| !ok_for(b)) {
            None => Ok(()),
            Some(b) => {
                let (dataset, column) = (b.dataset.clone(), b.column.clone());
                Err(match role {
                    ColumnRole::Filter => RuleViolation::NotFilterable { dataset, column },
                    ColumnRole::JoinKey => RuleViolation::NotAJoinKey { dataset, column },
                    ColumnRole::Dimension => RuleViolation::NotReleasable { dataset, column },
                    ColumnRole::Metric | ColumnRole::MinMax => {
                        RuleViolation::NotAMetric { dataset, column }
                    }
                }
                .into())
            }
        }
    }

    fn walk(&mut self, plan: &LogicalPlan) -> Checked<Vec<Lineage>> {
        self.walk_node(plan).map_err(|mut r| {
            r.node.get_or_insert_with(|| plan.display().to_string());
            r
        })
    }

    fn walk_node(&mut self, plan: &LogicalPlan) -> Checked<Vec<Lineage>> {
        match plan {
            LogicalPlan::TableScan(t) => {
                let name = t.table_name.table().to_string();
                if self.dataset(&name).is_none() {
                    return Err(RuleViolation::RowSource { table: name }.into());
                }
                if !t.filters.is_empty() {
                    return Err(RuleViolation::Unsupported {
                        what: "a scan with pushed-down filters",
                    }
                    .into());
                }
                let scan = self.scans.len();
                self.scans.push(name.clone());
                Ok(t.projected_schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let b = Base {
                            scan,
                            dataset: name.clone(),
                            column: f.name().clone(),
                        };
                        Lineage {
                            raw: BTreeSet::from([b.clone()]),
                            aggregated: false,
                            identity: Some(b),
                        }
                    })
                    .collect())
            }
            LogicalPlan::Projection(p) => {
                let input = self.walk(&p.input)?;
                p.expr
                    .iter()
                    .map(|e| expr_lineage(e, p.input.schema(), &input))
                    .collect()
            }
            LogicalPlan::Filter(f) => {
                let input = self.walk(&f.input)?;
                let l = expr_lineage(&f.predicate, f.input.schema(), &input)?;
                self.require_role(&l, ColumnRole::Filter)?;
                Ok(input)
            }
            LogicalPlan::Aggregate(a) => self.aggregate(a),
            LogicalPlan::Sort(s) => {
                let input = self.walk(&s.input)?;
                for e in &s.expr {
                    expr_lineage(&e.expr, s.input.schema(), &input)?;
                }
                Ok(input)
            }
            LogicalPlan::Limit(l) => self.walk(&l.input),
            LogicalPlan::SubqueryAlias(s) => self.walk(&s.input),
            LogicalPlan::Repartition(r) => self.walk(&r.input),
            LogicalPlan::Distinct(Distinct::All(input)) => self.walk(input),
            LogicalPlan::Distinct(Distinct::On(_)) => Err(RuleViolation::Unsupported {
                what: "DISTINCT ON (it picks one row per key)",
            }
            .into()),
            LogicalPlan::Join(j) => {
                let left = self.walk(&j.left)?;
                let right = self.walk(&j.right)?;
                // Equality keys: the planner's `on` pairs, and (as planned from SQL, before
                // the optimizer extracts them) each `left = right` conjunct of the condition.
                let mut keys = Vec::new();
                for (l, r) in &j.on {
                    keys.push((
                        expr_lineage(l, j.left.schema(), &left)?,
                        expr_lineage(r, j.right.schema(), &right)?,
                    ));
                }
                let mut rest = Vec::new();
                for conjunct in j.filter.iter().flat_map(split_conjunction) {
                    if let Expr::BinaryExpr(b) = conjunct
                        && b.op == Operator::Eq
                    {
                        let side = |e: &Expr, schema: &DFSchema, l: &[Lineage]| {
                            let cols = e.column_refs();
                            (!cols.is_empty() && cols.iter().all(|c| schema.has_column(c)))
                                .then(|| expr_lineage(e, schema, l))
                        };
                        let (ls, rs) = (j.left.schema(), j.right.schema());
                        match (side(&b.left, ls, &left), side(&b.right, rs, &right)) {
                            (Some(l), Some(r)) => {
                                keys.push((l?, r?));
                                continue;
                            }
                            _ => {
                                if let (Some(l), Some(r)) =
                                    (side(&b.right, ls, &left), side(&b.left, rs, &right))
                                {
                                    keys.push((l?, r?));
                                    continue;
                                }
                            }
                        }
                    }
                    rest.push(conjunct);
                }
                if keys.is_empty() {
                    return Err(RuleViolation::JoinWithoutKey.into());
                }
                for (l, r) in &keys {
                    for side in [l, r] {
                        if side.identity.is_none() || side.aggregated {
                            return Err(RuleViolation::JoinKeyNotAColumn.into());
                        }
                        self.require_role(side, ColumnRole::JoinKey)?;
                    }
                }
                if !rest.is_empty() {
                    let both: Vec<Lineage> = left.iter().chain(&right).cloned().collect();
                    let joined =
                        DFSchema::join(j.left.schema(), j.right.schema()).map_err(|_| {
                            RuleViolation::Unsupported {
                                what: "a join whose sides share a column name",
                            }
                        })?;
                    for conjunct in rest {
                        let l = expr_lineage(conjunct, &joined, &both)?;
                        self.require_role(&l, ColumnRole::Filter)?;
                    }
                }
                let out = match j.join_type {
                    JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                        left.into_iter().chain(right).collect()
                    }
                    JoinType::LeftSemi | JoinType::LeftAnti => left,
                    JoinType::RightSemi | JoinType::RightAnti => right,
                    _ => {
                        return Err(RuleViolation::Unsupported {
                            what: "a mark join",
                        }
                        .into());
                    }
                };
                if out.len() != j.schema.fields().len() {
                    return Err(RuleViolation::Unsupported {
                        what: "a join of this shape",
                    }
                    .into());
                }
                Ok(out)
            }
            LogicalPlan::Union(u) => {
                let mut out: Option<Vec<Lineage>> = None;
                for input in &u.inputs {
                    let l = self.walk(input)?;
                    out = Some(match out {
                        None => l,
                        Some(mut acc) => {
                            for (a, b) in acc.iter_mut().zip(&l) {
                                let same = a.identity.is_some() && a.identity == b.identity;
                                a.merge(b);
                                if same {
                                    a.identity = b.identity.clone();
                                }
                            }
                            acc
                        }
                    });
                }
                Ok(out.unwrap_or_default())
            }
            LogicalPlan::EmptyRelation(e) => Ok(e
                .schema
                .fields()
                .iter()
                .map(|_| Lineage::constant())
                .collect()),
            LogicalPlan::Values(_) => Err(RuleViolation::RowSource {
                table: "VALUES".into(),
            }
            .into()),
            LogicalPlan::Window(w) => Err(RuleViolation::WindowFunction {
                function: w
                    .window_expr
                    .iter()
                    .find_map(window_name)
                    .unwrap_or_else(|| "window".into()),
            }
            .into()),
            LogicalPlan::Subquery(_) => Err(RuleViolation::Unsupported {
                what: "a subquery expression (write it as a join)",
            }
            .into()),
            LogicalPlan::Unnest(_) => Err(RuleViolation::Unsupported {
                what: "UNNEST (it multiplies rows)",
            }
            .into()),
            LogicalPlan::RecursiveQuery(_) => Err(RuleViolation::Unsupported {
                what: "a recursive query",
            }
            .into()),
            _ => Err(RuleViolation::Unsupported {
                what: "this kind of statement",
            }
            .into()),
        }
    }

    fn aggregate(&mut self, a: &Aggregate) -> Checked<Vec<Lineage>> {
        let input = self.walk(&a.input)?;
        let schema = a.input.schema();
        let mut out = Vec::with_capacity(a.group_expr.len() + a.aggr_expr.len());
        for g in &a.group_expr {
            if matches!(g, Expr::GroupingSet(_)) {
                return Err(RuleViolation::Unsupported {
                    what: "GROUPING SETS, ROLLUP and CUBE",
                }
                .into());
            }
            out.push(expr_lineage(g, schema, &input)?);
        }
        for e in &a.aggr_expr {
            let inner = strip_alias(e);
            let Expr::AggregateFunction(f) = inner else {
                return Err(RuleViolation::Unsupported {
                    what: "an aggregate expression that is not a plain aggregate call",
                }
                .into());
            };
            let name = f.func.name().to_ascii_lowercase();
            if !aggregate_allowed(&name) {
                return Err(RuleViolation::AggregateNotAllowed { function: name }.into());
            }
            if f.params.filter.is_some() {
                return Err(RuleViolation::AggregateFilter.into());
            }
            if !f.params.order_by.is_empty() {
                return Err(RuleViolation::Unsupported {
                    what: "ORDER BY inside an aggregate",
                }
                .into());
            }
            let mut arg = Lineage::constant();
            for a in &f.params.args {
                arg.merge(&expr_lineage(a, schema, &input)?);
            }
            if name == "count" {
                if !f
                    .params
                    .args
                    .iter()
                    .all(|a| matches!(strip_alias(a), Expr::Column(_) | Expr::Literal(..)))
                {
                    return Err(RuleViolation::CountOfExpression.into());
                }
            } else if METRIC_AGGREGATES.contains(&name.as_str()) {
                self.require_role(&arg, ColumnRole::Metric)
                    .map_err(|_| self.not_a_metric(&name, &arg))?;
            } else if VALUE_AGGREGATES.contains(&name.as_str()) {
                if arg.aggregated {
                    return Err(RuleViolation::MinMaxOfAggregate { function: name }.into());
                }
                if let Some(b) = arg
                    .raw
                    .iter()
                    .find(|b| !self.has_role(b, ColumnRole::MinMax))
                {
                    return Err(RuleViolation::MinMaxNotDeclared {
                        function: name,
                        dataset: b.dataset.clone(),
                        column: b.column.clone(),
                    }
                    .into());
                }
            }
            out.push(Lineage {
                raw: BTreeSet::new(),
                aggregated: true,
                identity: None,
            });
        }
        Ok(out)
    }

    fn not_a_metric(&self, function: &str, arg: &Lineage) -> Refused {
        let b = arg
            .raw
            .iter()
            .find(|b| !self.has_role(b, ColumnRole::Metric))
            .cloned()
            .unwrap_or(Base {
                scan: 0,
                dataset: String::new(),
                column: String::new(),
            });
        RuleViolation::AggregateOfNonMetric {
            function: function.to_string(),
            dataset: b.dataset,
            column: b.column,
        }
        .into()
    }

    /// The columns of the output aggregate's input holding the privacy unit of every scan of
    /// a dataset that declares one. Every scan is below that aggregate (the nodes above it
    /// have one input each), so walking its input alone meets them all.
    fn units(&self, plan: &LogicalPlan) -> Checked<Vec<Column>> {
        let Some(agg) = top_aggregate(plan) else {
            // Not an aggregate: the guard refuses it (NotAggregate) when it adds its count.
            return Ok(Vec::new());
        };
        let mut inner = Walker {
            datasets: self.datasets,
            scans: Vec::new(),
        };
        let input = inner.walk(&agg.input)?;
        let schema = agg.input.schema();
        let mut units = Vec::new();
        for (scan, dataset) in inner.scans.iter().enumerate() {
            let Some(column) = self.dataset(dataset).and_then(|d| d.privacy_unit()) else {
                continue;
            };
            let found = input.iter().position(|l| {
                !l.aggregated
                    && l.identity.as_ref().is_some_and(|b| {
                        b.scan == scan && &b.dataset == dataset && b.column == column
                    })
            });
            match found {
                Some(i) => units.push(Column::from(schema.qualified_field(i))),
                None => {
                    return Err(RuleViolation::PrivacyUnitNotTracked {
                        dataset: dataset.clone(),
                        column: column.to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(units)
    }
}

/// The datasets scanned under `plan`.
fn scanned(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = plan.apply(|p| {
        if let LogicalPlan::TableScan(t) = p {
            out.insert(t.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Whether some inner join in `plan` has `dataset` on one side and a dataset `querier`
/// holds on the other.
fn inner_joined(plan: &LogicalPlan, dataset: &str, querier: &dyn Fn(&str) -> bool) -> bool {
    let mut found = false;
    let _ = plan.apply(|p| {
        if let LogicalPlan::Join(j) = p
            && j.join_type == JoinType::Inner
        {
            let (l, r) = (scanned(&j.left), scanned(&j.right));
            let holds = |side: &BTreeSet<String>| side.iter().any(|n| querier(n));
            if (l.contains(dataset) && holds(&r)) || (r.contains(dataset) && holds(&l)) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The contract's `join_required` rule for a released output: every dataset that sets it
/// and that the plan reads is inner-joined with a dataset of the querier (owned by one of
/// `recipients`, the workload's output recipients), unless the querier owns it.
pub fn check_join_required(
    plan: &LogicalPlan,
    datasets: &[&Dataset],
    recipients: &[String],
) -> Result<(), QueryRefusal> {
    let owner_of = |name: &str| {
        datasets
            .iter()
            .find(|d| d.name.get_ref() == name)
            .map(|d| d.owner.get_ref().as_str())
    };
    let querier = |name: &str| owner_of(name).is_some_and(|o| recipients.iter().any(|r| r == o));
    let read = scanned(plan);
    for d in datasets.iter().filter(|d| d.join_required) {
        let name = d.name.get_ref();
        if read.contains(name) && !querier(name) && !inner_joined(plan, name, &querier) {
            return Err(QueryRefusal::Rule {
                violation: RuleViolation::JoinRequired {
                    dataset: name.clone(),
                },
                node: plan.display().to_string(),
            });
        }
    }
    Ok(())
}

/// The aggregate whose groups are the output's rows: the topmost one, under projections,
/// sorts, limits, filters (HAVING) and aliases; the same path the guard's count follows.
pub fn top_aggregate(plan: &LogicalPlan) -> Option<&Aggregate> {
    match plan {
        LogicalPlan::Aggregate(a) => Some(a),
        LogicalPlan::Projection(p) => top_aggregate(&p.input),
        LogicalPlan::Sort(s) => top_aggregate(&s.input),
        LogicalPlan::Limit(l) => top_aggregate(&l.input),
        LogicalPlan::Filter(f) => top_aggregate(&f.input),
        LogicalPlan::SubqueryAlias(s) => top_aggregate(&s.input),
        _ => None,
    }
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn window_name(e: &Expr) -> Option<String> {
    match strip_alias(e) {
        Expr::WindowFunction(w) => Some(w.fun.name().to_string()),
        _ => None,
    }
}

/// The lineage of `expr` over an input with `schema` and `input` lineage, after checking
/// every function in it.
fn expr_lineage(expr: &Expr, schema: &DFSchema, input: &[Lineage]) -> Checked<Lineage> {
    check_functions(expr)?;
    if let Expr::Column(c) = strip_alias(expr) {
        return column_lineage(c, schema, input);
    }
    let mut out = Lineage::constant();
    for c in expr.column_refs() {
        out.merge(&column_lineage(c, schema, input)?);
    }
    Ok(out)
}

fn column_lineage(c: &Column, schema: &DFSchema, input: &[Lineage]) -> Checked<Lineage> {
    schema
        .index_of_column(c)
        .ok()
        .and_then(|i| input.get(i))
        .cloned()
        .ok_or_else(|| {
            RuleViolation::Unsupported {
                what: "a column the rules cannot follow",
            }
            .into()
        })
}

/// Every scalar function in `expr` is allowed, and it holds nothing the rules refuse.
fn check_functions(expr: &Expr) -> Checked<()> {
    let mut refused: Option<RuleViolation> = None;
    let _ = expr.apply(|e| {
        let v = match e {
            Expr::ScalarFunction(f) => {
                let name = f.func.name().to_ascii_lowercase();
                (!query_rules::scalar_function_allowed(&name))
                    .then_some(RuleViolation::ScalarFunctionNotAllowed { function: name })
            }
            Expr::AggregateFunction(f) => Some(RuleViolation::AggregateNotAllowed {
                function: f.func.name().to_ascii_lowercase(),
            }),
            Expr::WindowFunction(w) => Some(RuleViolation::WindowFunction {
                function: w.fun.name().to_string(),
            }),
            Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::ScalarSubquery(_)
            | Expr::SetComparison(_)
            | Expr::OuterReferenceColumn(..) => Some(RuleViolation::Unsupported {
                what: "a subquery expression (write it as a join)",
            }),
            Expr::GroupingSet(_) => Some(RuleViolation::Unsupported {
                what: "GROUPING SETS, ROLLUP and CUBE",
            }),
            Expr::Unnest(_) => Some(RuleViolation::Unsupported {
                what: "UNNEST (it multiplies rows)",
            }),
            Expr::Placeholder(_) | Expr::ScalarVariable(..) => Some(RuleViolation::Unsupported {
                what: "placeholders and variables",
            }),
            Expr::HigherOrderFunction(_) | Expr::Lambda(_) | Expr::LambdaVariable(_) => {
                Some(RuleViolation::Unsupported {
                    what: "lambda functions",
                })
            }
            _ => None,
        };
        match v {
            Some(v) => {
                refused = Some(v);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    match refused {
        Some(v) => Err(v.into()),
        None => Ok(()),
    }
}

/// The inputs of a workload, as datasets of the contract (unknown names are skipped: the
/// policy has already refused them).
pub fn inputs<'c>(contract: &'c cleanroom_policy::Contract, names: &[String]) -> Vec<&'c Dataset> {
    names.iter().filter_map(|n| contract.dataset(n)).collect()
}
