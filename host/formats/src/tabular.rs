//! Tabular datasets as the contract declares them: the Arrow schema of a dataset and the
//! parsing of CSV / JSON-lines plaintext with it (for sealing, `dataset open` and runs).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cleanroom_policy::contract::{DataFormat, Dataset, FieldType};

use crate::error::{FormatError, Result};

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

pub fn format_name(f: DataFormat) -> &'static str {
    match f {
        DataFormat::Csv => "csv",
        DataFormat::Json => "json",
        DataFormat::Parquet => "parquet",
        DataFormat::File => "file",
    }
}

/// Whether a column read from Parquet has the contract's type (any string encoding counts
/// as `string`: DataFusion reads Parquet strings as views).
pub fn same_logical_type(actual: &DataType, want: &DataType) -> bool {
    let is_str =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    actual == want || (is_str(actual) && is_str(want))
}

/// Parse CSV or JSON-lines plaintext with the contract schema (for `dataset open` and runs).
pub fn parse_rows(ds: &Dataset, plaintext: &[u8]) -> Result<Vec<RecordBatch>> {
    let schema = contract_schema(ds);
    let unreadable = || {
        FormatError::DatasetUnreadable {
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
            return Err(FormatError::DatasetUnreadable {
                dataset: ds.name.get_ref().clone(),
                format: format_name(ds.format),
                what: "is not a row format (CSV or JSON lines)".into(),
            });
        }
    };
    batches.map_err(|_| unreadable())
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
                .map_err(|e| FormatError::Tabular {
                    what: e.to_string(),
                })?;
        }
        for b in batches {
            w.write(b).map_err(|e| FormatError::Tabular {
                what: e.to_string(),
            })?;
        }
    }
    Ok(out)
}

/// Render batches as JSON lines.
pub fn to_json_lines(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    for b in batches {
        w.write(b).map_err(|e| FormatError::Tabular {
            what: e.to_string(),
        })?;
    }
    w.finish().map_err(|e| FormatError::Tabular {
        what: e.to_string(),
    })?;
    Ok(w.into_inner())
}

/// A pretty table for terminals.
pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
