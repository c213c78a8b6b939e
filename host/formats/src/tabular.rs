//! Tabular datasets as the contract declares them: the Arrow schema of a dataset and the
//! parsing of CSV / JSON-lines plaintext with it (for sealing, `dataset open` and runs).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit as ArrowTimeUnit};
use cleanroom_policy::contract::{DataFormat, Dataset, FieldType, TimeUnit};

use crate::error::{FormatError, Result};

/// The Arrow type a contract column type maps to (the table in `docs/formats.md`).
pub fn arrow_type(t: &FieldType) -> DataType {
    match t {
        FieldType::String => DataType::Utf8,
        FieldType::Binary => DataType::Binary,
        FieldType::Bool => DataType::Boolean,
        FieldType::Int8 => DataType::Int8,
        FieldType::Int16 => DataType::Int16,
        FieldType::Int32 => DataType::Int32,
        FieldType::Int64 => DataType::Int64,
        FieldType::UInt8 => DataType::UInt8,
        FieldType::UInt16 => DataType::UInt16,
        FieldType::UInt32 => DataType::UInt32,
        FieldType::UInt64 => DataType::UInt64,
        FieldType::Float32 => DataType::Float32,
        FieldType::Float64 => DataType::Float64,
        FieldType::Decimal { precision, scale } => {
            // Scale is at most 38 (checked when the contract is parsed).
            DataType::Decimal128(*precision, *scale as i8)
        }
        FieldType::Date => DataType::Date32,
        FieldType::Timestamp { unit, timezone } => DataType::Timestamp(
            match unit {
                TimeUnit::Second => ArrowTimeUnit::Second,
                TimeUnit::Millisecond => ArrowTimeUnit::Millisecond,
                TimeUnit::Microsecond => ArrowTimeUnit::Microsecond,
                TimeUnit::Nanosecond => ArrowTimeUnit::Nanosecond,
            },
            timezone.as_deref().map(Into::into),
        ),
    }
}

/// The full schema of a dataset, as the contract declares it.
pub fn contract_schema(ds: &Dataset) -> SchemaRef {
    Arc::new(Schema::new(
        ds.schema
            .iter()
            .map(|f| Field::new(f.name.get_ref(), arrow_type(&f.ty), true))
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
/// as `string` and any binary encoding as `binary`: DataFusion reads Parquet strings and
/// binaries as views).
pub fn same_logical_type(actual: &DataType, want: &DataType) -> bool {
    let is_str =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    let is_bin = |t: &DataType| {
        matches!(
            t,
            DataType::Binary | DataType::BinaryView | DataType::LargeBinary
        )
    };
    actual == want || (is_str(actual) && is_str(want)) || (is_bin(actual) && is_bin(want))
}

/// What a row that does not parse with the contract's types is refused with: the whole
/// reason, so no value of the row can appear in it.
pub const ROW_MISMATCH: &str =
    "a row does not match the contract schema (details withheld: they may contain data values)";

/// Parse CSV or JSON-lines plaintext with the contract schema (for `dataset open` and runs).
///
/// Text forms: dates `YYYY-MM-DD`; timestamps RFC 3339 / ISO 8601 (`2026-03-01T12:00:00Z`,
/// `2026-03-01 12:00:00.250+01:00`; a value without offset is in the column's zone, or UTC
/// for a column without one); decimals as plain decimal text (`1234.56`); binary as
/// hexadecimal (what `to_csv` and `to_json_lines` write).
pub fn parse_rows(ds: &Dataset, plaintext: &[u8]) -> Result<Vec<RecordBatch>> {
    row_batches(ds, std::io::Cursor::new(plaintext))?.collect()
}

/// The rows of CSV or JSON-lines plaintext read from `input` as they come, in batches of the
/// contract schema (see [`parse_rows`] for the text forms). An error names the dataset,
/// never a value.
pub fn row_batches<'a, R: std::io::Read + Send + 'a>(
    ds: &Dataset,
    input: R,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send + 'a>> {
    let schema = contract_schema(ds);
    let dataset = ds.name.get_ref().clone();
    let format = format_name(ds.format);
    let unreadable = move || FormatError::DatasetUnreadable {
        dataset: dataset.clone(),
        format,
        what: ROW_MISMATCH.into(),
    };
    match ds.format {
        DataFormat::Csv => {
            // The CSV reader has no binary columns: read them as text, then decode the hex.
            let as_text = Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        DataType::Binary => Field::new(f.name(), DataType::Utf8, true),
                        _ => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            ));
            let reader = arrow::csv::ReaderBuilder::new(as_text)
                .with_header(true)
                .build(input)
                .map_err(|_| unreadable())?;
            Ok(Box::new(reader.map(move |b| {
                b.ok()
                    .and_then(|b| hex_columns_to_binary(&schema, b))
                    .ok_or_else(&unreadable)
            })))
        }
        DataFormat::Json => {
            let reader = arrow::json::ReaderBuilder::new(schema)
                .build(std::io::BufReader::new(input))
                .map_err(|_| unreadable())?;
            Ok(Box::new(reader.map(move |b| b.map_err(|_| unreadable()))))
        }
        DataFormat::Parquet | DataFormat::File => Err(FormatError::DatasetUnreadable {
            dataset: ds.name.get_ref().clone(),
            format,
            what: "is not a row format (CSV or JSON lines)".into(),
        }),
    }
}

/// `batch` (binary columns of `schema` read as hex text) with those columns decoded;
/// `None` when one is not hexadecimal.
fn hex_columns_to_binary(schema: &SchemaRef, batch: RecordBatch) -> Option<RecordBatch> {
    use arrow::array::{Array, BinaryArray, StringArray};
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if f.data_type() != &DataType::Binary {
                return Some(c.clone());
            }
            let text = c.as_any().downcast_ref::<StringArray>()?;
            let bytes = text
                .iter()
                .map(|v| v.map(hex::decode).transpose().ok())
                .collect::<Option<Vec<Option<Vec<u8>>>>>()?;
            Some(Arc::new(BinaryArray::from_iter(bytes)) as Arc<dyn Array>)
        })
        .collect::<Option<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).ok()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Decimal128Type, TimestampNanosecondType};

    fn dataset(format: &str) -> Dataset {
        toml::from_str(&format!(
            r#"
name = "typed"
owner = "o"
format = "{format}"
location = "typed.sealed"
key = {{ broker = "http://127.0.0.1:1", resource = "o/dataset/typed" }}
schema = [
  {{ name = "s", type = "string" }}, {{ name = "b", type = "binary" }},
  {{ name = "t", type = "bool" }}, {{ name = "i8", type = "int8" }},
  {{ name = "i16", type = "int16" }}, {{ name = "i32", type = "int32" }},
  {{ name = "i64", type = "int64" }}, {{ name = "u8", type = "uint8" }},
  {{ name = "u16", type = "uint16" }}, {{ name = "u32", type = "uint32" }},
  {{ name = "u64", type = "uint64" }}, {{ name = "f32", type = "float32" }},
  {{ name = "f64", type = "float64" }}, {{ name = "d", type = "decimal(7,2)" }},
  {{ name = "day", type = "date" }}, {{ name = "at", type = "timestamp(ns, +05:30)" }},
]
allowed_fields = ["s"]
"#
        ))
        .unwrap()
    }

    const CSV: &str = "s,b,t,i8,i16,i32,i64,u8,u16,u32,u64,f32,f64,d,day,at
x,00ff1a,true,-8,-16,-32,-64,8,16,32,18446744073709551615,1.5,2.25,12345.67,2026-03-01,2026-03-01T12:00:00
,,,,,,,,,,,,,,,
";

    #[test]
    fn every_column_type_parses_from_csv_and_writes_back_the_same() {
        let ds = dataset("csv");
        let batches = parse_rows(&ds, CSV.as_bytes()).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), contract_schema(&ds));
        assert_eq!(b.column(1).as_binary::<i32>().value(0), [0x00, 0xff, 0x1a]);
        assert_eq!(
            b.column(10)
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(0),
            u64::MAX
        );
        assert_eq!(
            b.column(13).as_primitive::<Decimal128Type>().value(0),
            1_234_567
        );
        // 2026-03-01 is day 20513 since 1970-01-01.
        assert_eq!(b.column(14).as_primitive::<Date32Type>().value(0), 20_513);
        // Noon at +05:30 is 06:30 UTC.
        let at = b
            .column(15)
            .as_primitive::<TimestampNanosecondType>()
            .value(0);
        assert_eq!(at, (20_513 * 86_400 + 6 * 3600 + 1800) * 1_000_000_000);
        assert!(
            (0..16).all(|c| b.column(c).is_null(1)),
            "empty fields are nulls"
        );
        // What the room writes reads back as the same values.
        let written = to_csv(&b.schema(), &batches).unwrap();
        assert_eq!(parse_rows(&ds, &written).unwrap(), batches);
        let json = dataset("json");
        let lines = to_json_lines(&batches).unwrap();
        assert_eq!(parse_rows(&json, &lines).unwrap(), batches);
    }

    #[test]
    fn a_value_that_is_not_of_its_column_type_refuses_the_file_without_quoting_it() {
        let ds = dataset("csv");
        for (column, bad) in [
            (1, "zz"),
            (13, "123456.789"),
            (14, "2026-02-30"),
            (3, "300"),
        ] {
            let mut fields: Vec<&str> = CSV.lines().nth(1).unwrap().split(',').collect();
            fields[column] = bad;
            let text = format!("{}\n{}\n", CSV.lines().next().unwrap(), fields.join(","));
            let err = parse_rows(&ds, text.as_bytes()).unwrap_err();
            // The reason is the fixed text: no value of the row is in it.
            assert!(
                matches!(&err, FormatError::DatasetUnreadable { dataset, format: "csv", what }
                    if dataset == "typed" && what == ROW_MISMATCH),
                "{column} ({bad}): {err:?}"
            );
        }
    }
}
