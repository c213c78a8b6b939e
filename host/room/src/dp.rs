//! Differential privacy for SQL releases: the host rewrites an approved query's output
//! aggregate into bounded per-unit contributions and releases it through OpenDP.
//!
//! A DP workload's query passes the query rules, and in addition (checked by [`plan`]):
//! its output is one aggregate (under projections that only pick and rename its columns),
//! whose input carries exactly one privacy unit, and whose aggregates are `COUNT(*)`,
//! `COUNT(x)`, `COUNT(DISTINCT <unit>)`, `SUM(x)` and `AVG(x)` (no FILTER, no ORDER BY in
//! the aggregate, no grouping sets), every `x` of SUM and AVG a column with contract
//! `dp.bounds`.
//!
//! The host then runs, instead of the query's aggregate, the same aggregate per (group,
//! unit): each row's value clamped into its bounds, the rows of one unit in one group
//! counted and summed. In Rust it keeps at most `max_groups_per_unit` groups per unit (the
//! first in the order of their keys: a choice that depends only on that unit's own rows),
//! clamps each unit's count to `max_rows_per_unit` and its sum to `max_rows_per_unit`
//! values, and adds up each group. A unit therefore changes at most `m` groups, each by at
//! most 1 unit, `c` rows and `c·max(|low|, |high|)` of a sum: the sensitivities the noise
//! is calibrated to. [`release`] spends the workload's ε in equal parts on the group keys
//! (OpenDP's threshold mechanism over the distinct-unit counts: a group is released only if
//! its noisy count reaches a threshold set by δ and by the minimum group size, so a rare
//! group's presence is not revealed) and on each other measure (OpenDP's Laplace or
//! Gaussian mechanism over the released groups). Every privacy figure is OpenDP's own
//! privacy map of the measurement that draws the noise (for Gaussian noise, its ρ of
//! zero-concentrated DP, turned into (ε, δ) by the standard bound ε = ρ + 2·sqrt(ρ·ln(1/δ)));
//! the host only calibrates the scale until each is within its share.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, cast, when};
use datafusion::prelude::lit;
use opendp::domains::{AtomDomain, MapDomain, VectorDomain};
use opendp::measurements::{
    make_gaussian, make_gaussian_threshold, make_laplace, make_laplace_threshold,
};
use opendp::measures::{Approximate, MaxDivergence, ZeroConcentratedDivergence};
use opendp::metrics::{AbsoluteDistance, L0PInfDistance, L1Distance, L2Distance};

use cleanroom_policy::contract::Dataset;
use cleanroom_policy::dp::{Epsilon, Mechanism};

use crate::error::DpRefusal;
use crate::rules::CheckedPlan;

type Refused<T> = std::result::Result<T, DpRefusal>;

/// What one released column of the aggregate is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate_ {
    /// `COUNT(DISTINCT unit)`: the threshold's noisy count.
    Units,
    /// `COUNT(*)`, `COUNT(x)`: measure `i`.
    Rows(usize),
    /// `SUM(x)`: measure `i`.
    Sum(usize),
    /// `AVG(x)`: measures `sum`, `count`.
    Avg { sum: usize, count: usize },
}

/// How one per-(group, unit) value is bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A row count: each unit adds at most `max_rows_per_unit`.
    Count,
    /// A sum of values clamped into `[low, high]`: each unit adds at most
    /// `max_rows_per_unit` of them.
    Sum { low: f64, high: f64 },
}

/// Where each output column comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Group(usize),
    Aggregate(usize),
}

/// The bounds of a release: the strictest over the inputs (each must declare `dp`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub max_groups_per_unit: u64,
    pub max_rows_per_unit: u64,
    pub delta: f64,
}

/// A DP workload's query, taken apart by [`plan`]: the per-(group, unit) plan to run, and
/// how to put the release together. Only [`plan`] makes one.
#[derive(Debug)]
pub struct DpQuery {
    per_unit: LogicalPlan,
    groups: usize,
    aggregates: Vec<Aggregate_>,
    measures: Vec<Measure>,
    output: Vec<(String, Source)>,
    group_fields: Vec<Field>,
    bounds: Bounds,
}

impl DpQuery {
    /// The plan the engine runs: one row per (group, unit), group columns first, then the
    /// unit, then one column per measure.
    pub fn per_unit_plan(&self) -> &LogicalPlan {
        &self.per_unit
    }
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }
}

fn unsupported(what: &'static str) -> DpRefusal {
    DpRefusal::Unsupported { what }
}

fn df(e: datafusion::error::DataFusionError) -> DpRefusal {
    DpRefusal::Rewrite {
        reason: e.find_root().to_string(),
    }
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

/// Take a checked plan apart for a DP release (see the module docs), with the contribution
/// bounds of `datasets` (the workload's inputs).
pub fn plan(checked: CheckedPlan, datasets: &[&Dataset]) -> Refused<DpQuery> {
    let (plan, units) = checked.into_parts();
    let [unit] = units.as_slice() else {
        return Err(DpRefusal::PrivacyUnits { found: units.len() });
    };
    let mut bounds = Bounds {
        max_groups_per_unit: u64::MAX,
        max_rows_per_unit: u64::MAX,
        delta: f64::MAX,
    };
    for d in datasets {
        let Some(dp) = &d.dp else {
            return Err(DpRefusal::NoBudget {
                dataset: d.name.get_ref().clone(),
            });
        };
        bounds.max_groups_per_unit = bounds.max_groups_per_unit.min(dp.max_groups_per_unit);
        bounds.max_rows_per_unit = bounds.max_rows_per_unit.min(dp.max_rows_per_unit);
        bounds.delta = bounds.delta.min(dp.delta);
    }
    let (output, a) = output_of(&plan)?;
    if a.group_expr
        .iter()
        .any(|g| matches!(g, Expr::GroupingSet(_)))
    {
        return Err(unsupported("GROUPING SETS, CUBE or ROLLUP"));
    }
    let value_bounds = |e: &Expr| -> Refused<(f64, f64)> {
        let Expr::Column(c) = strip_alias(e) else {
            return Err(unsupported(
                "SUM or AVG of an expression (use a bounded column)",
            ));
        };
        datasets
            .iter()
            .filter_map(|d| d.dp.as_ref()?.bounds.get(&c.name))
            .map(|[l, h]| (*l, *h))
            .reduce(|(l1, h1), (l2, h2)| (l1.max(l2), h1.min(h2)))
            .filter(|(l, h)| l <= h)
            .ok_or_else(|| DpRefusal::NoBounds {
                column: c.name.clone(),
            })
    };
    let clamp = |e: &Expr, (low, high): (f64, f64)| -> Refused<Expr> {
        let v = cast(e.clone(), DataType::Float64);
        when(v.clone().lt(lit(low)), lit(low))
            .when(v.clone().gt(lit(high)), lit(high))
            .otherwise(v)
            .map_err(df)
    };
    let mut inner: Vec<Expr> = Vec::new();
    let mut measures = Vec::new();
    let mut aggregates = Vec::new();
    for e in &a.aggr_expr {
        let Expr::AggregateFunction(f) = strip_alias(e) else {
            return Err(unsupported(
                "an aggregate output that is not one aggregate function",
            ));
        };
        let p = &f.params;
        if p.filter.is_some() || !p.order_by.is_empty() {
            return Err(unsupported("FILTER or ORDER BY inside an aggregate"));
        }
        let name = f.func.name().to_ascii_lowercase();
        let arg = || {
            p.args
                .first()
                .filter(|_| p.args.len() == 1)
                .ok_or(unsupported("an aggregate without exactly one argument"))
        };
        let mut add = |expr: Expr, m: Measure| {
            let i = measures.len();
            inner.push(expr.alias(format!("__cleanroom_dp_{i}")));
            measures.push(m);
            i
        };
        aggregates.push(match (name.as_str(), p.distinct) {
            ("count", true) => match strip_alias(arg()?) {
                Expr::Column(c) if c == unit || c.name == unit.name => Aggregate_::Units,
                _ => {
                    return Err(unsupported(
                        "COUNT(DISTINCT x) of anything but the privacy unit",
                    ));
                }
            },
            ("count", false) => Aggregate_::Rows(add(count(arg()?.clone()), Measure::Count)),
            ("sum", false) => {
                let (low, high) = value_bounds(arg()?)?;
                Aggregate_::Sum(add(
                    sum(clamp(arg()?, (low, high))?),
                    Measure::Sum { low, high },
                ))
            }
            ("avg", false) => {
                let (low, high) = value_bounds(arg()?)?;
                let s = add(sum(clamp(arg()?, (low, high))?), Measure::Sum { low, high });
                let c = add(count(arg()?.clone()), Measure::Count);
                Aggregate_::Avg { sum: s, count: c }
            }
            _ => {
                return Err(DpRefusal::Aggregate {
                    function: if p.distinct {
                        format!("{name}(DISTINCT ..)")
                    } else {
                        name
                    },
                });
            }
        });
    }
    let mut group_by = a.group_expr.clone();
    group_by.push(Expr::Column(unit.clone()).alias("__cleanroom_dp_unit"));
    let per_unit = LogicalPlanBuilder::from(a.input.as_ref().clone())
        .aggregate(group_by, inner)
        .map_err(df)?
        .build()
        .map_err(df)?;
    let groups = a.group_expr.len();
    let group_fields = a
        .schema
        .fields()
        .iter()
        .take(groups)
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Ok(DpQuery {
        per_unit,
        groups,
        aggregates,
        measures,
        output: output
            .into_iter()
            .map(|(n, i)| {
                let src = if i < groups {
                    Source::Group(i)
                } else {
                    Source::Aggregate(i - groups)
                };
                (n, src)
            })
            .collect(),
        group_fields,
        bounds,
    })
}

/// The output columns (name, index into the aggregate's schema) and the aggregate, through
/// projections that only pick and rename columns, and aliases.
fn output_of(plan: &LogicalPlan) -> Refused<(Vec<(String, usize)>, &Aggregate)> {
    match plan {
        LogicalPlan::Aggregate(a) => Ok((
            a.schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name().clone(), i))
                .collect(),
            a,
        )),
        LogicalPlan::SubqueryAlias(s) => output_of(&s.input),
        LogicalPlan::Projection(p) => {
            let (inner, a) = output_of(&p.input)?;
            let mut out = Vec::with_capacity(p.expr.len());
            for (e, f) in p.expr.iter().zip(p.schema.fields()) {
                let Expr::Column(c) = strip_alias(e) else {
                    return Err(unsupported(
                        "computing on a released aggregate (noise is added to each aggregate; compute on the result)",
                    ));
                };
                let i = p.input.schema().index_of_column(c).map_err(df)?;
                out.push((f.name().clone(), inner[i].1));
            }
            Ok((out, a))
        }
        LogicalPlan::Filter(_) => Err(unsupported(
            "HAVING (a condition on exact aggregates is not differentially private)",
        )),
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => Err(unsupported(
            "ORDER BY or LIMIT on the output (order the released table yourself)",
        )),
        _ => Err(unsupported("an output that is not an aggregate")),
    }
}

/// Each group's bounded contributions: one entry per group that at least one unit
/// contributes to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contributions {
    pub keys: Vec<Vec<ScalarValue>>,
    /// Distinct units per group (after each unit's groups were capped).
    pub units: Vec<i64>,
    /// Per measure, per group: the sum of the units' clamped values.
    pub values: Vec<Vec<f64>>,
}

/// Turn the per-(group, unit) batches of [`DpQuery::per_unit_plan`] into bounded
/// contributions per group.
pub fn bound(q: &DpQuery, batches: &[RecordBatch]) -> Refused<Contributions> {
    struct Row {
        key: Vec<ScalarValue>,
        values: Vec<f64>,
    }
    let mut by_unit: HashMap<ScalarValue, Vec<Row>> = HashMap::new();
    for b in batches {
        let unit_col = b.column(q.groups);
        let measure_cols: Vec<ArrayRef> = (0..q.measures.len())
            .map(|i| arrow::compute::cast(b.column(q.groups + 1 + i), &DataType::Float64))
            .collect::<Result<_, _>>()
            .map_err(|_| unsupported("a measure that is not numeric"))?;
        let measure_cols: Vec<&Float64Array> = measure_cols
            .iter()
            .map(|a| a.as_any().downcast_ref::<Float64Array>())
            .collect::<Option<_>>()
            .ok_or(unsupported("a measure that is not numeric"))?;
        for r in 0..b.num_rows() {
            let unit = ScalarValue::try_from_array(unit_col, r).map_err(df)?;
            if unit.is_null() {
                // Rows without a privacy unit belong to no one the budget protects; they are
                // not counted at all.
                continue;
            }
            let key = (0..q.groups)
                .map(|g| ScalarValue::try_from_array(b.column(g), r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(df)?;
            let values = measure_cols
                .iter()
                .map(|c| if c.is_null(r) { 0.0 } else { c.value(r) })
                .collect();
            by_unit.entry(unit).or_default().push(Row { key, values });
        }
    }
    let m = usize::try_from(q.bounds.max_groups_per_unit).unwrap_or(usize::MAX);
    let c = q.bounds.max_rows_per_unit as f64;
    let mut index: HashMap<Vec<ScalarValue>, usize> = HashMap::new();
    let mut out = Contributions {
        values: vec![Vec::new(); q.measures.len()],
        ..Default::default()
    };
    for (_, mut rows) in by_unit {
        rows.sort_by(|a, b| {
            a.key
                .partial_cmp(&b.key)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for row in rows.into_iter().take(m) {
            let g = *index.entry(row.key.clone()).or_insert_with(|| {
                out.keys.push(row.key);
                out.units.push(0);
                for v in &mut out.values {
                    v.push(0.0);
                }
                out.keys.len() - 1
            });
            out.units[g] += 1;
            for (i, (v, measure)) in row.values.iter().zip(&q.measures).enumerate() {
                out.values[i][g] += match *measure {
                    Measure::Count => v.clamp(0.0, c),
                    Measure::Sum { low, high } => v.clamp(c * low.min(0.0), c * high.max(0.0)),
                };
            }
        }
    }
    Ok(out)
}

/// What a release spends and with what noise.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub epsilon: Epsilon,
    pub mechanism: Mechanism,
    pub bounds: Bounds,
    /// The minimum group size: the threshold is never below it.
    pub min_units: u64,
}

/// A release: the groups that passed the threshold, their noisy counts and measures.
#[derive(Debug, Clone)]
pub struct Released {
    /// Indices into [`Contributions::keys`] of the released groups, in key order.
    pub groups: Vec<usize>,
    pub units: Vec<i64>,
    pub values: Vec<Vec<f64>>,
    /// The threshold the noisy unit counts had to reach.
    pub threshold: i64,
    /// ε each part spent by OpenDP's privacy maps (threshold first): their sum is at most
    /// the spec's ε.
    pub epsilons: Vec<f64>,
    /// δ the threshold spent (and, for Gaussian noise, the conversions to (ε, δ)).
    pub delta: f64,
    /// The noise scale of each part (threshold first), as calibrated.
    pub scales: Vec<f64>,
}

impl Released {
    pub fn epsilon_spent(&self) -> f64 {
        self.epsilons.iter().sum()
    }
}

fn noise(e: opendp::error::Error) -> DpRefusal {
    DpRefusal::Noise {
        reason: format!("{:?}", e.variant),
    }
}

/// A scale from `start` upwards whose privacy map is within `eps`: `start` if it is, else
/// found by doubling, then bisection (to a relative 1e-9); always one whose map was checked.
fn calibrate(start: f64, eps: f64, map: impl Fn(f64) -> Refused<f64>) -> Refused<f64> {
    let fits = |s: f64| -> Refused<bool> { Ok(map(s)? <= eps) };
    if fits(start)? {
        return Ok(start);
    }
    let mut high = start;
    let mut doublings = 0;
    while !fits(high)? {
        high *= 2.0;
        doublings += 1;
        if doublings > 64 || !high.is_finite() {
            return Err(DpRefusal::Noise {
                reason: "no noise scale meets the budget share".into(),
            });
        }
    }
    let mut low = high / 2.0;
    while (high - low) / high > 1e-9 {
        let mid = low + (high - low) / 2.0;
        if fits(mid)? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high)
}

/// Release `c` under `spec` (see the module docs).
pub fn release(c: &Contributions, measures: &[Measure], spec: &Spec) -> Refused<Released> {
    let parts = 1 + measures.len();
    let eps_each = spec.epsilon.as_f64() / parts as f64;
    let m = spec.bounds.max_groups_per_unit as f64;
    let rows = spec.bounds.max_rows_per_unit as f64;
    let d_in_keys = (spec.bounds.max_groups_per_unit as u32, m as i64, 1i64);
    let counts: HashMap<u64, i64> = c
        .units
        .iter()
        .enumerate()
        .map(|(g, n)| (g as u64, *n))
        .collect();
    let min_threshold = i64::try_from(spec.min_units.max(1)).unwrap_or(i64::MAX);

    // Group keys: the threshold mechanism over distinct-unit counts.
    let (kept, threshold, eps_keys, delta, key_scale): (HashMap<u64, i64>, i64, f64, f64, f64) =
        match spec.mechanism {
            Mechanism::Laplace => {
                let make = |scale: f64, t: i64| {
                    make_laplace_threshold::<_, _, Approximate<MaxDivergence>>(
                        MapDomain::new(AtomDomain::<u64>::default(), AtomDomain::<i64>::default()),
                        L0PInfDistance(AbsoluteDistance::<i64>::default()),
                        scale,
                        t,
                        None,
                    )
                    .map_err(noise)
                };
                let map = |scale: f64, t: i64| make(scale, t)?.map(&d_in_keys).map_err(noise);
                let scale = calibrate(m / eps_each, eps_each, |s| Ok(map(s, min_threshold)?.0))?;
                let t = threshold_for(min_threshold, spec.bounds.delta, |t| Ok(map(scale, t)?.1))?;
                let (e, d) = map(scale, t)?;
                (
                    make(scale, t)?.invoke(&counts).map_err(noise)?,
                    t,
                    e,
                    d,
                    scale,
                )
            }
            Mechanism::Gaussian => {
                // zCDP: ρ per part, converted to (ε, δ) by the standard bound
                // ε = ρ + 2·sqrt(ρ·ln(1/δ)), δ split between the threshold and the conversion.
                let make = |scale: f64, t: i64| {
                    make_gaussian_threshold::<_, _, Approximate<ZeroConcentratedDivergence>>(
                        MapDomain::new(AtomDomain::<u64>::default(), AtomDomain::<i64>::default()),
                        L0PInfDistance(AbsoluteDistance::<i64>::default()),
                        scale,
                        t,
                        None,
                    )
                    .map_err(noise)
                };
                let d_conv = spec.bounds.delta / (2.0 * parts as f64);
                let map = |scale: f64, t: i64| make(scale, t)?.map(&d_in_keys).map_err(noise);
                let scale = calibrate(m.sqrt() / eps_each, eps_each, |s| {
                    Ok(rho_to_epsilon(map(s, min_threshold)?.0, d_conv))
                })?;
                let t = threshold_for(min_threshold, spec.bounds.delta / 2.0, |t| {
                    Ok(map(scale, t)?.1)
                })?;
                let (rho, d) = map(scale, t)?;
                let (e, d) = (rho_to_epsilon(rho, d_conv), d + d_conv);
                (
                    make(scale, t)?.invoke(&counts).map_err(noise)?,
                    t,
                    e,
                    d,
                    scale,
                )
            }
        };
    let mut groups: Vec<usize> = kept.keys().map(|g| *g as usize).collect();
    groups.sort_by(|a, b| {
        c.keys[*a]
            .partial_cmp(&c.keys[*b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let units = groups.iter().map(|g| kept[&(*g as u64)]).collect();
    let mut epsilons = vec![eps_keys];
    let mut scales = vec![key_scale];
    let mut delta_total = delta;

    // Each measure over the released groups.
    let mut values = Vec::with_capacity(measures.len());
    for (i, measure) in measures.iter().enumerate() {
        let per_group = match *measure {
            Measure::Count => rows,
            Measure::Sum { low, high } => rows * low.abs().max(high.abs()),
        };
        let exact: Vec<f64> = groups.iter().map(|g| c.values[i][*g]).collect();
        if per_group == 0.0 {
            // Every value is 0 whatever the data: nothing to protect, nothing spent.
            values.push(exact);
            epsilons.push(0.0);
            scales.push(0.0);
            continue;
        }
        let d_conv = spec.bounds.delta / (2.0 * parts as f64);
        let (l1, l2) = (m * per_group, m.sqrt() * per_group);
        let (noisy, e, scale) = noisy_vector(&exact, spec.mechanism, l1, l2, eps_each, d_conv)?;
        if spec.mechanism == Mechanism::Gaussian {
            delta_total += d_conv;
        }
        values.push(noisy);
        epsilons.push(e);
        scales.push(scale);
    }
    Ok(Released {
        groups,
        units,
        values,
        threshold,
        epsilons,
        delta: delta_total,
        scales,
    })
}

/// `exact` with OpenDP's `mechanism` noise at the smallest scale whose privacy map is within
/// `eps` for a neighbour at L1 distance `l1` (Laplace) or L2 distance `l2` (Gaussian, its ρ
/// turned into ε at `delta`). Returns the noisy values, the ε the map accounts, the scale.
fn noisy_vector(
    exact: &[f64],
    mechanism: Mechanism,
    l1: f64,
    l2: f64,
    eps: f64,
    delta: f64,
) -> Refused<(Vec<f64>, f64, f64)> {
    let exact = exact.to_vec();
    match mechanism {
        Mechanism::Laplace => {
            let make = |s: f64| {
                make_laplace::<_, _, MaxDivergence>(
                    VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
                    L1Distance::<f64>::default(),
                    s,
                    None,
                )
                .map_err(noise)
            };
            let scale = calibrate(l1 / eps, eps, |s| make(s)?.map(&l1).map_err(noise))?;
            let meas = make(scale)?;
            Ok((
                meas.invoke(&exact).map_err(noise)?,
                meas.map(&l1).map_err(noise)?,
                scale,
            ))
        }
        Mechanism::Gaussian => {
            let make = |s: f64| {
                make_gaussian::<_, _, ZeroConcentratedDivergence>(
                    VectorDomain::new(AtomDomain::<f64>::new_non_nan()),
                    L2Distance::<f64>::default(),
                    s,
                    None,
                )
                .map_err(noise)
            };
            let scale = calibrate(l2 / eps, eps, |s| {
                Ok(rho_to_epsilon(make(s)?.map(&l2).map_err(noise)?, delta))
            })?;
            let meas = make(scale)?;
            Ok((
                meas.invoke(&exact).map_err(noise)?,
                rho_to_epsilon(meas.map(&l2).map_err(noise)?, delta),
                scale,
            ))
        }
    }
}

/// ε of ρ-zCDP at `delta` (Bun & Steinke 2016, Prop. 1.3).
fn rho_to_epsilon(rho: f64, delta: f64) -> f64 {
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The smallest threshold at least `min` whose δ (by `delta_of`) is at most `delta`.
fn threshold_for(min: i64, delta: f64, delta_of: impl Fn(i64) -> Refused<f64>) -> Refused<i64> {
    if delta_of(min)? <= delta {
        return Ok(min);
    }
    let mut high = min.max(1);
    while delta_of(high)? > delta {
        high = high.checked_mul(2).ok_or(DpRefusal::Noise {
            reason: "no threshold meets δ".into(),
        })?;
    }
    let mut low = high / 2;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if delta_of(mid)? <= delta {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(high.max(min))
}

/// The released table: the output's columns, in its order and with its names; group keys
/// as they are, counts as integers (rounded, at least 0), sums and averages as floats.
pub fn to_batch(q: &DpQuery, c: &Contributions, r: &Released) -> Refused<(SchemaRef, RecordBatch)> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let count = |v: &[f64]| -> ArrayRef {
        std::sync::Arc::new(Int64Array::from_iter_values(
            v.iter().map(|x| x.round().max(0.0) as i64),
        ))
    };
    for (name, src) in &q.output {
        let (field, col): (Field, ArrayRef) = match *src {
            Source::Group(g) => {
                let f = q.group_fields[g].clone().with_name(name);
                let col = if r.groups.is_empty() {
                    arrow::array::new_empty_array(f.data_type())
                } else {
                    ScalarValue::iter_to_array(r.groups.iter().map(|i| c.keys[*i][g].clone()))
                        .map_err(df)?
                };
                (f, col)
            }
            Source::Aggregate(a) => match q.aggregates[a] {
                Aggregate_::Units => (
                    Field::new(name, DataType::Int64, false),
                    std::sync::Arc::new(Int64Array::from_iter_values(
                        r.units.iter().map(|n| (*n).max(0)),
                    )),
                ),
                Aggregate_::Rows(i) => (
                    Field::new(name, DataType::Int64, false),
                    count(&r.values[i]),
                ),
                Aggregate_::Sum(i) => (
                    Field::new(name, DataType::Float64, false),
                    std::sync::Arc::new(Float64Array::from(r.values[i].clone())),
                ),
                Aggregate_::Avg { sum, count } => (
                    Field::new(name, DataType::Float64, false),
                    std::sync::Arc::new(Float64Array::from_iter_values(
                        r.values[sum]
                            .iter()
                            .zip(&r.values[count])
                            .map(|(s, n)| s / n.max(1.0)),
                    )),
                ),
            },
        };
        fields.push(field);
        columns.push(col);
    }
    let schema = std::sync::Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| DpRefusal::Rewrite {
        reason: e.to_string(),
    })?;
    Ok((schema, batch))
}

/// A module's metrics under `dp.metric_bounds`: exactly the metrics named there (a metric
/// the module did not write counts as its lower bound; whether a metric is written is the
/// module's choice, so it must not decide what is released), each clamped into its bounds
/// (a NaN to its lower bound), with OpenDP noise calibrated to the whole vector's
/// sensitivity: one unit may move each metric across its whole range. A metric the module
/// wrote that is not named is refused, without its name (module-chosen text). Returns the
/// noisy metrics and the ε OpenDP's map accounts.
pub fn noisy_metrics(
    written: &std::collections::BTreeMap<String, f64>,
    bounds: &std::collections::BTreeMap<String, [f64; 2]>,
    epsilon: Epsilon,
    mechanism: Mechanism,
    delta: f64,
) -> Refused<(std::collections::BTreeMap<String, f64>, f64)> {
    if written.keys().any(|k| !bounds.contains_key(k)) {
        return Err(DpRefusal::MetricWithoutBounds);
    }
    let exact: Vec<f64> = bounds
        .iter()
        .map(|(name, [low, high])| {
            let v = written.get(name).copied().unwrap_or(*low);
            if v.is_nan() {
                *low
            } else {
                v.clamp(*low, *high)
            }
        })
        .collect();
    let ranges: Vec<f64> = bounds.values().map(|[l, h]| h - l).collect();
    let l1: f64 = ranges.iter().sum();
    let l2 = ranges.iter().map(|r| r * r).sum::<f64>().sqrt();
    let (noisy, spent) = if l1 == 0.0 {
        (exact, 0.0)
    } else {
        let (noisy, spent, _) = noisy_vector(&exact, mechanism, l1, l2, epsilon.as_f64(), delta)?;
        (noisy, spent)
    };
    Ok((bounds.keys().cloned().zip(noisy).collect(), spent))
}
