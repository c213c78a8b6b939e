//! `cleanroom-room run`: run an approved workload in the room (argument parsing and
//! printing only; the run itself is [`crate::run`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;

use crate::attestation::{self, EvidenceSource, HardwareSource, SimSource};
use cleanroom_formats::load::{default_approvals, default_proposal, default_sigs};

use crate::engine::DEFAULT_MEMORY_LIMIT;
use crate::run::{RunConfig, RunReport, run};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The contract (its signatures in CONTRACT.sigs unless --sigs).
    #[arg(long, value_name = "FILE")]
    pub contract: PathBuf,
    /// The workload (its approvals in WORKLOAD.approvals unless --approvals).
    #[arg(long, value_name = "FILE")]
    pub workload: PathBuf,
    /// The room directory: audit.jsonl, outputs/ and evidence/ are written here.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Directory of sealed datasets (contract locations are relative to it). Default: --dir.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub sigs: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub approvals: Option<PathBuf>,
    /// The workload's signed proposal (default: WORKLOAD.proposal; required when the
    /// contract names governance.proposers).
    #[arg(long, value_name = "FILE")]
    pub proposal: Option<PathBuf>,
    /// Evidence platform: `auto` detects SEV-SNP or TDX; `sim` is the INSECURE software
    /// platform, accepted only by contracts with allow_simulated = true.
    #[arg(long, default_value = "auto", value_parser = ["auto", "sim"])]
    pub platform: String,
    /// sim only: the contract digest the simulated VM was "launched" with (what an operator
    /// sets as HOST_DATA / MRCONFIGID). Default: the digest of --contract.
    #[arg(long, value_name = "HEX")]
    pub sim_launch_digest: Option<String>,
    /// The Wasm component of a module workload (its SHA-256 must equal the workload's
    /// module_digest). Default: DIR/modules/<digest>.wasm.
    #[arg(long, value_name = "FILE")]
    pub module: Option<PathBuf>,
    /// Memory the query engine may use, in bytes.
    #[arg(long, default_value_t = DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: usize,
    /// Print the run's report as one JSON object on stdout (for tools) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn evidence_source(args: &RunArgs) -> anyhow::Result<Arc<dyn EvidenceSource>> {
    evidence_source_for(
        &args.platform,
        args.sim_launch_digest.as_deref(),
        &args.contract,
    )
}

/// The evidence source `platform` (`auto` or `sim`) names; for `sim`, launched with
/// `sim_launch_digest` or the digest of `contract`.
pub fn evidence_source_for(
    platform: &str,
    sim_launch_digest: Option<&str>,
    contract: &std::path::Path,
) -> anyhow::Result<Arc<dyn EvidenceSource>> {
    Ok(match platform {
        "sim" => {
            let launch = match sim_launch_digest {
                Some(h) => {
                    cleanroom_policy::ContractDigest::from_hex(h)
                        .ok_or_else(|| {
                            anyhow::anyhow!("--sim-launch-digest: expected 64 hex characters")
                        })?
                        .0
                }
                None => {
                    let text = cleanroom_formats::fsutil::read_text(contract)?;
                    cleanroom_policy::Contract::parse(&text, &contract.display().to_string())?
                        .digest()
                        .0
                }
            };
            Arc::new(SimSource {
                measurement: attestation::self_measurement()?,
                launch_digest: launch,
            })
        }
        _ => {
            if sim_launch_digest.is_some() {
                bail!("--sim-launch-digest applies only with --platform sim");
            }
            Arc::new(HardwareSource::detect().map_err(|e| {
                anyhow::anyhow!("{e}\n(on a development machine without SEV-SNP or TDX, use --platform sim with a contract that sets allow_simulated = true: INSECURE)")
            })?)
        }
    })
}

pub fn config(args: &RunArgs) -> anyhow::Result<RunConfig> {
    Ok(RunConfig {
        contract: args.contract.clone(),
        contract_sigs: args
            .sigs
            .clone()
            .unwrap_or_else(|| default_sigs(&args.contract)),
        workload: args.workload.clone(),
        approvals: args
            .approvals
            .clone()
            .unwrap_or_else(|| default_approvals(&args.workload)),
        proposal: args
            .proposal
            .clone()
            .unwrap_or_else(|| default_proposal(&args.workload)),
        room_dir: args.dir.clone(),
        data_dir: args.data.clone().unwrap_or_else(|| args.dir.clone()),
        evidence: evidence_source(args)?,
        memory_limit: args.memory_limit,
        module: args.module.clone(),
        cancel: None,
    })
}

pub fn print_report(out: &mut dyn std::io::Write, r: &RunReport) -> std::io::Result<()> {
    if r.insecure {
        writeln!(
            out,
            "WARNING: SIMULATED attestation (INSECURE): this run proves nothing about hardware"
        )?;
    }
    for (name, rows) in &r.input_rows {
        writeln!(out, "  input `{name}`: {rows} rows")?;
    }
    writeln!(
        out,
        "  guard: {} groups below the minimum size dropped; {} rows released",
        r.groups_dropped, r.rows
    )?;
    for o in &r.outputs {
        writeln!(
            out,
            "  sealed to {}: {}",
            r.recipients.join(", "),
            o.display()
        )?;
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, d)| format!("{p} {:.1} ms", d.as_secs_f64() * 1000.0))
        .collect();
    writeln!(out, "  time: {}", phases.join(", "))
}

pub fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(args)?;
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(run(&cfg))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("run {} committed", report.run_id);
        print_report(&mut std::io::stdout().lock(), &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The contract (its signatures in CONTRACT.sigs unless --sigs).
    #[arg(long, value_name = "FILE")]
    pub contract: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub sigs: Option<PathBuf>,
    /// The service's state: room/ (audit log, outputs, evidence), workloads/, runs.json.
    /// Back it up as a whole; a restored older copy is an older audit log, which the
    /// brokers refuse keys to.
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Directory of sealed datasets (contract locations are relative to it).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on (HTTPS). Port 0 picks a free port; the first line printed is
    /// `listening on https://ADDR`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8444")]
    pub listen: String,
    /// Evidence platform: `auto` detects SEV-SNP or TDX; `sim` is the INSECURE software
    /// platform, accepted only by contracts with allow_simulated = true.
    #[arg(long, default_value = "auto", value_parser = ["auto", "sim"])]
    pub platform: String,
    /// sim only: the contract digest the simulated VM was "launched" with. Default: the
    /// digest of --contract.
    #[arg(long, value_name = "HEX")]
    pub sim_launch_digest: Option<String>,
    /// Memory the query engine may use per run, in bytes.
    #[arg(long, default_value_t = DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: usize,
    /// Seconds a signed request's creation time may be off the room's clock.
    #[arg(long, default_value_t = crate::service::DEFAULT_FRESHNESS)]
    pub freshness: u64,
    /// Runs that may wait in the queue.
    #[arg(long, default_value_t = crate::service::DEFAULT_QUEUE)]
    pub queue: usize,
}

/// `cleanroom-room serve`: boot (refusing to start unless its own evidence satisfies the
/// contract), print the URL and the TLS key's pin, serve until SIGINT/SIGTERM.
pub fn serve_command(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = crate::service::ServeConfig {
        contract: args.contract.clone(),
        contract_sigs: args
            .sigs
            .clone()
            .unwrap_or_else(|| default_sigs(&args.contract)),
        state: args.state.clone(),
        data: args.data.clone(),
        evidence: evidence_source_for(
            &args.platform,
            args.sim_launch_digest.as_deref(),
            &args.contract,
        )?,
        memory_limit: args.memory_limit,
        freshness: args.freshness,
        queue: args.queue,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("--listen {}: {e}", args.listen))?;
        let room = crate::service::start(cfg, listener).await?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", room.url)?;
            writeln!(out, "tls key spki sha256 {}", room.pin)?;
            out.flush()?;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        room.stop().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
