//! The room's errors: one variant per violation, carrying the inputs they concern (file,
//! member, dataset, column names; never data values, never module-chosen text).

use cleanroom_attest::AttestError;
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
}

/// Why the guards refused what a run produced (nothing is sealed after one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardRefusal {
    #[error("output has {rows} rows, more than max_output_rows {max}")]
    TooManyRows { rows: u64, max: u64 },
    #[error("module table has {rows} rows, more than max_output_rows {max}")]
    TooManyTableRows { rows: u64, max: u64 },
    #[error("output has no count column `{column}` for the group-size guard")]
    NoCountColumn { column: String },
    #[error("count column `{column}` is not an integer")]
    CountNotInteger { column: String },
    #[error("the module wrote a table but the workload sets no guards.count_column")]
    CountColumnNotDeclared,
    #[error("the module wrote artifacts but the workload names no artifact_recipients")]
    ArtifactsWithoutRecipients,
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
        reason: String,
    },
    #[error("key broker {broker} could not be reached: {reason}")]
    BrokerUnreachable { broker: String, reason: String },
    #[error("dataset `{dataset}` has {rows} rows, fewer than its min_rows {min_rows}")]
    TooFewRows {
        dataset: String,
        rows: u64,
        min_rows: u64,
    },
    #[error("column `{column}` is not in allowed_fields of {views}")]
    ColumnNotAllowed { column: String, views: String },
    #[error("query refused: {0}")]
    Query(#[from] QueryRefusal),
    #[error(
        "query failed while executing ({category}); details are withheld because they may contain data values"
    )]
    QueryFailed { category: &'static str },
    #[error("guard refused the output: {0}")]
    Guard(#[from] GuardRefusal),
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
            | RoomError::TooFewRows { .. }
            | RoomError::ColumnNotAllowed { .. }
            | RoomError::Query(_)
            | RoomError::Guard(_)
            | RoomError::Module(_)
            | RoomError::ModuleWrongWorld { .. } => ErrorClass::Refused,
            RoomError::BrokerUnreachable { .. }
            | RoomError::QueryFailed { .. }
            | RoomError::NoProgram
            | RoomError::BadRecipient { .. }
            | RoomError::Engine { .. } => ErrorClass::Invalid,
        }
    }

    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        RoomError::Engine {
            what: e.to_string(),
        }
    }
}

pub type Result<T, E = RoomError> = std::result::Result<T, E>;
