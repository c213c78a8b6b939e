//! Host side of `cleanroom:workload/output`: the only way bytes leave a module. Every
//! write is counted against the run's output cap and checked before it is kept; the
//! caller's guards run on what is collected here after the run.

use std::collections::btree_map::Entry;

use super::SandboxError;
use super::bindings::output::Host;
use super::ipc;
use super::limits::{MAX_METRICS, MAX_OUTPUT_ARTIFACTS, MAX_OUTPUT_TABLES};
use super::state::{OutTable, OutputName, RunState};

impl Host for RunState {
    fn write_batches(&mut self, table: String, batches: Vec<u8>) -> wasmtime::Result<()> {
        self.check_live()?;
        let Some(table) = OutputName::parse(&table) else {
            return Err(self.deny(SandboxError::InvalidOutputName));
        };
        // Count the bytes before decoding: the cap bounds the work done on them too.
        self.charge_output(batches.len())?;
        let Ok((schema, decoded)) = ipc::decode(batches) else {
            return Err(self.deny(SandboxError::InvalidOutput {
                table: table.to_string(),
            }));
        };
        let n_tables = self.out_tables.len();
        match self.out_tables.entry(table) {
            Entry::Occupied(mut e) => {
                if e.get().schema != schema {
                    let table = e.key().clone();
                    return Err(self.deny(SandboxError::InvalidOutput {
                        table: table.to_string(),
                    }));
                }
                e.get_mut().batches.extend(decoded);
            }
            Entry::Vacant(e) => {
                if n_tables >= MAX_OUTPUT_TABLES {
                    return Err(self.deny(SandboxError::TooManyOutputs {
                        what: "tables",
                        limit: MAX_OUTPUT_TABLES,
                    }));
                }
                e.insert(OutTable {
                    schema,
                    batches: decoded,
                });
            }
        }
        Ok(())
    }

    fn write_artifact(&mut self, name: String, bytes: Vec<u8>) -> wasmtime::Result<()> {
        self.check_live()?;
        let Some(name) = OutputName::parse(&name) else {
            return Err(self.deny(SandboxError::InvalidOutputName));
        };
        if self.out_artifacts.contains_key(&name) {
            return Err(self.deny(SandboxError::DuplicateArtifact {
                name: name.to_string(),
            }));
        }
        if self.out_artifacts.len() >= MAX_OUTPUT_ARTIFACTS {
            return Err(self.deny(SandboxError::TooManyOutputs {
                what: "artifacts",
                limit: MAX_OUTPUT_ARTIFACTS,
            }));
        }
        self.charge_output(bytes.len())?;
        self.out_artifacts.insert(name, bytes);
        Ok(())
    }

    fn metric(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        self.check_live()?;
        let Some(name) = OutputName::parse(&name) else {
            return Err(self.deny(SandboxError::InvalidOutputName));
        };
        if !self.metrics.contains_key(&name) && self.metrics.len() >= MAX_METRICS {
            return Err(self.deny(SandboxError::TooManyOutputs {
                what: "metrics",
                limit: MAX_METRICS,
            }));
        }
        self.metrics.insert(name, value);
        Ok(())
    }
}
