//! `cleanroom bench service`: the room service under concurrent load, and a soak.
//!
//! The demo's room (steps 1 to 5: keys, two brokers on 127.0.0.1, the signed contract, the
//! sealed data, the demo query approved) is served by `cleanroom-room serve` in its own
//! process (INSECURE sim attestation). Then, in this process:
//! 1. the demo query's proposal and approvals go to the service, and a signed run request
//!    is timed to its committed output, alternating with the one-shot `cleanroom-room run`
//!    of the same workload (a process each);
//! 2. `--clients` members, each with its own attested TLS connection, read the run's status
//!    for `--seconds`;
//! 3. the same clients send signed proposals, each unique (`name = "load-N"`) and signed
//!    before the phase starts, for `--seconds` or until the signed ones run out.
//!
//! Every request's latency and outcome is recorded: requests per second, p50 / p99 / max,
//! errors by kind, and the service's resident memory before, between and after the phases
//! (its peak too). At the end the audit log the service wrote must verify and hold exactly
//! one accepted proposal entry per proposal the clients saw accepted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::room_protocol::RunState;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::ProposalPayload;
use cleanroom_policy::request::RunRequestPayload;
use serde::Serialize;

use crate::demo;
use crate::processes::RoomServiceProcess;
use crate::room_client::{RoomClient, RoomClientError, nonce};

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Concurrent members, each with its own attested TLS connection.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Length of each load phase (status reads, then signed proposals), in seconds.
    #[arg(long, default_value_t = 15.0)]
    pub seconds: f64,
    /// Signed proposals made before the proposal phase (it ends early when they run out).
    #[arg(long, default_value_t = 20_000)]
    pub proposals: usize,
    /// Signed run requests timed to their committed output (and one-shot runs beside them).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Impressions in the demo's data (conversions are a fifth of them).
    #[arg(long, default_value_t = 20_000)]
    pub impressions: usize,
    /// Where the demo's room, the service's state and the report (service.md, .json) go.
    #[arg(long, value_name = "DIR", default_value = "bench-out/service")]
    pub out: PathBuf,
}

/// Latencies and outcomes of one load phase.
#[derive(Debug, Serialize)]
pub struct PhaseFigures {
    pub name: String,
    pub clients: usize,
    pub seconds: f64,
    pub requests: usize,
    pub ok: usize,
    /// Failed requests by kind (a refusal's kind, or how the request failed).
    pub errors: BTreeMap<String, usize>,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The service's resident memory at a point of the run, in bytes.
#[derive(Debug, Serialize)]
pub struct MemoryPoint {
    pub at: String,
    pub rss: u64,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub machine: String,
    pub impressions: usize,
    /// Signed run request to committed output through the service, each run (ms).
    pub service_run_ms: Vec<f64>,
    /// The one-shot `cleanroom-room run` process of the same workload, each run (ms).
    pub one_shot_run_ms: Vec<f64>,
    pub phases: Vec<PhaseFigures>,
    pub memory: Vec<MemoryPoint>,
    /// The service's peak resident memory over its life (Linux VmHWM), bytes.
    pub peak_rss: u64,
    /// Audit log entries at the end, and the proposals accepted during the proposal phase.
    pub audit_entries: usize,
    pub audit_accepted_proposals: usize,
}

impl ServiceReport {
    /// The figures as a Markdown table (what `docs/PERFORMANCE.md` shows).
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Room service under load ({}; demo data at {} impressions; sim attestation)\n\n",
            self.machine, self.impressions
        );
        s += "| phase | clients | requests | ok | errors | requests/s | p50 ms | p99 ms | max ms |\n";
        s += "|---|---:|---:|---:|---|---:|---:|---:|---:|\n";
        for p in &self.phases {
            let errors = if p.errors.is_empty() {
                "none".to_string()
            } else {
                p.errors
                    .iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            s += &format!(
                "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} |\n",
                p.name,
                p.clients,
                p.requests,
                p.ok,
                errors,
                p.per_second,
                p.p50_ms,
                p.p99_ms,
                p.max_ms
            );
        }
        s += &format!(
            "\nSigned run request → committed output through the service: median {:.0} ms \
             (runs: {}); the one-shot `cleanroom-room run` process of the same workload: median \
             {:.0} ms ({}): **{:.2}x**.\n",
            median(&self.service_run_ms),
            fmt_ms(&self.service_run_ms),
            median(&self.one_shot_run_ms),
            fmt_ms(&self.one_shot_run_ms),
            median(&self.service_run_ms) / median(&self.one_shot_run_ms)
        );
        s += "\nService resident memory: ";
        s += &self
            .memory
            .iter()
            .map(|m| format!("{} {}", m.at, mib(m.rss)))
            .collect::<Vec<_>>()
            .join(", ");
        s += &format!(
            "; peak {}. Audit log at the end: {} entries (chain verified), {} accepted proposals recorded during the proposal phase.\n",
            mib(self.peak_rss),
            self.audit_entries,
            self.audit_accepted_proposals
        );
        s
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / 1048576.0)
}

fn fmt_ms(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n => v[n / 2],
    }
}

/// The service's resident and peak memory (Linux VmRSS, VmHWM), in bytes.
fn rss(service: &RoomServiceProcess) -> u64 {
    super::status_kib(&service.pid().to_string(), "VmRSS:").unwrap_or(0) * 1024
}

fn peak_rss(service: &RoomServiceProcess) -> u64 {
    super::status_kib(&service.pid().to_string(), "VmHWM:").unwrap_or(0) * 1024
}

/// What a failed request counts as in the figures.
fn error_kind(e: &RoomClientError) -> String {
    match e {
        RoomClientError::Refused { kind, .. } => format!("refused {kind:?}"),
        RoomClientError::Unreachable { .. } => "unreachable".into(),
        RoomClientError::BadAnswer { .. } => "bad answer".into(),
        other => format!("{other}"),
    }
}

/// Run the benchmark; the report is also written to OUT/service.md and OUT/service.json.
pub async fn run(args: &ServiceArgs, out: &mut dyn Write) -> anyhow::Result<ServiceReport> {
    if args.clients == 0 || args.seconds <= 0.0 || args.runs == 0 {
        bail!("--clients, --seconds and --runs must be positive");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    writeln!(
        out,
        "setting up the demo's room ({} impressions)...",
        args.impressions
    )?;
    let demo = demo::setup(
        &args.out.join("demo"),
        args.impressions,
        &mut std::io::sink(),
    )?;
    let state = args.out.join("demo/service");
    // The service's room is the demo's: one audit log for the service's runs and the
    // one-shot runs (each broker pins the log it has seen and refuses one behind it).
    std::fs::create_dir_all(&state)?;
    let room = std::path::absolute(&demo.room)?;
    std::os::unix::fs::symlink(&room, state.join("room"))
        .with_context(|| format!("linking {} to the demo's room", state.display()))?;
    let service = RoomServiceProcess::start(&demo.contract, &demo.sigs, &state, &demo.room)?;
    let (contract, _) = cleanroom_formats::load::load_signed_contract(&demo.contract, &demo.sigs)?;
    writeln!(out, "room service at {}", service.url)?;
    let mut memory = vec![MemoryPoint {
        at: "started".into(),
        rss: rss(&service),
    }];

    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(Arc::new(
            RoomClient::connect(&service.url, contract.contract()).await?,
        ));
    }
    let first = &clients[0];

    // 1. The demo query through the service, beside the one-shot run.
    let proposal = cleanroom_formats::load::read_proposal(&demo.query.proposal)?
        .context("the demo query has no proposal")?;
    let digest = first.propose(&proposal).await?.workload_digest;
    for m in cleanroom_formats::load::read_messages(&demo.query.approvals)? {
        first.approve(&m).await?;
    }
    let advertiser = cleanroom_formats::keys::signing_key(&demo.sign_key("advertiser"))?;
    let (mut service_run_ms, mut one_shot_run_ms) = (Vec::new(), Vec::new());
    let mut run_id = String::new();
    for _ in 0..args.runs {
        let request = SignedMessage::sign(
            &advertiser,
            MessageType::RunRequest,
            contract.digest().0,
            cleanroom_formats::clock::now_unix(),
            RunRequestPayload {
                workload_digest: digest.clone(),
                nonce: nonce(),
            }
            .to_bytes(),
        );
        let t = Instant::now();
        let id = first.request_run(&request).await?.id;
        let record = loop {
            let r = first.run(&id).await?;
            if !matches!(r.state, RunState::Queued | RunState::Running) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if record.state != RunState::Committed {
            bail!("run {id} through the service ended {:?}", record.state);
        }
        service_run_ms.push(t.elapsed().as_secs_f64() * 1e3);
        run_id = id;
        let t = Instant::now();
        crate::processes::run_room(&demo.query).await?;
        one_shot_run_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    writeln!(
        out,
        "run request -> committed output: {} ms (one-shot: {} ms)",
        fmt_ms(&service_run_ms),
        fmt_ms(&one_shot_run_ms)
    )?;
    memory.push(MemoryPoint {
        at: "after the runs".into(),
        rss: rss(&service),
    });

    // 2. Status reads.
    let duration = Duration::from_secs_f64(args.seconds);
    let reads = {
        let id = run_id.clone();
        load(&clients, duration, "run-status reads", move |c| {
            let id = id.clone();
            async move { c.run(&id).await.map(|_| true) }
        })
        .await
    };
    writeln!(out, "{}", summary(&reads))?;
    memory.push(MemoryPoint {
        at: "after the reads".into(),
        rss: rss(&service),
    });

    // 3. Signed proposals, each unique, signed before the phase.
    writeln!(out, "signing {} proposals...", args.proposals)?;
    let text = std::fs::read_to_string(&demo.query.workload)?;
    let signed: Arc<Vec<SignedMessage>> = Arc::new(
        (0..args.proposals)
            .map(|i| -> anyhow::Result<SignedMessage> {
                let t = text.replacen("name = \"", &format!("name = \"load-{i}-"), 1);
                let payload = ProposalPayload::new(&t, "workload.toml", None)?;
                Ok(SignedMessage::sign(
                    &advertiser,
                    MessageType::WorkloadPropose,
                    contract.digest().0,
                    cleanroom_formats::clock::now_unix(),
                    payload.to_bytes(),
                ))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let accepted_proposals = |log: &[u8]| -> anyhow::Result<(usize, usize)> {
        let entries = cleanroom_formats::audit::parse(log)?;
        cleanroom_verify::audit::verify_chain(&entries)?;
        let accepted = entries
            .iter()
            .filter(|e| e.event == Step::Proposal && e.decision == Decision::Accepted)
            .count();
        Ok((entries.len(), accepted))
    };
    let (_, accepted_before) = accepted_proposals(&first.audit().await?)?;
    let next = Arc::new(AtomicUsize::new(0));
    let proposals = load(&clients, duration, "signed proposals", move |c| {
        let (signed, next) = (signed.clone(), next.clone());
        async move {
            match signed.get(next.fetch_add(1, Ordering::Relaxed)) {
                Some(m) => c.propose(m).await.map(|_| true),
                None => Ok(false),
            }
        }
    })
    .await;
    writeln!(out, "{}", summary(&proposals))?;
    memory.push(MemoryPoint {
        at: "after the proposals".into(),
        rss: rss(&service),
    });
    let peak_rss = peak_rss(&service);

    // The audit log the service wrote verifies, with one accepted entry per proposal the
    // clients saw accepted.
    let (audit_entries, accepted) = accepted_proposals(&first.audit().await?)?;
    if accepted - accepted_before != proposals.ok {
        bail!(
            "the audit log gained {} accepted proposals during the phase, the clients saw {} accepted",
            accepted - accepted_before,
            proposals.ok
        );
    }
    drop(clients);
    drop(service);
    drop(demo);

    let report = ServiceReport {
        machine: super::machine(),
        impressions: args.impressions,
        service_run_ms,
        one_shot_run_ms,
        phases: vec![reads, proposals],
        memory,
        peak_rss,
        audit_entries,
        audit_accepted_proposals: accepted - accepted_before,
    };
    let md = report.markdown();
    writeln!(out, "\n{md}")?;
    std::fs::write(args.out.join("service.md"), &md)?;
    std::fs::write(
        args.out.join("service.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

fn summary(p: &PhaseFigures) -> String {
    format!(
        "{}: {} requests from {} clients in {:.1} s, {} ok, errors {:?}; {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        p.name, p.requests, p.clients, p.seconds, p.ok, p.errors, p.per_second, p.p50_ms, p.p99_ms
    )
}

/// Every client sends `request` in a loop until `duration` has passed (or a request returns
/// `Ok(false)`: nothing left to send); each request's latency and outcome is recorded.
async fn load<F, Fut>(
    clients: &[Arc<RoomClient>],
    duration: Duration,
    name: &str,
    request: F,
) -> PhaseFigures
where
    F: Fn(Arc<RoomClient>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, RoomClientError>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        let (c, request) = (c.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            while start.elapsed() < duration {
                let t = Instant::now();
                match request(c.clone()).await {
                    Ok(false) => break,
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(e) => {
                        latencies.push(t.elapsed());
                        *errors.entry(error_kind(&e)).or_default() += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                latencies.extend(l);
                for (k, n) in e {
                    *errors.entry(k).or_default() += n;
                }
            }
            Err(e) => {
                *errors
                    .entry(format!("client task failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let failed: usize = errors.values().sum();
    PhaseFigures {
        name: name.to_string(),
        clients: clients.len(),
        seconds,
        requests: latencies.len(),
        ok: latencies.len().saturating_sub(failed),
        errors,
        per_second: latencies.len() as f64 / seconds,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    }
}
