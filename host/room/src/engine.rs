//! The SQL engine: DataFusion over decrypted datasets, holding only allowed fields.
//!
//! - Memory only: a bounded memory pool and the disk manager disabled, so no plaintext is
//!   ever spilled to disk. Encrypted Parquet is scanned in place as queries run
//!   ([`crate::sealed_parquet`]: footer pinned at registration, keys through the run's
//!   `EncryptionFactory`, each page authenticated as it is read); sealed CSV/JSON is
//!   decrypted segment by segment into each scan ([`crate::sealed_rows`]).
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
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use crate::error::{QueryRefusal, Result, RoomError};
use crate::guards;
use crate::rules::{self, CheckedPlan, Destination};
use crate::sealed_parquet;
use crate::sealed_rows::SealedRows;
use cleanroom_formats::fsutil::Root;
use cleanroom_formats::stream::DataKey;
use cleanroom_formats::tabular::{allowed, contract_schema, parse_rows, same_logical_type};
pub use cleanroom_formats::tabular::{pretty, to_csv, to_json_lines};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::physical_plan::streaming::PartitionStream;

/// What a Parquet input whose page fails authentication during a query is refused with.
pub const PAGE_UNREADABLE: &str =
    "a page does not decrypt with the released key (the file was modified or swapped)";

/// Default memory the engine may use for a run.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

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

/// The positions of a dataset's allowed fields in its contract schema, and their schema: the
/// only columns its view has.
fn allowed_view(ds: &Dataset) -> (Vec<usize>, SchemaRef) {
    let schema = contract_schema(ds);
    let idx: Vec<usize> = allowed(ds)
        .iter()
        .map(|f| {
            schema
                .index_of(f)
                .expect("allowed fields are in the schema (validated)")
        })
        .collect();
    let view = Arc::new(schema.project(&idx).expect("indices are valid"));
    (idx, view)
}

/// A DataFusion session for one run.
pub struct Engine {
    ctx: SessionContext,
    /// dataset name → (all schema fields, allowed fields)
    inputs: Vec<(String, Vec<String>, Vec<String>)>,
    /// The registered datasets, whose query rules every query obeys.
    datasets: Vec<Dataset>,
    /// The released Parquet keys, given to DataFusion's reader by dataset name.
    keys: Arc<sealed_parquet::RunKeys>,
    /// The data directory as DataFusion reads it, created with the first Parquet input.
    sealed: Option<Arc<sealed_parquet::SealedStore>>,
    /// The memory pool's size, in bytes.
    memory_limit: usize,
    /// The sealed CSV / JSON-lines inputs (each records the error its scan failed with).
    row_inputs: Vec<Arc<SealedRows>>,
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
        let keys = Arc::new(sealed_parquet::RunKeys::default());
        runtime.register_parquet_encryption_factory(sealed_parquet::FACTORY_ID, keys.clone());
        let config = SessionConfig::new().with_information_schema(false);
        Ok(Self {
            ctx: SessionContext::new_with_config_rt(config, runtime),
            inputs: Vec::new(),
            datasets: Vec::new(),
            keys,
            sealed: None,
            memory_limit,
            row_inputs: Vec::new(),
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
            let (_, view) = allowed_view(ds);
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
                .await;
            let batches = match batches {
                Ok(b) => b,
                Err(e) => return Err(self.execution_error(&e, "reading privacy units").await),
            };
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

    /// Open the sealed CSV / JSON-lines input `location` (below `data`) and pin its header:
    /// the input to register, and the header's bytes (what its identity is computed from).
    pub fn open_sealed_rows(
        &self,
        ds: &Dataset,
        key: &DataKey,
        data: &Root,
        location: &str,
    ) -> Result<(SealedRows, Vec<u8>)> {
        let (idx, view) = allowed_view(ds);
        SealedRows::open(data, location, ds, key, idx, view)
    }

    /// Register a sealed CSV / JSON-lines input as a view of the allowed fields, decrypted
    /// and parsed into each scan as it runs. Reads it through once now (every segment
    /// authenticated, nothing kept) and returns its row count.
    pub async fn register_sealed_rows(&mut self, ds: &Dataset, input: SealedRows) -> Result<u64> {
        let input = Arc::new(input);
        let counting = input.clone();
        let rows = tokio::task::spawn_blocking(move || counting.count_rows())
            .await
            .map_err(|_| RoomError::engine("counting the rows of a sealed input failed"))??;
        let table = StreamingTable::try_new(input.schema().clone(), vec![input.clone()])
            .map_err(RoomError::engine)?;
        self.ctx
            .register_table(ds.name.get_ref().as_str(), Arc::new(table))
            .map_err(RoomError::engine)?;
        self.row_inputs.push(input);
        self.remember(ds);
        Ok(rows)
    }

    /// Register CSV/JSON plaintext already in memory as a view of the allowed fields (tests
    /// and tools; a run streams its sealed inputs). Returns the row count.
    pub fn register_rows(&mut self, ds: &Dataset, plaintext: &[u8]) -> Result<u64> {
        let batches = parse_rows(ds, plaintext)?;
        let (idx, view_schema) = allowed_view(ds);
        let projected: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&idx))
            .collect::<std::result::Result<_, _>>()
            .map_err(RoomError::engine)?;
        drop(batches);
        let rows = projected.iter().map(|b| b.num_rows() as u64).sum();
        let table = MemTable::try_new(view_schema, vec![projected]).map_err(RoomError::engine)?;
        self.ctx
            .register_table(ds.name.get_ref().as_str(), Arc::new(table))
            .map_err(RoomError::engine)?;
        self.remember(ds);
        Ok(rows)
    }

    /// Register the encrypted Parquet file `location` (below `data`) as a view of the
    /// allowed fields, scanned in place as queries run (see [`sealed_parquet`]). Reads and
    /// pins the footer now: returns the row count it states and the file's identity bytes.
    pub async fn register_parquet(
        &mut self,
        ds: &Dataset,
        key: &DataKey,
        data: &Root,
        location: &str,
    ) -> Result<(u64, Vec<u8>)> {
        let name = ds.name.get_ref().clone();
        let unreadable = |what: &str| cleanroom_formats::FormatError::DatasetUnreadable {
            dataset: name.clone(),
            format: "parquet",
            what: what.into(),
        };
        let dec_fail = "does not decrypt with the released key (wrong key, or the file was modified or swapped)";
        // Parquet Modular Encryption with an encrypted footer starts and ends in "PARE"; a
        // plaintext file ("PAR1") would be read as is. Only the key holder can write an
        // encrypted footer, and the footer (authenticated) holds every column's crypto
        // metadata.
        let pinned = match sealed_parquet::Pinned::read(data, location) {
            Ok(p) => p,
            Err(sealed_parquet::PinError::Io(e)) => return Err(e.into()),
            Err(sealed_parquet::PinError::NotEncrypted) => {
                return Err(RoomError::InputNotSealed {
                    dataset: name,
                    expected: "Parquet Modular Encryption with an encrypted footer",
                });
            }
            Err(e) => return Err(unreadable(&e.to_string()).into()),
        };
        let allowed = allowed(ds);
        let master_key_id = ds.key.master_key_id.as_ref().map(|m| m.get_ref().as_str());
        let props = sealed_parquet::decryption_properties(key, &allowed, &name, master_key_id)
            .map_err(|_| unreadable(dec_fail))?;
        // The footer, decrypted and authenticated with the released key: the row count and
        // the column types are the owner's.
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .with_decryption_properties(Some(props.clone()))
            .parse_and_finish(&pinned.tail)
            .map_err(|_| unreadable(dec_fail))?;
        let file_schema = parquet::arrow::parquet_to_arrow_schema(
            metadata.file_metadata().schema_descr(),
            metadata.file_metadata().key_value_metadata(),
        )
        .map_err(|_| unreadable("its schema is not readable as Arrow"))?;
        let expected = contract_schema(ds);
        for (field, declared) in expected.fields().iter().zip(&ds.schema) {
            let c = field.name();
            if !allowed.contains(c) {
                continue;
            }
            match file_schema.field_with_name(c) {
                Ok(f) if same_logical_type(f.data_type(), field.data_type()) => {}
                _ => {
                    return Err(RoomError::from(unreadable(&format!(
                        "column `{c}` is missing or not of the contract's type {}",
                        declared.ty
                    ))));
                }
            }
        }
        let rows = u64::try_from(metadata.file_metadata().num_rows())
            .map_err(|_| unreadable("its footer states a negative row count"))?;
        let identity = pinned.identity_bytes();

        let store = match &self.sealed {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(
                    sealed_parquet::SealedStore::new(&data.display(""))
                        .map_err(|_| unreadable("the data directory cannot be read"))?,
                );
                self.ctx
                    .register_object_store(&sealed_parquet::url(), s.clone());
                self.sealed = Some(s.clone());
                s
            }
        };
        let store_path = object_store::path::Path::parse(location)
            .map_err(|_| unreadable("its location is not a valid path"))?;
        store.pin(store_path.clone(), pinned);
        self.keys.insert(&name, props);

        let table_url =
            ListingTableUrl::parse(format!("{}://inputs/{store_path}", sealed_parquet::SCHEME))
                .map_err(|_| unreadable("its location is not a valid path"))?;
        let state = self.ctx.state();
        let mut options = state.table_options().parquet.clone();
        options.crypto.file_decryption = None;
        // The page index is read for every column of the file at once (parquet-rs), and the
        // room has no key for the withheld columns' indexes: row groups are still pruned by
        // their statistics, pages are not.
        options.global.enable_page_index = false;
        options.crypto.factory_id = Some(sealed_parquet::FACTORY_ID.into());
        options.crypto.factory_options.options =
            [(sealed_parquet::DATASET_OPTION.to_string(), name.clone())].into();
        let listing = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(options)))
            .with_file_extension("");
        let config = ListingTableConfig::new(table_url.clone())
            .with_listing_options(listing.clone())
            .infer_schema(&state)
            .await
            .map_err(|_| unreadable(dec_fail))?;
        let inferred = config
            .file_schema
            .clone()
            .ok_or_else(|| unreadable(dec_fail))?;
        let idx = allowed
            .iter()
            .map(|c| inferred.index_of(c).map_err(|_| unreadable(dec_fail)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let view = Arc::new(inferred.project(&idx).map_err(RoomError::engine)?);
        let table = ListingTable::try_new(
            ListingTableConfig::new(table_url)
                .with_listing_options(listing)
                .with_schema(view),
        )
        .map_err(RoomError::engine)?;
        self.ctx
            .register_table(name.as_str(), Arc::new(table))
            .map_err(RoomError::engine)?;
        self.remember(ds);
        Ok((rows, identity))
    }

    /// The first Parquet input whose allowed columns do not all authenticate, read through
    /// in full (batches dropped as they come); `None` if every one does. Run only after a
    /// query failed in the Parquet reader, to say which input was damaged.
    async fn damaged_parquet_input(&self) -> Option<String> {
        use futures::StreamExt;
        for ds in &self.datasets {
            if ds.format != cleanroom_policy::contract::DataFormat::Parquet {
                continue;
            }
            let name = ds.name.get_ref().as_str();
            let Ok(df) = self.ctx.table(name).await else {
                return Some(name.to_string());
            };
            let Ok(mut stream) = df.execute_stream().await else {
                return Some(name.to_string());
            };
            while let Some(batch) = stream.next().await {
                if batch.is_err() {
                    return Some(name.to_string());
                }
            }
        }
        None
    }

    /// What an execution error is reported as: a damaged Parquet input by name (the
    /// reader failed to authenticate a page), the memory limit, otherwise only `category`.
    /// Arithmetic, cast, overflow and division-by-zero errors depend on data values, so all
    /// of them are one category: which one happened (and on which value) is not said.
    async fn execution_error(&self, e: &DataFusionError, category: &'static str) -> RoomError {
        if let Some(failure) = self.row_inputs.iter().find_map(|i| i.take_failure()) {
            return failure;
        }
        if in_parquet_reader(e)
            && let Some(dataset) = self.damaged_parquet_input().await
        {
            return cleanroom_formats::FormatError::DatasetUnreadable {
                dataset,
                format: "parquet",
                what: PAGE_UNREADABLE.into(),
            }
            .into();
        }
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => RoomError::MemoryLimitReached {
                limit_bytes: self.memory_limit,
            },
            _ => RoomError::QueryFailed { category },
        }
    }

    /// The batches of a registered view (what a module reads as its input view).
    pub async fn view(&self, name: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let df = self
            .ctx
            .table(name)
            .await
            .map_err(|e| self.map_plan_error(e))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = match df.collect().await {
            Ok(b) => b,
            Err(e) => return Err(self.execution_error(&e, "reading a view").await),
        };
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
        // The same sealed inputs: the run's keys and data directory, in the new runtime.
        let runtime = memory_only_runtime(memory_limit)?;
        runtime.register_parquet_encryption_factory(sealed_parquet::FACTORY_ID, self.keys.clone());
        if let Some(store) = &self.sealed {
            runtime.register_object_store(&sealed_parquet::url(), store.clone());
        }
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_runtime_env(runtime)
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
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.map_plan_error(e))?;
        match df.collect().await {
            Ok(b) => Ok(b),
            Err(e) => Err(self.execution_error(&e, "execution error").await),
        }
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

/// Whether `e` came from the Parquet reader (a page or footer that does not decrypt or
/// decode).
fn in_parquet_reader(e: &DataFusionError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let from_parquet = match err.downcast_ref::<DataFusionError>() {
            Some(DataFusionError::ParquetError(_)) => true,
            Some(DataFusionError::ArrowError(a, _)) => {
                matches!(a.as_ref(), arrow::error::ArrowError::ParquetError(_))
            }
            _ => matches!(
                err.downcast_ref::<arrow::error::ArrowError>(),
                Some(arrow::error::ArrowError::ParquetError(_))
            ),
        };
        if from_parquet || err.is::<parquet::errors::ParquetError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Queries only: no DDL, DML or `SET`.
fn query_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}
