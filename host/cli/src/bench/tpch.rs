//! `cleanroom bench tpch`: the 22 TPC-H queries through the full clean-room path beside
//! plain DataFusion on the plaintext Parquet (and DuckDB, when installed), same data, same
//! process, alternating.
//!
//! One data owner holds the eight tables and runs its key broker (`cleanroom-kbs`, its own
//! process, HTTPS on 127.0.0.1); an analyst proposes each query and receives its sealed
//! result. The contract admits the queries its column roles allow (`k = 1`); a query the
//! query rules refuse by design (one releasing a customer's name, an order's key) is listed
//! as refused with the room's reason and left out of the geometric mean. The clean-room
//! figure is `cleanroom_room::run::run` end to end: attestation (the INSECURE `sim`
//! platform), key release, reading the encrypted Parquet in place, the query with its rules
//! and guards, sealing the output, the audit log. Plain DataFusion registers the plaintext
//! files and collects the query. Both use a memory pool of the same size.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use serde::Serialize;
use sha2::{Digest, Sha384};

use super::tpch_queries::{QUERIES, Query};
use crate::commands::{contract as contract_cmd, workload as workload_cmd};
use crate::processes::BrokerProcess;
use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::keyfile::{self, DatasetKeys};
use cleanroom_formats::{keys, tabular};
use cleanroom_kbs::commands as kbs_cmd;
use cleanroom_room::RoomError;
use cleanroom_room::attestation::SimSource;
use cleanroom_room::error::QueryRefusal;
use cleanroom_room::run::{RunConfig, RunReport};

/// Clients releasing keys at once in the throughput measurement.
const KEY_RELEASE_CLIENTS: usize = 4;

/// Rows per generated batch (and per Parquet write).
const BATCH_ROWS: usize = 64 * 1024;
/// Marks a directory this benchmark made, so a rerun may replace it.
const MARKER: &str = ".cleanroom-bench";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub sf: f64,
    pub queries: Vec<u8>,
    pub reps: usize,
    pub out: PathBuf,
    pub memory_limit: usize,
    pub duckdb: bool,
    /// Key releases timed one after another (0: no key-release measurement); the
    /// throughput measurement then runs for a tenth of a second per release.
    pub key_releases: usize,
}

impl Options {
    pub fn from_args(a: &super::TpchArgs) -> anyhow::Result<Self> {
        if !(a.sf > 0.0 && a.sf <= 1000.0) {
            bail!(
                "--sf {}: the scale factor must be above 0 and at most 1000",
                a.sf
            );
        }
        if a.reps == 0 {
            bail!("--reps 0: run each query at least once");
        }
        if let Some(q) = a.queries.iter().find(|q| !(1..=22).contains(*q)) {
            bail!("--queries: {q} is not a TPC-H query (1 to 22)");
        }
        if a.memory_limit_mib < 64 {
            bail!(
                "--memory-limit-mib {}: give the engines at least 64 MiB",
                a.memory_limit_mib
            );
        }
        Ok(Self {
            sf: a.sf,
            queries: if a.queries.is_empty() {
                (1..=22).collect()
            } else {
                a.queries.clone()
            },
            reps: a.reps,
            out: a.out.clone(),
            memory_limit: usize::try_from(a.memory_limit_mib << 20)
                .context("--memory-limit-mib is too large")?,
            duckdb: !a.no_duckdb,
            key_releases: a.key_releases,
        })
    }
}

/// The column roles the benchmark contract declares for one table.
struct Roles {
    dimensions: &'static [&'static str],
    metrics: &'static [&'static str],
    min_max: &'static [&'static str],
    join_keys: &'static [&'static str],
    filters: &'static [&'static str],
}

/// The eight tables, with the roles the benchmark contract gives their columns: the
/// catalogue (parts, suppliers, nations) is released as is; a customer's name, address,
/// phone and comment never leave; keys of customers and orders are join keys only; money
/// and quantities leave inside aggregates.
const TABLES: [(&str, Roles); 8] = [
    (
        "region",
        Roles {
            dimensions: &["r_name", "r_comment"],
            metrics: &[],
            min_max: &[],
            join_keys: &["r_regionkey"],
            filters: &[],
        },
    ),
    (
        "nation",
        Roles {
            dimensions: &["n_name", "n_comment"],
            metrics: &[],
            min_max: &[],
            join_keys: &["n_nationkey", "n_regionkey"],
            filters: &[],
        },
    ),
    (
        "supplier",
        Roles {
            dimensions: &[
                "s_suppkey",
                "s_name",
                "s_address",
                "s_phone",
                "s_acctbal",
                "s_comment",
            ],
            metrics: &["s_acctbal"],
            min_max: &[],
            join_keys: &["s_suppkey", "s_nationkey"],
            filters: &[],
        },
    ),
    (
        "part",
        Roles {
            dimensions: &[
                "p_partkey",
                "p_name",
                "p_mfgr",
                "p_brand",
                "p_type",
                "p_size",
                "p_container",
                "p_retailprice",
                "p_comment",
            ],
            metrics: &["p_retailprice"],
            min_max: &[],
            join_keys: &["p_partkey"],
            filters: &[],
        },
    ),
    (
        "partsupp",
        Roles {
            dimensions: &["ps_partkey", "ps_comment"],
            metrics: &["ps_availqty", "ps_supplycost"],
            min_max: &["ps_supplycost"],
            join_keys: &["ps_partkey", "ps_suppkey"],
            filters: &["ps_availqty", "ps_supplycost"],
        },
    ),
    (
        "customer",
        Roles {
            dimensions: &["c_mktsegment"],
            metrics: &["c_acctbal"],
            min_max: &[],
            join_keys: &["c_custkey", "c_nationkey"],
            filters: &["c_acctbal"],
        },
    ),
    (
        "orders",
        Roles {
            dimensions: &[
                "o_orderstatus",
                "o_orderdate",
                "o_orderpriority",
                "o_shippriority",
            ],
            metrics: &["o_totalprice"],
            min_max: &[],
            join_keys: &["o_orderkey", "o_custkey"],
            filters: &["o_comment", "o_totalprice"],
        },
    ),
    (
        "lineitem",
        Roles {
            dimensions: &[
                "l_returnflag",
                "l_linestatus",
                "l_shipdate",
                "l_commitdate",
                "l_receiptdate",
                "l_shipinstruct",
                "l_shipmode",
            ],
            metrics: &["l_quantity", "l_extendedprice", "l_discount", "l_tax"],
            min_max: &[],
            join_keys: &["l_orderkey", "l_partkey", "l_suppkey"],
            filters: &["l_quantity", "l_discount"],
        },
    ),
];

/// The generator of `table` at scale factor `sf`, as Arrow batches.
fn generator(
    table: &str,
    sf: f64,
) -> anyhow::Result<Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>>> {
    use tpchgen::generators as g;
    use tpchgen_arrow as a;
    Ok(match table {
        "region" => Box::new(
            a::RegionArrow::new(g::RegionGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "nation" => Box::new(
            a::NationArrow::new(g::NationGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "supplier" => Box::new(
            a::SupplierArrow::new(g::SupplierGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "part" => {
            Box::new(a::PartArrow::new(g::PartGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS))
        }
        "partsupp" => Box::new(
            a::PartSuppArrow::new(g::PartSuppGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "customer" => Box::new(
            a::CustomerArrow::new(g::CustomerGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "orders" => Box::new(
            a::OrderArrow::new(g::OrderGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        "lineitem" => Box::new(
            a::LineItemArrow::new(g::LineItemGenerator::new(sf, 1, 1)).with_batch_size(BATCH_ROWS),
        ),
        other => bail!("no TPC-H table `{other}`"),
    })
}

/// The contract's type name of an Arrow column type the generator produces.
fn contract_type(t: &DataType) -> anyhow::Result<String> {
    Ok(match t {
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::Date32 => "date".into(),
        DataType::Utf8 | DataType::Utf8View => "string".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        other => bail!("the TPC-H generator produced a {other} column"),
    })
}

/// The generator's schema with strings as `Utf8` (the contract's `string`).
fn contract_schema(generated: &Schema) -> SchemaRef {
    let fields: Vec<Field> = generated
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A generated batch as `schema` ([`contract_schema`] of the generator's) has it.
fn as_contract_batch(b: RecordBatch, schema: &SchemaRef) -> anyhow::Result<RecordBatch> {
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| Ok(arrow::compute::cast(c, f.data_type())?))
        .collect::<anyhow::Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Where one scale factor's data lives: `plain/<t>.parquet` (what DataFusion and DuckDB
/// read), `sealed/<t>.parquet.sealed` (what the room reads), `keys/<t>.key` (the owner's).
struct DataDir {
    root: PathBuf,
}

impl DataDir {
    fn plain(&self, t: &str) -> PathBuf {
        self.root.join("plain").join(format!("{t}.parquet"))
    }
    fn sealed_dir(&self) -> PathBuf {
        self.root.join("sealed")
    }
    fn sealed_name(t: &str) -> String {
        format!("{t}.parquet.sealed")
    }
    fn key(&self, t: &str) -> PathBuf {
        self.root.join("keys").join(format!("{t}.key"))
    }
    fn complete(&self) -> PathBuf {
        self.root.join(".complete")
    }
}

/// Generate every table once per scale factor: plaintext Parquet and its sealed copy,
/// written together from the same batches with the same writer settings (so the two differ
/// only by encryption). A rerun with the same SF reuses them.
fn generate(data: &DataDir, sf: f64, out: &mut dyn Write) -> anyhow::Result<Vec<(String, u64)>> {
    if let Ok(text) = std::fs::read_to_string(data.complete()) {
        let rows = serde_json::from_str(&text).context("reading the data directory's marker")?;
        writeln!(out, "    reusing the data in {}", data.root.display())?;
        return Ok(rows);
    }
    for d in ["plain", "sealed", "keys"] {
        std::fs::create_dir_all(data.root.join(d))
            .with_context(|| format!("creating {}", data.root.join(d).display()))?;
    }
    let progress = std::io::stderr().is_terminal();
    let mut counts = Vec::new();
    for (t, _) in &TABLES {
        let started = Instant::now();
        let keys = DatasetKeys::generate();
        let mut batches = generator(t, sf)?.peekable();
        let schema = match batches.peek() {
            Some(Ok(b)) => contract_schema(&b.schema()),
            Some(Err(e)) => bail!("generating {t}: {e}"),
            None => bail!("the generator made no rows of {t}"),
        };
        let allowed: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let plain_path = data.plain(t);
        let sealed_path = data.sealed_dir().join(DataDir::sealed_name(t));
        let tmp = |p: &Path| fsutil::with_suffix(p, ".partial");
        let mut plain = ArrowWriter::try_new(
            std::io::BufWriter::new(std::fs::File::create(tmp(&plain_path))?),
            schema.clone(),
            None,
        )?;
        let mut sealed = cleanroom_formats::parquet::encrypted_writer(
            std::io::BufWriter::new(std::fs::File::create(tmp(&sealed_path))?),
            &keys,
            &allowed,
            t,
            schema.clone(),
        )?;
        let mut rows = 0u64;
        for b in batches {
            let b = as_contract_batch(b.with_context(|| format!("generating {t}"))?, &schema)?;
            rows += b.num_rows() as u64;
            plain.write(&b)?;
            sealed.write(&b)?;
            if progress {
                eprint!("\r    {t}: {rows} rows");
            }
        }
        for (w, path) in [
            (plain.into_inner()?, &plain_path),
            (sealed.into_inner()?, &sealed_path),
        ] {
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            std::fs::rename(tmp(path), path)?;
        }
        keyfile::write(&data.key(t), &keys, t)?;
        if progress {
            eprint!("\r");
        }
        writeln!(
            out,
            "    {t}: {rows} rows, plaintext {} MB, sealed {} MB ({:.1} s)",
            std::fs::metadata(&plain_path)?.len() / 1_000_000,
            std::fs::metadata(&sealed_path)?.len() / 1_000_000,
            started.elapsed().as_secs_f64()
        )?;
        counts.push(((*t).to_string(), rows));
    }
    fsutil::write_file_atomic(
        &data.complete(),
        serde_json::to_string(&counts)?.as_bytes(),
        FileMode::Public,
    )?;
    Ok(counts)
}

/// The benchmark contract: one owner with the eight tables behind its broker, one analyst
/// who proposes and receives; every column allowed, roles as [`TABLES`] declares, `k = 1`.
fn contract_text(
    members: &[String],
    measurement: &str,
    broker: &crate::demo::BrokerRef,
    data: &DataDir,
    sf: f64,
) -> anyhow::Result<String> {
    let mut s = format!(
        "# Cleanroom TPC-H benchmark contract (SF {sf}): the owner's eight tables, the analyst's queries.\nid = \"tpch-benchmark\"\nversion = 1\n\n{}\n",
        members.join("\n")
    );
    let list = |cols: &[&str]| {
        cols.iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (t, roles) in &TABLES {
        // The schema as written to the plaintext file (its footer; no rows are read).
        let file = std::fs::File::open(data.plain(t))
            .with_context(|| format!("opening {}", data.plain(t).display()))?;
        let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("reading {}", data.plain(t).display()))?
            .schema()
            .clone();
        let fields = schema
            .fields()
            .iter()
            .map(|f| {
                Ok(format!(
                    "  {{ name = \"{}\", type = \"{}\" }},\n",
                    f.name(),
                    contract_type(f.data_type())?
                ))
            })
            .collect::<anyhow::Result<String>>()?;
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        write!(
            s,
            "[[datasets]]\nname = \"{t}\"\nowner = \"owner\"\nformat = \"parquet\"\nschema = [\n{fields}]\nallowed_fields = [{}]\nlocation = \"{}\"\nkey = {{ {}, resource = \"owner/dataset/{t}\" }}\nmin_rows = 1\ncolumns = {{ dimensions = [{}], metrics = [{}], min_max = [{}], join_keys = [{}], filters = [{}] }}\n\n",
            list(&names),
            DataDir::sealed_name(t),
            broker.key_fields(),
            list(roles.dimensions),
            list(roles.metrics),
            list(roles.min_max),
            list(roles.join_keys),
            list(roles.filters),
        )?;
    }
    write!(
        s,
        "[attestation]\n# No SEV-SNP or TDX here: the simulated platform. INSECURE.\nplatforms = [\"sim\"]\nallow_simulated = true\nsim = {{ measurements = [\"{measurement}\"] }}\n\n[governance]\nproposers = [\"analyst\"]\n\n[outputs]\nrecipients = [\"analyst\"]\n\n[guards]\nmin_group_size = 1\nmax_output_rows = 10000000\n"
    )?;
    Ok(s)
}

fn workload_text(q: &Query) -> String {
    let inputs = q
        .tables
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "name = \"tpch-q{}\"\nkind = \"query\"\ninputs = [{inputs}]\nsql = \"\"\"\n{}\n\"\"\"\n\n[output]\nrecipients = [\"analyst\"]\nformat = \"csv\"\n\n[guards]\nmin_group_size = 1\n",
        q.n, q.sql
    )
}

/// How the clean-room result compares with plain DataFusion's.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Agreement {
    /// Byte-identical CSV.
    Identical,
    /// The same rows in another order: the query's ORDER BY ties (or it has none).
    SameRowsOtherOrder,
    /// Different rows.
    Differs,
}

/// One query's figures.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub query: u8,
    /// Median wall time of the full clean-room run, ms.
    pub room_ms: f64,
    /// Median wall time of plain DataFusion (register, plan, collect), ms.
    pub datafusion_ms: f64,
    pub ratio: f64,
    /// The room's own phases (median over the repetitions), ms.
    pub room_phases: Vec<(String, f64)>,
    /// Peak resident memory of this process during the query, MiB.
    pub room_peak_mib: f64,
    pub datafusion_peak_mib: f64,
    pub rows: u64,
    pub agreement: Agreement,
    pub duckdb_ms: Option<f64>,
    pub duckdb_peak_mib: Option<f64>,
}

/// One query's outcome.
#[derive(Debug, Clone, Serialize)]
pub enum Outcome {
    Admitted(QueryFigures),
    /// The room's query rules refused the query: the refusal, and its text as the room
    /// gives it.
    Refused {
        query: u8,
        reason: String,
        #[serde(skip)]
        refusal: QueryRefusal,
    },
    /// The query needs more memory than the pool: the room refused it naming the limit
    /// (nothing spills in the room). Plain DataFusion's run of it beside, which may spill to
    /// disk or fail the same way.
    OverMemory {
        query: u8,
        limit_bytes: usize,
        datafusion: Result<(f64, f64), String>,
    },
}

/// What `cleanroom bench tpch` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sf: f64,
    pub reps: usize,
    pub machine: String,
    pub memory_pool_mib: u64,
    pub table_rows: Vec<(String, u64)>,
    pub outcomes: Vec<Outcome>,
    /// Geometric mean of the admitted queries' ratios.
    pub geomean_ratio: Option<f64>,
    pub duckdb: String,
    /// Key releases against the owner's broker, measured after the queries.
    pub key_release: Option<KeyReleaseFigures>,
}

/// One key release as the room makes it (TLS to the broker, `auth`, `attest` with fresh
/// `sim` evidence, one `resource`), against the owner's broker on 127.0.0.1.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReleaseFigures {
    /// Sequential releases timed.
    pub sequential: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Releases per second with `concurrency` clients releasing at once for `seconds`.
    pub per_second: f64,
    pub concurrency: usize,
    pub seconds: f64,
    /// Every release made: the sequential ones and the concurrent ones.
    pub total: usize,
}

impl Report {
    /// Every admitted query's clean-room result has DataFusion's rows.
    pub fn all_admitted_results_match(&self) -> bool {
        self.outcomes.iter().all(|o| match o {
            Outcome::Admitted(f) => f.agreement != Agreement::Differs,
            Outcome::Refused { .. } | Outcome::OverMemory { .. } => true,
        })
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Run `f`, returning its result, its wall time and this process's peak resident memory
/// while it ran.
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, u64) {
    super::reset_peak_rss();
    let started = Instant::now();
    let r = f.await;
    let took = started.elapsed();
    let peak = super::peak_rss_bytes()
        .or_else(super::rss_bytes)
        .unwrap_or(0);
    (r, took, peak)
}

/// Plain DataFusion on the plaintext Parquet: a fresh context (as the room makes one per
/// run) with a memory pool of the room's size, the query's tables registered, collected.
async fn plain_datafusion(
    data: &DataDir,
    q: &Query,
    memory_limit: usize,
) -> anyhow::Result<(SchemaRef, Vec<RecordBatch>)> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(memory_limit)))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    for t in q.tables {
        let path = data.plain(t);
        ctx.register_parquet(
            *t,
            path.to_str().context("a non-UTF-8 data path")?,
            ParquetReadOptions::default(),
        )
        .await?;
    }
    let df = ctx.sql(q.sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

fn agreement(room_csv: &[u8], df_csv: &[u8]) -> Agreement {
    if room_csv == df_csv {
        return Agreement::Identical;
    }
    fn sorted(b: &[u8]) -> Vec<&[u8]> {
        let mut l: Vec<&[u8]> = b.split(|c| *c == b'\n').collect();
        l.sort_unstable();
        l
    }
    if sorted(room_csv) == sorted(df_csv) {
        Agreement::SameRowsOtherOrder
    } else {
        Agreement::Differs
    }
}

/// The members and the room of one benchmark run.
struct Setup {
    base: RunConfig,
    run_dir: PathBuf,
    _broker: BrokerProcess,
}

impl Setup {
    fn member(&self, m: &str) -> PathBuf {
        self.run_dir.join(m)
    }

    /// The analyst proposes `q`; the owner and the analyst approve it.
    fn approve(&self, q: &Query) -> anyhow::Result<RunConfig> {
        let w = self.base.room_dir.join(format!("q{}.workload.toml", q.n));
        fsutil::write_file_atomic(&w, workload_text(q).as_bytes(), FileMode::Public)?;
        let proposal = workload_cmd::default_proposal(&w);
        let (contract, sigs) = (&self.base.contract, &self.base.contract_sigs);
        crate::signing::propose(
            contract,
            sigs,
            &w,
            &self.member("analyst").join("keys/analyst.sign.key"),
            None,
            &proposal,
        )?;
        let approvals = workload_cmd::default_approvals(&w);
        for m in ["owner", "analyst"] {
            crate::signing::approve(
                contract,
                sigs,
                &w,
                &self.member(m).join(format!("keys/{m}.sign.key")),
                Some(&proposal),
                &approvals,
                |p| p,
            )?;
        }
        Ok(RunConfig {
            workload: w,
            approvals,
            proposal,
            ..self.base.clone()
        })
    }

    /// The analyst opens the run's sealed result (checking its signature against the run's
    /// evidence, as a recipient does) and gets the CSV.
    fn open(&self, report: &RunReport) -> anyhow::Result<Vec<u8>> {
        let sk = keys::encryption_key(&self.member("analyst").join("keys/analyst.enc.key"))?;
        let (signed, _) = cleanroom_formats::load::load_signed_contract(
            &self.base.contract,
            &self.base.contract_sigs,
        )?;
        let evidence = self
            .base
            .room_dir
            .join(format!("evidence/{}.json", report.run_id));
        let bundle = serde_json::from_slice(&fsutil::read_file(&evidence)?)?;
        let path = report.outputs.first().context("the run wrote no output")?;
        let v = cleanroom_verify::output::open_verified(
            &fsutil::read_file(path)?,
            "analyst",
            &sk,
            signed.contract(),
            &bundle,
            cleanroom_formats::clock::now_unix(),
        )?;
        Ok(v.opened.data.to_vec())
    }
}

/// Make `dir` (or reuse one this benchmark made); refuse a directory of something else.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() && std::fs::read_dir(dir)?.next().is_some() {
            bail!(
                "{} exists and was not made by `cleanroom bench`: name an empty or new directory",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), b"")?;
    Ok(())
}

async fn setup(opts: &Options, data: &DataDir, out: &mut dyn Write) -> anyhow::Result<Setup> {
    let run_dir = opts.out.join("run");
    fresh_dir(&run_dir)?;
    let mut members = Vec::new();
    for m in ["owner", "analyst"] {
        members.push(crate::keygen::keygen(m, &run_dir.join(m).join("keys"))?);
    }
    let owner = run_dir.join("owner");
    let db = owner.join("kbs.db");
    let broker = BrokerProcess::init_and_start(&owner)?;
    writeln!(out, "    the owner's key broker: {}", broker.url)?;
    let broker_ref = crate::demo::BrokerRef {
        url: broker.url.clone(),
        spki_sha256: broker.spki_sha256.clone(),
    };
    // The room runs in this process, so its `sim` measurement is a fixed value the contract
    // lists (a room binary would hash itself).
    let measurement: [u8; 48] = Sha384::digest(b"cleanroom bench tpch: the room in-process").into();
    let room = run_dir.join("room");
    std::fs::create_dir_all(&room)?;
    let contract = room.join("contract.toml");
    fsutil::write_file_atomic(
        &contract,
        contract_text(
            &members,
            &hex::encode(measurement),
            &broker_ref,
            data,
            opts.sf,
        )?
        .as_bytes(),
        FileMode::Public,
    )?;
    let sigs = contract_cmd::default_sigs(&contract);
    for m in ["owner", "analyst"] {
        crate::signing::sign_contract(
            &contract,
            &run_dir.join(m).join(format!("keys/{m}.sign.key")),
            &sigs,
        )?;
    }
    let (signed, _) = cleanroom_formats::load::load_signed_contract(&contract, &sigs)?;
    let store = kbs_cmd::open_store(&db, &owner.join("kbs.master-key"))?;
    for (t, _) in &TABLES {
        kbs_cmd::put(
            &store,
            &contract,
            &sigs,
            t,
            &data.key(t),
            &data.sealed_dir().join(DataDir::sealed_name(t)),
        )?;
    }
    Ok(Setup {
        base: RunConfig {
            contract: contract.clone(),
            contract_sigs: sigs.clone(),
            workload: PathBuf::new(),
            approvals: PathBuf::new(),
            proposal: PathBuf::new(),
            room_dir: room.clone(),
            data_dir: data.sealed_dir(),
            evidence: Arc::new(SimSource {
                measurement,
                launch_digest: signed.digest().0,
            }),
            memory_limit: opts.memory_limit,
            module: None,
            cancel: None,
        },
        run_dir,
        _broker: broker,
    })
}

/// One query: the clean-room path and plain DataFusion, alternating, `reps` times each.
async fn one_query(
    setup: &Setup,
    data: &DataDir,
    q: &Query,
    opts: &Options,
) -> anyhow::Result<Outcome> {
    let cfg = setup.approve(q)?;
    let (mut room_ms, mut df_ms) = (Vec::new(), Vec::new());
    let (mut room_peak, mut df_peak) = (0u64, 0u64);
    let mut phases: Vec<Vec<(String, f64)>> = Vec::new();
    let mut last_room = None;
    let mut last_df = None;
    for rep in 0..opts.reps {
        // Alternate which engine goes first, so neither always meets a warm page cache.
        for engine in if rep % 2 == 0 { [0, 1] } else { [1, 0] } {
            if engine == 0 {
                let (r, took, peak) = measured(cleanroom_room::run::run(&cfg)).await;
                let report = match r {
                    Ok(report) => report,
                    Err(RoomError::Query(refusal)) if last_room.is_none() => {
                        return Ok(Outcome::Refused {
                            query: q.n,
                            reason: refusal.to_string(),
                            refusal,
                        });
                    }
                    Err(RoomError::MemoryLimitReached { limit_bytes }) if last_room.is_none() => {
                        let (r, took, peak) =
                            measured(plain_datafusion(data, q, opts.memory_limit)).await;
                        return Ok(Outcome::OverMemory {
                            query: q.n,
                            limit_bytes,
                            datafusion: r
                                .map(|_| (took.as_secs_f64() * 1e3, mib(peak)))
                                .map_err(|e| e.to_string()),
                        });
                    }
                    Err(e) => bail!("Q{}: the room failed on repetition {rep}: {e}", q.n),
                };
                room_ms.push(took.as_secs_f64() * 1e3);
                room_peak = room_peak.max(peak);
                phases.push(
                    report
                        .phases
                        .iter()
                        .map(|(n, d)| (n.clone(), d.as_secs_f64() * 1e3))
                        .collect(),
                );
                last_room = Some(report);
            } else {
                let (r, took, peak) = measured(plain_datafusion(data, q, opts.memory_limit)).await;
                let r = r.with_context(|| format!("Q{}: plain DataFusion failed", q.n))?;
                df_ms.push(took.as_secs_f64() * 1e3);
                df_peak = df_peak.max(peak);
                last_df = Some(r);
            }
        }
    }
    let report = last_room.context("no clean-room run")?;
    let (schema, batches) = last_df.context("no DataFusion run")?;
    let room_csv = setup.open(&report)?;
    let df_csv = tabular::to_csv(&schema, &batches)?;
    let room_phases = phases
        .first()
        .map(|p| {
            p.iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let mut v: Vec<f64> = phases
                        .iter()
                        .filter_map(|run| run.get(i).map(|(_, ms)| *ms))
                        .collect();
                    (name.clone(), median(&mut v))
                })
                .collect()
        })
        .unwrap_or_default();
    let (room_ms, datafusion_ms) = (median(&mut room_ms), median(&mut df_ms));
    Ok(Outcome::Admitted(QueryFigures {
        query: q.n,
        room_ms,
        datafusion_ms,
        ratio: room_ms / datafusion_ms,
        room_phases,
        room_peak_mib: mib(room_peak),
        datafusion_peak_mib: mib(df_peak),
        rows: report.rows,
        agreement: agreement(&room_csv, &df_csv),
        duckdb_ms: None,
        duckdb_peak_mib: None,
    }))
}

/// DuckDB's figures per query, from its Python package in a child process over the same
/// plaintext Parquet; `Err` says why there are none.
fn duckdb(
    opts: &Options,
    data: &DataDir,
    queries: &[&Query],
) -> Result<Vec<(u8, f64, f64)>, String> {
    let have = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !have.is_ok_and(|s| s.success()) {
        return Err("not installed (`python3 -m pip install duckdb`)".into());
    }
    let dir = opts.out.join("duckdb");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("tpch_duckdb.py");
    std::fs::write(&script, DUCKDB_SCRIPT).map_err(|e| e.to_string())?;
    for q in queries {
        std::fs::write(dir.join(format!("q{}.sql", q.n)), q.sql).map_err(|e| e.to_string())?;
    }
    let nums: Vec<String> = queries.iter().map(|q| q.n.to_string()).collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(data.root.join("plain"))
        .arg(&dir)
        .arg(opts.reps.to_string())
        .arg(nums.join(","))
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
            let q = v["query"].as_u64().ok_or("no query")? as u8;
            let ms = v["median_ms"].as_f64().ok_or("no median_ms")?;
            let peak = v["peak_mib"].as_f64().unwrap_or(0.0);
            Ok((q, ms, peak))
        })
        .collect()
}

const DUCKDB_SCRIPT: &str = include_str!("tpch_duckdb.py");

/// Key release latency and throughput at the owner's broker, for the approved workload of
/// `cfg` (a query the room ran, so the broker holds the room's audit head and the room
/// presents it unchanged): `sequential` releases one after another, then
/// [`KEY_RELEASE_CLIENTS`] clients releasing for `seconds`.
async fn key_releases(
    cfg: &RunConfig,
    sequential: usize,
    seconds: f64,
) -> anyhow::Result<KeyReleaseFigures> {
    use cleanroom_room::kbs_client::{self, BrokerClient, KeyRequest};
    let (signed, _) =
        cleanroom_formats::load::load_signed_contract(&cfg.contract, &cfg.contract_sigs)?;
    let workload = cleanroom_formats::load::load_workload(&cfg.workload)?;
    let input = workload
        .inputs
        .first()
        .context("the workload has no input")?
        .clone();
    let ds = signed
        .contract()
        .dataset(&input)
        .context("the workload's input is in the contract")?
        .clone();
    let digest = signed.digest().hex();
    let workload_json = String::from_utf8(workload.canonical_json())?;
    let approvals: Vec<String> = cleanroom_formats::load::read_messages(&cfg.approvals)?
        .iter()
        .map(|m| m.to_base64())
        .collect();
    let log = cleanroom_formats::audit::parse(&fsutil::read_file(
        &cfg.room_dir.join(cleanroom_formats::audit::LOG_FILE),
    )?)
    .map_err(|e| anyhow::anyhow!("the room's audit log: {e}"))?;
    let head = log.last().context("the room's audit log is empty")?;
    let (seq, hash) = (head.seq, head.hash.clone());
    let broker = ds.key.broker.get_ref().clone();
    let pin = ds
        .key
        .broker_spki_sha256
        .as_ref()
        .map(|p| p.get_ref().clone());
    let one = || async {
        let client = BrokerClient::new(&broker, pin.as_deref(), Duration::from_secs(30))?;
        let req = KeyRequest {
            broker: &broker,
            resource: ds.key.resource.get_ref(),
            contract_digest: &digest,
            workload_json: &workload_json,
            approvals: &approvals,
            audit_head: (seq, &hash),
            audit_log: &log,
        };
        let started = Instant::now();
        kbs_client::fetch_key(&client, &req, cfg.evidence.as_ref()).await?;
        Ok::<_, anyhow::Error>(started.elapsed())
    };
    let mut times = Vec::with_capacity(sequential);
    for _ in 0..sequential {
        times.push(one().await?.as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let (p50_ms, p99_ms) = (pct(0.50), pct(0.99));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let worker = || async {
        let mut n = 0usize;
        while Instant::now() < deadline {
            one().await?;
            n += 1;
        }
        Ok::<_, anyhow::Error>(n)
    };
    // KEY_RELEASE_CLIENTS of them, each its own connection and session.
    let (a, b, c, d) = tokio::join!(worker(), worker(), worker(), worker());
    let released = a? + b? + c? + d?;
    Ok(KeyReleaseFigures {
        sequential,
        p50_ms,
        p99_ms,
        per_second: released as f64 / started.elapsed().as_secs_f64(),
        concurrency: KEY_RELEASE_CLIENTS,
        seconds,
        total: sequential + released,
    })
}

/// The whole benchmark; the report is printed to `out` and written to OUT/tpch-sf<SF>.md
/// and .json.
pub async fn run(opts: &Options, out: &mut dyn Write) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let machine = super::machine();
    writeln!(out, "TPC-H SF {} on {machine}", opts.sf)?;
    writeln!(
        out,
        "NOTE: no SEV-SNP/TDX here: the room attests with the SIMULATED platform (INSECURE)."
    )?;
    writeln!(
        out,
        "1. Data (tpchgen-rs), plaintext Parquet and its sealed copy"
    )?;
    let data = DataDir {
        root: opts.out.join(format!("data/sf{}", opts.sf)),
    };
    let table_rows = generate(&data, opts.sf, out)?;
    writeln!(
        out,
        "2. The owner's broker, the contract, the keys registered"
    )?;
    let setup = setup(opts, &data, out).await?;
    writeln!(
        out,
        "3. Each query: clean-room path and plain DataFusion, alternating, {} repetitions",
        opts.reps
    )?;
    let queries: Vec<&Query> = opts
        .queries
        .iter()
        .filter_map(|n| QUERIES.iter().find(|q| q.n == *n))
        .collect();
    let mut outcomes = Vec::new();
    for q in &queries {
        let o = one_query(&setup, &data, q, opts).await?;
        match &o {
            Outcome::Admitted(f) => writeln!(
                out,
                "    Q{:<2} clean room {:>9.1} ms  DataFusion {:>9.1} ms  {:>5.2}x  {:?}",
                q.n, f.room_ms, f.datafusion_ms, f.ratio, f.agreement
            )?,
            Outcome::Refused { reason, .. } => {
                writeln!(out, "    Q{:<2} refused by the room: {reason}", q.n)?;
            }
            Outcome::OverMemory { limit_bytes, .. } => writeln!(
                out,
                "    Q{:<2} needs more than the memory pool ({} MiB): refused by the room",
                q.n,
                limit_bytes >> 20
            )?,
        }
        outcomes.push(o);
    }
    let first_admitted = outcomes.iter().find_map(|o| match o {
        Outcome::Admitted(f) => QUERIES.iter().find(|q| q.n == f.query),
        _ => None,
    });
    let key_release = match first_admitted {
        Some(q) if opts.key_releases > 0 => {
            let seconds = opts.key_releases as f64 / 10.0;
            writeln!(
                out,
                "4. Key releases at the owner's broker: {} one after another, then {KEY_RELEASE_CLIENTS} clients for {seconds} s",
                opts.key_releases
            )?;
            let cfg = setup.approve(q)?;
            Some(key_releases(&cfg, opts.key_releases, seconds).await?)
        }
        _ => None,
    };
    let admitted: Vec<&Query> = queries
        .iter()
        .copied()
        .filter(|q| {
            outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Admitted(f) if f.query == q.n))
        })
        .collect();
    let duckdb_note = if opts.duckdb {
        writeln!(out, "5. DuckDB on the same plaintext Parquet")?;
        match duckdb(opts, &data, &admitted) {
            Ok(figs) => {
                for o in &mut outcomes {
                    if let Outcome::Admitted(f) = o
                        && let Some((_, ms, peak)) = figs.iter().find(|(n, ..)| *n == f.query)
                    {
                        f.duckdb_ms = Some(*ms);
                        f.duckdb_peak_mib = Some(*peak);
                    }
                }
                format!("DuckDB {} (Python package)", duckdb_version())
            }
            Err(why) => format!("DuckDB: {why}"),
        }
    } else {
        "DuckDB: left out (--no-duckdb)".into()
    };
    let ratios: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Admitted(f) if f.ratio > 0.0 => Some(f.ratio),
            _ => None,
        })
        .collect();
    let geomean_ratio = (!ratios.is_empty())
        .then(|| (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp());
    let report = Report {
        sf: opts.sf,
        reps: opts.reps,
        machine,
        memory_pool_mib: (opts.memory_limit >> 20) as u64,
        table_rows,
        outcomes,
        geomean_ratio,
        duckdb: duckdb_note,
        key_release,
    };
    let md = markdown(&report);
    writeln!(out, "\n{md}")?;
    let base = opts.out.join(format!("tpch-sf{}", opts.sf));
    fsutil::write_file_atomic(
        &fsutil::with_suffix(&base, ".md"),
        md.as_bytes(),
        FileMode::Public,
    )?;
    fsutil::write_file_atomic(
        &fsutil::with_suffix(&base, ".json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
        FileMode::Public,
    )?;
    Ok(report)
}

fn duckdb_version() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The report as the Markdown table docs/PERFORMANCE.md carries.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "TPC-H SF {}, {} repetitions per engine (median), on {}; memory pool {} MiB; {}.\n",
        r.sf, r.reps, r.machine, r.memory_pool_mib, r.duckdb
    );
    let _ = writeln!(
        s,
        "| query | clean room ms | DataFusion ms | ratio | DuckDB ms | clean room peak MiB | DataFusion peak MiB | DuckDB peak MiB | rows | result |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for o in &r.outcomes {
        match o {
            Outcome::Admitted(f) => {
                let _ = writeln!(
                    s,
                    "| Q{} | {:.1} | {:.1} | {:.2}x | {} | {:.0} | {:.0} | {} | {} | {} |",
                    f.query,
                    f.room_ms,
                    f.datafusion_ms,
                    f.ratio,
                    opt(f.duckdb_ms, 1),
                    f.room_peak_mib,
                    f.datafusion_peak_mib,
                    opt(f.duckdb_peak_mib, 0),
                    f.rows,
                    match f.agreement {
                        Agreement::Identical => "identical",
                        Agreement::SameRowsOtherOrder => "same rows, order differs (ties)",
                        Agreement::Differs => "DIFFERS",
                    }
                );
            }
            Outcome::Refused { query, .. } => {
                let _ = writeln!(s, "| Q{query} | refused | | | | | | | | see below |");
            }
            Outcome::OverMemory {
                query,
                limit_bytes,
                datafusion,
            } => {
                let df = match datafusion {
                    Ok((ms, peak)) => format!("{ms:.1} | | | | {peak:.0}"),
                    Err(_) => "failed | | | |".into(),
                };
                let _ = writeln!(
                    s,
                    "| Q{query} | over the {} MiB pool: refused | {df} | | | needs more memory |",
                    limit_bytes >> 20
                );
            }
        }
    }
    if let Some(g) = r.geomean_ratio {
        let _ = writeln!(
            s,
            "\nGeometric mean of the clean-room / DataFusion ratio over the admitted queries: **{g:.2}x**."
        );
    }
    let refused: Vec<_> = r
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused { query, reason, .. } => Some((query, reason)),
            Outcome::Admitted(_) | Outcome::OverMemory { .. } => None,
        })
        .collect();
    if !refused.is_empty() {
        let _ = writeln!(
            s,
            "\nRefused by the room's query rules (left out of the mean):\n"
        );
        for (q, reason) in refused {
            let _ = writeln!(s, "- Q{q}: {reason}");
        }
    }
    if let Some(k) = &r.key_release {
        let _ = writeln!(
            s,
            "\nKey release at the owner's broker (`cleanroom-kbs`, HTTPS on 127.0.0.1; TLS, auth, attest with `sim` evidence, one resource, as a run makes it): p50 {:.1} ms, p99 {:.1} ms over {} in a row; {:.0} releases/s with {} clients for {} s.",
            k.p50_ms, k.p99_ms, k.sequential, k.per_second, k.concurrency, k.seconds
        );
    }
    let _ = writeln!(s, "\nThe clean room's phases (median ms):\n");
    for o in &r.outcomes {
        if let Outcome::Admitted(f) = o {
            let p: Vec<String> = f
                .room_phases
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.1}"))
                .collect();
            let _ = writeln!(s, "- Q{}: {}", f.query, p.join(", "));
        }
    }
    s
}
