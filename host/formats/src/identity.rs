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
//! read here with bounds on every length. Only what the format defines is read, each field
//! of its type and once: the identity must be the value the Parquet reader authenticates
//! the file with, and any encoding two readers could read differently is refused.

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
const T_BINARY: u8 = 8;
const T_STRUCT: u8 = 12;

fn malformed() -> IdentityError {
    IdentityError::NotEncryptedParquet("FileCryptoMetaData is malformed")
}

fn repeated() -> IdentityError {
    IdentityError::NotEncryptedParquet("FileCryptoMetaData has a field twice")
}

fn retyped() -> IdentityError {
    IdentityError::NotEncryptedParquet("FileCryptoMetaData has a field of another type")
}

fn unknown() -> IdentityError {
    IdentityError::NotEncryptedParquet("FileCryptoMetaData has a field the format does not define")
}

/// Marks a field seen; a second time is refused.
fn once(seen: &mut bool) -> Result<(), IdentityError> {
    if std::mem::replace(seen, true) {
        return Err(repeated());
    }
    Ok(())
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

    // The identity must be the value the Parquet reader authenticates the file with, so
    // these read only what the format defines, each field of its type and at most once, and
    // refuse anything else rather than skip it: parquet-rs reads a repeated field's last
    // value, reads a known field as its defined type whatever its header says, and skips a
    // list of bools as taking no bytes, so a lenient reader (first value wins, fields of
    // another type or unknown fields skipped) can be shown one `aad_file_unique` while
    // parquet-rs decrypts with another (tests/parquet_identity.rs).

    /// FileCryptoMetaData { 1: EncryptionAlgorithm encryption_algorithm; 2: binary
    /// key_metadata } → the `aad_file_unique` of its AES_GCM_V1 or AES_GCM_CTR_V1.
    fn file_crypto_metadata(&mut self) -> Result<Option<&'a [u8]>, IdentityError> {
        let mut last = 0;
        let mut unique = None;
        let (mut algorithm, mut key_metadata) = (false, false);
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (1, T_STRUCT) => {
                    once(&mut algorithm)?;
                    unique = self.encryption_algorithm()?;
                }
                (2, T_BINARY) => {
                    once(&mut key_metadata)?;
                    self.binary()?;
                }
                (1 | 2, _) => return Err(retyped()),
                _ => return Err(unknown()),
            }
        }
        if !algorithm {
            return Err(IdentityError::NotEncryptedParquet(
                "FileCryptoMetaData has no encryption algorithm",
            ));
        }
        Ok(unique)
    }

    /// union EncryptionAlgorithm { 1: AesGcmV1; 2: AesGcmCtrV1 }: exactly one of them.
    fn encryption_algorithm(&mut self) -> Result<Option<&'a [u8]>, IdentityError> {
        let mut last = 0;
        match self.field(&mut last)? {
            Some((1 | 2, T_STRUCT)) => {}
            Some((1 | 2, _)) => return Err(retyped()),
            Some(_) => return Err(unknown()),
            None => return Err(malformed()),
        }
        let unique = self.aes()?;
        if self.field(&mut last)?.is_some() {
            return Err(repeated());
        }
        Ok(unique)
    }

    /// AesGcmV1 and AesGcmCtrV1 alike: { 1: binary aad_prefix; 2: binary aad_file_unique;
    /// 3: bool supply_aad_prefix }.
    fn aes(&mut self) -> Result<Option<&'a [u8]>, IdentityError> {
        let mut last = 0;
        let mut unique = None;
        let mut seen = [false; 3];
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (1, T_BINARY) => {
                    once(&mut seen[0])?;
                    self.binary()?;
                }
                (2, T_BINARY) => {
                    once(&mut seen[1])?;
                    unique = Some(self.binary()?);
                }
                (3, T_TRUE | T_FALSE) => once(&mut seen[2])?,
                (1..=3, _) => return Err(retyped()),
                _ => return Err(unknown()),
            }
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

    /// A PME tail around `meta` (a FileCryptoMetaData) and a stand-in encrypted footer.
    fn tail(meta: &[u8]) -> Vec<u8> {
        let mut f = b"PARE".to_vec();
        f.extend_from_slice(meta);
        f.extend_from_slice(&44u32.to_le_bytes());
        f.extend_from_slice(&[0xa5; 44]);
        f.extend_from_slice(&((meta.len() + 48) as u32).to_le_bytes());
        f.extend_from_slice(b"PARE");
        f
    }

    /// The encodings parquet-rs and a lenient reader would read differently are refused:
    /// an unknown field (a list of bools, which parquet-rs skips as taking no bytes, could
    /// hide a field from one reader), a known field of another wire type, a field twice, a
    /// second variant of the algorithm.
    #[test]
    fn crypto_metadata_two_readers_could_read_differently_is_refused() {
        let algorithm = [0x1c, 0x1c, 0x28, 0x02, 0xab, 0xcd, 0x00, 0x00];
        let well_formed = [&algorithm[..], &[0x18, 0x01, 0x6b, 0x00]].concat();
        assert_eq!(
            FileIdentity::of_encrypted_parquet(&tail(&well_formed)),
            Ok(FileIdentity::Parquet(vec![0xab, 0xcd]))
        );
        let refused = |meta: Vec<u8>, what: &str| {
            assert_eq!(
                FileIdentity::of_encrypted_parquet(&tail(&meta)),
                Err(IdentityError::NotEncryptedParquet(match what {
                    "unknown" => "FileCryptoMetaData has a field the format does not define",
                    "retyped" => "FileCryptoMetaData has a field of another type",
                    _ => "FileCryptoMetaData has a field twice",
                })),
                "{meta:02x?}"
            );
        };
        // Field 3, list of two bools, before the algorithm.
        refused(
            [&[0x39, 0x21, 0x01, 0x01][..], &algorithm].concat(),
            "unknown",
        );
        // key_metadata as an i32.
        refused([&algorithm[..], &[0x15, 0x02, 0x00]].concat(), "retyped");
        // aad_file_unique as a struct.
        refused(vec![0x1c, 0x1c, 0x2c, 0x00, 0x00, 0x00, 0x00], "retyped");
        // key_metadata twice (the second in long form: zigzag id 2).
        refused(
            [
                &algorithm[..],
                &[0x18, 0x01, 0x6b, 0x08, 0x04, 0x01, 0x6c, 0x00],
            ]
            .concat(),
            "twice",
        );
        // aad_file_unique twice (parquet-rs keeps the second).
        refused(
            vec![
                0x1c, 0x1c, 0x28, 0x01, 0xab, 0x08, 0x04, 0x01, 0xcd, 0x00, 0x00, 0x00,
            ],
            "twice",
        );
        // AES_GCM_V1 and AES_GCM_CTR_V1 in one union.
        refused(
            vec![
                0x1c, 0x1c, 0x28, 0x01, 0xab, 0x00, 0x1c, 0x28, 0x01, 0xcd, 0x00, 0x00, 0x00,
            ],
            "twice",
        );
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
