//! The service's own records under `--state`: workloads as proposed (`workloads/<digest>.toml`
//! with `.proposal` and `.approvals` beside it, the files `cleanroom-room run` reads) and the
//! run records (`runs.json`, rewritten atomically on every change). What a replay or a
//! rollback would exploit is not here but in the audit log (`room/audit.jsonl`), whose head
//! the brokers pin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleanroom_formats::fsutil::{self, FileMode};
pub use cleanroom_formats::room_protocol::{RunRecord, RunState};

use crate::error::Result;

/// The run records.
#[derive(Debug)]
pub struct Runs {
    path: PathBuf,
    pub records: BTreeMap<String, RunRecord>,
}

impl Runs {
    /// Load `runs.json` (none yet: empty); a run left queued or running by a stopped
    /// service is marked not completed.
    pub fn load(state: &Path) -> Result<Self> {
        let path = state.join("runs.json");
        let mut records: BTreeMap<String, RunRecord> = if path.exists() {
            serde_json::from_slice(&fsutil::read_file(&path)?).map_err(|e| {
                cleanroom_formats::FormatError::BadFile {
                    path: path.display().to_string(),
                    what: e.to_string(),
                }
            })?
        } else {
            BTreeMap::new()
        };
        for r in records.values_mut() {
            if matches!(r.state, RunState::Queued | RunState::Running) {
                r.state = RunState::NotCompleted;
            }
        }
        let runs = Self { path, records };
        runs.save()?;
        Ok(runs)
    }

    pub fn save(&self) -> Result<()> {
        fsutil::write_file_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&self.records).expect("run records serialise"),
            FileMode::Public,
        )?;
        Ok(())
    }
}

/// The files of a stored workload.
#[derive(Debug, Clone)]
pub struct WorkloadFiles {
    pub workload: PathBuf,
    pub proposal: PathBuf,
    pub approvals: PathBuf,
}

/// The files of workload `digest` (64 lower-case hex characters, checked by the caller).
pub fn workload_files(state: &Path, digest: &str) -> WorkloadFiles {
    let base = state.join("workloads");
    WorkloadFiles {
        workload: base.join(format!("{digest}.toml")),
        proposal: base.join(format!("{digest}.toml.proposal")),
        approvals: base.join(format!("{digest}.toml.approvals")),
    }
}

/// Whether `s` is a workload digest (so a path built from it stays in `workloads/`).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
