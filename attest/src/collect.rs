//! Evidence collection inside a confidential VM, with platform auto-detection.
//!
//! Sources, tried in this order:
//! 1. configfs-tsm (`/sys/kernel/config/tsm/report`, Linux 6.7+): SEV-SNP or TDX, whichever
//!    provider the kernel has. The report entry is created, REPORT_DATA written to `inblob`,
//!    the report (SNP) or quote (TDX) read from `outblob`, and the SNP certificate table (if
//!    the host supplies one) from `auxblob`.
//! 2. `/dev/sev-guest` through the `sev` crate (extended report with certificates).
//! 3. `/dev/tdx_guest`: its ioctl needs `unsafe`, which this crate forbids: a clear
//!    [`AttestError::CollectionNotSupported`] says to use configfs-tsm instead.
//! 4. The Azure vTPM (`/dev/tpmrm0`): REPORT_DATA is written as the 64-byte user-data to NV
//!    index 0x01400002, and the HCL report read from NV index 0x01400001 (TPM 2.0 commands
//!    over the resource-manager device; no TPM library needed).
//!
//! A machine with none of them gets [`AttestError::NoAttestationDevice`] naming every path
//! tried. Certificates (VCEK/VLEK, ASK, ARK) or TDX collateral that the platform does not hand
//! out can be supplied from a local cache directory ([`Collector::cache_dir`]): files
//! `vcek.der`/`vcek.pem`/`vlek.der`/`vlek.pem`/`chain.pem` (SNP) and `collateral.json` (TDX).
//! Nothing here touches the network.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::{AttestError, EvidenceBundle, Platform};

const TSM_REPORT: &str = "sys/kernel/config/tsm/report";
const SEV_GUEST: &str = "dev/sev-guest";
const TDX_GUEST: &str = "dev/tdx_guest";
const TPM_RM: &str = "dev/tpmrm0";

/// NV index holding the Azure HCL report.
pub const AZURE_HCL_REPORT_NV_INDEX: u32 = 0x0140_0001;
/// NV index the guest writes its 64-byte user-data to.
pub const AZURE_USER_DATA_NV_INDEX: u32 = 0x0140_0002;

/// Where evidence comes from on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// configfs-tsm with the given provider (`sev_guest` or `tdx_guest`).
    ConfigfsTsm {
        provider: String,
    },
    SevGuest,
    TdxGuest,
    AzureVtpm,
}

impl Source {
    /// The platform whose evidence this source yields.
    pub fn platform(&self) -> crate::Platform {
        match self {
            Source::ConfigfsTsm { provider } if provider.starts_with("tdx") => crate::Platform::Tdx,
            Source::ConfigfsTsm { .. } | Source::SevGuest => crate::Platform::Snp,
            Source::TdxGuest => crate::Platform::Tdx,
            Source::AzureVtpm => crate::Platform::AzureSnp,
        }
    }
}

/// Collects evidence. [`Collector::system`] looks at the real machine; tests point
/// [`Collector::with_root`] at a directory tree standing in for `/`.
#[derive(Debug, Clone)]
pub struct Collector {
    root: PathBuf,
    cache_dir: Option<PathBuf>,
}

fn failed(source: &Path, what: impl std::fmt::Display) -> AttestError {
    AttestError::CollectionFailed {
        source_path: source.display().to_string(),
        what: what.to_string(),
    }
}

impl Collector {
    /// The running machine.
    pub fn system() -> Self {
        Self::with_root("/")
    }

    /// A machine whose filesystem root is `root` (for tests).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cache_dir: None,
        }
    }

    /// A local directory with certificates / collateral the platform does not hand out.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Which source this machine has, or [`AttestError::NoAttestationDevice`].
    pub fn detect(&self) -> Result<Source, AttestError> {
        let tsm = self.path(TSM_REPORT);
        if tsm.is_dir() {
            // The provider is only visible inside a report entry; create one to look.
            let entry = TsmEntry::create(&tsm)?;
            let provider = entry.read_text("provider")?;
            return Ok(Source::ConfigfsTsm { provider });
        }
        if self.path(SEV_GUEST).exists() {
            return Ok(Source::SevGuest);
        }
        if self.path(TDX_GUEST).exists() {
            return Ok(Source::TdxGuest);
        }
        if self.path(TPM_RM).exists() {
            return Ok(Source::AzureVtpm);
        }
        Err(AttestError::NoAttestationDevice {
            tried: [TSM_REPORT, SEV_GUEST, TDX_GUEST, TPM_RM]
                .iter()
                .map(|p| self.path(p).display().to_string())
                .collect(),
        })
    }

    /// Collect evidence binding `report_data`. The host then fills in its public key and the
    /// contract digest.
    pub fn collect(&self, report_data: [u8; 64]) -> Result<EvidenceBundle, AttestError> {
        match self.detect()? {
            Source::ConfigfsTsm { provider } => self.collect_tsm(&provider, report_data),
            Source::SevGuest => self.collect_sev_guest(report_data),
            Source::TdxGuest => Err(AttestError::CollectionNotSupported {
                source_path: self.path(TDX_GUEST).display().to_string(),
                what: "the TDX_CMD_GET_REPORT0 ioctl needs unsafe code, which cleanroom-attest \
                       forbids; use a kernel with configfs-tsm (Linux 6.7+), which this build \
                       supports"
                    .into(),
            }),
            Source::AzureVtpm => {
                let device = self.path(TPM_RM);
                let mut tpm = DeviceTpm { path: device };
                self.collect_azure(&mut tpm, report_data)
            }
        }
    }

    fn collect_tsm(
        &self,
        provider: &str,
        report_data: [u8; 64],
    ) -> Result<EvidenceBundle, AttestError> {
        let tsm = self.path(TSM_REPORT);
        let entry = TsmEntry::create(&tsm)?;
        let generation_before = entry.read_text("generation").ok();
        entry.write("inblob", &report_data)?;
        let out = entry.read("outblob")?;
        let generation_after = entry.read_text("generation").ok();
        if let (Some(a), Some(b)) = (&generation_before, &generation_after) {
            // Each write bumps the generation once; more means another writer raced us.
            let (a, b) = (a.parse::<u64>().unwrap_or(0), b.parse::<u64>().unwrap_or(0));
            if b != a + 1 {
                return Err(failed(
                    &entry.dir,
                    "the report entry was written concurrently",
                ));
            }
        }
        match provider {
            "sev_guest" | "sev-guest" => {
                let mut chain = Vec::new();
                if let Ok(aux) = entry.read("auxblob")
                    && !aux.is_empty()
                {
                    chain = cert_table_to_pem(aux)?;
                }
                if chain.is_empty() {
                    chain = self.cached_snp_chain()?;
                }
                Ok(bundle(Platform::Snp, &out, chain, None))
            }
            "tdx_guest" | "tdx-guest" => {
                let collateral = self.cached_collateral()?;
                Ok(bundle(Platform::Tdx, &out, Vec::new(), collateral))
            }
            other => Err(failed(
                &entry.dir,
                format!("unknown configfs-tsm provider `{other}`"),
            )),
        }
    }

    fn collect_sev_guest(&self, report_data: [u8; 64]) -> Result<EvidenceBundle, AttestError> {
        let device = self.path(SEV_GUEST);
        if self.root != Path::new("/") {
            return Err(failed(
                &device,
                "the sev-guest ioctl is only issued on the real /dev/sev-guest",
            ));
        }
        let mut fw = sev::firmware::guest::Firmware::open().map_err(|e| failed(&device, e))?;
        let (report, certs) = fw
            .get_ext_report(None, Some(report_data), None)
            .map_err(|e| failed(&device, e))?;
        let mut chain = Vec::new();
        for entry in certs.unwrap_or_default() {
            use sev::firmware::host::CertType;
            if matches!(
                entry.cert_type,
                CertType::ARK | CertType::ASK | CertType::VCEK | CertType::VLEK
            ) {
                chain.push(der_to_pem(entry.data()));
            }
        }
        if chain.is_empty() {
            chain = self.cached_snp_chain()?;
        }
        Ok(bundle(Platform::Snp, &report, chain, None))
    }

    /// Collect an Azure HCL report through a TPM.
    pub fn collect_azure(
        &self,
        tpm: &mut dyn TpmTransport,
        report_data: [u8; 64],
    ) -> Result<EvidenceBundle, AttestError> {
        let device = self.path(TPM_RM);
        let err = |e: String| failed(&device, e);
        azure_write_user_data(tpm, &report_data).map_err(err)?;
        let hcl = nv_read_all(tpm, AZURE_HCL_REPORT_NV_INDEX).map_err(|e| {
            failed(
                &device,
                format!(
                    "reading the HCL report (NV index 0x{AZURE_HCL_REPORT_NV_INDEX:08x}) failed: \
                     {e}; a TPM without that index is not an Azure confidential VM"
                ),
            )
        })?;
        let parsed = crate::azure::parse_hcl_report(&hcl)?;
        match parsed.report_type {
            crate::azure::HclReportType::Snp => {
                let chain = self.cached_snp_chain()?;
                Ok(bundle(Platform::AzureSnp, &hcl, chain, None))
            }
            crate::azure::HclReportType::Tdx => Err(AttestError::CollectionNotSupported {
                source_path: device.display().to_string(),
                what: "an azure-tdx TD quote is produced by the Azure instance metadata \
                       service from the TDREPORT; this build does not call it"
                    .into(),
            }),
        }
    }

    fn cached_snp_chain(&self) -> Result<Vec<String>, AttestError> {
        let Some(dir) = &self.cache_dir else {
            return Ok(Vec::new());
        };
        let mut chain = Vec::new();
        for name in [
            "vcek.der",
            "vcek.pem",
            "vlek.der",
            "vlek.pem",
            "ask.pem",
            "ark.pem",
            "chain.pem",
        ] {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| failed(&path, e))?;
            if name.ends_with(".der") {
                chain.push(der_to_pem(&bytes));
            } else {
                chain.push(String::from_utf8(bytes).map_err(|_| failed(&path, "not PEM text"))?);
            }
        }
        Ok(chain)
    }

    fn cached_collateral(&self) -> Result<Option<serde_json::Value>, AttestError> {
        let Some(dir) = &self.cache_dir else {
            return Ok(None);
        };
        let path = dir.join("collateral.json");
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&path).map_err(|e| failed(&path, e))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| failed(&path, format!("not JSON: {e}")))
    }
}

fn bundle(
    platform: Platform,
    report: &[u8],
    cert_chain: Vec<String>,
    collateral: Option<serde_json::Value>,
) -> EvidenceBundle {
    EvidenceBundle {
        platform,
        report: B64.encode(report),
        cert_chain,
        collateral,
        td_quote: None,
        host_public_key: None,
        contract_digest: None,
    }
}

/// PEM-encode a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn cert_table_to_pem(mut table: Vec<u8>) -> Result<Vec<String>, AttestError> {
    use sev::firmware::host::{CertTableEntry, CertType};
    let entries = CertTableEntry::vec_bytes_to_cert_table(&mut table).map_err(|e| {
        AttestError::Malformed {
            what: format!("SNP certificate table: {e}"),
        }
    })?;
    Ok(entries
        .into_iter()
        .filter(|e| {
            matches!(
                e.cert_type,
                CertType::ARK | CertType::ASK | CertType::VCEK | CertType::VLEK
            )
        })
        .map(|e| der_to_pem(e.data()))
        .collect())
}

/// A configfs-tsm report entry, removed on drop.
struct TsmEntry {
    dir: PathBuf,
}

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TsmEntry {
    fn create(tsm: &Path) -> Result<Self, AttestError> {
        let n = ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tsm.join(format!("cleanroom-{}-{n}", std::process::id()));
        fs::create_dir(&dir)
            .map_err(|e| failed(&dir, format!("creating the report entry: {e}")))?;
        Ok(Self { dir })
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, AttestError> {
        let path = self.dir.join(name);
        fs::read(&path).map_err(|e| failed(&path, e))
    }

    fn read_text(&self, name: &str) -> Result<String, AttestError> {
        let bytes = self.read(name)?;
        Ok(String::from_utf8_lossy(&bytes).trim().to_string())
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), AttestError> {
        let path = self.dir.join(name);
        fs::write(&path, data).map_err(|e| failed(&path, e))
    }
}

impl Drop for TsmEntry {
    fn drop(&mut self) {
        // configfs entries are removed with rmdir; a plain directory (tests) may hold files.
        if fs::remove_dir(&self.dir).is_err() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ------------------------------------------------------------------- TPM 2.0 (Azure vTPM)

/// Sends one TPM 2.0 command and returns the response.
pub trait TpmTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, String>;
}

/// The kernel's TPM resource manager device.
struct DeviceTpm {
    path: PathBuf,
}

impl TpmTransport for DeviceTpm {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, String> {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| e.to_string())?;
        f.write_all(command).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok(buf)
    }
}

const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
const TPM_CC_NV_READ: u32 = 0x0000_014e;
const TPM_CC_NV_WRITE: u32 = 0x0000_0137;
const TPM_CC_NV_DEFINE_SPACE: u32 = 0x0000_012a;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_RH_OWNER: u32 = 0x4000_0001;
const TPM_ALG_SHA256: u16 = 0x000b;
/// TPMA_NV: OWNERWRITE | AUTHWRITE | OWNERREAD | AUTHREAD.
const USER_DATA_NV_ATTRIBUTES: u32 = 0x0006_0006;
const NV_CHUNK: u16 = 1024;

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + body.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&cc.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An empty password authorization session.
fn password_session() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&9u32.to_be_bytes());
    s.extend_from_slice(&TPM_RS_PW.to_be_bytes());
    s.extend_from_slice(&0u16.to_be_bytes()); // nonce
    s.push(0); // attributes
    s.extend_from_slice(&0u16.to_be_bytes()); // hmac
    s
}

/// Send a command; return the response body after the 10-byte header, or the TPM error.
fn run(tpm: &mut dyn TpmTransport, cmd: &[u8]) -> Result<Vec<u8>, String> {
    let resp = tpm.transact(cmd)?;
    if resp.len() < 10 {
        return Err(format!("TPM response of {} bytes", resp.len()));
    }
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if rc != 0 {
        return Err(format!("TPM response code 0x{rc:03x}"));
    }
    Ok(resp[10..].to_vec())
}

fn be_u16(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or_else(|| "truncated TPM response".to_string())
}

/// The data size of an NV index (TPM2_NV_ReadPublic).
pub fn nv_size(tpm: &mut dyn TpmTransport, index: u32) -> Result<u16, String> {
    let body = run(
        tpm,
        &command(
            TPM_ST_NO_SESSIONS,
            TPM_CC_NV_READ_PUBLIC,
            &index.to_be_bytes(),
        ),
    )?;
    // TPM2B_NV_PUBLIC: size u16, nvIndex u32, nameAlg u16, attributes u32, authPolicy TPM2B,
    // dataSize u16.
    let policy_len = be_u16(&body, 2 + 4 + 2 + 4)? as usize;
    be_u16(&body, 2 + 4 + 2 + 4 + 2 + policy_len)
}

/// Read a whole NV index (TPM2_NV_Read in chunks, empty password).
pub fn nv_read_all(tpm: &mut dyn TpmTransport, index: u32) -> Result<Vec<u8>, String> {
    let size = nv_size(tpm, index)?;
    let mut out = Vec::with_capacity(size as usize);
    let mut offset: u16 = 0;
    while offset < size {
        let len = (size - offset).min(NV_CHUNK);
        let mut body = Vec::new();
        body.extend_from_slice(&index.to_be_bytes()); // authHandle
        body.extend_from_slice(&index.to_be_bytes()); // nvIndex
        body.extend_from_slice(&password_session());
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
        let resp = run(tpm, &command(TPM_ST_SESSIONS, TPM_CC_NV_READ, &body))?;
        // parameterSize u32, then TPM2B_MAX_NV_BUFFER.
        let n = be_u16(&resp, 4)? as usize;
        let data = resp
            .get(6..6 + n)
            .ok_or_else(|| "truncated NV_Read response".to_string())?;
        if n == 0 {
            return Err("NV_Read returned no data".into());
        }
        out.extend_from_slice(data);
        offset = offset.saturating_add(n as u16);
    }
    Ok(out)
}

/// Write the 64-byte user-data to NV index 0x01400002 (defining it first if needed), which
/// makes the paravisor refresh the HCL report with it.
fn azure_write_user_data(tpm: &mut dyn TpmTransport, data: &[u8; 64]) -> Result<(), String> {
    if nv_size(tpm, AZURE_USER_DATA_NV_INDEX).is_err() {
        let mut public = Vec::new();
        public.extend_from_slice(&AZURE_USER_DATA_NV_INDEX.to_be_bytes());
        public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        public.extend_from_slice(&USER_DATA_NV_ATTRIBUTES.to_be_bytes());
        public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
        public.extend_from_slice(&64u16.to_be_bytes()); // dataSize
        let mut body = Vec::new();
        body.extend_from_slice(&TPM_RH_OWNER.to_be_bytes());
        body.extend_from_slice(&password_session());
        body.extend_from_slice(&0u16.to_be_bytes()); // auth
        body.extend_from_slice(&(public.len() as u16).to_be_bytes());
        body.extend_from_slice(&public);
        run(
            tpm,
            &command(TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE, &body),
        )
        .map_err(|e| format!("defining NV index 0x{AZURE_USER_DATA_NV_INDEX:08x}: {e}"))?;
    }
    let mut body = Vec::new();
    body.extend_from_slice(&AZURE_USER_DATA_NV_INDEX.to_be_bytes());
    body.extend_from_slice(&AZURE_USER_DATA_NV_INDEX.to_be_bytes());
    body.extend_from_slice(&password_session());
    body.extend_from_slice(&64u16.to_be_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(&0u16.to_be_bytes()); // offset
    run(tpm, &command(TPM_ST_SESSIONS, TPM_CC_NV_WRITE, &body))
        .map(|_| ())
        .map_err(|e| format!("writing user-data to NV index 0x{AZURE_USER_DATA_NV_INDEX:08x}: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A TPM that serves NV indices from memory, speaking the commands above.
    struct FakeTpm {
        nv: HashMap<u32, Vec<u8>>,
        commands: Vec<u32>,
    }

    fn response(rc: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
        out.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
        out.extend_from_slice(&rc.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    impl TpmTransport for FakeTpm {
        fn transact(&mut self, cmd: &[u8]) -> Result<Vec<u8>, String> {
            let cc = u32::from_be_bytes(cmd[6..10].try_into().unwrap());
            self.commands.push(cc);
            let u32_at = |o: usize| u32::from_be_bytes(cmd[o..o + 4].try_into().unwrap());
            let u16_at = |o: usize| u16::from_be_bytes(cmd[o..o + 2].try_into().unwrap());
            match cc {
                TPM_CC_NV_READ_PUBLIC => {
                    let index = u32_at(10);
                    let Some(data) = self.nv.get(&index) else {
                        return Ok(response(0x18b, &[])); // TPM_RC_HANDLE
                    };
                    let mut public = Vec::new();
                    public.extend_from_slice(&index.to_be_bytes());
                    public.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
                    public.extend_from_slice(&0u32.to_be_bytes());
                    public.extend_from_slice(&0u16.to_be_bytes());
                    public.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    let mut body = (public.len() as u16).to_be_bytes().to_vec();
                    body.extend_from_slice(&public);
                    Ok(response(0, &body))
                }
                TPM_CC_NV_READ => {
                    let index = u32_at(14);
                    let len = u16_at(31) as usize;
                    let off = u16_at(33) as usize;
                    let data = &self.nv[&index][off..off + len];
                    let mut body = ((2 + len) as u32).to_be_bytes().to_vec();
                    body.extend_from_slice(&(len as u16).to_be_bytes());
                    body.extend_from_slice(data);
                    Ok(response(0, &body))
                }
                TPM_CC_NV_DEFINE_SPACE => {
                    self.nv.insert(AZURE_USER_DATA_NV_INDEX, vec![0; 64]);
                    Ok(response(0, &[]))
                }
                TPM_CC_NV_WRITE => {
                    let index = u32_at(14);
                    let len = u16_at(31) as usize;
                    self.nv.insert(index, cmd[33..33 + len].to_vec());
                    Ok(response(0, &[]))
                }
                _ => Ok(response(0x143, &[])),
            }
        }
    }

    #[test]
    fn collects_azure_hcl_report_through_the_vtpm_nv_indices() {
        let hcl = include_bytes!("../tests/data/snp-azure-hcl/hcl-report.bin").to_vec();
        let mut tpm = FakeTpm {
            nv: HashMap::from([(AZURE_HCL_REPORT_NV_INDEX, hcl.clone())]),
            commands: Vec::new(),
        };
        let ev = Collector::with_root("/nonexistent")
            .collect_azure(&mut tpm, [7; 64])
            .expect("collects");
        assert_eq!(ev.platform, Platform::AzureSnp);
        assert_eq!(B64.decode(&ev.report).unwrap(), hcl);
        assert_eq!(tpm.nv[&AZURE_USER_DATA_NV_INDEX], vec![7; 64]);
        assert!(tpm.commands.contains(&TPM_CC_NV_DEFINE_SPACE));
    }

    #[test]
    fn a_tpm_without_the_hcl_index_is_not_an_azure_cvm() {
        let mut tpm = FakeTpm {
            nv: HashMap::new(),
            commands: Vec::new(),
        };
        let err = Collector::with_root("/nonexistent")
            .collect_azure(&mut tpm, [7; 64])
            .unwrap_err();
        match err {
            AttestError::CollectionFailed { what, .. } => {
                assert!(what.contains("not an Azure confidential VM"), "{what}")
            }
            other => panic!("{other:?}"),
        }
    }
}
