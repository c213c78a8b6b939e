//! The input layout of the multi-part (structure-aware) targets.
//!
//! An input is a list of parts separated by [`SEP`]; the first part is a small control block
//! read by [`Control`] (selectors and a verification time; missing bytes read as zero). Each
//! part keeps its own length, so libFuzzer's insertions and deletions inside one part (a
//! certificate, a quote, collateral JSON) leave the others intact, and adding or removing a
//! part (one more certificate) is one splice of [`SEP`] (it is in the targets' dictionary).
//! `fuzz/seedgen` writes the seeds with [`join`]. Dependency-free, so that the replay tests
//! can include it.

/// Separator between parts. Not a substring of any seed part (seedgen checks).
pub const SEP: &[u8] = b"\n--part--\n";

/// Split `data` on [`SEP`]. Always at least one part (possibly empty).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = find(rest, SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

/// The inverse of [`split`], for parts that do not contain [`SEP`].
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEP);
        }
        out.extend_from_slice(p);
    }
    out
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The control block: the first part, read as fixed fields (zero where it is short).
///
/// | byte | meaning |
/// |---|---|
/// | 0 | source selector (which fixed vector, or the input's own part; per target) |
/// | 1 | verification time: 0 July 2025, 1 March 2026, 2 June 2025, else bytes 2..10 |
/// | 2..10 | u64 LE, mapped into 2000-01-01 .. 2100-01-01 when byte 1 selects it |
/// | 10 | VMPL required of an SNP report: 0 = none given (VMPL 0), n = n - 1 |
#[derive(Debug, Clone, Copy)]
pub struct Control([u8; Control::LEN]);

/// 2025-06-01T00:00:00Z: inside every SNP vector's certificate validity.
pub const JUNE_2025: u64 = 1_748_736_000;
/// 2025-07-01T00:00:00Z: inside tdx-v4's collateral window and the SNP certificates' validity.
pub const JULY_2025: u64 = 1_751_328_000;
/// 2026-03-01T00:00:00Z: inside tdx-outdated's collateral window.
pub const MARCH_2026: u64 = 1_772_323_200;

impl Control {
    pub const LEN: usize = 16;

    pub fn new(part: &[u8]) -> Self {
        let mut b = [0u8; Self::LEN];
        let n = part.len().min(Self::LEN);
        b[..n].copy_from_slice(&part[..n]);
        Self(b)
    }

    /// The control block selecting `source`, verification `time` (0..=2 as in the table)
    /// and `vmpl` (as in the table).
    pub fn encode(source: u8, time: u8, vmpl: u8) -> Vec<u8> {
        let mut b = vec![0u8; Self::LEN];
        b[0] = source;
        b[1] = time;
        b[10] = vmpl;
        b
    }

    pub fn source(&self) -> u8 {
        self.0[0]
    }

    pub fn time(&self) -> u64 {
        const Y2000: u64 = 946_684_800;
        const CENTURY: u64 = 4_102_444_800 - Y2000;
        match self.0[1] {
            0 => JULY_2025,
            1 => MARCH_2026,
            2 => JUNE_2025,
            _ => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&self.0[2..10]);
                Y2000 + u64::from_le_bytes(raw) % CENTURY
            }
        }
    }

    pub fn vmpl(&self) -> Option<u32> {
        match self.0[10] {
            0 => None,
            n => Some(u32::from(n - 1) % 4),
        }
    }
}
