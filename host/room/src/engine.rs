//! The SQL engine: DataFusion over decrypted datasets, holding only allowed fields.
//!
//! - Memory only: a bounded memory pool and the disk manager disabled, so no plaintext is
//!   ever spilled to disk; CSV/JSON plaintext lives in `MemTable`s, Parquet is decrypted
//!   page by page by DataFusion's Parquet Modular Encryption reader from an in-memory object
//!   store holding the (still encrypted) file bytes, and its allowed columns are read once
//!   into memory at registration (authenticating every page the room uses).
//! - Views: each input is registered under its dataset name with *only* its
//!   `allowed_fields`. No other table exists in the session, so SQL naming any other column
//!   fails at planning, before any data is read.
//! - Statements: only queries (no DDL, DML, `SET`, `COPY`).
//! - Errors: planning errors (which name columns and types) are reported; execution errors,
//!   which can quote data values, are replaced by a category.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use cleanroom_policy::contract::Dataset;
use datafusion::common::{Column, DataFusionError, SchemaError};
use datafusion::config::{ColumnDecryptionProperties, ConfigFileDecryptionProperties};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SQLOptions, SessionConfig, SessionContext};

use crate::error::{QueryRefusal, Result, RoomError};
use crate::guards;
use crate::rules::{self, CheckedPlan, Destination};
use cleanroom_formats::stream::DataKey;
use cleanroom_formats::tabular::{allowed, contract_schema, parse_rows, same_logical_type};
pub use cleanroom_formats::tabular::{pretty, to_csv, to_json_lines};

/// Default memory the engine may use for a run.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

/// Decryption properties for DataFusion's Parquet reader: the released key, for the footer
/// and the `allowed` columns. No key for any other column exists in the room.
fn datafusion_decryption(
    key: &DataKey,
    allowed: &[String],
    dataset: &str,
) -> ConfigFileDecryptionProperties {
    let hex_key = hex::encode(key.key_bytes());
    ConfigFileDecryptionProperties {
        footer_key_as_hex: hex_key.clone(),
        column_decryption_properties: allowed
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    ColumnDecryptionProperties {
                        column_key_as_hex: hex_key.clone(),
                    },
                )
            })
            .collect(),
        aad_prefix_as_hex: hex::encode(cleanroom_formats::parquet::aad_prefix(dataset)),
        ..Default::default()
    }
}

/// A runtime with a bounded memory pool and no disk manager: nothing spills.
fn memory_only_runtime(
    memory_limit: usize,
) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(memory_limit)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(RoomError::engine)
}

/// A DataFusion session for one run.
pub struct Engine {
    ctx: SessionContext,
    /// dataset name → (all schema fields, allowed fields)
    inputs: Vec<(String, Vec<String>, Vec<String>)>,
    /// The registered datasets, whose query rules every query obeys.
    datasets: Vec<Dataset>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// What a query produced, before the guard: its output schema (without the group
/// counts) and batches that carry the host's per-group count columns (`count_columns`:
/// distinct privacy units per scanned dataset that declares one, or
/// [`guards::GROUP_COUNT_COLUMN`]).
#[derive(Debug)]
pub struct Counted {
    pub output_schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub count_columns: Vec<String>,
}

impl Engine {
    pub fn new(memory_limit: usize) -> Result<Self> {
        let runtime = memory_only_runtime(memory_limit)?;
        let config = SessionConfig::new().with_information_schema(false);
        Ok(Self {
            ctx: SessionContext::new_with_config_rt(config, runtime),
            inputs: Vec::new(),
            datasets: Vec::new(),
        })
    }

    /// An engine whose views have the contract's allowed fields and no rows: what the run
    /// plans the approved SQL against, to check the query rules before any key is
    /// requested.
    pub fn for_planning(datasets: &[&Dataset]) -> Result<Self> {
        let mut engine = Self::new(64 << 20)?;
        for ds in datasets
            .iter()
            .filter(|d| d.format != cleanroom_policy::contract::DataFormat::File)
        {
            let schema = contract_schema(ds);
            let idx: Vec<usize> = allowed(ds)
                .iter()
                .map(|f| {
                    schema
                        .index_of(f)
                        .expect("allowed fields are in the schema")
                })
                .collect();
            let view = Arc::new(schema.project(&idx).expect("indices are valid"));
            let table = MemTable::try_new(view, vec![vec![]]).map_err(RoomError::engine)?;
            engine
                .ctx
                .register_table(ds.name.get_ref().as_str(), Arc::new(table))
                .map_err(RoomError::engine)?;
            engine.remember(ds);
        }
        Ok(engine)
    }

    fn remember(&mut self, ds: &Dataset) {
        self.inputs.push((
            ds.name.get_ref().clone(),
            ds.schema.iter().map(|f| f.name.get_ref().clone()).collect(),
            allowed(ds),
        ));
        self.datasets.push(ds.clone());
    }

    /// The distinct privacy units of the registered datasets that declare one, as text;
    /// `None` when none does.
    pub async fn privacy_units(&self) -> Result<Option<std::collections::HashSet<String>>> {
        let mut out: Option<std::collections::HashSet<String>> = None;
        for ds in &self.datasets {
            let Some(unit) = ds.privacy_unit() else {
                continue;
            };
            let batches = self
                .ctx
                .table(ds.name.get_ref().as_str())
                .await
                .and_then(|t| t.select_columns(&[unit]))
                .and_then(|t| t.distinct())
                .map_err(RoomError::engine)?
                .collect()
                .await
                .map_err(|_| RoomError::QueryFailed {
                    category: "reading privacy units",
                })?;
            let set = out.get_or_insert_with(Default::default);
            for b in batches {
                let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                    .map_err(RoomError::engine)?;
                let col = col
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .ok_or_else(|| RoomError::engine("privacy units are not text"))?;
                set.extend(col.iter().flatten().map(str::to_string));
            }
        }
        Ok(out)
    }

    /// The registered datasets, whose query rules a module's `query` import obeys.
    pub fn datasets(&self) -> &[Dataset] {
        &self.datasets
    }

    /// Register CSV/JSON plaintext as a view of the allowed fields. Returns the row count.
    pub fn register_rows(&mut self, ds: &Dataset, plaintext: &[u8]) -> Result<u64> {
        let batches = parse_rows(ds, plaintext)?;
        let schema = contract_schema(ds);
        let idx: Vec<usize> = allowed(ds)
            .iter()
            .map(|f| {
                schema
                    .index_of(f)
                    .expect("allowed fields are in the schema (validated)")
            })
            .collect();
        let projected: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&idx))
            .collect::<std::result::Result<_, _>>()
            .map_err(RoomError::engine)?;
        drop(batches);
        let rows = projected.iter().map(|b| b.num_rows() as u64).sum();
        let view_schema = Arc::new(schema.project(&idx).expect("indices are valid"));
        let table = MemTable::try_new(view_schema, vec![projected]).map_err(RoomError::engine)?;
        self.ctx
            .register_table(ds.name.get_ref().as_str(), Arc::new(table))
            .map_err(RoomError::engine)?;
        self.remember(ds);
        Ok(rows)
    }

    /// Register an encrypted Parquet file (bytes as read from disk) as a view of the allowed
    /// fields, decrypted by DataFusion with `key`. Reads the allowed columns once (to count
    /// rows), which authenticates every page of them.
    pub async fn register_parquet(
        &mut self,
        ds: &Dataset,
        key: &DataKey,
        encrypted: Vec<u8>,
    ) -> Result<u64> {
        let name = ds.name.get_ref().clone();
        // Parquet Modular Encryption with an encrypted footer ends in "PARE"; a plaintext
        // file ("PAR1") would be read as is. Only the key holder can write an encrypted
        // footer, and the footer (authenticated) holds every column's crypto metadata.
        if !encrypted.ends_with(cleanroom_formats::parquet::ENCRYPTED_FOOTER_MAGIC) {
            return Err(RoomError::InputNotSealed {
                dataset: name,
                expected: "Parquet Modular Encryption with an encrypted footer",
            });
        }
        let unreadable = |what: &str| cleanroom_formats::FormatError::DatasetUnreadable {
            dataset: name.clone(),
            format: "parquet",
            what: what.into(),
        };
        let store = Arc::new(object_store::memory::InMemory::new());
        let obj = format!("{name}.parquet");
        object_store::ObjectStoreExt::put(
            store.as_ref(),
            &object_store::path::Path::from(obj.as_str()),
            encrypted.into(),
        )
        .await
        .map_err(|_| unreadable("could not stage the encrypted file"))?;
        let url = url::Url::parse(&format!("cleanroom-sealed://{name}/")).expect("valid URL");
        self.ctx.register_object_store(&url, store);
        let opts = ParquetReadOptions::default().file_decryption_properties(datafusion_decryption(
            key,
            &allowed(ds),
            &name,
        ));
        let dec_fail = "does not decrypt with the released key (wrong key, or the file was modified or swapped)";
        let df = self
            .ctx
            .read_parquet(format!("cleanroom-sealed://{name}/{obj}"), opts)
            .await
            .map_err(|_| unreadable(dec_fail))?;
        let allowed = allowed(ds);
        let cols: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let expected = contract_schema(ds);
        for (field, declared) in expected.fields().iter().zip(&ds.schema) {
            let c = field.name();
            if !cols.contains(&c.as_str()) {
                continue;
            }
            match df.schema().field_with_unqualified_name(c) {
                Ok(f) if same_logical_type(f.data_type(), field.data_type()) => {}
                _ => {
                    return Err(RoomError::from(unreadable(&format!(
                        "column `{c}` is missing or not of the contract's type {}",
                        declared.ty
                    ))));
                }
            }
        }
        // Read the allowed columns in full now: this authenticates every page the room will
        // use before any query runs (a COUNT alone may be answered from metadata).
        let batches = df
            .select_columns(&cols)
            .map_err(|_| unreadable(dec_fail))?
            .collect()
            .await
            .map_err(|_| unreadable(dec_fail))?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
            Arc::new(
                expected
                    .project(
                        &cols
                            .iter()
                            .map(|c| expected.index_of(c).expect("validated"))
                            .collect::<Vec<_>>(),
                    )
                    .expect("valid"),
            )
        });
        // The allowed columns are in memory now: drop the staged encrypted file (the whole
        // file, disallowed columns included) instead of holding it for the rest of the run.
        let _ = self.ctx.runtime_env().deregister_object_store(&url);
        let table = MemTable::try_new(schema, vec![batches]).map_err(RoomError::engine)?;
        self.ctx
            .register_table(name.as_str(), Arc::new(table))
            .map_err(RoomError::engine)?;
        self.remember(ds);
        Ok(rows)
    }

    /// The batches of a registered view (what a module reads as its input view).
    pub async fn view(&self, name: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let df = self
            .ctx
            .table(name)
            .await
            .map_err(|e| self.map_plan_error(e))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|_| RoomError::QueryFailed {
            category: "reading a view",
        })?;
        Ok((schema, batches))
    }

    /// Run a query for a module's `query(sql)` import: queries only, over the same views,
    /// under the same query rules as released SQL except what may reach the result (it stays
    /// in the sandbox). Errors are categories or rule refusals, never DataFusion's text.
    pub async fn module_query(
        ctx: &SessionContext,
        datasets: &[Dataset],
        sql: &str,
        deadline: std::time::Instant,
    ) -> std::result::Result<Vec<RecordBatch>, String> {
        let df = ctx
            .sql_with_options(sql, query_only())
            .await
            .map_err(|e| format!("query refused: {}", e.find_root()))?;
        let (state, plan) = df.into_parts();
        let inputs: Vec<&Dataset> = datasets.iter().collect();
        let checked = rules::check(plan, &inputs, Destination::Sandbox)
            .map_err(|e| format!("query refused: {e}"))?;
        let (plan, _) = checked.into_parts();
        let failed = |_| "query failed while executing (details withheld)".to_string();
        let physical = state.create_physical_plan(&plan).await.map_err(failed)?;
        // Every operator checks the deadline: a query that computes for hours in one poll
        // stops at its next batch once the run's time is up.
        let physical = crate::deadline::wrap(physical, deadline).map_err(failed)?;
        datafusion::physical_plan::collect(physical, state.task_ctx())
            .await
            .map_err(failed)
    }

    /// A session over the same views whose memory pool is `memory_limit` bytes: what a
    /// module's `query(sql)` import runs in, so its queries stay within the module's budget.
    pub fn module_context(&self, memory_limit: usize) -> Result<SessionContext> {
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_runtime_env(memory_only_runtime(memory_limit)?)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    fn map_plan_error(&self, e: DataFusionError) -> RoomError {
        if let DataFusionError::SchemaError(se, _) = e.find_root()
            && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
        {
            return self.column_error(field);
        }
        QueryRefusal::DoesNotPlan {
            reason: e.find_root().to_string(),
        }
        .into()
    }

    fn column_error(&self, field: &Column) -> RoomError {
        let name = &field.name;
        let hidden: Vec<&str> = self
            .inputs
            .iter()
            .filter(|(_, all, allowed)| all.contains(name) && !allowed.contains(name))
            .map(|(n, _, _)| n.as_str())
            .collect();
        if hidden.is_empty() {
            QueryRefusal::UnknownColumn {
                column: name.clone(),
            }
            .into()
        } else {
            RoomError::ColumnNotAllowed {
                column: name.clone(),
                views: hidden.join(", "),
            }
        }
    }

    /// Plan `sql` (queries only) and check it against the query rules for a released
    /// output, without executing it.
    pub async fn check(&self, sql: &str) -> Result<CheckedPlan> {
        self.check_for(sql, Destination::Release).await
    }

    /// Plan `sql` (queries only) and check it against the query rules for `destination`.
    pub async fn check_for(&self, sql: &str, destination: Destination) -> Result<CheckedPlan> {
        let df = self
            .ctx
            .sql_with_options(sql, query_only())
            .await
            .map_err(|e| self.map_plan_error(e))?;
        let (_, plan) = df.into_parts();
        let inputs: Vec<&Dataset> = self.datasets.iter().collect();
        Ok(rules::check(plan, &inputs, destination)?)
    }

    /// Plan `sql` (queries only), check the query rules, and take the plan apart for a
    /// differentially private release (`crate::dp`).
    pub async fn dp_query(&self, sql: &str) -> Result<crate::dp::DpQuery> {
        let checked = self.check(sql).await?;
        let inputs: Vec<&Dataset> = self.datasets.iter().collect();
        Ok(crate::dp::plan(checked, &inputs)?)
    }

    /// Run a DP query's per-(group, unit) plan.
    pub async fn execute_dp(&self, q: &crate::dp::DpQuery) -> Result<Vec<RecordBatch>> {
        self.collect(q.per_unit_plan().clone()).await
    }

    /// Execute a checked plan; an execution error is reported only by its category.
    async fn collect(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<RecordBatch>> {
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.map_plan_error(e))?
            .collect()
            .await
            .map_err(|e| RoomError::QueryFailed {
                category: execution_category(&e),
            })
    }

    /// Plan `sql` (queries only), check the query rules, add the host's group counts to the
    /// plan, execute it.
    pub async fn execute(&self, sql: &str) -> Result<Counted> {
        let checked = self.check(sql).await?;
        let output_schema = Arc::new(checked.plan().schema().as_arrow().clone());
        let (counted, count_columns) = guards::add_group_count(checked)?;
        let batches = self.collect(counted).await?;
        Ok(Counted {
            output_schema,
            batches,
            count_columns,
        })
    }
}

/// Queries only: no DDL, DML or `SET`.
fn query_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The category an execution error is reported as. Arithmetic, cast, overflow and
/// division-by-zero errors depend on data values, so all of them are one category: which one
/// happened (and on which value) is not said.
fn execution_category(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => "memory limit reached",
        _ => "execution error",
    }
}
