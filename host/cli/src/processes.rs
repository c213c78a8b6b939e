//! The room and the key brokers as their own processes, for the demo and the tests: the
//! room binary that runs is the one a VM image would ship (and the one whose SHA-384 is the
//! `sim` measurement), the brokers are the owners' own `cleanroom-kbs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use cleanroom_room::run::{RunConfig, RunReport};

use crate::commands::delegate::sibling;

/// When run from a source tree by cargo (`cargo run -p cleanroom-cli -- demo`), build the
/// room's and the broker's binaries beside this one if they are missing or older than it
/// (a no-op when they are fresh). Elsewhere they must be installed beside `cleanroom`.
fn ensure_built() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if std::env::var_os("CLEANROOM_NO_BIN_BUILD").is_some() {
        return Ok(());
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    if !manifest.is_file() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    if exe.file_stem().is_none_or(|s| s != "cleanroom") {
        // A test binary: `cargo test` built the binaries itself.
        return Ok(());
    }
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let me = modified(&exe);
    let stale = ["cleanroom-room", "cleanroom-kbs"].iter().any(|b| {
        sibling(b)
            .ok()
            .and_then(|p| modified(&p))
            .is_none_or(|t| me.is_some_and(|m| t < m))
    });
    if !stale {
        return Ok(());
    }
    let release = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--bins",
        "-p",
        "cleanroom-cli",
        "-p",
        "cleanroom-room",
        "-p",
        "cleanroom-kbs",
        "--manifest-path",
    ])
    .arg(&manifest);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo to build cleanroom-room and cleanroom-kbs")?;
    if !status.success() {
        bail!("building cleanroom-room and cleanroom-kbs failed");
    }
    Ok(())
}

/// The room binary (`cleanroom-room`) beside this one.
pub fn room_binary() -> anyhow::Result<PathBuf> {
    ensure_built()?;
    sibling("cleanroom-room")
}

/// A key broker serving on 127.0.0.1 in its own process; stopped when dropped.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The SPKI SHA-256 of the certificate it serves, as it printed it.
    pub spki_sha256: Option<String>,
}

impl BrokerProcess {
    /// Start `cleanroom-kbs serve` over HTTPS (the certificate and key beside `db`, as
    /// `kbs init` writes them) on a free port of 127.0.0.1 and wait until it listens.
    pub fn start(db: &Path, master_key: &Path) -> anyhow::Result<Self> {
        Self::start_on(db, master_key, "127.0.0.1:0")
    }

    /// What `cleanroom kbs init` and `kbs serve` do for a new owner, in `dir`: a master key
    /// (`kbs.master-key`), an empty store (`kbs.db`), a TLS identity beside it, and the
    /// broker started on a free port of 127.0.0.1.
    pub fn init_and_start(dir: &Path) -> anyhow::Result<Self> {
        use cleanroom_formats::fsutil::{self, FileMode};
        let master = dir.join("kbs.master-key");
        let mk = cleanroom_kbs::store::MasterKey::generate();
        fsutil::write_file_atomic(&master, mk.to_file_text().as_bytes(), FileMode::Secret)?;
        let db = dir.join("kbs.db");
        drop(cleanroom_kbs::store::Store::init(&db, mk)?);
        cleanroom_kbs::tls::TlsIdentity::generate()?.write(
            &cleanroom_kbs::tls::default_cert_path(&db),
            &cleanroom_kbs::tls::default_key_path(&db),
        )?;
        Self::start(&db, &master)
    }

    /// [`BrokerProcess::start`] on address `listen` (e.g. to restart a broker where its
    /// contract says it is).
    pub fn start_on(db: &Path, master_key: &Path, listen: &str) -> anyhow::Result<Self> {
        ensure_built()?;
        let bin = sibling("cleanroom-kbs")?;
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", listen, "--db"])
            .arg(db)
            .arg("--master-key")
            .arg(master_key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let mut pin_line = String::new();
        stdout.read_line(&mut pin_line)?;
        let (Some(addr), Some(pin)) = (
            line.trim().strip_prefix("listening on "),
            pin_line.trim().strip_prefix("spki-sha256 "),
        ) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not start over HTTPS (it printed {line:?} {pin_line:?})",
                bin.display()
            );
        };
        Ok(Self {
            url: format!("https://{addr}"),
            spki_sha256: Some(pin.to_string()),
            child,
        })
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The room service (`cleanroom-room serve --platform sim`) on a free port of 127.0.0.1 in
/// its own process; killed when dropped. Its standard error goes to `STATE.log`.
#[derive(Debug)]
pub struct RoomServiceProcess {
    child: Child,
    /// `https://127.0.0.1:PORT`, as it printed it.
    pub url: String,
    /// Kept open: the service writes to its standard output.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl RoomServiceProcess {
    /// Start the service for `contract` (its signatures in `sigs`) with its state in
    /// `state` and the sealed datasets under `data`, and wait until it listens.
    pub fn start(contract: &Path, sigs: &Path, state: &Path, data: &Path) -> anyhow::Result<Self> {
        let bin = room_binary()?;
        std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
        let log = state.with_extension("log");
        let mut child = Command::new(&bin)
            .arg("serve")
            .arg("--contract")
            .arg(contract)
            .arg("--sigs")
            .arg(sigs)
            .arg("--state")
            .arg(state)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--platform", "sim"])
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating {}", log.display()))?,
            )
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().context("the service's stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        match line.trim().strip_prefix("listening on ") {
            Some(url) => Ok(Self {
                url: url.to_string(),
                child,
                _stdout: stdout,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the room service did not start; its log ({}):\n{}",
                    log.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        }
    }

    /// The service's process id (for its memory figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RoomServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command that runs `cfg` with the room binary in its own process (`cleanroom-room run
/// --platform sim --json`).
pub fn room_command(cfg: &RunConfig) -> anyhow::Result<Command> {
    let bin = room_binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("run")
        .arg("--contract")
        .arg(&cfg.contract)
        .arg("--sigs")
        .arg(&cfg.contract_sigs)
        .arg("--workload")
        .arg(&cfg.workload)
        .arg("--approvals")
        .arg(&cfg.approvals)
        .arg("--proposal")
        .arg(&cfg.proposal)
        .arg("--dir")
        .arg(&cfg.room_dir)
        .arg("--data")
        .arg(&cfg.data_dir)
        .args(["--platform", "sim", "--json"]);
    if let Some(m) = &cfg.module {
        cmd.arg("--module").arg(m);
    }
    Ok(cmd)
}

/// Run `cfg` with the room binary in its own process and return its report; a refusal is an
/// error carrying the room's message.
pub async fn run_room(cfg: &RunConfig) -> anyhow::Result<RunReport> {
    let bin = room_binary()?;
    let mut cmd = room_command(cfg)?;
    let out = cmd
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}",
            err.trim().strip_prefix("error: ").unwrap_or(err.trim())
        );
    }
    serde_json::from_slice(&out.stdout).context("the room's report")
}
