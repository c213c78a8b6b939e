//! `cleanroom attest verify`: verify attestation evidence offline, as a member or auditor.
//!
//! Forms:
//! - `cleanroom attest verify BUNDLE.json --policy CONTRACT` (a run's evidence bundle,
//!   `ROOM/evidence/<run>.json`): verified against the contract's attestation policy, with
//!   HOST_DATA = the contract's digest and REPORT_DATA recomputed from the bundle's host key
//!   (the binding `{purpose, host_public_key, contract_digest}` the room makes), never taken
//!   from the bundle itself;
//! - `cleanroom attest verify --platform snp --report FILE [--vcek FILE | --chain FILE]`;
//! - `cleanroom attest verify --platform tdx --quote FILE --collateral FILE`;
//! - `cleanroom attest verify --platform azure-snp --hcl-report FILE --chain FILE`;
//! - `cleanroom attest verify --platform azure-tdx --hcl-report FILE --quote FILE --collateral FILE`;
//!
//! the raw forms each with `[--at RFC3339] [--policy CONTRACT]` and the optional bindings
//! `--report-data HEX`, `--host-data HEX`, `--measurement HEX` (repeatable). FILE may be raw
//! binary or hex text; certificates may be PEM, DER or hex of DER.
//!
//! Without `--policy`, the reference values are the ones given on the command line; a value
//! not given is taken from the evidence itself and printed as NOT CHECKED, so a member sees
//! exactly what was and was not compared. The chain, signatures, certificate and collateral
//! dates, debug, the VMPL/TCB-status defaults and the hardware-bound fields are always checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_attest::{
    Claims, EvidenceBundle, Expected, Platform, ReferenceValues, SnpReference, TdxReference,
};

/// `cleanroom attest ...`
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    #[command(subcommand)]
    pub command: AttestCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AttestCommand {
    /// Verify SEV-SNP, TDX or Azure evidence offline and print the verified claims.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A run's evidence bundle (JSON, ROOM/evidence/<run>.json); needs --policy.
    #[arg(
        value_name = "BUNDLE.json",
        conflicts_with_all = ["platform", "report_data", "host_data", "measurement", "tcb_status", "allow_simulated"],
        requires = "policy"
    )]
    pub bundle: Option<PathBuf>,

    /// Platform of the raw evidence: snp, tdx, azure-snp, azure-tdx.
    #[arg(long, value_parser = parse_platform, required_unless_present = "bundle")]
    pub platform: Option<Platform>,

    /// SEV-SNP report (1184 bytes; raw or hex).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// VCEK or VLEK certificate (PEM, DER or hex); AMD's ARK/ASK are built in for a VCEK.
    #[arg(long, value_name = "FILE", conflicts_with = "chain")]
    pub vcek: Option<PathBuf>,

    /// Certificates in one PEM file, any order (VCEK/VLEK, ASK/ASVK, ARK).
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,

    /// TDX quote (raw or hex).
    #[arg(long, value_name = "FILE")]
    pub quote: Option<PathBuf>,

    /// TDX collateral (JSON as produced by dcap-qvl / a PCCS client).
    #[arg(long, value_name = "FILE")]
    pub collateral: Option<PathBuf>,

    /// Azure vTPM HCL report (raw or hex), as read from NV index 0x01400001.
    #[arg(long = "hcl-report", value_name = "FILE")]
    pub hcl_report: Option<PathBuf>,

    /// Verification time (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,

    /// Take the reference values from this contract's [attestation] section (required
    /// with BUNDLE.json; HOST_DATA must then be its digest).
    #[arg(long, value_name = "CONTRACT")]
    pub policy: Option<PathBuf>,

    /// Expected REPORT_DATA (64 bytes hex; shorter values are zero-padded).
    #[arg(long, value_name = "HEX")]
    pub report_data: Option<String>,

    /// Expected contract digest in HOST_DATA / MRCONFIGID (32 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub host_data: Option<String>,

    /// Allowed measurement (SNP MEASUREMENT / TDX MRTD, 48 bytes hex); repeatable.
    #[arg(long, value_name = "HEX")]
    pub measurement: Vec<String>,

    /// Allowed TDX TCB status; repeatable. Default: UpToDate.
    #[arg(long = "tcb-status", value_name = "STATUS")]
    pub tcb_status: Vec<String>,

    /// Accept `sim` evidence (INSECURE: its root key is public).
    #[arg(long)]
    pub allow_simulated: bool,

    /// Print the verified claims as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    s.parse()
}

/// Run `cleanroom attest ...`.
pub fn run(args: &AttestArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        AttestCommand::Verify(v) => verify_command(v),
    }
}

pub(crate) fn load_policy_contract(path: &Path) -> anyhow::Result<cleanroom_policy::Contract> {
    let text = cleanroom_formats::fsutil::read_text(path)?;
    Ok(cleanroom_policy::Contract::parse(
        &text,
        &path.display().to_string(),
    )?)
}

/// The reference values a contract's `[attestation]` section lists.
fn reference_values_from_contract(path: &Path) -> anyhow::Result<ReferenceValues> {
    Ok(crate::reference::reference_values(&load_policy_contract(
        path,
    )?))
}

/// The digest of the contract at `path` (the expected HOST_DATA / MRCONFIGID).
fn contract_digest_from_contract(path: &Path) -> anyhow::Result<[u8; 32]> {
    Ok(load_policy_contract(path)?.digest().0)
}

/// Read a file that may hold raw bytes or hex text.
fn read_binary(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(decode_maybe_hex(bytes))
}

/// Decode `bytes` as hex text when they are hex text, else keep them (raw binary).
pub fn decode_maybe_hex(bytes: Vec<u8>) -> Vec<u8> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !compact.is_empty()
        && compact.len().is_multiple_of(2)
        && compact.iter().all(u8::is_ascii_hexdigit)
        && let Ok(decoded) = hex::decode(&compact)
    {
        return decoded;
    }
    bytes
}

/// Read certificates (PEM text, DER, or hex of DER) as PEM strings.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && text.contains("-----BEGIN CERTIFICATE-----")
    {
        return Ok(vec![text.to_string()]);
    }
    let der = decode_maybe_hex(bytes);
    Ok(vec![cleanroom_attest::collect::der_to_pem(&der)])
}

fn parse_hex_fixed<const N: usize>(what: &str, s: &str, pad: bool) -> anyhow::Result<[u8; N]> {
    let bytes =
        hex::decode(s.trim().trim_start_matches("0x")).map_err(|_| anyhow!("{what} is not hex"))?;
    if bytes.len() > N || (!pad && bytes.len() != N) {
        bail!("{what} has {} bytes, expected {N}", bytes.len());
    }
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

pub(crate) fn verification_time(at: Option<&str>) -> anyhow::Result<u64> {
    match at {
        Some(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("--at {s} is not an RFC 3339 time"))?;
            u64::try_from(t.timestamp()).map_err(|_| anyhow!("--at {s} is before 1970"))
        }
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| anyhow!("the system clock is before 1970"))?
            .as_secs()),
    }
}

fn need<'a>(flag: &str, v: &'a Option<PathBuf>, platform: Platform) -> anyhow::Result<&'a Path> {
    v.as_deref()
        .ok_or_else(|| anyhow!("--platform {platform} needs --{flag} FILE"))
}

/// Build the evidence bundle from the flags.
fn bundle_from_args(args: &VerifyArgs) -> anyhow::Result<EvidenceBundle> {
    if let Some(path) = &args.bundle {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_slice(&text)
            .with_context(|| format!("{} is not an evidence bundle", path.display()));
    }
    let platform = args
        .platform
        .ok_or_else(|| anyhow!("give BUNDLE.json or --platform"))?;
    let mut bundle = EvidenceBundle {
        platform,
        report: String::new(),
        cert_chain: Vec::new(),
        collateral: None,
        td_quote: None,
        host_public_key: None,
        contract_digest: None,
    };
    let read_collateral = |p: &Path| -> anyhow::Result<serde_json::Value> {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", p.display()))
    };
    match platform {
        Platform::Snp => {
            bundle.report = B64.encode(read_binary(need("report", &args.report, platform)?)?);
            match (&args.vcek, &args.chain) {
                (Some(p), None) | (None, Some(p)) => bundle.cert_chain = read_certificates(p)?,
                (None, None) => bail!("--platform snp needs --vcek FILE or --chain FILE"),
                (Some(_), Some(_)) => bail!("give --vcek or --chain, not both"),
            }
        }
        Platform::Tdx => {
            bundle.report = B64.encode(read_binary(need("quote", &args.quote, platform)?)?);
            bundle.collateral = Some(read_collateral(need(
                "collateral",
                &args.collateral,
                platform,
            )?)?);
        }
        Platform::AzureSnp => {
            bundle.report = B64.encode(read_binary(need(
                "hcl-report",
                &args.hcl_report,
                platform,
            )?)?);
            let chain = args.chain.as_ref().or(args.vcek.as_ref());
            bundle.cert_chain = read_certificates(
                chain.ok_or_else(|| anyhow!("--platform azure-snp needs --chain FILE"))?,
            )?;
        }
        Platform::AzureTdx => {
            bundle.report = B64.encode(read_binary(need(
                "hcl-report",
                &args.hcl_report,
                platform,
            )?)?);
            bundle.td_quote = Some(B64.encode(read_binary(need("quote", &args.quote, platform)?)?));
            bundle.collateral = match &args.collateral {
                Some(p) => Some(read_collateral(p)?),
                None => None,
            };
        }
        Platform::Sim => {
            bail!("verify sim evidence from its bundle: cleanroom attest verify BUNDLE.json")
        }
    }
    Ok(bundle)
}

/// A run's bundle: verified against the contract with the host-identity binding
/// recomputed from the bundle's own host key.
fn verify_run_bundle(path: &Path, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let bundle = bundle_from_args(args)?;
    let at = verification_time(args.at.as_deref())?;
    let policy = args
        .policy
        .as_deref()
        .ok_or_else(|| anyhow!("BUNDLE.json needs --policy CONTRACT"))?;
    let contract = load_policy_contract(policy)?;
    let host = crate::evidence::verify_host_evidence(&bundle, &contract, at).map_err(|source| {
        crate::VerifyError::Evidence {
            path: path.display().to_string(),
            source,
        }
    })?;
    print_claims(&host.claims, at, &[], args.json)?;
    if !args.json {
        println!(
            "  host key:     {} (bound in REPORT_DATA with contract {})",
            host.host_key_hex,
            contract.digest().hex()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_command(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.bundle {
        return verify_run_bundle(path, args);
    }
    let bundle = bundle_from_args(args)?;
    let at = verification_time(args.at.as_deref())?;
    let seen =
        cleanroom_attest::inspect_unverified(&bundle).map_err(crate::VerifyError::Attestation)?;
    let mut not_checked: Vec<&str> = Vec::new();

    let refs = match &args.policy {
        Some(contract) => reference_values_from_contract(contract)?,
        None => {
            let measurements = if args.measurement.is_empty() {
                not_checked.push("measurement (no --measurement or --policy given)");
                vec![seen.measurement]
            } else {
                args.measurement
                    .iter()
                    .map(|m| parse_hex_fixed::<48>("--measurement", m, false))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let statuses = if args.tcb_status.is_empty() {
                vec!["UpToDate".to_string()]
            } else {
                args.tcb_status.clone()
            };
            if seen.vmpl.is_some_and(|v| v != 0) {
                not_checked.push("VMPL (accepted as reported; give --policy to require one)");
            }
            ReferenceValues {
                allowed_platforms: vec![bundle.platform],
                allow_simulated: args.allow_simulated,
                sim: cleanroom_attest::SimReference {
                    measurements: measurements.clone(),
                },
                snp: SnpReference {
                    measurements: measurements.clone(),
                    vmpl: seen.vmpl,
                    ..SnpReference::default()
                },
                tdx: TdxReference {
                    mrtds: measurements,
                    allowed_tcb_statuses: statuses,
                    ..TdxReference::default()
                },
            }
        }
    };

    let report_data = match &args.report_data {
        Some(h) => parse_hex_fixed::<64>("--report-data", h, true)?,
        None => {
            not_checked.push("REPORT_DATA (no --report-data given)");
            seen.report_data
        }
    };
    let host_data = if let Some(h) = &args.host_data {
        parse_hex_fixed::<32>("--host-data", h, false)?
    } else if let Some(contract) = &args.policy {
        contract_digest_from_contract(contract)?
    } else {
        not_checked.push("HOST_DATA / MRCONFIGID (no --host-data or --policy)");
        let mut hd = [0u8; 32];
        let n = seen.host_data.len().min(32);
        hd[..n].copy_from_slice(&seen.host_data[..n]);
        hd
    };

    let verified = cleanroom_attest::verify(
        &bundle,
        &refs,
        &Expected {
            report_data,
            host_data,
        },
        at,
    )
    .map_err(crate::VerifyError::Attestation)?;
    print_claims(verified.claims(), at, &not_checked, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_claims(c: &Claims, at: u64, not_checked: &[&str], json: bool) -> anyhow::Result<()> {
    if json {
        let mut value = serde_json::to_value(c)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("verified_at".into(), serde_json::json!(at));
            obj.insert("not_checked".into(), serde_json::json!(not_checked));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let host_label = match c.platform {
        Platform::Tdx | Platform::AzureTdx => "mrconfigid",
        _ => "host_data",
    };
    let at_text = chrono::DateTime::from_timestamp(i64::try_from(at).unwrap_or(i64::MAX), 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| at.to_string());
    println!("VERIFIED {} evidence at {at_text}", c.platform);
    if c.insecure {
        println!("WARNING: simulated evidence (INSECURE): it proves nothing about hardware");
    }
    println!("  platform:     {}", c.platform);
    println!("  measurement:  {}", c.measurement);
    println!("  tcb:          {}", c.tcb);
    println!("  report_data:  {}", c.report_data);
    println!("  {:<13} {}", format!("{host_label}:"), c.host_data);
    println!("  debug:        {}", c.debug);
    for (k, val) in &c.details {
        if k == "runtime_data" {
            continue;
        }
        println!("  {:<13} {val}", format!("{k}:"));
    }
    for item in not_checked {
        println!("NOT CHECKED: {item}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_files_are_decoded_and_binary_files_kept() {
        assert_eq!(
            decode_maybe_hex(b"0a0B\n ff\n".to_vec()),
            vec![0x0a, 0x0b, 0xff]
        );
        assert_eq!(
            decode_maybe_hex(vec![0x30, 0x82, 0x01]),
            vec![0x30, 0x82, 0x01]
        );
    }

    #[test]
    fn policy_flag_names_a_missing_contract() {
        let err = reference_values_from_contract(Path::new("/nonexistent/contract.toml"))
            .expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/contract.toml"),
            "{err}"
        );
    }
}
