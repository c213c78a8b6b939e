//! The Cleanroom sealed-stream format (DESIGN "Formats").
//!
//! ```text
//! header  = magic "CLRMSEAL" | version u8 (=1) | key id [16] | name_len u16 BE | name
//!           | segment_size u32 BE | nonce_prefix [7]
//! segment = AES-256-GCM(plaintext[segment_size]) with
//!           nonce = nonce_prefix | counter u32 BE | last u8 (1 on the final segment)
//!           aad   = SHA-256(header)
//! ```
//! Every segment but the last holds exactly `segment_size` plaintext bytes; the last holds
//! 0..=segment_size. Reordering changes a segment's counter, truncation removes the segment
//! with the `last` flag, a segment from another file carries another nonce prefix and header
//! digest, and an edited header changes the AAD: all of them fail to open.

use std::io::{Read, Write};

use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::StreamError;

pub const MAGIC: &[u8; 8] = b"CLRMSEAL";
pub const VERSION: u8 = 1;
/// Default plaintext bytes per segment.
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 20;
/// Largest segment a reader accepts: bounds what a hostile header can make us allocate.
pub const MAX_SEGMENT_SIZE: u32 = 16 << 20;
/// Longest name a header may carry.
pub const MAX_NAME_LEN: usize = 1024;
const TAG_LEN: usize = 16;

/// A 256-bit data key and its identifier.
#[derive(Clone)]
pub struct DataKey {
    pub id: [u8; 16],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataKey {{ id: {}, key: <redacted> }}",
            hex::encode(self.id)
        )
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self { id, key }
    }

    pub fn from_parts(id: [u8; 16], key: [u8; 32]) -> Self {
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The bulk AEAD of the sealed stream: ring's AES-256-GCM (hardware AES and carry-less
    /// multiplication in assembly; docs/PERFORMANCE.md compares it with openssl).
    fn cipher(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, self.key.as_ref()).expect("32-byte key"))
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key_id: [u8; 16],
    pub name: String,
    pub segment_size: u32,
    pub nonce_prefix: [u8; 7],
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(8 + 1 + 16 + 2 + self.name.len() + 4 + 7);
        h.extend_from_slice(MAGIC);
        h.push(VERSION);
        h.extend_from_slice(&self.key_id);
        h.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        h.extend_from_slice(self.name.as_bytes());
        h.extend_from_slice(&self.segment_size.to_be_bytes());
        h.extend_from_slice(&self.nonce_prefix);
        h
    }

    fn read_from(r: &mut impl Read) -> Result<(Self, Vec<u8>), StreamError> {
        let mut fixed = [0u8; 8 + 1 + 16 + 2];
        r.read_exact(&mut fixed)
            .map_err(|_| StreamError::BadMagic)?;
        if &fixed[..8] != MAGIC {
            return Err(StreamError::BadMagic);
        }
        if fixed[8] != VERSION {
            return Err(StreamError::UnsupportedVersion(fixed[8]));
        }
        let key_id: [u8; 16] = fixed[9..25].try_into().expect("16 bytes");
        let name_len = u16::from_be_bytes([fixed[25], fixed[26]]) as usize;
        if name_len > MAX_NAME_LEN {
            return Err(StreamError::BadHeader("name too long"));
        }
        let mut rest = vec![0u8; name_len + 4 + 7];
        r.read_exact(&mut rest)
            .map_err(|_| StreamError::BadHeader("header truncated"))?;
        let name = String::from_utf8(rest[..name_len].to_vec())
            .map_err(|_| StreamError::BadHeader("name is not UTF-8"))?;
        let segment_size =
            u32::from_be_bytes(rest[name_len..name_len + 4].try_into().expect("4 bytes"));
        if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
            return Err(StreamError::BadHeader("segment size out of range"));
        }
        let nonce_prefix: [u8; 7] = rest[name_len + 4..].try_into().expect("7 bytes");
        let mut raw = fixed.to_vec();
        raw.extend_from_slice(&rest);
        Ok((
            Self {
                key_id,
                name,
                segment_size,
                nonce_prefix,
            },
            raw,
        ))
    }
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Seal everything `input` yields into `out`. Returns the plaintext length.
pub fn seal(
    key: &DataKey,
    name: &str,
    segment_size: u32,
    input: &mut impl Read,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    assert!(segment_size > 0 && segment_size <= MAX_SEGMENT_SIZE);
    assert!(name.len() <= MAX_NAME_LEN);
    let mut nonce_prefix = [0u8; 7];
    rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
    let header = Header {
        key_id: key.id,
        name: name.to_string(),
        segment_size,
        nonce_prefix,
    }
    .encode();
    let aad = Sha256::digest(&header);
    out.write_all(&header)?;
    let cipher = key.cipher();
    let seg = segment_size as usize;
    let mut cur = Zeroizing::new(vec![0u8; seg]);
    let mut next = Zeroizing::new(vec![0u8; seg]);
    let mut cur_len = read_full(input, &mut cur)?;
    let mut counter: u32 = 0;
    let mut total = 0u64;
    loop {
        // Look ahead to learn whether `cur` is the final segment.
        let next_len = if cur_len == seg {
            read_full(input, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        // In place: `cur` holds this segment's plaintext and is overwritten with ciphertext.
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(&nonce_prefix, counter, last)),
                Aad::from(aad.as_slice()),
                &mut cur[..cur_len],
            )
            .map_err(|_| std::io::Error::other("AES-GCM encryption failed"))?;
        out.write_all(&cur[..cur_len])?;
        out.write_all(tag.as_ref())?;
        total += cur_len as u64;
        if last {
            return Ok(total);
        }
        counter = counter
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("too many segments"))?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
}

/// Read up to `limit` bytes into `buf` (cleared first), growing it only as data arrives.
fn read_upto(r: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<usize> {
    buf.clear();
    r.by_ref().take(limit as u64).read_to_end(buf)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read the header from `r` (not yet authenticated: its bytes are the AAD of every segment),
/// with the exact bytes it was read from.
pub fn read_header(r: &mut impl Read) -> Result<(Header, Vec<u8>), StreamError> {
    Header::read_from(r)
}

/// Read just the header (to learn the key id and name before asking for a key).
pub fn peek_header(bytes: &[u8]) -> Result<Header, StreamError> {
    Header::read_from(&mut &bytes[..]).map(|(h, _)| h)
}

/// Open a sealed stream held in memory, yielding the plaintext in memory.
///
/// `expected_name`, when given, must equal the header's name (a file sealed for another
/// dataset is refused even under the right key).
pub fn open(
    key: &DataKey,
    expected_name: Option<&str>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StreamError> {
    let mut out = Zeroizing::new(Vec::with_capacity(sealed.len()));
    open_into(key, expected_name, &mut &sealed[..], |chunk| {
        out.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(out)
}

/// Open a sealed stream from `input`, handing each authenticated plaintext segment to `sink`.
/// Nothing is handed on before its segment authenticates.
pub fn open_into(
    key: &DataKey,
    expected_name: Option<&str>,
    input: &mut impl Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), StreamError>,
) -> Result<Header, StreamError> {
    let (header, raw) = Header::read_from(input)?;
    if header.key_id != key.id {
        return Err(StreamError::WrongKey {
            expected: key.id_hex(),
            found: hex::encode(header.key_id),
        });
    }
    if let Some(want) = expected_name
        && want != header.name
    {
        return Err(StreamError::WrongName {
            expected: want.to_string(),
            found: header.name.clone(),
        });
    }
    let aad = Sha256::digest(&raw);
    let cipher = key.cipher();
    let chunk = header.segment_size as usize + TAG_LEN;
    // The buffers grow with the bytes actually read, so a header claiming the largest
    // segments costs memory only for data that is there (the header is not yet authenticated).
    let mut cur = Vec::new();
    let mut next = Vec::new();
    let io = |_| StreamError::BadHeader("read error");
    let mut cur_len = read_upto(input, &mut cur, chunk).map_err(io)?;
    let mut counter: u32 = 0;
    loop {
        if cur_len < TAG_LEN {
            return Err(if counter == 0 {
                StreamError::Truncated { after: 0 }
            } else {
                StreamError::Truncated { after: counter - 1 }
            });
        }
        let next_len = if cur_len == chunk {
            read_upto(input, &mut next, chunk).map_err(io)?
        } else {
            0
        };
        let last = next_len == 0;
        // Decrypted in place; a failed open leaves the buffer unspecified, so the final
        // segment (the only one tried twice) is opened in a copy.
        let open = |buf: &mut [u8], last: bool| {
            cipher
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce(&header.nonce_prefix, counter, last)),
                    Aad::from(aad.as_slice()),
                    buf,
                )
                .map(|pt| pt.len())
        };
        let mut last_copy = Zeroizing::new(Vec::new());
        let buf: &mut [u8] = if last {
            last_copy.extend_from_slice(&cur[..cur_len]);
            &mut last_copy
        } else {
            &mut cur[..cur_len]
        };
        match open(buf, last) {
            Ok(n) => sink(&buf[..n])?,
            Err(_) => {
                // A full segment sealed as non-final, followed by nothing: the tail was cut.
                if last && open(&mut cur[..cur_len], false).is_ok() {
                    return Err(StreamError::Truncated { after: counter });
                }
                return Err(StreamError::SegmentAuthFailed { index: counter });
            }
        }
        // The plaintext left in `cur` (a non-final segment) is not kept past this point.
        zeroize::Zeroize::zeroize(&mut cur[..cur_len]);
        if last {
            return Ok(header);
        }
        counter = counter.checked_add(1).ok_or(StreamError::TooManySegments)?;
        std::mem::swap(&mut cur, &mut next);
        cur_len = next_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &DataKey, name: &str, data: &[u8], seg: u32) -> Vec<u8> {
        let mut out = Vec::new();
        seal(key, name, seg, &mut &data[..], &mut out).unwrap();
        out
    }

    fn header_len(name: &str) -> usize {
        8 + 1 + 16 + 2 + name.len() + 4 + 7
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let key = DataKey::generate();
        for len in [0usize, 1, 15, 16, 17, 32, 33, 100] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = sealed(&key, "d", &data, 16);
            assert_eq!(
                &open(&key, Some("d"), &s).unwrap()[..],
                &data[..],
                "len {len}"
            );
        }
    }

    #[test]
    fn rejects_flipped_byte_in_any_segment() {
        let key = DataKey::generate();
        let data = vec![7u8; 100];
        let s = sealed(&key, "d", &data, 16);
        for pos in [header_len("d") + 3, s.len() - 1, s.len() / 2] {
            let mut bad = s.clone();
            bad[pos] ^= 1;
            assert!(matches!(
                open(&key, Some("d"), &bad),
                Err(StreamError::SegmentAuthFailed { .. })
            ));
        }
    }

    #[test]
    fn rejects_edited_header() {
        let key = DataKey::generate();
        let s = sealed(&key, "d", &[1u8; 40], 16);
        let mut bad = s.clone();
        let len = bad.len();
        bad[header_len("d") - 1] ^= 1; // nonce prefix
        assert!(matches!(
            open(&key, Some("d"), &bad),
            Err(StreamError::SegmentAuthFailed { index: 0 })
        ));
        assert_eq!(bad.len(), len);
    }

    #[test]
    fn rejects_truncation_at_segment_boundary_and_mid_segment() {
        let key = DataKey::generate();
        let s = sealed(&key, "d", &[1u8; 100], 16);
        let h = header_len("d");
        let cut = &s[..h + 2 * (16 + 16)];
        assert!(matches!(
            open(&key, Some("d"), cut),
            Err(StreamError::Truncated { after: 1 })
        ));
        let mid = &s[..s.len() - 5];
        assert!(open(&key, Some("d"), mid).is_err());
    }

    #[test]
    fn rejects_reordered_segments() {
        let key = DataKey::generate();
        let s = sealed(&key, "d", &[1u8; 100], 16);
        let h = header_len("d");
        let mut bad = s.clone();
        let (a, b) = (h, h + 32);
        let seg0 = s[a..a + 32].to_vec();
        bad[a..a + 32].copy_from_slice(&s[b..b + 32]);
        bad[b..b + 32].copy_from_slice(&seg0);
        assert!(matches!(
            open(&key, Some("d"), &bad),
            Err(StreamError::SegmentAuthFailed { index: 0 })
        ));
    }

    #[test]
    fn rejects_segment_from_another_file_under_same_key() {
        let key = DataKey::generate();
        let s1 = sealed(&key, "d", &[1u8; 100], 16);
        let s2 = sealed(&key, "d", &[1u8; 100], 16);
        let h = header_len("d");
        let mut bad = s1.clone();
        bad[h + 32..h + 64].copy_from_slice(&s2[h + 32..h + 64]);
        assert!(matches!(
            open(&key, Some("d"), &bad),
            Err(StreamError::SegmentAuthFailed { index: 1 })
        ));
    }

    #[test]
    fn rejects_wrong_key_and_wrong_name() {
        let key = DataKey::generate();
        let s = sealed(&key, "d", &[1u8; 10], 16);
        assert!(matches!(
            open(&DataKey::generate(), Some("d"), &s),
            Err(StreamError::WrongKey { .. })
        ));
        assert!(matches!(
            open(&key, Some("other"), &s),
            Err(StreamError::WrongName { .. })
        ));
        assert!(matches!(
            open(&key, None, b"garbage!garbage!garbage!garbage!"),
            Err(StreamError::BadMagic)
        ));
    }
}
