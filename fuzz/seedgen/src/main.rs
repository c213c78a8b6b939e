//! Writes the seed corpora `fuzz/corpus/<target>/seed-*` and `fuzz/fixtures/contract.toml`.
//! The seeds of the `cleanroom-formats` targets are written by [`formats_seeds`], those of
//! the `cleanroom-room` targets by [`room_seeds`].
//!
//! Seeds come from the real attestation vectors (`attest/tests/data`, copied unchanged from
//! `shared/testdata/attestation`), the contract and workload examples in `docs/` and the
//! shapes the tests use (`policy/tests`, `tests/tests`, `host/cli`), and messages signed here
//! with fixed keys. Output is deterministic (RFC 6979 signatures), so re-running it changes
//! nothing unless an input changed. Existing `seed-*` files are replaced; other corpus files
//! (what fuzzing grew) are left alone.
//!
//! Each seed is also checked: the valid contracts and workloads must parse, and the
//! evidence that should verify against the targets' fixed reference values must verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../../src/parts.rs"]
mod parts;

#[allow(dead_code)]
#[path = "../../src/attest.rs"]
mod attest;

#[path = "../../src/formats.rs"]
mod formats;

#[path = "../../src/tabular.rs"]
mod tabular;

#[path = "../../src/room.rs"]
mod room;

mod formats_seeds;
mod room_seeds;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cleanroom_attest::sim::{SIM_TCB, SimReport, SimSigner};
use cleanroom_attest::{EvidenceBundle, Platform};
use cleanroom_policy::governance::GovernancePayload;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::{ModuleSummary, ProposalPayload};
use cleanroom_policy::workload::ApprovalPayload;
use cleanroom_policy::{Contract, Workload};
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePublicKey, LineEnding};

use parts::Control;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn repo_dir() -> PathBuf {
    fuzz_dir().join("..")
}

/// Seeds of one target, written on drop of the map into `fuzz/corpus/<target>/seed-<name>`.
#[derive(Default)]
struct Corpus(BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>);

impl Corpus {
    fn add(&mut self, target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        let name = name.into();
        let prev = self
            .0
            .entry(target)
            .or_default()
            .insert(name.clone(), bytes.into());
        assert!(prev.is_none(), "duplicate seed {target}/{name}");
    }

    fn write(&self) {
        for (target, seeds) in &self.0 {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_name().to_string_lossy().starts_with("seed-") {
                    std::fs::remove_file(entry.path()).unwrap();
                }
            }
            let mut total = 0;
            for (name, bytes) in seeds {
                assert!(bytes.len() < 64 * 1024, "{target}/{name} is 64 kB or more");
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
                total += bytes.len();
            }
            println!("{target:16} {:3} seeds {total:8} bytes", seeds.len());
        }
    }
}

// ------------------------------------------------------------------------ policy seeds

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 48]).unwrap()
}

fn public_pem(seed: u8) -> String {
    VerifyingKey::from(&key(seed))
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn member(name: &str, seed: u8) -> String {
    format!(
        "[[members]]\nname = \"{name}\"\nsigning_key = \"\"\"\n{}\"\"\"\nencryption_key = \"{}\"\n\n",
        public_pem(seed),
        B64.encode([seed; 32])
    )
}

const HEX96_A: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const SPKI_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SPKI_B: &str = "FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100";
const HEX96_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The contract `policy/tests/policy.rs` builds (two members, CSV and JSON datasets, sim).
fn contract_policy_tests() -> String {
    format!(
        r#"id = "adtech"
version = 1

{}{}
[[datasets]]
name = "impressions"
owner = "publisher"
format = "csv"
schema = [
  {{ name = "user_id", type = "string" }},
  {{ name = "campaign", type = "string" }},
  {{ name = "email", type = "string" }},
]
allowed_fields = ["user_id", "campaign"]
location = "publisher/impressions.sealed"
key = {{ broker = "http://127.0.0.1:1", resource = "publisher/dataset/impressions" }}

[[datasets]]
name = "conversions"
owner = "advertiser"
format = "json"
schema = [ {{ name = "user_id", type = "string" }}, {{ name = "value", type = "float64" }} ]
allowed_fields = ["user_id", "value"]
location = "advertiser/conversions.sealed"
key = {{ broker = "http://127.0.0.1:2", resource = "advertiser/dataset/conversions" }}

[attestation]
platforms = ["sim"]
allow_simulated = true
sim = {{ measurements = ["{HEX96_A}"] }}

[outputs]
recipients = ["advertiser"]

[guards]
min_group_size = 50
"#,
        member("publisher", 1),
        member("advertiser", 2)
    )
}

/// The contract `cleanroom demo` writes (`host/cli/src/demo.rs`): Parquet, CSV and a model
/// file, row recipients, proposers, model recipients.
fn contract_demo() -> String {
    format!(
        r#"# Cleanroom demo contract: publisher x advertiser campaign measurement.
id = "demo-campaign-measurement"
version = 1

{}{}
[[datasets]]
name = "impressions"
owner = "publisher"
format = "parquet"
schema = [
  {{ name = "user_id_hash", type = "string" }},
  {{ name = "campaign", type = "string" }},
  {{ name = "ts", type = "int64" }},
  {{ name = "site", type = "string" }},
  {{ name = "ip_address", type = "string" }},
]
# ip_address is never readable in the room.
allowed_fields = ["user_id_hash", "campaign", "ts", "site"]
location = "data/impressions.parquet.sealed"
key = {{ broker = "http://127.0.0.1:8081", resource = "publisher/dataset/impressions" }}
min_rows = 1000
row_recipients = ["publisher"]

[[datasets]]
name = "conversions"
owner = "advertiser"
format = "csv"
schema = [
  {{ name = "user_id_hash", type = "string" }},
  {{ name = "ts", type = "int64" }},
  {{ name = "value", type = "float64" }},
  {{ name = "order_id", type = "string" }},
]
allowed_fields = ["user_id_hash", "ts", "value"]
location = "data/conversions.csv.sealed"
key = {{ broker = "http://127.0.0.1:8082", resource = "advertiser/dataset/conversions" }}
min_rows = 1000

[[datasets]]
name = "conversion-model"
owner = "advertiser"
format = "file"
location = "data/conversion-model.sealed"
key = {{ broker = "http://127.0.0.1:8082", resource = "advertiser/model/conversion-model" }}
row_recipients = ["publisher"]

[attestation]
platforms = ["sim"]
allow_simulated = true
sim = {{ measurements = ["{HEX96_A}"] }}

[governance]
proposers = ["advertiser"]

[outputs]
recipients = ["advertiser", "publisher"]
model_recipients = ["advertiser"]

[guards]
min_group_size = 50
max_output_rows = 100000
"#,
        member("publisher", 1),
        member("advertiser", 2)
    )
}

/// Hardware attestation sections, three members, every optional table.
fn contract_hardware() -> String {
    format!(
        r#"id = "three-party-hardware"
version = 7

{}{}{}
[[datasets]]
name = "sales"
owner = "alice"
format = "csv"
schema = [ {{ name = "region", type = "string" }}, {{ name = "amount", type = "int64" }}, {{ name = "customer", type = "string" }}, {{ name = "vip", type = "bool" }} ]
allowed_fields = ["region", "amount", "vip"]
location = "sales.sealed"
key = {{ broker = "https://kbs.alice.example:8443", broker_spki_sha256 = "{SPKI_A}", resource = "alice/dataset/sales" }}
min_rows = 10

[[datasets]]
name = "targets"
owner = "bob"
format = "json"
schema = [ {{ name = "region", type = "string" }}, {{ name = "target", type = "int64" }} ]
allowed_fields = ["region", "target"]
location = "targets.sealed"
key = {{ broker = "https://[2001:db8::1]/kbs", broker_spki_sha256 = "{SPKI_B}", resource = "bob/dataset/targets" }}

[attestation]
platforms = ["snp", "tdx", "azure-snp", "azure-tdx"]
allow_simulated = false
snp = {{ measurements = ["{HEX96_A}", "{HEX96_B}"], min_tcb = {{ bootloader = 3, tee = 0, snp = 8, microcode = 115 }}, allow_debug = false, vmpl = 0 }}
tdx = {{ mrtd = ["{HEX96_B}"], rtmr0 = "{HEX96_A}", rtmr1 = "{HEX96_B}", rtmr2 = "{HEX96_A}", rtmr3 = "{HEX96_B}", allowed_tcb_statuses = ["UpToDate", "SWHardeningNeeded"], allow_debug = false }}

[governance]
proposers = ["bob", "carol"]
logging_consent = true

[outputs]
recipients = ["bob", "carol"]
model_recipients = ["carol"]

[guards]
min_group_size = 3
max_output_rows = 1000

[sandbox]
memory_bytes = 268435456
deadline_ms = 300
output_bytes = 16777216
log_bytes = 65536
"#,
        member("alice", 3),
        member("bob", 4),
        member("carol", 5)
    )
}

/// The smallest contract: members and attestation.
fn contract_minimal() -> String {
    format!(
        "id = \"m\"\nversion = 0\n\n{}[attestation]\nplatforms = [\"tdx\"]\ntdx = {{ mrtd = [\"{HEX96_B}\"], rtmr0 = \"any\", rtmr1 = \"any\", rtmr2 = \"any\", rtmr3 = \"any\" }}\n",
        member("solo", 6)
    )
}

const WORKLOAD_POLICY_TESTS: &str = r#"
name = "reach"
kind = "query"
inputs = ["impressions", "conversions"]
sql = "SELECT campaign, count(*) AS n FROM impressions GROUP BY campaign"
[output]
recipients = ["advertiser"]
"#;

fn workloads() -> Vec<(&'static str, String, bool)> {
    let digest = "ab".repeat(32);
    vec![
        ("policy-tests", WORKLOAD_POLICY_TESTS.to_string(), true),
        (
            "demo-query",
            r#"name = "campaign-reach-and-conversion"
kind = "query"
inputs = ["impressions", "conversions"]
sql = """
SELECT i.campaign, COUNT(DISTINCT i.user_id_hash) AS reach, SUM(c.value) AS value
FROM impressions i LEFT JOIN conversions c ON i.user_id_hash = c.user_id_hash
GROUP BY i.campaign
"""

[output]
recipients = ["advertiser"]
format = "csv"

[guards]
min_group_size = 50
"#
            .into(),
            true,
        ),
        (
            "training",
            format!(
                "name = \"train\"\nkind = \"training\"\ninputs = [\"impressions\", \"conversions\"]\nmodule_digest = \"{digest}\"\n\n[parameters]\nsql = \"SELECT 1\"\nfeatures = [\"imps\"]\nepochs = 50\nrate = 0.25\nnested = {{ a = [1, 2.5, true, \"x\"], when = 1979-05-27T07:32:00Z }}\n\n[output]\nrecipients = [\"advertiser\"]\nartifact_recipients = [\"advertiser\"]\n"
            ),
            true,
        ),
        (
            "inference-row-level",
            format!(
                "name = \"scores\"\nkind = \"inference\"\ninputs = [\"impressions\", \"conversion-model\"]\nmodule_digest = \"{digest}\"\n\n[parameters]\nsql = \"SELECT user_id_hash FROM impressions\"\nmodel = \"conversion-model\"\noutput = \"scores\"\nkey = \"user_id_hash\"\n\n[output]\nrecipients = [\"publisher\"]\nrow_level = true\nformat = \"json\"\n"
            ),
            true,
        ),
        (
            "module-query-guards",
            format!(
                "name = \"funnel\"\nkind = \"query\"\ninputs = [\"impressions\"]\nmodule_digest = \"{digest}\"\nsql = \"SELECT campaign FROM impressions\"\n[output]\nrecipients = [\"bob\"]\n[guards]\ncount_column = \"users\"\nmin_group_size = 100\nmax_output_rows = 10\n"
            ),
            // Refused since a count a module writes is not trusted (ModuleCountNotTrusted).
            false,
        ),
        (
            "cli-sales",
            r#"name = "sales-vs-target"
kind = "query"
inputs = ["sales", "targets"]
sql = "SELECT s.region, SUM(s.amount) AS sold, MAX(t.target) AS target FROM sales s JOIN targets t ON s.region = t.region GROUP BY s.region ORDER BY s.region"
[output]
recipients = ["bob"]
"#
            .into(),
            true,
        ),
        (
            "bad-digest",
            "name = \"x\"\nkind = \"query\"\ninputs = [\"a\"]\nmodule_digest = \"\"\n[output]\nrecipients = [\"b\"]\n".into(),
            false,
        ),
        (
            "unknown-field",
            format!("{WORKLOAD_POLICY_TESTS}exfiltrate = true\n"),
            false,
        ),
    ]
}

/// ```toml blocks of a markdown file.
fn toml_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.push(cur.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn policy_seeds(corpus: &mut Corpus) {
    let fixture = contract_policy_tests();
    std::fs::create_dir_all(fuzz_dir().join("fixtures")).unwrap();
    std::fs::write(fuzz_dir().join("fixtures/contract.toml"), &fixture).unwrap();

    let contracts = [
        ("policy-tests", fixture.clone()),
        ("demo", contract_demo()),
        ("hardware", contract_hardware()),
        ("minimal", contract_minimal()),
    ];
    for (name, text) in &contracts {
        Contract::parse(text, name).unwrap_or_else(|e| panic!("contract {name}: {e}"));
        corpus.add("contract_toml", format!("{name}.toml"), text.as_bytes());
    }
    // Near misses the tests exercise: each must be refused.
    let misses = [
        (
            "unknown-field",
            fixture.replace("[outputs]", "[outputs]\nexfiltrate_to = \"x\""),
        ),
        (
            "duplicate-member",
            format!("{fixture}\n{}", member("publisher", 7)),
        ),
        (
            "not-a-member",
            fixture.replace(
                "recipients = [\"advertiser\"]",
                "recipients = [\"mallory\"]",
            ),
        ),
        (
            "climbing-location",
            fixture.replace("publisher/impressions.sealed", "../../etc/passwd"),
        ),
        (
            "field-outside-schema",
            fixture.replace(
                "allowed_fields = [\"user_id\", \"value\"]",
                "allowed_fields = [\"user_id\", \"ssn\"]",
            ),
        ),
        (
            "sim-not-allowed",
            fixture.replace("allow_simulated = true", "allow_simulated = false"),
        ),
    ];
    for (name, text) in &misses {
        assert!(
            Contract::parse(text, name).is_err(),
            "near miss {name} parses"
        );
        corpus.add(
            "contract_toml",
            format!("refused-{name}.toml"),
            text.as_bytes(),
        );
    }
    for (doc, md) in ["formats", "modules"].map(|d| {
        (
            d,
            std::fs::read_to_string(repo_dir().join(format!("docs/{d}.md"))).unwrap(),
        )
    }) {
        for (i, block) in toml_blocks(&md).iter().enumerate() {
            let target = if block.contains("[[members]]") || block.contains("[attestation]") {
                "contract_toml"
            } else if block.contains("[output]") || block.contains("kind =") {
                "workload_toml"
            } else {
                continue;
            };
            corpus.add(target, format!("docs-{doc}-{i}.toml"), block.as_bytes());
        }
    }

    for (name, text, valid) in workloads() {
        assert_eq!(
            Workload::parse(&text, name).is_ok(),
            valid,
            "workload {name}: {:?}",
            Workload::parse(&text, name).err()
        );
        corpus.add("workload_toml", format!("{name}.toml"), text.as_bytes());
    }

    // Signed messages of every type, as members of the fixture contract sign them.
    let contract = Contract::parse(&fixture, "fixture").unwrap();
    let d = contract.digest().0;
    let workload = Workload::parse(WORKLOAD_POLICY_TESTS, "w").unwrap();
    let module_payload = ProposalPayload {
        workload: "funnel".into(),
        workload_digest: "cd".repeat(32),
        workload_toml: "name = \"funnel\"\n".into(),
        module: Some(ModuleSummary {
            digest: "ab".repeat(32),
            world: "query".into(),
            imports: vec!["cleanroom:workload/host@0.1.0".into()],
        }),
    };
    let messages = [
        (
            "accept-1",
            SignedMessage::sign(
                &key(1),
                MessageType::ContractAccept,
                d,
                1_750_000_000,
                d.to_vec(),
            ),
        ),
        (
            "accept-2",
            SignedMessage::sign(&key(2), MessageType::ContractAccept, d, 1, d.to_vec()),
        ),
        (
            "approve",
            SignedMessage::sign(
                &key(2),
                MessageType::WorkloadApprove,
                d,
                2,
                ApprovalPayload::for_workload(&workload).to_bytes(),
            ),
        ),
        (
            "propose",
            SignedMessage::sign(
                &key(2),
                MessageType::WorkloadPropose,
                d,
                3,
                ProposalPayload::new(WORKLOAD_POLICY_TESTS, "workload.toml", None)
                    .unwrap()
                    .to_bytes(),
            ),
        ),
        (
            "propose-module",
            SignedMessage::sign(
                &key(2),
                MessageType::WorkloadPropose,
                d,
                3,
                module_payload.to_bytes(),
            ),
        ),
        (
            "suspend",
            SignedMessage::sign(
                &key(1),
                MessageType::Suspend,
                d,
                4,
                GovernancePayload {
                    reason: "audit".into(),
                }
                .to_bytes(),
            ),
        ),
        (
            "resume",
            SignedMessage::sign(
                &key(1),
                MessageType::Resume,
                d,
                u64::MAX,
                GovernancePayload::default().to_bytes(),
            ),
        ),
        (
            "empty-payload",
            SignedMessage::sign(&key(9), MessageType::Suspend, [0; 32], 0, Vec::new()),
        ),
    ];
    let mut sigs = String::new();
    for (name, m) in &messages {
        let tagged = m.to_bytes();
        assert_eq!(tagged[0], 0xd2, "COSE_Sign1 tag 18");
        SignedMessage::from_bytes(&tagged[1..]).expect("untagged parses");
        corpus.add("cose_bytes", format!("{name}.cose"), tagged.clone());
        corpus.add("cose_base64", format!("{name}.b64"), m.to_base64());
        if *name == "accept-1" || *name == "accept-2" {
            sigs.push_str(&m.to_base64());
            sigs.push('\n');
        }
    }
    let (_, approve) = &messages[2];
    corpus.add(
        "cose_bytes",
        "approve-untagged.cose",
        approve.to_bytes()[1..].to_vec(),
    );
    corpus.add(
        "cose_base64",
        "approve-line.b64",
        format!("  {}\r\n", approve.to_base64()),
    );
    corpus.add("cose_base64", "sigs-file.b64", sigs);
}

// ------------------------------------------------------------------------ attest seeds

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// PEM blocks of a bundle file, in order.
fn pem_blocks(entry: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(entry).unwrap();
    let end = "-----END CERTIFICATE-----";
    text.split_inclusive(end)
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| format!("{}\n", b.trim_start()))
        .collect()
}

/// A chain as separate PEM strings (DER entries converted).
fn pem_chain(entries: &[Vec<u8>]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| {
            if e.first() == Some(&0x30) {
                vec![pem(e)]
            } else {
                pem_blocks(e)
            }
        })
        .collect()
}

fn parts_seed(p: &[&[u8]]) -> Vec<u8> {
    for part in p {
        assert!(
            !parts::contains(part, parts::SEP),
            "a seed part contains the separator"
        );
    }
    let joined = parts::join(p);
    assert_eq!(parts::split(&joined).len(), p.len());
    joined
}

struct Evidence {
    name: &'static str,
    platform: Platform,
    /// The raw report (or HCL report, or sim envelope).
    raw: Vec<u8>,
    td_quote: Option<Vec<u8>>,
    collateral: Option<Vec<u8>>,
    chain: Vec<String>,
    vmpl: Option<u32>,
    /// Whether it verifies against the targets' fixed reference values in July 2025.
    verifies: bool,
}

fn sim_evidence(signer: &SimSigner, measurement: [u8; 48], debug: bool) -> Vec<u8> {
    let bundle = signer.sign(&SimReport {
        version: 1,
        measurement: hex::encode(measurement),
        host_data: hex::encode([9u8; 32]),
        report_data: hex::encode([7u8; 64]),
        tcb: SIM_TCB,
        debug,
    });
    B64.decode(bundle.report).unwrap()
}

fn attest_seeds(corpus: &mut Corpus) {
    let v = attest::vectors();
    let azure_hw = v.azure_snp_hcl[32..1216].to_vec();

    corpus.add("snp_report", "milan.bin", v.milan_report.clone());
    corpus.add("snp_report", "vlek.bin", v.vlek_report);
    corpus.add("snp_report", "azure.bin", azure_hw.clone());
    for r in [&v.milan_report[..], v.vlek_report, &azure_hw] {
        cleanroom_attest::snp::parse_report(r).expect("vector report parses");
    }

    corpus.add("azure_hcl", "snp.bin", v.azure_snp_hcl);
    corpus.add("azure_hcl", "tdx.bin", v.azure_tdx_hcl);

    // snp_chain: control (source, time, vmpl), report, certificate entries.
    let milan_chain = pem_chain(&v.milan_certs);
    let vlek_chain = pem_chain(&v.vlek_certs);
    let azure_chain = pem_chain(&v.azure_snp_certs);
    let strs = |c: &[String]| c.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    // (name, control, report part, certificate entries)
    type ChainSeed<'a> = (&'a str, Vec<u8>, &'a [u8], Vec<Vec<u8>>);
    let chain_seeds: [ChainSeed; 6] = [
        (
            "milan-raw-entries",
            Control::encode(0, 0, 0),
            &v.milan_report,
            v.milan_certs.clone(),
        ),
        (
            "milan-pem",
            Control::encode(1, 2, 0),
            &[],
            strs(&milan_chain),
        ),
        ("vlek", Control::encode(2, 0, 2), &[], strs(&vlek_chain)),
        (
            "vlek-der",
            Control::encode(0, 0, 2),
            v.vlek_report,
            v.vlek_certs.clone(),
        ),
        (
            "azure",
            Control::encode(3, 0, 0),
            &[],
            v.azure_snp_certs.clone(),
        ),
        (
            "milan-report-azure-chain",
            Control::encode(1, 0, 0),
            &[],
            strs(&azure_chain),
        ),
    ];
    for (name, ctl, report, entries) in &chain_seeds {
        let mut p: Vec<&[u8]> = vec![ctl, report];
        p.extend(entries.iter().map(Vec::as_slice));
        corpus.add("snp_chain", *name, parts_seed(&p));
    }

    // tdx_quote: control (quote/collateral source, time), quote, collateral.
    // (name, control, quote part, collateral part)
    type TdxSeed<'a> = (&'a str, Vec<u8>, &'a [u8], &'a [u8]);
    let tdx_seeds: [TdxSeed; 6] = [
        (
            "v4",
            Control::encode(0, 0, 0),
            v.tdx_v4_quote,
            v.tdx_v4_collateral,
        ),
        (
            "outdated",
            Control::encode(0, 1, 0),
            v.tdx_outdated_quote,
            v.tdx_outdated_collateral,
        ),
        (
            "azure-quote-v4-collateral",
            Control::encode(0, 0, 0),
            v.azure_tdx_quote,
            v.tdx_v4_collateral,
        ),
        (
            "fixed-v4-quote-own-collateral",
            Control::encode(1, 0, 0),
            &[],
            v.tdx_v4_collateral,
        ),
        (
            "own-quote-fixed-v4-collateral",
            Control::encode(1 << 2, 0, 0),
            v.tdx_v4_quote,
            &[],
        ),
        (
            "outdated-at-v4-time",
            Control::encode(2 | (2 << 2), 0, 0),
            &[],
            &[],
        ),
    ];
    for (name, ctl, quote, coll) in &tdx_seeds {
        corpus.add("tdx_quote", *name, parts_seed(&[ctl, quote, coll]));
    }

    // Evidence bundles.
    let sim = SimSigner::new(b"seedgen");
    let evidence = [
        Evidence {
            name: "snp-milan",
            platform: Platform::Snp,
            raw: v.milan_report.clone(),
            td_quote: None,
            collateral: None,
            chain: milan_chain.clone(),
            vmpl: None,
            verifies: true,
        },
        Evidence {
            name: "snp-vlek",
            platform: Platform::Snp,
            raw: v.vlek_report.to_vec(),
            td_quote: None,
            collateral: None,
            chain: vlek_chain.clone(),
            vmpl: Some(1),
            verifies: true,
        },
        Evidence {
            name: "snp-vlek-vmpl0",
            platform: Platform::Snp,
            raw: v.vlek_report.to_vec(),
            td_quote: None,
            collateral: None,
            chain: vlek_chain.clone(),
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "azure-snp",
            platform: Platform::AzureSnp,
            raw: v.azure_snp_hcl.to_vec(),
            td_quote: None,
            collateral: None,
            chain: azure_chain.clone(),
            vmpl: None,
            verifies: true,
        },
        Evidence {
            name: "tdx-v4",
            platform: Platform::Tdx,
            raw: v.tdx_v4_quote.to_vec(),
            td_quote: None,
            collateral: Some(v.tdx_v4_collateral.to_vec()),
            chain: vec![],
            vmpl: None,
            verifies: true,
        },
        Evidence {
            name: "tdx-outdated",
            platform: Platform::Tdx,
            raw: v.tdx_outdated_quote.to_vec(),
            td_quote: None,
            collateral: Some(v.tdx_outdated_collateral.to_vec()),
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "azure-tdx",
            platform: Platform::AzureTdx,
            raw: v.azure_tdx_hcl.to_vec(),
            td_quote: Some(v.azure_tdx_quote.to_vec()),
            collateral: None,
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "azure-tdx-v4-collateral",
            platform: Platform::AzureTdx,
            raw: v.azure_tdx_hcl.to_vec(),
            td_quote: Some(v.azure_tdx_quote.to_vec()),
            collateral: Some(v.tdx_v4_collateral.to_vec()),
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "sim",
            platform: Platform::Sim,
            raw: sim_evidence(&sim, attest::SIM_MEASUREMENT, false),
            td_quote: None,
            collateral: None,
            chain: vec![],
            vmpl: None,
            verifies: true,
        },
        Evidence {
            name: "sim-debug",
            platform: Platform::Sim,
            raw: sim_evidence(&sim, attest::SIM_MEASUREMENT, true),
            td_quote: None,
            collateral: None,
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "sim-other-root",
            platform: Platform::Sim,
            raw: sim_evidence(
                &SimSigner::with_root(b"attacker", b"chip"),
                attest::SIM_MEASUREMENT,
                false,
            ),
            td_quote: None,
            collateral: None,
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
        Evidence {
            name: "snp-report-as-tdx",
            platform: Platform::Tdx,
            raw: v.milan_report.clone(),
            td_quote: None,
            collateral: Some(v.tdx_v4_collateral.to_vec()),
            chain: vec![],
            vmpl: None,
            verifies: false,
        },
    ];
    let platform_index = |p: Platform| match p {
        Platform::Snp => 0,
        Platform::Tdx => 1,
        Platform::AzureSnp => 2,
        Platform::AzureTdx => 3,
        Platform::Sim => 4,
    };
    for e in &evidence {
        let bundle = EvidenceBundle {
            platform: e.platform,
            report: B64.encode(&e.raw),
            cert_chain: e.chain.clone(),
            collateral: e
                .collateral
                .as_ref()
                .map(|c| serde_json::from_slice(c).unwrap()),
            td_quote: e.td_quote.as_ref().map(|q| B64.encode(q)),
            host_public_key: (e.platform == Platform::Sim).then(|| hex::encode([4u8; 97])),
            contract_digest: (e.platform == Platform::Sim).then(|| hex::encode([9u8; 32])),
        };
        // The same check the targets run; report what the fixed reference values say.
        let result = verify(&bundle, e.vmpl);
        println!(
            "evidence {:26} {}",
            e.name,
            match &result {
                Ok(()) => "verifies".to_string(),
                Err(err) => format!("refused: {err}"),
            }
        );
        assert_eq!(
            result.is_ok(),
            e.verifies,
            "evidence {} verifies: {result:?}",
            e.name
        );
        attest::check_bundle(&bundle, parts::JULY_2025, e.vmpl);
        if e.vmpl.is_none() {
            corpus.add(
                "evidence_json",
                format!("{}.json", e.name),
                serde_json::to_vec_pretty(&bundle).unwrap(),
            );
        }
        let vmpl_sel = e.vmpl.map_or(0, |n| n as u8 + 1);
        // tdx-outdated's collateral is valid in March 2026 only: there it meets the TCB check.
        let time = if e.name == "tdx-outdated" { 1 } else { 0 };
        let ctl = Control::encode(platform_index(e.platform), time, vmpl_sel);
        let empty = Vec::new();
        let mut p: Vec<&[u8]> = vec![
            &ctl,
            &e.raw,
            e.td_quote.as_ref().unwrap_or(&empty),
            e.collateral.as_ref().unwrap_or(&empty),
        ];
        p.extend(e.chain.iter().map(|c| c.as_bytes()));
        corpus.add("evidence_parts", e.name, parts_seed(&p));
    }
}

fn verify(bundle: &EvidenceBundle, vmpl: Option<u32>) -> Result<(), cleanroom_attest::AttestError> {
    let u = cleanroom_attest::inspect_unverified(bundle)?;
    let mut host_data = [0u8; 32];
    host_data.copy_from_slice(&u.host_data[..32]);
    let expected = cleanroom_attest::Expected {
        report_data: u.report_data,
        host_data,
    };
    cleanroom_attest::verify(bundle, &attest::refs(vmpl), &expected, parts::JULY_2025).map(|_| ())
}

/// `seedgen [policy] [attest] [formats] [room]`: the seeds of those crates' targets (default: all);
/// the corpora of the others are left alone.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |group: &str| args.is_empty() || args.iter().any(|a| a == group);
    let mut corpus = Corpus::default();
    if wanted("policy") {
        policy_seeds(&mut corpus);
    }
    if wanted("attest") {
        attest_seeds(&mut corpus);
    }
    if wanted("formats") {
        formats_seeds::formats_seeds(&mut corpus);
    }
    if wanted("room") {
        room_seeds::room_seeds(&mut corpus);
    }
    corpus.write();
}
