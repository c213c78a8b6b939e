//! The guards a run applies, derived from the contract and the workload. The host applies
//! them; a module never decides them.

use crate::contract::Contract;
use crate::workload::Workload;

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
