//! The contract: who the members are, which datasets exist and who owns them, what the
//! room may run on (attestation policy), who may receive outputs, and the guards.
//!
//! Parsing is strict: unknown fields are errors, and every cross-reference is checked, with
//! the error naming the field and its line in `contract.toml`. The digest is SHA-256 over
//! the RFC 8785 canonical JSON of the parsed contract, so comments, whitespace, key order
//! and the spelling of defaults do not change it.

use std::collections::HashSet;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::PolicyError;
pub use crate::field_type::{FieldType, TimeUnit};
use crate::message::{self, MessageType, SignedMessage};

/// Platforms a contract may allow, as spelled in `[attestation] platforms`.
pub const KNOWN_PLATFORMS: &[&str] = &["snp", "tdx", "azure-snp", "azure-tdx", "sim"];

/// The value of `[attestation.tdx] rtmrN` that leaves that register unchecked on purpose.
/// Allowed, but [`Contract::attestation_warnings`] reports it for RTMR0-2.
pub const RTMR_ANY: &str = "any";

/// Longest dataset name, in bytes.
pub const DATASET_NAME_MAX_LEN: usize = 64;

/// What [`is_valid_dataset_name`] accepts, as said in errors.
pub const DATASET_NAME_RULE: &str = "lowercase ASCII letters and digits in words joined by a single `_` or `-`, starting with a letter, at most 64 bytes (e.g. `impressions`, `conversion-model`)";

/// The parsed contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// A name for the collaboration, e.g. `adtech-measurement-2026`.
    pub id: String,
    pub version: u32,
    pub members: Vec<Member>,
    #[serde(default)]
    pub datasets: Vec<Dataset>,
    pub attestation: Attestation,
    #[serde(default)]
    pub governance: Governance,
    #[serde(default)]
    pub outputs: Outputs,
    #[serde(default)]
    pub guards: ContractGuards,
    /// Limits on module runs; absent fields take the sandbox defaults.
    #[serde(default)]
    pub sandbox: SandboxLimits,
}

/// Per-run limits on Wasm modules (absent: the host's safe defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimits {
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    #[serde(default)]
    pub output_bytes: Option<u64>,
    #[serde(default)]
    pub log_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: Spanned<String>,
    /// ECDSA P-384 public key, SPKI PEM.
    pub signing_key: Spanned<String>,
    /// X25519 public key for sealed outputs, base64 (32 bytes).
    pub encryption_key: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Csv,
    Json,
    Parquet,
    /// Any file (e.g. a model), sealed-stream format; given to modules as an artifact,
    /// never registered as a SQL view.
    File,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaField {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub ty: FieldType,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// Base URL of the owner's key broker, e.g. `https://kbs.owner.example:8443`. Plain
    /// `http://` only for `127.0.0.1`, and only with `allow_simulated = true`.
    pub broker: Spanned<String>,
    /// SHA-256 (hex) of the broker's TLS certificate SubjectPublicKeyInfo, which `kbs init`
    /// prints: rooms and members talk only to the holder of that key. Required for https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_spki_sha256: Option<Spanned<String>>,
    /// KBS resource path `<repo>/<type>/<tag>`.
    pub resource: Spanned<String>,
    /// For a Parquet file written with Parquet Modular Encryption's key tools (PyArrow's or
    /// Spark's `CryptoFactory`: internal key material, single wrapping, data keys wrapped by
    /// parquet-mr's local wrapping `LKW1`): the id of the master key the broker holds. The
    /// room unwraps the footer's and each column's data key with it; columns under other
    /// master keys stay unreadable. Absent: a file sealed by `cleanroom dataset seal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_id: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: Spanned<String>,
    pub owner: Spanned<String>,
    pub format: DataFormat,
    #[serde(default)]
    pub schema: Vec<SchemaField>,
    /// The only fields the room may ever read; all others are never registered.
    #[serde(default)]
    pub allowed_fields: Vec<Spanned<String>>,
    /// Path of the sealed file, relative to the run's data directory.
    pub location: Spanned<String>,
    pub key: KeyRef,
    /// A run refuses to start when this dataset has fewer rows.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// Members the owner lets receive per-row results derived from this dataset (one row
    /// out per row in, e.g. a score per customer), from inference workloads with
    /// `output.row_level = true`. Default: none, so only guarded aggregates leave.
    #[serde(default)]
    pub row_recipients: Vec<Spanned<String>>,
    /// The column naming a privacy unit (a person, a device): the group-size guard counts
    /// distinct values of it in each output group, whatever the query says. An allowed field,
    /// never a dimension or a metric. Absent: the guard counts input rows (`contract verify`
    /// warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_unit: Option<Spanned<String>>,
    /// What SQL may do with each allowed field (see [`ColumnRoles`]). Absent: every allowed
    /// field may be released, aggregated, joined on and filtered on (`contract verify` warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnRoles>,
    /// Differential privacy: the dataset's ε budget and contribution bounds (requires
    /// `privacy_unit`). Absent: no workload may ask for a DP release from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<crate::dp::DatasetDp>,
    /// A SQL query may read this dataset only inner-joined with data of the querier (a
    /// dataset owned by one of the workload's output recipients), unless the querier is its
    /// owner: its rows never leave on their own, only as overlap with the querier's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join_required: bool,
}

/// The roles of a dataset's allowed fields in SQL (`[datasets.columns]`). The query rules
/// judge what reaches a released output by these roles (`crate::query_rules`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRoles {
    /// May be grouped by, filtered on and released as is (e.g. a campaign, a site).
    #[serde(default)]
    pub dimensions: Vec<Spanned<String>>,
    /// May reach an output only inside COUNT, SUM or AVG (e.g. an order value).
    #[serde(default)]
    pub metrics: Vec<Spanned<String>>,
    /// Metrics whose single values may be released by MIN and MAX (each returns one row's
    /// value: list only columns whose individual values are not sensitive).
    #[serde(default)]
    pub min_max: Vec<Spanned<String>>,
    /// May be used only as equi-join keys and in intermediate grouping that does not reach
    /// the output (e.g. a hashed user id); never released.
    #[serde(default)]
    pub join_keys: Vec<Spanned<String>>,
    /// May be used in WHERE and HAVING conditions besides the dimensions (e.g. a timestamp).
    #[serde(default)]
    pub filters: Vec<Spanned<String>>,
}

fn default_min_rows() -> u64 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    pub platforms: Vec<Spanned<String>>,
    /// Accept the INSECURE software platform `sim`. Never set this for real data.
    #[serde(default)]
    pub allow_simulated: bool,
    #[serde(default)]
    pub sim: Option<SimPolicy>,
    #[serde(default)]
    pub snp: Option<SnpPolicy>,
    #[serde(default)]
    pub tdx: Option<TdxPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPolicy {
    /// Allowed SHA-384 measurements of the host binary (hex), as `cleanroom measure sim` prints.
    pub measurements: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

/// A minimum SEV-SNP firmware ABI version, compared with the ABI_MAJOR.ABI_MINOR the guest
/// policy requires (the firmware refuses to launch a guest whose policy asks for more than
/// it implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpAbiVersion {
    pub major: u8,
    pub minor: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpPolicy {
    /// Allowed launch measurements (hex, 48 bytes), as `cleanroom measure snp` prints.
    pub measurements: Vec<Spanned<String>>,
    /// Minimum REPORTED_TCB. Required: a contract without one is refused at parse
    /// ([`PolicyError::SnpMinTcbMissing`]), since it would accept an all-zero TCB. It stays
    /// an `Option` so code reading it keeps compiling; after [`Contract::parse`] it is `Some`.
    #[serde(default)]
    pub min_tcb: Option<SnpTcb>,
    #[serde(default)]
    pub allow_debug: bool,
    #[serde(default)]
    pub vmpl: Option<u32>,
    /// Accept a guest policy with MIGRATE_MA set (a migration agent may be associated with
    /// the guest). Default false. Left out of the digest when false, so contracts that do not
    /// name it keep their digest.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_migration_agent: bool,
    /// Minimum ABI version the guest policy must require, e.g.
    /// `min_abi = { major = 1, minor = 55 }`. Absent: not checked (and not in the digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_abi: Option<SnpAbiVersion>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// TDX attestation policy. RTMR0, RTMR1 and RTMR2 (firmware configuration; kernel, initrd and
/// command line; the host binary, as the image's boot chain extends them) are required: each
/// is 96 hex characters (48 bytes) taken from a trusted reference boot, or [`RTMR_ANY`] to
/// leave it unchecked on purpose, which [`Contract::attestation_warnings`] reports. RTMR3 is
/// optional (absent or `"any"`: unchecked).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Allowed MRTD values (hex, 48 bytes).
    pub mrtd: Vec<Spanned<String>>,
    #[serde(default)]
    pub rtmr0: Option<String>,
    #[serde(default)]
    pub rtmr1: Option<String>,
    #[serde(default)]
    pub rtmr2: Option<String>,
    #[serde(default)]
    pub rtmr3: Option<String>,
    #[serde(default = "default_tdx_tcb")]
    pub allowed_tcb_statuses: Vec<String>,
    #[serde(default)]
    pub allow_debug: bool,
}

fn default_tdx_tcb() -> Vec<String> {
    vec!["UpToDate".to_string()]
}

impl TdxPolicy {
    /// RTMR0..RTMR3 as text, in register order.
    pub fn rtmr_texts(&self) -> [Option<&str>; 4] {
        [&self.rtmr0, &self.rtmr1, &self.rtmr2, &self.rtmr3].map(|r| r.as_deref())
    }

    /// The values RTMR0..RTMR3 must equal: `Some` where pinned, `None` where the contract
    /// says [`RTMR_ANY`] (or, for RTMR3 only, says nothing). The shape of the verifier's
    /// `TdxReference::rtmrs`.
    pub fn expected_rtmrs(&self) -> [Option<[u8; 48]>; 4] {
        self.rtmr_texts()
            .map(|r| r.and_then(|h| hex::decode(h).ok()?.try_into().ok()))
    }
}

/// An attestation check the contract weakens on purpose. [`Contract::parse`] accepts these;
/// `cleanroom contract verify` must print every one loudly, so no member signs one unawares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationWarning {
    /// `[attestation.tdx] rtmr<index> = "any"` (index 0, 1 or 2): what that register
    /// measures (firmware configuration; kernel, initrd and command line; the host binary) is
    /// not checked, so a TD booting another kernel or binary with the same firmware passes.
    TdxRtmrUnchecked { index: usize },
    /// `[attestation.snp] allow_migration_agent = true`: a migration agent may be associated
    /// with the guest and can move its memory to another machine.
    SnpMigrationAgentAllowed,
    /// `[attestation.snp] min_tcb` is all zero: firmware with every known vulnerability passes.
    SnpMinTcbZero,
    /// `allow_debug = true` for `platform` (`snp` or `tdx`): the host can read the guest's
    /// memory.
    DebugAllowed { platform: &'static str },
    /// `allow_simulated = true`: `sim` evidence, which anyone can forge, is accepted (I6).
    SimulationAllowed,
}

impl std::fmt::Display for AttestationWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttestationWarning::TdxRtmrUnchecked { index } => {
                let what = match index {
                    0 => "the TD firmware configuration",
                    1 => "the kernel, initrd and command line",
                    2 => "the host binary and what the boot chain measures after the kernel",
                    _ => "the runtime measurements",
                };
                write!(
                    f,
                    "WARNING: [attestation.tdx] rtmr{index} = \"any\": RTMR{index} is NOT checked, so {what} may be anything"
                )
            }
            AttestationWarning::SnpMigrationAgentAllowed => f.write_str(
                "WARNING: [attestation.snp] allow_migration_agent = true: a guest whose policy allows a migration agent is accepted; that agent can move the guest's memory to another machine",
            ),
            AttestationWarning::SnpMinTcbZero => f.write_str(
                "WARNING: [attestation.snp] min_tcb is all zero: firmware at any patch level, however vulnerable, is accepted",
            ),
            AttestationWarning::DebugAllowed { platform } => write!(
                f,
                "WARNING: [attestation.{platform}] allow_debug = true: a debuggable guest, whose memory the host can read, is accepted"
            ),
            AttestationWarning::SimulationAllowed => f.write_str(
                "WARNING: [attestation] allow_simulated = true: INSECURE sim evidence, which anyone can forge, is accepted; never use this contract for real data",
            ),
        }
    }
}

/// A privacy guard a contract leaves at its weaker legacy form. `cleanroom contract verify`
/// prints each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivacyWarning {
    /// No `[datasets.columns]`: every allowed field may be released, aggregated (MIN/MAX
    /// included), joined on and filtered on; only the function rules apply.
    ColumnRolesUndeclared { dataset: String },
    /// No `privacy_unit`: the group-size guard counts input rows, so one person with many
    /// rows can make a group look large.
    NoPrivacyUnit { dataset: String },
}

impl std::fmt::Display for PrivacyWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivacyWarning::ColumnRolesUndeclared { dataset } => write!(
                f,
                "WARNING: dataset `{dataset}` declares no [datasets.columns]: every allowed field may be released, aggregated (MIN/MAX included), joined on and filtered on"
            ),
            PrivacyWarning::NoPrivacyUnit { dataset } => write!(
                f,
                "WARNING: dataset `{dataset}` declares no privacy_unit: the group-size guard counts its rows, so one person with many rows makes a group look large"
            ),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Members who may propose workloads; empty means every member.
    #[serde(default)]
    pub proposers: Vec<Spanned<String>>,
    /// Whether module logs may be kept (members consent to logs leaving the sandbox).
    #[serde(default)]
    pub logging_consent: bool,
    /// Members who may request runs from a room service. Empty (default): a workload's
    /// proposer and the owners of its inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Members that may receive result tables.
    #[serde(default)]
    pub recipients: Vec<Spanned<String>>,
    /// Members that may receive artifacts a module writes (e.g. trained model weights).
    #[serde(default)]
    pub model_recipients: Vec<Spanned<String>>,
    /// Most bytes of any one artifact a module releases (weights are a channel the owners
    /// accept by approving the code; this bounds it). Absent: only `[sandbox] output_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_artifact_bytes: Option<u64>,
    /// Most metrics a module releases in one run. Absent: no cap but `[sandbox] output_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_metrics: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractGuards {
    /// Output groups counting fewer input rows than this are dropped.
    #[serde(default = "default_min_group_size")]
    pub min_group_size: u64,
    /// Most rows an output may carry.
    #[serde(default = "default_max_output_rows")]
    pub max_output_rows: u64,
}

fn default_min_group_size() -> u64 {
    10
}
fn default_max_output_rows() -> u64 {
    100_000
}

impl Default for ContractGuards {
    fn default() -> Self {
        Self {
            min_group_size: default_min_group_size(),
            max_output_rows: default_max_output_rows(),
        }
    }
}

/// A contract digest: SHA-256 of the canonical JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContractDigest(pub [u8; 32]);

impl ContractDigest {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }
}

impl std::fmt::Display for ContractDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

struct Checker<'a> {
    src: &'a str,
    name: &'a str,
}

impl Checker<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.src, s.span().start)
    }
    fn invalid<T>(&self, at: &Spanned<T>, field: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError::InvalidField {
            source_name: self.name.to_string(),
            line: self.line(at),
            field: field.to_string(),
            reason: reason.into(),
        }
    }
    fn not_member(&self, at: &Spanned<String>, field: &str) -> PolicyError {
        PolicyError::NotAMember {
            source_name: self.name.to_string(),
            line: self.line(at),
            field: field.to_string(),
            name: at.get_ref().clone(),
        }
    }
    fn unique<'s>(
        &self,
        kind: &'static str,
        names: impl Iterator<Item = &'s Spanned<String>>,
    ) -> Result<(), PolicyError> {
        let mut seen = HashSet::new();
        for n in names {
            if !seen.insert(n.get_ref().as_str()) {
                return Err(PolicyError::DuplicateName {
                    source_name: self.name.to_string(),
                    line: self.line(n),
                    kind,
                    name: n.get_ref().clone(),
                });
            }
        }
        Ok(())
    }
    fn hex_len(&self, at: &Spanned<String>, field: &str, len: usize) -> Result<(), PolicyError> {
        match hex::decode(at.get_ref()) {
            Ok(b) if b.len() == len => Ok(()),
            Ok(b) => Err(self.invalid(
                at,
                field,
                format!("{} bytes of hex, expected {len}", b.len()),
            )),
            Err(_) => Err(self.invalid(at, field, "not hex")),
        }
    }
}

/// Every column a dataset's `privacy_unit` and `[datasets.columns]` name is an allowed field;
/// the privacy unit is never a dimension or a metric (that would release it).
fn validate_roles(d: &Dataset, c: &Checker<'_>) -> Result<(), PolicyError> {
    let allowed = |f: &Spanned<String>, what: &str| {
        if d.allowed_fields.iter().any(|a| a.get_ref() == f.get_ref()) {
            Ok(())
        } else {
            Err(c.invalid(
                f,
                what,
                format!(
                    "`{}` is not an allowed field of dataset `{}`",
                    f.get_ref(),
                    d.name.get_ref()
                ),
            ))
        }
    };
    if let Some(u) = &d.privacy_unit {
        allowed(u, "privacy_unit")?;
    }
    let Some(r) = &d.columns else {
        return Ok(());
    };
    for (list, what) in [
        (&r.dimensions, "columns.dimensions"),
        (&r.metrics, "columns.metrics"),
        (&r.min_max, "columns.min_max"),
        (&r.join_keys, "columns.join_keys"),
        (&r.filters, "columns.filters"),
    ] {
        for f in list {
            allowed(f, what)?;
        }
    }
    if let Some(u) = &d.privacy_unit {
        let released = r
            .dimensions
            .iter()
            .chain(&r.metrics)
            .chain(&r.min_max)
            .any(|f| f.get_ref() == u.get_ref());
        if released {
            return Err(c.invalid(
                u,
                "privacy_unit",
                format!(
                    "`{}` is the privacy unit of dataset `{}`: it may be a join key, never a dimension or a metric",
                    u.get_ref(),
                    d.name.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

/// A dataset's `dp` budget: valid values, a privacy unit to bound contributions by, bounds
/// only on metric columns.
fn validate_dp(d: &Dataset, c: &Checker<'_>) -> Result<(), PolicyError> {
    let Some(dp) = &d.dp else {
        return Ok(());
    };
    if d.privacy_unit.is_none() {
        return Err(c.invalid(
            &d.name,
            "dp",
            format!(
                "dataset `{}` declares a dp budget but no privacy_unit: differential privacy protects privacy units, so name the column holding them",
                d.name.get_ref()
            ),
        ));
    }
    let is_metric = |col: &str| d.column_has_role(col, crate::query_rules::ColumnRole::Metric);
    dp.validate(is_metric).map_err(|(field, reason)| {
        c.invalid(
            &d.name,
            &field,
            format!("dataset `{}`: {reason}", d.name.get_ref()),
        )
    })
}

/// A relative path that stays inside its base directory.
pub fn is_contained_relative_path(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// A dataset name the host may use as a SQL table name, an object-store file name and a URL
/// host: `[a-z][a-z0-9]*` words joined by a single `_` or `-`, at most
/// [`DATASET_NAME_MAX_LEN`] bytes. One unquoted SQL identifier token or none (no `--`
/// comment, no `.`), so DataFusion registers the view under exactly this name.
pub fn is_valid_dataset_name(name: &str) -> bool {
    let b = name.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    if b.len() > DATASET_NAME_MAX_LEN || !first.is_ascii_lowercase() {
        return false;
    }
    let mut after_separator = false;
    for &c in b {
        match c {
            b'a'..=b'z' | b'0'..=b'9' => after_separator = false,
            b'_' | b'-' if !after_separator => after_separator = true,
            _ => return false,
        }
    }
    !after_separator
}

/// A KBS resource path `<repo>/<type>/<tag>`: three non-empty segments of `[A-Za-z0-9._-]`,
/// none of them `.` or `..`.
pub fn is_valid_resource_path(p: &str) -> bool {
    let segs: Vec<&str> = p.split('/').collect();
    segs.len() == 3
        && segs.iter().all(|s| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

impl Contract {
    /// Parse and validate `contract.toml` text. `source_name` names the file in errors.
    pub fn parse(src: &str, source_name: &str) -> Result<Self, PolicyError> {
        let contract: Contract = toml::from_str(src).map_err(|e| PolicyError::Toml {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        contract.validate(&Checker {
            src,
            name: source_name,
        })?;
        Ok(contract)
    }

    fn validate(&self, c: &Checker<'_>) -> Result<(), PolicyError> {
        if self.id.trim().is_empty() {
            return Err(PolicyError::InvalidValue {
                source_name: c.name.to_string(),
                field: "id".into(),
                reason: "must not be empty".into(),
            });
        }
        if self.members.is_empty() {
            return Err(PolicyError::InvalidValue {
                source_name: c.name.to_string(),
                field: "members".into(),
                reason: "a contract needs at least one member".into(),
            });
        }
        c.unique("member", self.members.iter().map(|m| &m.name))?;
        for m in &self.members {
            if m.name.get_ref().trim().is_empty() {
                return Err(c.invalid(&m.name, "members.name", "must not be empty"));
            }
            message::verifying_key_from_pem(m.signing_key.get_ref()).map_err(|e| {
                c.invalid(
                    &m.signing_key,
                    &format!("signing_key of member `{}`", m.name.get_ref()),
                    e.to_string(),
                )
            })?;
            message::x25519_public_from_b64(m.encryption_key.get_ref()).map_err(|e| {
                c.invalid(
                    &m.encryption_key,
                    &format!("encryption_key of member `{}`", m.name.get_ref()),
                    e.to_string(),
                )
            })?;
        }
        let is_member = |n: &str| self.members.iter().any(|m| m.name.get_ref() == n);

        for d in &self.datasets {
            if !is_valid_dataset_name(d.name.get_ref()) {
                return Err(PolicyError::InvalidName {
                    source_name: c.name.to_string(),
                    line: c.line(&d.name),
                    kind: "dataset",
                    name: d.name.get_ref().clone(),
                    rule: DATASET_NAME_RULE,
                });
            }
        }
        c.unique("dataset", self.datasets.iter().map(|d| &d.name))?;
        for d in &self.datasets {
            if !is_member(d.owner.get_ref()) {
                return Err(c.not_member(
                    &d.owner,
                    &format!("owner of dataset `{}`", d.name.get_ref()),
                ));
            }
            c.unique("schema field", d.schema.iter().map(|f| &f.name))?;
            if d.format == DataFormat::File {
                if !d.schema.is_empty() || !d.allowed_fields.is_empty() {
                    return Err(c.invalid(
                        &d.name,
                        "schema",
                        "a `file` dataset has no schema or allowed_fields",
                    ));
                }
            } else if d.allowed_fields.is_empty() {
                return Err(c.invalid(&d.name, "allowed_fields", "must list at least one field"));
            }
            for f in &d.allowed_fields {
                if !d.schema.iter().any(|s| s.name.get_ref() == f.get_ref()) {
                    return Err(PolicyError::AllowedFieldNotInSchema {
                        source_name: c.name.to_string(),
                        line: c.line(f),
                        dataset: d.name.get_ref().clone(),
                        field: f.get_ref().clone(),
                    });
                }
            }
            validate_roles(d, c)?;
            validate_dp(d, c)?;
            for r in &d.row_recipients {
                if !is_member(r.get_ref()) {
                    return Err(c.not_member(
                        r,
                        &format!("row_recipients entry of dataset `{}`", d.name.get_ref()),
                    ));
                }
            }
            if !is_contained_relative_path(d.location.get_ref()) {
                return Err(c.invalid(
                    &d.location,
                    "location",
                    "must be a relative path inside the data directory (no `..`, no absolute path)",
                ));
            }
            let url = d.key.broker.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(c.invalid(
                    &d.key.broker,
                    "key.broker",
                    "must be an http:// or https:// URL",
                ));
            }
            if !is_valid_resource_path(d.key.resource.get_ref()) {
                return Err(c.invalid(
                    &d.key.resource,
                    "key.resource",
                    "must be `<repo>/<type>/<tag>`, each of [A-Za-z0-9._-]",
                ));
            }
            if let Some(id) = &d.key.master_key_id {
                if d.format != DataFormat::Parquet {
                    return Err(c.invalid(
                        id,
                        "key.master_key_id",
                        "is for Parquet datasets written with Parquet Modular Encryption's key tools",
                    ));
                }
                if id.get_ref().is_empty()
                    || id.get_ref().len() > 128
                    || id.get_ref().chars().any(|ch| ch.is_control())
                {
                    return Err(c.invalid(
                        id,
                        "key.master_key_id",
                        "must be 1 to 128 bytes without control characters",
                    ));
                }
            }
        }
        for r in &self.outputs.recipients {
            if !is_member(r.get_ref()) {
                return Err(c.not_member(r, "outputs.recipients entry"));
            }
        }
        for r in &self.outputs.model_recipients {
            if !is_member(r.get_ref()) {
                return Err(c.not_member(r, "outputs.model_recipients entry"));
            }
        }
        for p in &self.governance.runners {
            if !is_member(p.get_ref()) {
                return Err(c.not_member(p, "governance.runners entry"));
            }
        }
        for p in &self.governance.proposers {
            if !is_member(p.get_ref()) {
                return Err(c.not_member(p, "governance.proposers entry"));
            }
        }
        let a = &self.attestation;
        if a.platforms.is_empty() {
            return Err(PolicyError::InvalidValue {
                source_name: c.name.to_string(),
                field: "attestation.platforms".into(),
                reason: "must allow at least one platform".into(),
            });
        }
        for p in &a.platforms {
            if !KNOWN_PLATFORMS.contains(&p.get_ref().as_str()) {
                return Err(c.invalid(
                    p,
                    "attestation.platforms",
                    format!(
                        "unknown platform `{}` (known: {})",
                        p.get_ref(),
                        KNOWN_PLATFORMS.join(", ")
                    ),
                ));
            }
            if p.get_ref() == "sim" && !a.allow_simulated {
                return Err(c.invalid(
                    p,
                    "attestation.platforms",
                    "`sim` is listed but allow_simulated is not true",
                ));
            }
        }
        for m in a.sim.iter().flat_map(|s| &s.measurements) {
            c.hex_len(m, "attestation.sim.measurements", 48)?;
        }
        for m in a.snp.iter().flat_map(|s| &s.measurements) {
            c.hex_len(m, "attestation.snp.measurements", 48)?;
        }
        for m in a.tdx.iter().flat_map(|s| &s.mrtd) {
            c.hex_len(m, "attestation.tdx.mrtd", 48)?;
        }
        if let Some(s) = &a.snp
            && s.min_tcb.is_none()
        {
            return Err(PolicyError::SnpMinTcbMissing {
                source_name: c.name.to_string(),
            });
        }
        if let Some(t) = &a.tdx {
            for (index, r) in t.rtmr_texts().into_iter().enumerate() {
                match r {
                    None if index < 3 => {
                        return Err(PolicyError::TdxRtmrNotPinned {
                            source_name: c.name.to_string(),
                            index,
                        });
                    }
                    None => {}
                    Some(RTMR_ANY) => {}
                    Some(r) if hex::decode(r).map(|b| b.len()) == Ok(48) => {}
                    Some(_) => {
                        return Err(PolicyError::InvalidValue {
                            source_name: c.name.to_string(),
                            field: format!("attestation.tdx.rtmr{index}"),
                            reason: format!("must be 48 bytes of hex or \"{RTMR_ANY}\""),
                        });
                    }
                }
            }
        }
        self.validate_brokers(c)?;
        if self.guards.min_group_size == 0 {
            return Err(PolicyError::InvalidValue {
                source_name: c.name.to_string(),
                field: "guards.min_group_size".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// I2: each broker is reached over TLS pinned to its key, or (simulation only) over plain
    /// HTTP on 127.0.0.1; one URL has one pin.
    fn validate_brokers(&self, c: &Checker<'_>) -> Result<(), PolicyError> {
        let mut pins: std::collections::HashMap<&str, Option<&str>> = Default::default();
        for d in &self.datasets {
            let url = d.key.broker.get_ref();
            let pin = d.key.broker_spki_sha256.as_ref();
            if let Some(rest) = url.strip_prefix("https://") {
                let authority = rest.split('/').next().unwrap_or("");
                if authority.is_empty()
                    || authority.contains('@')
                    || authority
                        .chars()
                        .any(|ch| ch.is_whitespace() || ch.is_control())
                {
                    return Err(c.invalid(&d.key.broker, "key.broker", "no host in the URL"));
                }
                let Some(pin) = pin else {
                    return Err(PolicyError::BrokerKeyNotPinned {
                        source_name: c.name.to_string(),
                        line: c.line(&d.key.broker),
                        dataset: d.name.get_ref().clone(),
                        url: url.clone(),
                    });
                };
                c.hex_len(pin, "key.broker_spki_sha256", 32)?;
            } else {
                let plain = |reason| PolicyError::PlainHttpBroker {
                    source_name: c.name.to_string(),
                    line: c.line(&d.key.broker),
                    dataset: d.name.get_ref().clone(),
                    url: url.clone(),
                    reason,
                };
                let authority = url
                    .strip_prefix("http://")
                    .and_then(|r| r.split('/').next())
                    .unwrap_or("");
                let loopback = match authority.strip_prefix("127.0.0.1") {
                    Some("") => true,
                    Some(port) => port
                        .strip_prefix(':')
                        .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok()),
                    None => false,
                };
                if !loopback {
                    return Err(plain(
                        "plain http:// is accepted only for 127.0.0.1 (use https:// with broker_spki_sha256)",
                    ));
                }
                if !self.attestation.allow_simulated {
                    return Err(plain(
                        "plain http:// is accepted only with allow_simulated = true (INSECURE); use https:// with broker_spki_sha256",
                    ));
                }
                if let Some(p) = pin {
                    return Err(c.invalid(
                        p,
                        "key.broker_spki_sha256",
                        "pins a TLS key, which a plain http:// broker does not have",
                    ));
                }
            }
            let pin_text = pin.map(|p| p.get_ref().as_str());
            if let Some(other) = pins.insert(url.as_str(), pin_text)
                && other.map(str::to_ascii_lowercase) != pin_text.map(str::to_ascii_lowercase)
            {
                return Err(c.invalid(
                    &d.key.broker,
                    "key.broker_spki_sha256",
                    "another dataset pins another key for the same broker URL",
                ));
            }
        }
        Ok(())
    }

    /// The attestation checks this contract weakens on purpose (see [`AttestationWarning`]),
    /// in a fixed order. `cleanroom contract verify` prints each; empty for a contract that
    /// pins everything.
    pub fn attestation_warnings(&self) -> Vec<AttestationWarning> {
        let a = &self.attestation;
        let mut out = Vec::new();
        if a.allow_simulated {
            out.push(AttestationWarning::SimulationAllowed);
        }
        if let Some(s) = &a.snp {
            if s.allow_debug {
                out.push(AttestationWarning::DebugAllowed { platform: "snp" });
            }
            if s.allow_migration_agent {
                out.push(AttestationWarning::SnpMigrationAgentAllowed);
            }
            if s.min_tcb
                .as_ref()
                .is_some_and(|t| t.bootloader == 0 && t.tee == 0 && t.snp == 0 && t.microcode == 0)
            {
                out.push(AttestationWarning::SnpMinTcbZero);
            }
        }
        if let Some(t) = &a.tdx {
            if t.allow_debug {
                out.push(AttestationWarning::DebugAllowed { platform: "tdx" });
            }
            for (index, r) in t.rtmr_texts().into_iter().enumerate().take(3) {
                if r == Some(RTMR_ANY) {
                    out.push(AttestationWarning::TdxRtmrUnchecked { index });
                }
            }
        }
        out
    }

    /// What the contract leaves to the legacy, weaker privacy guards on purpose (a dataset
    /// without column roles or without a privacy unit), in dataset order. `cleanroom contract
    /// verify` prints each.
    pub fn privacy_warnings(&self) -> Vec<PrivacyWarning> {
        let mut out = Vec::new();
        for d in self
            .datasets
            .iter()
            .filter(|d| d.format != DataFormat::File)
        {
            let dataset = d.name.get_ref().clone();
            if d.columns.is_none() {
                out.push(PrivacyWarning::ColumnRolesUndeclared {
                    dataset: dataset.clone(),
                });
            }
            if d.privacy_unit.is_none() {
                out.push(PrivacyWarning::NoPrivacyUnit { dataset });
            }
        }
        out
    }

    /// RFC 8785 canonical JSON of the parsed contract.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("a parsed contract serialises to JSON")
    }

    /// SHA-256 of [`Contract::canonical_json`].
    pub fn digest(&self) -> ContractDigest {
        use sha2::Digest;
        ContractDigest(sha2::Sha256::digest(self.canonical_json()).into())
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name.get_ref() == name)
    }

    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name.get_ref() == name)
    }

    /// The member whose signing key has fingerprint `kid`.
    pub fn member_by_kid(&self, kid: &[u8]) -> Option<&Member> {
        self.members.iter().find(|m| {
            message::key_fingerprint_pem(m.signing_key.get_ref())
                .map(|f| f[..] == kid[..])
                .unwrap_or(false)
        })
    }

    /// Verify `sig` as a signed message of type `expected` from a member of this contract,
    /// bound to this contract's digest. Returns the signer.
    pub fn verify_member_message<'c>(
        &'c self,
        sig: &SignedMessage,
        expected: MessageType,
    ) -> Result<&'c Member, PolicyError> {
        let member = self
            .member_by_kid(&sig.kid)
            .ok_or_else(|| PolicyError::SignerNotAMember {
                kid: hex::encode(&sig.kid),
            })?;
        let key = message::verifying_key_from_pem(member.signing_key.get_ref())?;
        sig.verify(&key).map_err(|_| PolicyError::BadSignature {
            member: member.name.get_ref().clone(),
        })?;
        if sig.message_type != expected {
            return Err(PolicyError::WrongMessageType {
                member: member.name.get_ref().clone(),
                expected: expected.as_str(),
                actual: sig.message_type.as_str().to_string(),
            });
        }
        let digest = self.digest();
        if sig.contract_digest != digest.0 {
            return Err(PolicyError::WrongContract {
                member: member.name.get_ref().clone(),
                expected: digest.hex(),
                actual: hex::encode(sig.contract_digest),
            });
        }
        Ok(member)
    }
}

/// A contract with every member's acceptance verified. The only way to get one is
/// [`SignedContract::verify`].
#[derive(Debug, Clone)]
pub struct SignedContract {
    contract: Contract,
    digest: ContractDigest,
}

impl SignedContract {
    /// Require one valid `contract-accept` from every member, and refuse signatures by
    /// non-members or for another contract.
    pub fn verify(contract: Contract, signatures: &[SignedMessage]) -> Result<Self, PolicyError> {
        let mut accepted = HashSet::new();
        for sig in signatures {
            let m = contract.verify_member_message(sig, MessageType::ContractAccept)?;
            accepted.insert(m.name.get_ref().clone());
        }
        for m in &contract.members {
            if !accepted.contains(m.name.get_ref()) {
                return Err(PolicyError::MissingContractSignature {
                    member: m.name.get_ref().clone(),
                });
            }
        }
        let digest = contract.digest();
        Ok(Self { contract, digest })
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    pub fn digest(&self) -> ContractDigest {
        self.digest
    }
}
