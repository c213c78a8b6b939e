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

/// The Arrow crates a module works with, under the paths of the `arrow` facade crate
/// (`cleanroom_guest::arrow::array::StringArray`). The SDK depends on the Arrow crates it
/// needs, not on `arrow` itself: its compute kernels (casts above all) would add ~3 MB of
/// code to every module that reads a column, and the room compiles every byte of a module
/// before it runs it.
pub mod arrow {
    /// Arrays, record batches, builders and the downcasting helpers (`AsArray`).
    pub mod array {
        pub use arrow_array::builder::*;
        pub use arrow_array::cast::*;
        pub use arrow_array::*;
    }
    pub use arrow_buffer as buffer;
    pub use arrow_ipc as ipc;
    /// Arrow's data types and schemas, and the array types' marker types.
    pub mod datatypes {
        pub use arrow_array::types::*;
        pub use arrow_schema::*;
    }
    pub use arrow_schema::ArrowError as error;
}

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use arrow_array::types::*;

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

/// Column `name` of `batch` as strings, row by row: a string column (Utf8, LargeUtf8,
/// Utf8View), or an integer or boolean column written in decimal / `true` `false`.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>, Error> {
    let col = column(batch, name)?;
    fn rows<T: ToString>(a: &dyn Array, v: impl Fn(usize) -> T) -> Vec<Option<String>> {
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| v(i).to_string()))
            .collect()
    }
    let c = col.as_ref();
    Ok(match col.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            rows(c, |i| a.value(i))
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            rows(c, |i| a.value(i))
        }
        DataType::Utf8View => {
            let a = c.as_string_view();
            rows(c, |i| a.value(i))
        }
        DataType::Boolean => {
            let a = c.as_boolean();
            rows(c, |i| a.value(i))
        }
        DataType::Null => vec![None; c.len()],
        t => match integer(c, t) {
            Some(f) => rows(c, f),
            None => return Err(unsupported(name, t, "strings")),
        },
    })
}

/// Column `name` of `batch` as f64, row by row: any integer, float or Decimal128 column.
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>, Error> {
    let col = column(batch, name)?;
    let c = col.as_ref();
    let v: Box<dyn Fn(usize) -> f64 + '_> = match col.data_type() {
        DataType::Float64 => {
            let a = c.as_primitive::<Float64Type>();
            Box::new(|i| a.value(i))
        }
        DataType::Float32 => {
            let a = c.as_primitive::<Float32Type>();
            Box::new(|i| f64::from(a.value(i)))
        }
        DataType::Float16 => {
            let a = c.as_primitive::<Float16Type>();
            Box::new(|i| a.value(i).to_f64())
        }
        DataType::Decimal128(_, scale) => {
            let div = 10f64.powi(i32::from(*scale));
            let a = c.as_primitive::<Decimal128Type>();
            Box::new(move |i| a.value(i) as f64 / div)
        }
        DataType::Null => return Ok(vec![None; c.len()]),
        t => match integer(c, t) {
            Some(f) => Box::new(move |i| f(i) as f64),
            None => return Err(unsupported(name, t, "floats")),
        },
    };
    Ok((0..c.len()).map(|i| c.is_valid(i).then(|| v(i))).collect())
}

/// Column `name` of `batch` as i64, row by row: any integer column (a UInt64 value above
/// `i64::MAX` is an error), a boolean (0 or 1), a date or timestamp (its stored count).
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>, Error> {
    let col = column(batch, name)?;
    let c = col.as_ref();
    if let DataType::UInt64 = col.data_type() {
        let a = c.as_primitive::<UInt64Type>();
        return (0..c.len())
            .map(|i| match c.is_valid(i) {
                false => Ok(None),
                true => i64::try_from(a.value(i))
                    .map(Some)
                    .map_err(|_| format!("column {name:?} holds a UInt64 above i64::MAX")),
            })
            .collect();
    }
    let v: Box<dyn Fn(usize) -> i64 + '_> = match col.data_type() {
        DataType::Boolean => {
            let a = c.as_boolean();
            Box::new(|i| i64::from(a.value(i)))
        }
        DataType::Date32 => {
            let a = c.as_primitive::<Date32Type>();
            Box::new(|i| i64::from(a.value(i)))
        }
        DataType::Date64 => {
            let a = c.as_primitive::<Date64Type>();
            Box::new(|i| a.value(i))
        }
        DataType::Timestamp(unit, _) => {
            use arrow::datatypes::TimeUnit;
            // Every unit stores its count as an i64.
            let a: &[i64] = match unit {
                TimeUnit::Second => c.as_primitive::<TimestampSecondType>().values(),
                TimeUnit::Millisecond => c.as_primitive::<TimestampMillisecondType>().values(),
                TimeUnit::Microsecond => c.as_primitive::<TimestampMicrosecondType>().values(),
                TimeUnit::Nanosecond => c.as_primitive::<TimestampNanosecondType>().values(),
            };
            Box::new(move |i| a[i])
        }
        DataType::Null => return Ok(vec![None; c.len()]),
        t => match integer(c, t) {
            Some(f) => f,
            None => return Err(unsupported(name, t, "ints")),
        },
    };
    Ok((0..c.len()).map(|i| c.is_valid(i).then(|| v(i))).collect())
}

/// Row `i` of an integer column (every integer type but UInt64) as i64, or None for a
/// column of another type.
fn integer<'a>(c: &'a dyn Array, t: &DataType) -> Option<Box<dyn Fn(usize) -> i64 + 'a>> {
    macro_rules! widen {
        ($ty:ty) => {
            Some(Box::new({
                let a = c.as_primitive::<$ty>();
                move |i| i64::from(a.value(i))
            }))
        };
    }
    match t {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => widen!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        _ => None,
    }
}

fn unsupported(name: &str, t: &DataType, helper: &str) -> Error {
    format!("column {name:?} is {t}, which {helper}() does not read")
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
