//! The demo's steps 5 to 14: the room as a service, and the members acting on it from
//! their own command lines.
//!
//! The operator starts the room service (`cleanroom-room serve`, its own process); every
//! member action after that is a `cleanroom` command run as its own process from the demo
//! directory, echoed as `member$ cleanroom ...` (`$ROOM` is the service's URL): the member
//! verifies the room's evidence against its own copy of the contract and pins the room's
//! TLS key before it sends anything, and every request it sends is signed. Outputs are
//! fetched sealed and opened on the member's side (`output open`), against the run's
//! evidence fetched from the room. At the end a member fetches the audit log and every
//! run's evidence and verifies the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::room_protocol::{RunRecord, RunState};
use cleanroom_kbs::commands as kbs_cmd;

use super::{
    DEMO_SQL, DP_REACH_SQL, FEATURES_SQL, Members, dp_workload_text, module_workload, print_table,
    step, workload_text,
};
use crate::commands::contract as contract_cmd;
use crate::processes::RoomServiceProcess;

/// What one member command printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The members' command lines: the `cleanroom` binary run from the demo directory.
struct Shell {
    exe: PathBuf,
    dir: PathBuf,
    url: String,
}

fn sign_key(who: &str) -> String {
    format!("{who}/keys/{who}.sign.key")
}

fn enc_key(who: &str) -> String {
    format!("{who}/keys/{who}.enc.key")
}

fn contract_of(who: &str) -> String {
    format!("{who}/contract.toml")
}

impl Shell {
    /// Run `cleanroom ARGS` as `who`, echoed to `out`.
    fn run(&self, out: &mut dyn Write, who: &str, args: &[&str]) -> anyhow::Result<Ran> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| match *a {
                a if a == self.url => "$ROOM".to_string(),
                a if a.contains(' ') => format!("'{a}'"),
                a => a.to_string(),
            })
            .collect();
        writeln!(out, "    {who}$ cleanroom {}", shown.join(" "))?;
        let o = Command::new(&self.exe)
            .args(args)
            .current_dir(&self.dir)
            // The demo made sure the binaries are built; a member command never builds.
            .env("CLEANROOM_NO_BIN_BUILD", "1")
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        Ok(Ran {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }

    /// [`Shell::run`], which must succeed; its standard output.
    fn ok(&self, out: &mut dyn Write, who: &str, args: &[&str]) -> anyhow::Result<String> {
        let r = self.run(out, who, args)?;
        if !r.ok {
            bail!(
                "`cleanroom {}` failed:\n{}{}",
                args.join(" "),
                r.stdout,
                r.stderr
            );
        }
        Ok(r.stdout)
    }

    /// `cleanroom room SUB --room $ROOM --contract WHO/contract.toml EXTRA`.
    fn room_args(&self, who: &str, sub: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = ["room", sub, "--room", &self.url, "--contract"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(contract_of(who));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn room(
        &self,
        out: &mut dyn Write,
        who: &str,
        sub: &str,
        extra: &[&str],
    ) -> anyhow::Result<String> {
        let a = self.room_args(who, sub, extra);
        self.ok(out, who, &a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The advertiser (the contract's proposer) proposes `text`, written to
    /// `advertiser/FILE` (with the component `module` for a module workload); both owners
    /// approve it. Returns the workload's digest.
    fn propose_and_approve(
        &self,
        out: &mut dyn Write,
        file: &str,
        text: &str,
        module: Option<(&str, &[u8])>,
    ) -> anyhow::Result<String> {
        let w = format!("advertiser/{file}");
        fsutil::write_file_atomic(&self.dir.join(&w), text.as_bytes(), FileMode::Public)?;
        let key = sign_key("advertiser");
        let mut args = vec!["--workload", w.as_str(), "--key", key.as_str()];
        let component;
        if let Some((name, bytes)) = module {
            component = format!("advertiser/{name}.wasm");
            fsutil::write_file_atomic(&self.dir.join(&component), bytes, FileMode::Public)?;
            args.extend(["--module", component.as_str()]);
        }
        let said = self.room(out, "advertiser", "propose", &args)?;
        let digest = said
            .lines()
            .find_map(|l| l.strip_prefix("workload "))
            .and_then(|l| l.split_whitespace().next())
            .with_context(|| format!("`room propose` printed no workload digest: {said}"))?
            .to_string();
        for who in ["publisher", "advertiser"] {
            let key = sign_key(who);
            let said = self.room(out, who, "approve", &["--workload", &digest, "--key", &key])?;
            writeln!(out, "      {}", said.trim())?;
        }
        Ok(digest)
    }

    /// `who` requests a run of `digest` and waits for its record.
    fn run_workload(
        &self,
        out: &mut dyn Write,
        who: &str,
        digest: &str,
    ) -> anyhow::Result<(bool, RunRecord)> {
        let key = sign_key(who);
        let a = self.room_args(who, "run", &["--workload", digest, "--key", &key, "--wait"]);
        let r = self.run(out, who, &a.iter().map(String::as_str).collect::<Vec<_>>())?;
        let record = r
            .stdout
            .find('{')
            .and_then(|i| serde_json::from_str::<RunRecord>(&r.stdout[i..]).ok())
            .with_context(|| {
                format!(
                    "`room run --wait` printed no run record:\n{}{}",
                    r.stdout, r.stderr
                )
            })?;
        Ok((r.ok, record))
    }

    /// [`Shell::run_workload`], which must commit.
    fn committed(&self, out: &mut dyn Write, who: &str, digest: &str) -> anyhow::Result<RunRecord> {
        let (_, record) = self.run_workload(out, who, digest)?;
        if record.state != RunState::Committed {
            bail!(
                "run {} ended {}: {}",
                record.id,
                record.state.as_str(),
                record.cause.as_deref().unwrap_or("no cause given")
            );
        }
        writeln!(
            out,
            "      run {} committed: {} sealed output(s)",
            record.run_id.as_deref().unwrap_or(&record.id),
            record.outputs.len()
        )?;
        Ok(record)
    }

    /// `who` fetches the run's evidence and every output of `record` (it must receive them
    /// all) and opens each; returns each output's description (what `output open` says it
    /// is) and content.
    fn fetch_and_open(
        &self,
        out: &mut dyn Write,
        who: &str,
        record: &RunRecord,
    ) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let run = record
            .run_id
            .as_deref()
            .context("a committed run has a run id")?;
        std::fs::create_dir_all(self.dir.join(who).join("outputs"))?;
        std::fs::create_dir_all(self.dir.join(who).join("evidence"))?;
        let evidence = format!("{who}/evidence/{run}.json");
        self.room(out, who, "evidence", &["--run", run, "--out", &evidence])?;
        let mut opened = Vec::new();
        for name in &record.outputs {
            let sealed = format!("{who}/outputs/{name}");
            let plain = format!("{who}/outputs/{name}.plain");
            let key = sign_key(who);
            self.room(
                out,
                who,
                "fetch",
                &["--output", name, "--key", &key, "--out", &sealed],
            )?;
            let enc = enc_key(who);
            let contract = contract_of(who);
            let r = self.run(
                out,
                who,
                &[
                    "output",
                    "open",
                    "--in",
                    &sealed,
                    "--name",
                    who,
                    "--key",
                    &enc,
                    "--contract",
                    &contract,
                    "--evidence",
                    &evidence,
                    "--out",
                    &plain,
                ],
            )?;
            if !r.ok {
                bail!("{who} could not open {sealed}:\n{}", r.stderr);
            }
            let what = r
                .stderr
                .lines()
                .find(|l| l.starts_with("output "))
                .unwrap_or_default()
                .to_string();
            writeln!(out, "      {what}")?;
            opened.push((what, fsutil::read_file(&self.dir.join(&plain))?));
        }
        Ok(opened)
    }
}

/// The content of the output `what` describes as `needle` (e.g. "metrics", "artifact
/// `model`").
fn find<'a>(opened: &'a [(String, Vec<u8>)], needle: &str) -> anyhow::Result<&'a [u8]> {
    opened
        .iter()
        .find(|(what, _)| what.contains(needle))
        .map(|(_, data)| data.as_slice())
        .with_context(|| format!("no output is {needle}"))
}

/// The whole demo through the room service, narrated to `out`.
pub fn scenario(dir: &Path, impressions: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    let m = super::members(dir, impressions, out)?;
    let dir = std::path::absolute(dir)?;
    // Each member keeps its own copy of the signed contract: what it verifies the room
    // against.
    for who in [&m.publisher, &m.advertiser] {
        let copy = who.join("contract.toml");
        std::fs::copy(&m.contract, &copy)?;
        std::fs::copy(&m.sigs, contract_cmd::default_sigs(&copy))?;
    }

    step(
        out,
        5,
        "The operator starts the room service (its own process); it attests itself at boot and serves HTTPS with the key its evidence binds",
    )?;
    writeln!(
        out,
        "    operator$ cleanroom-room serve --contract room/contract.toml --state service --data room --listen 127.0.0.1:0 --platform sim"
    )?;
    let service = RoomServiceProcess::start(&m.contract, &m.sigs, &dir.join("service"), &m.room)?;
    writeln!(
        out,
        "    listening on {} (ROOM below); its state (audit log, outputs, evidence) in {}",
        service.url,
        dir.join("service").display()
    )?;
    let sh = Shell {
        exe: crate::commands::delegate::sibling("cleanroom")?,
        dir: dir.clone(),
        url: service.url.clone(),
    };

    step(
        out,
        6,
        "Before sending anything, each member verifies the room's evidence against its own copy of the contract and pins its TLS key",
    )?;
    for who in ["publisher", "advertiser"] {
        for line in sh.room(out, who, "verify", &[])?.lines() {
            writeln!(out, "      {line}")?;
        }
    }

    step(
        out,
        7,
        "The advertiser proposes the query (a signed request); both owners read it, check it against the contract and approve its exact digest",
    )?;
    let query = sh.propose_and_approve(out, "workload.toml", &workload_text(DEMO_SQL), None)?;

    step(
        out,
        8,
        "The advertiser requests a run: the room gets both keys from the brokers, runs the query, applies the guards, seals the result",
    )?;
    let record = sh.committed(out, "advertiser", &query)?;
    let opened = sh.fetch_and_open(out, "advertiser", &record)?;
    let result = find(&opened, "result")?;
    writeln!(
        out,
        "    the advertiser's result (campaigns reaching fewer than 50 users were dropped by the guard):"
    )?;
    print_table(out, &String::from_utf8_lossy(result))?;
    let mut runs = vec![record];

    step(
        out,
        9,
        "A differentially private reach per campaign: noise from OpenDP, ε 0.5 from the publisher's budget",
    )?;
    let dp = sh.propose_and_approve(
        out,
        "reach-dp.toml",
        &dp_workload_text(DP_REACH_SQL, 0.5),
        None,
    )?;
    let record = sh.committed(out, "advertiser", &dp)?;
    let opened = sh.fetch_and_open(out, "advertiser", &record)?;
    writeln!(out, "    campaigns whose noisy reach passes the threshold:")?;
    print_table(out, &String::from_utf8_lossy(find(&opened, "result")?))?;
    runs.push(record);
    sh.room(
        out,
        "publisher",
        "audit",
        &["--out", "publisher/audit.jsonl"],
    )?;
    let said = sh.ok(
        out,
        "publisher",
        &[
            "budget",
            "show",
            "--contract",
            "publisher/contract.toml",
            "--log",
            "publisher/audit.jsonl",
        ],
    )?;
    for line in said.lines() {
        writeln!(out, "      {line}")?;
    }

    runs.extend(module_steps(out, &sh, &m)?);

    step(
        out,
        13,
        "Any member can stop the room: the publisher suspends it (at the room and at both brokers), the next run is refused, the publisher resumes",
    )?;
    let key = sign_key("publisher");
    for t in ["suspend", "resume"] {
        let reason: &[&str] = if t == "suspend" {
            &["--reason", "quarterly review"]
        } else {
            &[]
        };
        let mut extra = vec!["--key", key.as_str()];
        extra.extend(reason);
        let said = sh.room(out, "publisher", t, &extra)?;
        writeln!(out, "      {}", said.trim())?;
        let mut args = vec![
            "governance",
            t,
            "--contract",
            "publisher/contract.toml",
            "--key",
            key.as_str(),
        ];
        args.extend(reason);
        sh.ok(out, "publisher", &args)?;
        if t == "suspend" {
            match sh.run_workload(out, "advertiser", &query)? {
                (false, r) if r.state == RunState::Refused => writeln!(
                    out,
                    "      the next run is refused: {}",
                    r.cause.as_deref().unwrap_or("no cause given")
                )?,
                (_, r) => bail!("a run was not refused while the room was suspended: {r:?}"),
            }
        }
    }

    step(
        out,
        14,
        "Any member fetches the audit log and every run's evidence, and verifies the log",
    )?;
    sh.room(
        out,
        "publisher",
        "audit",
        &["--out", "publisher/audit.jsonl"],
    )?;
    std::fs::create_dir_all(dir.join("publisher/evidence"))?;
    for r in &runs {
        let run = r
            .run_id
            .as_deref()
            .context("a committed run has a run id")?;
        sh.room(
            out,
            "publisher",
            "evidence",
            &[
                "--run",
                run,
                "--out",
                &format!("publisher/evidence/{run}.json"),
            ],
        )?;
    }
    let said = sh.ok(
        out,
        "publisher",
        &[
            "audit",
            "verify",
            "--log",
            "publisher/audit.jsonl",
            "--evidence",
            "publisher/evidence",
            "--contract",
            "publisher/contract.toml",
        ],
    )?;
    for line in said.lines() {
        writeln!(out, "      {line}")?;
    }
    drop(service);
    drop(m.brokers);
    writeln!(
        out,
        "\nDone. The members' files are under {}/{{publisher,advertiser}}; the room's state under {}/service.",
        dir.display(),
        dir.display()
    )?;
    Ok(())
}

/// Steps 10 to 12: train a model on the joined data (weights to the advertiser only),
/// score the publisher's audience with it (a guarded histogram to the publisher), then
/// per-user scores to the publisher, which both owners allowed in the contract
/// (`row_recipients`). Returns the committed runs.
fn module_steps(out: &mut dyn Write, sh: &Shell, m: &Members) -> anyhow::Result<Vec<RunRecord>> {
    step(
        out,
        10,
        "Training: a Wasm module learns a conversion model from the joined data; the weights go to the advertiser only",
    )?;
    // The Wasm steps are the core of the product: a guest that does not build is an error.
    let training = crate::guest_build::component("training-logreg")
        .context("building the guest modules (guests/) for the demo's Wasm steps")?;
    let inference = crate::guest_build::component("inference-score")
        .context("building the guest modules (guests/) for the demo's Wasm steps")?;
    let t_digest = cleanroom_room::sandbox::digest_hex(&training);
    let label_sql = format!(
        "{FEATURES_SQL}, CASE WHEN COUNT(c.user_id_hash) = 0 THEN 0.0 ELSE 1.0 END AS label \
FROM impressions i LEFT JOIN (SELECT DISTINCT user_id_hash FROM conversions) c \
ON i.user_id_hash = c.user_id_hash GROUP BY i.user_id_hash"
    );
    let text = module_workload(
        "conversion-model-training",
        "training",
        r#"["impressions", "conversions"]"#,
        &t_digest,
        &format!("sql = \"{label_sql}\"\nfeatures = [\"imps\", \"sites\"]\nepochs = 300\n"),
        "recipients = [\"advertiser\"]\nartifact_recipients = [\"advertiser\"]\n",
    );
    let digest = sh.propose_and_approve(
        out,
        "training.toml",
        &text,
        Some(("training-logreg", &training)),
    )?;
    let training_run = sh.committed(out, "advertiser", &digest)?;
    let opened = sh.fetch_and_open(out, "advertiser", &training_run)?;
    let metrics: std::collections::BTreeMap<String, f64> =
        serde_json::from_slice(find(&opened, "metrics")?)?;
    writeln!(
        out,
        "    the advertiser's metrics: {} users, accuracy {:.3}, loss {:.3}; the model weights are {} bytes of JSON, sealed to it alone",
        metrics.get("rows").copied().unwrap_or(0.0),
        metrics.get("accuracy").copied().unwrap_or(0.0),
        metrics.get("loss").copied().unwrap_or(0.0),
        find(&opened, "artifact `model`")?.len()
    )?;
    let model = find(&opened, "artifact `model`")?.to_vec();

    step(
        out,
        11,
        "Inference: the publisher's audience is scored with the advertiser's model; only a guarded histogram leaves, to the publisher",
    )?;
    // The advertiser seals its model as a dataset of the contract into the room's data
    // directory and registers its key at its own broker.
    let model_plain = m.advertiser.join("conversion-model.json");
    fsutil::write_file_atomic(&model_plain, &model, FileMode::Secret)?;
    let parsed = cleanroom_formats::load::load_signed_contract(&m.contract, &m.sigs)?
        .0
        .contract()
        .clone();
    let model_key = m.advertiser.join("conversion-model.key");
    let sealed = m.room.join("data/conversion-model.sealed");
    crate::sealing::seal_with_key_file(
        &parsed,
        &m.contract,
        "conversion-model",
        &model_plain,
        &sealed,
        None,
        Some(&model_key),
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )?;
    std::fs::remove_file(&model_plain)?;
    let store = kbs_cmd::open_store(
        &m.advertiser.join("kbs.db"),
        &m.advertiser.join("kbs.master-key"),
    )?;
    kbs_cmd::put(
        &store,
        &m.contract,
        &m.sigs,
        "conversion-model",
        &model_key,
        &sealed,
    )?;
    writeln!(
        out,
        "    the advertiser sealed its model as dataset `conversion-model` (into the room's data directory) and registered its key at its broker"
    )?;
    let i_digest = cleanroom_room::sandbox::digest_hex(&inference);
    let score_sql = format!("{FEATURES_SQL} FROM impressions i GROUP BY i.user_id_hash");
    let inference_workload = |name: &str, params: &str, tail: &str| {
        format!(
            "{}{tail}",
            module_workload(
                name,
                "inference",
                r#"["impressions", "conversion-model"]"#,
                &i_digest,
                &format!("sql = \"{score_sql}\"\nmodel = \"conversion-model\"\n{params}"),
                "recipients = [\"publisher\"]\n",
            )
        )
    };
    let text = inference_workload(
        "audience-scoring",
        "output = \"histogram\"\nbuckets = 10\n",
        "\n[guards]\nmin_group_size = 50\nunit_column = \"user_id_hash\"\n",
    );
    let digest = sh.propose_and_approve(
        out,
        "inference.toml",
        &text,
        Some(("inference-score", &inference)),
    )?;
    let histogram_run = sh.committed(out, "advertiser", &digest)?;
    let opened = sh.fetch_and_open(out, "publisher", &histogram_run)?;
    writeln!(
        out,
        "    the publisher's score histogram (buckets under 50 users dropped):"
    )?;
    print_table(
        out,
        &String::from_utf8_lossy(find(&opened, "`score_histogram`")?),
    )?;

    step(
        out,
        12,
        "Per-user scores: both owners listed the publisher in `row_recipients`, so a row-level scoring run may send it one score per user",
    )?;
    let text = inference_workload(
        "audience-scores-per-user",
        "output = \"scores\"\nkey = \"user_id_hash\"\n",
        "row_level = true\n",
    );
    let digest = sh.propose_and_approve(
        out,
        "scores.toml",
        &text,
        Some(("inference-score", &inference)),
    )?;
    let scores_run = sh.committed(out, "advertiser", &digest)?;
    let opened = sh.fetch_and_open(out, "publisher", &scores_run)?;
    let scores = String::from_utf8_lossy(find(&opened, "`scores`")?).into_owned();
    writeln!(
        out,
        "    the publisher's {} per-user scores (first 5 shown):",
        scores.lines().count().saturating_sub(1)
    )?;
    print_table(out, &scores.lines().take(6).collect::<Vec<_>>().join("\n"))?;
    // The advertiser asked for the run but is no recipient: the room refuses it the output.
    let name = scores_run
        .outputs
        .first()
        .context("the scoring run wrote no output")?;
    let key = sign_key("advertiser");
    let a = sh.room_args(
        "advertiser",
        "fetch",
        &[
            "--output",
            name,
            "--key",
            &key,
            "--out",
            "advertiser/scores.cro",
        ],
    );
    let r = sh.run(
        out,
        "advertiser",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    if r.ok {
        bail!("the room gave the advertiser the publisher's per-user scores");
    }
    writeln!(
        out,
        "      refused: {}",
        r.stderr.trim().trim_start_matches("error: ")
    )?;
    Ok(vec![training_run, histogram_run, scores_run])
}
