//! The host's side of attestation: its measurement, its evidence sources, and the mapping
//! from a contract's `[attestation]` section to the verifier's reference values.

use std::sync::OnceLock;

use cleanroom_attest::{
    EvidenceBundle, Platform, ReferenceValues, SimReference, SnpReference, SnpTcb, TdxReference,
};
use cleanroom_policy::Contract;
use sha2::{Digest, Sha384};

use crate::error::{HostError, Result};

/// Reference values for `contract`: which platforms and measurements it accepts.
pub fn reference_values(contract: &Contract) -> ReferenceValues {
    let a = &contract.attestation;
    let allowed_platforms = a
        .platforms
        .iter()
        .filter_map(|p| p.get_ref().parse::<Platform>().ok())
        .collect();
    let hex48 = |s: &str| -> Option<[u8; 48]> { hex::decode(s).ok()?.try_into().ok() };
    ReferenceValues {
        allowed_platforms,
        allow_simulated: a.allow_simulated,
        sim: SimReference {
            measurements: a
                .sim
                .iter()
                .flat_map(|s| &s.measurements)
                .filter_map(|m| hex48(m.get_ref()))
                .collect(),
        },
        snp: a
            .snp
            .as_ref()
            .map(|p| SnpReference {
                measurements: p
                    .measurements
                    .iter()
                    .filter_map(|m| hex48(m.get_ref()))
                    .collect(),
                min_tcb: p
                    .min_tcb
                    .as_ref()
                    .map(|t| SnpTcb {
                        bootloader: t.bootloader,
                        tee: t.tee,
                        snp: t.snp,
                        microcode: t.microcode,
                        fmc: None,
                    })
                    .unwrap_or_default(),
                allow_debug: p.allow_debug,
                vmpl: p.vmpl,
            })
            .unwrap_or_default(),
        tdx: a
            .tdx
            .as_ref()
            .map(|p| TdxReference {
                mrtds: p.mrtd.iter().filter_map(|m| hex48(m.get_ref())).collect(),
                rtmrs: [&p.rtmr0, &p.rtmr1, &p.rtmr2, &p.rtmr3]
                    .map(|r| r.as_deref().and_then(hex48)),
                allowed_tcb_statuses: p.allowed_tcb_statuses.clone(),
                allow_debug: p.allow_debug,
            })
            .unwrap_or_default(),
    }
}

/// The sim platform's measurement of this host: SHA-384 of the running executable, which is
/// what `cleanroom measure sim` prints and what a contract lists under
/// `[attestation.sim] measurements`.
pub fn self_measurement() -> Result<[u8; 48]> {
    static CACHE: OnceLock<[u8; 48]> = OnceLock::new();
    if let Some(m) = CACHE.get() {
        return Ok(*m);
    }
    let exe = std::env::current_exe().map_err(|e| HostError::io("<current executable>", e))?;
    let bytes = std::fs::read(&exe).map_err(|e| HostError::io(&exe, e))?;
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
