//! A contract's `[attestation]` section as the verifier's reference values: which
//! platforms and measurements it accepts. The room (checking itself), every broker and every
//! member verifying evidence use this one mapping.

use cleanroom_attest::{
    Platform, ReferenceValues, SimReference, SnpReference, SnpTcb, TdxReference,
};
use cleanroom_policy::Contract;

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
                allow_migration_agent: p.allow_migration_agent,
                min_abi: p.min_abi.map(|v| cleanroom_attest::SnpAbiVersion {
                    major: v.major,
                    minor: v.minor,
                }),
            })
            .unwrap_or_default(),
        tdx: a
            .tdx
            .as_ref()
            .map(|p| TdxReference {
                mrtds: p.mrtd.iter().filter_map(|m| hex48(m.get_ref())).collect(),
                rtmrs: p.expected_rtmrs(),
                allowed_tcb_statuses: p.allowed_tcb_statuses.clone(),
                allow_debug: p.allow_debug,
            })
            .unwrap_or_default(),
    }
}
