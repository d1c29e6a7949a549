//! A full disk, for real: the receiver's data directory (and so its journal and `events.jsonl`)
//! on a 4 MiB tmpfs, filled by its own traffic until it answers 503.
//!
//! What must hold, with and without a SIGKILL while the disk is full:
//! * every batch refused while the disk is full gets a 503 with `Retry-After`, and is accepted
//!   when sent again once space is freed, without a restart;
//! * every acknowledged event is in `events.jsonl` exactly once in the end: recovery after the
//!   kill writes nothing twice, so it needs no space for duplicates;
//! * a receiver started on a disk that is already full starts, refuses with 503, and recovers
//!   by itself when space appears.
//!
//! Mounting needs root (CI runs as root). Elsewhere each test says it was skipped, unless `CI`
//! is set, where it fails instead: a CI that cannot run them must not pass quietly.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::server::{Server, TempDir};

/// The filesystem's size: a few dozen batches fill it.
const DISK_BYTES: u64 = 4 << 20;
/// Freed again (a file written before the receiver starts, removed later).
const FILLER_BYTES: usize = 1 << 20;
/// Events per batch and filler per event: about 40 KiB per batch, journaled and written to the
/// sink, so the disk fills after a few dozen batches.
const EVENTS: usize = 20;
const PAD: usize = 2000;
/// Most batches sent to fill the disk.
const MAX_BATCHES: usize = 400;
/// How long a refused batch is sent again (every 200 ms) once space is freed: well inside the
/// `Retry-After` the receiver asked for.
const RECOVERY: Duration = Duration::from_secs(10);

/// A tmpfs mounted on a fresh directory, lazily unmounted on drop.
struct Tmpfs {
    temp: Option<TempDir>,
    path: PathBuf,
}

impl Tmpfs {
    /// `None` (after saying why) when this process may not mount; panics instead under `CI`.
    fn mount(bytes: u64) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("CI").is_none(), "the disk-full tests need root in CI");
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let temp = TempDir::new("disk_full");
        let path = temp.path().to_path_buf();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs on {}: {status}", path.display());
        Some(Tmpfs { temp: Some(temp), path })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, for the server builder (its `data/` is on the tmpfs).
    fn take_dir(&mut self) -> TempDir {
        self.temp.take().expect("taken once")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A batch's event ids and body.
type Batch = (Vec<String>, Vec<u8>);

/// A batch of [`EVENTS`] events with unique ids.
fn batch(tag: &str, n: usize) -> Batch {
    let ids: Vec<String> = (0..EVENTS).map(|k| format!("{tag}-{n}-{k}")).collect();
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({"eventId": id, "domain": "acme", "timestamp": 1, "actionSource": "WebUI",
                   "eventType": "fs:add_file", "data": {"targetPath": format!("/Shared/{}", "x".repeat(PAD))}})
        })
        .collect();
    (ids, serde_json::to_vec(&events).expect("JSON"))
}

/// Sends batches until the disk is full: returns the acknowledged ids and the refused batches.
fn fill(server: &Server, tag: &str) -> (Vec<String>, Vec<Batch>) {
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for n in 0..MAX_BATCHES {
        let (ids, body) = batch(tag, n);
        let answer = server.post(&body, &[]);
        match answer.status {
            200 => acked.extend(ids),
            503 => {
                assert_eq!(answer.text(), "events cannot be stored: the disk is full; retry later\n");
                let retry: u64 = answer.header("Retry-After").expect("Retry-After").parse().expect("seconds");
                assert!(retry >= 1 && Duration::from_secs(retry) > RECOVERY / 2, "Retry-After {retry}");
                refused.push((ids, body));
                if refused.len() == 5 {
                    return (acked, refused);
                }
            }
            other => panic!("batch {n}: {other}: {}", answer.text()),
        }
    }
    panic!("{MAX_BATCHES} batches did not fill {DISK_BYTES} bytes");
}

/// Sends each refused batch again until it is accepted (within [`RECOVERY`]).
fn resend(server: &Server, refused: Vec<Batch>, acked: &mut Vec<String>) {
    let started = Instant::now();
    for (ids, body) in refused {
        loop {
            let answer = server.post(&body, &[]);
            if answer.status == 200 {
                assert_eq!(
                    answer.json()["accepted"],
                    EVENTS,
                    "a refused batch was not kept: {}",
                    answer.text()
                );
                acked.extend(ids);
                break;
            }
            assert_eq!(answer.status, 503, "{}", answer.text());
            assert!(started.elapsed() < RECOVERY, "still refused {RECOVERY:?} after space was freed");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Every acknowledged id in `events.jsonl` exactly once, and nothing else.
fn assert_exactly_once(server: &Server, acked: &[String]) {
    let mut copies: HashMap<String, usize> = HashMap::new();
    for event in server.events() {
        *copies.entry(event["eventId"].as_str().expect("an eventId").to_owned()).or_default() += 1;
    }
    let missing = acked.iter().filter(|id| !copies.contains_key(*id)).count();
    let twice = copies.values().filter(|&&n| n > 1).count();
    assert_eq!((missing, twice, copies.len()), (0, 0, acked.len()), "missing, twice, lines");
    assert_eq!(std::fs::metadata(server.data_file("dead-letter.jsonl")).map_or(0, |m| m.len()), 0);
}

fn write_filler(path: &Path) {
    std::fs::write(path, vec![0u8; FILLER_BYTES]).expect("the filler fits");
}

#[test]
fn a_full_disk_refuses_with_503_and_takes_the_refused_batches_once_space_is_freed() {
    let Some(mut disk) = Tmpfs::mount(DISK_BYTES) else { return };
    let filler = disk.path().join("filler");
    write_filler(&filler);
    let server = Server::builder().temp_dir(disk.take_dir()).start();
    let (mut acked, refused) = fill(&server, "full");
    assert!(!acked.is_empty());
    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "/healthz while the disk is full");
    assert!(health.text().starts_with("unhealthy: the disk is full"), "{}", health.text());
    let metrics = server.metrics();
    assert_eq!(metrics.get("egnyte_receiver_journal_no_space"), 1.0);
    assert_eq!(metrics.get("egnyte_receiver_journal_poisoned"), 0.0, "a full disk does not poison");
    assert!(server.stderr_contains("the disk is full", Duration::from_secs(5)));

    std::fs::remove_file(&filler).expect("the filler");
    resend(&server, refused, &mut acked);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.metrics().get("egnyte_receiver_journal_no_space"), 0.0);
    assert_exactly_once(&server, &acked);
}

#[test]
fn a_kill_while_the_disk_is_full_recovers_without_writing_anything_twice() {
    let Some(mut disk) = Tmpfs::mount(DISK_BYTES) else { return };
    let filler = disk.path().join("filler");
    write_filler(&filler);
    let server = Server::builder().temp_dir(disk.take_dir()).start();
    let (mut acked, refused) = fill(&server, "killed");
    // Give delivery time to write into the full disk what it can (and fail on the rest).
    std::thread::sleep(Duration::from_millis(500));
    let temp = server.kill_keeping_data();
    std::fs::remove_file(&filler).expect("the filler");
    let server = Server::builder().temp_dir(temp).start();
    resend(&server, refused, &mut acked);
    assert_exactly_once(&server, &acked);
}

#[test]
fn a_receiver_started_on_a_full_disk_answers_503_and_recovers_by_itself() {
    let Some(mut disk) = Tmpfs::mount(DISK_BYTES) else { return };
    let server = Server::builder().temp_dir(disk.take_dir()).start();
    let (first, body) = batch("before", 0);
    assert_eq!(server.post(&body, &[]).status, 200);
    let temp = server.kill_keeping_data();
    // Everything else on the disk: not a byte left.
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).expect("the filler");
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);

    let server = Server::builder().temp_dir(temp).start();
    let (ids, body) = batch("while-full", 0);
    let answer = server.post(&body, &[]);
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.header("Retry-After").is_some());
    assert_eq!(server.get("/healthz").status, 503);

    std::fs::remove_file(&filler).expect("the filler");
    let mut acked = first;
    resend(&server, vec![(ids, body)], &mut acked);
    assert_exactly_once(&server, &acked);
}
