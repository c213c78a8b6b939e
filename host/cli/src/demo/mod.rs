//! `cleanroom demo`: two organisations combine sealed data under a signed contract, through
//! the room service.
//!
//! A publisher (ad impressions, Parquet) and an advertiser (conversions, CSV) each make
//! keys, run a key broker on 127.0.0.1, seal their data and sign the contract (steps 1 to
//! 4, [`members`]). The operator starts the room service (`cleanroom-room serve`, simulated
//! attestation: INSECURE, this machine has no SEV-SNP/TDX); from then on each member acts
//! through its own `cleanroom room ...` processes (`members.rs`): verify the room, propose
//! and approve a reach/conversion query, run it (campaigns reaching fewer than 50 users are
//! dropped), fetch and open the sealed result; a differentially private reach; Wasm modules
//! that train a model (weights to the advertiser) and score the publisher's audience (a
//! guarded histogram, then per-user scores the contract allows to the publisher); a
//! suspension and a resumption; the audit log fetched and verified.
//!
//! [`setup`] (steps 1 to 5 in the room directory, without the service) is what `cleanroom
//! bench service` builds its load on.

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

use crate::processes::{BrokerProcess, room_binary};
use cleanroom_formats::fsutil;
use cleanroom_room::run::RunConfig;

mod members;

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

    /// The advertiser (the contract's only proposer) proposes the query workload written to
    /// `ROOM/<file>`; both owners approve the proposal. Returns the run configuration.
    fn propose_and_approve(
        &self,
        file: &str,
        text: &str,
        base: &RunConfig,
    ) -> anyhow::Result<RunConfig> {
        let w = self.room.join(file);
        fsutil::write_file_atomic(&w, text.as_bytes(), FileMode::Public)?;
        let proposal = workload_cmd::default_proposal(&w);
        let advertiser = self.sign_key("advertiser");
        crate::signing::propose(self.contract, self.sigs, &w, &advertiser, None, &proposal)?;
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
    members::scenario(dir, impressions, &mut std::io::stdout().lock())?;
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

/// The members after the demo's steps 1 to 4: their keys, their brokers running (stopped
/// when this is dropped), the signed contract in `room/`, the sealed data registered.
#[derive(Debug)]
pub struct Members {
    pub brokers: Vec<BrokerProcess>,
    pub publisher: PathBuf,
    pub advertiser: PathBuf,
    /// The room's directory: the contract, its signatures, the sealed datasets.
    pub room: PathBuf,
    pub contract: PathBuf,
    pub sigs: PathBuf,
    /// The `sim` measurement the contract lists (SHA-384 of the room binary), hex.
    pub measurement: String,
}

/// The demo's steps 1 to 5, narrated to `out`: keys, brokers, contract, sealed data, the
/// query proposed and approved in the room directory. `dir` is emptied first (it must be
/// new or a demo's).
pub fn setup(dir: &Path, impressions: usize, out: &mut dyn Write) -> anyhow::Result<DemoRoom> {
    let Members {
        brokers,
        publisher: pubd,
        advertiser: advd,
        room,
        contract,
        sigs,
        measurement,
    } = members(dir, impressions, out)?;
    let (signed, _) = cleanroom_formats::load::load_signed_contract(&contract, &sigs)?;
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
    let cfg = parties.propose_and_approve("workload.toml", &workload_text(DEMO_SQL), &base)?;
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

/// The demo's steps 1 to 4, narrated to `out`: keys, brokers, contract, sealed data. `dir`
/// is emptied first (it must be new or a demo's).
pub fn members(dir: &Path, impressions: usize, out: &mut dyn Write) -> anyhow::Result<Members> {
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

    Ok(Members {
        brokers,
        publisher: pubd,
        advertiser: advd,
        room,
        contract,
        sigs,
        measurement,
    })
}
