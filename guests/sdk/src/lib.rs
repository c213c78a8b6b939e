//! Guest SDK for Cleanroom modules: the `cleanroom:workload` bindings (wit-bindgen) for the
//! three worlds, and Arrow helpers to read views and write output tables.
//!
//! A module is a `cdylib` crate that implements one world's `Guest` trait and exports it:
//!
//! ```ignore
//! use cleanroom_guest::{query, Result};
//! struct MyModule;
//! impl query::Guest for MyModule {
//!     fn run(params: String) -> Result<(), String> { Ok(()) }
//! }
//! query::export!(MyModule);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; see docs/modules.md.

use std::sync::Arc;

pub use arrow;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

/// Bindings of `world query` (export `run`); `query::export!(T)` exports `T: query::Guest`.
pub mod query {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "query",
        pub_export_macro: true,
        default_bindings_module: "cleanroom_guest::query",
    });
}

/// Bindings of `world training` (export `train`); `training::export!(T)`.
pub mod training {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "training",
        pub_export_macro: true,
        default_bindings_module: "cleanroom_guest::training",
        with: {
            "cleanroom:workload/input@0.1.0": crate::query::cleanroom::workload::input,
            "cleanroom:workload/output@0.1.0": crate::query::cleanroom::workload::output,
            "cleanroom:workload/log@0.1.0": crate::query::cleanroom::workload::log,
        },
    });
}

/// Bindings of `world inference` (export `infer`); `inference::export!(T)`.
pub mod inference {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "inference",
        pub_export_macro: true,
        default_bindings_module: "cleanroom_guest::inference",
        with: {
            "cleanroom:workload/input@0.1.0": crate::query::cleanroom::workload::input,
            "cleanroom:workload/output@0.1.0": crate::query::cleanroom::workload::output,
            "cleanroom:workload/log@0.1.0": crate::query::cleanroom::workload::log,
        },
    });
}

/// The raw imports (shared by all worlds).
pub use query::cleanroom::workload::{input, log, output};

/// A module's error: a message for the run's error (never put data values in it).
pub type Error = String;

/// Decode an Arrow IPC stream into its schema and batches.
pub fn decode_ipc(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let mut decoder = StreamDecoder::new();
    let mut buf = Buffer::from_vec(bytes);
    let mut batches = Vec::new();
    while !buf.is_empty() {
        if let Some(b) = decoder.decode(&mut buf).map_err(|e| e.to_string())? {
            batches.push(b);
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let schema = decoder.schema().ok_or("IPC stream without schema")?;
    Ok((schema, batches))
}

/// Encode batches (all of `schema`) as one Arrow IPC stream.
pub fn encode_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    Ok(out)
}

/// All batches of `view`, read one at a time from the host.
pub fn read_view(view: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let (schema, _) = decode_ipc(input::schema(view))?;
    let mut batches = Vec::new();
    let mut i = 0u32;
    while let Some(bytes) = input::read_batch(view, i) {
        batches.extend(decode_ipc(bytes)?.1);
        i += 1;
    }
    Ok((schema, batches))
}

/// Run `sql` on the host engine over this run's views.
pub fn query_sql(sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    decode_ipc(input::query(sql)?)
}

/// Append `batches` to output table `table`.
pub fn write_table(table: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), Error> {
    output::write_batches(table, &encode_ipc(schema, batches)?);
    Ok(())
}

/// Log at info level.
pub fn info(msg: &str) {
    log::write(log::Level::Info, msg);
}

/// Send panic messages to the run's log (at error level) instead of stderr, which a
/// module does not have. Call once at the start of an export.
pub fn init() {
    std::panic::set_hook(Box::new(|p| {
        log::write(log::Level::Error, &format!("panic: {p}"));
    }));
}

/// Column `name` of `batch`, or an error naming the column.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, Error> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("missing column {name:?}"))
}

/// Column `name` of `batch` as strings (Utf8 or LargeUtf8 or Utf8View), row by row.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, Error> {
    let col = column(batch, name)?;
    let col = arrow::compute::cast(col, &DataType::Utf8).map_err(|e| e.to_string())?;
    let arr = col.as_string::<i32>();
    Ok((0..arr.len())
        .map(|i| arr.is_valid(i).then(|| arr.value(i).to_string()))
        .collect())
}

/// Column `name` of `batch` cast to f64 (any numeric type), row by row.
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, Error> {
    let col = column(batch, name)?;
    let col = arrow::compute::cast(col, &DataType::Float64).map_err(|e| e.to_string())?;
    let arr = col.as_primitive::<Float64Type>();
    Ok((0..arr.len())
        .map(|i| arr.is_valid(i).then(|| arr.value(i)))
        .collect())
}

/// Column `name` of `batch` cast to i64, row by row.
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, Error> {
    let col = column(batch, name)?;
    let col = arrow::compute::cast(col, &DataType::Int64).map_err(|e| e.to_string())?;
    let arr = col.as_primitive::<arrow::datatypes::Int64Type>();
    Ok((0..arr.len())
        .map(|i| arr.is_valid(i).then(|| arr.value(i)))
        .collect())
}

/// Build a record batch from named columns.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, Error> {
    RecordBatch::try_from_iter(columns).map_err(|e| e.to_string())
}

/// `Arc` for arrays, re-exported for convenience.
pub fn arc<A: Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

/// Modules have no environment (invariant I4). Rust's standard library asks the C
/// library for variables such as `RUST_BACKTRACE` when it panics; this definition answers
/// "not set" and keeps the C library's environment code, and with it the forbidden
/// `wasi:cli/environment` import, out of the module.
#[unsafe(no_mangle)]
pub extern "C" fn getenv(_name: *const core::ffi::c_char) -> *mut core::ffi::c_char {
    core::ptr::null_mut()
}
