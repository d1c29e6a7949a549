//! Appending with group commit: requests queue their batches; one writer thread writes every
//! queued batch with one write, makes them durable with one `fdatasync`, publishes the new
//! committed position, and wakes each batch's coroutine with the outcome (`writer.rs`).
//!
//! # Waiting without blocking a worker thread
//! may runs many coroutines on each worker thread; a std `Mutex` wait, `Condvar` or blocking
//! channel call inside a coroutine would stall every coroutine of that thread. A waiting batch
//! parks on a may [`Blocker`] instead: `park` switches the coroutine out (its worker thread runs
//! other coroutines) and `unpark` (by a waker, see below) puts it back on a run queue. The only
//! std locks a request takes are `pending`'s, held for a push, and those of `wake.rs`, held
//! while a settled group's waiters are filed or taken. The `fdatasync` runs on the writer
//! thread, so no may worker thread ever waits for the disk: while one group is being synced,
//! requests keep being parsed on every worker and queue for the next group, which is what makes
//! groups large. (An earlier design let the first waiting request write for everyone, "flat
//! combining"; it kept one of the two worker threads blocked in `fdatasync` nearly all the time
//! under load.)
//!
//! # Waking a group: one system call per worker, each waiter on its own worker
//! Unparking a coroutine from a thread that is not one of may's workers (the writer) queues it
//! on some worker, round robin, and writes that worker's eventfd: a system call, and often a
//! wake-up, per batch. So the writer sets every outcome, files each waiter under the worker
//! thread it parked on, and spawns one short waker coroutine per worker, which unparks that
//! worker's waiters from inside (`wake.rs`): one eventfd write per worker and group, every
//! worker answers its own share of the group, and each waiter resumes on the core whose caches
//! hold its stack and its connection. (Before, the writer unparked one waiter per worker, round
//! robin, and each of those unparked the rest onto its own worker: one woken worker alone
//! answered a 26-batch group serially unless the other stole from it, and every stolen waiter
//! resumed on the other core.)
//!
//! # No waiter is ever left hanging
//! The writer takes the whole queue at each turn and settles every batch it took (written or
//! failed) before the next. If the writer thread dies (a bug, or a storage layer that panics),
//! its guard poisons the journal, then takes the queue one last time and fails every batch in
//! it. A batch checks the poison under the queue's lock before it joins the queue, so it either
//! joined before that last take (and is failed by the guard) or sees the poison and is not
//! queued at all: no window in which it could wait for a writer that is gone (okaywal's failure
//! mode: a "syncing" flag left set on an error path). So a waiting batch parks without a
//! timeout, which spares may's timer thread a timer per request.
//!
//! # Poison, and a full disk
//! The first failed `fdatasync` (or a write that fails for any reason but lack of space) poisons
//! the journal for the life of the process: after a failed `fdatasync` Linux may have dropped the
//! dirty pages and cleared the error, so a later `fdatasync` that succeeds proves nothing. Every
//! batch then gets [`Append::Poisoned`] (503), and a restart recovers from what is really on disk.
//!
//! A write refused for lack of space (`ENOSPC`, `EDQUOT`) is different: the kernel allocates
//! blocks when the write is made, nothing was handed to write-back, and the bytes past the tail
//! are cut off again. The group is refused ([`Append::NoSpace`], 503) and the journal carries on:
//! the next group tries again, so the receiver recovers by itself once space is freed. With
//! [`Durability::None`] the group's batches were already acknowledged, so the writer keeps the
//! group and tries it again every [`NO_SPACE_RETRY`] instead (new batches wait in the bounded
//! queue and are refused when it is full).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use may::sync::Blocker;

use super::cursor::{Reader, TailMark};
use super::format::{self, SEGMENT_HEADER_LEN};
use super::recover::{self, Recovered, SegmentInfo};
use super::storage::{write_all_at, Segment, Storage};
use super::wake::{current_home, Homes};
use super::{writer, Durability, JournalConfig};

/// Batches waiting for the next group; beyond it a batch waits for room (see [`QUEUE_WAIT`]).
pub const QUEUE_CAPACITY: usize = 4096;
/// Bytes accepted and not yet written (queued, or in the group being written); beyond it a
/// batch waits for room. With [`Durability::None`] this is what a crash of the process can
/// lose, and what a stalled write can add to the receiver's memory: each batch's buffer is
/// released as the writer copies it into the group, so the bytes are held once. A batch of more
/// than half of it is taken once at most half of it is queued (it could never be stored
/// otherwise, and under load the queue is rarely empty): the request's size limit bounds it.
pub const QUEUE_BYTES: usize = 2 << 20;
/// How long a batch that finds the queue full waits for room (in steps of `QUEUE_POLL`,
/// sleeping only its coroutine) before [`Append::Busy`] (503). A write that stalls in the kernel
/// then slows requests down instead of refusing them or holding more memory. Measured in none
/// mode: stalls filled a 16 MiB queue, which took peak RSS to 70 MiB (86 MiB under the
/// simulator, with 503s); some last over 100 ms, which a 100 ms wait still answered with 503s.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
const QUEUE_POLL: Duration = Duration::from_millis(1);
/// Group buffer capacity kept between groups; a larger one is released after use.
const RETAINED_BYTES: usize = 4 << 20;

/// [`Job::outcome`] values.
pub(super) const PENDING: u8 = 0;
pub(super) const WRITTEN: u8 = 1;
pub(super) const FAILED: u8 = 2;
pub(super) const NO_SPACE: u8 = 3;
pub(super) const NO_DESCRIPTORS: u8 = 4;

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
    /// The disk (or the quota) had no room for the batch; nothing of it was kept. The journal
    /// takes batches again as soon as a write succeeds.
    NoSpace,
    /// A new segment could not be opened for want of file descriptors (EMFILE, ENFILE); nothing
    /// of the batch was kept, and the next batch tries again.
    NoDescriptors,
}

/// How often the writer looks whether the journal's directory is still the one it opened (the
/// newest segment's file is looked at before every group: one `fstat`).
pub const DIRECTORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// With [`Durability::None`], how often the writer tries again a group it could not write for
/// lack of space.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(100);

/// True for the errors of a write that found no room: the write did not happen (in part or at
/// all), and freeing space makes the next one succeed.
pub(super) fn is_no_space(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// True for the errors of an `open` that found no free descriptor: nothing was written.
fn is_no_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// One batch's records and the way to wake its coroutine.
#[derive(Debug)]
pub(super) struct Job {
    /// Taken (emptied) by the writer as it copies them into the group.
    pub(super) records: Mutex<Vec<u8>>,
    /// Their length, for the byte bound once they are taken.
    pub(super) len: usize,
    /// Sync the group this job is in, whatever the durability (a flush).
    pub(super) sync: bool,
    pub(super) outcome: AtomicU8,
    /// `None` when nobody waits for the outcome ([`Durability::None`]).
    blocker: Option<Arc<Blocker>>,
    /// The waiter's worker thread (`wake.rs`); `None` for a thread.
    home: Option<usize>,
}

impl Job {
    pub(super) fn finish(&self, outcome: u8) {
        self.outcome.store(outcome, Ordering::Release);
        if let Some(blocker) = &self.blocker {
            blocker.unpark();
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) jobs: Vec<Arc<Job>>,
    /// Bytes of the queued jobs and of the group being written ([`QUEUE_BYTES`] bounds it).
    pub(super) bytes: usize,
    /// Set when the journal is dropped: the writer drains the queue and ends.
    pub(super) closing: bool,
}

/// The newest segment, written only by the writer thread.
#[derive(Debug)]
pub(super) struct Tail {
    /// The segment's id (its first sequence number).
    pub(super) id: u64,
    pub(super) segment: Box<dyn Segment>,
    pub(super) len: u64,
    /// The file's size: beyond `len` it holds older bytes (a reused file), so every group
    /// written below it is followed by an end mark.
    pub(super) capacity: u64,
    pub(super) next_seq: u64,
    pub(super) group: Vec<u8>,
    /// When the journal's directory was last found intact.
    pub(super) checked_at: Instant,
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

/// What the requests and the writer thread share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) durability: Durability,
    pub(super) segment_bytes: u64,
    pub(super) pending: Mutex<Pending>,
    /// Sequence number after the last committed record: readers read below it.
    pub(super) committed: AtomicU64,
    pub(super) poisoned: AtomicBool,
    /// The last write found no room (cleared by the next write that succeeds).
    pub(super) no_space: AtomicBool,
    /// Groups refused (or, with no durability, retried) for lack of space.
    pub(super) no_space_groups: AtomicU64,
    /// Groups refused (or retried) because a new segment could not be opened for want of
    /// descriptors.
    pub(super) no_descriptor_groups: AtomicU64,
    /// Bytes in all segments.
    pub(super) bytes: AtomicU64,
    /// Bytes in delivered segments kept for replay (set when segments are removed).
    pub(super) retained: AtomicU64,
    /// Every segment (the newest one's length is updated when it is sealed).
    pub(super) segments: Mutex<Vec<SegmentInfo>>,
    /// Waiters whose batch is settled, filed for their worker's waker (`wake.rs`).
    pub(super) homes: Arc<Homes>,
    /// Where the newest segment's written bytes end, for readers.
    pub(super) tail_mark: Arc<TailMark>,
    pub(super) doorbell: (Sender<()>, Receiver<()>),
    pub(super) stats: JournalStats,
}

/// The append-only, group-committed journal.
#[derive(Debug)]
pub struct Journal {
    inner: Arc<Inner>,
    writer: Option<JoinHandle<()>>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Recovers the journal in `storage` (see `recover.rs`) and opens it for appending.
    pub fn open(storage: Arc<dyn Storage>, config: &JournalConfig) -> std::io::Result<(Journal, Recovered)> {
        let recovered = recover::recover(&*storage, config.corrupt_dir.as_deref())?;
        let mut segments = recovered.segments.clone();
        let resume = segments.last().copied().filter(|last| last.end_seq >= config.first_seq);
        let (segment, info) = match resume {
            Some(last) => (storage.open(last.id)?, last),
            // A fresh journal, or one behind the sinks' checkpoints (its newest segments were
            // deleted by hand): a new segment continues after every position ever handed out.
            None => {
                let id = config.first_seq.max(recovered.next_seq().unwrap_or(1)).max(1);
                let (mut segment, _) = start_segment(&*storage, id, true)?;
                segment.sync()?;
                let info = SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id };
                segments.push(info);
                (segment, info)
            }
        };
        let bytes = segments.iter().map(|s| s.len).sum();
        let capacity = segment.size()?;
        let tail = Tail {
            id: info.id,
            segment,
            len: info.len,
            capacity,
            next_seq: info.end_seq,
            group: Vec::new(),
            checked_at: Instant::now(),
        };
        let inner = Arc::new(Inner {
            storage,
            durability: config.durability,
            segment_bytes: config.segment_bytes,
            pending: Mutex::new(Pending::default()),
            committed: AtomicU64::new(tail.next_seq),
            poisoned: AtomicBool::new(false),
            no_space: AtomicBool::new(false),
            no_space_groups: AtomicU64::new(0),
            no_descriptor_groups: AtomicU64::new(0),
            bytes: AtomicU64::new(bytes),
            retained: AtomicU64::new(0),
            segments: Mutex::new(segments),
            homes: Arc::new(Homes::default()),
            tail_mark: Arc::new(TailMark::default()),
            doorbell: crossbeam_channel::bounded(1),
            stats: JournalStats::default(),
        });
        inner.tail_mark.set(info.id, tail.len);
        let writer = writer::spawn(Arc::clone(&inner), tail)?;
        Ok((Journal { inner, writer: Some(writer) }, recovered))
    }

    /// Appends a batch's records (rendered with `format::push_record`); with
    /// [`Durability::Fsync`] returns once they are synced, parking only the calling coroutine
    /// (or thread).
    pub fn append(&self, records: Vec<u8>) -> Append {
        let wait = self.inner.durability == Durability::Fsync;
        self.submit(records, false, wait).unwrap_or(Append::Queued)
    }

    /// Queues a job and, when `wait`, waits for its outcome; `None` when queued without waiting.
    fn submit(&self, records: Vec<u8>, sync: bool, wait: bool) -> Option<Append> {
        let inner = &self.inner;
        if inner.poisoned() {
            return Some(Append::Poisoned);
        }
        let job = Arc::new(Job {
            len: records.len(),
            records: Mutex::new(records),
            sync,
            outcome: AtomicU8::new(PENDING),
            blocker: wait.then(Blocker::current),
            home: if wait { current_home() } else { None },
        });
        let mut deadline = None;
        loop {
            let mut pending = lock(&inner.pending);
            // Under the lock: see "No waiter is ever left hanging" in the module docs.
            if inner.poisoned() {
                return Some(Append::Poisoned);
            }
            let limit = QUEUE_BYTES.max(job.len + QUEUE_BYTES / 2);
            let full = pending.jobs.len() >= QUEUE_CAPACITY || pending.bytes + job.len > limit;
            if !full {
                pending.bytes += job.len;
                pending.jobs.push(Arc::clone(&job));
                break;
            }
            drop(pending);
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + QUEUE_WAIT);
            if Instant::now() >= deadline {
                return Some(Append::Busy);
            }
            // The coroutine's sleep (a thread's outside may): the worker thread serves others.
            may::coroutine::sleep(QUEUE_POLL);
        }
        inner.stats.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
        let blocker = job.blocker.as_ref()?;
        loop {
            match job.outcome.load(Ordering::Acquire) {
                WRITTEN => return Some(Append::Committed),
                FAILED => return Some(Append::Failed),
                NO_SPACE => return Some(Append::NoSpace),
                NO_DESCRIPTORS => return Some(Append::NoDescriptors),
                // The writer (or its guard) settles every queued batch and then wakes it.
                _ => drop(blocker.park(None)),
            }
        }
    }

    /// Writes and syncs everything queued so far, then returns (graceful shutdown). `Err` if the
    /// journal is poisoned.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.submit(Vec::new(), true, true) {
            Some(Append::Committed) => Ok(()),
            Some(Append::Busy) => Err(std::io::Error::other("the write queue is full")),
            Some(Append::NoSpace) => Err(std::io::Error::other("the disk is full")),
            Some(Append::NoDescriptors) => Err(std::io::Error::other("no file descriptor is free")),
            _ => Err(std::io::Error::other("the journal is poisoned")),
        }
    }

    /// True after a failed write or sync.
    pub fn poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Relaxed)
    }

    /// True while the disk has no room for the journal's writes (since the last write, which
    /// found none).
    pub fn no_space(&self) -> bool {
        self.inner.no_space.load(Ordering::Relaxed)
    }

    /// Groups of batches a write could not store for lack of space.
    pub fn no_space_groups(&self) -> u64 {
        self.inner.no_space_groups.load(Ordering::Relaxed)
    }

    /// Groups of batches refused because a new segment could not be opened for want of file
    /// descriptors.
    pub fn no_descriptor_groups(&self) -> u64 {
        self.inner.no_descriptor_groups.load(Ordering::Relaxed)
    }

    /// Sequence number after the last committed record.
    pub fn committed_seq(&self) -> u64 {
        self.inner.committed.load(Ordering::Acquire)
    }

    /// Bytes in all segments (the disk the journal takes).
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Counters.
    pub fn stats(&self) -> &JournalStats {
        &self.inner.stats
    }

    /// A channel that receives a message after commits (at most one waits: a doorbell, not a
    /// queue). One reader should own it.
    pub fn doorbell(&self) -> Receiver<()> {
        self.inner.doorbell.1.clone()
    }

    /// A reader from `from_seq` on.
    pub fn reader(&self, from_seq: u64) -> Reader {
        Reader::live(Arc::clone(&self.inner.storage), from_seq, Arc::clone(&self.inner.tail_mark))
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut segments = lock(&self.inner.segments).clone();
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
        self.remove_delivered(seq, Duration::ZERO, 0)
    }

    /// Removes delivered segments (all of whose records are below `floor`; never the newest
    /// one) last written longer than `retention` ago, and, oldest first, any more while the
    /// journal takes over `max_bytes`; returns how many were removed. Delivered segments that
    /// stay (for `replay`) are counted in [`Journal::retained_bytes`], not in
    /// [`Journal::undelivered_bytes`]. A storage that cannot tell a segment's age keeps it for
    /// the budget to remove.
    pub fn remove_delivered(
        &self,
        floor: u64,
        retention: Duration,
        max_bytes: u64,
    ) -> std::io::Result<usize> {
        let inner = &self.inner;
        let mut segments = lock(&inner.segments);
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let mut result = Ok(());
        while segments.len() > 1 && segments[1].id <= floor {
            let old = segments[0];
            let expired = match inner.storage.modified(old.id) {
                Ok(Some(at)) => now.duration_since(at).unwrap_or_default() >= retention,
                Ok(None) => retention.is_zero(),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if !expired && inner.bytes.load(Ordering::Relaxed) <= max_bytes {
                break;
            }
            if let Err(e) = inner.storage.remove(old.id) {
                result = Err(e);
                break;
            }
            inner.bytes.fetch_sub(old.len, Ordering::Relaxed);
            segments.remove(0);
            removed += 1;
        }
        // What stays below the floor is delivered: kept only for replay.
        let retained: u64 =
            segments.windows(2).take_while(|pair| pair[1].id <= floor).map(|pair| pair[0].len).sum();
        inner.retained.store(retained, Ordering::Relaxed);
        result.map(|()| removed)
    }

    /// Bytes of delivered segments kept for replay.
    pub fn retained_bytes(&self) -> u64 {
        self.inner.retained.load(Ordering::Relaxed)
    }

    /// Bytes of segments holding records some sink has not delivered yet (what
    /// `--max-journal-bytes` limits).
    pub fn undelivered_bytes(&self) -> u64 {
        self.bytes().saturating_sub(self.retained_bytes())
    }
}

impl Drop for Journal {
    /// Lets the writer finish what is queued, then ends it.
    fn drop(&mut self) {
        lock(&self.inner.pending).closing = true;
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

/// Creates segment `id` (perhaps in a reused file) and writes its header, followed by an end
/// mark when the file holds older bytes; returns it and the file's size.
fn start_segment(storage: &dyn Storage, id: u64, durable: bool) -> std::io::Result<(Box<dyn Segment>, u64)> {
    let mut segment = storage.create(id, durable)?;
    let size = segment.size()?;
    let mut start = format::segment_header(id).to_vec();
    if size > SEGMENT_HEADER_LEN as u64 {
        start.extend_from_slice(&format::END_MARK);
    }
    if let Err(e) = write_all_at(&mut *segment, 0, &start) {
        // Not a segment yet (a full disk): gone, so that the next try can create it again.
        drop(segment);
        if let Err(removed) = storage.remove(id) {
            log::error!("cannot remove the segment {id} that could not be started: {removed}");
        }
        return Err(e);
    }
    Ok((segment, size.max(start.len() as u64)))
}

impl Inner {
    /// Settles a group: every job gets `outcome`, then its waiters are woken (`wake.rs`).
    pub(super) fn settle(&self, jobs: &mut Vec<Arc<Job>>, outcome: u8) {
        for job in jobs.iter() {
            job.outcome.store(outcome, Ordering::Release);
        }
        self.homes.wake(jobs.drain(..).filter_map(|job| Some((job.home, Arc::clone(job.blocker.as_ref()?)))));
    }

    pub(super) fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    pub(super) fn poison(&self, what: &str, error: &std::io::Error) {
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            log::error!(
                "JOURNAL POISONED: {what} failed: {error}. No event is acknowledged until the receiver \
                 restarts (every POST is answered 503 and /healthz is 503)"
            );
        }
    }
    /// Writes one group: all its records, one write, one sync. Returns [`WRITTEN`], [`FAILED`]
    /// (the journal is poisoned) or [`NO_SPACE`] (nothing of the group is kept: its records are
    /// back in its jobs, for another try).
    pub(super) fn write(&self, tail: &mut Tail, group: &[Arc<Job>]) -> u8 {
        if self.poisoned() {
            return FAILED;
        }
        if let Err(e) = self.still_there(tail) {
            self.poison("checking the data directory", &e);
            return FAILED;
        }
        tail.group.clear();
        for job in group {
            // Taken, so the batch's buffer is freed now rather than after the write.
            tail.group.extend_from_slice(&std::mem::take(&mut *lock(&job.records)));
        }
        let count = format::seal(&mut tail.group, tail.next_seq);
        let group_len = tail.group.len() as u64;
        let outgrown =
            tail.len > SEGMENT_HEADER_LEN as u64 && tail.len + tail.group.len() as u64 > self.segment_bytes;
        if outgrown {
            if let Err(e) = self.rotate(tail) {
                return self.refuse(tail, group, "starting a new segment", &e, false);
            }
        }
        // In a reused file, older bytes follow: end the records (the next group overwrites it).
        let end = tail.len + group_len;
        if end < tail.capacity {
            tail.group.extend_from_slice(&format::END_MARK);
            tail.capacity = tail.capacity.max(end + format::END_MARK.len() as u64);
        }
        let written = write_all_at(&mut *tail.segment, tail.len, &tail.group);
        if let Err(e) = written {
            return self.refuse(tail, group, "write", &e, true);
        }
        let sync = self.durability == Durability::Fsync || group.iter().any(|job| job.sync);
        if sync {
            if let Err(e) = tail.segment.sync() {
                self.poison("fdatasync", &e);
                // Best effort: the bytes past `len` were never committed; recovery cuts them too.
                let _ = tail.segment.truncate(tail.len);
                return FAILED;
            }
        }
        if tail.group.capacity() > RETAINED_BYTES {
            tail.group = Vec::new();
        }
        tail.len += group_len;
        tail.next_seq += count;
        self.tail_mark.set(tail.id, tail.len);
        self.bytes.fetch_add(group_len, Ordering::Relaxed);
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(count, Ordering::Relaxed);
        if sync {
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if self.no_space.swap(false, Ordering::Relaxed) {
            log::info!("the journal has room again: events are stored and acknowledged");
        }
        self.committed.store(tail.next_seq, Ordering::Release);
        let _ = self.doorbell.0.try_send(());
        WRITTEN
    }

    /// Fails when the newest segment's file was deleted, or (looked at once a second) the
    /// journal's directory removed or replaced: whatever is written then is lost with it, so no
    /// batch may be acknowledged.
    fn still_there(&self, tail: &mut Tail) -> std::io::Result<()> {
        let gone = |what: &str| {
            std::io::Error::other(format!(
                "{what} (the data directory deleted or replaced while the receiver runs?); nothing \
                 written now would survive"
            ))
        };
        if !tail.segment.linked()? {
            return Err(gone("the newest journal segment was deleted"));
        }
        if tail.checked_at.elapsed() >= DIRECTORY_CHECK_INTERVAL {
            tail.checked_at = Instant::now();
            if !self.storage.intact()? {
                return Err(gone("the journal directory is gone or another one"));
            }
        }
        Ok(())
    }

    /// After a failed write (`cut`: bytes may have reached the file past the tail) or a failed
    /// start of a segment: for lack of space (or, starting a segment, of descriptors), cuts the
    /// tail back, gives the records back to their jobs and answers [`NO_SPACE`] (or
    /// [`NO_DESCRIPTORS`]); for anything else, or if the cut fails, poisons.
    fn refuse(
        &self,
        tail: &mut Tail,
        group: &[Arc<Job>],
        what: &str,
        error: &std::io::Error,
        cut: bool,
    ) -> u8 {
        let cut_back = if cut { tail.segment.truncate(tail.len) } else { Ok(()) };
        let descriptors = !cut && is_no_descriptors(error);
        if !(is_no_space(error) || descriptors) || cut_back.is_err() {
            self.poison(what, error);
            return FAILED;
        }
        if cut {
            // The cut shortened a reused file: its old bytes past the tail are gone.
            tail.capacity = tail.len;
        }
        let mut records = &tail.group[..];
        for job in group {
            let (mine, rest) = records.split_at(job.len);
            *lock(&job.records) = mine.to_vec();
            records = rest;
        }
        if descriptors {
            self.no_descriptor_groups.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "{what} failed: {error}; the batches are refused with 503 and the next one tries again \
                 (raise the open-file limit, LimitNOFILE=, or lower --max-connections)"
            );
            return NO_DESCRIPTORS;
        }
        self.no_space_groups.fetch_add(1, Ordering::Relaxed);
        if !self.no_space.swap(true, Ordering::Relaxed) {
            log::error!(
                "the disk is full: {what} failed: {error}. Events are refused with 503 (Retry-After) \
                 until there is room again; the receiver recovers by itself once space is freed"
            );
        }
        NO_SPACE
    }

    /// Seals the newest segment and starts the next one, named after its first record.
    fn rotate(&self, tail: &mut Tail) -> std::io::Result<()> {
        // With fsync durability every group was synced already. With none, the old segment is
        // left to the kernel's write-back like the rest: syncing it here would stall every
        // writer for the whole segment's flush (measured 60-175 ms for 64 MiB), which is exactly
        // the latency that mode exists to avoid. A crash of the machine can then tear an older
        // segment too; recovery cuts it like a torn tail and reports it.
        // Nor is the directory synced for the new name then: that `fsync` waits for the device
        // to flush everything in flight, and measured tens of milliseconds under load, long
        // enough to fill the queue and answer 503s.
        let id = tail.next_seq;
        let (segment, capacity) = start_segment(&*self.storage, id, self.durability == Durability::Fsync)?;
        let mut segments = lock(&self.segments);
        if let Some(last) = segments.last_mut() {
            last.len = tail.len;
            last.end_seq = tail.next_seq;
        }
        segments.push(SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id });
        drop(segments);
        self.bytes.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        *tail = Tail {
            id,
            segment,
            len: SEGMENT_HEADER_LEN as u64,
            capacity,
            next_seq: id,
            group: std::mem::take(&mut tail.group),
            checked_at: tail.checked_at,
        };
        Ok(())
    }
}
