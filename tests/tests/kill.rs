//! Crash consistency of the room (issue 15, and the crash points issue 10 asks for): the
//! room's run, as its own process, is killed with SIGKILL at points spread over a whole run,
//! two dozen times. After every kill the room is consistent: the audit chain verifies (a torn
//! last line, an append cut short and never acknowledged, is the only damage allowed) and no
//! output file exists without the committed audit entry naming it. The next run completes
//! and records what it recovered (temporary files removed, outputs recorded but never
//! written).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use crate::common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Instant;

use crate::common::{Room, Spec};
use cleanroom_formats::audit::{self, Decision, Entry, Step};
use rand::{Rng, SeedableRng};

/// The names in the room's outputs directory.
fn output_names(room: &Room) -> Vec<String> {
    match std::fs::read_dir(room.room.join("outputs")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn subjects(entries: &[Entry], decision: Decision) -> HashSet<String> {
    entries
        .iter()
        .filter(|e| e.event == Step::Output && e.decision == decision)
        .map(|e| e.subject.clone())
        .collect()
}

/// What holds whatever the moment of the kill. Returns the complete entries.
fn assert_consistent(room: &Room) -> Vec<Entry> {
    let bytes = std::fs::read(room.room.join("audit.jsonl")).unwrap();
    let complete = match audit::torn_tail(&bytes) {
        Some(len) => &bytes[..len],
        None => &bytes[..],
    };
    cleanroom_verify::audit::verify_bytes(complete).expect("the audit chain verifies");
    let entries = audit::parse(complete).unwrap();
    let committed = subjects(&entries, Decision::Committed);
    for name in output_names(room) {
        if name.starts_with('.') {
            // A temporary file of an interrupted sealing: never an output, and the next run
            // removes it on the record.
            assert!(name.contains(".tmp-"), "{name}");
            continue;
        }
        assert!(
            committed.contains(&format!("outputs/{name}")),
            "outputs/{name} exists without its committed audit entry"
        );
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_killed_at_any_point_leaves_no_output_without_its_record() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let cfg = room.config();
    // One whole run, to spread the kills over its length.
    let t = Instant::now();
    cleanroom_cli::processes::run_room(&cfg).await.unwrap();
    let whole = t.elapsed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0fc1);
    for _ in 0..24 {
        let at = whole.mul_f64(rng.gen_range(0.0..1.1));
        let mut child = cleanroom_cli::processes::room_command(&cfg)
            .unwrap()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(at).await;
        child.kill().unwrap_or(()); // SIGKILL; the run may have finished already
        child.wait().unwrap();
        assert_consistent(&room);
    }
    // The next run completes and recovers, on the record, what the kills left behind.
    let report = cleanroom_cli::processes::run_room(&cfg).await.unwrap();
    assert_eq!(report.outputs.len(), 1);
    let bytes = std::fs::read(room.room.join("audit.jsonl")).unwrap();
    assert_eq!(audit::torn_tail(&bytes), None);
    let entries = assert_consistent(&room);
    assert!(
        output_names(&room).iter().all(|n| !n.starts_with('.')),
        "a temporary file is left: {:?}",
        output_names(&room)
    );
    let recovered = subjects(&entries, Decision::Recovered);
    for c in subjects(&entries, Decision::Committed) {
        assert!(
            room.room.join(&c).is_file() || recovered.contains(&c),
            "{c} is recorded as committed, neither written nor recorded as never written"
        );
    }
    room.stop().await;
}

/// The two states a kill during sealing can leave, made by hand: an output recorded as
/// committed whose file was never renamed into place, and a temporary file. The next run
/// records each once (and removes the temporary file); later runs do not repeat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_output_never_written_and_a_temp_file_are_recovered_once() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let report = room.run().await.unwrap();
    std::fs::remove_file(&report.outputs[0]).unwrap();
    let tmp = room.room.join("outputs/.x-0.cro.tmp-00000000deadbeef");
    std::fs::write(&tmp, b"half a sealed file").unwrap();
    let recovered = |room: &Room| {
        room.audit()
            .into_iter()
            .filter(|e| e.event == Step::Output && e.decision == Decision::Recovered)
            .count()
    };
    room.run().await.unwrap();
    assert!(!tmp.exists(), "the temporary file is removed");
    assert_eq!(recovered(&room), 2);
    room.run().await.unwrap();
    assert_eq!(recovered(&room), 2, "each is recorded once");
    assert_consistent(&room);
    room.stop().await;
}

/// The room killed at each crash point of sealing (`failpoints` feature): whichever it is,
/// no output exists without its record, and the next run completes and recovers on the
/// record. (Before the record came first, a crash after the rename left an output file no
/// audit entry named.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_crashing_at_each_sealing_point_never_leaves_an_unrecorded_output() {
    use cleanroom_room::failpoint::{OUTPUT_RECORDED, OUTPUT_WRITTEN};
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let cfg = room.config();
    for point in [OUTPUT_RECORDED, OUTPUT_WRITTEN] {
        let before = output_names(&room).len();
        let status = cleanroom_cli::processes::room_command(&cfg)
            .unwrap()
            .env("CLEANROOM_FAILPOINT", point)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{point}: the room did not stop there");
        let entries = assert_consistent(&room);
        let committed = subjects(&entries, Decision::Committed);
        let last = entries.last().unwrap();
        assert_eq!(
            (last.event, last.decision),
            (Step::Output, Decision::Committed),
            "{point}: the record is the last durable thing"
        );
        let written = output_names(&room).len() > before;
        assert_eq!(written, point == OUTPUT_WRITTEN, "{point}");
        assert!(committed.contains(&last.subject));
        // The next run completes; an output recorded but never written is recorded so.
        cleanroom_cli::processes::run_room(&cfg).await.unwrap();
        let entries = assert_consistent(&room);
        let never_written = subjects(&entries, Decision::Recovered).contains(&last.subject);
        assert_eq!(never_written, point == OUTPUT_RECORDED, "{point}");
    }
    room.stop().await;
}

/// `cleanroom-kbs serve` for `member`'s database on `addr`, as its own process (killed
/// with SIGKILL when dropped).
fn broker_process(
    room: &Room,
    member: &str,
    addr: std::net::SocketAddr,
) -> cleanroom_cli::processes::BrokerProcess {
    let d = common::member_dir(room.root(), member);
    cleanroom_cli::processes::BrokerProcess::start_on(
        &d.join("kbs.db"),
        &d.join("kbs.master-key"),
        &addr.to_string(),
    )
    .unwrap()
}

/// The publisher's broker, as its own process, SIGKILLed at random points while the room
/// asks it for keys, a dozen times: after each kill its database opens and its event log
/// reads, and once restarted on the same address (same pinned key) it releases the key
/// again: the room's next run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_while_releasing_keys_keeps_its_database_and_serves_again() {
    let mut room = Room::new(Spec::default()).await;
    room.approve_all();
    // The publisher's in-process broker makes way for the same broker as a process.
    let inproc = room.brokers.remove(0);
    let addr = inproc.addr;
    inproc.stop().await;
    let mut broker = broker_process(&room, "publisher", addr);
    assert_eq!(broker.url, format!("https://{addr}"));
    let t = Instant::now();
    room.run().await.unwrap();
    let whole = t.elapsed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x000b_0ce5);
    for _ in 0..12 {
        let at = whole.mul_f64(rng.gen_range(0.0..1.0));
        let run = tokio::spawn({
            let cfg = room.config();
            async move { cleanroom_room::run::run(&cfg).await }
        });
        tokio::time::sleep(at).await;
        drop(broker); // SIGKILL, and reaped
        // The run ends either way (a refusal when the broker vanished mid-request).
        let _ = run.await.unwrap();
        let d = common::member_dir(room.root(), "publisher");
        let store =
            cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"))
                .expect("the broker's database opens after a kill");
        store
            .verify_events()
            .expect("its event log verifies after a kill");
        drop(store);
        broker = broker_process(&room, "publisher", addr);
        assert_consistent(&room);
    }
    let released = room.keys_released("publisher");
    room.run()
        .await
        .expect("the restarted broker releases the key");
    assert_eq!(room.keys_released("publisher"), released + 1);
    drop(broker);
    room.stop().await;
}

/// A suspension that arrives while a run is in flight (the room paused after its guards,
/// `before-seal`) withholds the run's outputs: it is refused at step `suspension`, after
/// its guard, and nothing is sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_arriving_during_a_run_withholds_its_outputs() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let cfg = room.config();
    let gate = room.root().join("gate");
    let mut child = cleanroom_cli::processes::room_command(&cfg)
        .unwrap()
        .env("CLEANROOM_PAUSE", cleanroom_room::failpoint::BEFORE_SEAL)
        .env("CLEANROOM_PAUSE_UNTIL", &gate)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until_paused(&gate, "the run never reached the seal");
    // The publisher suspends the room now, as `cleanroom governance suspend --room` does.
    let sk = cleanroom_formats::keys::signing_key(&room.key_of("publisher")).unwrap();
    let digest = cleanroom_formats::load::load_signed_contract(&room.contract, &room.sigs)
        .unwrap()
        .0
        .digest();
    let msg = cleanroom_policy::message::SignedMessage::sign(
        &sk,
        cleanroom_policy::message::MessageType::Suspend,
        digest.0,
        cleanroom_formats::clock::now_unix(),
        cleanroom_policy::governance::GovernancePayload::default().to_bytes(),
    );
    std::fs::write(
        room.room.join(cleanroom_formats::load::GOVERNANCE_FILE),
        format!("{}\n", msg.to_base64()),
    )
    .unwrap();
    std::fs::write(&gate, b"").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "refused");
    assert!(output_names(&room).is_empty(), "nothing sealed");
    let entries = room.audit();
    let refused = entries
        .iter()
        .find(|e| e.decision == Decision::Refused)
        .unwrap();
    assert_eq!(refused.event, Step::Suspension);
    assert!(
        entries
            .iter()
            .any(|e| e.event == Step::Guard && e.seq < refused.seq),
        "the run was past its guard when the suspension arrived"
    );
    room.stop().await;
}

/// The owner's `cleanroom-kbs put` SIGKILLed at random moments a dozen times while it
/// registers the dataset key again (the broker serving from the same database meanwhile):
/// the database opens every time, the resource is registered (the old registration or the
/// new one, never half of one), its event log reads, and a run gets the key afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kbs_put_killed_mid_write_leaves_the_old_or_the_new_registration() {
    let room = Room::new(Spec::default()).await;
    room.approve_all();
    let d = common::member_dir(room.root(), "advertiser");
    let contract = cleanroom_policy::Contract::parse(
        &std::fs::read_to_string(&room.contract).unwrap(),
        "contract.toml",
    )
    .unwrap();
    let ds = contract.dataset("conversions").unwrap();
    let sealed = room.room.join(ds.location.get_ref());
    let resource = ds.key.resource.get_ref().clone();
    let kbs = cleanroom_cli::processes::room_binary()
        .unwrap()
        .with_file_name("cleanroom-kbs");
    let put = || {
        let mut cmd = std::process::Command::new(&kbs);
        cmd.arg("put")
            .arg("--db")
            .arg(d.join("kbs.db"))
            .arg("--master-key")
            .arg(d.join("kbs.master-key"))
            .arg("--contract")
            .arg(&room.contract)
            .arg("--sigs")
            .arg(&room.sigs)
            .args(["--dataset", "conversions", "--key"])
            .arg(d.join("conversions.key"))
            .arg("--sealed")
            .arg(&sealed);
        cmd
    };
    // Uninterrupted, the registration succeeds (so a kill below interrupts a real one).
    let started = std::time::Instant::now();
    let done = put().output().unwrap();
    // Kill points are drawn across the time one registration takes here.
    let span = (started.elapsed().as_millis() as u64).max(2);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut killed_running = 0;
    for _ in 0..12 {
        let mut child = put()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(0..span)));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let store =
            cleanroom_kbs::commands::open_store(&d.join("kbs.db"), &d.join("kbs.master-key"))
                .expect("the broker database opens after the kill");
        let rec = store
            .resource(&resource)
            .unwrap()
            .expect("the key is still registered");
        assert_eq!(rec.dataset, "conversions");
        store
            .verify_events()
            .expect("the event log verifies after the kill");
    }
    assert!(
        killed_running >= 3,
        "only {killed_running} kills hit a running put"
    );
    // The registration that is there is whole: the run gets the key and reads the file.
    room.run().await.unwrap();
    room.stop().await;
}

/// The owner's `cleanroom dataset seal` SIGKILLed at random moments: whenever a sealed file
/// exists, its key file exists and opens it (the key is written before the sealed file).
#[test]
fn dataset_seal_killed_mid_write_never_leaves_a_sealed_file_without_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let contract_text = common::demo_contract_text();
    let contract = tmp.path().join("contract.toml");
    std::fs::write(&contract, &contract_text).unwrap();
    let (_, conversions) = cleanroom_cli::demo::generate(300_000, 3);
    let plain = tmp.path().join("conversions.csv");
    std::fs::write(&plain, conversions).unwrap();
    let cli = cleanroom_cli::processes::room_binary()
        .unwrap()
        .with_file_name("cleanroom");
    let seal = |i: usize| {
        let out = tmp.path().join(format!("c{i}.sealed"));
        let key = tmp.path().join(format!("c{i}.key"));
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(["dataset", "seal", "--dataset", "conversions", "--contract"])
            .arg(&contract)
            .arg("--in")
            .arg(&plain)
            .arg("--out")
            .arg(&out)
            .arg("--key-out")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        (cmd, out, key)
    };
    // How long a whole seal takes here: the kills land from its start to past its end.
    let t = Instant::now();
    assert!(seal(999).0.status().unwrap().success());
    let whole = t.elapsed().as_millis() as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let (mut killed_running, mut sealed) = (0, 0);
    for i in 0..16 {
        let (mut cmd, out, key) = seal(i);
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(
            rng.gen_range(0..whole * 3 / 2 + 1),
        ));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        if out.exists() {
            sealed += 1;
            assert!(key.exists(), "c{i}: a sealed file without its key");
            let opened = std::process::Command::new(&cli)
                .args(["dataset", "open", "--dataset", "conversions", "--contract"])
                .arg(&contract)
                .arg("--in")
                .arg(&out)
                .arg("--key")
                .arg(&key)
                .output()
                .unwrap();
            assert!(
                opened.status.success(),
                "c{i}: the key does not open the file"
            );
        }
    }
    assert!(
        killed_running >= 3,
        "only {killed_running} kills hit a running seal"
    );
    assert!(
        sealed >= 1,
        "no seal finished: the kills came too early to check anything"
    );
}
