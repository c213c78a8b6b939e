//! TDX RTMR1 and RTMR2 of a TD whose TDVF boots a Linux kernel directly (QEMU `-kernel`,
//! `-initrd`, `-append`), computed from the files.
//!
//! An RTMR starts as 48 zero bytes and each measurement extends it,
//! `RTMR = SHA-384(RTMR || digest)` ([`extend`]), so its value is the replay of the digests
//! of its events in order ([`replay`]). TDVF (OVMF's IntelTdx build; edk2
//! `OvmfPkg/Tcg/TdTcg2Dxe`) maps PCR 2-6 to RTMR1 and PCR 8-15 to RTMR2. In a direct boot:
//!
//! RTMR1, in order:
//! 1. the kernel (`EV_EFI_BOOT_SERVICES_APPLICATION`, PCR 4): the Authenticode SHA-384 of the
//!    PE image the firmware loads, as edk2's `MeasurePeImageAndExtend` computes it
//!    ([`authenticode_sha384`]);
//! 2. `Calling EFI Application from Boot Option` (`EV_EFI_ACTION`, at ReadyToBoot);
//! 3. the separator, 4 zero bytes (`EV_SEPARATOR`);
//! 4. `Exit Boot Services Invocation` and 5. `Exit Boot Services Returned with Success`
//!    (`EV_EFI_ACTION`, PCR 5, when the kernel's EFI stub exits boot services).
//!
//! RTMR2, in order (the kernel's EFI stub, PCR 9, through the CC measurement protocol):
//! 1. the load options TDVF hands the kernel ([`load_options`]): the command line widened to
//!    UTF-16LE, with `initrd=initrd` added when there is an initrd, NUL-terminated;
//! 2. the initrd's bytes (none without an initrd).
//!
//! Two things depend on the host's QEMU and on the TDVF build, not on the image:
//! - which bytes are "the kernel" ([`KernelSetup`]): QEMU patches the kernel's setup header
//!   (type_of_loader, loadflags, heap_end_ptr, cmd_line_ptr, and ramdisk_image/ramdisk_size,
//!   which depend on the initrd size, the guest memory size and the ACPI data size) in the
//!   `kernel` blob it hands the firmware over fw_cfg. QEMU 10.0 and later also hand over the
//!   file unmodified as `etc/boot/kernel`, which TDVF prefers from edk2-stable202502 on
//!   (QemuKernelLoaderFsDxe's named blobs); QEMU 10.2 and later no longer patch the header of a
//!   confidential guest at all. So the patched header, hence the memory and ACPI sizes, only
//!   count with an older QEMU or TDVF ([`KernelSetup::QemuPatched`]).
//! - where TDVF puts `initrd=initrd` ([`InitrdArgument`]): before the command line from
//!   edk2-stable202508 on (X86QemuLoadImageLib), after it before that.
//!
//! The defaults are what the room image's pinned TDVF (Debian edk2 2026.08, built from
//! edk2-stable202608) does under QEMU 10.1 or later, the first QEMU releases with TDX.
//!
//! Not modelled (each would change RTMR1 or RTMR2): booting through shim (QEMU `-shim`), an
//! image the firmware loads from a PCI option ROM, a first ExitBootServices call that fails
//! (it logs `Exit Boot Services Returned with Failure`), QEMU's `vga=` and `-dtb` header
//! patches ([`DirectBootError::CmdlineSetsVideoMode`] refuses the first).
//!
//! Written from the sources named above, QEMU's `x86_load_linux` (`hw/i386/x86-common.c`) and
//! q35 memory split (`hw/i386/pc_q35.c`), and Linux's `drivers/firmware/efi/libstub`; Phala's
//! dstack-mr computes the same events for the older QEMU and TDVF (patched header,
//! `initrd=initrd` appended).

use sha2::{Digest, Sha384};

/// QEMU's ACPI data size for the `pc` and `q35` machine types (128 KiB of ACPI tables and
/// 32 KiB of other firmware data), reserved at the top of low memory.
pub const QEMU_ACPI_DATA_SIZE: u32 = 0x28000;

/// `RTMR_new = SHA-384(RTMR_old || digest)`, what TDG.MR.RTMR.EXTEND does.
pub fn extend(rtmr: &[u8; 48], digest: &[u8; 48]) -> [u8; 48] {
    let mut h = Sha384::new();
    h.update(rtmr);
    h.update(digest);
    h.finalize().into()
}

/// An RTMR after extending 48 zero bytes with each digest in order.
pub fn replay<'a>(digests: impl IntoIterator<Item = &'a [u8; 48]>) -> [u8; 48] {
    digests
        .into_iter()
        .fold([0u8; 48], |rtmr, d| extend(&rtmr, d))
}

fn sha384(bytes: &[u8]) -> [u8; 48] {
    Sha384::digest(bytes).into()
}

/// One measured event: what it is and the digest extended into the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub what: &'static str,
    pub digest: [u8; 48],
}

/// Which bytes the firmware measures as the kernel (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelSetup {
    /// The kernel file as it is: QEMU 10.0 or later (fw_cfg `etc/boot/kernel`) with TDVF from
    /// edk2-stable202502 or later, or QEMU 10.2 or later with any TDVF.
    #[default]
    AsFile,
    /// The kernel with the setup header QEMU patched: QEMU before 10.0 (e.g. TDX builds based
    /// on QEMU 8 or 9), or QEMU 10.0-10.1 with TDVF before edk2-stable202502. The header holds
    /// the initrd's address, which depends on the guest's RAM size (`memory`, bytes, QEMU's
    /// `-m` rounded up to 8 KiB) and the ACPI data size ([`QEMU_ACPI_DATA_SIZE`] for q35).
    QemuPatched { memory: u64, acpi_data_size: u32 },
}

/// Where TDVF adds `initrd=initrd` to the kernel's load options when there is an initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitrdArgument {
    /// `initrd=initrd <command line>`: TDVF from edk2-stable202508 on.
    #[default]
    Prefix,
    /// `<command line> initrd=initrd`: TDVF before edk2-stable202508.
    Suffix,
}

/// The inputs of a direct boot by TDVF.
#[derive(Clone, Copy)]
pub struct DirectBoot<'a> {
    /// The kernel file (a bzImage with an EFI stub).
    pub kernel: &'a [u8],
    /// The initrd file, if QEMU is given one.
    pub initrd: Option<&'a [u8]>,
    /// QEMU's `-append` (empty without it).
    pub cmdline: &'a str,
    pub kernel_setup: KernelSetup,
    pub initrd_argument: InitrdArgument,
}

impl std::fmt::Debug for DirectBoot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBoot")
            .field("kernel_len", &self.kernel.len())
            .field("initrd_len", &self.initrd.map(<[u8]>::len))
            .field("cmdline", &self.cmdline)
            .field("kernel_setup", &self.kernel_setup)
            .field("initrd_argument", &self.initrd_argument)
            .finish()
    }
}

/// RTMR1 and RTMR2 of a direct boot, with the events that make them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBootRtmrs {
    pub rtmr1: [u8; 48],
    pub rtmr2: [u8; 48],
    pub rtmr1_events: Vec<Event>,
    pub rtmr2_events: Vec<Event>,
}

/// Why a file is not a PE image whose Authenticode digest TDVF computes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    #[error("it does not start with a DOS header (MZ)")]
    NoDosHeader,
    #[error("it has no PE signature where its DOS header points")]
    NoPeSignature,
    #[error("its {0} lies past the end of the file")]
    Truncated(&'static str),
    #[error("its optional header magic {0:#x} is neither PE32 (0x10b) nor PE32+ (0x20b)")]
    UnknownOptionalHeader(u16),
    #[error(
        "its SizeOfHeaders {0:#x} ends before the optional header fields it must cover, or past the end of the file"
    )]
    BadSizeOfHeaders(u32),
    #[error("the raw data of its section {index} lies past the end of the file")]
    SectionOutsideFile { index: usize },
    #[error(
        "its certificate table ({size} bytes) is larger than the file after its sections (TDVF does not measure such an image)"
    )]
    CertificateTableTooLarge { size: u32 },
}

/// Why RTMR1-2 of a direct boot cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectBootError {
    #[error("the kernel is {len} bytes, shorter than the {needed} bytes of its setup")]
    KernelTooShort { len: usize, needed: usize },
    #[error("the kernel is not a Linux bzImage (no HdrS setup header signature)")]
    NotBzImage,
    #[error(
        "the kernel's boot protocol {version:#06x} is older than 2.00 (no QEMU initrd, no EFI stub)"
    )]
    BootProtocolTooOld { version: u16 },
    #[error("the kernel is not a PE image TDVF can load: {0}")]
    KernelNotPe(PeError),
    #[error("the initrd is {size} bytes; QEMU loads at most {max} here")]
    InitrdTooLarge { size: u64, max: u64 },
    #[error(
        "the ACPI data size {acpi_data_size:#x} leaves nothing of the {below_4g:#x} bytes of RAM below 4 GiB"
    )]
    AcpiDataTooLarge { acpi_data_size: u32, below_4g: u64 },
    #[error("the command line contains a NUL character (QEMU passes a C string)")]
    CmdlineHasNul,
    #[error(
        "the command line sets vga=, which QEMU writes into the kernel's setup header (not modelled)"
    )]
    CmdlineSetsVideoMode,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The Authenticode SHA-384 of a PE image, as TDVF measures a loaded image (edk2
/// `OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c`, after the PE/COFF specification's appendix
/// "Calculating the PE Image Hash"): the headers up to SizeOfHeaders without the CheckSum field
/// and, if the optional header has more than 4 data directories, without the certificate
/// table's directory entry; then each section's raw data in file-offset order (sections
/// without raw data skipped); then whatever follows the last hashed byte except the
/// certificate table's size at the end. Unlike signing tools (pesign, and dstack-mr after
/// them), nothing pads the file to a multiple of 8 bytes; the two agree on any file whose size
/// is a multiple of 8, which every signed file is.
///
/// Written here rather than taken from a crate: the `authenticode` crate (Google) hashes the
/// same ranges but pulls in `rsa`, `cms` and `x509-cert` for signature parsing and needs the
/// `object` crate to read the PE; this is ~70 lines over the byte ranges, each bounds-checked.
pub fn authenticode_sha384(pe: &[u8]) -> Result<[u8; 48], PeError> {
    Ok(authenticode::<Sha384>(pe)?.finalize().into())
}

/// The same digest with SHA-256, the one a signed kernel's Authenticode signature carries
/// (what the image test compares with to check the hashed ranges on a real kernel).
pub fn authenticode_sha256(pe: &[u8]) -> Result<[u8; 32], PeError> {
    Ok(authenticode::<sha2::Sha256>(pe)?.finalize().into())
}

fn authenticode<D: Digest>(pe: &[u8]) -> Result<D, PeError> {
    use PeError::*;
    if pe.get(..2) != Some(b"MZ".as_slice()) {
        return Err(NoDosHeader);
    }
    let nt = u32_at(pe, 0x3c).ok_or(Truncated("DOS header"))? as usize;
    if pe.get(nt..nt.saturating_add(4)) != Some(b"PE\0\0".as_slice()) {
        return Err(NoPeSignature);
    }
    let coff = nt + 4;
    let section_count = u16_at(pe, coff + 2).ok_or(Truncated("COFF header"))?;
    let optional_size = u16_at(pe, coff + 16).ok_or(Truncated("COFF header"))?;
    let opt = coff + 20;
    let magic = u16_at(pe, opt).ok_or(Truncated("optional header"))?;
    // Offsets in the optional header of NumberOfRvaAndSizes and of the data directories.
    let (count_at, dirs_at) = match magic {
        0x10b => (92, 96),
        0x20b => (108, 112),
        other => return Err(UnknownOptionalHeader(other)),
    };
    let checksum = opt + 64;
    let size_of_headers = u32_at(pe, opt + 60).ok_or(Truncated("optional header"))?;
    let dir_count = u32_at(pe, opt + count_at).ok_or(Truncated("optional header"))?;
    // The certificate table's directory entry (index 4, 8 bytes), if there is one.
    let cert_dir = (dir_count > 4).then_some(opt + dirs_at + 4 * 8);
    let headers = size_of_headers as usize;
    let bad_headers = BadSizeOfHeaders(size_of_headers);
    let range = |from: usize, to: usize| pe.get(from..to).ok_or(bad_headers.clone());

    let mut h = D::new();
    h.update(range(0, checksum)?);
    let cert_size = match cert_dir {
        Some(dir) => {
            h.update(range(checksum + 4, dir)?);
            h.update(range(dir + 8, headers)?);
            u32_at(pe, dir + 4).ok_or(bad_headers.clone())?
        }
        None => {
            h.update(range(checksum + 4, headers)?);
            0
        }
    };

    let table = opt + usize::from(optional_size);
    let mut sections = Vec::with_capacity(usize::from(section_count));
    for index in 0..usize::from(section_count) {
        let at = table + 40 * index;
        let size = u32_at(pe, at + 16).ok_or(Truncated("section table"))?;
        let offset = u32_at(pe, at + 20).ok_or(Truncated("section table"))?;
        if size != 0 {
            sections.push((offset as usize, size as usize, index));
        }
    }
    // Stable, as edk2's insertion sort: sections at the same offset keep their table order.
    sections.sort_by_key(|&(offset, _, _)| offset);
    let mut hashed = headers as u64;
    for (offset, size, index) in sections {
        let data = pe
            .get(offset..offset + size)
            .ok_or(SectionOutsideFile { index })?;
        h.update(data);
        hashed += size as u64;
    }

    let len = pe.len() as u64;
    let cert = u64::from(cert_size);
    if len > hashed {
        if len > hashed + cert {
            // Both bounds are below `len`, a usize.
            h.update(&pe[hashed as usize..(len - cert) as usize]);
        } else if len < hashed + cert {
            return Err(CertificateTableTooLarge { size: cert_size });
        }
    }
    Ok(h)
}

/// The parts of a bzImage's setup header that QEMU checks before loading it.
struct Setup {
    protocol: u16,
}

/// QEMU's checks of a `-kernel` bzImage (`x86_load_linux`), both ways of handing it over.
fn check_bzimage(kernel: &[u8]) -> Result<Setup, DirectBootError> {
    const HEADER_END: usize = 0x206;
    if kernel.len() < HEADER_END {
        return Err(DirectBootError::KernelTooShort {
            len: kernel.len(),
            needed: HEADER_END,
        });
    }
    if kernel.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err(DirectBootError::NotBzImage);
    }
    let protocol = u16_at(kernel, 0x206).ok_or(DirectBootError::NotBzImage)?;
    if protocol < 0x200 {
        return Err(DirectBootError::BootProtocolTooOld { version: protocol });
    }
    let setup_sects = match kernel.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let setup_size = (setup_sects + 1) * 512;
    if setup_size > kernel.len() {
        return Err(DirectBootError::KernelTooShort {
            len: kernel.len(),
            needed: setup_size,
        });
    }
    Ok(Setup { protocol })
}

/// The kernel as QEMU hands it to the firmware in its fw_cfg `kernel` blob (setup, then the
/// rest), with the setup header patched as `x86_load_linux` patches it: type_of_loader 0xb0;
/// loadflags |= CAN_USE_HEAP and heap_end_ptr (protocol 2.01+); cmd_line_ptr (2.02+, or the
/// old command-line magic and offset); with an initrd of `initrd_size` bytes, ramdisk_image
/// (the highest 4 KiB-aligned address below the initrd limit: the kernel's initrd_addr_max,
/// or 4 GiB for kernels that may load it anywhere, capped by the RAM below 4 GiB (q35 splits
/// `memory` at 2.75 GiB, or at 2 GiB from 2.75 GiB of RAM on) minus `acpi_data_size`) and
/// ramdisk_size.
pub fn qemu_patched_kernel(
    kernel: &[u8],
    initrd_size: Option<u64>,
    cmdline: &str,
    memory: u64,
    acpi_data_size: u32,
) -> Result<Vec<u8>, DirectBootError> {
    let Setup { protocol } = check_bzimage(kernel)?;
    if cmdline.contains('\0') {
        return Err(DirectBootError::CmdlineHasNul);
    }
    if cmdline.contains("vga=") {
        return Err(DirectBootError::CmdlineSetsVideoMode);
    }
    // check_bzimage ensured at least 5 sectors: every offset below is in range.
    let mut k = kernel.to_vec();
    let put16 =
        |k: &mut Vec<u8>, at: usize, v: u16| k[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |k: &mut Vec<u8>, at: usize, v: u32| k[at..at + 4].copy_from_slice(&v.to_le_bytes());

    let loaded_high = k[0x211] & 0x01 != 0;
    let cmdline_size = (cmdline.len() as u64 + 16) & !15;
    let (real_addr, cmdline_addr): (u64, u64) = if protocol < 0x202 || !loaded_high {
        (0x9_0000, 0x9_a000u64.wrapping_sub(cmdline_size))
    } else {
        (0x1_0000, 0x2_0000)
    };
    if protocol >= 0x202 {
        put32(&mut k, 0x228, cmdline_addr as u32);
    } else {
        put16(&mut k, 0x20, 0xa33f);
        put16(&mut k, 0x22, cmdline_addr.wrapping_sub(real_addr) as u16);
    }
    k[0x210] = 0xb0;
    if protocol >= 0x201 {
        k[0x211] |= 0x80;
        let heap_end = cmdline_addr.wrapping_sub(real_addr).wrapping_sub(0x200);
        put16(&mut k, 0x224, heap_end as u16);
    }
    if let Some(size) = initrd_size {
        let xlf = u16_at(&k, 0x236).unwrap_or(0);
        let mut max = if protocol >= 0x20c && xlf & 0x40 != 0 {
            u64::from(u32::MAX)
        } else if protocol >= 0x203 {
            u64::from(u32_at(&k, 0x22c).unwrap_or(0))
        } else {
            0x37ff_ffff
        };
        let lowmem: u64 = if memory >= 0xb000_0000 {
            0x8000_0000
        } else {
            0xb000_0000
        };
        let below_4g = memory.min(lowmem);
        let acpi = u64::from(acpi_data_size);
        if acpi >= below_4g {
            return Err(DirectBootError::AcpiDataTooLarge {
                acpi_data_size,
                below_4g,
            });
        }
        if max >= below_4g - acpi {
            max = below_4g - acpi - 1;
        }
        if size >= max {
            return Err(DirectBootError::InitrdTooLarge { size, max });
        }
        let address = (max - size) & !0xfff;
        put32(&mut k, 0x218, address as u32);
        put32(&mut k, 0x21c, size as u32);
    }
    Ok(k)
}

/// The load options TDVF gives the kernel (X86QemuLoadImageLib `QemuLoadKernelImage`): the
/// command line QEMU passes, each byte widened to a UTF-16 code unit, with `initrd=initrd`
/// before or after it when there is an initrd, and a UTF-16 NUL. `None` when there are no load
/// options (no command line and no initrd), in which case the kernel measures none.
pub fn load_options(
    cmdline: &str,
    initrd: bool,
    argument: InitrdArgument,
) -> Result<Option<Vec<u8>>, DirectBootError> {
    if cmdline.contains('\0') {
        return Err(DirectBootError::CmdlineHasNul);
    }
    let text = match (initrd, argument) {
        (false, _) => cmdline.to_owned(),
        (true, InitrdArgument::Prefix) => format!("initrd=initrd {cmdline}"),
        (true, InitrdArgument::Suffix) => format!("{cmdline} initrd=initrd"),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let mut utf16: Vec<u8> = text.bytes().flat_map(|b| [b, 0]).collect();
    utf16.extend_from_slice(&[0, 0]);
    Ok(Some(utf16))
}

/// The event texts TDVF measures into RTMR1 around the kernel.
pub const CALLING_EFI_APPLICATION: &[u8] = b"Calling EFI Application from Boot Option";
pub const EXIT_BOOT_SERVICES_INVOCATION: &[u8] = b"Exit Boot Services Invocation";
pub const EXIT_BOOT_SERVICES_SUCCEEDED: &[u8] = b"Exit Boot Services Returned with Success";

/// RTMR1 and RTMR2 of a direct boot by TDVF (see the module documentation).
pub fn direct_boot(input: &DirectBoot<'_>) -> Result<DirectBootRtmrs, DirectBootError> {
    check_bzimage(input.kernel)?;
    let initrd_size = input.initrd.map(|i| i.len() as u64);
    let options = load_options(
        input.cmdline,
        initrd_size.is_some_and(|s| s > 0),
        input.initrd_argument,
    )?;
    let kernel_digest = match input.kernel_setup {
        KernelSetup::AsFile => {
            // fw_cfg sizes are 32-bit.
            if let Some(size) = initrd_size.filter(|&s| s >= u64::from(u32::MAX)) {
                return Err(DirectBootError::InitrdTooLarge {
                    size,
                    max: u64::from(u32::MAX),
                });
            }
            authenticode_sha384(input.kernel)
        }
        KernelSetup::QemuPatched {
            memory,
            acpi_data_size,
        } => authenticode_sha384(&qemu_patched_kernel(
            input.kernel,
            initrd_size,
            input.cmdline,
            memory,
            acpi_data_size,
        )?),
    }
    .map_err(DirectBootError::KernelNotPe)?;

    let rtmr1_events = vec![
        Event {
            what: "the kernel, Authenticode SHA-384 (EV_EFI_BOOT_SERVICES_APPLICATION)",
            digest: kernel_digest,
        },
        Event {
            what: "Calling EFI Application from Boot Option (EV_EFI_ACTION)",
            digest: sha384(CALLING_EFI_APPLICATION),
        },
        Event {
            what: "separator, 4 zero bytes (EV_SEPARATOR)",
            digest: sha384(&[0; 4]),
        },
        Event {
            what: "Exit Boot Services Invocation (EV_EFI_ACTION)",
            digest: sha384(EXIT_BOOT_SERVICES_INVOCATION),
        },
        Event {
            what: "Exit Boot Services Returned with Success (EV_EFI_ACTION)",
            digest: sha384(EXIT_BOOT_SERVICES_SUCCEEDED),
        },
    ];
    let mut rtmr2_events = Vec::new();
    if let Some(options) = options {
        rtmr2_events.push(Event {
            what: "the load options: command line and initrd=initrd, UTF-16LE (EV_EVENT_TAG)",
            digest: sha384(&options),
        });
    }
    if let Some(initrd) = input.initrd.filter(|i| !i.is_empty()) {
        rtmr2_events.push(Event {
            what: "the initrd (EV_EVENT_TAG)",
            digest: sha384(initrd),
        });
    }
    Ok(DirectBootRtmrs {
        rtmr1: replay(rtmr1_events.iter().map(|e| &e.digest)),
        rtmr2: replay(rtmr2_events.iter().map(|e| &e.digest)),
        rtmr1_events,
        rtmr2_events,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEADERS: usize = 0x400;
    const CHECKSUM: usize = 0x58 + 64;
    const CERT_DIR: usize = 0x58 + 112 + 32;
    const TEXT_AT: usize = 0x800;
    const SETUP_AT: usize = 0x400;
    const TRAILER_AT: usize = 0xc00;
    const CERT_AT: usize = 0xc40;
    const LEN: usize = 0xc80;

    /// A minimal bzImage that is also a PE32+ image, laid out as a real one:
    /// DOS header (MZ, e_lfanew 0x40); PE signature and COFF header at 0x40; the optional
    /// header at 0x58 (6 data directories); the section table at 0xf8 (`.text` at 0x800 listed
    /// before `.setup` at 0x400, and an empty `.bss` with a bogus offset); the Linux setup
    /// header at 0x1f1 (setup_sects 4: the setup is the first 0xa00 bytes), inside
    /// SizeOfHeaders 0x400; 64 bytes of trailing data at 0xc00; a 64-byte certificate table
    /// at 0xc40.
    fn bzimage(protocol: u16, loadflags: u8, xlf: u16, initrd_addr_max: u32) -> Vec<u8> {
        let mut k: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
        let put16 =
            |k: &mut Vec<u8>, at: usize, v: u16| k[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |k: &mut Vec<u8>, at: usize, v: u32| k[at..at + 4].copy_from_slice(&v.to_le_bytes());
        k[..2].copy_from_slice(b"MZ");
        put32(&mut k, 0x3c, 0x40);
        k[0x40..0x44].copy_from_slice(b"PE\0\0");
        put16(&mut k, 0x44, 0x8664);
        put16(&mut k, 0x46, 3); // sections
        put16(&mut k, 0x54, 112 + 6 * 8); // SizeOfOptionalHeader
        put16(&mut k, 0x58, 0x20b);
        put32(&mut k, 0x58 + 60, HEADERS as u32);
        put32(&mut k, 0x58 + 108, 6); // NumberOfRvaAndSizes
        put32(&mut k, CERT_DIR, CERT_AT as u32);
        put32(&mut k, CERT_DIR + 4, (LEN - CERT_AT) as u32);
        let section = |k: &mut Vec<u8>, i: usize, name: &[u8], at: usize, size: usize| {
            let s = 0xf8 + 40 * i;
            k[s..s + 8].fill(0);
            k[s..s + name.len()].copy_from_slice(name);
            k[s + 16..s + 20].copy_from_slice(&(size as u32).to_le_bytes());
            k[s + 20..s + 24].copy_from_slice(&(at as u32).to_le_bytes());
        };
        section(&mut k, 0, b".text", TEXT_AT, 0x400);
        section(&mut k, 1, b".setup", SETUP_AT, 0x400);
        section(&mut k, 2, b".bss", 0xffff_0000, 0);
        k[0x1f1] = 4;
        put16(&mut k, 0x1fe, 0xaa55);
        k[0x202..0x206].copy_from_slice(b"HdrS");
        put16(&mut k, 0x206, protocol);
        k[0x210] = 0;
        k[0x211] = loadflags;
        k[0x218..0x220].fill(0);
        k[0x224..0x22c].fill(0);
        put32(&mut k, 0x22c, initrd_addr_max);
        put16(&mut k, 0x236, xlf);
        k
    }

    fn modern() -> Vec<u8> {
        bzimage(0x20f, 0x01, 0x7f, 0x7fff_ffff)
    }

    fn u16_of(k: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(k[at..at + 2].try_into().unwrap())
    }
    fn u32_of(k: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(k[at..at + 4].try_into().unwrap())
    }

    /// The digest written out range by range: headers without CheckSum and the certificate
    /// directory, `.setup` then `.text` (file order, not table order), the trailing data,
    /// not the certificate table.
    #[test]
    fn authenticode_hashes_the_ranges_edk2_hashes() {
        let k = modern();
        let mut expected = Vec::new();
        expected.extend_from_slice(&k[..CHECKSUM]);
        expected.extend_from_slice(&k[CHECKSUM + 4..CERT_DIR]);
        expected.extend_from_slice(&k[CERT_DIR + 8..HEADERS]);
        expected.extend_from_slice(&k[SETUP_AT..SETUP_AT + 0x400]);
        expected.extend_from_slice(&k[TEXT_AT..TEXT_AT + 0x400]);
        expected.extend_from_slice(&k[TRAILER_AT..CERT_AT]);
        assert_eq!(authenticode_sha384(&k).unwrap(), sha384(&expected));

        let digest = authenticode_sha384(&k).unwrap();
        let changed = |at: usize| {
            let mut c = k.clone();
            c[at] ^= 0xff;
            authenticode_sha384(&c).unwrap()
        };
        // Excluded: CheckSum, the certificate table's address, the certificate table.
        assert_eq!(changed(CHECKSUM + 2), digest);
        assert_eq!(changed(CERT_DIR + 1), digest);
        assert_eq!(changed(CERT_AT + 10), digest);
        // Included: a header byte, section data, the trailing data.
        assert_ne!(changed(0x210), digest);
        assert_ne!(changed(TEXT_AT + 3), digest);
        assert_ne!(changed(TRAILER_AT + 1), digest);
    }

    /// With 4 data directories or fewer there is no certificate directory: the header is
    /// hashed through where it would be and everything after the sections is hashed.
    #[test]
    fn authenticode_without_a_certificate_directory_hashes_all_trailing_data() {
        let mut k = modern();
        k[0x58 + 108..0x58 + 112].copy_from_slice(&4u32.to_le_bytes());
        let mut expected = Vec::new();
        expected.extend_from_slice(&k[..CHECKSUM]);
        expected.extend_from_slice(&k[CHECKSUM + 4..HEADERS]);
        expected.extend_from_slice(&k[SETUP_AT..SETUP_AT + 0x400]);
        expected.extend_from_slice(&k[TEXT_AT..TEXT_AT + 0x400]);
        expected.extend_from_slice(&k[TRAILER_AT..LEN]);
        assert_eq!(authenticode_sha384(&k).unwrap(), sha384(&expected));
    }

    /// A file whose length is not a multiple of 8 is not padded (edk2 does not pad).
    #[test]
    fn authenticode_does_not_pad_the_file() {
        let mut k = modern();
        k[0x58 + 108..0x58 + 112].copy_from_slice(&4u32.to_le_bytes());
        k.truncate(LEN - 3);
        let mut expected = Vec::new();
        expected.extend_from_slice(&k[..CHECKSUM]);
        expected.extend_from_slice(&k[CHECKSUM + 4..HEADERS]);
        expected.extend_from_slice(&k[SETUP_AT..SETUP_AT + 0x400]);
        expected.extend_from_slice(&k[TEXT_AT..TEXT_AT + 0x400]);
        expected.extend_from_slice(&k[TRAILER_AT..]);
        assert_eq!(authenticode_sha384(&k).unwrap(), sha384(&expected));
    }

    #[test]
    fn rtmr_extension_is_sha384_of_the_old_value_and_the_digest() {
        let d1 = sha384(b"one");
        let d2 = sha384(b"two");
        let mut first = [0u8; 96];
        first[48..].copy_from_slice(&d1);
        let r1 = sha384(&first);
        let mut second = [0u8; 96];
        second[..48].copy_from_slice(&r1);
        second[48..].copy_from_slice(&d2);
        assert_eq!(replay([&d1, &d2]), sha384(&second));
        assert_eq!(replay([]), [0u8; 48]);
    }

    /// The setup header QEMU writes, field by field, for RAM below and above 0xb0000000
    /// (q35 keeps all RAM below 4 GiB up to 2.75 GiB, then only 2 GiB) and just below the
    /// threshold; every other byte unchanged.
    #[test]
    fn qemu_patches_the_setup_header_field_by_field() {
        let k = modern();
        let initrd = 0x12345u64;
        for (memory, below_4g) in [
            (0x4000_0000u64, 0x4000_0000u32), // 1 GiB
            (0xafff_e000, 0xafff_e000),       // just below 0xb0000000
            (0x2_0000_0000, 0x8000_0000),     // 8 GiB
        ] {
            let p =
                qemu_patched_kernel(&k, Some(initrd), "console=ttyS0", memory, 0x28000).unwrap();
            // initrd_max: XLF_CAN_BE_LOADED_ABOVE_4G, so 4 GiB, capped by low RAM - ACPI - 1.
            let max = below_4g - 0x28000 - 1;
            let address = (max - initrd as u32) & !0xfff;
            assert_eq!(p[0x210], 0xb0, "type_of_loader");
            assert_eq!(p[0x211], 0x81, "loadflags: LOADED_HIGH | CAN_USE_HEAP");
            assert_eq!(u32_of(&p, 0x218), address, "ramdisk_image at {memory:#x}");
            assert_eq!(u32_of(&p, 0x21c), initrd as u32, "ramdisk_size");
            assert_eq!(
                u16_of(&p, 0x224),
                0xfe00,
                "heap_end_ptr = 0x20000 - 0x10000 - 0x200"
            );
            assert_eq!(u32_of(&p, 0x228), 0x2_0000, "cmd_line_ptr");
            let patched = [0x210..0x212, 0x218..0x220, 0x224..0x226, 0x228..0x22c]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            for (i, (after, before)) in p.iter().zip(&k).enumerate() {
                if !patched.contains(&i) {
                    assert_eq!(after, before, "byte {i:#x} is not QEMU's to change");
                }
            }
        }
        // The three addresses written out.
        let at = |memory| {
            u32_of(
                &qemu_patched_kernel(&k, Some(initrd), "", memory, 0x28000).unwrap(),
                0x218,
            )
        };
        assert_eq!(at(0x4000_0000), 0x3ffc_5000);
        assert_eq!(at(0xafff_e000), 0xaffc_3000);
        assert_eq!(at(0x2_0000_0000), 0x7ffc_5000);
        // Below 2.75 GiB the address follows the memory size; from there on it does not.
        assert_eq!(at(0x2_0000_0000), at(0xb000_0000));
        assert_ne!(at(0xafff_e000), at(0xb000_0000));
    }

    /// A kernel that can only take its initrd below initrd_addr_max (protocol 2.03-2.11, or
    /// no XLF_CAN_BE_LOADED_ABOVE_4G) gets it there; a low-loaded kernel gets its command
    /// line below 0x9a000.
    #[test]
    fn qemu_honours_initrd_addr_max_and_low_kernels() {
        let k = bzimage(0x20b, 0x01, 0, 0x37ff_ffff);
        let p = qemu_patched_kernel(&k, Some(0x12345), "", 0x2_0000_0000, 0x28000).unwrap();
        assert_eq!(u32_of(&p, 0x218), (0x37ff_ffff - 0x12345) & !0xfff);

        let k = bzimage(0x20f, 0x00, 0x7f, 0x7fff_ffff);
        let p = qemu_patched_kernel(&k, None, "abc", 0x4000_0000, 0x28000).unwrap();
        // (3 + 16) & !15 = 16 bytes of command line below 0x9a000; the setup at 0x90000.
        assert_eq!(u32_of(&p, 0x228), 0x9_9ff0);
        assert_eq!(u16_of(&p, 0x224), 0x9df0);
        assert_eq!(p[0x211], 0x80);
        assert_eq!(
            &p[0x218..0x220],
            &[0; 8],
            "no initrd: ramdisk fields untouched"
        );
    }

    /// The load options as TDVF builds them, byte for byte.
    #[test]
    fn load_options_are_the_widened_command_line_and_initrd_argument() {
        let utf16 = |s: &str| {
            let mut v: Vec<u8> = s.bytes().flat_map(|b| [b, 0]).collect();
            v.extend_from_slice(&[0, 0]);
            v
        };
        assert_eq!(
            load_options("quiet", true, InitrdArgument::Prefix).unwrap(),
            Some(b"i\0n\0i\0t\0r\0d\0=\0i\0n\0i\0t\0r\0d\0 \0q\0u\0i\0e\0t\0\0\0".to_vec())
        );
        assert_eq!(
            load_options("quiet", true, InitrdArgument::Suffix).unwrap(),
            Some(utf16("quiet initrd=initrd"))
        );
        assert_eq!(
            load_options("quiet", false, InitrdArgument::Prefix).unwrap(),
            Some(utf16("quiet"))
        );
        assert_eq!(
            load_options("", true, InitrdArgument::Prefix).unwrap(),
            Some(utf16("initrd=initrd "))
        );
        assert_eq!(
            load_options("", false, InitrdArgument::Prefix).unwrap(),
            None
        );
    }

    /// The events in order, and the registers as their replay written out.
    #[test]
    fn direct_boot_measures_the_event_sequence() {
        let k = modern();
        let initrd = b"an initrd".as_slice();
        let input = DirectBoot {
            kernel: &k,
            initrd: Some(initrd),
            cmdline: "console=ttyS0 quiet",
            kernel_setup: KernelSetup::AsFile,
            initrd_argument: InitrdArgument::Prefix,
        };
        let r = direct_boot(&input).unwrap();
        let rtmr1 = [
            authenticode_sha384(&k).unwrap(),
            sha384(b"Calling EFI Application from Boot Option"),
            sha384(&[0, 0, 0, 0]),
            sha384(b"Exit Boot Services Invocation"),
            sha384(b"Exit Boot Services Returned with Success"),
        ];
        let options = load_options("console=ttyS0 quiet", true, InitrdArgument::Prefix)
            .unwrap()
            .unwrap();
        let rtmr2 = [sha384(&options), sha384(initrd)];
        let digests = |events: &[Event]| events.iter().map(|e| e.digest).collect::<Vec<_>>();
        assert_eq!(digests(&r.rtmr1_events), rtmr1);
        assert_eq!(digests(&r.rtmr2_events), rtmr2);
        let by_hand = |ds: &[[u8; 48]]| {
            let mut rtmr = [0u8; 48];
            for d in ds {
                let mut h = Sha384::new();
                h.update(rtmr);
                h.update(d);
                rtmr = h.finalize().into();
            }
            rtmr
        };
        assert_eq!(r.rtmr1, by_hand(&rtmr1));
        assert_eq!(r.rtmr2, by_hand(&rtmr2));

        // The patched kernel is measured instead when QEMU hands that over; its digest
        // follows the memory size below 2.75 GiB. RTMR2 does not depend on it.
        let patched = |memory| {
            direct_boot(&DirectBoot {
                kernel_setup: KernelSetup::QemuPatched {
                    memory,
                    acpi_data_size: QEMU_ACPI_DATA_SIZE,
                },
                ..input
            })
            .unwrap()
        };
        let p1 = patched(0x4000_0000);
        let p8 = patched(0x2_0000_0000);
        let expected = qemu_patched_kernel(
            &k,
            Some(initrd.len() as u64),
            input.cmdline,
            0x4000_0000,
            0x28000,
        )
        .unwrap();
        assert_eq!(
            p1.rtmr1_events[0].digest,
            authenticode_sha384(&expected).unwrap()
        );
        assert_ne!(p1.rtmr1, p8.rtmr1);
        assert_ne!(p1.rtmr1, r.rtmr1);
        assert_eq!(p1.rtmr1_events[1..], r.rtmr1_events[1..]);
        assert_eq!(p1.rtmr2, r.rtmr2);

        // Without an initrd: no initrd event, no initrd=initrd; without either, RTMR2 is
        // untouched.
        let none = direct_boot(&DirectBoot {
            initrd: None,
            ..input
        })
        .unwrap();
        assert_eq!(
            digests(&none.rtmr2_events),
            [sha384(
                &load_options(input.cmdline, false, InitrdArgument::Prefix)
                    .unwrap()
                    .unwrap()
            )]
        );
        let nothing = direct_boot(&DirectBoot {
            initrd: None,
            cmdline: "",
            ..input
        })
        .unwrap();
        assert!(nothing.rtmr2_events.is_empty());
        assert_eq!(nothing.rtmr2, [0u8; 48]);
    }

    fn boot(kernel: &[u8]) -> Result<DirectBootRtmrs, DirectBootError> {
        direct_boot(&DirectBoot {
            kernel,
            initrd: Some(b"initrd".as_slice()),
            cmdline: "quiet",
            kernel_setup: KernelSetup::AsFile,
            initrd_argument: InitrdArgument::Prefix,
        })
    }

    #[test]
    fn a_kernel_too_short_for_its_header_or_setup_is_refused() {
        assert_eq!(
            boot(&modern()[..0x100]),
            Err(DirectBootError::KernelTooShort {
                len: 0x100,
                needed: 0x206
            })
        );
        let mut k = modern();
        k[0x1f1] = 40; // 41 sectors of setup in a 0xc80-byte file
        assert_eq!(
            boot(&k),
            Err(DirectBootError::KernelTooShort {
                len: LEN,
                needed: 41 * 512
            })
        );
    }

    #[test]
    fn a_file_without_the_hdrs_signature_is_not_a_bzimage() {
        let mut k = modern();
        k[0x202] = b'X';
        assert_eq!(boot(&k), Err(DirectBootError::NotBzImage));
    }

    #[test]
    fn a_boot_protocol_before_2_00_is_refused() {
        assert_eq!(
            boot(&bzimage(0x1ff, 0x01, 0, 0)),
            Err(DirectBootError::BootProtocolTooOld { version: 0x1ff })
        );
    }

    #[test]
    fn a_bzimage_without_a_pe_header_is_refused() {
        let mut k = modern();
        k[0] = b'X';
        assert_eq!(
            boot(&k),
            Err(DirectBootError::KernelNotPe(PeError::NoDosHeader))
        );
    }

    #[test]
    fn an_initrd_above_the_limit_is_refused() {
        let k = modern();
        // 64 MiB of RAM: the limit is 64 MiB - ACPI data - 1.
        let max = 0x400_0000 - 0x28000 - 1;
        assert_eq!(
            qemu_patched_kernel(&k, Some(max), "", 0x400_0000, 0x28000),
            Err(DirectBootError::InitrdTooLarge { size: max, max })
        );
        assert!(qemu_patched_kernel(&k, Some(max - 1), "", 0x400_0000, 0x28000).is_ok());
    }

    #[test]
    fn acpi_data_larger_than_low_memory_is_refused() {
        assert_eq!(
            qemu_patched_kernel(&modern(), Some(1), "", 0x20000, 0x28000),
            Err(DirectBootError::AcpiDataTooLarge {
                acpi_data_size: 0x28000,
                below_4g: 0x20000
            })
        );
    }

    #[test]
    fn a_command_line_with_a_nul_is_refused() {
        let k = modern();
        let input = DirectBoot {
            kernel: &k,
            initrd: None,
            cmdline: "quiet\0rest",
            kernel_setup: KernelSetup::AsFile,
            initrd_argument: InitrdArgument::Prefix,
        };
        assert_eq!(direct_boot(&input), Err(DirectBootError::CmdlineHasNul));
    }

    #[test]
    fn a_command_line_setting_vga_is_refused_when_qemu_patches_the_header() {
        let k = modern();
        assert_eq!(
            qemu_patched_kernel(&k, None, "quiet vga=791", 0x4000_0000, 0x28000),
            Err(DirectBootError::CmdlineSetsVideoMode)
        );
        // Measured as the file, the header patch does not reach the measurement.
        let input = DirectBoot {
            kernel: &k,
            initrd: None,
            cmdline: "quiet vga=791",
            kernel_setup: KernelSetup::AsFile,
            initrd_argument: InitrdArgument::Prefix,
        };
        assert!(direct_boot(&input).is_ok());
    }

    #[test]
    fn pe_files_that_edk2_cannot_measure_are_refused() {
        let pe = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut k = modern();
            f(&mut k);
            authenticode_sha384(&k)
        };
        assert_eq!(pe(&|k| k[0] = 0), Err(PeError::NoDosHeader));
        assert_eq!(pe(&|k| k[0x41] = b'X'), Err(PeError::NoPeSignature));
        assert_eq!(
            authenticode_sha384(b"MZ"),
            Err(PeError::Truncated("DOS header"))
        );
        // e_lfanew pointing at a PE signature 4 bytes from the end: no COFF header.
        assert_eq!(
            pe(&|k| {
                let at = k.len() - 4;
                k[at..].copy_from_slice(b"PE\0\0");
                k[0x3c..0x40].copy_from_slice(&(at as u32).to_le_bytes());
            }),
            Err(PeError::Truncated("COFF header"))
        );
        assert_eq!(
            pe(&|k| k[0x58..0x5a].copy_from_slice(&0x107u16.to_le_bytes())),
            Err(PeError::UnknownOptionalHeader(0x107))
        );
        assert_eq!(
            pe(&|k| k[0x58 + 60..0x58 + 64].copy_from_slice(&0x80u32.to_le_bytes())),
            Err(PeError::BadSizeOfHeaders(0x80))
        );
        assert_eq!(
            pe(&|k| k[0x58 + 60..0x58 + 64].copy_from_slice(&0x10000u32.to_le_bytes())),
            Err(PeError::BadSizeOfHeaders(0x10000))
        );
        // .text's raw data (table entry 0) moved past the end of the file.
        assert_eq!(
            pe(&|k| k[0xf8 + 20..0xf8 + 24].copy_from_slice(&0xc00u32.to_le_bytes())),
            Err(PeError::SectionOutsideFile { index: 0 })
        );
        assert_eq!(
            pe(&|k| k[CERT_DIR + 4..CERT_DIR + 8].copy_from_slice(&0x100u32.to_le_bytes())),
            Err(PeError::CertificateTableTooLarge { size: 0x100 })
        );
    }
}
