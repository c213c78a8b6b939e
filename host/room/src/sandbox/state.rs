//! `RunState`: the per-run state a module's imports see (the `CleanroomView` of the
//! sandbox), borrowed from the `Store` by the host functions of each interface.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::WasiRandomCtx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::limits::{Limits, MAX_TABLE_ELEMENTS};
use super::{HostQuery, SandboxError, View};

/// One output table being written by the module.
#[derive(Debug)]
pub(crate) struct OutTable {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

/// Everything a run's host functions may touch. Nothing here reaches the file system,
/// network or environment: the only ways in are `views`/`artifacts_in`/`query`, the only
/// way out is the `out_*` fields, which the caller collects after the run.
pub(crate) struct RunState {
    pub(crate) limits: Limits,
    pub(crate) views: BTreeMap<String, View>,
    pub(crate) artifacts_in: BTreeMap<String, Vec<u8>>,
    pub(crate) query: Option<Arc<dyn HostQuery + Send + Sync>>,
    /// WASI context of std's runtime imports: no env, args or preopens; empty stdin.
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) random: WasiRandomCtx,
    /// stdout and stderr, bounded by the log cap.
    pub(crate) stdio: MemoryOutputPipe,
    pub(crate) out_tables: BTreeMap<OutputName, OutTable>,
    pub(crate) out_artifacts: BTreeMap<OutputName, Vec<u8>>,
    pub(crate) metrics: BTreeMap<OutputName, f64>,
    /// Output bytes counted against `limits.output_bytes`.
    pub(crate) output_bytes: usize,
    pub(crate) log: String,
    pub(crate) log_truncated: bool,
    /// Set once the module's export has returned; every host call after that is denied.
    pub(crate) ended: bool,
    /// When the run's deadline passes (set as the module's export is called): what the
    /// `query` import gives the engine, and checks again when the engine returns.
    pub(crate) deadline_at: Option<std::time::Instant>,
    /// The first capability violation; it decides the run's error.
    pub(crate) violation: Option<SandboxError>,
    /// Set when the limiter refused a memory or table growth.
    pub(crate) memory_exceeded: bool,
    /// Bytes of linear memory granted so far (all memories).
    pub(crate) memory_used: usize,
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints data: only shapes.
        f.debug_struct("RunState")
            .field("views", &self.views.keys().collect::<Vec<_>>())
            .field(
                "artifacts_in",
                &self.artifacts_in.keys().collect::<Vec<_>>(),
            )
            .field("output_bytes", &self.output_bytes)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl RunState {
    pub(crate) fn new(
        limits: Limits,
        views: BTreeMap<String, View>,
        artifacts_in: BTreeMap<String, Vec<u8>>,
        query: Option<Arc<dyn HostQuery + Send + Sync>>,
    ) -> Self {
        let stdio = MemoryOutputPipe::new(limits.log_bytes);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdio.clone())
            .stderr(stdio.clone())
            .build();
        Self {
            limits,
            views,
            artifacts_in,
            query,
            wasi,
            table: ResourceTable::new(),
            random: WasiRandomCtx::default(),
            stdio,
            out_tables: BTreeMap::new(),
            deadline_at: None,
            out_artifacts: BTreeMap::new(),
            metrics: BTreeMap::new(),
            output_bytes: 0,
            log: String::new(),
            log_truncated: false,
            ended: false,
            violation: None,
            memory_exceeded: false,
            memory_used: 0,
        }
    }

    /// Append what the module wrote to stdout/stderr to the log, within the log cap.
    pub(crate) fn flush_stdio(&mut self) {
        let bytes = self.stdio.contents();
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for line in text.lines() {
            let line_len = line.len() + "[stdio] \n".len();
            if self.log_truncated || self.log.len() + line_len > self.limits.log_bytes {
                self.log_truncated = true;
                return;
            }
            self.log.push_str("[stdio] ");
            self.log.push_str(line);
            self.log.push('\n');
        }
    }

    /// Record `err` as the run's violation (the first one wins) and return the trap that
    /// ends the module.
    pub(crate) fn deny(&mut self, err: SandboxError) -> wasmtime::Error {
        let msg = err.to_string();
        if self.violation.is_none() {
            self.violation = Some(err);
        }
        wasmtime::Error::msg(format!("cleanroom: denied: {msg}"))
    }

    /// Every host function starts here: after the run ended nothing is allowed.
    pub(crate) fn check_live(&mut self) -> wasmtime::Result<()> {
        if self.ended {
            return Err(self.deny(SandboxError::CallAfterRunEnded));
        }
        Ok(())
    }

    /// Count `n` more output bytes against the cap.
    pub(crate) fn charge_output(&mut self, n: usize) -> wasmtime::Result<()> {
        let total = self.output_bytes.saturating_add(n);
        if total > self.limits.output_bytes {
            return Err(self.deny(SandboxError::OutputCapExceeded {
                limit_bytes: self.limits.output_bytes,
            }));
        }
        self.output_bytes = total;
        Ok(())
    }
}

/// A name a module chose for an output (table, artifact, metric), parsed once when the
/// module writes it: 1 to [`MAX_NAME_BYTES`](super::limits::MAX_NAME_BYTES) bytes of
/// `[a-z0-9_-]`. Everything downstream (guards, file names, audit entries) takes this type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct OutputName(String);

impl OutputName {
    /// `Some` if `name` is a valid output name.
    pub fn parse(name: &str) -> Option<Self> {
        (!name.is_empty()
            && name.len() <= super::limits::MAX_NAME_BYTES
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-')))
        .then(|| Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OutputName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

impl std::borrow::Borrow<str> for OutputName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for OutputName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl ResourceLimiter for RunState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The limit is on all of the module's linear memories together (a component may
        // have several); wasmtime also calls this when a memory is created.
        let total = self
            .memory_used
            .saturating_add(desired.saturating_sub(current));
        if total > self.limits.memory_bytes {
            self.memory_exceeded = true;
            // Trap rather than fail the grow: a module cannot go on past the limit
            // (and Rust guests abort on allocation failure anyway).
            return Err(wasmtime::Error::msg("cleanroom: memory limit exceeded"));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg("cleanroom: table limit exceeded"));
        }
        Ok(true)
    }
}
