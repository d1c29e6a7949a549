//! The append queue: what a request submits, how it waits, and what it gets back ([`Append`]).
//!
//! A request pushes its batch (a [`Job`]) onto the [`Queue`]; the writer thread (`writer.rs`)
//! takes the whole queue at each turn, writes it as one group and settles every batch it took
//! with one [`Outcome`], which wakes the batches' waiters (`wake.rs`). This module owns the
//! queue, its bounds ([`QUEUE_CAPACITY`], [`QUEUE_BYTES`], [`QUEUE_WAIT`]), a batch's wait for
//! its outcome, and the poison: once the writer poisons the queue, no batch joins it again.
//!
//! # Waiting without blocking a worker thread
//! may runs many coroutines on each worker thread; a std `Mutex` wait, `Condvar` or blocking
//! channel call inside a coroutine would stall every coroutine of that thread. A waiting batch
//! parks on a may [`Blocker`] instead: `park` switches the coroutine out (its worker thread runs
//! other coroutines) and `unpark` (by a waker, see below) puts it back on a run queue. The only
//! std locks a request takes are the queue's, held for a push, and those of `wake.rs`, held
//! while a settled group's waiters are filed or taken. The `fdatasync` runs on the writer
//! thread, so no may worker thread ever waits for the disk: while one group is being synced,
//! requests keep being parsed on every worker and queue for the next group, which is what makes
//! groups large. Letting the first waiting request write for everyone instead ("flat combining")
//! keeps one of two worker threads blocked in `fdatasync` nearly all the time under load.
//!
//! # Waking a group: one system call per worker, each waiter on its own worker
//! Unparking a coroutine from a thread that is not one of may's workers (the writer) queues it
//! on some worker, round robin, and writes that worker's eventfd: a system call, and often a
//! wake-up, per batch. So settling a group sets every outcome, files each waiter under the
//! worker thread it parked on, and spawns one short waker coroutine per worker, which unparks
//! that worker's waiters from inside (`wake.rs`): one eventfd write per worker and group, every
//! worker answers its own share of the group, and each waiter resumes on the core whose caches
//! hold its stack and its connection. Unparking one waiter per worker and letting each unpark
//! the rest onto its own worker would leave one woken worker answering a whole group serially
//! unless the other steals from it, and every stolen waiter would resume on the other core.
//!
//! # No waiter is ever left hanging
//! The writer takes the whole queue at each turn and settles every batch it took (written or
//! failed) before the next. If the writer thread dies (a bug, or a storage layer that panics),
//! its guard calls [`Queue::abandon`], which poisons the queue, then takes it one last time and
//! fails every batch in it. A batch checks the poison under the queue's lock before it joins the
//! queue, so it either joined before that last take (and is failed by the guard) or sees the
//! poison and is not queued at all: no window in which it could wait for a writer that is gone
//! (okaywal's failure mode: a "syncing" flag left set on an error path). So a waiting batch
//! parks without a timeout, which spares may's timer thread a timer per request.
//!
//! # Poison
//! The writer poisons the queue ([`Queue::poison`]) on a failure after which nothing it writes
//! can be trusted (`writer.rs` says which). It stays poisoned for the life of the process: every
//! batch then gets [`Append::Poisoned`] (503), and a restart recovers from what is really on
//! disk.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may::sync::Blocker;

use super::lock::lock;
use super::wake::{current_home, Homes};

/// Batches waiting for the next group; beyond it a batch waits for room (see [`QUEUE_WAIT`]).
pub const QUEUE_CAPACITY: usize = 4096;
/// Bytes accepted and not yet written (queued, or in the group being written); beyond it a
/// batch waits for room. With [`Durability::None`](super::config::Durability::None) this is what a crash
/// of the process can lose, and what a stalled write can add to the receiver's memory: each
/// batch's buffer is released as the writer copies it into the group, so the bytes are held
/// once. A batch of more than half of it is taken once at most half of it is queued (it could
/// never be stored otherwise, and under load the queue is rarely empty): the request's size limit
/// bounds it.
pub const QUEUE_BYTES: usize = 2 << 20;
/// How long a batch that finds the queue full waits for room (in steps of `QUEUE_POLL`,
/// sleeping only its coroutine) before [`Append::Busy`] (503). A write that stalls in the kernel
/// then slows requests down instead of refusing them or holding more memory. Measured in none
/// mode: stalls filled a 16 MiB queue, which took peak RSS to 70 MiB (86 MiB under the
/// simulator, with 503s); some last over 100 ms, which a 100 ms wait still answered with 503s.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
const QUEUE_POLL: Duration = Duration::from_millis(1);

/// [`Job::outcome`] values: [`PENDING`] until the batch is settled, then its [`Outcome`].
const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;
const NO_SPACE: u8 = 3;
const NO_DESCRIPTORS: u8 = 4;

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Append {
    /// Written and, with [`Durability::Fsync`](super::config::Durability::Fsync), synced.
    Committed,
    /// [`Durability::None`](super::config::Durability::None): handed to the writer, not yet written.
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

/// What the writer made of a group: every batch in it gets the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Written (and synced when the group was synced); a waiter gets [`Append::Committed`].
    Written,
    /// The write or sync failed, or the journal is poisoned: [`Append::Failed`].
    Failed,
    /// No room on the disk; nothing of the group was kept: [`Append::NoSpace`].
    NoSpace,
    /// No descriptor for a new segment; nothing of the group was kept:
    /// [`Append::NoDescriptors`].
    NoDescriptors,
}

impl Outcome {
    /// Its [`Job::outcome`] value.
    fn code(self) -> u8 {
        match self {
            Outcome::Written => WRITTEN,
            Outcome::Failed => FAILED,
            Outcome::NoSpace => NO_SPACE,
            Outcome::NoDescriptors => NO_DESCRIPTORS,
        }
    }
}

/// One batch's records and the way to wake its coroutine. The writer reads it through its
/// methods; only this module sets its outcome.
#[derive(Debug)]
pub(super) struct Job {
    /// Taken (emptied) by the writer as it copies them into the group, and given back when the
    /// group could not be kept.
    records: Mutex<Vec<u8>>,
    /// Their length, for the byte bound once they are taken.
    len: usize,
    /// Sync the group this job is in, whatever the durability (a flush).
    sync: bool,
    /// [`PENDING`], then the code of its [`Outcome`].
    outcome: AtomicU8,
    /// `None` when nobody waits for the outcome
    /// ([`Durability::None`](super::config::Durability::None)).
    blocker: Option<Arc<Blocker>>,
    /// The waiter's worker thread (`wake.rs`); `None` for a thread.
    home: Option<usize>,
}

impl Job {
    /// Bytes of its records (also once they are taken).
    pub(super) fn bytes(&self) -> usize {
        self.len
    }

    /// True when the group it is in must be synced whatever the durability (a flush).
    pub(super) fn wants_sync(&self) -> bool {
        self.sync
    }

    /// Takes its records, so that their buffer is freed as soon as they are copied.
    pub(super) fn take_records(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.records))
    }

    /// Gives its records back after a group that was not kept, for another try.
    pub(super) fn give_back(&self, records: Vec<u8>) {
        *lock(&self.records) = records;
    }

    /// Waits for the outcome, parking only the calling coroutine (or thread); `None` when
    /// nobody waits for it (it was queued without a waiter).
    pub(super) fn wait(&self) -> Option<Append> {
        let blocker = self.blocker.as_ref()?;
        loop {
            match self.outcome.load(Ordering::Acquire) {
                WRITTEN => return Some(Append::Committed),
                FAILED => return Some(Append::Failed),
                NO_SPACE => return Some(Append::NoSpace),
                NO_DESCRIPTORS => return Some(Append::NoDescriptors),
                // The writer (or its guard) settles every queued batch and then wakes it.
                _ => drop(blocker.park(None)),
            }
        }
    }

    /// Sets the outcome and wakes the waiter directly (no waker: see [`Queue::abandon`]).
    fn finish(&self, outcome: Outcome) {
        self.outcome.store(outcome.code(), Ordering::Release);
        if let Some(blocker) = &self.blocker {
            blocker.unpark();
        }
    }
}

/// What the queue's lock guards.
#[derive(Debug, Default)]
struct Pending {
    jobs: Vec<Arc<Job>>,
    /// Bytes of the queued jobs and of the group being written ([`QUEUE_BYTES`] bounds it).
    bytes: usize,
    /// Set when the journal is dropped: the writer drains the queue and ends.
    closing: bool,
}

/// The queue of batches waiting for the writer, shared by the requests (which push), the writer
/// thread (which takes, settles and poisons) and the journal's façade (which closes it).
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// The queued batches, their bytes and the closing flag: pushed to by requests, taken,
    /// released and drained by the writer, closed by the façade.
    pending: Mutex<Pending>,
    /// Set once by the writer ([`Queue::poison`]); read by every push under `pending`'s lock.
    poisoned: AtomicBool,
    /// Waiters whose batch is settled, filed for their worker's waker (`wake.rs`).
    homes: Arc<Homes>,
}

impl Queue {
    /// Queues a batch's records for the next group; `sync` makes that group synced whatever the
    /// durability, `wait` gives the batch a waiter (see [`Job::wait`]). Refuses it with
    /// [`Append::Poisoned`] or, after [`QUEUE_WAIT`] without room, [`Append::Busy`].
    pub(super) fn push(&self, records: Vec<u8>, sync: bool, wait: bool) -> Result<Arc<Job>, Append> {
        if self.poisoned() {
            return Err(Append::Poisoned);
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
            let mut pending = lock(&self.pending);
            // Under the lock: see "No waiter is ever left hanging" in the module docs.
            if self.poisoned() {
                return Err(Append::Poisoned);
            }
            let limit = QUEUE_BYTES.max(job.len + QUEUE_BYTES / 2);
            let full = pending.jobs.len() >= QUEUE_CAPACITY || pending.bytes + job.len > limit;
            if !full {
                pending.bytes += job.len;
                pending.jobs.push(Arc::clone(&job));
                return Ok(job);
            }
            drop(pending);
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + QUEUE_WAIT);
            if Instant::now() >= deadline {
                return Err(Append::Busy);
            }
            // The coroutine's sleep (a thread's outside may): the worker thread serves others.
            may::coroutine::sleep(QUEUE_POLL);
        }
    }

    /// Moves every queued batch into `group` (empty; the queue keeps its buffer) and says whether
    /// the journal is closing.
    pub(super) fn take(&self, group: &mut Vec<Arc<Job>>) -> bool {
        let mut pending = lock(&self.pending);
        std::mem::swap(group, &mut pending.jobs);
        pending.closing
    }

    /// True once the journal is closing ([`Queue::close`]).
    pub(super) fn closing(&self) -> bool {
        lock(&self.pending).closing
    }

    /// Tells the writer to drain the queue and end.
    pub(super) fn close(&self) {
        lock(&self.pending).closing = true;
    }

    /// Settles a group the writer took: its bytes leave the queue's bound, every batch gets
    /// `outcome`, then its waiters are woken (`wake.rs`).
    pub(super) fn settle(&self, group: &mut Vec<Arc<Job>>, outcome: Outcome) {
        // The group's bytes count against the queue's bound until they are written.
        let written: usize = group.iter().map(|job| job.len).sum();
        lock(&self.pending).bytes -= written;
        for job in group.iter() {
            job.outcome.store(outcome.code(), Ordering::Release);
        }
        let waiters = group.drain(..).filter_map(|job| Some((job.home, Arc::clone(job.blocker.as_ref()?))));
        self.homes.wake(waiters);
    }

    /// True once the writer poisoned the queue.
    pub(super) fn poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Poisons the queue for the life of the process (`what` failed with `error`); logs it the
    /// first time.
    pub(super) fn poison(&self, what: &str, error: &std::io::Error) {
        if !self.poisoned.swap(true, Ordering::SeqCst) {
            log::error!(
                "JOURNAL POISONED: {what} failed: {error}. No event is acknowledged until the receiver \
                 restarts (every POST is answered 503 and /healthz is 503)"
            );
        }
    }

    /// The writer is gone (`what` failed with `error`): poisons the queue, then fails `held` (the
    /// group it had taken) and every batch still queued, waking their waiters directly. A batch
    /// that comes later sees the poison before it joins the queue (see the module docs).
    pub(super) fn abandon(&self, held: &mut Vec<Arc<Job>>, what: &str, error: &std::io::Error) {
        self.poison(what, error);
        let queued = std::mem::take(&mut lock(&self.pending).jobs);
        for job in held.drain(..).chain(queued) {
            job.finish(Outcome::Failed);
        }
    }
}
