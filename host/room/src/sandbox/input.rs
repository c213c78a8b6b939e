//! Host side of `cleanroom:workload/input`: the run's views, artifacts and SQL callback.

use super::SandboxError;
use super::bindings::input::Host;
use super::error::echo_name;
use super::ipc;
use super::state::RunState;

impl Host for RunState {
    fn views(&mut self) -> wasmtime::Result<Vec<String>> {
        self.check_live()?;
        Ok(self.views.keys().cloned().collect())
    }

    fn schema(&mut self, view: String) -> wasmtime::Result<Vec<u8>> {
        self.check_live()?;
        let Some(v) = self.views.get(&view) else {
            return Err(self.deny(SandboxError::ViewNotInInputs {
                view: echo_name(&view),
            }));
        };
        let bytes = ipc::encode(&v.schema, &[]);
        bytes.map_err(|_| wasmtime::Error::msg("cleanroom: cannot encode schema"))
    }

    fn read_batch(&mut self, view: String, index: u32) -> wasmtime::Result<Option<Vec<u8>>> {
        self.check_live()?;
        let Some(v) = self.views.get(&view) else {
            return Err(self.deny(SandboxError::ViewNotInInputs {
                view: echo_name(&view),
            }));
        };
        let Some(batch) = usize::try_from(index).ok().and_then(|i| v.batches.get(i)) else {
            return Ok(None);
        };
        let bytes = ipc::encode(&v.schema, std::slice::from_ref(batch));
        bytes
            .map(Some)
            .map_err(|_| wasmtime::Error::msg("cleanroom: cannot encode batch"))
    }

    fn query(&mut self, sql: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        self.check_live()?;
        let Some(q) = self.query.clone() else {
            return Ok(Err("this run has no SQL access".to_string()));
        };
        let deadline = self
            .deadline_at
            .unwrap_or_else(|| std::time::Instant::now() + self.limits.deadline);
        // Past the deadline the engine stops the query; the run then ends DeadlineExceeded
        // however the module goes on (see `Sandbox::run_logged`).
        let batches = match q.query(&sql, deadline) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let Some(first) = batches.first() else {
            return Ok(Err(
                "the query returned no batches (not even an empty one)".into()
            ));
        };
        let schema = first.schema();
        match ipc::encode(&schema, &batches) {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(_) => Ok(Err("cannot encode the query result".to_string())),
        }
    }

    fn artifacts(&mut self) -> wasmtime::Result<Vec<String>> {
        self.check_live()?;
        Ok(self.artifacts_in.keys().cloned().collect())
    }

    fn read_artifact(&mut self, name: String) -> wasmtime::Result<Vec<u8>> {
        self.check_live()?;
        match self.artifacts_in.get(&name) {
            Some(bytes) => Ok(bytes.clone()),
            None => Err(self.deny(SandboxError::ArtifactNotInInputs {
                name: echo_name(&name),
            })),
        }
    }
}
