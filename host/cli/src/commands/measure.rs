//! `cleanroom measure`: print the reference values a contract lists.
//!
//! - `cleanroom measure snp --ovmf F [--kernel F --initrd F --append S] --vcpus N
//!   --vcpu-type T --guest-features X [--vmm QEMU|EC2|KRUN]`: the SEV-SNP launch digest;
//! - `cleanroom measure tdx --tdvf FILE [--page-add-order single-pass|two-pass]`: MRTD
//!   computed from the TDVF firmware image's metadata;
//! - `cleanroom measure tdx --quote FILE`: MRTD and RTMR0-3 read from a quote captured on a
//!   trusted launch of the image (verify that quote first with `cleanroom attest verify`):
//!   where RTMR0 (VMM-supplied ACPI tables, TD HOB) and RTMR1-2 (kernel, initrd, command
//!   line as the boot chain extends them) come from;
//! - `cleanroom measure sim [--binary F]`: the `sim` measurement, SHA-384 of the binary
//!   (default: this executable).

use cleanroom_verify::commands::attest::decode_maybe_hex;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use cleanroom_attest::measure;

/// `cleanroom measure ...`
#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    #[command(subcommand)]
    pub command: MeasureCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MeasureCommand {
    /// SEV-SNP launch digest of a QEMU/OVMF guest.
    Snp(SnpMeasureArgs),
    /// TDX reference values: MRTD from a TDVF image, or MRTD and RTMR0-3 from a quote of a
    /// trusted launch.
    Tdx(TdxMeasureArgs),
    /// The `sim` measurement (SHA-384 of the cleanroom binary). INSECURE platform.
    Sim(SimMeasureArgs),
}

#[derive(Debug, clap::Args)]
pub struct SnpMeasureArgs {
    /// OVMF firmware image (built with SEV-SNP support, e.g. AmdSev).
    #[arg(long, value_name = "FILE")]
    pub ovmf: PathBuf,
    /// Kernel measured through OVMF's SEV hashes table (direct boot).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initrd (needs --kernel).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line (needs --kernel).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
    /// Number of vCPUs (each vCPU's VMSA is measured).
    #[arg(long, value_name = "N")]
    pub vcpus: u32,
    /// vCPU type as QEMU names it: EPYC, EPYC-v4, EPYC-Milan, EPYC-Genoa, ...
    #[arg(long = "vcpu-type", value_name = "TYPE")]
    pub vcpu_type: String,
    /// SEV features of the VMSAs, hex (0x1) or decimal.
    #[arg(long = "guest-features", value_name = "X", default_value = "0x1")]
    pub guest_features: String,
    /// VMM: QEMU (default), EC2 or KRUN.
    #[arg(long, value_name = "VMM")]
    pub vmm: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("tdx_input").required(true).multiple(false).args(["quote", "tdvf"])))]
pub struct TdxMeasureArgs {
    /// A TD quote (raw or hex) captured on a trusted launch of the image: prints MRTD and
    /// RTMR0-3 as the quote holds them.
    #[arg(long, value_name = "FILE")]
    pub quote: Option<PathBuf>,
    /// The TDVF firmware (OVMF built for TDX): computes MRTD from its metadata.
    #[arg(long, value_name = "FILE")]
    pub tdvf: Option<PathBuf>,
    /// How the host's VMM orders page additions: `single-pass` (Linux KVM 6.16 and later:
    /// each page added, then extended) or `two-pass` (earlier TDX patch sets: a section's
    /// pages added, then extended).
    /// Default: single-pass.
    #[arg(long, value_name = "ORDER", value_parser = ["single-pass", "two-pass"], conflicts_with = "quote")]
    pub page_add_order: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SimMeasureArgs {
    /// The binary to measure (default: the room binary, `cleanroom-room`, beside this one).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
}

/// Run `cleanroom measure ...`.
pub fn run(args: &MeasureArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        MeasureCommand::Snp(a) => {
            let guest_features = parse_u64(&a.guest_features)
                .ok_or_else(|| anyhow!("--guest-features {} is not a number", a.guest_features))?;
            let input = measure::SnpMeasureInput {
                ovmf: a.ovmf.clone(),
                kernel: a.kernel.clone(),
                initrd: a.initrd.clone(),
                append: a.append.clone(),
                vcpus: a.vcpus,
                vcpu_type: a.vcpu_type.clone(),
                guest_features,
                vmm: a.vmm.clone(),
            };
            let digest = measure::snp_launch_digest(&input)?;
            println!("snp measurement: {}", hex::encode(digest));
        }
        MeasureCommand::Tdx(TdxMeasureArgs {
            tdvf: Some(tdvf),
            page_add_order,
            ..
        }) => {
            let page_add_order = page_add_order.as_deref().unwrap_or("single-pass");
            let order = if page_add_order == "two-pass" {
                cleanroom_attest::tdvf::PageAddOrder::TwoPass
            } else {
                cleanroom_attest::tdvf::PageAddOrder::SinglePass
            };
            let mrtd = measure::tdx_mrtd(tdvf, order)?;
            println!("tdx mrtd:       {}", hex::encode(mrtd));
            println!(
                "(computed from the TDVF metadata, page additions {page_add_order}; RTMR0-2 come from a reference boot: `cleanroom measure tdx --quote`)"
            );
        }
        MeasureCommand::Tdx(TdxMeasureArgs {
            quote: Some(quote), ..
        }) => {
            let bytes =
                std::fs::read(quote).with_context(|| format!("reading {}", quote.display()))?;
            let r = measure::tdx_reference_from_quote(&decode_maybe_hex(bytes))?;
            println!("tdx mrtd:       {}", hex::encode(r.mrtd));
            for (i, rtmr) in r.rtmrs.iter().enumerate() {
                println!("tdx rtmr{i}:      {}", hex::encode(rtmr));
            }
            println!("tdx mrconfigid: {}", hex::encode(r.mr_config_id));
            println!(
                "(read from the quote, not verified: verify it with `cleanroom attest verify`)"
            );
        }
        MeasureCommand::Tdx(_) => {
            return Err(anyhow!("measure tdx needs --tdvf FILE or --quote FILE"));
        }
        MeasureCommand::Sim(a) => {
            let path = match &a.binary {
                Some(path) => path.clone(),
                None => crate::processes::room_binary()?,
            };
            let digest = measure::sim_measurement(
                &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            );
            println!("sim measurement: {}", hex::encode(digest));
            println!(
                "(sim is INSECURE: accepted only where the contract sets allow_simulated = true)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_features_parse_as_hex_or_decimal() {
        assert_eq!(parse_u64("0x21"), Some(0x21));
        assert_eq!(parse_u64("33"), Some(33));
        assert_eq!(parse_u64("zz"), None);
    }
}
