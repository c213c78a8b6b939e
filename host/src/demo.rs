//! `cleanroom demo`: two organisations combine sealed data under a signed contract.
//!
//! A publisher (ad impressions, Parquet) and an advertiser (conversions, CSV) each make
//! keys, run a key broker on 127.0.0.1, seal their data, sign the contract and approve a
//! reach/conversion query; the room runs it under simulated attestation (INSECURE: this
//! machine has no SEV-SNP/TDX), drops campaigns reaching fewer than 50 users, seals the
//! result to the advertiser, who opens it; anyone verifies the audit log.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::attestation::{self, SimSource};
use crate::commands::{
    contract as contract_cmd, dataset, kbs as kbs_cmd, member, workload as workload_cmd,
};
use crate::kbs::server;
use crate::kbs::store::{MasterKey, Store};
use crate::run::{RunConfig, run as run_workload};
use crate::{audit, fsutil, keys};

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
    let t0 = 1_767_225_600i64; // 2026-01-01
    for _ in 0..impressions {
        let u = rng.gen_range(0..users);
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
        // Half the converters saw ads; the rest are outside the publisher's audience.
        let u = if rng.gen_bool(0.5) {
            rng.gen_range(0..users)
        } else {
            users + rng.gen_range(0..users)
        };
        let ts = t0 + rng.gen_range(0..30 * 86_400);
        let value = (rng.gen_range(500..20_000) as f64) / 100.0;
        let _ = writeln!(conv, "{},{ts},{value:.2},ORD-{n:07}", user_hash(u));
    }
    (imp, conv)
}

pub fn contract_text(
    members: &[String],
    measurement: &str,
    publisher_kbs: &str,
    advertiser_kbs: &str,
) -> String {
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
key = {{ broker = "{publisher_kbs}", resource = "publisher/dataset/impressions" }}
min_rows = 1000

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
key = {{ broker = "{advertiser_kbs}", resource = "advertiser/dataset/conversions" }}
min_rows = 1000

[attestation]
# This machine has no SEV-SNP or TDX: the demo uses the simulated platform. INSECURE.
platforms = ["sim"]
allow_simulated = true
sim = {{ measurements = ["{measurement}"] }}

[governance]
proposers = ["advertiser"]

[outputs]
recipients = ["advertiser"]

[guards]
min_group_size = 50
max_output_rows = 1000
"#,
        members = members.join("\n")
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
        false,
    )?;
    Ok(())
}

pub fn run(dir: &Path, impressions: usize) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(scenario(dir, impressions, &mut std::io::stdout().lock()))?;
    Ok(ExitCode::SUCCESS)
}

/// The whole demo, narrated to `out`; returns the run's report (phase timings included).
pub async fn scenario(
    dir: &Path,
    impressions: usize,
    out: &mut dyn Write,
) -> anyhow::Result<crate::run::RunReport> {
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
        entries.push(member::keygen(name, &d.join("keys"))?);
        writeln!(out, "    {name}: keys in {}", d.join("keys").display())?;
    }

    step(
        out,
        2,
        "Each data owner starts its own key broker on 127.0.0.1 (SQLite, keys sealed under a master key)",
    )?;
    let mut brokers = Vec::new();
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        let mk = MasterKey::generate();
        fsutil::write_file_atomic(
            &d.join("kbs.master-key"),
            mk.to_file_text().as_bytes(),
            true,
        )?;
        let store = Store::init(&d.join("kbs.db"), mk)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let b = server::spawn(store, listener)?;
        writeln!(out, "    {name}'s broker: http://{}", b.addr)?;
        brokers.push(b);
    }
    let urls: Vec<String> = brokers
        .iter()
        .map(|b| format!("http://{}", b.addr))
        .collect();

    step(
        out,
        3,
        "The members write the contract and both sign it (COSE_Sign1, ES384)",
    )?;
    let measurement = hex::encode(attestation::self_measurement()?);
    let contract = room.join("contract.toml");
    fsutil::write_file_atomic(
        &contract,
        contract_text(&entries, &measurement, &urls[0], &urls[1]).as_bytes(),
        false,
    )?;
    let sigs = contract_cmd::default_sigs(&contract);
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        contract_cmd::sign(&contract, &d.join(format!("keys/{name}.sign.key")), &sigs)?;
    }
    let (signed, _) = crate::run::load_signed_contract(&contract, &sigs)?;
    writeln!(
        out,
        "    contract digest {} signed by publisher and advertiser",
        signed.digest()
    )?;
    writeln!(
        out,
        "    (sim measurement of this binary: {}...)",
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
        fsutil::write_file_atomic(&plain_path, plain.as_bytes(), true)?;
        let location = parsed
            .dataset(ds)
            .expect("demo contract")
            .location
            .get_ref()
            .clone();
        let key_path = d.join(format!("{ds}.key"));
        let (k, rows) = dataset::seal(
            &parsed,
            &contract,
            ds,
            &plain_path,
            &room.join(&location),
            None,
            crate::seal::stream::DEFAULT_SEGMENT_SIZE,
        )?;
        crate::seal::keyfile::write(&key_path, &k, ds)?;
        // The owner's plaintext stays with the owner; the demo removes it so the demo
        // directory holds only sealed data.
        std::fs::remove_file(&plain_path)?;
        let store = kbs_cmd::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"));
        // The broker's own process holds the database open; registering through a second
        // connection is what `cleanroom kbs put` does too (SQLite WAL).
        let store = store?;
        let resource = kbs_cmd::put(&store, &contract, &sigs, ds, &key_path)?;
        writeln!(
            out,
            "    {name}: {rows} rows of `{ds}` sealed as {} ({}); key registered at its broker as {resource}",
            room.join(&location).display(),
            if parsed.dataset(ds).expect("demo").format
                == cleanroom_policy::contract::DataFormat::Parquet
            {
                "Parquet Modular Encryption"
            } else {
                "sealed stream"
            }
        )?;
    }

    step(
        out,
        5,
        "The advertiser proposes the query; both owners approve its exact digest",
    )?;
    let workload = room.join("workload.toml");
    let wtext = workload_text(DEMO_SQL);
    fsutil::write_file_atomic(&workload, wtext.as_bytes(), false)?;
    let approvals = workload_cmd::default_approvals(&workload);
    for (name, d) in [("publisher", &pubd), ("advertiser", &advd)] {
        workload_cmd::approve(
            &contract,
            &sigs,
            &workload,
            &d.join(format!("keys/{name}.sign.key")),
            &approvals,
        )?;
    }
    writeln!(
        out,
        "    workload digest {} approved by publisher and advertiser",
        crate::run::load_workload(&workload)?.digest().hex()
    )?;

    step(
        out,
        6,
        "The room attests itself, gets both keys from the brokers, runs the query, applies the guards, seals the result",
    )?;
    let cfg = RunConfig {
        contract: contract.clone(),
        contract_sigs: sigs.clone(),
        workload: workload.clone(),
        approvals: approvals.clone(),
        room_dir: room.clone(),
        data_dir: room.clone(),
        evidence: Arc::new(SimSource {
            measurement: attestation::self_measurement()?,
            launch_digest: signed.digest().0,
        }),
        memory_limit: crate::engine::DEFAULT_MEMORY_LIMIT,
    };
    let report = run_workload(&cfg).await?;
    crate::commands::run::print_report(out, &report)?;

    step(
        out,
        7,
        "The advertiser opens the sealed result with its private key",
    )?;
    let file = fsutil::read_file(&report.output)?;
    let sk = keys::encryption_key(&advd.join("keys/advertiser.enc.key"))?;
    let (h, content) = crate::seal::envelope::open(&file, "advertiser", &sk)?;
    writeln!(
        out,
        "    {} rows (campaigns reaching fewer than 50 users were dropped by the guard){}:",
        h.rows,
        if h.insecure {
            "; marked INSECURE (simulated attestation)"
        } else {
            ""
        }
    )?;
    print_table(out, &String::from_utf8_lossy(&content))?;

    step(out, 8, "Anyone verifies the audit log")?;
    let log = room.join(audit::LOG_FILE);
    let s = audit::verify_bytes(&fsutil::read_file(&log)?, &log.display().to_string())?;
    writeln!(
        out,
        "    audit log verified: {} entries, {} signed checkpoint(s), head {}",
        s.entries,
        s.checkpoints,
        &s.head[..16]
    )?;
    for b in brokers {
        b.stop().await;
    }
    writeln!(
        out,
        "\nDone. Try: cleanroom audit show --log {}",
        log.display()
    )?;
    writeln!(
        out,
        "          cleanroom output open --in {} --name advertiser --key {}",
        report.output.display(),
        advd.join("keys/advertiser.enc.key").display()
    )?;
    Ok(report)
}
