//! A two-member room on loopback: keys, two brokers, a signed contract, sealed datasets, an
//! approved workload. Built with the same library calls the CLI uses.

#![allow(dead_code, clippy::unwrap_used)]

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::FileMode;
use cleanroom_kbs::commands as kbs_cmd;
use cleanroom_kbs::events::{Event, EventDecision, EventKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleanroom_cli::commands::{contract as contract_cmd, workload as workload_cmd};
use cleanroom_cli::demo;
use cleanroom_cli::keygen::keygen;
use cleanroom_cli::{sealing, signing};
use cleanroom_formats::audit::Entry;
use cleanroom_formats::stream::DEFAULT_SEGMENT_SIZE;
use cleanroom_kbs::server::{self, RunningBroker};
use cleanroom_kbs::store::{MasterKey, Store};
use cleanroom_kbs::tls::{self as kbs_tls, TlsIdentity};
use cleanroom_room::RoomError;
use cleanroom_room::attestation::{self, SimSource};
use cleanroom_room::run::{RunConfig, RunReport};
use tempfile::TempDir;

pub const MEMBERS: [&str; 2] = ["publisher", "advertiser"];

/// What to build.
pub struct Spec {
    pub impressions_csv: String,
    pub conversions_csv: String,
    pub sql: String,
    /// Applied to the contract text before signing.
    pub edit_contract: Box<dyn Fn(String) -> String>,
    /// Segment size for the sealed CSV (small values make multi-segment files).
    pub segment_size: u32,
    /// Members besides the two data owners (keys made, in the contract, signing it); no
    /// data, no broker.
    pub extra_members: Vec<String>,
}

impl Default for Spec {
    fn default() -> Self {
        let (i, c) = demo::generate(5_000, 7);
        Self {
            impressions_csv: i,
            conversions_csv: c,
            sql: demo::DEMO_SQL.to_string(),
            edit_contract: Box::new(|s| s),
            segment_size: DEFAULT_SEGMENT_SIZE,
            extra_members: Vec::new(),
        }
    }
}

pub struct Room {
    pub tmp: TempDir,
    pub room: PathBuf,
    pub contract: PathBuf,
    pub sigs: PathBuf,
    pub workload: PathBuf,
    pub approvals: PathBuf,
    pub brokers: Vec<RunningBroker>,
    pub digest: [u8; 32],
}

/// The demo's contract text (members with fresh keys, brokers at an unused address): for
/// planning and parsing, not for runs.
pub fn demo_contract_text() -> String {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<String> = MEMBERS
        .iter()
        .map(|m| keygen(m, &tmp.path().join(m)).unwrap())
        .collect();
    let broker = demo::BrokerRef {
        url: "http://127.0.0.1:1".into(),
        spki_sha256: None,
    };
    demo::contract_text(&entries, &"00".repeat(48), &broker, &broker)
}

pub fn member_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// Wait (at most two minutes) until a process started with `CLEANROOM_PAUSE_UNTIL=gate` has
/// reached its pause point (it writes `gate.reached`); `what` says which, for the failure.
pub fn wait_until_paused(gate: &Path, what: &str) {
    let reached = gate.with_extension("reached");
    let start = std::time::Instant::now();
    while !reached.exists() {
        assert!(start.elapsed().as_secs() < 120, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A running broker as a contract names it (URL and pinned key).
pub fn broker_ref(b: &RunningBroker) -> demo::BrokerRef {
    demo::BrokerRef {
        url: b.url.clone(),
        spki_sha256: b.spki_sha256.clone(),
    }
}

/// A member's broker TLS identity (what its `kbs init` wrote beside its database).
pub fn broker_identity(root: &Path, member: &str) -> TlsIdentity {
    let db = member_dir(root, member).join("kbs.db");
    TlsIdentity::read(
        &kbs_tls::default_cert_path(&db),
        &kbs_tls::default_key_path(&db),
    )
    .unwrap()
}

impl Room {
    pub async fn new(spec: Spec) -> Room {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let room = root.join("room");
        let mut entries = Vec::new();
        let mut brokers = Vec::new();
        for name in MEMBERS {
            let d = member_dir(&root, name);
            entries.push(keygen(name, &d.join("keys")).unwrap());
            let mk = MasterKey::generate();
            cleanroom_formats::fsutil::write_file_atomic(
                &d.join("kbs.master-key"),
                mk.to_file_text().as_bytes(),
                FileMode::Secret,
            )
            .unwrap();
            let db = d.join("kbs.db");
            let store = Store::init(&db, mk).unwrap();
            // The broker's TLS identity, where `kbs init` writes it (the contract pins it).
            let identity = TlsIdentity::generate().unwrap();
            identity
                .write(
                    &kbs_tls::default_cert_path(&db),
                    &kbs_tls::default_key_path(&db),
                )
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            brokers.push(server::spawn(store, listener, Some(&identity)).unwrap());
        }
        for name in &spec.extra_members {
            let d = member_dir(&root, name);
            entries.push(keygen(name, &d.join("keys")).unwrap());
        }
        let measurement = hex::encode(attestation::self_measurement().unwrap());
        let text = demo::contract_text(
            &entries,
            &measurement,
            &broker_ref(&brokers[0]),
            &broker_ref(&brokers[1]),
        );
        // Runs in this process measure the test binary; runs of the room binary (the CLI's
        // `run`, as the module guide does) measure `cleanroom-room`: the contract lists both.
        let room_bin = cleanroom_cli::processes::room_binary().unwrap();
        let room_measurement = hex::encode(cleanroom_attest::measure::sim_measurement(
            &std::fs::read(room_bin).unwrap(),
        ));
        let text = text.replacen(
            &format!("measurements = [\"{measurement}\"]"),
            &format!("measurements = [\"{measurement}\", \"{room_measurement}\"]"),
            1,
        );
        let text = (spec.edit_contract)(text);
        let contract = room.join("contract.toml");
        cleanroom_formats::fsutil::write_file_atomic(&contract, text.as_bytes(), FileMode::Public)
            .unwrap();
        let sigs = contract_cmd::default_sigs(&contract);
        let signers = MEMBERS
            .iter()
            .map(|m| m.to_string())
            .chain(spec.extra_members.iter().cloned());
        for name in signers {
            signing::sign_contract(
                &contract,
                &member_dir(&root, &name).join(format!("keys/{name}.sign.key")),
                &sigs,
            )
            .unwrap();
        }
        let parsed = cleanroom_policy::Contract::parse(&text, "contract.toml").unwrap();
        for (name, ds, plain) in [
            ("publisher", "impressions", &spec.impressions_csv),
            ("advertiser", "conversions", &spec.conversions_csv),
        ] {
            let d = member_dir(&root, name);
            let plain_path = d.join(format!("{ds}.csv"));
            cleanroom_formats::fsutil::write_file_atomic(
                &plain_path,
                plain.as_bytes(),
                FileMode::Secret,
            )
            .unwrap();
            let location = parsed.dataset(ds).unwrap().location.get_ref().clone();
            let key_path = d.join(format!("{ds}.key"));
            let k = sealing::seal(
                &parsed,
                &contract,
                ds,
                &plain_path,
                &room.join(&location),
                None,
                spec.segment_size,
            )
            .unwrap()
            .keys;
            cleanroom_formats::keyfile::write(&key_path, &k, ds).unwrap();
            std::fs::remove_file(&plain_path).unwrap();
            let store = kbs_cmd::open_store(&d.join("kbs.db"), &d.join("kbs.master-key")).unwrap();
            kbs_cmd::put(
                &store,
                &contract,
                &sigs,
                ds,
                &key_path,
                &room.join(&location),
            )
            .unwrap();
        }
        let workload = room.join("workload.toml");
        let wtext = demo::workload_text(&spec.sql);
        cleanroom_formats::fsutil::write_file_atomic(&workload, wtext.as_bytes(), FileMode::Public)
            .unwrap();
        let approvals = workload_cmd::default_approvals(&workload);
        Room {
            digest: parsed.digest().0,
            tmp,
            room,
            contract,
            sigs,
            workload,
            approvals,
            brokers,
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn key_of(&self, member: &str) -> PathBuf {
        member_dir(self.root(), member).join(format!("keys/{member}.sign.key"))
    }

    pub fn proposal(&self) -> PathBuf {
        workload_cmd::default_proposal(&self.workload)
    }

    /// The advertiser (the demo contract's proposer) proposes the current workload file.
    /// For a module workload the proposal records the workload's own digest and world:
    /// `module publish`'s component checks are tested through the CLI; here the proposal
    /// only has to satisfy governance (a test may store tampered bytes on purpose).
    pub fn propose(&self) {
        let w = cleanroom_formats::load::load_workload(&self.workload).unwrap();
        let module = w
            .module_digest
            .as_ref()
            .map(|d| cleanroom_policy::proposal::ModuleSummary {
                digest: d.clone(),
                world: w.kind.as_str().to_string(),
                imports: vec![],
            });
        signing::propose(
            &self.contract,
            &self.sigs,
            &self.workload,
            &self.key_of("advertiser"),
            module,
            &self.proposal(),
        )
        .unwrap();
    }

    /// `member` approves the current workload (proposed afresh by the advertiser).
    pub fn approve(&self, member: &str) {
        self.propose();
        signing::approve(
            &self.contract,
            &self.sigs,
            &self.workload,
            &self.key_of(member),
            Some(&self.proposal()),
            &self.approvals,
            |p| p,
        )
        .unwrap();
    }

    pub fn approve_all(&self) {
        for m in MEMBERS {
            self.approve(m);
        }
    }

    pub fn config(&self) -> RunConfig {
        self.config_with(SimSource {
            measurement: attestation::self_measurement().unwrap(),
            launch_digest: self.digest,
        })
    }

    pub fn config_with(&self, source: SimSource) -> RunConfig {
        RunConfig {
            contract: self.contract.clone(),
            contract_sigs: self.sigs.clone(),
            workload: self.workload.clone(),
            approvals: self.approvals.clone(),
            proposal: self.proposal(),
            room_dir: self.room.clone(),
            data_dir: self.room.clone(),
            evidence: Arc::new(source),
            memory_limit: 1 << 30,
            module: None,
            cancel: None,
        }
    }

    pub async fn run(&self) -> Result<RunReport, RoomError> {
        cleanroom_room::run::run(&self.config()).await
    }

    pub fn outputs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.room.join("outputs")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn audit(&self) -> Vec<Entry> {
        let text = std::fs::read(self.room.join("audit.jsonl")).unwrap();
        cleanroom_verify::audit::verify_bytes(&text).expect("audit log verifies");
        String::from_utf8(text)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The events at a member's broker, whose chain must verify.
    pub fn broker_events(&self, member: &str) -> Vec<Event> {
        let d = member_dir(self.root(), member);
        kbs_cmd::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"))
            .unwrap()
            .verify_events()
            .expect("the broker's event log verifies")
            .0
    }

    pub fn keys_released(&self, member: &str) -> usize {
        self.broker_events(member)
            .iter()
            .filter(|e| e.kind == EventKind::Release && e.decision == EventDecision::Granted)
            .count()
    }

    /// Open the single output as the advertiser.
    pub fn open_output(&self) -> String {
        let outs = self.outputs();
        assert_eq!(outs.len(), 1, "exactly one output");
        self.open_as_advertiser(&outs[0])
    }

    /// Open the sealed output at `path` with the advertiser's key.
    pub fn open_as_advertiser(&self, path: &Path) -> String {
        let file = std::fs::read(path).unwrap();
        let sk = cleanroom_formats::keys::encryption_key(
            &member_dir(self.root(), "advertiser").join("keys/advertiser.enc.key"),
        )
        .unwrap();
        let opened = cleanroom_formats::envelope::open(&file, "advertiser", &sk).unwrap();
        String::from_utf8(opened.data.to_vec()).unwrap()
    }

    /// Assert a refused run: no output, a `refused` audit entry for `event`, and return its reason.
    pub fn assert_refused(&self, event: Step) -> String {
        assert!(self.outputs().is_empty(), "a refused run wrote an output");
        let entries = self.audit();
        let e = entries
            .iter()
            .find(|e| e.decision == Decision::Refused)
            .unwrap_or_else(|| panic!("no refused audit entry in {entries:#?}"));
        assert_eq!(e.event, event, "refused at the wrong step: {e:#?}");
        assert_eq!(entries.last().unwrap().event, Step::Checkpoint);
        e.reason.clone()
    }

    pub async fn stop(self) {
        for b in self.brokers {
            b.stop().await;
        }
    }
}

/// Whether `python3` can import every module of `modules`; under CI (`CI` set) a missing one
/// fails the test instead (.ci/run installs them).
pub fn python_has(modules: &[&str]) -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = format!(
            "python3 with {} is not available: `python3 -m pip install {}` (.ci/run does)",
            modules.join(", "),
            modules.join(" ")
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
    }
    ok
}
