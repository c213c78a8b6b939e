//! The confidential-VM image (issue 13): built reproducibly from the pinned inputs in
//! `images/inputs.lock` and the room binary this test suite built, measured by `cleanroom
//! measure` exactly as an independent tool measures it, and booted under QEMU (software
//! emulation, the INSECURE `sim` platform) with a member CLI on the host verifying the room
//! inside and running the demo query against two brokers on the host.
//!
//! Needs `images/fetch.sh` to have downloaded the inputs, `qemu-system-x86_64`, `cpio`,
//! `mke2fs` and `sev-snp-measure` (`.ci/run` installs them all). Without one, a test says
//! so and skips, except under CI (`CI` set), where it fails.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use crate::common::{Room, Spec, member_dir};
use cleanroom_attest::measure::{self, MeasureError, SnpMeasureInput};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A prerequisite is missing: fail under CI (which must provide it), skip elsewhere.
fn unavailable(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; CI must provide it (.ci/run)");
    }
    eprintln!("SKIPPED: {reason}");
}

/// `tool` on PATH, or in /usr/sbin or /sbin (mke2fs lives there; a non-root PATH lacks them).
fn tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn have(name: &str) -> bool {
    tool(name).is_some()
}

/// The inputs `images/inputs.lock` pins that are not in `images/build/dl/`.
fn missing_inputs() -> Vec<String> {
    let lock = std::fs::read_to_string(repo().join("images/inputs.lock")).unwrap();
    lock.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let url = l.split_whitespace().nth(2).unwrap();
            let file = repo()
                .join("images/build/dl")
                .join(url.rsplit('/').next().unwrap());
            (!file.is_file()).then(|| file.display().to_string())
        })
        .collect()
}

/// Why the image cannot be built here, if it cannot.
fn cannot_build() -> Option<String> {
    let missing = missing_inputs();
    if !missing.is_empty() {
        return Some(format!(
            "image inputs not downloaded ({}): run images/fetch.sh",
            missing.join(", ")
        ));
    }
    ["cpio", "xz", "dpkg-deb"]
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed"))
}

fn room_binary() -> PathBuf {
    cleanroom_cli::processes::room_binary().unwrap()
}

fn cli_binary() -> PathBuf {
    room_binary().with_file_name("cleanroom")
}

/// `images/build.sh --room <the suite's cleanroom-room> --out OUT` (with `--cleanroom <the
/// suite's cleanroom>` if `measure`: it then writes attestation.toml); stderr on failure.
fn build_image(out: &Path, dl: Option<&Path>, measure: bool) -> Result<(), (Option<i32>, String)> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("images/build.sh"))
        .arg("--room")
        .arg(room_binary())
        .arg("--out")
        .arg(out);
    if let Some(dl) = dl {
        cmd.arg("--dl").arg(dl);
    }
    if measure {
        cmd.arg("--cleanroom").arg(cli_binary());
    }
    let o = cmd.output().unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err((
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ))
    }
}

/// The image, built once per test process into the target's tmp dir.
fn image() -> Option<&'static Path> {
    static IMAGE: OnceLock<Option<PathBuf>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Some(why) = cannot_build() {
                unavailable(&why);
                return None;
            }
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image");
            build_image(&out, None, true).unwrap_or_else(|e| panic!("images/build.sh: {e:?}"));
            Some(out)
        })
        .as_deref()
}

const OUTPUTS: [&str; 5] = [
    "vmlinuz",
    "initrd.img",
    "cmdline",
    "OVMF.amdsev.fd",
    "OVMF.inteltdx.fd",
];

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Acceptance 1: two clean builds from the same inputs are byte-identical.
#[test]
fn two_clean_builds_of_the_image_are_byte_identical() {
    if let Some(why) = cannot_build() {
        return unavailable(&why);
    }
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_image(a.path(), None, false).unwrap();
    build_image(b.path(), None, false).unwrap();
    for f in OUTPUTS.iter().chain(["manifest.txt"].iter()) {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between two builds");
        println!("{}  {f}", sha256_hex(&x));
    }
}

/// A pinned input whose bytes are not the pinned ones is refused by the recipe, which names
/// it (and builds nothing).
#[test]
fn the_recipe_refuses_an_input_that_does_not_match_the_lock() {
    if let Some(why) = cannot_build() {
        return unavailable(&why);
    }
    let dl = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo().join("images/build/dl")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "deb") {
            std::fs::copy(&p, dl.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let busybox = std::fs::read_dir(dl.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("busybox-static"))
        .unwrap();
    let mut bytes = std::fs::read(&busybox).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&busybox, bytes).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = build_image(out.path(), Some(dl.path()), false).unwrap_err();
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "build.sh: input busybox: {} does not have the SHA-256 inputs.lock pins (3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744)",
            busybox.display()
        )
    );
    assert!(!out.path().join("initrd.img").exists());
}

/// `cleanroom measure snp` on the image as the CLI prints it.
fn cleanroom_measure_snp(img: &Path, vcpus: u32, vcpu_type: &str) -> String {
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let o = Command::new(cli_binary())
        .args(["measure", "snp", "--ovmf"])
        .arg(img.join("OVMF.amdsev.fd"))
        .arg("--kernel")
        .arg(img.join("vmlinuz"))
        .arg("--initrd")
        .arg(img.join("initrd.img"))
        .arg("--append")
        .arg(&cmdline)
        .arg("--vcpus")
        .arg(vcpus.to_string())
        .arg("--vcpu-type")
        .arg(vcpu_type)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    out.trim()
        .strip_prefix("snp measurement: ")
        .unwrap_or_else(|| panic!("unexpected output {out}"))
        .to_string()
}

/// `sev-snp-measure`'s entry point, through `python3` (its console script may not be on
/// PATH where pip put it, e.g. under pyenv without a rehash).
const SEV_SNP_MEASURE: &str = "import sys; from sevsnpmeasure.cli import main; sys.exit(main())";

/// The same with the independent `sev-snp-measure` (PyPI).
fn sev_snp_measure(img: &Path, vcpus: u32, vcpu_type: &str) -> String {
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let o = Command::new("python3")
        .args(["-c", SEV_SNP_MEASURE])
        .args(["--mode", "snp", "--output-format", "hex", "--ovmf"])
        .arg(img.join("OVMF.amdsev.fd"))
        .arg("--kernel")
        .arg(img.join("vmlinuz"))
        .arg("--initrd")
        .arg(img.join("initrd.img"))
        .arg("--append")
        .arg(&cmdline)
        .arg("--vcpus")
        .arg(vcpus.to_string())
        .arg("--vcpu-type")
        .arg(vcpu_type)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Acceptance 2: the SEV-SNP launch digest of the image (its AmdSev firmware, kernel,
/// initrd and command line) is the one `sev-snp-measure` computes, for several vCPU counts
/// and types.
#[test]
fn snp_launch_digest_of_the_image_matches_sev_snp_measure() {
    let Some(img) = image() else { return };
    let installed = Command::new("python3")
        .args(["-c", "import sevsnpmeasure.cli"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        return unavailable("sev-snp-measure is not installed (pip install sev-snp-measure)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (vcpus, vcpu_type) in [
        (1, "EPYC-v4"),
        (4, "EPYC-v4"),
        (2, "EPYC-Milan"),
        (8, "EPYC-Genoa"),
    ] {
        let ours = cleanroom_measure_snp(img, vcpus, vcpu_type);
        let theirs = sev_snp_measure(img, vcpus, vcpu_type);
        assert_eq!(ours, theirs, "{vcpus} x {vcpu_type}");
        println!("snp {vcpus} x {vcpu_type}: {ours}");
        seen.insert(ours);
    }
    assert_eq!(seen.len(), 4, "each configuration has its own digest");
}

/// The TDX firmware has no SEV-SNP kernel hashes table: measuring a kernel with it is
/// refused (it could not have measured the kernel), naming the firmware.
#[test]
fn snp_measurement_with_a_firmware_that_cannot_measure_the_kernel_is_refused() {
    let Some(img) = image() else { return };
    let err = measure::snp_launch_digest(&SnpMeasureInput {
        ovmf: img.join("OVMF.inteltdx.fd"),
        kernel: Some(img.join("vmlinuz")),
        initrd: Some(img.join("initrd.img")),
        append: Some("console=ttyS0".into()),
        vcpus: 1,
        vcpu_type: "EPYC-v4".into(),
        guest_features: 1,
        vmm: None,
    })
    .unwrap_err();
    match err {
        MeasureError::Ovmf { path, .. } => {
            assert_eq!(path, img.join("OVMF.inteltdx.fd").display().to_string())
        }
        other => panic!("expected MeasureError::Ovmf, got {other:?}"),
    }
}

/// QEMU running the image; killed when dropped.
struct Vm {
    child: Arc<Mutex<Child>>,
    /// Everything the guest printed on its serial console so far.
    console: Arc<Mutex<String>>,
    lines: std::sync::mpsc::Receiver<String>,
    monitor: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Vm {
    /// Wait for a console line starting with `prefix`; `None` if the guest stopped first.
    fn wait_for(&self, prefix: &str) -> Option<String> {
        while let Ok(line) = self.lines.recv() {
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return Some(rest.to_string());
            }
        }
        None
    }

    fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    /// The host port QEMU forwarded to the guest's 8444 (asked for as port 0), from the
    /// monitor's `info usernet`.
    fn forwarded_port(&self) -> u16 {
        let mut s = std::os::unix::net::UnixStream::connect(&self.monitor).unwrap();
        let read_prompt = |s: &mut std::os::unix::net::UnixStream| {
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            while !String::from_utf8_lossy(&buf).contains("(qemu) ") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0, "QEMU monitor closed");
                buf.extend_from_slice(&b[..n]);
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        read_prompt(&mut s);
        s.write_all(b"info usernet\n").unwrap();
        let out = read_prompt(&mut s);
        let line = out
            .lines()
            .find(|l| l.contains("HOST_FORWARD"))
            .unwrap_or_else(|| panic!("no forwarded port in {out}"));
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    }
}

/// An ext4 disk image labelled `label`, holding `dir`'s files (or empty).
fn ext4_disk(path: &Path, label: &str, dir: Option<&Path>, megabytes: u32) {
    let mut cmd = Command::new(tool("mke2fs").unwrap());
    cmd.args(["-q", "-F", "-t", "ext4", "-L", label]);
    if let Some(dir) = dir {
        cmd.arg("-d").arg(dir);
    }
    let o = cmd.arg(path).arg(format!("{megabytes}M")).output().unwrap();
    assert!(o.status.success(), "mke2fs: {o:?}");
}

/// Boot the image under QEMU (TCG: no KVM, no SEV) with the data and state disks, user
/// networking (the host is 10.0.2.2 inside) and the guest's port 8444 forwarded to a free
/// port of the host's 127.0.0.1. `extra_cmdline` is appended to the image's own.
fn boot(img: &Path, data: &Path, state: &Path, dir: &Path, extra_cmdline: &str) -> Vm {
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let monitor = dir.join("monitor.sock");
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-machine", "q35", "-accel", "tcg"])
        // QEMU 7.2's TCG corrupts EFLAGS in CMPXCHG16B now and then (a kernel oops in the
        // SLUB fast path); without the feature the guest uses the locked path.
        .args(["-cpu", "qemu64,-cx16", "-smp", "2", "-m", "2048"])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .arg("-kernel")
        .arg(img.join("vmlinuz"))
        .arg("-initrd")
        .arg(img.join("initrd.img"))
        .arg("-append")
        .arg(format!("{cmdline} {extra_cmdline}"))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            data.display()
        ))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", state.display()))
        .args([
            "-netdev",
            "user,id=n0,hostfwd=tcp:127.0.0.1:0-:8444",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let console = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = std::sync::mpsc::channel();
    {
        let console = console.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).into_owned();
                console.lock().unwrap().push_str(&line);
                let _ = tx.send(line);
                buf.clear();
            }
        });
    }
    let child = Arc::new(Mutex::new(child));
    // A guard against a guest that hangs instead of powering off: stop it after 20
    // minutes (the test then fails on what the console shows, not on a time).
    {
        let child = Arc::downgrade(&child);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(20 * 60));
            if let Some(c) = child.upgrade() {
                let _ = c.lock().unwrap().kill();
            }
        });
    }
    // QEMU creates the monitor socket before it starts the guest.
    let vm = Vm {
        child,
        console,
        lines,
        monitor,
    };
    while !vm.monitor.exists() {
        if let Ok(Some(status)) = vm.child.lock().unwrap().try_wait() {
            panic!("QEMU exited before starting: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    vm
}

/// Run the `cleanroom` CLI; stdout, or a panic with everything it said.
fn cleanroom(args: &[&str]) -> String {
    let o = Command::new(cli_binary()).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "cleanroom {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Acceptance 3: the image boots under QEMU, the room service inside starts on the `sim`
/// platform with the contract and sealed data from its (unmeasured) data disk, and a
/// member's CLI on the host verifies its evidence, proposes, approves, runs the demo query
/// (the room fetches the keys from the two brokers on the host, over HTTPS pinned to their
/// keys) and fetches and opens the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_boots_under_qemu_and_runs_the_demo_query() {
    let Some(img) = image() else { return };
    for tool in ["qemu-system-x86_64", "mke2fs"] {
        if !have(tool) {
            return unavailable(&format!("{tool} is not installed"));
        }
    }
    // Inside the guest the host's 127.0.0.1 is QEMU's 10.0.2.2: the contract names the
    // brokers there (still pinned to their keys).
    let room = Room::new(Spec {
        edit_contract: Box::new(|s| s.replace("\"https://127.0.0.1:", "\"https://10.0.2.2:")),
        ..Spec::default()
    })
    .await;
    assert!(
        std::fs::read_to_string(&room.contract)
            .unwrap()
            .contains("https://10.0.2.2:")
    );
    let disks = room.root().join("disks");
    std::fs::create_dir_all(&disks).unwrap();
    let data = disks.join("data.img");
    let state = disks.join("state.img");
    ext4_disk(&data, "cleanroom-data", Some(&room.room), 64);
    ext4_disk(&state, "cleanroom-state", None, 256);

    let vm = boot(img, &data, &state, &disks, "cleanroom.platform=sim");
    let listening = vm.wait_for("listening on ");
    assert!(
        listening.is_some(),
        "the room did not start in the guest:\n{}",
        vm.console()
    );
    let url = format!("https://127.0.0.1:{}", vm.forwarded_port());

    let contract = room.contract.display().to_string();
    let sigs = room.sigs.display().to_string();
    let key = |m: &str| {
        member_dir(room.root(), m)
            .join(format!("keys/{m}.sign.key"))
            .display()
            .to_string()
    };
    let (adv, publ) = (key("advertiser"), key("publisher"));
    let room_cli = |sub: &str, extra: &[&str]| {
        let mut a = vec![
            "room",
            sub,
            "--room",
            &url,
            "--contract",
            &contract,
            "--sigs",
            &sigs,
        ];
        a.extend_from_slice(extra);
        cleanroom(&a)
    };
    let out = room_cli("verify", &[]);
    assert!(
        out.contains("verified") && out.contains("(pinned)"),
        "{out}"
    );
    let workload = room.workload.display().to_string();
    let out = room_cli("propose", &["--workload", &workload, "--key", &adv]);
    let digest = out.split_whitespace().nth(1).unwrap().to_string();
    room_cli("approve", &["--workload", &digest, "--key", &publ]);
    room_cli("approve", &["--workload", &digest, "--key", &adv]);
    let out = room_cli("run", &["--workload", &digest, "--key", &adv, "--wait"]);
    let record: cleanroom_formats::room_protocol::RunRecord =
        serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(
        record.state,
        cleanroom_formats::room_protocol::RunState::Committed,
        "{record:?}\n{}",
        vm.console()
    );
    let fetched = room.root().join("fetched.cro");
    room_cli(
        "fetch",
        &[
            "--output",
            &record.outputs[0],
            "--key",
            &adv,
            "--out",
            fetched.to_str().unwrap(),
        ],
    );
    assert!(
        room.open_as_advertiser(&fetched)
            .starts_with("campaign,reach"),
        "the advertiser opens the result"
    );
    // Both brokers released their key to the room in the guest.
    assert_eq!(room.keys_released("publisher"), 1);
    assert_eq!(room.keys_released("advertiser"), 1);
    drop(vm);
    room.stop().await;
}

/// `cleanroom measure tdx --tdvf` on the image's TDX firmware.
fn cleanroom_measure_tdx(tdvf: &Path, order: &str) -> String {
    let o = Command::new(cli_binary())
        .args(["measure", "tdx", "--tdvf"])
        .arg(tdvf)
        .args(["--page-add-order", order])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    out.lines()
        .next()
        .and_then(|l| l.strip_prefix("tdx mrtd:"))
        .unwrap_or_else(|| panic!("unexpected output {out}"))
        .trim()
        .to_string()
}

/// Acceptance 4: `cleanroom measure tdx --tdvf` computes the image's MRTD. No independent
/// implementation installs from the package registries, so it is compared with a second
/// one written apart from it (`tests/python/tdvf_mrtd.py`, Python's standard library),
/// for both page-addition orders.
#[test]
fn tdx_mrtd_of_the_image_matches_a_second_implementation() {
    let Some(img) = image() else { return };
    let tdvf = img.join("OVMF.inteltdx.fd");
    let mut seen = Vec::new();
    for order in ["single-pass", "two-pass"] {
        let ours = cleanroom_measure_tdx(&tdvf, order);
        let o = Command::new("python3")
            .arg(repo().join("tests/python/tdvf_mrtd.py"))
            .arg(&tdvf)
            .arg(order)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let theirs = String::from_utf8(o.stdout).unwrap().trim().to_string();
        assert_eq!(ours, theirs, "{order}");
        println!("tdx mrtd ({order}): {ours}");
        seen.push(ours);
    }
    assert_ne!(seen[0], seen[1]);
}

/// A file that is no firmware image (the kernel) has no TDVF metadata: refused, naming the
/// file and what is missing. (The AmdSev build does carry TDX metadata: OVMF's reset vector
/// has it in both builds.)
#[test]
fn tdx_mrtd_of_a_file_without_tdvf_metadata_is_refused() {
    let Some(img) = image() else { return };
    let kernel = img.join("vmlinuz");
    match measure::tdx_mrtd(&kernel, cleanroom_attest::tdvf::PageAddOrder::SinglePass) {
        Err(MeasureError::Tdvf { path, problem }) => {
            assert_eq!(path, kernel.display().to_string());
            assert_eq!(problem, cleanroom_attest::tdvf::TdvfError::NoGuidTable);
        }
        other => panic!("expected MeasureError::Tdvf(NoGuidTable), got {other:?}"),
    }
}

/// `cleanroom measure tdx --kernel` on the image's kernel, initrd and command line, with
/// `extra` flags: (RTMR1, RTMR2) as the CLI prints them.
fn cleanroom_measure_tdx_rtmrs(img: &Path, extra: &[&str]) -> (String, String) {
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let o = Command::new(cli_binary())
        .args(["measure", "tdx", "--kernel"])
        .arg(img.join("vmlinuz"))
        .arg("--initrd")
        .arg(img.join("initrd.img"))
        .arg("--append")
        .arg(&cmdline)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .trim()
            .to_string()
    };
    (field("tdx rtmr1:"), field("tdx rtmr2:"))
}

/// The same with the second implementation, `tests/python/tdx_rtmr.py`.
fn python_tdx_rtmrs(img: &Path, extra: &[&str]) -> (String, String) {
    let cmdline = std::fs::read_to_string(img.join("cmdline")).unwrap();
    let o = Command::new("python3")
        .arg(repo().join("tests/python/tdx_rtmr.py"))
        .arg(img.join("vmlinuz"))
        .arg(img.join("initrd.img"))
        .arg(&cmdline)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .trim()
            .to_string()
    };
    (field("rtmr1 "), field("rtmr2 "))
}

/// TDX RTMR1-2 of the image booted directly by its TDVF, computed from its files by
/// `cleanroom measure tdx --kernel`, equal those of a second implementation written apart
/// from it (`tests/python/tdx_rtmr.py`, Python's standard library), for the kernel measured
/// as the file (QEMU 10.0+, the default) and as QEMU before 10.0 patches its setup header
/// (1 GiB, 2 GiB and 8 GiB of RAM), and for both places TDVF puts `initrd=initrd`. No
/// hardware quote of this image exists to compare with.
#[test]
fn tdx_rtmr1_and_rtmr2_of_the_image_match_a_second_implementation() {
    let Some(img) = image() else { return };
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("as the file, initrd=initrd first", &[], &[]),
        (
            "as the file, initrd=initrd last",
            &["--initrd-arg", "suffix"],
            &["--initrd-suffix"],
        ),
        (
            "patched, 1 GiB",
            &[
                "--kernel-setup",
                "qemu-patched",
                "--memory",
                "1024",
                "--initrd-arg",
                "suffix",
            ],
            &["--initrd-suffix", "--qemu-patched", "0x40000000"],
        ),
        (
            "patched, 2 GiB",
            &[
                "--kernel-setup",
                "qemu-patched",
                "--memory",
                "2G",
                "--initrd-arg",
                "suffix",
            ],
            &["--initrd-suffix", "--qemu-patched", "0x80000000"],
        ),
        (
            "patched, 8 GiB",
            &[
                "--kernel-setup",
                "qemu-patched",
                "--memory",
                "8G",
                "--initrd-arg",
                "suffix",
            ],
            &["--initrd-suffix", "--qemu-patched", "0x200000000"],
        ),
    ];
    let mut results = Vec::new();
    for (name, ours_flags, theirs_flags) in cases {
        let ours = cleanroom_measure_tdx_rtmrs(img, ours_flags);
        let theirs = python_tdx_rtmrs(img, theirs_flags);
        assert_eq!(ours, theirs, "{name}");
        println!("tdx {name}: rtmr1 {} rtmr2 {}", ours.0, ours.1);
        results.push(ours);
    }
    let [file, file_suffix, p1, p2, p8] = results.try_into().unwrap();
    // RTMR1 holds the kernel: the same file, the same RTMR1, wherever initrd=initrd goes.
    assert_eq!(file.0, file_suffix.0);
    // RTMR2 holds the command line TDVF built.
    assert_ne!(file.1, file_suffix.1);
    assert_eq!(file_suffix.1, p1.1);
    // The patched header holds the initrd's address: below 2.75 GiB it moves with the RAM;
    // at 2 GiB and from 2.75 GiB on, 2 GiB of RAM are below 4 GiB.
    assert_ne!(p1.0, file.0);
    assert_ne!(p1.0, p8.0);
    assert_eq!(p2.0, p8.0);
}

/// `images/build.sh --cleanroom` writes the RTMR1-2 `cleanroom measure tdx` computes into the
/// attestation snippet.
#[test]
fn the_image_attestation_snippet_pins_the_computed_rtmr1_and_rtmr2() {
    let Some(img) = image() else { return };
    let (rtmr1, rtmr2) = cleanroom_measure_tdx_rtmrs(img, &[]);
    let snippet = std::fs::read_to_string(img.join("attestation.toml")).unwrap();
    assert!(
        snippet.contains(&format!("\nrtmr1 = \"{rtmr1}\"\n")),
        "{snippet}"
    );
    assert!(
        snippet.contains(&format!("\nrtmr2 = \"{rtmr2}\"\n")),
        "{snippet}"
    );
}

/// The Authenticode ranges, checked on the real kernel: its SHA-256 Authenticode digest is
/// the one Debian signed (the SpcIndirectDataContent digest in its certificate table), which
/// the signing tool computed independently of this code.
#[test]
fn the_kernel_authenticode_digest_is_the_one_its_signature_carries() {
    let Some(img) = image() else { return };
    let kernel = std::fs::read(img.join("vmlinuz")).unwrap();
    // DigestInfo { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32) }
    let prefix = hex::decode("0609608648016503040201050004 20".replace(' ', "")).unwrap();
    let at = kernel
        .windows(prefix.len())
        .position(|w| w == prefix)
        .expect("the kernel carries an Authenticode signature with a SHA-256 digest");
    let signed = &kernel[at + prefix.len()..at + prefix.len() + 32];
    let ours = cleanroom_attest::rtmr::authenticode_sha256(&kernel).unwrap();
    assert_eq!(hex::encode(ours), hex::encode(signed));
}

/// A file that is no kernel (the initrd) is refused, naming the kernel file and why.
#[test]
fn tdx_rtmrs_of_a_file_that_is_no_kernel_are_refused() {
    let Some(img) = image() else { return };
    let not_a_kernel = img.join("initrd.img");
    let err = measure::tdx_direct_boot_rtmrs(&measure::TdxDirectBootInput {
        kernel: not_a_kernel.clone(),
        initrd: None,
        append: None,
        kernel_setup: cleanroom_attest::rtmr::KernelSetup::AsFile,
        initrd_argument: cleanroom_attest::rtmr::InitrdArgument::Prefix,
    })
    .unwrap_err();
    match err {
        MeasureError::TdxDirectBoot { kernel, problem } => {
            assert_eq!(kernel, not_a_kernel.display().to_string());
            assert_eq!(problem, cleanroom_attest::rtmr::DirectBootError::NotBzImage);
        }
        other => panic!("expected MeasureError::TdxDirectBoot(NotBzImage), got {other:?}"),
    }
}
