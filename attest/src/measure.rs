//! Reference values: what a contract lists as the allowed measurements.
//!
//! - SEV-SNP: the launch digest of a QEMU/OVMF guest, computed from the OVMF image, the
//!   optional kernel, initrd and command line (measured through OVMF's SEV hashes table),
//!   the number and type of vCPUs (their VMSAs are measured) and the guest features, with
//!   the `sev` crate's `measurement` module (RustCrypto, no OpenSSL).
//! - TDX: MRTD is computed from the TDVF firmware image ([`tdx_mrtd`], the metadata walk in
//!   [`crate::tdvf`]); RTMR1 (the kernel and TDVF's boot events) and RTMR2 (the command line
//!   and the initrd, as the kernel's EFI stub measures them) from the kernel, initrd and
//!   command line of a direct boot ([`tdx_direct_boot_rtmrs`], [`crate::rtmr`]); MRTD and
//!   RTMR0-3 can also be read from a quote captured on a trusted launch of the image
//!   ([`tdx_reference_from_quote`]): RTMR0 (the TD HOB, ACPI tables and firmware
//!   configuration the VMM supplies) comes from there.
//! - `sim`: SHA-384 of the host binary ([`sim_measurement`]).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha384};

/// Why a measurement could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown vCPU type `{0}` (e.g. EPYC, EPYC-v4, EPYC-Milan, EPYC-Genoa, EPYC-Turin)")]
    UnknownVcpuType(String),
    #[error("unknown VMM type `{0}` (QEMU, EC2 or KRUN)")]
    UnknownVmmType(String),
    #[error(
        "--initrd and --append need --kernel (they are measured through the kernel hashes table)"
    )]
    KernelRequired,
    #[error("OVMF image {path} cannot be measured: {what}")]
    Ovmf { path: String, what: String },
    #[error("launch digest calculation failed: {0}")]
    Calculation(String),
    #[error("{0}")]
    Quote(#[from] crate::AttestError),
    #[error("TDVF image {path} cannot be measured: {problem}")]
    Tdvf {
        path: String,
        problem: crate::tdvf::TdvfError,
    },
    #[error("TDX RTMR1-2 of kernel {kernel} cannot be computed: {problem}")]
    TdxDirectBoot {
        kernel: String,
        problem: crate::rtmr::DirectBootError,
    },
}

/// The inputs of an SEV-SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpMeasureInput {
    pub ovmf: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub vcpus: u32,
    /// QEMU's name: `EPYC`, `EPYC-v4`, `EPYC-Milan`, `EPYC-Genoa`, ...
    pub vcpu_type: String,
    /// SEV_FEATURES of the VMSAs (e.g. 0x1 = SNPActive; 0x21 adds DebugSwap).
    pub guest_features: u64,
    /// `QEMU` (default), `EC2` or `KRUN`.
    pub vmm: Option<String>,
}

fn check_readable(path: &Path) -> Result<(), MeasureError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| MeasureError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// The SEV-SNP launch digest (the report's MEASUREMENT) for these inputs.
pub fn snp_launch_digest(input: &SnpMeasureInput) -> Result<[u8; 48], MeasureError> {
    use sev::measurement::ovmf::{OVMF, SectionType};
    use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
    use sev::measurement::vcpu_types::CpuType;
    use sev::measurement::vmsa::{GuestFeatures, VMMType};
    use sev::parser::ByteParser;

    check_readable(&input.ovmf)?;
    for path in [&input.kernel, &input.initrd].into_iter().flatten() {
        check_readable(path)?;
    }
    if input.kernel.is_none() && (input.initrd.is_some() || input.append.is_some()) {
        return Err(MeasureError::KernelRequired);
    }
    let vcpu_type = CpuType::try_from(input.vcpu_type.as_str())
        .map_err(|_| MeasureError::UnknownVcpuType(input.vcpu_type.clone()))?;
    let vmm_type = match &input.vmm {
        None => None,
        Some(v) => Some(
            v.parse::<VMMType>()
                .map_err(|_| MeasureError::UnknownVmmType(v.clone()))?,
        ),
    };
    let guest_features = GuestFeatures::from_bytes(&input.guest_features.to_le_bytes())
        .map_err(|e| MeasureError::Calculation(format!("guest features: {e}")))?;

    // The sev crate asserts (panics) if the kernel hashes section is not one page; refuse
    // such an image here instead.
    let ovmf_err = |what: String| MeasureError::Ovmf {
        path: input.ovmf.display().to_string(),
        what,
    };
    let ovmf = OVMF::new(input.ovmf.clone()).map_err(|e| ovmf_err(e.to_string()))?;
    if input.kernel.is_some() {
        let hashes = ovmf
            .metadata_items()
            .iter()
            .find(|d| d.section_type == SectionType::SnpKernelHashes)
            .ok_or_else(|| {
                ovmf_err("it has no SNP kernel hashes section: it cannot measure a kernel".into())
            })?;
        if hashes.size != 4096 {
            return Err(ovmf_err(format!(
                "its SNP kernel hashes section is {} bytes, not one page",
                hashes.size
            )));
        }
    }

    let args = SnpMeasurementArgs {
        vcpus: input.vcpus,
        vcpu_type,
        ovmf_file: input.ovmf.clone(),
        guest_features,
        kernel_file: input.kernel.clone(),
        initrd_file: input.initrd.clone(),
        append: input.append.as_deref(),
        ovmf_hash_str: None,
        vmm_type,
    };
    let digest =
        snp_calc_launch_digest(args).map_err(|e| MeasureError::Calculation(e.to_string()))?;
    let bytes: Vec<u8> = digest
        .try_into()
        .map_err(|e: sev::error::MeasurementError| MeasureError::Calculation(e.to_string()))?;
    <[u8; 48]>::try_from(bytes.as_slice())
        .map_err(|_| MeasureError::Calculation("launch digest is not 48 bytes".into()))
}

/// The OVMF-only part of the launch digest (what `--ovmf-hash` style tools print).
pub fn snp_ovmf_hash(ovmf: &Path) -> Result<[u8; 48], MeasureError> {
    check_readable(ovmf)?;
    let digest = sev::measurement::snp::calc_snp_ovmf_hash(ovmf.to_path_buf())
        .map_err(|e| MeasureError::Calculation(e.to_string()))?;
    let bytes: Vec<u8> = digest
        .try_into()
        .map_err(|e: sev::error::MeasurementError| MeasureError::Calculation(e.to_string()))?;
    <[u8; 48]>::try_from(bytes.as_slice())
        .map_err(|_| MeasureError::Calculation("OVMF hash is not 48 bytes".into()))
}

/// The MRTD of a TD launched from the TDVF firmware at `tdvf` by a VMM that orders its page
/// additions as `order` ([`crate::tdvf::PageAddOrder`]).
pub fn tdx_mrtd(tdvf: &Path, order: crate::tdvf::PageAddOrder) -> Result<[u8; 48], MeasureError> {
    let image = std::fs::read(tdvf).map_err(|source| MeasureError::Io {
        path: tdvf.display().to_string(),
        source,
    })?;
    crate::tdvf::mrtd(&image, order).map_err(|problem| MeasureError::Tdvf {
        path: tdvf.display().to_string(),
        problem,
    })
}

/// The inputs of TDX RTMR1 and RTMR2 for a direct boot by TDVF (QEMU `-kernel`, `-initrd`,
/// `-append`; see [`crate::rtmr`]).
#[derive(Debug, Clone)]
pub struct TdxDirectBootInput {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The command line (`-append`); none is the empty command line.
    pub append: Option<String>,
    pub kernel_setup: crate::rtmr::KernelSetup,
    pub initrd_argument: crate::rtmr::InitrdArgument,
}

/// RTMR1 and RTMR2 (with their events) of a TD that TDVF boots from these files.
pub fn tdx_direct_boot_rtmrs(
    input: &TdxDirectBootInput,
) -> Result<crate::rtmr::DirectBootRtmrs, MeasureError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| MeasureError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    let kernel = read(&input.kernel)?;
    let initrd = input.initrd.as_deref().map(read).transpose()?;
    crate::rtmr::direct_boot(&crate::rtmr::DirectBoot {
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: input.append.as_deref().unwrap_or(""),
        kernel_setup: input.kernel_setup,
        initrd_argument: input.initrd_argument,
    })
    .map_err(|problem| MeasureError::TdxDirectBoot {
        kernel: input.kernel.display().to_string(),
        problem,
    })
}

/// TDX reference values read from a quote of a trusted launch: MRTD, RTMR0..3, MRCONFIGID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxReferenceValues {
    pub mrtd: [u8; 48],
    pub rtmrs: [[u8; 48]; 4],
    pub mr_config_id: [u8; 48],
}

/// Read the TDX reference values from a quote captured on a trusted launch of the image.
/// This parses but does not verify the quote: verify it first (`cleanroom attest verify`).
pub fn tdx_reference_from_quote(quote: &[u8]) -> Result<TdxReferenceValues, MeasureError> {
    let q = crate::tdx::parse_td_quote(quote)?;
    let td = q.report.as_td10().ok_or_else(|| {
        MeasureError::Quote(crate::AttestError::Malformed {
            what: "not a TD quote".into(),
        })
    })?;
    Ok(TdxReferenceValues {
        mrtd: td.mr_td,
        rtmrs: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
        mr_config_id: td.mr_config_id,
    })
}

/// The `sim` measurement of a binary: SHA-384 of its bytes.
pub fn sim_measurement(binary: &[u8]) -> [u8; 48] {
    Sha384::digest(binary).into()
}

/// The `sim` measurement of the running executable.
pub fn sim_measurement_of_current_exe() -> Result<[u8; 48], MeasureError> {
    let path = std::env::current_exe().map_err(|source| MeasureError::Io {
        path: "current executable".into(),
        source,
    })?;
    let bytes = std::fs::read(&path).map_err(|source| MeasureError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(sim_measurement(&bytes))
}
