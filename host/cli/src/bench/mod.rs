//! `cleanroom bench`: what the clean-room path costs on this machine, measured beside what a
//! member would run without a clean room, in the same run.

pub mod service;
pub mod tpch;
pub mod tpch_queries;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// TPC-H: generate the tables, seal each one (Parquet Modular Encryption), register the
    /// keys at a key broker on 127.0.0.1, then run the 22 queries through the full
    /// clean-room path (attestation with the INSECURE sim platform, key release, streaming
    /// decryption, query rules, guards, sealed output) and through plain DataFusion on the
    /// plaintext Parquet, alternating, in this process; and through DuckDB when its Python
    /// package is installed. Prints the median per query, the ratios, the geometric mean and
    /// peak memory, and writes them to OUT/tpch-sf<SF>.md and .json.
    ///
    /// Disk: about 1.3 GB per unit of scale factor under OUT/data (the plaintext Parquet and
    /// its sealed copy), kept between runs of the same SF; SF 10 needs ~13 GB.
    Tpch(TpchArgs),
    /// The room service under load: the demo's room served by `cleanroom-room serve` (sim
    /// attestation) on 127.0.0.1; a signed run request timed to its committed output beside
    /// the one-shot run; then CLIENTS members (each its own attested TLS connection) reading
    /// a run's status, then sending unique signed proposals, for SECONDS each. Prints
    /// requests/s, p50/p99/max latency, errors by kind and the service's resident memory,
    /// checks the audit log it wrote, and writes OUT/service.md and .json. A long --seconds
    /// makes it a soak test.
    Service(service::ServiceArgs),
}

#[derive(Debug, Args)]
pub struct TpchArgs {
    /// Scale factor (1 = 6M lineitem rows).
    #[arg(long, default_value_t = 1.0)]
    pub sf: f64,
    /// Queries to run, e.g. `1,3,6` (default: all 22).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub queries: Vec<u8>,
    /// Timed repetitions of each query on each engine (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Where the data, the members' files and the report go.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out: PathBuf,
    /// The memory pool of both DataFusion engines, in MiB (the room's default is 4096).
    #[arg(long, value_name = "MIB", default_value_t = (cleanroom_room::engine::DEFAULT_MEMORY_LIMIT >> 20) as u64)]
    pub memory_limit_mib: u64,
    /// Leave DuckDB out even if `python3 -c 'import duckdb'` works.
    #[arg(long)]
    pub no_duckdb: bool,
    /// Key releases timed one after another at the owner's broker after the queries (p50,
    /// p99), then 4 clients releasing at once for a tenth of a second per release
    /// (releases/s); 0 leaves the measurement out.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub key_releases: usize,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        BenchCommand::Service(a) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(service::run(a, &mut std::io::stdout().lock()))?;
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Tpch(a) => {
            let opts = tpch::Options::from_args(a)?;
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(tpch::run(&opts, &mut std::io::stdout().lock()))?;
            Ok(if report.all_admitted_results_match() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Peak resident memory of this process (Linux `VmHWM`), reset by [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("self", "VmHWM:").map(|k| k * 1024)
}

/// Resident memory now (Linux `VmRSS`).
pub fn rss_bytes() -> Option<u64> {
    status_kib("self", "VmRSS:").map(|k| k * 1024)
}

/// Field `field` (e.g. `VmRSS:`) of process `pid`'s (or `self`'s) Linux `/proc/PID/status`, in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Reset the peak-resident-memory mark to the current resident size (Linux: writing 5 to
/// `/proc/self/clear_refs`); a no-op where that is not possible.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The machine a figure was measured on: CPU model, cores, memory.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l[9..]
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or_else(
            || "unknown memory".into(),
            |k| format!("{:.0} GiB", k as f64 / 1048576.0),
        );
    format!("{cpu}, {cores} cores, {mem}")
}
