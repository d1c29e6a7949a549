//! Journal benchmark: records/s and fsyncs/s of `Journal::append` on a real directory
//! (`DirStorage`), at 1, 8 and 64 appends per fsync, with `Durability::Fsync` (the default) against
//! `Durability::None` (no fsync: the obvious alternative, and the ceiling of the write path). Run
//! with `cargo bench --bench journal [-- FILTER]`; `BENCH_QUICK=1` for a smoke run (< 10 s).
//!
//! ## What one append is
//! One HTTP request's batch, rendered as the receiver renders it: `tests/fixtures/batches/batch-10.json`
//! parsed by the crate's parser, one `Kind::Event` record per event (its raw bytes, 310-443 bytes,
//! mean ~360) with `format::push_record`: 10 records and ~4.1 KB per append. The records per fsync
//! are then 10 × the appends per fsync.
//!
//! ## Workloads (each its own journal directory, kept open for the whole run)
//! * `K threads`: K threads append batches in a loop, one batch per `append` call, so groups form
//!   by themselves as in the receiver: while the writer thread writes and syncs one group, the others
//!   queue the next. The target is K batches per group; the achieved count (batches written /
//!   groups written, from `Journal::stats`) is printed beside it, since the journal decides.
//! * `1 thread, K joined`: one thread appends K batches concatenated into one `append` call: exactly
//!   K batches per group (the upper bound of group commit at that group size: no waiting for a
//!   group to fill, no wake-ups).
//!
//! Both at K = 1, 8, 64 (1 thread and 1 joined are the same, so it runs once), with `fsync`; the
//! `K threads` ones again with `none`.
//!
//! ## Method
//! [`ROUNDS`] rounds; in each, every workload runs one slot of [`SLOT`] (or until it appended
//! [`SLOT_BYTES`]), in an order rotated per round as in `support/`, so a neighbour's burst of I/O
//! hits all alike. A slot's rates are the stats' deltas over its wall time (threads spawned at
//! its start, joined at its end: every append counted has returned). The table shows medians over
//! the rounds. After each slot, untimed: `flush` (the `none` rows' last queued batches, and the
//! dirty pages they left, so they do not slow the next slot) and `remove_before` (old segments go,
//! as after delivery: disk use stays bounded). Segments are the default 64 MiB, so a slot crosses
//! about one segment boundary (a file creation and a directory fsync) now and then, as in service.
//!
//! ## Where
//! A directory under `std::env::temp_dir()` unless that is a tmpfs (fsync is free in memory and
//! the numbers would mean nothing): then under the crate's `target/`. `BENCH_JOURNAL_DIR=PATH`
//! picks the parent directory (to measure another disk). The filesystem, device and mount point
//! are printed; the directory is removed at the end (also on a panic).
//!
//! ## Options
//! `FILTER` (a workload name substring, as in the other benches), `BENCH_QUICK=1`,
//! `BENCH_ROUNDS=N`, `BENCH_SLOT_MS=MS`, `BENCH_JOURNAL_DIR=PATH`.
//!
//! For the next maintainer: when the receiver changes what it appends per request (one call per
//! batch, record layout), change [`request_batch`] so the bench keeps measuring what runs.

#[allow(dead_code)]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egnyte_receiver::journal::format::push_record;
use egnyte_receiver::journal::{
    Append, DirStorage, Durability, Journal, JournalConfig, JournalStats, Kind, Meta, DEFAULT_SEGMENT_BYTES,
};
use egnyte_receiver::test_dir::TempDir;
use egnyte_receiver::{Element, Parser};

use support::{median, quantile, Settings};

/// The request body each append renders.
const FIXTURE: &str = "tests/fixtures/batches/batch-10.json";
/// Appends per fsync measured: 1 (one request alone), 8 and 64 (concurrent requests sharing a group).
const GROUP_SIZES: [usize; 3] = [1, 8, 64];
/// Rounds in a full run: 8 workloads × 5 × 1.2 s stays under a minute.
const ROUNDS: usize = 5;
/// Rounds in a quick run.
const QUICK_ROUNDS: usize = 3;
/// One workload's slot in one round: long enough for hundreds of fsyncs at a few ms each.
const SLOT: Duration = Duration::from_millis(1200);
/// Slot length in a quick run (8 × 3 × 0.25 s: well under 10 s).
const QUICK_SLOT: Duration = Duration::from_millis(250);
/// A slot stops early after appending this many bytes: `none` writes to the page cache at GB/s,
/// and the disk it fills, and the flush after it, would otherwise grow with the slot.
const SLOT_BYTES: u64 = 64 << 20;
/// Filesystems where an fsync costs nothing, so the bench moves off them.
const MEMORY_FILESYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

fn main() {
    let settings = Settings::from_env();
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let rounds = number("BENCH_ROUNDS")
        .map_or(if settings.quick { QUICK_ROUNDS } else { ROUNDS }, |n| n.max(1) as usize);
    let slot = number("BENCH_SLOT_MS")
        .map_or(if settings.quick { QUICK_SLOT } else { SLOT }, |ms| Duration::from_millis(ms.max(1)));

    let batch = request_batch();
    let records_per_batch = batch.records;
    let dir = bench_dir();
    let where_ = filesystem(dir.path()).map_or_else(
        || format!("journal in {} (filesystem unknown)", dir.path().display()),
        |(fstype, device, mount)| {
            format!("journal in {} on {fstype} ({device} at {mount})", dir.path().display())
        },
    );
    println!("{}", support::machine(&where_));
    println!(
        "rounds: {rounds}, slot: {} ms (or {} MiB){}; one append = {FIXTURE}: {records_per_batch} records, {} bytes; \
         segments of {} MiB\n",
        slot.as_millis(),
        SLOT_BYTES >> 20,
        if settings.quick { " (quick mode)" } else { "" },
        batch.bytes.len(),
        DEFAULT_SEGMENT_BYTES >> 20,
    );

    let mut workloads = Vec::new();
    for (durability, label) in [(Durability::Fsync, "fsync"), (Durability::None, "none")] {
        for k in GROUP_SIZES {
            let threads = if k == 1 { "1 thread".to_owned() } else { format!("{k} threads") };
            workloads.push((format!("{label}, {threads}"), durability, Shape::Threads(k)));
        }
        if durability == Durability::Fsync {
            for k in GROUP_SIZES.into_iter().filter(|&k| k > 1) {
                workloads.push((format!("{label}, 1 thread, {k} joined"), durability, Shape::Joined(k)));
            }
        }
    }
    let mut workloads: Vec<Workload> = workloads
        .into_iter()
        .filter(|(name, _, _)| settings.wants(name))
        .enumerate()
        .map(|(n, (name, durability, shape))| {
            Workload::open(&dir.path().join(format!("w{n}")), name, durability, shape)
        })
        .collect();

    let n = workloads.len();
    for round in 0..rounds {
        for k in 0..n {
            let workload = &mut workloads[(round + k) % n];
            let sample = workload.slot(&batch.bytes, records_per_batch, slot);
            workload.samples.push(sample);
        }
        eprint!(".");
    }
    eprintln!();
    for workload in &workloads {
        workload.check();
    }
    print!("{}", table(&workloads, records_per_batch));
}

/// One request's records, as the receiver renders them.
struct RequestBatch {
    bytes: Vec<u8>,
    records: u64,
}

/// Parses the fixture with the crate's parser and renders one event record per event.
fn request_batch() -> RequestBatch {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut parser = Parser::default();
    let batch = parser.parse(&body).unwrap_or_else(|e| panic!("{FIXTURE}: {e}"));
    let mut bytes = Vec::new();
    let mut records = 0;
    for (n, element) in batch.elements().enumerate() {
        let Element::Valid(event) = element else { panic!("{FIXTURE}: element {n} is not a valid event") };
        // Keys are hashes in the receiver; any distinct values cost the journal the same.
        let meta = Meta {
            kind: Kind::Event,
            seq: 0,
            accepted_ms: 1_733_739_495_586,
            key: 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(n as u64 + 1),
            order: 0xc2b2_ae3d_27d4_eb4f_u64.wrapping_mul(n as u64 + 1),
        };
        push_record(&mut bytes, &meta, &[event.raw()]);
        records += 1;
    }
    RequestBatch { bytes, records }
}

/// How appends are issued.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// K threads, one batch per `append` call.
    Threads(usize),
    /// One thread, K batches joined into each `append` call.
    Joined(usize),
}

impl Shape {
    /// Batches meant to share one group.
    fn target(self) -> usize {
        match self {
            Shape::Threads(k) | Shape::Joined(k) => k,
        }
    }
}

/// One slot's counts (deltas of [`JournalStats`]) and wall time.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    seconds: f64,
    records: u64,
    groups: u64,
    syncs: u64,
}

impl Sample {
    fn of(stats: &JournalStats) -> Sample {
        Sample {
            seconds: 0.0,
            records: stats.records.load(Ordering::Relaxed),
            groups: stats.groups.load(Ordering::Relaxed),
            syncs: stats.syncs.load(Ordering::Relaxed),
        }
    }

    fn since(self, before: Sample, seconds: f64) -> Sample {
        Sample {
            seconds,
            records: self.records - before.records,
            groups: self.groups - before.groups,
            syncs: self.syncs - before.syncs,
        }
    }
}

struct Workload {
    name: String,
    shape: Shape,
    journal: Journal,
    samples: Vec<Sample>,
}

impl Workload {
    fn open(dir: &Path, name: String, durability: Durability, shape: Shape) -> Workload {
        let storage = DirStorage::new(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let config = JournalConfig { durability, ..JournalConfig::default() };
        let (journal, _) =
            Journal::open(Arc::new(storage), &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        Workload { name, shape, journal, samples: Vec::new() }
    }

    /// Appends for `slot` (or [`SLOT_BYTES`]); returns what was written meanwhile.
    fn slot(&self, batch: &[u8], records_per_batch: u64, slot: Duration) -> Sample {
        let (threads, joined) = match self.shape {
            Shape::Threads(k) => (k, 1),
            Shape::Joined(k) => (1, k),
        };
        let append = batch.repeat(joined);
        let per_thread = (SLOT_BYTES / append.len() as u64 / threads as u64).max(1);
        let journal = &self.journal;
        let before = Sample::of(journal.stats());
        let start = Instant::now();
        let deadline = start + slot;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut done = 0;
                    while done < per_thread && Instant::now() < deadline {
                        // A fresh Vec per call, as each request renders its own.
                        match journal.append(append.clone()) {
                            Append::Committed | Append::Queued => done += 1,
                            // `none` can outrun the writer: the receiver would answer 503.
                            Append::Busy => std::thread::yield_now(),
                            failed => panic!("{}: append {failed:?}", self.name),
                        }
                    }
                });
            }
        });
        let sample = Sample::of(journal.stats()).since(before, start.elapsed().as_secs_f64());
        journal.flush().unwrap_or_else(|e| panic!("{}: flush: {e}", self.name));
        journal.remove_before(journal.committed_seq()).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert_eq!(sample.records % records_per_batch, 0, "{}: a batch was written in part", self.name);
        sample
    }

    /// Every record written got its sequence number: the journal did the work it was timed on.
    fn check(&self) {
        let stats = self.journal.stats();
        assert_eq!(
            self.journal.committed_seq() - 1,
            stats.records.load(Ordering::Relaxed),
            "{}: committed position and records written disagree",
            self.name
        );
    }
}

/// Inter-quartile range over the median (nearest rank), as in `support/`.
fn spread(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = median(&values);
    if mid > 0.0 {
        (quantile(&values, 0.75) - quantile(&values, 0.25)) / mid
    } else {
        0.0
    }
}

fn table(workloads: &[Workload], records_per_batch: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | appends/fsync target | achieved | records/s | appends/s | fsyncs/s | µs per group | ±½ IQR |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for w in workloads {
        let rate = |f: fn(&Sample) -> u64| {
            median(&w.samples.iter().map(|s| f(s) as f64 / s.seconds).collect::<Vec<_>>())
        };
        let records: Vec<f64> = w.samples.iter().map(|s| s.records as f64 / s.seconds).collect();
        let total = w.samples.iter().fold(Sample::default(), |a, s| Sample {
            seconds: a.seconds + s.seconds,
            records: a.records + s.records,
            groups: a.groups + s.groups,
            syncs: a.syncs + s.syncs,
        });
        // An append is one request's batch: `joined` rows make K of them per call.
        let batches = total.records as f64 / records_per_batch as f64;
        let achieved = batches / total.groups.max(1) as f64;
        let per_group =
            median(&w.samples.iter().map(|s| s.seconds / s.groups.max(1) as f64 * 1e6).collect::<Vec<_>>());
        let fsyncs = rate(|s| s.syncs);
        let _ = writeln!(
            out,
            "| {} | {} | {achieved:.1} | {:.0} | {:.0} | {} | {per_group:.0} | ±{:.1}% |",
            w.name,
            w.shape.target(),
            median(&records),
            median(&records) / records_per_batch as f64,
            if fsyncs > 0.0 { format!("{fsyncs:.0}") } else { "–".to_owned() },
            spread(records) * 50.0,
        );
    }
    let _ = writeln!(
        out,
        "\nappends = request batches ({records_per_batch} records each; `K joined`: K per append call); \
         group = one write + one fdatasync (`fsync`) or one write (`none`); \
         achieved = batches written / groups written over all rounds; rates are medians over the rounds"
    );
    out
}

/// The benchmark's journal directories, removed on drop (also when a workload panics): under
/// `BENCH_JOURNAL_DIR`, else the system temp dir unless that is in memory, else `target/`.
fn bench_dir() -> TempDir {
    let parent = match std::env::var_os("BENCH_JOURNAL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let tmp = std::env::temp_dir();
            let in_memory =
                filesystem(&tmp).is_some_and(|(fstype, _, _)| MEMORY_FILESYSTEMS.contains(&fstype.as_str()));
            if in_memory {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
            } else {
                tmp
            }
        }
    };
    TempDir::create(&parent, "bench-journal").unwrap_or_else(|e| panic!("{e}"))
}

/// (filesystem type, device, mount point) of the mount holding `path`, from `/proc/mounts`: the
/// entry with the longest mount point that is a prefix of it.
fn filesystem(path: &Path) -> Option<(String, String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            // /proc/mounts writes a space in a path as \040.
            let mount = mount.replace("\\040", " ");
            path.starts_with(&mount).then(|| (fstype.to_owned(), device.to_owned(), mount))
        })
        .max_by_key(|(_, _, mount)| mount.len())
}
