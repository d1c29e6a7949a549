//! Dedup benchmark: the lock-free ring (`egnyte_receiver::dedup::Ring`) against the obvious
//! alternative, a `Mutex` around a `hashbrown::HashSet<u64>` with a `VecDeque` remembering the
//! insertion order, in the same run. Run with `cargo bench --bench dedup [-- FILTER]`;
//! `BENCH_QUICK=1` for a smoke run. The harness (interleaved rounds, medians, ratios against the
//! baseline) is `support/`, reused as is; the table is this file's, in inserts rather than bytes.
//!
//! ## Targets
//! * one thread: ≥ [`TARGET_RATE`] inserts/s;
//! * two threads on one shared structure: ≥ [`TARGET_RATIO`] × the baseline's inserts/s.
//!
//! ## Workloads: `THREADS/CAPACITY/MIX`
//! * CAPACITY: the default 1,048,576 keys (24.5 MiB of ring: beyond L2, most of L3) and 65,536
//!   (1.5 MiB: cache-resident). Each structure is first filled to capacity with keys that never
//!   come again (untimed), so every timed fresh insert evicts one: a long-running receiver.
//! * MIX: `fresh` (every key new), or `50% repeats` (each key, on a coin flip, repeats one of the
//!   last capacity / [`REPEAT_REACH`] fresh keys, uniformly: still remembered, so a duplicate).
//! * Keys: splitmix64 outputs (the real keys are SipHash outputs, just as random), precomputed in
//!   a stream of [`STREAM_FACTOR`] × capacity keys that is replayed in a cycle: a key comes back
//!   only after ≥ 2 × capacity commits, long after its eviction, so `fresh` stays fresh.
//! * `1 thread`: the stream in batches of [`BATCH`] keys (one HTTP request's events).
//! * `2 threads`: one shared structure, the stream cut in triples of batches `(a, s, b)`: one
//!   thread inserts `a` then `s`, the other `s` then `b`, so half of each thread's inserts are
//!   keys the other thread inserts too (a retry racing the first delivery). The calling thread is
//!   one of the two; the other is a scoped thread spawned per iteration (spawn and join cost tens
//!   of µs against an iteration of several ms). Rates count both threads' insert calls.
//!   `std::sync::Mutex` is not fair (the thread that unlocks usually relocks first), so under
//!   the locks one thread can run far ahead of the other; at 64K it may get more than the
//!   capacity ahead, and then some shared keys are forgotten before the laggard inserts them:
//!   the answers column shows it (more than 75% fresh).
//!
//! ## Core states
//! The two-thread rows depend on how far apart the two CPUs are: each thread reads cache lines
//! the other one just wrote. On the project's VM the two vCPUs sit on cores that share an L3
//! cache at some times and on cores of different L3s at others (a cache line's round trip of
//! about 45 ns against about 380 ns; the host switches every few seconds to minutes). So the
//! harness probes that round trip around every round (`support/cores.rs`) and the targets
//! table gives each two-thread ratio over the near rounds and over the far rounds, next to the
//! median over all of them.
//!
//! ## Contenders (each takes a batch: every key inserted, then the fresh ones committed)
//! * [`OURS`]: `Ring::insert` of each key, then `Ring::commit_all` of the `Fresh` tickets (in the
//!   receiver the batch's storage sits between the two).
//! * [`OURS_WARM`]: the same after `Ring::warm(batch)`.
//! * [`BASELINE`], the ratios' baseline: per key, lock; `HashSet::insert` (false: a duplicate);
//!   else `push_back`, and past the capacity `pop_front` and remove that key from the set. Both
//!   pre-sized, hashbrown's default hasher (foldhash), `std::sync::Mutex`. It has no pending
//!   state, so it does less than the ring: a copy arriving while the first is being stored is
//!   called a duplicate before the first is safe.
//! * [`BASELINE_BATCH`]: the same under one lock per batch, what a batch-at-a-time caller could
//!   do with it (shown for the redesign; not the target's baseline).
//!
//! The two `ours` rows share one ring and one position in the stream, as do the two `Mutex`
//! rows, so each row continues the steady state the other left. Every contender reports its
//! insert calls (the harness checks the count), and the table shows how its answers split over
//! all its iterations (fresh / duplicate / pending / full): in `1 thread/…/fresh` all must be
//! fresh, in `1 thread/…/50% repeats` half duplicates, so no row can win by doing less.
//!
//! ## Options
//! `FILTER` as in the other benches (`cargo bench --bench dedup -- "2 threads/1M"`); `BENCH_QUICK`,
//! `BENCH_ROUNDS`, `BENCH_SLOT_MS`; `BENCH_CONTENDER=TEXT` runs only the contenders whose name
//! contains TEXT and also skips filling the structures of the others, so that a profile is mostly
//! theirs: `BENCH_CONTENDER=ours perf record -g BENCH_BINARY --bench "1 thread/1M/fresh"` (the
//! binary's path is printed by `cargo bench --bench dedup --no-run`).
//!
//! For the next maintainer: when the ring's API changes, only [`Ours`] follows; when the receiver
//! changes how it uses the ring (batch size, commit timing), change [`BATCH`] and [`Ours`] so the
//! bench keeps measuring what runs.

#[allow(dead_code)]
mod support;

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::hint::black_box;
use std::ops::Add;
use std::sync::Mutex;

use egnyte_receiver::dedup::{Insert, Ring, Ticket, DEFAULT_CAPACITY};
use hashbrown::HashSet;

use support::cores::{self, Cores};
use support::{Contender, Row, Settings, Workload};

/// Keys per batch: one HTTP request's events, inserted together.
const BATCH: usize = 10;
/// The two-thread split's unit: batches `(a, shared, b)`.
const TRIPLE: usize = 3 * BATCH;
/// Triples per one-thread iteration (30,720 insert calls: 1-10 ms).
const SINGLE_TRIPLES: usize = 1024;
/// Triples per two-thread iteration (163,840 insert calls of 122,880 keys): long enough that the
/// thread spawn is noise.
const PAIR_TRIPLES: usize = 4096;
/// The capacities measured: the default, and one whose ring stays in cache.
const CAPACITIES: [(&str, usize); 2] = [("1M", DEFAULT_CAPACITY), ("64K", 1 << 16)];
/// The key stream holds this many times the capacity (see the module docs: at least 2 × capacity
/// commits between two uses of a key, in the `50% repeats` mix too).
const STREAM_FACTOR: usize = 4;
/// A repeat reaches back at most capacity / this many fresh keys, so it is still remembered.
const REPEAT_REACH: usize = 4;

/// Issue 4's single-thread target, inserts per second.
const TARGET_RATE: f64 = 20e6;
/// Issue 4's contended target: ours / baseline, two threads.
const TARGET_RATIO: f64 = 3.0;

const OURS: &str = "ours: insert, commit";
const OURS_WARM: &str = "ours: warm, insert, commit";
const BASELINE: &str = "baseline: Mutex<HashSet+VecDeque>, lock per key";
const BASELINE_BATCH: &str = "Mutex<HashSet+VecDeque>, lock per batch";

/// Key tags: the timed stream, the untimed fill and the coin flips never share an input.
const STREAM_TAG: u64 = 1;
const FILL_TAG: u64 = 2;
const COIN_TAG: u64 = 3;

fn main() {
    let settings = Settings::from_env();
    println!("{}", support::machine(&format!("caches of CPU 0: {}", caches())));
    println!(
        "rounds: {}, slot: {} ms{}; batches of {BATCH} keys; hashbrown 0.16 (foldhash), std Mutex\n",
        settings.rounds,
        settings.slot.as_millis(),
        if settings.quick { " (quick mode)" } else { "" }
    );

    let mut rows = Vec::new();
    let mut answers = Vec::new();
    let mut memory = Vec::new();
    for (label, capacity) in CAPACITIES {
        for mix in [Mix::Fresh, Mix::HalfRepeats] {
            let names = [Threads::One, Threads::Two].map(|t| format!("{}/{label}/{}", t.name(), mix.name()));
            if !names.iter().any(|name| settings.wants(name)) {
                continue;
            }
            let stream = stream(mix, capacity);
            for (threads, name) in [Threads::One, Threads::Two].into_iter().zip(names) {
                if !settings.wants(&name) {
                    continue;
                }
                let structures = Structures::filled(capacity);
                if !memory.iter().any(|(l, _)| *l == label) {
                    memory.push((label, structures.memory()));
                }
                let tallies: [Cell<Tally>; 4] = Default::default();
                let workload = Workload {
                    name: name.clone(),
                    bytes: 0,
                    events: threads.inserts_per_iteration(),
                    baseline: BASELINE,
                    contenders: structures.contenders(threads, &stream, &tallies),
                };
                rows.extend(support::run(&settings, workload));
                for (contender, tally) in
                    [OURS, OURS_WARM, BASELINE, BASELINE_BATCH].into_iter().zip(&tallies)
                {
                    answers.push((name.clone(), contender, tally.get()));
                }
            }
        }
    }
    if rows.is_empty() {
        println!("no workload matched the filter");
        return;
    }
    println!("### dedup inserts\n\n{}", table(&rows, &answers));
    println!("### targets\n\n{}", targets(&rows));
    println!("{}", core_states(&rows));
    for (label, memory) in memory {
        println!("memory at capacity {label}: {memory}");
    }
    println!("load average at the end: {}", support::load_average());
}

// ---------------------------------------------------------------------------------------------
// Keys

/// splitmix64's output function: a bijection, so distinct inputs give distinct keys.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Key number `i` of the sequence `tag` (sequences never overlap: `i` < 2^48).
fn key(tag: u64, i: usize) -> u64 {
    splitmix64(tag << 48 | i as u64)
}

#[derive(Debug, Clone, Copy)]
enum Mix {
    /// Every key new.
    Fresh,
    /// Half the keys repeat a recent fresh one.
    HalfRepeats,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Fresh => "fresh",
            Mix::HalfRepeats => "50% repeats",
        }
    }
}

/// The timed keys of a workload at `capacity`: [`STREAM_FACTOR`] × capacity keys, a whole
/// number of triples and of two-thread iterations.
fn stream(mix: Mix, capacity: usize) -> Vec<u64> {
    let len = (STREAM_FACTOR * capacity).next_multiple_of(PAIR_TRIPLES * TRIPLE);
    match mix {
        Mix::Fresh => (0..len).map(|i| key(STREAM_TAG, i)).collect(),
        Mix::HalfRepeats => {
            let reach = capacity / REPEAT_REACH;
            let mut fresh = Vec::with_capacity(len);
            let mut keys = Vec::with_capacity(len);
            for i in 0..len {
                let coin = key(COIN_TAG, i);
                if coin & 1 == 0 || fresh.is_empty() {
                    fresh.push(key(STREAM_TAG, fresh.len()));
                    keys.push(fresh[fresh.len() - 1]);
                } else {
                    let back = 1 + (coin >> 1) as usize % reach.min(fresh.len());
                    keys.push(fresh[fresh.len() - back]);
                }
            }
            keys
        }
    }
}

/// Triple number `i` of the stream (replayed in a cycle).
fn triple(stream: &[u64], i: usize) -> &[u64] {
    let start = i % (stream.len() / TRIPLE) * TRIPLE;
    &stream[start..start + TRIPLE]
}

// ---------------------------------------------------------------------------------------------
// The structures under test

/// How a contender's answers split, over all its iterations.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    fresh: u64,
    duplicate: u64,
    pending: u64,
    full: u64,
}

impl Add for Tally {
    type Output = Tally;

    fn add(self, other: Tally) -> Tally {
        Tally {
            fresh: self.fresh + other.fresh,
            duplicate: self.duplicate + other.duplicate,
            pending: self.pending + other.pending,
            full: self.full + other.full,
        }
    }
}

/// A structure under test, driven one batch at a time.
trait Dedup: Sync {
    /// Takes one batch (at most [`BATCH`] keys) the way the receiver does: every key looked up
    /// and, when new, reserved; then the new ones committed. Counts the answers.
    fn batch(&self, keys: &[u64], tally: &mut Tally);
}

/// The ring, used as the receiver uses it.
struct Ours<'a> {
    ring: &'a Ring,
    warm: bool,
}

impl Dedup for Ours<'_> {
    fn batch(&self, keys: &[u64], tally: &mut Tally) {
        debug_assert!(keys.len() <= BATCH);
        if self.warm {
            self.ring.warm(keys);
        }
        // As `Dedup::reserve` in the receiver: one vector per batch, allocated at its size.
        let mut tickets: Vec<Ticket> = Vec::with_capacity(keys.len());
        for &key in keys {
            match self.ring.insert(key) {
                Insert::Fresh(fresh) => {
                    tally.fresh += 1;
                    tickets.push(fresh);
                }
                Insert::Duplicate => tally.duplicate += 1,
                Insert::Pending => tally.pending += 1,
                Insert::Full => tally.full += 1,
            }
        }
        // The batch is stored here in the receiver; then its keys are committed together.
        self.ring.commit_all(tickets);
    }
}

/// The baseline's state: the keys, and the same keys in insertion order for eviction.
struct FifoSet {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl FifoSet {
    fn new(capacity: usize) -> FifoSet {
        FifoSet {
            set: HashSet::with_capacity(capacity + 1),
            order: VecDeque::with_capacity(capacity + 1),
            capacity,
        }
    }

    /// True when `key` is new (and now remembered, the oldest key forgotten past the capacity).
    fn insert(&mut self, key: u64) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }

    fn memory_bytes(&self) -> usize {
        self.set.allocation_size() + 8 * self.order.capacity()
    }
}

/// The obvious alternative, locked per key or per batch.
struct Baseline<'a> {
    fifo: &'a Mutex<FifoSet>,
    lock_per_batch: bool,
}

impl Baseline<'_> {
    fn count(fresh: bool, tally: &mut Tally) {
        if fresh {
            tally.fresh += 1;
        } else {
            tally.duplicate += 1;
        }
    }
}

impl Dedup for Baseline<'_> {
    fn batch(&self, keys: &[u64], tally: &mut Tally) {
        let lock = || self.fifo.lock().expect("baseline mutex poisoned");
        if self.lock_per_batch {
            let mut fifo = lock();
            for &key in keys {
                Baseline::count(fifo.insert(key), tally);
            }
        } else {
            for &key in keys {
                let fresh = lock().insert(key);
                Baseline::count(fresh, tally);
            }
        }
    }
}

/// Fills `dedup` to `capacity` with keys that never come again (untimed).
fn fill(dedup: &impl Dedup, capacity: usize) {
    let mut tally = Tally::default();
    let mut batch = [0u64; BATCH];
    for start in (0..capacity).step_by(BATCH) {
        let n = BATCH.min(capacity - start);
        for (i, slot) in batch[..n].iter_mut().enumerate() {
            *slot = key(FILL_TAG, start + i);
        }
        dedup.batch(&batch[..n], &mut tally);
    }
    assert_eq!(tally.fresh + tally.full, capacity as u64, "the fill keys are distinct");
}

/// True unless `BENCH_CONTENDER` excludes the contender (the harness applies the same rule).
fn wanted(contender: &str) -> bool {
    match std::env::var("BENCH_CONTENDER") {
        Ok(wanted) => contender.contains(wanted.as_str()),
        Err(_) => true,
    }
}

/// One workload's structures, filled, and where each pair of rows is in the key stream.
struct Structures {
    ring: Option<Ring>,
    fifo: Option<Mutex<FifoSet>>,
    ring_next: Cell<usize>,
    fifo_next: Cell<usize>,
}

impl Structures {
    fn filled(capacity: usize) -> Structures {
        let ring = (wanted(OURS) || wanted(OURS_WARM)).then(|| {
            let ring = Ring::new(capacity);
            fill(&Ours { ring: &ring, warm: false }, capacity);
            ring
        });
        let fifo = (wanted(BASELINE) || wanted(BASELINE_BATCH)).then(|| {
            let fifo = Mutex::new(FifoSet::new(capacity));
            fill(&Baseline { fifo: &fifo, lock_per_batch: true }, capacity);
            fifo
        });
        Structures { ring, fifo, ring_next: Cell::new(0), fifo_next: Cell::new(0) }
    }

    fn memory(&self) -> String {
        let mib = |bytes: usize| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64);
        let ring = self.ring.as_ref().map_or_else(|| "–".to_owned(), |r| mib(r.memory_bytes()));
        let fifo = self.fifo.as_ref().map_or_else(
            || "–".to_owned(),
            |f| mib(f.lock().expect("baseline mutex poisoned").memory_bytes()),
        );
        format!("ring {ring}, HashSet+VecDeque {fifo}")
    }

    /// The four contenders over `stream`, counting their answers into `tallies` (in the order
    /// [`OURS`], [`OURS_WARM`], [`BASELINE`], [`BASELINE_BATCH`]).
    fn contenders<'a>(
        &'a self,
        threads: Threads,
        stream: &'a [u64],
        tallies: &'a [Cell<Tally>; 4],
    ) -> Vec<Contender<'a>> {
        let mut contenders = Vec::new();
        if let Some(ring) = &self.ring {
            for (name, warm, tally) in [(OURS, false, &tallies[0]), (OURS_WARM, true, &tallies[1])] {
                let ours = Ours { ring, warm };
                contenders.push(contender(name, threads, ours, stream, &self.ring_next, tally));
            }
        }
        if let Some(fifo) = &self.fifo {
            for (name, per_batch, tally) in
                [(BASELINE, false, &tallies[2]), (BASELINE_BATCH, true, &tallies[3])]
            {
                let baseline = Baseline { fifo, lock_per_batch: per_batch };
                contenders.push(contender(name, threads, baseline, stream, &self.fifo_next, tally));
            }
        }
        contenders
    }
}

// ---------------------------------------------------------------------------------------------
// Driving them

#[derive(Debug, Clone, Copy)]
enum Threads {
    One,
    Two,
}

impl Threads {
    fn name(self) -> &'static str {
        match self {
            Threads::One => "1 thread",
            Threads::Two => "2 threads",
        }
    }

    /// Insert calls per iteration (both threads together).
    fn inserts_per_iteration(self) -> usize {
        match self {
            Threads::One => SINGLE_TRIPLES * TRIPLE,
            Threads::Two => PAIR_TRIPLES * 4 * BATCH,
        }
    }
}

/// A contender running `dedup` over the next triples of `stream` from `next` (shared with the
/// other row on the same structure), adding its answers to `tally`.
fn contender<'a, D: Dedup + 'a>(
    name: &'static str,
    threads: Threads,
    dedup: D,
    stream: &'a [u64],
    next: &'a Cell<usize>,
    tally: &'a Cell<Tally>,
) -> Contender<'a> {
    match threads {
        Threads::One => Contender::new(name, move || {
            let start = next.get();
            next.set(start + SINGLE_TRIPLES);
            let mut answers = Tally::default();
            for i in start..start + SINGLE_TRIPLES {
                for batch in triple(stream, i).chunks_exact(BATCH) {
                    dedup.batch(black_box(batch), &mut answers);
                }
            }
            tally.set(tally.get() + answers);
            SINGLE_TRIPLES * TRIPLE
        }),
        Threads::Two => Contender::new(name, move || {
            let start = next.get();
            next.set(start + PAIR_TRIPLES);
            let dedup = &dedup;
            // One thread takes (a, shared) of each triple, the other (shared, b).
            let work = move |first: bool| {
                let mut answers = Tally::default();
                for i in start..start + PAIR_TRIPLES {
                    let (a, rest) = triple(stream, i).split_at(BATCH);
                    let (shared, b) = rest.split_at(BATCH);
                    let (x, y) = if first { (a, shared) } else { (shared, b) };
                    dedup.batch(black_box(x), &mut answers);
                    dedup.batch(black_box(y), &mut answers);
                }
                answers
            };
            let (mine, theirs) = std::thread::scope(|scope| {
                let other = scope.spawn(move || work(false));
                let mine = work(true);
                (mine, other.join().expect("the second inserting thread panicked"))
            });
            tally.set(tally.get() + mine + theirs);
            PAIR_TRIPLES * 4 * BATCH
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Report

/// How many of the two-thread rounds ran with CPU 0 and CPU 1 near, far, or changing.
fn core_states(rows: &[Row]) -> String {
    let mut counts = [0usize; 3];
    // A workload's rows are adjacent and share its rounds: count them once.
    for workload in rows.chunk_by(|a, b| a.workload == b.workload) {
        if workload[0].workload.starts_with(Threads::Two.name()) {
            for state in &workload[0].cores {
                counts[*state as usize] += 1;
            }
        }
    }
    format!(
        "two-thread rounds by CPU 0 ↔ CPU 1 round trip (support/cores.rs; far: ≥ {:.0} ns before and after \
         the round): {} near, {} far, {} changing or not measured; the probe now reads {}",
        cores::FAR_NS,
        counts[Cores::Near as usize],
        counts[Cores::Far as usize],
        counts[Cores::Mixed as usize],
        cores::round_trip_ns().map_or_else(
            || "nothing (CPU 0 and CPU 1 are not both usable)".to_owned(),
            |ns| format!("{ns:.0} ns")
        ),
    )
}

/// `L1d 48K, L1i 32K, L2 1024K, L3 32768K` from sysfs.
fn caches() -> String {
    let mut out = Vec::new();
    for index in 0.. {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).map(|s| s.trim().to_owned());
        let (Ok(level), Ok(kind), Ok(size)) = (read("level"), read("type"), read("size")) else { break };
        let suffix = match kind.as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        out.push(format!("L{level}{suffix} {size}"));
    }
    if out.is_empty() {
        "unknown".to_owned()
    } else {
        out.join(", ")
    }
}

/// The rows as a markdown table, with each contender's answers.
fn table(rows: &[Row], answers: &[(String, &'static str, Tally)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | contender | ns/insert | M inserts/s | × vs baseline | ±½ IQR | \
         fresh / dup / pending % | full |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let tally = answers
            .iter()
            .find(|(workload, contender, _)| *workload == row.workload && *contender == row.contender)
            .map_or_else(Tally::default, |(_, _, tally)| *tally);
        let total = (tally.fresh + tally.duplicate + tally.pending + tally.full).max(1) as f64;
        let percent = |n: u64| 100.0 * n as f64 / total;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.2} | {} | ±{:.1}% | {:.1} / {:.1} / {:.2} | {} |",
            row.workload,
            row.contender,
            1e9 / row.events_per_s,
            row.events_per_s / 1e6,
            row.vs_baseline.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
            row.spread * 50.0,
            percent(tally.fresh),
            percent(tally.duplicate),
            percent(tally.pending),
            tally.full,
        );
    }
    out
}

/// Each `ours` row against the target that applies to it; two-thread ratios also per core state
/// (`support/cores.rs`): rounds with CPU 0 and CPU 1 sharing a cache, and rounds with them apart.
fn targets(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| workload | contender | target | measured | met | cores near | cores far |");
    let _ = writeln!(out, "|---|---|---|---:|---|---:|---:|");
    for row in rows.iter().filter(|row| row.contender.starts_with("ours")) {
        let baseline = rows.iter().find(|r| r.workload == row.workload && r.contender == BASELINE);
        let by_state = |state: Cores| match baseline.and_then(|b| row.ratio_when(b, state)) {
            Some((ratio, rounds)) => format!("{ratio:.2}× ({rounds} rounds)"),
            None => "–".to_owned(),
        };
        let (target, measured, met, near, far) = if row.workload.starts_with(Threads::One.name()) {
            let rate = row.events_per_s;
            (
                format!("≥ {:.0} M inserts/s", TARGET_RATE / 1e6),
                format!("{:.2} M/s", rate / 1e6),
                Some(rate >= TARGET_RATE),
                "–".to_owned(),
                "–".to_owned(),
            )
        } else {
            let ratio = row.vs_baseline;
            (
                format!("≥ {TARGET_RATIO:.0}× baseline"),
                ratio.map_or_else(|| "– (baseline not run)".to_owned(), |r| format!("{r:.2}×")),
                ratio.map(|r| r >= TARGET_RATIO),
                by_state(Cores::Near),
                by_state(Cores::Far),
            )
        };
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {target} | {measured} | {met} | {near} | {far} |",
            row.workload, row.contender
        );
    }
    out
}
