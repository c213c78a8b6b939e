//! `cleanroom budget show`: what each dataset's differential-privacy budget has left, from
//! the room's audit log (its budget entries) and the contract (the totals).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_formats::audit as entry;
use cleanroom_formats::fsutil;
use cleanroom_policy::dp::Epsilon;

use super::attest::load_policy_contract;

#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub command: BudgetCommand,
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Print, per dataset that declares a dp budget: its total ε, what the log's budget
    /// entries spent, what is left, and the releases that spent it. The log's hash chain is
    /// verified first (a broken log is an error, exit 1). Each data owner's key broker keeps
    /// its own ledger as well, which a rolled-back log cannot undo.
    Show {
        /// The contract the members signed (the budgets).
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        /// The room's audit log (ROOM/audit.jsonl).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
    },
}

/// One dataset's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLine {
    pub dataset: String,
    pub total: Epsilon,
    pub spent: Epsilon,
    pub releases: usize,
}

impl BudgetLine {
    pub fn left(&self) -> Epsilon {
        self.total.saturating_sub(self.spent)
    }
}

/// The budget of every dataset of `contract` that declares one, from `entries`.
pub fn budgets(contract: &cleanroom_policy::Contract, entries: &[entry::Entry]) -> Vec<BudgetLine> {
    contract
        .datasets
        .iter()
        .filter_map(|d| {
            let dp = d.dp.as_ref()?;
            let name = d.name.get_ref();
            let releases = entries
                .iter()
                .filter(|e| e.event == entry::Step::Budget && e.decision == entry::Decision::Spent)
                .filter(|e| e.spend.as_ref().is_some_and(|s| &s.dataset == name))
                .count();
            Some(BudgetLine {
                dataset: name.clone(),
                total: dp.total(),
                spent: Epsilon::from_micros(entry::spent_micros(entries, name)),
                releases,
            })
        })
        .collect()
}

pub fn run(args: &BudgetArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        BudgetCommand::Show { contract, log } => {
            let contract = load_policy_contract(contract)?;
            let text = fsutil::read_file(log)?;
            crate::audit::verify_with_anchors(&text, &[]).map_err(|source| {
                crate::VerifyError::AuditBroken {
                    path: log.display().to_string(),
                    source,
                }
            })?;
            let entries = entry::parse(&text)?;
            let lines = budgets(&contract, &entries);
            if lines.is_empty() {
                println!("no dataset of this contract declares a dp budget");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:>10} {:>10} {:>10} {:>9}",
                "dataset", "budget ε", "spent ε", "left ε", "releases"
            );
            for l in lines {
                println!(
                    "{:<24} {:>10} {:>10} {:>10} {:>9}",
                    l.dataset,
                    l.total.to_string(),
                    l.spent.to_string(),
                    l.left().to_string(),
                    l.releases
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
