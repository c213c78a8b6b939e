//! TDX MRTD from a TDVF (OVMF built for Intel TDX) image.
//!
//! The VMM builds a TD's initial memory from the firmware's *TDVF metadata* (Intel, "TDX
//! Virtual Firmware Design Guide", section "TDVF metadata"): a descriptor (`TDVF`, length,
//! version 1, section count) followed by 32-byte sections (data offset and size in the
//! image, guest-physical address and size, type, attributes). The metadata is found through
//! OVMF's GUIDed table at the end of the image (footer GUID
//! `96b582de-1fb2-45f7-baea-a366c55a082d` at 0x30 bytes from the end; the entry
//! `e47a6535-984a-4798-865e-4685a7bf8ec2` holds the descriptor's offset from the end).
//!
//! The TDX module measures the initial memory into MRTD, one SHA-384 over a stream of
//! 128-byte records (Intel TDX module ABI, `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND`):
//! - for each 4 KiB page the VMM adds (every page of every section, except sections with the
//!   `PAGE_AUG` attribute, which the guest accepts later): `"MEM.PAGE.ADD"` padded with
//!   zeros to 16 bytes, the page's GPA (u64 little-endian), zeros to 128 bytes;
//! - for each 256-byte chunk of a page of a section with the `MR_EXTEND` attribute:
//!   `"MR.EXTEND"` padded to 16 bytes, the chunk's GPA, zeros to 128 bytes, then the chunk's
//!   256 bytes (the section's raw data; zeros past its end);
//! - MRTD is the digest of the whole stream (`TDH.MR.FINALIZE`).
//!
//! The order of the records is the VMM's: Linux KVM (6.16 and later, `KVM_TDX_INIT_MEM_REGION`)
//! adds a page and extends it before the next page ([`PageAddOrder::SinglePass`], the
//! default); earlier TDX patch sets added all of a section's pages, then extended them
//! ([`PageAddOrder::TwoPass`]). The two give different MRTDs for the same firmware.

use sha2::{Digest, Sha384};

const PAGE: u64 = 0x1000;
const CHUNK: usize = 0x100;
const FOOTER_GUID: [u8; 16] = guid_bytes(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
const TDX_METADATA_GUID: [u8; 16] = guid_bytes(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);
/// Section attribute: the VMM extends MRTD with the section's content.
pub const ATTR_MR_EXTEND: u32 = 1;
/// Section attribute: the pages are added after launch (TDH.MEM.PAGE.AUG), not measured.
pub const ATTR_PAGE_AUG: u32 = 2;

/// A GUID in its EFI (mixed-endian) byte order.
const fn guid_bytes(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Why a TDVF image cannot be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TdvfError {
    #[error("it has no OVMF GUIDed table at its end (not an OVMF/TDVF image)")]
    NoGuidTable,
    #[error("its OVMF GUIDed table is malformed: {0}")]
    BadGuidTable(&'static str),
    #[error("its OVMF GUIDed table has no TDX metadata entry (not a TDVF build)")]
    NoTdxMetadata,
    #[error("its TDX metadata offset points outside the image")]
    MetadataOutOfImage,
    #[error("its TDX metadata does not start with the signature TDVF")]
    BadSignature,
    #[error("its TDX metadata has version {0}; only version 1 is known")]
    UnsupportedVersion(u32),
    #[error("its TDX metadata declares {sections} sections in {length} bytes")]
    BadLength { sections: u32, length: u32 },
    #[error("TDVF section {index}: {what}")]
    BadSection { index: usize, what: &'static str },
}

/// One TDVF metadata section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdvfSection {
    pub data_offset: u32,
    pub raw_data_size: u32,
    pub memory_address: u64,
    pub memory_data_size: u64,
    /// 0 BFV, 1 CFV, 2 TD_HOB, 3 TempMem, 4 PermMem, 5 Payload, 6 PayloadParam, ...
    pub section_type: u32,
    pub attributes: u32,
}

/// How the VMM orders TDH.MEM.PAGE.ADD and TDH.MR.EXTEND (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageAddOrder {
    /// Each page is added, then extended, before the next (Linux KVM 6.16+).
    #[default]
    SinglePass,
    /// All pages of a section are added, then all are extended (earlier TDX patch sets).
    TwoPass,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The data of the GUIDed table entry `guid`, if the image has one.
fn guid_table_entry<'a>(image: &'a [u8], guid: &[u8; 16]) -> Result<Option<&'a [u8]>, TdvfError> {
    // The footer: [.. entries .. | u16 total length | footer GUID] ends 0x20 bytes before the
    // end of the image (the reset vector follows it).
    let footer_end = image
        .len()
        .checked_sub(0x20)
        .ok_or(TdvfError::NoGuidTable)?;
    let footer_guid_at = footer_end.checked_sub(16).ok_or(TdvfError::NoGuidTable)?;
    if image[footer_guid_at..footer_end] != FOOTER_GUID {
        return Err(TdvfError::NoGuidTable);
    }
    let total = usize::from(u16_at(image, footer_guid_at - 2).ok_or(TdvfError::NoGuidTable)?);
    let start = footer_end
        .checked_sub(total)
        .filter(|_| total >= 18)
        .ok_or(TdvfError::BadGuidTable(
            "its length reaches before the image",
        ))?;
    // Entries end with [data | u16 entry length | GUID], walked back from the footer.
    let mut end = footer_guid_at - 2;
    while end > start {
        if end - start < 18 {
            return Err(TdvfError::BadGuidTable(
                "an entry is shorter than its header",
            ));
        }
        let entry_guid = &image[end - 16..end];
        let len = usize::from(u16_at(image, end - 18).ok_or(TdvfError::NoGuidTable)?);
        if len < 18 || len > end - start {
            return Err(TdvfError::BadGuidTable("an entry's length is out of range"));
        }
        if entry_guid == guid {
            return Ok(Some(&image[end - len..end - 18]));
        }
        end -= len;
    }
    Ok(None)
}

/// The TDVF metadata sections of a firmware image, checked.
pub fn tdvf_sections(image: &[u8]) -> Result<Vec<TdvfSection>, TdvfError> {
    let entry = guid_table_entry(image, &TDX_METADATA_GUID)?.ok_or(TdvfError::NoTdxMetadata)?;
    let from_end = entry
        .len()
        .checked_sub(4)
        .and_then(|at| u32_at(entry, at))
        .ok_or(TdvfError::BadGuidTable(
            "the TDX metadata entry has no offset",
        ))?;
    let at = image
        .len()
        .checked_sub(from_end as usize)
        .ok_or(TdvfError::MetadataOutOfImage)?;
    let header = image
        .get(at..at + 16)
        .ok_or(TdvfError::MetadataOutOfImage)?;
    if &header[..4] != b"TDVF" {
        return Err(TdvfError::BadSignature);
    }
    let length = u32_at(header, 4).ok_or(TdvfError::MetadataOutOfImage)?;
    let version = u32_at(header, 8).ok_or(TdvfError::MetadataOutOfImage)?;
    let count = u32_at(header, 12).ok_or(TdvfError::MetadataOutOfImage)?;
    if version != 1 {
        return Err(TdvfError::UnsupportedVersion(version));
    }
    let bad_length = TdvfError::BadLength {
        sections: count,
        length,
    };
    let needed = 16u64 + 32 * u64::from(count);
    if u64::from(length) < needed || count == 0 {
        return Err(bad_length);
    }
    let table = image.get(at + 16..at + needed as usize).ok_or(bad_length)?;
    let mut sections = Vec::with_capacity(count as usize);
    for (index, raw) in table.chunks_exact(32).enumerate() {
        let field = |what| TdvfError::BadSection { index, what };
        let s = TdvfSection {
            data_offset: u32_at(raw, 0).ok_or(field("truncated"))?,
            raw_data_size: u32_at(raw, 4).ok_or(field("truncated"))?,
            memory_address: u64_at(raw, 8).ok_or(field("truncated"))?,
            memory_data_size: u64_at(raw, 16).ok_or(field("truncated"))?,
            section_type: u32_at(raw, 24).ok_or(field("truncated"))?,
            attributes: u32_at(raw, 28).ok_or(field("truncated"))?,
        };
        if !s.memory_address.is_multiple_of(PAGE) {
            return Err(field("its guest address is not page-aligned"));
        }
        if !s.memory_data_size.is_multiple_of(PAGE) {
            return Err(field("its memory size is not a whole number of pages"));
        }
        if u64::from(s.raw_data_size) > s.memory_data_size {
            return Err(field("its raw data is larger than its memory"));
        }
        if s.memory_address.checked_add(s.memory_data_size).is_none() {
            return Err(field("its guest address range wraps"));
        }
        let data_end = u64::from(s.data_offset) + u64::from(s.raw_data_size);
        if data_end > image.len() as u64 {
            return Err(field("its raw data lies outside the image"));
        }
        sections.push(s);
    }
    Ok(sections)
}

/// A 128-byte MRTD record: `op` padded to 16 bytes, the GPA, zeros.
fn record(op: &[u8], gpa: u64) -> [u8; 128] {
    let mut r = [0u8; 128];
    r[..op.len()].copy_from_slice(op);
    r[16..24].copy_from_slice(&gpa.to_le_bytes());
    r
}

/// MRTD of a TD launched from `image` by a VMM that orders page additions as `order`.
pub fn mrtd(image: &[u8], order: PageAddOrder) -> Result<[u8; 48], TdvfError> {
    let sections = tdvf_sections(image)?;
    let mut h = Sha384::new();
    for s in &sections {
        let pages = s.memory_data_size / PAGE;
        let add = |h: &mut Sha384, page: u64| {
            if s.attributes & ATTR_PAGE_AUG == 0 {
                h.update(record(b"MEM.PAGE.ADD", s.memory_address + page * PAGE));
            }
        };
        let extend = |h: &mut Sha384, page: u64| {
            if s.attributes & ATTR_MR_EXTEND == 0 {
                return;
            }
            let raw = &image[s.data_offset as usize..][..s.raw_data_size as usize];
            for i in 0..(PAGE as usize / CHUNK) {
                let off = page as usize * PAGE as usize + i * CHUNK;
                h.update(record(b"MR.EXTEND", s.memory_address + off as u64));
                let mut chunk = [0u8; CHUNK];
                if let Some(have) = raw.get(off..) {
                    let n = have.len().min(CHUNK);
                    chunk[..n].copy_from_slice(&have[..n]);
                }
                h.update(chunk);
            }
        };
        match order {
            PageAddOrder::SinglePass => {
                for page in 0..pages {
                    add(&mut h, page);
                    extend(&mut h, page);
                }
            }
            PageAddOrder::TwoPass => {
                for page in 0..pages {
                    add(&mut h, page);
                }
                for page in 0..pages {
                    extend(&mut h, page);
                }
            }
        }
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A minimal TDVF image: `body` bytes of firmware, a metadata descriptor with
    /// `sections`, the GUIDed table with the TDX metadata entry, and the 0x20 tail.
    pub(crate) fn image(body: &[u8], sections: &[TdvfSection]) -> Vec<u8> {
        let mut img = body.to_vec();
        let meta_at = img.len();
        img.extend_from_slice(b"TDVF");
        img.extend_from_slice(&(16 + 32 * sections.len() as u32).to_le_bytes());
        img.extend_from_slice(&1u32.to_le_bytes());
        img.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for s in sections {
            img.extend_from_slice(&s.data_offset.to_le_bytes());
            img.extend_from_slice(&s.raw_data_size.to_le_bytes());
            img.extend_from_slice(&s.memory_address.to_le_bytes());
            img.extend_from_slice(&s.memory_data_size.to_le_bytes());
            img.extend_from_slice(&s.section_type.to_le_bytes());
            img.extend_from_slice(&s.attributes.to_le_bytes());
        }
        // GUIDed table: one entry (an unrelated one first), then the footer.
        let table_start = img.len();
        img.extend_from_slice(&[0xaa; 6]);
        img.extend_from_slice(&(6u16 + 18).to_le_bytes());
        img.extend_from_slice(&[0x11; 16]);
        let offset_pos = img.len();
        img.extend_from_slice(&[0; 4]); // the offset, filled in below
        img.extend_from_slice(&(4u16 + 18).to_le_bytes());
        img.extend_from_slice(&TDX_METADATA_GUID);
        let total = (img.len() - table_start + 18) as u16;
        img.extend_from_slice(&total.to_le_bytes());
        img.extend_from_slice(&FOOTER_GUID);
        img.extend_from_slice(&[0xf4; 0x20]);
        let from_end = (img.len() - meta_at) as u32;
        img[offset_pos..offset_pos + 4].copy_from_slice(&from_end.to_le_bytes());
        img
    }

    fn bfv(data_offset: u32, raw: u32, gpa: u64, mem: u64) -> TdvfSection {
        TdvfSection {
            data_offset,
            raw_data_size: raw,
            memory_address: gpa,
            memory_data_size: mem,
            section_type: 0,
            attributes: ATTR_MR_EXTEND,
        }
    }

    /// The stream written out record by record, as the TDX module ABI defines it.
    #[test]
    fn mrtd_is_the_sha384_of_the_page_add_and_extend_records() {
        let body: Vec<u8> = (0..0x2000u32).map(|i| (i * 7 % 251) as u8).collect();
        let hob = TdvfSection {
            data_offset: 0,
            raw_data_size: 0,
            memory_address: 0x80_9000,
            memory_data_size: 0x1000,
            section_type: 2,
            attributes: 0,
        };
        let aug = TdvfSection {
            attributes: ATTR_PAGE_AUG,
            memory_address: 0x90_0000,
            ..hob
        };
        let img = image(&body, &[bfv(0, 0x2000, 0xffe0_0000, 0x2000), hob, aug]);
        let mut single = Vec::new();
        let mut two = Vec::new();
        let add = |v: &mut Vec<u8>, gpa: u64| {
            let mut r = b"MEM.PAGE.ADD\0\0\0\0".to_vec();
            r.extend_from_slice(&gpa.to_le_bytes());
            r.resize(128, 0);
            v.extend_from_slice(&r);
        };
        let extend = |v: &mut Vec<u8>, page: usize| {
            for i in 0..16 {
                let mut r = b"MR.EXTEND\0\0\0\0\0\0\0".to_vec();
                let off = page * 0x1000 + i * 0x100;
                r.extend_from_slice(&(0xffe0_0000u64 + off as u64).to_le_bytes());
                r.resize(128, 0);
                v.extend_from_slice(&r);
                v.extend_from_slice(&body[off..off + 0x100]);
            }
        };
        for page in 0..2 {
            add(&mut single, 0xffe0_0000 + page as u64 * 0x1000);
            extend(&mut single, page);
        }
        add(&mut single, 0x80_9000);
        add(&mut two, 0xffe0_0000);
        add(&mut two, 0xffe0_1000);
        extend(&mut two, 0);
        extend(&mut two, 1);
        add(&mut two, 0x80_9000);
        let single: [u8; 48] = Sha384::digest(&single).into();
        let two: [u8; 48] = Sha384::digest(&two).into();
        assert_eq!(mrtd(&img, PageAddOrder::SinglePass).unwrap(), single);
        assert_eq!(mrtd(&img, PageAddOrder::TwoPass).unwrap(), two);
        assert_ne!(single, two);
    }

    /// Raw data shorter than the section's memory is extended with zeros past its end.
    #[test]
    fn a_short_raw_section_is_extended_with_zeros() {
        let body = vec![0x5a; 0x100];
        let short = image(&body, &[bfv(0, 0x100, 0x1000, 0x1000)]);
        let mut full_body = vec![0x5a; 0x100];
        full_body.resize(0x1000, 0);
        let full = image(&full_body, &[bfv(0, 0x1000, 0x1000, 0x1000)]);
        assert_eq!(
            mrtd(&short, PageAddOrder::SinglePass).unwrap(),
            mrtd(&full, PageAddOrder::SinglePass).unwrap()
        );
    }

    #[test]
    fn an_image_without_the_guid_table_is_refused() {
        assert_eq!(
            mrtd(&[0u8; 0x1000], PageAddOrder::SinglePass),
            Err(TdvfError::NoGuidTable)
        );
        assert_eq!(
            mrtd(&[0u8; 8], PageAddOrder::SinglePass),
            Err(TdvfError::NoGuidTable)
        );
    }

    #[test]
    fn an_ovmf_table_without_tdx_metadata_is_refused() {
        let mut img = image(&[0; 0x1000], &[bfv(0, 0x1000, 0x1000, 0x1000)]);
        // Rename the TDX metadata entry's GUID.
        let at = img
            .windows(16)
            .position(|w| w == TDX_METADATA_GUID)
            .unwrap();
        img[at] ^= 1;
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::NoTdxMetadata)
        );
    }

    #[test]
    fn a_bad_descriptor_is_refused() {
        let good = image(&[0; 0x1000], &[bfv(0, 0x1000, 0x1000, 0x1000)]);
        let mut img = good.clone();
        img[0x1000] = b'X';
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::BadSignature)
        );
        let mut img = good.clone();
        img[0x1000 + 8] = 2;
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::UnsupportedVersion(2))
        );
        let mut img = good;
        img[0x1000 + 4] = 20; // 16 + 32 * 1 does not fit in 20 bytes
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::BadLength {
                sections: 1,
                length: 20
            })
        );
    }

    #[test]
    fn a_metadata_offset_outside_the_image_is_refused() {
        let mut img = image(&[0; 0x1000], &[bfv(0, 0x1000, 0x1000, 0x1000)]);
        let at = img
            .windows(16)
            .position(|w| w == TDX_METADATA_GUID)
            .unwrap();
        img[at - 6..at - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::MetadataOutOfImage)
        );
    }

    #[test]
    fn bad_sections_are_refused_naming_the_section() {
        let cases: [(TdvfSection, &str); 4] = [
            (
                bfv(0, 0x1000, 0x1001, 0x1000),
                "its guest address is not page-aligned",
            ),
            (
                bfv(0, 0x800, 0x1000, 0x800),
                "its memory size is not a whole number of pages",
            ),
            (
                bfv(0, 0x2000, 0x1000, 0x1000),
                "its raw data is larger than its memory",
            ),
            (
                bfv(0x10_0000, 0x1000, 0x1000, 0x1000),
                "its raw data lies outside the image",
            ),
        ];
        for (bad, what) in cases {
            let img = image(&[0; 0x1000], &[bfv(0, 0x1000, 0x1000, 0x1000), bad]);
            assert_eq!(
                mrtd(&img, PageAddOrder::SinglePass),
                Err(TdvfError::BadSection { index: 1, what })
            );
        }
    }

    #[test]
    fn a_truncated_guid_table_is_refused() {
        let mut img = image(&[0; 0x1000], &[bfv(0, 0x1000, 0x1000, 0x1000)]);
        let footer_len_at = img.len() - 0x20 - 16 - 2;
        img[footer_len_at..footer_len_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(
            mrtd(&img, PageAddOrder::SinglePass),
            Err(TdvfError::BadGuidTable(
                "its length reaches before the image"
            ))
        );
    }
}
