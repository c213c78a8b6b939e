//! The room's side of attestation: its measurement and its evidence sources. (The mapping
//! from a contract to reference values is `cleanroom_verify::reference`.)

use std::sync::OnceLock;

use cleanroom_attest::{EvidenceBundle, Platform};
use cleanroom_formats::FormatError;
use sha2::{Digest, Sha384};

use crate::error::Result;

/// The sim platform's measurement of this host: SHA-384 of the running executable, which is
/// what `cleanroom measure sim` prints and what a contract lists under
/// `[attestation.sim] measurements`.
pub fn self_measurement() -> Result<[u8; 48]> {
    static CACHE: OnceLock<[u8; 48]> = OnceLock::new();
    if let Some(m) = CACHE.get() {
        return Ok(*m);
    }
    let exe = std::env::current_exe().map_err(|e| FormatError::io("<current executable>", e))?;
    let bytes = std::fs::read(&exe).map_err(|e| FormatError::io(&exe, e))?;
    let m: [u8; 48] = Sha384::digest(&bytes).into();
    Ok(*CACHE.get_or_init(|| m))
}

/// Where a host gets evidence binding given REPORT_DATA.
pub trait EvidenceSource: Send + Sync {
    fn platform(&self) -> Platform;
    fn collect(&self, report_data: [u8; 64]) -> Result<EvidenceBundle>;
}

/// The simulated platform (INSECURE). `launch_digest` plays the role of SNP HOST_DATA / TDX
/// MRCONFIGID, which on hardware the operator fixes at VM launch.
#[derive(Debug, Clone)]
pub struct SimSource {
    pub measurement: [u8; 48],
    pub launch_digest: [u8; 32],
}

impl EvidenceSource for SimSource {
    fn platform(&self) -> Platform {
        Platform::Sim
    }
    fn collect(&self, report_data: [u8; 64]) -> Result<EvidenceBundle> {
        Ok(cleanroom_attest::sim::collect(
            self.measurement,
            self.launch_digest,
            report_data,
        ))
    }
}

/// Hardware evidence (SNP or TDX) through the platform's guest interface (configfs-tsm
/// first), as detected on this machine.
#[derive(Debug)]
pub struct HardwareSource {
    collector: cleanroom_attest::collect::Collector,
    platform: Platform,
}

impl HardwareSource {
    /// Detect the platform; the error names every interface that was tried.
    pub fn detect() -> Result<Self> {
        let collector = cleanroom_attest::collect::Collector::system();
        let source = collector.detect()?;
        Ok(Self {
            platform: source.platform(),
            collector,
        })
    }
}

impl EvidenceSource for HardwareSource {
    fn platform(&self) -> Platform {
        self.platform
    }
    fn collect(&self, report_data: [u8; 64]) -> Result<EvidenceBundle> {
        Ok(self.collector.collect(report_data)?)
    }
}
