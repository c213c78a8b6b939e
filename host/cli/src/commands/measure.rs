//! `cleanroom measure`: print the reference values a contract lists.
//!
//! - `cleanroom measure snp --ovmf F [--kernel F --initrd F --append S] --vcpus N
//!   --vcpu-type T --guest-features X [--vmm QEMU|EC2|KRUN]`: the SEV-SNP launch digest;
//! - `cleanroom measure tdx --tdvf FILE [--page-add-order single-pass|two-pass]`: MRTD
//!   computed from the TDVF firmware image's metadata;
//! - `cleanroom measure tdx --kernel F [--initrd F] [--append S] [--kernel-setup
//!   file|qemu-patched --memory SIZE [--acpi-data-size N]] [--initrd-arg prefix|suffix]`
//!   (with or without `--tdvf`): RTMR1 (the kernel and TDVF's boot events) and RTMR2 (the
//!   command line and the initrd) of a direct boot by TDVF, computed from the files
//!   (`cleanroom_attest::rtmr`);
//! - `cleanroom measure tdx --quote FILE`: MRTD and RTMR0-3 read from a quote captured on a
//!   trusted launch of the image (verify that quote first with `cleanroom attest verify`):
//!   where RTMR0 (VMM-supplied ACPI tables, TD HOB, firmware configuration) comes from;
//! - `cleanroom measure sim [--binary F]`: the `sim` measurement, SHA-384 of the binary
//!   (default: this executable).

use cleanroom_verify::commands::attest::decode_maybe_hex;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use cleanroom_attest::{measure, rtmr};

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
    /// TDX reference values: MRTD from a TDVF image, RTMR1-2 from the kernel, initrd and
    /// command line of a direct boot, or MRTD and RTMR0-3 from a quote of a trusted launch.
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
#[command(group(clap::ArgGroup::new("tdx_input").required(true).multiple(true).args(["quote", "tdvf", "kernel"])))]
pub struct TdxMeasureArgs {
    /// A TD quote (raw or hex) captured on a trusted launch of the image: prints MRTD and
    /// RTMR0-3 as the quote holds them.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tdvf", "kernel"])]
    pub quote: Option<PathBuf>,
    /// The TDVF firmware (OVMF built for TDX): computes MRTD from its metadata.
    #[arg(long, value_name = "FILE")]
    pub tdvf: Option<PathBuf>,
    /// How the host's VMM orders page additions: `single-pass` (Linux KVM 6.16 and later:
    /// each page added, then extended) or `two-pass` (earlier TDX patch sets: a section's
    /// pages added, then extended).
    /// Default: single-pass.
    #[arg(long, value_name = "ORDER", value_parser = ["single-pass", "two-pass"], requires = "tdvf")]
    pub page_add_order: Option<String>,
    /// The kernel QEMU boots directly (`-kernel`): computes RTMR1 (the kernel as TDVF loads
    /// it, then TDVF's boot events) and RTMR2 (the command line, then the initrd, as the
    /// kernel's EFI stub measures them). RTMR0 still comes from a reference boot (--quote).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// The initrd (`-initrd`), measured into RTMR2.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line (`-append`), measured into RTMR2.
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
    /// What TDVF measures as the kernel: `file` (default), the file as it is, which QEMU 10.0
    /// and later hand over (fw_cfg etc/boot/kernel) and TDVF from edk2-stable202502 on (the
    /// image's) loads; or `qemu-patched`, the kernel with the setup header QEMU patched,
    /// which older QEMU (TDX builds of QEMU 8 or 9) hand over: that header holds the initrd's
    /// address, so RTMR1 then depends on --memory and --acpi-data-size, the VMM's
    /// configuration.
    #[arg(long, value_name = "HOW", value_parser = ["file", "qemu-patched"], requires = "kernel")]
    pub kernel_setup: Option<String>,
    /// With --kernel-setup qemu-patched: the guest's RAM as QEMU's -m takes it (a number of
    /// MiB, or with a K, M, G or T suffix). Below 2.75 GiB RTMR1 changes with it; from there
    /// on q35 keeps 2 GiB below 4 GiB and RTMR1 no longer changes.
    #[arg(long, value_name = "SIZE", requires = "kernel")]
    pub memory: Option<String>,
    /// With --kernel-setup qemu-patched: the ACPI data size QEMU reserves below the top of
    /// low RAM, in bytes (hex with 0x). Default 0x28000, the pc and q35 machines' value.
    #[arg(long, value_name = "N", requires = "memory")]
    pub acpi_data_size: Option<String>,
    /// Where TDVF adds `initrd=initrd` to the command line it hands the kernel: `prefix`
    /// (default; edk2-stable202508 and later, the image's TDVF) or `suffix` (older TDVF).
    #[arg(long, value_name = "WHERE", value_parser = ["prefix", "suffix"], requires = "kernel")]
    pub initrd_arg: Option<String>,
    /// Also print each event's digest, in the order it is extended.
    #[arg(long, requires = "kernel")]
    pub events: bool,
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
        MeasureCommand::Tdx(a) => measure_tdx(a)?,
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

/// `cleanroom measure tdx --tdvf ... / --kernel ...`: MRTD and/or RTMR1-2, computed.
fn measure_tdx(a: &TdxMeasureArgs) -> anyhow::Result<()> {
    if a.tdvf.is_none() && a.kernel.is_none() {
        return Err(anyhow!(
            "measure tdx needs --tdvf FILE, --kernel FILE or --quote FILE"
        ));
    }
    let mut notes = Vec::new();
    if let Some(tdvf) = &a.tdvf {
        let page_add_order = a.page_add_order.as_deref().unwrap_or("single-pass");
        let order = if page_add_order == "two-pass" {
            cleanroom_attest::tdvf::PageAddOrder::TwoPass
        } else {
            cleanroom_attest::tdvf::PageAddOrder::SinglePass
        };
        let mrtd = measure::tdx_mrtd(tdvf, order)?;
        println!("tdx mrtd:       {}", hex::encode(mrtd));
        notes.push(format!(
            "MRTD computed from the TDVF metadata, page additions {page_add_order}"
        ));
    }
    if let Some(kernel) = &a.kernel {
        let kernel_setup = match a.kernel_setup.as_deref() {
            Some("qemu-patched") => {
                let memory = a.memory.as_deref().ok_or_else(|| {
                    anyhow!("--kernel-setup qemu-patched needs --memory (QEMU's -m)")
                })?;
                let memory = parse_qemu_memory(memory).ok_or_else(|| {
                    anyhow!("--memory {memory} is not a size (e.g. 4096, 4G, 512M)")
                })?;
                let acpi_data_size = match a.acpi_data_size.as_deref() {
                    None => rtmr::QEMU_ACPI_DATA_SIZE,
                    Some(n) => parse_u64(n)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| anyhow!("--acpi-data-size {n} is not a 32-bit number"))?,
                };
                notes.push(format!(
                    "RTMR1 for the kernel with QEMU's setup header patches, {memory:#x} bytes of RAM, ACPI data {acpi_data_size:#x}"
                ));
                rtmr::KernelSetup::QemuPatched {
                    memory,
                    acpi_data_size,
                }
            }
            _ => {
                if a.memory.is_some() {
                    return Err(anyhow!(
                        "--memory and --acpi-data-size only matter with --kernel-setup qemu-patched: measured as the file (QEMU 10.0 and later with this TDVF), the kernel does not depend on them"
                    ));
                }
                notes.push(
                    "RTMR1 for the kernel measured as the file (QEMU 10.0+, fw_cfg etc/boot/kernel)"
                        .into(),
                );
                rtmr::KernelSetup::AsFile
            }
        };
        let initrd_argument = if a.initrd_arg.as_deref() == Some("suffix") {
            notes.push("RTMR2 with ` initrd=initrd` after the command line".into());
            rtmr::InitrdArgument::Suffix
        } else {
            notes.push("RTMR2 with `initrd=initrd ` before the command line".into());
            rtmr::InitrdArgument::Prefix
        };
        let r = measure::tdx_direct_boot_rtmrs(&measure::TdxDirectBootInput {
            kernel: kernel.clone(),
            initrd: a.initrd.clone(),
            append: a.append.clone(),
            kernel_setup,
            initrd_argument,
        })?;
        println!("tdx rtmr1:      {}", hex::encode(r.rtmr1));
        println!("tdx rtmr2:      {}", hex::encode(r.rtmr2));
        if a.events {
            for (register, events) in [("rtmr1", &r.rtmr1_events), ("rtmr2", &r.rtmr2_events)] {
                for (i, e) in events.iter().enumerate() {
                    println!(
                        "  {register} event {i}: {}  {}",
                        hex::encode(e.digest),
                        e.what
                    );
                }
            }
        }
        notes.push("RTMR0 comes from a reference boot: `cleanroom measure tdx --quote`".into());
    } else {
        notes.push(
            "RTMR1-2: `cleanroom measure tdx --kernel`; RTMR0 comes from a reference boot: `cleanroom measure tdx --quote`"
                .into(),
        );
    }
    println!("({})", notes.join("; "));
    Ok(())
}

/// A size as QEMU's `-m` takes it: MiB without a suffix, or B, K, M, G, T (powers of 1024),
/// rounded up to 8 KiB as QEMU rounds the RAM size.
fn parse_qemu_memory(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    let bytes = digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)?;
    bytes.checked_next_multiple_of(8192).filter(|&b| b > 0)
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

    fn tdx_args(args: &[&str]) -> Result<TdxMeasureArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(
            ["cleanroom", "measure", "tdx"].iter().chain(args.iter()),
        )?;
        match cli.command {
            crate::cli::Command::Measure(MeasureArgs {
                command: MeasureCommand::Tdx(a),
            }) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The VMM's memory and ACPI sizes only enter RTMR1 through QEMU's header patches: asked
    /// for without them, or needed and missing, the command says so instead of printing a
    /// value computed without them.
    #[test]
    fn memory_is_refused_unless_the_kernel_is_measured_as_qemu_patches_it() {
        let err = measure_tdx(&tdx_args(&["--kernel", "k", "--memory", "8G"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "--memory and --acpi-data-size only matter with --kernel-setup qemu-patched"
            ),
            "{err}"
        );
        let err =
            measure_tdx(&tdx_args(&["--kernel", "k", "--kernel-setup", "qemu-patched"]).unwrap())
                .unwrap_err()
                .to_string();
        assert_eq!(
            err,
            "--kernel-setup qemu-patched needs --memory (QEMU's -m)"
        );
        let err = measure_tdx(
            &tdx_args(&[
                "--kernel",
                "k",
                "--kernel-setup",
                "qemu-patched",
                "--memory",
                "lots",
            ])
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "--memory lots is not a size (e.g. 4096, 4G, 512M)");
    }

    #[test]
    fn a_quote_and_files_are_not_mixed() {
        assert!(tdx_args(&["--quote", "q", "--kernel", "k"]).is_err());
        assert!(tdx_args(&["--quote", "q", "--tdvf", "f"]).is_err());
        assert!(
            tdx_args(&["--initrd", "i"]).is_err(),
            "--initrd needs --kernel"
        );
        assert!(
            tdx_args(&["--kernel", "k", "--acpi-data-size", "1"]).is_err(),
            "needs --memory"
        );
        assert!(tdx_args(&["--tdvf", "f", "--kernel", "k"]).is_ok());
        assert!(tdx_args(&[]).is_err());
    }

    #[test]
    fn memory_sizes_parse_as_qemu_m_takes_them() {
        assert_eq!(parse_qemu_memory("2048"), Some(2048 << 20));
        assert_eq!(parse_qemu_memory("8G"), Some(8 << 30));
        assert_eq!(parse_qemu_memory("512m"), Some(512 << 20));
        assert_eq!(parse_qemu_memory("100K"), Some(106_496)); // rounded up to 8 KiB
        assert_eq!(parse_qemu_memory("1.5G"), None);
        assert_eq!(parse_qemu_memory("0"), None);
        assert_eq!(parse_qemu_memory("8Q"), None);
    }

    #[test]
    fn guest_features_parse_as_hex_or_decimal() {
        assert_eq!(parse_u64("0x21"), Some(0x21));
        assert_eq!(parse_u64("33"), Some(33));
        assert_eq!(parse_u64("zz"), None);
    }
}
