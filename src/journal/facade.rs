//! The [`Journal`] façade: the handle the rest of the receiver holds.
//!
//! Opening recovers the directory (`recover.rs`) and starts the writer thread on it
//! (`writer.rs`); an append pushes its batch onto the queue (`append.rs`), wakes the writer and
//! waits for the outcome; every other call reads what the writer publishes or has it remove
//! delivered segments. The façade keeps no journal state of its own, only the queue, what the
//! writer publishes and the writer thread's handle: the queue and the writer each own theirs,
//! and this module, which uses both, is where they meet, so that neither has to import the
//! other's user.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::append::{Append, Queue};
use super::config::{Durability, JournalConfig};
use super::cursor::Reader;
use super::recover::{self, Recovered, SegmentInfo};
use super::storage::Storage;
use super::writer::{self, JournalStats, Shared};

/// The append-only, group-committed journal.
#[derive(Debug)]
pub struct Journal {
    /// Batches waiting for the writer (`append.rs`).
    queue: Arc<Queue>,
    /// What the writer thread publishes (`writer.rs`).
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl Journal {
    /// Recovers the journal in `storage` (see `recover.rs`) and opens it for appending.
    pub fn open(storage: Arc<dyn Storage>, config: &JournalConfig) -> std::io::Result<(Journal, Recovered)> {
        let recovered = recover::recover(&*storage, config.corrupt_dir.as_deref())?;
        let queue = Arc::new(Queue::default());
        let (shared, writer) = writer::start(storage, config, &recovered, Arc::clone(&queue))?;
        Ok((Journal { queue, shared, writer: Some(writer) }, recovered))
    }

    /// Appends a batch's records (rendered with `format::push_record`); with
    /// [`Durability::Fsync`] returns once they are synced, parking only the calling coroutine
    /// (or thread).
    pub fn append(&self, records: Vec<u8>) -> Append {
        let wait = self.shared.durability() == Durability::Fsync;
        self.submit(records, false, wait).unwrap_or(Append::Queued)
    }

    /// Queues a job and, when `wait`, waits for its outcome; `None` when queued without waiting.
    fn submit(&self, records: Vec<u8>, sync: bool, wait: bool) -> Option<Append> {
        let job = match self.queue.push(records, sync, wait) {
            Ok(job) => job,
            Err(refused) => return Some(refused),
        };
        self.shared.stats().batches.fetch_add(1, Ordering::Relaxed);
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
        job.wait()
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
        self.queue.poisoned()
    }

    /// True while the disk has no room for the journal's writes (since the last write, which
    /// found none).
    pub fn no_space(&self) -> bool {
        self.shared.no_space()
    }

    /// Groups of batches a write could not store for lack of space.
    pub fn no_space_groups(&self) -> u64 {
        self.shared.no_space_groups()
    }

    /// Groups of batches refused because a new segment could not be opened for want of file
    /// descriptors.
    pub fn no_descriptor_groups(&self) -> u64 {
        self.shared.no_descriptor_groups()
    }

    /// Sequence number after the last committed record.
    pub fn committed_seq(&self) -> u64 {
        self.shared.committed_seq()
    }

    /// Bytes in all segments (the disk the journal takes).
    pub fn bytes(&self) -> u64 {
        self.shared.bytes()
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.shared.durability()
    }

    /// Counters.
    pub fn stats(&self) -> &JournalStats {
        self.shared.stats()
    }

    /// A channel that receives a message after commits (at most one waits: a doorbell, not a
    /// queue). One reader should own it.
    pub fn doorbell(&self) -> Receiver<()> {
        self.shared.doorbell()
    }

    /// A reader from `from_seq` on.
    pub fn reader(&self, from_seq: u64) -> Reader {
        self.shared.reader(from_seq)
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segments()
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
        self.shared.remove_delivered(floor, retention, max_bytes)
    }

    /// Bytes of delivered segments kept for replay.
    pub fn retained_bytes(&self) -> u64 {
        self.shared.retained_bytes()
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
        self.queue.close();
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}
