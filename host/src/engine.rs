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
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cleanroom_policy::contract::{DataFormat, Dataset, FieldType};
use datafusion::common::{Column, DataFusionError, SchemaError};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SQLOptions, SessionConfig, SessionContext};

use crate::error::{HostError, Result};
use crate::guards;
use crate::seal::stream::DataKey;

/// Default memory the engine may use for a run.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 << 30;

fn arrow_type(t: FieldType) -> DataType {
    match t {
        FieldType::String => DataType::Utf8,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float64 => DataType::Float64,
        FieldType::Bool => DataType::Boolean,
    }
}

/// The full schema of a dataset, as the contract declares it.
pub fn contract_schema(ds: &Dataset) -> SchemaRef {
    Arc::new(Schema::new(
        ds.schema
            .iter()
            .map(|f| Field::new(f.name.get_ref(), arrow_type(f.ty), true))
            .collect::<Vec<_>>(),
    ))
}

/// The names of a dataset's `allowed_fields`.
pub fn allowed(ds: &Dataset) -> Vec<String> {
    ds.allowed_fields
        .iter()
        .map(|f| f.get_ref().clone())
        .collect()
}

fn format_name(f: DataFormat) -> &'static str {
    match f {
        DataFormat::Csv => "csv",
        DataFormat::Json => "json",
        DataFormat::Parquet => "parquet",
        DataFormat::File => "file",
    }
}

/// Whether a column read from Parquet has the contract's type (any string encoding counts
/// as `string`: DataFusion reads Parquet strings as views).
fn same_logical_type(actual: &DataType, want: &DataType) -> bool {
    let is_str =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    actual == want || (is_str(actual) && is_str(want))
}

/// Parse CSV or JSON-lines plaintext with the contract schema (for `dataset open` and runs).
pub fn parse_rows(ds: &Dataset, plaintext: &[u8]) -> Result<Vec<RecordBatch>> {
    let schema = contract_schema(ds);
    let unreadable = || {
        HostError::DatasetUnreadable {
        dataset: ds.name.get_ref().clone(),
        format: format_name(ds.format),
        what: "a row does not match the contract schema (details withheld: they may contain data values)".into(),
    }
    };
    let batches: std::result::Result<Vec<_>, _> = match ds.format {
        DataFormat::Csv => arrow::csv::ReaderBuilder::new(schema)
            .with_header(true)
            .build(std::io::Cursor::new(plaintext))
            .map_err(|_| unreadable())?
            .collect(),
        DataFormat::Json => arrow::json::ReaderBuilder::new(schema)
            .build(std::io::Cursor::new(plaintext))
            .map_err(|_| unreadable())?
            .collect(),
        DataFormat::Parquet | DataFormat::File => {
            return Err(HostError::DatasetUnreadable {
                dataset: ds.name.get_ref().clone(),
                format: format_name(ds.format),
                what: "is not a row format (CSV or JSON lines)".into(),
            });
        }
    };
    batches.map_err(|_| unreadable())
}

/// A DataFusion session for one run.
pub struct Engine {
    ctx: SessionContext,
    /// dataset name → (all schema fields, allowed fields)
    inputs: Vec<(String, Vec<String>, Vec<String>)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("inputs", &self.inputs)
            .finish()
    }
}

/// The guarded result of a query.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    pub groups_dropped: u64,
    /// Time spent applying the group guard.
    pub guard_time: std::time::Duration,
}

impl Engine {
    pub fn new(memory_limit: usize) -> Result<Self> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(memory_limit)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| HostError::QueryRefused {
                reason: format!("engine set-up failed: {e}"),
            })?;
        let config = SessionConfig::new().with_information_schema(false);
        Ok(Self {
            ctx: SessionContext::new_with_config_rt(config, runtime),
            inputs: Vec::new(),
        })
    }

    fn remember(&mut self, ds: &Dataset) {
        self.inputs.push((
            ds.name.get_ref().clone(),
            ds.schema.iter().map(|f| f.name.get_ref().clone()).collect(),
            allowed(ds),
        ));
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
            .map_err(|e| HostError::QueryRefused {
                reason: e.to_string(),
            })?;
        drop(batches);
        let rows = projected.iter().map(|b| b.num_rows() as u64).sum();
        let view_schema = Arc::new(schema.project(&idx).expect("indices are valid"));
        let table = MemTable::try_new(view_schema, vec![projected]).map_err(|e| {
            HostError::QueryRefused {
                reason: e.to_string(),
            }
        })?;
        self.ctx
            .register_table(ds.name.get_ref().as_str(), Arc::new(table))
            .map_err(|e| HostError::QueryRefused {
                reason: e.to_string(),
            })?;
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
        let unreadable = |what: &str| HostError::DatasetUnreadable {
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
        let opts = ParquetReadOptions::default().file_decryption_properties(
            crate::seal::parquet::datafusion_decryption(key, &allowed(ds), &name),
        );
        let dec_fail = "does not decrypt with the released key (wrong key, or the file was modified or swapped)";
        let df = self
            .ctx
            .read_parquet(format!("cleanroom-sealed://{name}/{obj}"), opts)
            .await
            .map_err(|_| unreadable(dec_fail))?;
        let allowed = allowed(ds);
        let cols: Vec<&str> = allowed.iter().map(String::as_str).collect();
        let expected = contract_schema(ds);
        for c in &cols {
            let want = expected.field_with_name(c).expect("validated").data_type();
            match df.schema().field_with_unqualified_name(c) {
                Ok(f) if same_logical_type(f.data_type(), want) => {}
                _ => {
                    return Err(unreadable(&format!(
                        "column `{c}` is missing or not of the contract's type {want}"
                    )));
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
        let table =
            MemTable::try_new(schema, vec![batches]).map_err(|e| HostError::QueryRefused {
                reason: e.to_string(),
            })?;
        self.ctx
            .register_table(name.as_str(), Arc::new(table))
            .map_err(|e| HostError::QueryRefused {
                reason: e.to_string(),
            })?;
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
        let batches = df.collect().await.map_err(|_| HostError::QueryFailed {
            category: "reading a view",
        })?;
        Ok((schema, batches))
    }

    /// Run a query for a module's `query(sql)` import: queries only, over the same views.
    /// Errors are categories, never DataFusion's text.
    pub async fn module_query(
        ctx: &SessionContext,
        sql: &str,
    ) -> std::result::Result<Vec<RecordBatch>, String> {
        let opts = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(sql, opts)
            .await
            .map_err(|e| format!("query refused: {}", e.find_root()))?;
        df.collect()
            .await
            .map_err(|_| "query failed while executing (details withheld)".to_string())
    }

    /// A handle on the session (for the module query callback).
    pub fn context(&self) -> SessionContext {
        self.ctx.clone()
    }

    fn map_plan_error(&self, e: DataFusionError) -> HostError {
        if let DataFusionError::SchemaError(se, _) = e.find_root()
            && let SchemaError::FieldNotFound { field, .. } = se.as_ref()
        {
            return self.column_error(field);
        }
        HostError::QueryRefused {
            reason: e.find_root().to_string(),
        }
    }

    fn column_error(&self, field: &Column) -> HostError {
        let name = &field.name;
        let hidden: Vec<&str> = self
            .inputs
            .iter()
            .filter(|(_, all, allowed)| all.contains(name) && !allowed.contains(name))
            .map(|(n, _, _)| n.as_str())
            .collect();
        if hidden.is_empty() {
            HostError::QueryRefused {
                reason: format!("no column `{name}` in the input views"),
            }
        } else {
            HostError::ColumnNotAllowed {
                column: name.clone(),
                views: hidden.join(", "),
            }
        }
    }

    /// Plan, guard and execute `sql`.
    pub async fn query(
        &self,
        sql: &str,
        g: &cleanroom_policy::guards::EffectiveGuards,
    ) -> Result<QueryResult> {
        let opts = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, opts)
            .await
            .map_err(|e| self.map_plan_error(e))?;
        let (_, plan) = df.into_parts();
        let output_schema = Arc::new(plan.schema().as_arrow().clone());
        let counted = guards::add_group_count(plan)?;
        let batches = self
            .ctx
            .execute_logical_plan(counted)
            .await
            .map_err(|e| self.map_plan_error(e))?
            .collect()
            .await
            .map_err(|e| HostError::QueryFailed {
                category: match e.find_root() {
                    DataFusionError::ResourcesExhausted(_) => "memory limit reached",
                    DataFusionError::ArrowError(..) => "arithmetic or cast error",
                    _ => "execution error",
                },
            })?;
        let tg = std::time::Instant::now();
        let (batches, groups_dropped) =
            guards::drop_small_groups(batches, guards::GROUP_COUNT_COLUMN, g.min_group_size, true)?;
        let guard_time = tg.elapsed();
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if rows > g.max_output_rows {
            return Err(HostError::QueryRefused {
                reason: format!(
                    "output has {rows} rows, more than max_output_rows {}",
                    g.max_output_rows
                ),
            });
        }
        let schema = batches.first().map(|b| b.schema()).unwrap_or(output_schema);
        Ok(QueryResult {
            schema,
            batches,
            rows,
            groups_dropped,
            guard_time,
        })
    }
}

/// Render batches as CSV with a header.
pub fn to_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        if batches.is_empty() {
            w.write(&RecordBatch::new_empty(schema.clone()))
                .map_err(|e| HostError::QueryRefused {
                    reason: e.to_string(),
                })?;
        }
        for b in batches {
            w.write(b).map_err(|e| HostError::QueryRefused {
                reason: e.to_string(),
            })?;
        }
    }
    Ok(out)
}

/// Render batches as JSON lines.
pub fn to_json_lines(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    for b in batches {
        w.write(b).map_err(|e| HostError::QueryRefused {
            reason: e.to_string(),
        })?;
    }
    w.finish().map_err(|e| HostError::QueryRefused {
        reason: e.to_string(),
    })?;
    Ok(w.into_inner())
}

/// A pretty table for terminals.
pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
