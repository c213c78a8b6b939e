//! Every size or count a module controls, as a named constant with the threat it stops,
//! and the per-run [`Limits`] with their safe defaults.

use std::time::Duration;

/// Default memory a module may use (linear memories together). Threat: a memory bomb
/// exhausting the host's RAM, which holds every member's plaintext.
pub const DEFAULT_MEMORY_BYTES: usize = 256 << 20;
/// Default CPU-time deadline of one run. Threat: an infinite loop holding the host.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Default cap on output bytes (tables as Arrow IPC plus artifacts). Threat: a module
/// smuggling a whole dataset out through a large "result".
pub const DEFAULT_OUTPUT_BYTES: usize = 16 << 20;
/// Default cap on log bytes. Threat: log flooding, and the log as a side channel.
pub const DEFAULT_LOG_BYTES: usize = 64 << 10;

/// Hard ceiling on a run's memory limit: the size of one pooling-allocator memory slot
/// (address space reserved per memory). Threat: a contract asking for more than the
/// machine can give.
pub const MAX_MEMORY_BYTES: usize = 4 << 30;
/// Most output tables a run may create. Threat: unbounded host bookkeeping.
pub const MAX_OUTPUT_TABLES: usize = 64;
/// Most output artifacts a run may create. Threat: unbounded host bookkeeping.
pub const MAX_OUTPUT_ARTIFACTS: usize = 64;
/// Most metrics a run may record. Threat: metrics as a bulk data channel (each metric is a
/// number that leaves with fewer guards than a table).
pub const MAX_METRICS: usize = 256;
/// Longest name of an output table, artifact or metric. Threat: names as a data channel
/// and unbounded host allocations.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest single log message kept (longer messages are cut). Threat: one huge message
/// forcing a large host copy into the log.
pub const MAX_LOG_MESSAGE_BYTES: usize = 4 << 10;
/// Longest error message a module may return (longer ones are cut). Threat: the error
/// text, which is module-chosen, as a channel around the output guards.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 256;
/// Most wasm tables' elements a module may grow to. Threat: table growth as a memory bomb.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Epoch tick of the deadline timer. A run is stopped at most one tick after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-run limits (from the contract; [`Limits::default`] gives the safe defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear-memory bytes the module may use, all its memories together (at most the
    /// sandbox's `max_memory_bytes`).
    pub memory_bytes: usize,
    /// Wall-clock CPU deadline of the run.
    pub deadline: Duration,
    /// Output bytes (tables as IPC, plus artifacts).
    pub output_bytes: usize,
    /// Log bytes kept; further log messages are dropped and the log is marked truncated.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            deadline: DEFAULT_DEADLINE,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            log_bytes: DEFAULT_LOG_BYTES,
        }
    }
}
