//! Appending with group commit: the request that finds nobody writing becomes the writer for
//! everyone waiting (flat combining). It writes every queued batch's records with one write,
//! makes them durable with one `fdatasync`, publishes the new committed position, and wakes each
//! batch's coroutine with the outcome.
//!
//! # Waiting without blocking a worker thread
//! may runs many coroutines on each worker thread; a std `Mutex` wait, `Condvar` or blocking
//! channel call inside a coroutine would stall every coroutine of that thread. A waiting batch
//! parks on a may [`Blocker`] instead: `park` switches the coroutine out (its worker thread runs
//! other coroutines) and `unpark` from any thread puts it back on a run queue. The only std
//! locks here are held for a push or a swap of a `Vec` (`pending`) or by the one combiner
//! (`tail`), never across a wait. The combiner's own worker thread is busy for the write and
//! the `fdatasync`; the other worker threads keep serving, and with `--io-threads` ≥ 2 new
//! requests keep arriving and queue for the next group, which is what makes groups large.
//!
//! # Why no batch is ever left waiting
//! A batch is pushed on `pending`, then its coroutine tries to set `writing`. The one that
//! succeeds takes `pending` in rounds until its own batch is written, clears `writing`, and
//! looks at `pending` once more: if a batch waits there, it wakes the oldest one, which tries to
//! become the combiner in turn; a batch pushed after the look sees `writing` clear and writes
//! itself (see `Combining::run` for the whole argument). If the
//! combiner unwinds (a bug, or a storage that panics), a guard poisons the journal, fails and
//! wakes every batch it held or that is queued, and clears `writing`: no exit path leaves the
//! "commit in progress" flag set (the hang okaywal has after a failed fsync).
//!
//! # Poison
//! The first failed write or `fdatasync` poisons the journal for the life of the process: after
//! a failed `fdatasync` Linux may have dropped the dirty pages and cleared the error, so a later
//! `fdatasync` that succeeds proves nothing. Every batch then gets [`Append::Poisoned`] (503), and
//! a restart recovers from what is really on disk.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam_channel::{Receiver, Sender};
use may::sync::Blocker;

use super::cursor::Reader;
use super::format::{self, SEGMENT_HEADER_LEN};
use super::recover::{self, Recovered, SegmentInfo};
use super::storage::{write_all_at, Segment, Storage};
use super::{Durability, JournalConfig};

/// Batches waiting for the next group; beyond it a batch gets [`Append::Busy`] at once.
pub const QUEUE_CAPACITY: usize = 4096;
/// Bytes waiting for the next group; beyond it a batch gets [`Append::Busy`] at once. With
/// [`Durability::None`] this is what a crash of the process can lose, and it counts in the
/// receiver's memory (twice while a group is being written: queued, and in the group buffer).
pub const QUEUE_BYTES: usize = 16 << 20;
/// Group buffer capacity kept between groups; a larger one is released after use.
const RETAINED_BYTES: usize = 4 << 20;

/// [`Job::outcome`] values.
const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    /// Written and, with [`Durability::Fsync`], synced.
    Committed,
    /// [`Durability::None`]: handed to the writer, not yet written.
    Queued,
    /// Too much is waiting to be written; nothing of the batch was written.
    Busy,
    /// The write or sync failed (the journal is now poisoned); the batch is not committed.
    Failed,
    /// An earlier failure poisoned the journal; nothing is written until a restart.
    Poisoned,
}

/// One batch's records and the way to wake its coroutine.
#[derive(Debug)]
struct Job {
    records: Vec<u8>,
    outcome: AtomicU8,
    /// `None` when nobody waits for the outcome ([`Durability::None`]).
    blocker: Option<Arc<Blocker>>,
}

impl Job {
    fn finish(&self, outcome: u8) {
        self.outcome.store(outcome, Ordering::Release);
        if let Some(blocker) = &self.blocker {
            blocker.unpark();
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    jobs: Vec<Arc<Job>>,
    bytes: usize,
}

/// The newest segment, written only by the combiner.
#[derive(Debug)]
struct Tail {
    segment: Box<dyn Segment>,
    len: u64,
    next_seq: u64,
    group: Vec<u8>,
}

/// Counters for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Batches appended (committed or queued).
    pub batches: AtomicU64,
    /// Groups written (one write each).
    pub groups: AtomicU64,
    /// `fdatasync` calls that succeeded.
    pub syncs: AtomicU64,
    /// Records written.
    pub records: AtomicU64,
}

/// The append-only, group-committed journal.
#[derive(Debug)]
pub struct Journal {
    storage: Arc<dyn Storage>,
    durability: Durability,
    segment_bytes: u64,
    pending: Mutex<Pending>,
    /// Set while one caller is the combiner.
    writing: AtomicBool,
    /// Only the combiner takes this lock.
    tail: Mutex<Tail>,
    /// Sequence number after the last committed record: readers read below it.
    committed: AtomicU64,
    poisoned: AtomicBool,
    /// Bytes in all segments.
    bytes: AtomicU64,
    /// Every segment (the newest one's length is updated when it is sealed).
    segments: Mutex<Vec<SegmentInfo>>,
    doorbell: (Sender<()>, Receiver<()>),
    stats: JournalStats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Recovers the journal in `storage` (see `recover.rs`) and opens it for appending.
    pub fn open(storage: Arc<dyn Storage>, config: &JournalConfig) -> std::io::Result<(Journal, Recovered)> {
        let recovered = recover::recover(&*storage)?;
        let mut segments = recovered.segments.clone();
        let resume = segments.last().copied().filter(|last| last.end_seq >= config.first_seq);
        let (segment, info) = match resume {
            Some(last) => (storage.open(last.id)?, last),
            // A fresh journal, or one behind the sinks' checkpoints (its newest segments were
            // deleted by hand): a new segment continues after every position ever handed out.
            None => {
                let id = config.first_seq.max(recovered.next_seq().unwrap_or(1)).max(1);
                let mut segment = storage.create(id)?;
                write_all_at(&mut *segment, 0, &format::segment_header(id))?;
                segment.sync()?;
                let info = SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id };
                segments.push(info);
                (segment, info)
            }
        };
        let bytes = segments.iter().map(|s| s.len).sum();
        let tail = Tail { segment, len: info.len, next_seq: info.end_seq, group: Vec::new() };
        let journal = Journal {
            storage,
            durability: config.durability,
            segment_bytes: config.segment_bytes,
            pending: Mutex::new(Pending::default()),
            writing: AtomicBool::new(false),
            committed: AtomicU64::new(tail.next_seq),
            tail: Mutex::new(tail),
            poisoned: AtomicBool::new(false),
            bytes: AtomicU64::new(bytes),
            segments: Mutex::new(segments),
            doorbell: crossbeam_channel::bounded(1),
            stats: JournalStats::default(),
        };
        Ok((journal, recovered))
    }

    /// Appends a batch's records (rendered with `format::push_record`); with
    /// [`Durability::Fsync`] returns once they are synced, parking only the calling coroutine.
    pub fn append(&self, records: Vec<u8>) -> Append {
        if self.poisoned() {
            return Append::Poisoned;
        }
        let wait = self.durability == Durability::Fsync;
        let job =
            Arc::new(Job { outcome: AtomicU8::new(PENDING), blocker: wait.then(Blocker::current), records });
        {
            let mut pending = lock(&self.pending);
            if pending.jobs.len() >= QUEUE_CAPACITY || pending.bytes + job.records.len() > QUEUE_BYTES {
                return Append::Busy;
            }
            pending.bytes += job.records.len();
            pending.jobs.push(Arc::clone(&job));
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        loop {
            match job.outcome.load(Ordering::Acquire) {
                WRITTEN => return Append::Committed,
                FAILED => return Append::Failed,
                _ => {}
            }
            if self.try_combine(Until::Settled(&job)) {
                // Our batch was queued, so that round of combining settled it.
                continue;
            }
            match &job.blocker {
                // The combiner (now, or the one after it) writes it and wakes us.
                Some(blocker) => drop(blocker.park(None)),
                None => return Append::Queued,
            }
        }
    }

    /// Becomes the combiner if nobody is, and writes groups until `until`; returns whether it
    /// was the combiner.
    fn try_combine(&self, until: Until<'_>) -> bool {
        if self.writing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        let mut combining = Combining { journal: self, group: Vec::new() };
        combining.run(until);
        true
    }

    /// Writes one group of whatever is queued, if nobody else is writing. The dispatcher calls
    /// it on every turn: with [`Durability::None`] nobody waits for a batch, so a batch queued
    /// just as a combiner handed over would otherwise wait for the next append.
    pub fn kick(&self) {
        if !lock(&self.pending).jobs.is_empty() {
            self.try_combine(Until::OneGroup);
        }
    }

    /// Writes and syncs everything queued so far, then returns (graceful shutdown; waits for a
    /// running combiner to finish). `Err` if the journal is poisoned.
    pub fn flush(&self) -> std::io::Result<()> {
        while !self.try_combine(Until::Empty) {
            std::thread::yield_now();
        }
        // The tail lock orders this sync after any group a later combiner is writing.
        let mut tail = lock(&self.tail);
        if self.poisoned() {
            return Err(std::io::Error::other("the journal is poisoned"));
        }
        tail.segment.sync().inspect_err(|e| self.poison("fdatasync at shutdown", e))
    }

    /// Writes one group: all its records, one write, one sync; true when committed.
    fn write(&self, group: &[Arc<Job>]) -> bool {
        if self.poisoned() {
            return false;
        }
        let mut tail = lock(&self.tail);
        let tail = &mut *tail;
        tail.group.clear();
        for job in group {
            tail.group.extend_from_slice(&job.records);
        }
        let count = format::seal(&mut tail.group, tail.next_seq);
        let outgrown =
            tail.len > SEGMENT_HEADER_LEN as u64 && tail.len + tail.group.len() as u64 > self.segment_bytes;
        if outgrown {
            if let Err(e) = self.rotate(tail) {
                self.poison("starting a new segment", &e);
                return false;
            }
        }
        let written = write_all_at(&mut *tail.segment, tail.len, &tail.group);
        let result = written.map_err(|e| ("write", e)).and_then(|()| match self.durability {
            Durability::Fsync => tail.segment.sync().map_err(|e| ("fdatasync", e)),
            Durability::None => Ok(()),
        });
        let group_len = tail.group.len() as u64;
        if tail.group.capacity() > RETAINED_BYTES {
            tail.group = Vec::new();
        }
        match result {
            Ok(()) => {
                tail.len += group_len;
                tail.next_seq += count;
                self.bytes.fetch_add(group_len, Ordering::Relaxed);
                self.stats.groups.fetch_add(1, Ordering::Relaxed);
                self.stats.records.fetch_add(count, Ordering::Relaxed);
                if self.durability == Durability::Fsync {
                    self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                }
                self.committed.store(tail.next_seq, Ordering::Release);
                let _ = self.doorbell.0.try_send(());
                true
            }
            Err((what, e)) => {
                self.poison(what, &e);
                // Best effort: the bytes past `len` were never committed; recovery cuts them too.
                let _ = tail.segment.truncate(tail.len);
                false
            }
        }
    }

    /// Seals the newest segment and starts the next one, named after its first record.
    fn rotate(&self, tail: &mut Tail) -> std::io::Result<()> {
        // With fsync durability every group was synced already. With none, the old segment is
        // left to the kernel's write-back like the rest: syncing it here would stall every
        // writer for the whole segment's flush (measured 60-175 ms for 64 MiB), which is exactly
        // the latency that mode exists to avoid. A crash of the machine can then tear an older
        // segment too; recovery cuts it like a torn tail and reports it.
        let id = tail.next_seq;
        let mut segment = self.storage.create(id)?;
        write_all_at(&mut *segment, 0, &format::segment_header(id))?;
        let mut segments = lock(&self.segments);
        if let Some(last) = segments.last_mut() {
            last.len = tail.len;
            last.end_seq = tail.next_seq;
        }
        segments.push(SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id });
        drop(segments);
        self.bytes.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        *tail = Tail {
            segment,
            len: SEGMENT_HEADER_LEN as u64,
            next_seq: id,
            group: std::mem::take(&mut tail.group),
        };
        Ok(())
    }

    fn poison(&self, what: &str, error: &std::io::Error) {
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            log::error!(
                "JOURNAL POISONED: {what} failed: {error}. No event is acknowledged until the receiver \
                 restarts (every POST is answered 503 and /healthz is 503)"
            );
        }
    }

    /// True after a failed write or sync.
    pub fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Sequence number after the last committed record.
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Bytes in all segments (the disk the journal takes).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Counters.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// A channel that receives a message after commits (at most one waits: a doorbell, not a
    /// queue). One reader should own it.
    pub fn doorbell(&self) -> Receiver<()> {
        self.doorbell.1.clone()
    }

    /// A reader from `from_seq` on.
    pub fn reader(&self, from_seq: u64) -> Reader {
        Reader::new(Arc::clone(&self.storage), from_seq)
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut segments = lock(&self.segments).clone();
        let sealed: u64 = segments.iter().rev().skip(1).map(|s| s.len).sum();
        if let Some(last) = segments.last_mut() {
            last.end_seq = self.committed_seq().max(last.end_seq);
            last.len = self.bytes().saturating_sub(sealed);
        }
        segments
    }

    /// Removes every segment all of whose records are below `seq` (never the newest one);
    /// returns how many were removed.
    pub fn remove_before(&self, seq: u64) -> std::io::Result<usize> {
        let mut segments = lock(&self.segments);
        let mut removed = 0;
        while segments.len() > 1 && segments[1].id <= seq {
            let old = segments[0];
            self.storage.remove(old.id)?;
            self.bytes.fetch_sub(old.len, Ordering::Relaxed);
            segments.remove(0);
            removed += 1;
        }
        Ok(removed)
    }
}

/// The combiner's state; its `Drop` settles everything if the combiner unwinds.
struct Combining<'j> {
    journal: &'j Journal,
    group: Vec<Arc<Job>>,
}

/// How long a combiner keeps writing groups.
#[derive(Clone, Copy)]
enum Until<'j> {
    /// Until nothing is queued (a flush).
    Empty,
    /// Until this batch is written (an append): then it hands over, so that under steady load
    /// no request stays the writer for everyone else's batches while its own answer waits.
    Settled(&'j Job),
    /// One group (a kick).
    OneGroup,
}

impl Combining<'_> {
    /// Writes groups until `until`; entered with `writing` set, leaves it clear.
    ///
    /// Hand-over: after clearing `writing` the combiner looks at `pending` once more. If a batch
    /// is there, either its coroutine has not yet tried to become the combiner (it will, and
    /// may succeed now), or it tried while `writing` was set and is parked: the combiner wakes
    /// the oldest one, which then tries. A woken batch that finds another combiner parks again;
    /// that combiner does the same look when it leaves. With [`Durability::None`] nobody parks,
    /// and the next append or the dispatcher's [`Journal::kick`] writes what is left.
    fn run(&mut self, until: Until<'_>) {
        let journal = self.journal;
        loop {
            {
                let mut pending = lock(&journal.pending);
                std::mem::swap(&mut self.group, &mut pending.jobs);
                pending.bytes = 0;
            }
            if !self.group.is_empty() {
                let outcome = if journal.write(&self.group) { WRITTEN } else { FAILED };
                for job in self.group.drain(..) {
                    job.finish(outcome);
                }
            }
            let done = match until {
                Until::Empty => lock(&journal.pending).jobs.is_empty(),
                Until::Settled(job) => job.outcome.load(Ordering::Acquire) != PENDING,
                Until::OneGroup => true,
            };
            if !done {
                continue;
            }
            journal.writing.store(false, Ordering::SeqCst);
            let oldest = lock(&journal.pending).jobs.first().cloned();
            if let Some(blocker) = oldest.as_ref().and_then(|job| job.blocker.as_ref()) {
                blocker.unpark();
            }
            return;
        }
    }
}

impl Drop for Combining<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let journal = self.journal;
        journal.poison("the journal writer", &std::io::Error::other("it panicked"));
        let queued = std::mem::take(&mut lock(&journal.pending).jobs);
        for job in self.group.drain(..).chain(queued) {
            job.finish(FAILED);
        }
        journal.writing.store(false, Ordering::SeqCst);
    }
}
