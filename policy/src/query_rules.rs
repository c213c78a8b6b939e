//! The query rules: which functions a query may use and what each dataset's columns may do,
//! as data. The room applies them to the DataFusion logical plan of every query (the
//! approved SQL before any key is requested, and a module's `query` import); this module
//! only says what the rules are.
//!
//! - Aggregates: [`ALLOWED_AGGREGATES`]. COUNT (plain columns or `*`, DISTINCT allowed), SUM
//!   and AVG (of metrics or of values already aggregated), MIN and MAX (of `min_max` columns
//!   only). Nothing that can return an input value or a concatenation of them (string_agg,
//!   array_agg, first_value, median, ...), no window function, no FILTER clause.
//! - Scalar functions: [`ALLOWED_SCALAR_FUNCTIONS`] (arithmetic, rounding, casts, simple
//!   string and date functions); operators and CAST are always allowed.
//! - Columns: by [`ColumnRole`], declared per dataset in `[datasets.columns]`.

use crate::contract::{DataFormat, Dataset};

/// Aggregate functions a query may use (DataFusion's names).
pub const ALLOWED_AGGREGATES: &[&str] = &["count", "sum", "avg", "mean", "min", "max"];

/// The aggregates that return one row's value: only on `min_max` columns.
pub const VALUE_AGGREGATES: &[&str] = &["min", "max"];

/// The aggregates whose argument must be a metric (or an already aggregated value).
pub const METRIC_AGGREGATES: &[&str] = &["sum", "avg", "mean"];

/// Scalar functions a query may use anywhere (DataFusion's names).
pub const ALLOWED_SCALAR_FUNCTIONS: &[&str] = &[
    // numbers
    "abs",
    "ceil",
    "floor",
    "round",
    "trunc",
    "signum",
    "ln",
    "log",
    "log2",
    "log10",
    "exp",
    "sqrt",
    "power",
    "pow",
    "least",
    "greatest",
    // nulls
    "coalesce",
    "nullif",
    "nvl",
    "ifnull",
    // strings
    "lower",
    "upper",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "length",
    "char_length",
    "character_length",
    "substr",
    "substring",
    "left",
    "right",
    "starts_with",
    "ends_with",
    // dates and times
    "date_trunc",
    "date_part",
    "datepart",
    "date_bin",
    "to_timestamp",
    "to_timestamp_seconds",
    "to_date",
    "from_unixtime",
    "make_date",
];

/// What a column of a dataset may do in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Grouped by, filtered on and released as is.
    Dimension,
    /// Reaches the output only inside COUNT, SUM or AVG (every `min_max` column is a metric).
    Metric,
    /// Its single values may be released by MIN and MAX.
    MinMax,
    /// An equi-join key (and intermediate grouping that does not reach the output).
    JoinKey,
    /// Used in WHERE, HAVING and join conditions (every dimension is a filter).
    Filter,
}

impl ColumnRole {
    /// How the role is spelled in `[datasets.columns]`, for errors and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnRole::Dimension => "dimensions",
            ColumnRole::Metric => "metrics",
            ColumnRole::MinMax => "min_max",
            ColumnRole::JoinKey => "join_keys",
            ColumnRole::Filter => "filters",
        }
    }
}

impl std::fmt::Display for ColumnRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Dataset {
    /// Whether `column` of this dataset may play `role`. A dataset without
    /// `[datasets.columns]` lets every allowed field play every role (the legacy rules,
    /// warned by [`crate::Contract::privacy_warnings`]); a column that is not an allowed
    /// field plays none.
    pub fn column_has_role(&self, column: &str, role: ColumnRole) -> bool {
        if self.format == DataFormat::File
            || !self.allowed_fields.iter().any(|f| f.get_ref() == column)
        {
            return false;
        }
        let Some(r) = &self.columns else {
            return true;
        };
        let listed = |l: &[toml::Spanned<String>]| l.iter().any(|f| f.get_ref() == column);
        match role {
            ColumnRole::Dimension => listed(&r.dimensions),
            ColumnRole::Metric => listed(&r.metrics) || listed(&r.min_max),
            ColumnRole::MinMax => listed(&r.min_max),
            ColumnRole::JoinKey => listed(&r.join_keys),
            ColumnRole::Filter => listed(&r.dimensions) || listed(&r.filters),
        }
    }

    /// The privacy unit column, if the dataset declares one.
    pub fn privacy_unit(&self) -> Option<&str> {
        self.privacy_unit.as_ref().map(|u| u.get_ref().as_str())
    }
}

/// Whether `name` (DataFusion's, lower case) is an aggregate a query may use.
pub fn aggregate_allowed(name: &str) -> bool {
    ALLOWED_AGGREGATES.contains(&name)
}

/// Whether `name` (DataFusion's, lower case) is a scalar function a query may use.
pub fn scalar_function_allowed(name: &str) -> bool {
    ALLOWED_SCALAR_FUNCTIONS.contains(&name)
}
