//! The identity of a sealed dataset file: a value every byte the room reads is
//! authenticated under, so comparing it with what the owner registered at its broker pins
//! the exact version of the file without hashing it first.
//!
//! - Sealed stream (CSV, JSON, `file`): SHA-256 of the header, which is the AAD of every
//!   segment (`sealed-stream:sha256:<64 hex>`).
//! - Parquet with an encrypted footer (PME): the file's `aad_file_unique`, read from the
//!   plaintext FileCryptoMetaData before the encrypted footer; the AAD of the footer and of
//!   every encrypted page is `aad_prefix || aad_file_unique`
//!   (`parquet:aad-file-unique:<hex>`).
//!
//! Parsing needs no Parquet reader: the FileCryptoMetaData is a small Thrift compact struct,
//! read here with bounds on every length and on nesting.

use std::fmt;
use std::str::FromStr;

use cleanroom_policy::contract::DataFormat;
use sha2::{Digest, Sha256};

use crate::stream;

/// What identifies one sealing of a dataset.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum FileIdentity {
    /// SHA-256 of a sealed stream's header.
    Stream([u8; 32]),
    /// A PME Parquet file's `aad_file_unique`.
    Parquet(Vec<u8>),
}

const STREAM_TAG: &str = "sealed-stream:sha256:";
const PARQUET_TAG: &str = "parquet:aad-file-unique:";
/// Longest `aad_file_unique` accepted (writers use 8 bytes).
pub const MAX_AAD_FILE_UNIQUE: usize = 64;

impl fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileIdentity::Stream(h) => write!(f, "{STREAM_TAG}{}", hex::encode(h)),
            FileIdentity::Parquet(u) => write!(f, "{PARQUET_TAG}{}", hex::encode(u)),
        }
    }
}

impl fmt::Debug for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileIdentity({self})")
    }
}

/// Why a file's identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("not a sealed stream: {0}")]
    NotASealedStream(String),
    #[error("not a Parquet file with an encrypted footer (PME): {0}")]
    NotEncryptedParquet(&'static str),
    #[error("not a file identity: {0:?}")]
    Malformed(String),
}

impl FromStr for FileIdentity {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::Malformed(s.chars().take(100).collect());
        if let Some(h) = s.strip_prefix(STREAM_TAG) {
            let b: [u8; 32] = hex::decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)?;
            return Ok(FileIdentity::Stream(b));
        }
        if let Some(h) = s.strip_prefix(PARQUET_TAG) {
            let b = hex::decode(h).map_err(|_| bad())?;
            if b.is_empty() || b.len() > MAX_AAD_FILE_UNIQUE {
                return Err(bad());
            }
            return Ok(FileIdentity::Parquet(b));
        }
        Err(bad())
    }
}

impl serde::Serialize for FileIdentity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FileIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FileIdentity {
    /// The identity of a sealed file of a dataset in `format`.
    pub fn of(format: DataFormat, sealed: &[u8]) -> Result<Self, IdentityError> {
        match format {
            DataFormat::Parquet => Self::of_encrypted_parquet(sealed),
            DataFormat::Csv | DataFormat::Json | DataFormat::File => Self::of_sealed_stream(sealed),
        }
    }

    /// SHA-256 of a sealed stream's header (the AAD of each of its segments).
    pub fn of_sealed_stream(sealed: &[u8]) -> Result<Self, IdentityError> {
        let header = stream::peek_header(sealed)
            .map_err(|e| IdentityError::NotASealedStream(e.to_string()))?;
        // `encode` gives back exactly the bytes `peek_header` read.
        Ok(FileIdentity::Stream(Sha256::digest(header.encode()).into()))
    }

    /// A PME Parquet file's `aad_file_unique` (encrypted-footer mode only).
    pub fn of_encrypted_parquet(file: &[u8]) -> Result<Self, IdentityError> {
        let n = file.len();
        if n < 12 || &file[..4] != b"PARE" || &file[n - 4..] != b"PARE" {
            return Err(IdentityError::NotEncryptedParquet(
                "no PARE magic (a plaintext footer, or not Parquet)",
            ));
        }
        let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
        if len > n - 12 {
            return Err(IdentityError::NotEncryptedParquet(
                "footer length out of range",
            ));
        }
        let mut r = Compact {
            buf: &file[n - 8 - len..n - 8],
        };
        let unique = r.file_crypto_metadata()?;
        match unique {
            Some(u) if !u.is_empty() && u.len() <= MAX_AAD_FILE_UNIQUE => {
                Ok(FileIdentity::Parquet(u.to_vec()))
            }
            _ => Err(IdentityError::NotEncryptedParquet(
                "the encryption algorithm carries no aad_file_unique",
            )),
        }
    }
}

/// A reader of the Thrift compact protocol, just enough for FileCryptoMetaData.
struct Compact<'a> {
    buf: &'a [u8],
}

const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
const MAX_DEPTH: usize = 16;

fn malformed() -> IdentityError {
    IdentityError::NotEncryptedParquet("FileCryptoMetaData is malformed")
}

impl<'a> Compact<'a> {
    fn byte(&mut self) -> Result<u8, IdentityError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(malformed)?;
        self.buf = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, IdentityError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(malformed());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed())
    }

    fn binary(&mut self) -> Result<&'a [u8], IdentityError> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
        if len > self.buf.len() {
            return Err(malformed());
        }
        let (b, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(b)
    }

    /// The next field header: `None` at the struct's end, else (id, type).
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, IdentityError> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == T_STOP {
            return Ok(None);
        }
        let delta = i16::from(b >> 4);
        let id = if delta != 0 {
            last.checked_add(delta).ok_or_else(malformed)?
        } else {
            let z = self.varint()?;
            let z = u16::try_from(z).map_err(|_| malformed())?;
            ((z >> 1) as i16) ^ -((z & 1) as i16)
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), IdentityError> {
        if depth > MAX_DEPTH {
            return Err(malformed());
        }
        match ty {
            T_TRUE | T_FALSE => Ok(()),
            T_BYTE => self.byte().map(drop),
            T_I16 | T_I32 | T_I64 => self.varint().map(drop),
            T_DOUBLE => {
                for _ in 0..8 {
                    self.byte()?;
                }
                Ok(())
            }
            T_BINARY => self.binary().map(drop),
            T_LIST | T_SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let elem = h & 0x0f;
                if n > self.buf.len() as u64 {
                    return Err(malformed());
                }
                for _ in 0..n {
                    // A bool element is one byte.
                    if elem == T_TRUE || elem == T_FALSE {
                        self.byte()?;
                    } else {
                        self.skip(elem, depth + 1)?;
                    }
                }
                Ok(())
            }
            T_MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                if n > self.buf.len() as u64 {
                    return Err(malformed());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            T_STRUCT => {
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(malformed()),
        }
    }

    /// FileCryptoMetaData { 1: EncryptionAlgorithm encryption_algorithm; 2: binary
    /// key_metadata } → the `aad_file_unique` of its AES_GCM_V1 or AES_GCM_CTR_V1.
    fn file_crypto_metadata(&mut self) -> Result<Option<&'a [u8]>, IdentityError> {
        let mut last = 0;
        let mut unique = None;
        let mut seen_algorithm = false;
        while let Some((id, ty)) = self.field(&mut last)? {
            if id == 1 && ty == T_STRUCT && !seen_algorithm {
                seen_algorithm = true;
                unique = self.encryption_algorithm()?;
            } else {
                self.skip(ty, 1)?;
            }
        }
        if !seen_algorithm {
            return Err(IdentityError::NotEncryptedParquet(
                "FileCryptoMetaData has no encryption algorithm",
            ));
        }
        Ok(unique)
    }

    /// union EncryptionAlgorithm { 1: AesGcmV1; 2: AesGcmCtrV1 }, each { 1: binary
    /// aad_prefix; 2: binary aad_file_unique; 3: bool supply_aad_prefix }.
    fn encryption_algorithm(&mut self) -> Result<Option<&'a [u8]>, IdentityError> {
        let mut last = 0;
        let mut unique = None;
        let mut variants = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            if (id == 1 || id == 2) && ty == T_STRUCT {
                variants += 1;
                let mut inner_last = 0;
                while let Some((fid, fty)) = self.field(&mut inner_last)? {
                    if fid == 2 && fty == T_BINARY {
                        unique = Some(self.binary()?);
                    } else {
                        self.skip(fty, 3)?;
                    }
                }
            } else {
                self.skip(ty, 2)?;
            }
        }
        if variants != 1 {
            return Err(malformed());
        }
        Ok(unique)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identities_round_trip_through_text() {
        for id in [
            FileIdentity::Stream([7; 32]),
            FileIdentity::Parquet(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ] {
            assert_eq!(id.to_string().parse::<FileIdentity>().unwrap(), id);
        }
        assert!(matches!(
            "sealed-stream:sha256:00".parse::<FileIdentity>(),
            Err(IdentityError::Malformed(_))
        ));
    }

    #[test]
    fn stream_identity_is_the_header_digest_and_changes_with_each_sealing() {
        let key = stream::DataKey::generate();
        let seal = || {
            let mut out = Vec::new();
            stream::seal(&key, "ds", 64, &mut &b"hello world"[..], &mut out).unwrap();
            out
        };
        let (a, b) = (seal(), seal());
        let ia = FileIdentity::of_sealed_stream(&a).unwrap();
        assert_ne!(ia, FileIdentity::of_sealed_stream(&b).unwrap());
        // Flipping a ciphertext byte keeps the identity (the AEAD catches that), editing
        // the header does not.
        let mut c = a.clone();
        let last = c.len() - 1;
        c[last] ^= 1;
        assert_eq!(FileIdentity::of_sealed_stream(&c).unwrap(), ia);
        assert!(matches!(
            FileIdentity::of_sealed_stream(b"not sealed"),
            Err(IdentityError::NotASealedStream(_))
        ));
    }

    #[test]
    fn parquet_parser_refuses_junk_without_panicking() {
        for junk in [
            &b""[..],
            b"PAR1xxxxxxxxPAR1",
            b"PAREPARE",
            b"PARE\xff\xff\xff\xff\xff\xff\xff\xff\x04\x00\x00\x00PARE",
            b"PARE\x1c\x1c\x1c\x1c\x1c\x1c\x1c\x1c\x08\x00\x00\x00PARE",
        ] {
            assert!(matches!(
                FileIdentity::of_encrypted_parquet(junk),
                Err(IdentityError::NotEncryptedParquet(_))
            ));
        }
    }
}
