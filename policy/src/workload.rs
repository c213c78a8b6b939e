//! A workload: what runs (SQL text and/or a module digest), on which inputs, with which
//! parameters, and where its output may go. Its digest (SHA-256 of the RFC 8785 canonical
//! JSON) is what owners approve: change one character of the SQL and the approvals no longer
//! apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::contract::Contract;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Query,
    Training,
    Inference,
}

impl WorkloadKind {
    /// The kind's name, as in workload.toml (and the module world of the same name).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Query => "query",
            WorkloadKind::Training => "training",
            WorkloadKind::Inference => "inference",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadOutput {
    /// Members the output is sealed to; each must be in the contract's `outputs.recipients`.
    pub recipients: Vec<String>,
    #[serde(default = "default_format")]
    pub format: OutputFormat,
    /// Members a module's artifacts (e.g. model weights) are sealed to; each must be in the
    /// contract's `outputs.model_recipients`. A module that writes an artifact with no
    /// recipient here is refused.
    #[serde(default)]
    pub artifact_recipients: Vec<String>,
    /// Per-row output (one row out per row in, e.g. a score per customer) instead of
    /// guarded aggregates: only for inference modules, and only when the owner of every
    /// input lists every recipient in that dataset's `row_recipients`. The minimum group
    /// size does not apply to such tables; the row cap does.
    #[serde(default)]
    pub row_level: bool,
}

fn default_format() -> OutputFormat {
    OutputFormat::Csv
}

/// Guards a workload asks for. They may be stricter than the contract's, never weaker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadGuards {
    #[serde(default)]
    pub min_group_size: Option<u64>,
    #[serde(default)]
    pub max_output_rows: Option<u64>,
    /// Refused when set ([`PolicyError::ModuleCountNotTrusted`]): a count a module writes is
    /// the module's claim (it can write one row per person with a count of a million). Kept
    /// so that workloads written for it get that error rather than "unknown field" (and, as
    /// `null`, so that workload digests stay what they were).
    #[serde(default)]
    pub count_column: Option<String>,
    /// For module workloads whose tables are guarded (not `row_level`): the column of each
    /// output table holding the privacy unit (e.g. `user_id_hash`) of each row. The host
    /// checks every value is a privacy unit of the inputs, groups the table by its other
    /// columns, counts distinct units per group (released as column `units`, the unit column
    /// itself never leaves) and drops groups below the minimum group size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_column: Option<String>,
}

/// What a module workload may use beyond its views; part of what owners approve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleAccess {
    /// The module may run SQL over its views through the host's `query` import (under the
    /// run's deadline and the module's memory limit; results stay in the sandbox, so no
    /// group threshold applies to them). Without it the import answers with an error.
    #[serde(default)]
    pub sql_access: bool,
}

impl ModuleAccess {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub kind: WorkloadKind,
    /// Datasets the workload reads.
    pub inputs: Vec<String>,
    /// The approved SQL, run against views holding only the inputs' allowed fields.
    #[serde(default)]
    pub sql: Option<String>,
    /// SHA-256 (hex) of the Wasm component, for module workloads.
    #[serde(default)]
    pub module_digest: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub output: WorkloadOutput,
    #[serde(default)]
    pub guards: WorkloadGuards,
    /// `[module]`: what a module may use beyond its views (default: nothing).
    #[serde(default, skip_serializing_if = "ModuleAccess::is_default")]
    pub module: ModuleAccess,
    /// `dp = { epsilon, mechanism }`: the release is differentially private and spends
    /// `epsilon` from the budget of every input (SQL workloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<crate::dp::WorkloadDp>,
}

/// SHA-256 of a workload's canonical JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkloadDigest(pub [u8; 32]);

impl WorkloadDigest {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl Workload {
    /// Parse `workload.toml` text. `source_name` names the file in errors.
    pub fn parse(src: &str, source_name: &str) -> Result<Self, PolicyError> {
        let w: Workload = toml::from_str(src).map_err(|e| PolicyError::Toml {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        let invalid = |field: &str, reason: &str| PolicyError::InvalidValue {
            source_name: source_name.to_string(),
            field: field.to_string(),
            reason: reason.to_string(),
        };
        if w.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if w.inputs.is_empty() {
            return Err(invalid("inputs", "a workload reads at least one dataset"));
        }
        if w.sql.is_none() && w.module_digest.is_none() {
            return Err(invalid(
                "sql",
                "a workload needs `sql`, `module_digest`, or both",
            ));
        }
        if let Some(d) = &w.module_digest
            && (d.len() != 64 || hex::decode(d).is_err())
        {
            return Err(invalid(
                "module_digest",
                "must be 64 hex characters (SHA-256)",
            ));
        }
        if w.output.recipients.is_empty() {
            return Err(invalid("output.recipients", "name at least one recipient"));
        }
        if w.guards.count_column.is_some() {
            return Err(PolicyError::ModuleCountNotTrusted {
                source_name: source_name.to_string(),
            });
        }
        if let Some(dp) = &w.dp {
            if let Err((field, reason)) = dp.validate(w.module_digest.is_some()) {
                return Err(PolicyError::InvalidValue {
                    source_name: source_name.to_string(),
                    field,
                    reason,
                });
            }
            if w.output.row_level {
                return Err(invalid(
                    "dp",
                    "a per-row output cannot be differentially private",
                ));
            }
        }
        if w.module.sql_access && w.module_digest.is_none() {
            return Err(invalid(
                "module.sql_access",
                "applies only to module workloads (set module_digest)",
            ));
        }
        Ok(w)
    }

    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("a parsed workload serialises to JSON")
    }

    pub fn digest(&self) -> WorkloadDigest {
        use sha2::Digest;
        WorkloadDigest(sha2::Sha256::digest(self.canonical_json()).into())
    }

    /// Check the workload's references against the contract: inputs exist, recipients are
    /// agreed output recipients, guards are not weaker than the contract's.
    pub fn check_against(&self, contract: &Contract) -> Result<(), PolicyError> {
        for i in &self.inputs {
            if contract.dataset(i).is_none() {
                return Err(PolicyError::UnknownInput { input: i.clone() });
            }
        }
        for r in &self.output.recipients {
            if !contract.outputs.recipients.iter().any(|x| x.get_ref() == r) {
                return Err(PolicyError::RecipientNotAllowed {
                    recipient: r.clone(),
                });
            }
        }
        for r in &self.output.artifact_recipients {
            if !contract
                .outputs
                .model_recipients
                .iter()
                .any(|x| x.get_ref() == r)
            {
                return Err(PolicyError::RecipientNotAllowed {
                    recipient: r.clone(),
                });
            }
        }
        if self.output.row_level {
            crate::guards::check_row_level(contract, self)?;
        }
        if let Some(dp) = &self.dp {
            let spend = dp.spend();
            for i in &self.inputs {
                let budget = contract.dataset(i).and_then(|d| d.dp.as_ref());
                let Some(budget) = budget else {
                    return Err(PolicyError::NoDpBudget {
                        workload: self.name.clone(),
                        dataset: i.clone(),
                    });
                };
                if spend > budget.per_run_cap() {
                    return Err(PolicyError::DpAboveRunCap {
                        dataset: i.clone(),
                        epsilon: spend.to_string(),
                        cap: budget.per_run_cap().to_string(),
                    });
                }
            }
        }
        if let Some(k) = self.guards.min_group_size
            && k < contract.guards.min_group_size
        {
            return Err(PolicyError::GuardWeakerThanContract {
                field: "min_group_size",
                value: k,
                contract_value: contract.guards.min_group_size,
            });
        }
        if let Some(n) = self.guards.max_output_rows
            && n > contract.guards.max_output_rows
        {
            return Err(PolicyError::GuardWeakerThanContract {
                field: "max_output_rows",
                value: n,
                contract_value: contract.guards.max_output_rows,
            });
        }
        Ok(())
    }
}

/// What an approval signs: the workload's name and digest, and optionally until when it
/// holds (`expires_at`, Unix seconds) and how many runs of the workload it allows in all
/// (`max_runs`, counted from the room's audit log). Absent limits are not serialised, so an
/// approval without them has the bytes it always had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPayload {
    pub workload: String,
    pub workload_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u64>,
}

/// What a revocation signs: the digest of the workload whose approval is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationPayload {
    pub workload_digest: String,
}

impl RevocationPayload {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("serialises")
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        serde_json::from_slice(b).ok()
    }
}

impl ApprovalPayload {
    pub fn for_workload(w: &Workload) -> Self {
        Self {
            workload: w.name.clone(),
            workload_digest: w.digest().hex(),
            expires_at: None,
            max_runs: None,
        }
    }
    /// The same approval, holding until `expires_at` (Unix seconds) and for at most
    /// `max_runs` runs.
    pub fn limited(mut self, expires_at: Option<u64>, max_runs: Option<u64>) -> Self {
        self.expires_at = expires_at;
        self.max_runs = max_runs;
        self
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("serialises")
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        serde_json::from_slice(b).ok()
    }
}
