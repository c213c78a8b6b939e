//! The room's errors: one variant per violation, carrying the inputs they concern (file,
//! member, dataset, column names; never data values, never module-chosen text).

use cleanroom_attest::AttestError;
use cleanroom_formats::kbs_protocol::RefusalKind;
use cleanroom_formats::{ErrorClass, FormatError};
use cleanroom_policy::PolicyError;
use cleanroom_verify::audit::AuditError;

use crate::sandbox::SandboxError;

/// Why the query's plan was refused, before anything was executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryRefusal {
    /// DataFusion refused the SQL at planning (syntax, types, unknown function). Planning
    /// errors name columns and types, never data values.
    #[error("the query does not plan: {reason}")]
    DoesNotPlan { reason: String },
    #[error("no column `{column}` in the input views")]
    UnknownColumn { column: String },
    #[error(
        "output must be an aggregate (GROUP BY or aggregate functions), found `{node}` where the aggregate should be"
    )]
    NotAggregate { node: String },
    #[error("`{column}` is reserved")]
    ReservedColumn { column: String },
    /// A query rule (`crate::rules`) refused the plan, at `node` (one line of the plan, as
    /// DataFusion prints it: names and the query's own literals, never data values).
    #[error("{violation} (at plan node `{node}`)")]
    Rule {
        violation: RuleViolation,
        node: String,
    },
}

/// Which query rule a plan breaks (see `crate::rules` and docs/privacy.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleViolation {
    #[error(
        "aggregate `{function}` is not allowed: only COUNT, SUM, AVG, and MIN/MAX on min_max columns (nothing that returns an input value or a concatenation of them)"
    )]
    AggregateNotAllowed { function: String },
    #[error("window function `{function}` is not allowed: window functions release row values")]
    WindowFunction { function: String },
    #[error(
        "{function} of `{dataset}.{column}` releases one row's value, and `{column}` is not in the min_max columns of `{dataset}`"
    )]
    MinMaxNotDeclared {
        function: String,
        dataset: String,
        column: String,
    },
    #[error("{function} of an aggregated value releases one group's value")]
    MinMaxOfAggregate { function: String },
    #[error("{function} of `{dataset}.{column}`, which is not a metric of `{dataset}`")]
    AggregateOfNonMetric {
        function: String,
        dataset: String,
        column: String,
    },
    #[error("`{dataset}.{column}` is not a metric of `{dataset}`")]
    NotAMetric { dataset: String, column: String },
    #[error(
        "COUNT takes plain columns or `*`, not an expression (an expression can single out one row of a large group)"
    )]
    CountOfExpression,
    #[error(
        "aggregate FILTER clauses are not allowed (a filter can single out one row of a large group): use WHERE"
    )]
    AggregateFilter,
    #[error(
        "`{dataset}.{column}` reaches the output but is not a dimension of `{dataset}` (join keys, metrics and privacy units leave only inside allowed aggregates)"
    )]
    NotReleasable { dataset: String, column: String },
    #[error(
        "`{dataset}.{column}` is used in a condition but is neither a dimension nor a filter column of `{dataset}`"
    )]
    NotFilterable { dataset: String, column: String },
    #[error(
        "a join needs an equality on declared join keys: a cross join or a join on a condition alone multiplies rows"
    )]
    JoinWithoutKey,
    #[error("join key `{dataset}.{column}` is not in the join_keys of `{dataset}`")]
    NotAJoinKey { dataset: String, column: String },
    #[error("join keys must be plain columns of a dataset, not expressions or aggregates")]
    JoinKeyNotAColumn,
    #[error(
        "rows come only from the contract's datasets: `{table}` is refused (VALUES, generate_series and other row sources can multiply rows)"
    )]
    RowSource { table: String },
    #[error("scalar function `{function}` is not allowed (see docs/privacy.md for the list)")]
    ScalarFunctionNotAllowed { function: String },
    #[error("{what} is not allowed")]
    Unsupported { what: &'static str },
    #[error(
        "the privacy unit `{column}` of `{dataset}` does not reach the output's aggregate as a plain column: keep it (group by it, join on it) in every subquery, so the host can count distinct units per group"
    )]
    PrivacyUnitNotTracked { dataset: String, column: String },
    #[error(
        "dataset `{dataset}` may be read only inner-joined with data of the querier (a dataset owned by an output recipient of the workload)"
    )]
    JoinRequired { dataset: String },
}

/// Why the guards refused what a run produced (nothing is sealed after one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardRefusal {
    #[error("output has {rows} rows, more than max_output_rows {max}")]
    TooManyRows { rows: u64, max: u64 },
    /// The table's row count is the module's choice, so it is not said.
    #[error("a module table has more rows than max_output_rows {max}")]
    TooManyTableRows { max: u64 },
    #[error("output has no count column `{column}` for the group-size guard")]
    NoCountColumn { column: String },
    #[error("count column `{column}` is not an integer")]
    CountNotInteger { column: String },
    #[error(
        "the module wrote a table but the workload sets no guards.unit_column (the column holding each row's privacy unit)"
    )]
    UnitColumnNotDeclared,
    #[error("a module table has no guards.unit_column column")]
    NoUnitColumn,
    /// A unit value the inputs do not have (or a null): the module invented people. The
    /// value is not said.
    #[error("a module table names a privacy unit that is not in the run's inputs")]
    UnknownPrivacyUnit,
    #[error("a module table has its own `units` column (the name of the host's count)")]
    UnitsColumnTaken,
    #[error("a module table has a column type the guard cannot group by")]
    UnsupportedTable,
    #[error(
        "the module wrote a table but no input declares a privacy_unit, so the host cannot count people"
    )]
    NoPrivacyUnitInInputs,
    #[error("the module wrote artifacts but the workload names no artifact_recipients")]
    ArtifactsWithoutRecipients,
    /// An artifact over the contract's `outputs.max_artifact_bytes` (its size is not said).
    #[error("a module artifact is larger than the contract's outputs.max_artifact_bytes {max}")]
    ArtifactTooLarge { max: u64 },
    /// More metrics than the contract's `outputs.max_metrics`.
    #[error("the module wrote more metrics than the contract's outputs.max_metrics {max}")]
    TooManyMetrics { max: u64 },
}

/// Why a differentially private release was refused (see `crate::dp`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DpRefusal {
    /// The run would spend more than the dataset's budget has left (checked against the
    /// room's audit log before any key is requested).
    #[error(
        "the differential-privacy budget of `{dataset}` is exhausted: {spent} of {total} spent, the workload asks for {asked}"
    )]
    BudgetExhausted {
        dataset: String,
        spent: String,
        total: String,
        asked: String,
    },
    #[error("input `{dataset}` declares no dp budget")]
    NoBudget { dataset: String },
    #[error("a DP release needs exactly one privacy unit behind its output groups, found {found}")]
    PrivacyUnits { found: usize },
    #[error(
        "aggregate `{function}` has no differentially private version here: use COUNT, COUNT(DISTINCT unit), SUM or AVG"
    )]
    Aggregate { function: String },
    #[error("`{column}` has no dp.bounds in the contract, so its sum has no sensitivity")]
    NoBounds { column: String },
    /// The module wrote a metric the workload's `dp.metric_bounds` does not name (which one
    /// is not said: metric names are module-chosen text).
    #[error("the module wrote a metric that dp.metric_bounds does not name")]
    MetricWithoutBounds,
    #[error("not supported in a DP release: {what}")]
    Unsupported { what: &'static str },
    #[error("the DP rewrite failed: {reason}")]
    Rewrite { reason: String },
    /// OpenDP refused a measurement (its error kind only).
    #[error("the noise could not be drawn: {reason}")]
    Noise { reason: String },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error(transparent)]
    Format(FormatError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestError),
    #[error("audit log {path}: {source}")]
    AuditBroken {
        path: String,
        #[source]
        source: AuditError,
    },
    #[error("key broker {broker} refused the key for `{resource}`: {reason}")]
    KeyRefused {
        broker: String,
        resource: String,
        /// The broker's stable refusal type.
        kind: RefusalKind,
        reason: String,
    },
    #[error(
        "key broker {broker} did not present the key the contract pins (SPKI SHA-256 {pinned}; it presented {presented}): refused before sending it anything"
    )]
    BrokerKeyMismatch {
        broker: String,
        pinned: String,
        presented: String,
    },
    #[error("key broker {broker}: {reason}")]
    BrokerNotPinned { broker: String, reason: String },
    /// The audit log records a revocation by `member` that the approvals the run reads do
    /// not hold (removed from the state directory).
    #[error(
        "the audit log records `{member}`'s revocation of this workload, which its approvals no longer hold"
    )]
    RevocationWithheld { member: String },
    /// A member cancelled the run before it sealed anything.
    #[error("the run was cancelled by `{member}`; nothing was sealed")]
    Cancelled { member: String },
    #[error(
        "key broker {broker} released the key of `{dataset}` without the identity of the sealed file its owner registered (register it again with `kbs put --sealed`)"
    )]
    DatasetIdentityNotReleased { dataset: String, broker: String },
    #[error(
        "the sealed file of `{dataset}` is not the version its owner registered at the broker (registered {registered}, found {found})"
    )]
    DatasetVersionMismatch {
        dataset: String,
        registered: String,
        found: String,
    },
    #[error("the sealed file of `{dataset}` has no readable identity: {reason}")]
    DatasetUnidentifiable { dataset: String, reason: String },
    #[error("key broker {broker} could not be reached: {reason}")]
    BrokerUnreachable { broker: String, reason: String },
    #[error("dataset `{dataset}` has {rows} rows, fewer than its min_rows {min_rows}")]
    TooFewRows {
        dataset: String,
        rows: u64,
        min_rows: u64,
    },
    #[error(
        "dataset `{dataset}` is not encrypted as the contract says ({expected}): refused (a plaintext file stands in for the sealed one)"
    )]
    InputNotSealed {
        dataset: String,
        expected: &'static str,
    },
    #[error("column `{column}` is not in allowed_fields of {views}")]
    ColumnNotAllowed { column: String, views: String },
    #[error("query refused: {0}")]
    Query(#[from] QueryRefusal),
    #[error(
        "query failed while executing ({category}); details are withheld because they may contain data values"
    )]
    QueryFailed { category: &'static str },
    /// The query needed more memory than the run's pool; nothing spills to disk (no
    /// plaintext leaves memory), so it stops instead.
    #[error(
        "the query needs more memory than the run's limit of {limit_bytes} bytes (nothing spills to disk in the room, so no plaintext leaves memory): run it with a larger --memory-limit, or narrow the query"
    )]
    MemoryLimitReached { limit_bytes: usize },
    #[error("guard refused the output: {0}")]
    Guard(#[from] GuardRefusal),
    #[error("differential privacy refused the run: {0}")]
    Dp(#[from] DpRefusal),
    #[error("module refused: {}", describe_module(.0))]
    Module(SandboxError),
    #[error(
        "module refused: the component implements world `{found}`, the workload is a {expected} workload"
    )]
    ModuleWrongWorld {
        found: &'static str,
        expected: &'static str,
    },
    #[error("the workload has neither SQL nor a module")]
    NoProgram,
    #[error("output recipient `{recipient}` has no usable encryption key: {what}")]
    BadRecipient { recipient: String, what: String },
    #[error("the query engine failed: {what}")]
    Engine { what: String },
    #[error(transparent)]
    Service(crate::service::ServiceError),
}

impl From<FormatError> for RoomError {
    /// A policy refusal met while loading a signed file is the policy's refusal.
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Policy(p) => RoomError::Policy(p),
            other => RoomError::Format(other),
        }
    }
}

/// What a refused module run says: the sandbox's error, except a module's own message
/// (module-chosen text, which could carry data: withheld).
fn describe_module(e: &SandboxError) -> String {
    match e {
        SandboxError::ModuleFailed { .. } => {
            "the module returned an error (its message is module-chosen text: withheld)".into()
        }
        other => other.to_string(),
    }
}

impl RoomError {
    pub fn class(&self) -> ErrorClass {
        match self {
            RoomError::Format(e) => e.class(),
            RoomError::Policy(_)
            | RoomError::Attestation(_)
            | RoomError::AuditBroken { .. }
            | RoomError::KeyRefused { .. }
            | RoomError::BrokerKeyMismatch { .. }
            | RoomError::BrokerNotPinned { .. }
            | RoomError::RevocationWithheld { .. }
            | RoomError::Cancelled { .. }
            | RoomError::DatasetIdentityNotReleased { .. }
            | RoomError::DatasetVersionMismatch { .. }
            | RoomError::DatasetUnidentifiable { .. }
            | RoomError::TooFewRows { .. }
            | RoomError::ColumnNotAllowed { .. }
            | RoomError::InputNotSealed { .. }
            | RoomError::Query(_)
            | RoomError::Guard(_)
            | RoomError::Dp(_)
            | RoomError::Module(_)
            | RoomError::ModuleWrongWorld { .. } => ErrorClass::Refused,
            RoomError::BrokerUnreachable { .. }
            | RoomError::QueryFailed { .. }
            | RoomError::MemoryLimitReached { .. }
            | RoomError::NoProgram
            | RoomError::BadRecipient { .. }
            | RoomError::Engine { .. } => ErrorClass::Invalid,
            RoomError::Service(
                crate::service::ServiceError::BootAttestation(_)
                | crate::service::ServiceError::RolledBack { .. },
            ) => ErrorClass::Refused,
            RoomError::Service(_) => ErrorClass::Invalid,
        }
    }

    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        RoomError::Engine {
            what: e.to_string(),
        }
    }
}

pub type Result<T, E = RoomError> = std::result::Result<T, E>;
