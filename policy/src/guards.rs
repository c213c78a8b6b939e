//! The guards a run applies, derived from the contract and the workload. The host applies
//! them; a module never decides them.

use crate::PolicyError;
use crate::contract::Contract;
use crate::workload::{Workload, WorkloadKind};

/// Guards in force for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveGuards {
    /// Output groups whose count of input rows is below this are dropped.
    pub min_group_size: u64,
    /// Most output rows released.
    pub max_output_rows: u64,
}

impl EffectiveGuards {
    /// The stricter of the contract's and the workload's guards.
    pub fn for_run(contract: &Contract, workload: &Workload) -> Self {
        Self {
            min_group_size: workload
                .guards
                .min_group_size
                .unwrap_or(0)
                .max(contract.guards.min_group_size),
            max_output_rows: workload
                .guards
                .max_output_rows
                .unwrap_or(u64::MAX)
                .min(contract.guards.max_output_rows),
        }
    }

    /// Whether a group with `count` input rows may be released.
    pub fn group_released(&self, count: u64) -> bool {
        count >= self.min_group_size
    }
}

/// Minimum-rows precondition for one input: `Err(minimum)` when `rows` is too few.
pub fn check_min_rows(contract: &Contract, dataset: &str, rows: u64) -> Result<(), u64> {
    match contract.dataset(dataset) {
        Some(d) if rows < d.min_rows => Err(d.min_rows),
        Some(_) => Ok(()),
        None => Err(u64::MAX),
    }
}

/// Proof that a workload may release one row per input row (per person): an inference
/// module whose every recipient is named in the `row_recipients` of every input's owner.
/// Only [`OutputRule::for_run`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLevelAllowed {
    _private: (),
}

/// How a run's output tables are released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputRule {
    /// Aggregates only: groups below the minimum size are dropped.
    Grouped,
    /// One row per input row, to recipients every input's owner named.
    PerRow(RowLevelAllowed),
}

impl OutputRule {
    /// The rule the contract allows `workload`: `PerRow` only when it asks for row-level
    /// output and every check of [`check_row_level`] passes.
    pub fn for_run(contract: &Contract, workload: &Workload) -> Result<Self, PolicyError> {
        if !workload.output.row_level {
            return Ok(OutputRule::Grouped);
        }
        check_row_level(contract, workload)?;
        Ok(OutputRule::PerRow(RowLevelAllowed { _private: () }))
    }
}

/// Row-level output is only for inference modules, and only to recipients that every input's
/// owner lists in that dataset's `row_recipients`.
pub(crate) fn check_row_level(contract: &Contract, workload: &Workload) -> Result<(), PolicyError> {
    if workload.kind != WorkloadKind::Inference || workload.module_digest.is_none() {
        return Err(PolicyError::RowLevelNotForThisKind);
    }
    for i in &workload.inputs {
        let ds = contract
            .dataset(i)
            .ok_or_else(|| PolicyError::UnknownInput { input: i.clone() })?;
        for r in &workload.output.recipients {
            if !ds.row_recipients.iter().any(|x| x.get_ref() == r) {
                return Err(PolicyError::RowRecipientNotAllowed {
                    recipient: r.clone(),
                    input: i.clone(),
                    owner: ds.owner.get_ref().clone(),
                });
            }
        }
    }
    Ok(())
}
