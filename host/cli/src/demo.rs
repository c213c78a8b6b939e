//! `cleanroom demo`: two organisations combine sealed data under a signed contract.
//!
//! A publisher (ad impressions, Parquet) and an advertiser (conversions, CSV) each make
//! keys, run a key broker on 127.0.0.1, seal their data, sign the contract and approve a
//! reach/conversion query; the room runs it under simulated attestation (INSECURE: this
//! machine has no SEV-SNP/TDX), drops campaigns reaching fewer than 50 users, seals the
//! result to the advertiser, who opens it. Then Wasm modules train a model (weights to the
//! advertiser), score the publisher's audience (a guarded histogram, then per-user scores
//! the contract allows to the publisher); the publisher suspends and resumes the room; anyone
//! verifies the audit log.

use cleanroom_formats::fsutil::FileMode;
use cleanroom_kbs::commands as kbs_cmd;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256, Sha384};

use crate::commands::{contract as contract_cmd, workload as workload_cmd};
use cleanroom_room::attestation::SimSource;

use crate::processes::{BrokerProcess, room_binary, run_room as run_workload};
use cleanroom_formats::envelope::ContentKind;
use cleanroom_formats::{fsutil, keys};
use cleanroom_room::run::RunConfig;
use cleanroom_verify::audit;

const MARKER_FILE: &str = ".cleanroom-demo";
/// Campaigns and their share of impressions; `pilot-x` is tiny, so the guard drops it.
const CAMPAIGNS: &[(&str, f64)] = &[
    ("spring-sale", 0.30),
    ("brand-awareness", 0.25),
    ("retargeting", 0.20),
    ("new-product", 0.15),
    ("loyalty", 0.0996),
    ("pilot-x", 0.0004),
];
const SITES: &[&str] = &[
    "news.example",
    "sports.example",
    "recipes.example",
    "tech.example",
];

pub const DEMO_SQL: &str = "WITH exposed AS (
    SELECT campaign, user_id_hash, COUNT(*) AS imps
    FROM impressions GROUP BY campaign, user_id_hash
), converted AS (
    SELECT user_id_hash, COUNT(*) AS conversions, SUM(value) AS value
    FROM conversions GROUP BY user_id_hash
)
SELECT e.campaign,
       COUNT(*) AS reach,
       SUM(e.imps) AS impressions,
       COUNT(c.user_id_hash) AS converters,
       ROUND(100.0 * COUNT(c.user_id_hash) / COUNT(*), 2) AS conversion_rate_pct,
       ROUND(SUM(c.value), 2) AS conversion_value
FROM exposed e LEFT JOIN converted c ON e.user_id_hash = c.user_id_hash
GROUP BY e.campaign
ORDER BY reach DESC";

fn user_hash(i: u64) -> String {
    hex::encode(&Sha256::digest(format!("demo-user-{i}"))[..12])
}

/// Synthetic publisher impressions and advertiser conversions (CSV with headers).
pub fn generate(impressions: usize, seed: u64) -> (String, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = (impressions as u64 / 4).max(100);
    let mut imp = String::from("user_id_hash,campaign,ts,site,ip_address\n");
    let mut exposed = Vec::with_capacity(impressions);
    let t0 = 1_767_225_600i64; // 2026-01-01
    for _ in 0..impressions {
        // A few heavy users, many light ones.
        let u = (rng.gen_range(0.0f64..1.0).powi(2) * users as f64) as u64;
        exposed.push(u);
        let mut x: f64 = rng.r#gen();
        let mut campaign = CAMPAIGNS[0].0;
        for (c, share) in CAMPAIGNS {
            if x < *share {
                campaign = c;
                break;
            }
            x -= share;
        }
        let ts = t0 + rng.gen_range(0..30 * 86_400);
        let site = SITES[rng.gen_range(0..SITES.len())];
        let _ = writeln!(
            imp,
            "{},{campaign},{ts},{site},10.{}.{}.{}",
            user_hash(u),
            u % 256,
            (u / 256) % 256,
            rng.gen_range(1..255)
        );
    }
    let conversions = impressions / 5;
    let mut conv = String::from("user_id_hash,ts,value,order_id\n");
    for n in 0..conversions {
        // Half the conversions come from exposed users, more often the more they were
        // exposed (a random impression's user); the rest from outside the audience.
        let u = if rng.gen_bool(0.5) {
            exposed[rng.gen_range(0..exposed.len())]
        } else {
            users + rng.gen_range(0..users)
        };
        let ts = t0 + rng.gen_range(0..30 * 86_400);
        let value = (rng.gen_range(500..20_000) as f64) / 100.0;
        let _ = writeln!(conv, "{},{ts},{value:.2},ORD-{n:07}", user_hash(u));
    }
    (imp, conv)
}

/// A key broker as the contract names it: its URL and the key it is pinned to.
#[derive(Debug, Clone)]
pub struct BrokerRef {
    pub url: String,
    /// SHA-256 (hex) of the broker's TLS SubjectPublicKeyInfo (`None` for plain http).
    pub spki_sha256: Option<String>,
}

impl BrokerRef {
    /// The `broker = ..., broker_spki_sha256 = ...` fields of a dataset's `key`.
    pub fn key_fields(&self) -> String {
        match &self.spki_sha256 {
            Some(pin) => format!("broker = \"{}\", broker_spki_sha256 = \"{pin}\"", self.url),
            None => format!("broker = \"{}\"", self.url),
        }
    }
}

pub fn contract_text(
    members: &[String],
    measurement: &str,
    publisher_kbs: &BrokerRef,
    advertiser_kbs: &BrokerRef,
) -> String {
    let publisher_kbs = publisher_kbs.key_fields();
    let advertiser_kbs = advertiser_kbs.key_fields();
    format!(
        r#"# Cleanroom demo contract: publisher x advertiser campaign measurement.
id = "demo-campaign-measurement"
version = 1

{members}
[[datasets]]
name = "impressions"
owner = "publisher"
format = "parquet"
schema = [
  {{ name = "user_id_hash", type = "string" }},
  {{ name = "campaign", type = "string" }},
  {{ name = "ts", type = "int64" }},
  {{ name = "site", type = "string" }},
  {{ name = "ip_address", type = "string" }},
]
# ip_address is never readable in the room.
allowed_fields = ["user_id_hash", "campaign", "ts", "site"]
location = "data/impressions.parquet.sealed"
key = {{ {publisher_kbs}, resource = "publisher/dataset/impressions" }}
min_rows = 1000
# Per-row results about the publisher's users (e.g. a score per user) may go to the publisher.
row_recipients = ["publisher"]
# Differential privacy: DP releases from this dataset may spend ε 3 in all, at most 1 per
# run; a user counts in at most 6 groups of a release (the six campaigns).
dp = {{ epsilon = 3.0, max_epsilon_per_run = 1.0, max_groups_per_unit = 6 }}
# A user is the privacy unit: the guard counts distinct users in every released group.
privacy_unit = "user_id_hash"
# What SQL may do with each field: campaign and site may be grouped and released, ts only
# filtered on, user_id_hash only joined on (never released).
columns = {{ dimensions = ["campaign", "site"], filters = ["ts"], join_keys = ["user_id_hash"] }}

[[datasets]]
name = "conversions"
owner = "advertiser"
format = "csv"
schema = [
  {{ name = "user_id_hash", type = "string" }},
  {{ name = "ts", type = "int64" }},
  {{ name = "value", type = "float64" }},
  {{ name = "order_id", type = "string" }},
]
allowed_fields = ["user_id_hash", "ts", "value"]
location = "data/conversions.csv.sealed"
key = {{ {advertiser_kbs}, resource = "advertiser/dataset/conversions" }}
min_rows = 1000
privacy_unit = "user_id_hash"
# value leaves only inside COUNT, SUM or AVG.
columns = {{ metrics = ["value"], filters = ["ts"], join_keys = ["user_id_hash"] }}

# The advertiser's conversion model, trained in the room and sealed back by the advertiser.
[[datasets]]
name = "conversion-model"
owner = "advertiser"
format = "file"
location = "data/conversion-model.sealed"
key = {{ {advertiser_kbs}, resource = "advertiser/model/conversion-model" }}
# The advertiser lets its model score the publisher's audience, scores to the publisher.
row_recipients = ["publisher"]

[attestation]
# This machine has no SEV-SNP or TDX: the demo uses the simulated platform. INSECURE.
platforms = ["sim"]
allow_simulated = true
sim = {{ measurements = ["{measurement}"] }}

[governance]
proposers = ["advertiser"]

[outputs]
recipients = ["advertiser", "publisher"]
model_recipients = ["advertiser"]

[guards]
min_group_size = 50
max_output_rows = 100000
"#,
        members = members.join("\n")
    )
}

/// The demo's differentially private query: distinct users reached per campaign.
pub const DP_REACH_SQL: &str =
    "SELECT campaign, COUNT(DISTINCT user_id_hash) AS reach FROM impressions GROUP BY campaign";

/// The demo's DP workload: `sql` over the publisher's impressions, released with Laplace
/// noise spending `epsilon`.
pub fn dp_workload_text(sql: &str, epsilon: f64) -> String {
    format!(
        r#"name = "campaign-reach-dp"
kind = "query"
inputs = ["impressions"]
sql = """
{sql}
"""
dp = {{ epsilon = {epsilon:?}, mechanism = "laplace" }}

[output]
recipients = ["advertiser"]
format = "csv"
"#
    )
}

/// The demo's workload file for `sql`.
pub fn workload_text(sql: &str) -> String {
    format!(
        r#"name = "campaign-reach-and-conversion"
kind = "query"
inputs = ["impressions", "conversions"]
sql = """
{sql}
"""

[output]
recipients = ["advertiser"]
format = "csv"

[guards]
min_group_size = 50
"#
    )
}

fn step(out: &mut dyn Write, n: u32, text: &str) -> std::io::Result<()> {
    writeln!(out, "\n[{n}] {text}")
}

/// Step 8: a differentially private reach per campaign, and the budget left.
async fn dp_step(
    out: &mut dyn Write,
    parties: &Parties<'_>,
    base: &RunConfig,
) -> anyhow::Result<()> {
    step(
        out,
        8,
        "A differentially private reach per campaign: noise from OpenDP, ε 0.5 from the publisher's budget",
    )?;
    let cfg = parties.propose_and_approve(
        "reach-dp.toml",
        &dp_workload_text(DP_REACH_SQL, 0.5),
        None,
        base,
    )?;
    let report = run_workload(&cfg).await?;
    let v = open_output(parties, &report, ContentKind::Result, "", "advertiser")?;
    writeln!(
        out,
        "    {} campaigns released (a campaign's key appears only if its noisy reach passes the threshold):",
        v.opened.content.rows
    )?;
    print_table(out, &String::from_utf8_lossy(&v.opened.data))?;
    let text = fsutil::read_file(&parties.room.join(cleanroom_formats::audit::LOG_FILE))?;
    let (contract, _) =
        cleanroom_formats::load::load_signed_contract(parties.contract, parties.sigs)?;
    let entries = cleanroom_formats::audit::parse(&text)?;
    for l in cleanroom_verify::commands::budget::budgets(contract.contract(), &entries) {
        writeln!(
            out,
            "    budget of {}: ε {} spent of {}, {} left (cleanroom budget show --contract {} --log {})",
            l.dataset,
            l.spent,
            l.total,
            l.left(),
            parties.contract.display(),
            parties
                .room
                .join(cleanroom_formats::audit::LOG_FILE)
                .display()
        )?;
    }
    Ok(())
}

fn print_table(out: &mut dyn Write, csv: &str) -> std::io::Result<()> {
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        writeln!(out, "    {}", line.join("  "))?;
        if n == 0 {
            writeln!(
                out,
                "    {}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            )?;
        }
    }
    Ok(())
}

/// SQL the modules run through the `query` import: one row per exposed user.
const FEATURES_SQL: &str = "SELECT i.user_id_hash, LN(1.0 + COUNT(*)) AS imps, \
CAST(COUNT(DISTINCT i.site) AS DOUBLE) AS sites";

/// A module workload; the demo's modules read their features through the `query` import,
/// which the workload must declare (`[module] sql_access`, part of what owners approve).
fn module_workload(
    name: &str,
    kind: &str,
    inputs: &str,
    digest: &str,
    params: &str,
    output: &str,
) -> String {
    format!(
        "name = \"{name}\"\nkind = \"{kind}\"\ninputs = {inputs}\nmodule_digest = \"{digest}\"\n\n[module]\nsql_access = true\n\n[parameters]\n{params}\n[output]\n{output}"
    )
}

/// The members as the demo plays them: where their keys are, the signed contract, the room.
struct Parties<'a> {
    room: &'a Path,
    pubd: &'a Path,
    advd: &'a Path,
    contract: &'a Path,
    sigs: &'a Path,
}

impl Parties<'_> {
    fn sign_key(&self, member: &str) -> std::path::PathBuf {
        let d = if member == "publisher" {
            self.pubd
        } else {
            self.advd
        };
        d.join(format!("keys/{member}.sign.key"))
    }

    /// The advertiser (the contract's only proposer) proposes the workload written to
    /// `ROOM/<file>`, a module through `module publish` (which checks and stores the
    /// component); both owners approve the proposal. Returns the run configuration.
    fn propose_and_approve(
        &self,
        file: &str,
        text: &str,
        component: Option<&[u8]>,
        base: &RunConfig,
    ) -> anyhow::Result<RunConfig> {
        let w = self.room.join(file);
        fsutil::write_file_atomic(&w, text.as_bytes(), FileMode::Public)?;
        let proposal = workload_cmd::default_proposal(&w);
        let advertiser = self.sign_key("advertiser");
        match component {
            Some(bytes) => {
                crate::signing::publish(
                    bytes,
                    self.contract,
                    self.sigs,
                    &w,
                    &advertiser,
                    &proposal,
                    Some(self.room),
                )?;
            }
            None => {
                crate::signing::propose(
                    self.contract,
                    self.sigs,
                    &w,
                    &advertiser,
                    None,
                    &proposal,
                )?;
            }
        }
        let approvals = workload_cmd::default_approvals(&w);
        for name in ["publisher", "advertiser"] {
            crate::signing::approve(
                self.contract,
                self.sigs,
                &w,
                &self.sign_key(name),
                Some(&proposal),
                &approvals,
                |p| p,
            )?;
        }
        Ok(RunConfig {
            workload: w,
            approvals,
            proposal,
            ..base.clone()
        })
    }

    /// [`Self::propose_and_approve`], then the room runs it.
    async fn propose_approve_run(
        &self,
        file: &str,
        text: &str,
        component: Option<&[u8]>,
        base: &RunConfig,
    ) -> anyhow::Result<cleanroom_room::run::RunReport> {
        let cfg = self.propose_and_approve(file, text, component, base)?;
        run_workload(&cfg).await
    }
}

/// Open the output of `report` that is the `kind` named `name`, as `member`, after checking
/// that it is signed by the run's attested key (its evidence verified against the contract).
fn open_output(
    parties: &Parties<'_>,
    report: &cleanroom_room::run::RunReport,
    kind: ContentKind,
    name: &str,
    member: &str,
) -> anyhow::Result<cleanroom_verify::output::VerifiedOutput> {
    use cleanroom_formats::envelope::EnvelopeError;
    use cleanroom_verify::output::{OutputError, open_verified};
    let dir = if member == "publisher" {
        parties.pubd
    } else {
        parties.advd
    };
    let sk = keys::encryption_key(&dir.join(format!("keys/{member}.enc.key")))?;
    let (signed, _) =
        cleanroom_formats::load::load_signed_contract(parties.contract, parties.sigs)?;
    let evidence = parties
        .room
        .join(format!("evidence/{}.json", report.run_id));
    let bundle = serde_json::from_slice(&fsutil::read_file(&evidence)?)?;
    let now = cleanroom_formats::clock::now_unix();
    for path in &report.outputs {
        let file = fsutil::read_file(path)?;
        match open_verified(&file, member, &sk, signed.contract(), &bundle, now) {
            Ok(v) if v.opened.content.kind == kind && v.opened.content.name == name => {
                return Ok(v);
            }
            Ok(_) | Err(OutputError::Envelope(EnvelopeError::NotARecipient(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    bail!(
        "run {} has no {kind} output `{name}` for {member}",
        report.run_id
    )
}

/// Steps 8 to 10: train a model on the joined data (weights to the advertiser only), score
/// the publisher's audience with it (a guarded histogram to the publisher), then per-user
/// scores to the publisher, which both owners allowed in the contract (`row_recipients`).
async fn module_steps(
    out: &mut dyn Write,
    parties: &Parties<'_>,
    base: &RunConfig,
) -> anyhow::Result<()> {
    let Parties { room, advd, .. } = *parties;
    step(
        out,
        9,
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
    let report = parties
        .propose_approve_run("training.toml", &text, Some(&training), base)
        .await?;
    writeln!(
        out,
        "    the advertiser published module {}... (imports checked) and proposed the workload; both owners approved; the room ran it",
        &t_digest[..16]
    )?;
    let metrics: std::collections::BTreeMap<String, f64> = serde_json::from_slice(
        &open_output(parties, &report, ContentKind::Metrics, "", "advertiser")?
            .opened
            .data,
    )?;
    writeln!(
        out,
        "    the advertiser opens the metrics: {} users, accuracy {:.3}, loss {:.3}",
        metrics.get("rows").copied().unwrap_or(0.0),
        metrics.get("accuracy").copied().unwrap_or(0.0),
        metrics.get("loss").copied().unwrap_or(0.0)
    )?;
    let model = open_output(
        parties,
        &report,
        ContentKind::Artifact,
        "model",
        "advertiser",
    )?
    .opened
    .data;
    writeln!(
        out,
        "    and the model weights ({} bytes of JSON), sealed to it alone",
        model.len()
    )?;

    step(
        out,
        10,
        "Inference: the publisher's audience is scored with the advertiser's model; only a guarded histogram leaves, to the publisher",
    )?;
    // The advertiser seals its model as a dataset of the contract and registers its key.
    let model_plain = advd.join("conversion-model.json");
    fsutil::write_file_atomic(&model_plain, &model, FileMode::Secret)?;
    let parsed = cleanroom_formats::load::load_signed_contract(parties.contract, parties.sigs)?
        .0
        .contract()
        .clone();
    let model_key = advd.join("conversion-model.key");
    let _k = crate::sealing::seal_with_key_file(
        &parsed,
        parties.contract,
        "conversion-model",
        &model_plain,
        &room.join("data/conversion-model.sealed"),
        None,
        Some(&model_key),
        cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
    )?
    .keys;
    std::fs::remove_file(&model_plain)?;
    let store = kbs_cmd::open_store(&advd.join("kbs.db"), &advd.join("kbs.master-key"))?;
    kbs_cmd::put(
        &store,
        parties.contract,
        parties.sigs,
        "conversion-model",
        &model_key,
        &room.join("data/conversion-model.sealed"),
    )?;
    writeln!(
        out,
        "    the advertiser sealed its model as dataset `conversion-model` and registered its key"
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
    let report = parties
        .propose_approve_run("inference.toml", &text, Some(&inference), base)
        .await?;
    let content = open_output(
        parties,
        &report,
        ContentKind::Table,
        "score_histogram",
        "publisher",
    )?
    .opened
    .data;
    writeln!(
        out,
        "    the publisher opens the score histogram (buckets under 50 users dropped):"
    )?;
    print_table(out, &String::from_utf8_lossy(&content))?;

    step(
        out,
        11,
        "Per-user scores: both owners listed the publisher in `row_recipients`, so a row-level scoring run may send it one score per user",
    )?;
    let text = inference_workload(
        "audience-scores-per-user",
        "output = \"scores\"\nkey = \"user_id_hash\"\n",
        "row_level = true\n",
    );
    let report = parties
        .propose_approve_run("scores.toml", &text, Some(&inference), base)
        .await?;
    let content = open_output(parties, &report, ContentKind::Table, "scores", "publisher")?
        .opened
        .data;
    let content = String::from_utf8_lossy(&content);
    writeln!(
        out,
        "    the publisher opens {} per-user scores (first 5 shown); the advertiser receives none:",
        content.lines().count().saturating_sub(1)
    )?;
    print_table(out, &content.lines().take(6).collect::<Vec<_>>().join("\n"))?;
    Ok(())
}

/// Step 11: any member can stop the room (I3). The publisher suspends: the room and both
/// brokers record it, the next run is refused before any key is requested; then it resumes.
async fn suspension_step(
    out: &mut dyn Write,
    parties: &Parties<'_>,
    cfg: &RunConfig,
) -> anyhow::Result<()> {
    use crate::commands::contract::ContractFiles;
    use crate::commands::governance::{Delivery, deliver};
    use cleanroom_policy::MessageType;
    step(
        out,
        12,
        "Any member can stop the room: the publisher suspends it, the next run is refused, the publisher resumes",
    )?;
    let delivery = Delivery {
        contract: ContractFiles {
            contract: parties.contract.to_path_buf(),
            sigs: Some(parties.sigs.to_path_buf()),
        },
        key: parties.sign_key("publisher"),
        reason: "quarterly review".into(),
        room: Some(parties.room.to_path_buf()),
        offline: false,
    };
    let done = deliver(MessageType::Suspend, &delivery).await?;
    writeln!(
        out,
        "    suspension signed by the publisher, recorded in the room and at {} brokers",
        done.brokers.iter().filter(|(_, r)| r.is_ok()).count()
    )?;
    match run_workload(cfg).await {
        Err(e) => writeln!(out, "    the next run is refused: {e}")?,
        Ok(_) => bail!("a run started while the room was suspended"),
    }
    deliver(MessageType::Resume, &delivery).await?;
    writeln!(
        out,
        "    the publisher resumes; runs may start again (only the member who suspended can resume)"
    )?;
    Ok(())
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER_FILE).exists() {
            bail!(
                "--dir {}: exists and is not a demo directory; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("clearing the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    fsutil::write_file_atomic(
        &dir.join(MARKER_FILE),
        b"made by `cleanroom demo`; safe to delete\n",
        FileMode::Public,
    )?;
    Ok(())
}

pub fn run(dir: &Path, impressions: usize) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(scenario(dir, impressions, &mut std::io::stdout().lock()))?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's room after its steps 1 to 5: the members' keys, their two brokers running
/// (stopped when this is dropped), the signed contract, the sealed data registered at the
/// brokers, and the demo query proposed and approved.
#[derive(Debug)]
pub struct DemoRoom {
    pub brokers: Vec<BrokerProcess>,
    pub publisher: PathBuf,
    pub advertiser: PathBuf,
    pub room: PathBuf,
    pub contract: PathBuf,
    pub sigs: PathBuf,
    /// The run configuration every workload of the demo starts from (sim attestation).
    pub base: RunConfig,
    /// The demo query's run configuration (`ROOM/workload.toml`, proposed and approved).
    pub query: RunConfig,
}

impl DemoRoom {
    fn parties(&self) -> Parties<'_> {
        Parties {
            room: &self.room,
            pubd: &self.publisher,
            advd: &self.advertiser,
            contract: &self.contract,
            sigs: &self.sigs,
        }
    }

    /// `member`'s signing key file (`publisher` or `advertiser`).
    pub fn sign_key(&self, member: &str) -> PathBuf {
        self.parties().sign_key(member)
    }
}

/// The whole demo, narrated to `out`; returns the run's report (phase timings included).
pub async fn scenario(
    dir: &Path,
    impressions: usize,
    out: &mut dyn Write,
) -> anyhow::Result<cleanroom_room::run::RunReport> {
    let demo = setup(dir, impressions, out)?;
    let parties = demo.parties();
    let (room, base, cfg, contract, advd) = (
        &demo.room,
        &demo.base,
        &demo.query,
        &demo.contract,
        &demo.advertiser,
    );
    let (signed, _) = cleanroom_formats::load::load_signed_contract(&demo.contract, &demo.sigs)?;

    step(
        out,
        6,
        "The room attests itself, gets both keys from the brokers, runs the query, applies the guards, seals the result",
    )?;
    let report = run_workload(cfg).await?;
    cleanroom_room::commands::print_report(out, &report)?;

    step(
        out,
        7,
        "The advertiser opens the sealed result with its private key",
    )?;
    let output = report.outputs.first().context("the run wrote no output")?;
    let v = open_output(&parties, &report, ContentKind::Result, "", "advertiser")?;
    writeln!(
        out,
        "    signed by the run's host key {}..., the key its {} evidence binds; {} rows (campaigns reaching fewer than 50 users were dropped by the guard){}:",
        &v.host.host_key_hex[..16],
        v.host.claims.platform,
        v.opened.content.rows,
        if v.opened.header.insecure {
            "; marked INSECURE (simulated attestation)"
        } else {
            ""
        }
    )?;
    print_table(out, &String::from_utf8_lossy(&v.opened.data))?;

    dp_step(out, &parties, base).await?;
    module_steps(out, &parties, cfg).await?;
    suspension_step(out, &parties, cfg).await?;

    step(
        out,
        13,
        "Anyone verifies the audit log against the runs' evidence",
    )?;
    let log = room.join(cleanroom_formats::audit::LOG_FILE);
    let runs = cleanroom_verify::commands::audit::load_evidence(
        &[room.join("evidence")],
        signed.contract(),
        cleanroom_formats::clock::now_unix(),
    )?;
    let (s, a) = audit::verify_against_evidence(&fsutil::read_file(&log)?, &[], &runs)?;
    writeln!(
        out,
        "    audit log verified: {} entries, {} checkpoint(s) signed by the key bound in their run's evidence ({} bundles verified against the contract), head {}",
        s.entries,
        a.checkpoints,
        runs.len(),
        &s.head[..16]
    )?;
    if a.uncovered_tail > 0 {
        writeln!(
            out,
            "    the last {} entries (the refused run, which never attested) are covered by no attested checkpoint",
            a.uncovered_tail
        )?;
    }
    drop(demo.brokers);
    writeln!(
        out,
        "\nDone. Try: cleanroom audit show --log {}",
        log.display()
    )?;
    writeln!(
        out,
        "          cleanroom audit verify --log {} --evidence {} --contract {}",
        log.display(),
        room.join("evidence").display(),
        contract.display()
    )?;
    writeln!(
        out,
        "          cleanroom output open --in {} --name advertiser --key {} --contract {}",
        output.display(),
        advd.join("keys/advertiser.enc.key").display(),
        contract.display()
    )?;
    Ok(report)
}

/// The demo's steps 1 to 5, narrated to `out`: keys, brokers, contract, sealed data, the
/// query proposed and approved. `dir` is emptied first (it must be new or a demo's).
pub fn setup(dir: &Path, impressions: usize, out: &mut dyn Write) -> anyhow::Result<DemoRoom> {
    if impressions < 5_000 {
        bail!("--impressions {impressions}: use at least 5000 so the contract's min_rows holds");
    }
    prepare_dir(dir)?;
    writeln!(
        out,
        "Cleanroom demo: a publisher and an advertiser measure campaign reach and conversions"
    )?;
    writeln!(
        out,
        "without showing each other their data. Everything is written under {}.",
        dir.display()
    )?;
    writeln!(
        out,
        "NOTE: this machine has no SEV-SNP/TDX, so the room uses SIMULATED attestation (INSECURE)."
    )?;

    let (pubd, advd, room) = (
        dir.join("publisher"),
        dir.join("advertiser"),
        dir.join("room"),
    );
    step(
        out,
        1,
        "Each member makes an ECDSA P-384 signing key and an X25519 key for sealed results",
    )?;
    let mut entries = Vec::new();
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        entries.push(crate::keygen::keygen(name, &d.join("keys"))?);
        writeln!(out, "    {name}: keys in {}", d.join("keys").display())?;
    }

    step(
        out,
        2,
        "Each data owner starts its own key broker on 127.0.0.1 (SQLite, keys sealed under a master key; HTTPS with a self-signed key the contract pins)",
    )?;
    let mut brokers = Vec::new();
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        let b = BrokerProcess::init_and_start(d)?;
        writeln!(
            out,
            "    {name}'s broker (cleanroom-kbs, its own process): {} (key SPKI SHA-256 {})",
            b.url,
            b.spki_sha256.as_deref().unwrap_or("none: plain HTTP")
        )?;
        brokers.push(b);
    }
    let urls: Vec<BrokerRef> = brokers
        .iter()
        .map(|b| BrokerRef {
            url: b.url.clone(),
            spki_sha256: b.spki_sha256.clone(),
        })
        .collect();

    step(
        out,
        3,
        "The members write the contract and both sign it (COSE_Sign1, ES384)",
    )?;
    let room_bin = room_binary()?;
    let measurement = hex::encode(Sha384::digest(fsutil::read_file(&room_bin)?));
    let contract = room.join("contract.toml");
    fsutil::write_file_atomic(
        &contract,
        contract_text(&entries, &measurement, &urls[0], &urls[1]).as_bytes(),
        FileMode::Public,
    )?;
    let sigs = contract_cmd::default_sigs(&contract);
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        crate::signing::sign_contract(&contract, &d.join(format!("keys/{name}.sign.key")), &sigs)?;
    }
    let (signed, _) = cleanroom_formats::load::load_signed_contract(&contract, &sigs)?;
    writeln!(
        out,
        "    contract digest {} signed by publisher and advertiser",
        signed.digest()
    )?;
    writeln!(
        out,
        "    (sim measurement of the room binary {}: {}...)",
        room_bin.display(),
        &measurement[..24]
    )?;

    step(
        out,
        4,
        &format!(
            "The owners generate and seal their data ({impressions} impressions, {} conversions)",
            impressions / 5
        ),
    )?;
    let (imp, conv) = generate(impressions, 2026);
    let parsed = signed.contract().clone();
    for (name, d, ds, plain, file) in [
        ("publisher", &pubd, "impressions", &imp, "impressions.csv"),
        ("advertiser", &advd, "conversions", &conv, "conversions.csv"),
    ] {
        let plain_path = d.join(file);
        fsutil::write_file_atomic(&plain_path, plain.as_bytes(), FileMode::Secret)?;
        let location = parsed
            .dataset(ds)
            .expect("demo contract")
            .location
            .get_ref()
            .clone();
        let key_path = d.join(format!("{ds}.key"));
        let crate::sealing::Sealed { keys: k, rows, .. } = crate::sealing::seal_with_key_file(
            &parsed,
            &contract,
            ds,
            &plain_path,
            &room.join(&location),
            None,
            Some(&key_path),
            cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE,
        )?;
        // The owner's plaintext stays with the owner; the demo removes it so the demo
        // directory holds only sealed data.
        std::fs::remove_file(&plain_path)?;
        let store = kbs_cmd::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"));
        // The broker's own process holds the database open; registering through a second
        // connection is what `cleanroom kbs put` does too (SQLite WAL).
        let store = store?;
        let resource = kbs_cmd::put(
            &store,
            &contract,
            &sigs,
            ds,
            &key_path,
            &room.join(&location),
        )?;
        writeln!(
            out,
            "    {name}: {rows} rows of `{ds}` sealed as {} ({}); key registered at its broker as {resource}",
            room.join(&location).display(),
            match (parsed.dataset(ds).expect("demo").format, &k.withheld) {
                (cleanroom_policy::contract::DataFormat::Parquet, Some(_)) => format!(
                    "Parquet Modular Encryption; columns outside allowed_fields under a key that never leaves the {name}"
                ),
                (cleanroom_policy::contract::DataFormat::Parquet, None) =>
                    "Parquet Modular Encryption".to_string(),
                _ => "sealed stream".to_string(),
            }
        )?;
    }

    step(
        out,
        5,
        "The advertiser proposes the query (a signed proposal); both owners check it and approve its exact digest",
    )?;
    let parties = Parties {
        room: &room,
        pubd: &pubd,
        advd: &advd,
        contract: &contract,
        sigs: &sigs,
    };
    let base = RunConfig {
        contract: contract.clone(),
        contract_sigs: sigs.clone(),
        workload: room.join("workload.toml"),
        approvals: room.join("workload.toml.approvals"),
        proposal: room.join("workload.toml.proposal"),
        room_dir: room.clone(),
        data_dir: room.clone(),
        evidence: Arc::new(SimSource {
            measurement: hex::decode(&measurement)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("a SHA-384 is 48 bytes"))?,
            launch_digest: signed.digest().0,
        }),
        memory_limit: cleanroom_room::engine::DEFAULT_MEMORY_LIMIT,
        module: None,
        cancel: None,
    };
    let cfg =
        parties.propose_and_approve("workload.toml", &workload_text(DEMO_SQL), None, &base)?;
    writeln!(
        out,
        "    workload digest {} proposed by the advertiser, approved by publisher and advertiser",
        cleanroom_formats::load::load_workload(&cfg.workload)?
            .digest()
            .hex()
    )?;

    Ok(DemoRoom {
        brokers,
        publisher: pubd,
        advertiser: advd,
        room,
        contract,
        sigs,
        base,
        query: cfg,
    })
}
