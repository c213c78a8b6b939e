//! Sealed-stream throughput against `openssl speed -evp aes-256-gcm`, on one core, in the
//! same run. Run: `cargo bench -p cleanroom-cli --bench seal` (see docs/PERFORMANCE.md).
//!
//! Prints MB/s (10^6 bytes per second) for sealing and opening 256 MiB in memory with 1 MiB
//! segments, openssl's 1 MiB-block AES-256-GCM figure, and the ratio of each to openssl;
//! then the cost of one durable audit-log append on a short and on a 10 000-entry log,
//! against a bare `write + fsync` of one line in the same directory; then runs the two-party
//! demo's query (100k impressions, 20k conversions, brokers on 127.0.0.1, the one-shot room
//! process) three times and prints the median time of each run phase.

use std::process::Command;
use std::time::{Duration, Instant};

use cleanroom_formats::stream::{self, DEFAULT_SEGMENT_SIZE, DataKey};

const TOTAL: usize = 256 << 20;
const ROUNDS: usize = 5;

fn best_of(mut f: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("ROUNDS > 0")
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// openssl's AES-256-GCM throughput for 1 MiB blocks, in MB/s, if openssl is installed.
fn openssl_mbps() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-gcm",
            "-bytes",
            "1048576",
            "-seconds",
            "3",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Last line: "AES-256-GCM  <k-bytes/s>k"
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with("aes-256-gcm"))?;
    let k: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(k * 1000.0 / 1e6)
}

fn demo_phases() {
    const RUNS: usize = 3;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut phases: Vec<(String, Vec<Duration>)> = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        // The demo's room (steps 1 to 5), then its query run by the one-shot room process,
        // whose report carries the phase timings.
        let demo =
            cleanroom_cli::demo::setup(&dir.path().join("demo"), 100_000, &mut std::io::sink())
                .expect("demo setup");
        let report = rt
            .block_on(cleanroom_cli::processes::run_room(&demo.query))
            .expect("the demo query runs");
        for (name, d) in report.phases {
            match phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(d),
                None => phases.push((name, vec![d])),
            }
        }
    }
    println!("demo run phases, 100k impressions + 20k conversions, median of {RUNS}");
    for (name, mut v) in phases {
        v.sort();
        println!(
            "  {name:12} {:8.1} ms",
            v[v.len() / 2].as_secs_f64() * 1000.0
        );
    }
}

/// The AEAD the sealed stream used before it moved to ring: RustCrypto's `aes-gcm`
/// encrypting the same data in 1 MiB blocks (best of [`ROUNDS`]).
fn rustcrypto_aes_gcm(data: &[u8]) -> Duration {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&[7u8; 32]).expect("32-byte key");
    let mut buf = vec![0u8; DEFAULT_SEGMENT_SIZE as usize];
    best_of(|| {
        for (i, chunk) in data.chunks(buf.len()).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            buf[..chunk.len()].copy_from_slice(chunk);
            cipher
                .encrypt_in_place_detached(
                    aes_gcm::Nonce::from_slice(&nonce),
                    b"",
                    &mut buf[..chunk.len()],
                )
                .expect("encrypt");
        }
    })
}

fn main() {
    let key = DataKey::generate();
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    let mut sealed = Vec::with_capacity(TOTAL + TOTAL / 1000 + 1024);
    let seal_t = best_of(|| {
        sealed.clear();
        stream::seal(
            &key,
            "bench",
            DEFAULT_SEGMENT_SIZE,
            &mut &data[..],
            &mut sealed,
        )
        .expect("seal");
    });
    let open_t = best_of(|| {
        let mut n = 0usize;
        stream::open_into(&key, Some("bench"), &mut &sealed[..], |c| {
            n += c.len();
            Ok(())
        })
        .expect("open");
        assert_eq!(n, TOTAL);
    });
    let seal_mbps = mbps(TOTAL, seal_t);
    let open_mbps = mbps(TOTAL, open_t);
    let previous_mbps = mbps(TOTAL, rustcrypto_aes_gcm(&data));
    println!("sealed-stream, 256 MiB, 1 MiB segments, 1 core, best of {ROUNDS}");
    println!("  seal  {seal_mbps:8.0} MB/s");
    println!("  open  {open_mbps:8.0} MB/s");
    println!(
        "  RustCrypto aes-gcm (the stream's AEAD before ring), 1 MiB blocks: {previous_mbps:8.0} MB/s"
    );
    match openssl_mbps() {
        Some(o) => {
            println!("  openssl speed -evp aes-256-gcm (1 MiB blocks, 1 core): {o:8.0} MB/s");
            println!(
                "  ratio seal/openssl {:.2}x, open/openssl {:.2}x",
                seal_mbps / o,
                open_mbps / o
            );
        }
        None => {
            println!("  openssl not found: install it (apt-get install openssl) for the baseline")
        }
    }
    audit_appends();
    demo_phases();
}

/// Median time of `n` calls of `f`.
fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[n / 2]
}

fn audit_appends() {
    use cleanroom_formats::audit::{Decision, Step};
    use cleanroom_formats::fsutil::Root;
    use cleanroom_room::audit::{AuditLog, Event};
    use std::io::Write;
    const BIG: usize = 10_000;
    const N: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Root::open(dir.path()).expect("root");
    let ev = Event {
        event: Step::KeyRequest,
        subject: "publisher/dataset/impressions",
        decision: Decision::Granted,
        reason: "key released by http://127.0.0.1:8080 after attestation",
    };
    let mut log = AuditLog::open(&root, Some("bench".into())).expect("log");
    let short = median_of(N, || log.append(ev.clone()).expect("append"));
    while log.entries().len() < BIG {
        log.append(ev.clone()).expect("append");
    }
    drop(log);
    let mut log = AuditLog::open(&root, Some("bench".into())).expect("reopen");
    let long = median_of(N, || log.append(ev.clone()).expect("append"));
    let line = vec![b'x'; 400];
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.path().join("baseline"))
        .expect("baseline");
    let bare = median_of(N, || {
        f.write_all(&line).expect("write");
        f.sync_data().expect("fsync");
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("audit log append (one entry, fsynced), median of {N}");
    println!("  log of {N} entries:    {:8.3} ms", ms(short));
    println!("  log of {BIG} entries: {:8.3} ms", ms(long));
    println!("  bare write+fsync:     {:8.3} ms", ms(bare));
    println!(
        "  ratio long/short {:.2}x, long/bare {:.2}x",
        ms(long) / ms(short),
        ms(long) / ms(bare)
    );
}
