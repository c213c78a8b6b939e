//! Column types a contract schema may declare, spelled as in `contract.toml`
//! (`type = "decimal(12,2)"`, `type = "timestamp(us, UTC)"`).
//!
//! The spelling is the contract's: the digest hashes it, so `int64` stays `int64` and a
//! contract written before a type existed keeps its digest. The Arrow type each maps to is
//! the host's business (`cleanroom_formats::tabular`) and is listed in `docs/formats.md`.
//!
//! Time zones are `UTC` or a fixed offset (`+05:30`), never a region name such as
//! `Europe/Paris`: a region's offsets come from the tz database the room was built with,
//! so the same contract would read the same file differently in two builds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Largest decimal precision (digits): what a 128-bit decimal holds.
pub const DECIMAL_MAX_PRECISION: u8 = 38;

/// The resolution of a timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

impl TimeUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Millisecond => "ms",
            Self::Microsecond => "us",
            Self::Nanosecond => "ns",
        }
    }
}

/// A column's type in a contract schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FieldType {
    String,
    Binary,
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    /// Exact decimal: `precision` digits in all (1 to 38), `scale` of them after the point
    /// (0 to `precision`).
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// Days since 1970-01-01.
    Date,
    /// An instant (`timezone` set: `UTC` or `±HH:MM`) or a wall-clock time without zone.
    Timestamp {
        unit: TimeUnit,
        timezone: Option<String>,
    },
}

const SIMPLE: &[(&str, FieldType)] = &[
    ("string", FieldType::String),
    ("binary", FieldType::Binary),
    ("bool", FieldType::Bool),
    ("int8", FieldType::Int8),
    ("int16", FieldType::Int16),
    ("int32", FieldType::Int32),
    ("int64", FieldType::Int64),
    ("uint8", FieldType::UInt8),
    ("uint16", FieldType::UInt16),
    ("uint32", FieldType::UInt32),
    ("uint64", FieldType::UInt64),
    ("float32", FieldType::Float32),
    ("float64", FieldType::Float64),
    ("date", FieldType::Date),
];

/// What a contract may write as a column type, for error messages.
pub const FIELD_TYPES_RULE: &str = "string, binary, bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, decimal(P,S) with 1 <= P <= 38 and 0 <= S <= P, date, timestamp(UNIT) or timestamp(UNIT, ZONE) with UNIT one of s, ms, us, ns and ZONE `UTC` or an offset such as +05:30";

impl FieldType {
    /// Whether values of this type are numbers (integers, floats, decimals).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Self::Int8
                | Self::Int16
                | Self::Int32
                | Self::Int64
                | Self::UInt8
                | Self::UInt16
                | Self::UInt32
                | Self::UInt64
                | Self::Float32
                | Self::Float64
                | Self::Decimal { .. }
        )
    }
}

/// Why a type spelling was refused (the message names the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown column type `{spelled}`: expected {FIELD_TYPES_RULE}")]
pub struct UnknownFieldType {
    pub spelled: String,
}

/// Whether `tz` is `UTC` or a fixed offset `+HH:MM` / `-HH:MM` (hours up to 23, minutes up
/// to 59).
fn is_fixed_zone(tz: &str) -> bool {
    if tz == "UTC" {
        return true;
    }
    let b = tz.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && digits(1..3)
        && b[3] == b':'
        && digits(4..6)
        && tz[1..3].parse::<u8>().is_ok_and(|h| h <= 23)
        && tz[4..6].parse::<u8>().is_ok_and(|m| m <= 59)
}

/// `name(a, b)` → `("name", ["a", "b"])`; `None` when there are no parentheses.
fn call(s: &str) -> Option<(&str, Vec<&str>)> {
    let (name, rest) = s.split_once('(')?;
    let args = rest.strip_suffix(')')?;
    Some((name.trim(), args.split(',').map(str::trim).collect()))
}

impl FromStr for FieldType {
    type Err = UnknownFieldType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownFieldType { spelled: s.into() };
        if let Some((_, t)) = SIMPLE.iter().find(|(n, _)| *n == s) {
            return Ok(t.clone());
        }
        let (name, args) = call(s).ok_or_else(unknown)?;
        match (name, args.as_slice()) {
            ("decimal", [p, sc]) => {
                let precision: u8 = p.parse().map_err(|_| unknown())?;
                let scale: u8 = sc.parse().map_err(|_| unknown())?;
                if precision == 0 || precision > DECIMAL_MAX_PRECISION || scale > precision {
                    return Err(unknown());
                }
                Ok(Self::Decimal { precision, scale })
            }
            ("timestamp", [unit, zone @ ..]) if zone.len() <= 1 => {
                let unit = [
                    TimeUnit::Second,
                    TimeUnit::Millisecond,
                    TimeUnit::Microsecond,
                    TimeUnit::Nanosecond,
                ]
                .into_iter()
                .find(|u| u.as_str() == *unit)
                .ok_or_else(unknown)?;
                let timezone = match zone.first() {
                    None => None,
                    Some(z) if is_fixed_zone(z) => Some(z.to_string()),
                    Some(_) => return Err(unknown()),
                };
                Ok(Self::Timestamp { unit, timezone })
            }
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((n, _)) = SIMPLE.iter().find(|(_, t)| t == self) {
            return f.write_str(n);
        }
        match self {
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Self::Timestamp {
                unit,
                timezone: None,
            } => write!(f, "timestamp({})", unit.as_str()),
            Self::Timestamp {
                unit,
                timezone: Some(tz),
            } => write!(f, "timestamp({}, {tz})", unit.as_str()),
            _ => unreachable!("every other type is in SIMPLE"),
        }
    }
}

impl TryFrom<String> for FieldType {
    type Error = UnknownFieldType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FieldType> for String {
    fn from(t: FieldType) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for s in [
            "string",
            "binary",
            "bool",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float32",
            "float64",
            "date",
            "decimal(1,0)",
            "decimal(12,2)",
            "decimal(38,38)",
            "timestamp(s)",
            "timestamp(ms)",
            "timestamp(us, UTC)",
            "timestamp(ns, +05:30)",
            "timestamp(us, -08:00)",
        ] {
            let t: FieldType = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t.to_string(), s);
        }
        // Spaces inside the parentheses are the writer's choice; the canonical form is one.
        assert_eq!(
            "decimal( 12 , 2 )"
                .parse::<FieldType>()
                .map(|t| t.to_string()),
            Ok("decimal(12,2)".to_string())
        );
    }

    #[test]
    fn malformed_spellings_are_refused() {
        for s in [
            "",
            "int",
            "Int64",
            "float",
            "decimal",
            "decimal()",
            "decimal(12)",
            "decimal(0,0)",
            "decimal(39,2)",
            "decimal(5,6)",
            "decimal(-1,2)",
            "decimal(5,2",
            "timestamp",
            "timestamp()",
            "timestamp(m)",
            "timestamp(us, Europe/Paris)",
            "timestamp(us, +24:00)",
            "timestamp(us, +5:30)",
            "timestamp(us, UTC, UTC)",
            "date(1)",
        ] {
            assert_eq!(
                s.parse::<FieldType>(),
                Err(UnknownFieldType { spelled: s.into() }),
                "{s:?}"
            );
        }
    }
}
