//! Group commit without a writer thread: the coroutine that finds nobody writing becomes the
//! writer for everyone waiting (flat combining), appending the lines of every queued batch to
//! the two files with one write each, then waking each batch's coroutine with its outcome.
//!
//! Why not a lock around each write: a contended lock and a write per batch cost more than the
//! parse (measured with `cargo bench --bench load`); one write per group spreads the per-write
//! cost of the file system over every batch in it. Why not a writer thread: waking it and being
//! woken by it costs two cross-thread wake-ups per batch (measured slower still). Waiting
//! coroutines park on a may [`Blocker`], which suspends only the coroutine, never its worker
//! thread; the combiner's own worker thread is busy for the time of the write.
//!
//! The hand-off, and why no batch is ever left waiting: a batch is pushed on `pending` (under a
//! lock held for a push or a swap), then its coroutine tries to set `writing`. The one that
//! succeeds takes `pending` in rounds until it finds it empty, clears `writing`, and looks at
//! `pending` once more: a batch pushed before that look is taken by it (or by whoever set
//! `writing` first); a batch pushed after it sees `writing` clear and writes itself.
//!
//! All or nothing per group: if a write fails (full disk, file-size limit), both files are cut
//! back to their length before the group, and every batch in it is told so (503).
//!
//! For the next maintainer: the journal (a later issue) replaces the files with segments and
//! adds `fdatasync` to the group; the combining and the wake-ups stay as they are.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use may::sync::Blocker;

/// Batches waiting for a write; beyond it, a batch is refused with 503 at once, so this queue
/// never grows without bound.
pub const QUEUE_CAPACITY: usize = 4096;

/// Group buffer capacity kept between groups; larger ones are released after use.
const RETAINED_BYTES: usize = 4 << 20;

/// [`Job::outcome`] values.
const PENDING: u8 = 0;
const WRITTEN: u8 = 1;
const FAILED: u8 = 2;

/// One batch's rendered lines, its outcome, and the way to wake its coroutine.
#[derive(Debug)]
struct Job {
    events: Vec<u8>,
    quarantine: Vec<u8>,
    outcome: AtomicU8,
    blocker: Arc<Blocker>,
}

/// What became of a submitted batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Submit {
    /// Written (both files).
    Written,
    /// The write failed; nothing of the batch is in the files.
    Failed,
    /// The queue is full (or the writer is gone); nothing was written.
    Busy,
}

/// The two files and the batches waiting for them, shared by every connection.
#[derive(Debug)]
pub struct Writer {
    pending: Mutex<Vec<Arc<Job>>>,
    /// Set while one coroutine is the combiner.
    writing: AtomicBool,
    /// Only the combiner takes this lock, so it is never contended.
    files: Mutex<Files>,
    healthy: AtomicBool,
}

impl Writer {
    /// Opens (creating if needed) both files in `data_dir`.
    pub fn open(data_dir: &Path) -> io::Result<Writer> {
        let files = Files {
            events: Output::open(&data_dir.join("events.jsonl"))?,
            quarantine: Output::open(&data_dir.join("quarantine.jsonl"))?,
        };
        Ok(Writer {
            pending: Mutex::new(Vec::new()),
            writing: AtomicBool::new(false),
            files: Mutex::new(files),
            healthy: AtomicBool::new(true),
        })
    }

    /// Writes the lines with the next group and returns when they are written or refused;
    /// waiting parks only the calling coroutine.
    pub fn submit(&self, events: Vec<u8>, quarantine: Vec<u8>) -> Submit {
        let job = Arc::new(Job {
            events,
            quarantine,
            outcome: AtomicU8::new(PENDING),
            blocker: Blocker::current(),
        });
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= QUEUE_CAPACITY {
                return Submit::Busy;
            }
            pending.push(Arc::clone(&job));
        }
        loop {
            match job.outcome.load(Ordering::Acquire) {
                WRITTEN => return Submit::Written,
                FAILED => return Submit::Failed,
                _ => {}
            }
            if self.writing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                // Our batch is queued, so this round of combining writes it.
                self.combine();
            } else {
                // The combiner (now, or the one after it) writes it and wakes us.
                let _ = job.blocker.park(None);
            }
        }
    }

    /// Writes groups until nobody waits; entered with `writing` set, leaves it clear (or handed
    /// over to another combiner).
    fn combine(&self) {
        let mut group = Vec::new();
        loop {
            std::mem::swap(&mut group, &mut *lock(&self.pending));
            if group.is_empty() {
                self.writing.store(false, Ordering::SeqCst);
                // A batch pushed before we cleared `writing` saw it set and is parked: take it.
                let waiting = !lock(&self.pending).is_empty();
                if !waiting
                    || self
                        .writing
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    return;
                }
                continue;
            }
            let written = self.write(&group);
            let outcome = if written { WRITTEN } else { FAILED };
            for job in group.drain(..) {
                job.outcome.store(outcome, Ordering::Release);
                job.blocker.unpark();
            }
        }
    }

    /// One write per file for the whole group, or none; returns true when written.
    fn write(&self, group: &[Arc<Job>]) -> bool {
        let mut files = lock(&self.files);
        for job in group {
            files.events.group.extend_from_slice(&job.events);
            files.quarantine.group.extend_from_slice(&job.quarantine);
        }
        let result = files.commit();
        files.events.reset();
        files.quarantine.reset();
        drop(files);
        match &result {
            Ok(()) if !self.healthy.swap(true, Ordering::Relaxed) => log::info!("events are written again"),
            Err(error) if self.healthy.swap(false, Ordering::Relaxed) => {
                log::error!("cannot write events: {error}; answering 503 until a write succeeds");
            }
            _ => {}
        }
        result.is_ok()
    }

    /// False from a failed write until the next successful one.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One append-only file and its length as far as this process wrote it.
#[derive(Debug)]
struct Output {
    file: File,
    len: u64,
    group: Vec<u8>,
}

impl Output {
    fn open(path: &Path) -> io::Result<Output> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(context)?;
        let len = file.metadata().map_err(context)?.len();
        Ok(Output { file, len, group: Vec::new() })
    }

    /// Writes the group's bytes; on failure cuts the file back to where it was.
    fn commit(&mut self) -> io::Result<()> {
        if let Err(error) = self.file.write_all(&self.group) {
            self.file.set_len(self.len)?;
            return Err(error);
        }
        self.len += self.group.len() as u64;
        Ok(())
    }

    fn uncommit(&mut self, bytes: u64) -> io::Result<()> {
        self.len -= bytes;
        self.file.set_len(self.len)
    }

    fn reset(&mut self) {
        self.group.clear();
        if self.group.capacity() > RETAINED_BYTES {
            self.group = Vec::new();
        }
    }
}

#[derive(Debug)]
struct Files {
    events: Output,
    quarantine: Output,
}

impl Files {
    /// Writes both files, or neither.
    fn commit(&mut self) -> io::Result<()> {
        self.events.commit()?;
        if let Err(error) = self.quarantine.commit() {
            self.events.uncommit(self.events.group.len() as u64)?;
            return Err(error);
        }
        Ok(())
    }
}
