//! The journal's writer thread: the only code that writes to the journal's files.
//!
//! At each turn it takes every queued batch (`append.rs`), writes them as one group (one write,
//! and one `fdatasync` with fsync durability), first starting a new segment when the group would
//! take the newest one over `--journal-segment-bytes`, publishes the committed position, and
//! settles each batch. It owns the newest segment ([`Tail`]) and its scratch ([`Writer`]), which
//! nothing else touches, and [`Shared`]: what it publishes for the journal's façade
//! (`facade.rs`), the list of segments included. Removing delivered segments changes that list
//! too, so it is here as well ([`Shared::remove_delivered`]), called by the façade.
//!
//! Invariants: every batch taken from the queue is settled (written or failed) before the next
//! turn; the thread sleeps only with the queue empty, and an append unparks it after queueing
//! (a thread's park token makes an unpark before the park count), so no batch waits for a turn
//! that never comes. If the thread unwinds, [`Guard`] abandons the queue
//! ([`Queue::abandon`]): it is poisoned and everything the thread held or that is queued fails.
//!
//! # Poison, and a full disk
//! The first failed `fdatasync` (or a write that fails for any reason but lack of space) poisons
//! the journal for the life of the process: after a failed `fdatasync` Linux may have dropped the
//! dirty pages and cleared the error, so a later `fdatasync` that succeeds proves nothing. Every
//! batch then gets [`Append::Poisoned`](super::append::Append::Poisoned) (503), and a restart
//! recovers from what is really on disk.
//!
//! A write refused for lack of space (`ENOSPC`, `EDQUOT`) is different: the kernel allocates
//! blocks when the write is made, nothing was handed to write-back, and the bytes past the tail
//! are cut off again. The group is refused
//! ([`Append::NoSpace`](super::append::Append::NoSpace), 503) and the journal carries on: the
//! next group tries again, so the receiver recovers by itself once space is freed. With
//! [`Durability::None`] the group's batches were already acknowledged, so the writer keeps the
//! group and tries it again every [`NO_SPACE_RETRY`] instead (new batches wait in the bounded
//! queue and are refused when it is full).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::append::{Job, Outcome, Queue};
use super::config::{Durability, JournalConfig};
use super::cursor::{Reader, TailMark};
use super::format::{self, SEGMENT_HEADER_LEN};
use super::lock::lock;
use super::recover::{Recovered, SegmentInfo};
use super::storage::{write_all_at, Segment, Storage};

/// How often the writer looks whether the journal's directory is still the one it opened (the
/// newest segment's file is looked at before every group: one `fstat`).
pub(super) const DIRECTORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// With [`Durability::None`], how often the writer tries again a group it could not write for
/// lack of space.
pub(super) const NO_SPACE_RETRY: Duration = Duration::from_millis(100);

/// Longest sleep with nothing queued (an append wakes the writer at once; this only bounds the
/// time to notice the journal closing should an unpark ever be missed).
const IDLE_PARK: Duration = Duration::from_secs(1);

/// With [`Durability::None`], the shortest time between two groups under load. Nobody waits for
/// those writes, so a group per wake-up would only buy many small `write` calls and a wake-up
/// of this thread per request or two (measured: 13 k groups/s of 4.5 requests at 60 k
/// requests/s). Sleeping this long after a group lets the next one gather a millisecond of
/// traffic; it adds at most this much to the loss window of that mode, and the queue's limits
/// ([`QUEUE_CAPACITY`](super::append::QUEUE_CAPACITY) batches) hold far more than a millisecond.
/// The sleep is a plain sleep, not a park: a request's unpark then costs no system call. With
/// fsync durability the `fdatasync` itself is the pause in which the next group gathers.
pub(super) const NONE_GROUP_INTERVAL: Duration = Duration::from_millis(1);

/// Group buffer capacity kept between groups; a larger one is released after use.
const RETAINED_BYTES: usize = 4 << 20;

/// True for the errors of a write that found no room: the write did not happen (in part or at
/// all), and freeing space makes the next one succeed.
fn is_no_space(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// True for the errors of an `open` that found no free descriptor: nothing was written.
fn is_no_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
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

/// What the writer thread publishes for the journal's façade. Only this module writes its
/// fields: the writer thread after each group and each new segment, and
/// [`Shared::remove_delivered`] (which the façade calls) when delivered segments go; the façade
/// reads them through the methods below.
#[derive(Debug)]
pub(super) struct Shared {
    /// Where the segments are; set at open.
    storage: Arc<dyn Storage>,
    /// Set at open.
    durability: Durability,
    /// Sequence number after the last committed record: readers read below it. Set by the
    /// writer after each group.
    committed: AtomicU64,
    /// The last write found no room: set by a group refused for it, cleared by the next write
    /// that succeeds.
    no_space: AtomicBool,
    /// Groups refused (or, with no durability, retried) for lack of space.
    no_space_groups: AtomicU64,
    /// Groups refused (or retried) because a new segment could not be opened for want of
    /// descriptors.
    no_descriptor_groups: AtomicU64,
    /// Bytes in all segments: the writer adds each group and each new segment's header,
    /// [`Shared::remove_delivered`] takes off each removed segment.
    bytes: AtomicU64,
    /// Bytes in delivered segments kept for replay; set by [`Shared::remove_delivered`].
    retained: AtomicU64,
    /// Every segment, oldest first: the writer seals the newest one (its length and end are
    /// updated then) and adds the next; [`Shared::remove_delivered`] takes from the front.
    segments: Mutex<Vec<SegmentInfo>>,
    /// Where the newest segment's written bytes end, for readers; set by the writer.
    tail_mark: Arc<TailMark>,
    /// Rung by the writer after each group it commits.
    doorbell: (Sender<()>, Receiver<()>),
    /// Counters: the writer counts groups, syncs and records, the façade counts batches.
    stats: JournalStats,
}

/// The newest segment, written only by the writer thread.
#[derive(Debug)]
struct Tail {
    /// The segment's id (its first sequence number).
    id: u64,
    segment: Box<dyn Segment>,
    len: u64,
    /// The file's size: beyond `len` it holds older bytes (a reused file), so every group
    /// written below it is followed by an end mark.
    capacity: u64,
    next_seq: u64,
}

/// The writer thread's own state; nothing else touches it.
#[derive(Debug)]
struct Writer {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    /// Size after which a new segment is started.
    segment_bytes: u64,
    tail: Tail,
    /// The group being written (its records, sealed).
    group: Vec<u8>,
    /// When the journal's directory was last found intact.
    checked_at: Instant,
}

/// Opens the newest segment in `storage` for appending (or, for a fresh journal or one behind
/// `config.first_seq`, starts a new one) and starts the writer thread on it, taking batches from
/// `queue`. Returns what the writer publishes and its thread.
pub(super) fn start(
    storage: Arc<dyn Storage>,
    config: &JournalConfig,
    recovered: &Recovered,
    queue: Arc<Queue>,
) -> std::io::Result<(Arc<Shared>, JoinHandle<()>)> {
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
    let tail = Tail { id: info.id, segment, len: info.len, capacity, next_seq: info.end_seq };
    let shared = Arc::new(Shared {
        storage,
        durability: config.durability,
        committed: AtomicU64::new(tail.next_seq),
        no_space: AtomicBool::new(false),
        no_space_groups: AtomicU64::new(0),
        no_descriptor_groups: AtomicU64::new(0),
        bytes: AtomicU64::new(bytes),
        retained: AtomicU64::new(0),
        segments: Mutex::new(segments),
        tail_mark: Arc::new(TailMark::default()),
        doorbell: crossbeam_channel::bounded(1),
        stats: JournalStats::default(),
    });
    shared.tail_mark.set(info.id, tail.len);
    let writer = Writer {
        shared: Arc::clone(&shared),
        queue,
        segment_bytes: config.segment_bytes,
        tail,
        group: Vec::new(),
        checked_at: Instant::now(),
    };
    let thread = std::thread::Builder::new().name("journal-writer".into()).spawn(move || run(writer))?;
    Ok((shared, thread))
}

fn run(mut writer: Writer) {
    let queue = Arc::clone(&writer.queue);
    let mut guard = Guard { queue: &queue, group: Vec::new() };
    loop {
        let closing = queue.take(&mut guard.group);
        if guard.group.is_empty() {
            if closing {
                return;
            }
            std::thread::park_timeout(IDLE_PARK);
            continue;
        }
        let started = Instant::now();
        let mut outcome = writer.write(&guard.group);
        // With no durability these batches were acknowledged: keep trying until there is room
        // (see "Poison, and a full disk" in the module docs), or until the journal closes.
        while matches!(outcome, Outcome::NoSpace | Outcome::NoDescriptors)
            && writer.shared.durability == Durability::None
        {
            if queue.closing() {
                let records: usize = guard.group.iter().map(|job| job.bytes()).sum();
                log::error!(
                    "closing with no room on the disk (or no free descriptor): {records} bytes of \
                     acknowledged batches (--durability none) could not be written and are lost"
                );
                outcome = Outcome::Failed;
                break;
            }
            std::thread::sleep(NO_SPACE_RETRY);
            outcome = writer.write(&guard.group);
        }
        let synced = guard.group.iter().any(|job| job.wants_sync());
        queue.settle(&mut guard.group, outcome);
        if writer.shared.durability == Durability::None && !synced && !closing {
            std::thread::sleep(NONE_GROUP_INTERVAL.saturating_sub(started.elapsed()));
        }
    }
}

/// Settles everything if the writer unwinds.
struct Guard<'q> {
    queue: &'q Queue,
    group: Vec<Arc<Job>>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.queue.abandon(&mut self.group, "the journal writer", &std::io::Error::other("it panicked"));
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

impl Writer {
    /// Writes one group: all its records, one write, one sync. Returns [`Outcome::Written`],
    /// [`Outcome::Failed`] (the journal is poisoned) or [`Outcome::NoSpace`] /
    /// [`Outcome::NoDescriptors`] (nothing of the group is kept: its records are back in its
    /// jobs, for another try).
    fn write(&mut self, group: &[Arc<Job>]) -> Outcome {
        if self.queue.poisoned() {
            return Outcome::Failed;
        }
        if let Err(e) = self.still_there() {
            self.queue.poison("checking the data directory", &e);
            return Outcome::Failed;
        }
        self.group.clear();
        for job in group {
            // Taken, so the batch's buffer is freed now rather than after the write.
            self.group.extend_from_slice(&job.take_records());
        }
        let count = format::seal(&mut self.group, self.tail.next_seq);
        let group_len = self.group.len() as u64;
        // A segment is named after its first record, so one that holds none (only its header, or
        // only a gap record recovery left) cannot be followed by another: it takes the group.
        let outgrown = self.tail.next_seq > self.tail.id
            && self.tail.len > SEGMENT_HEADER_LEN as u64
            && self.tail.len + self.group.len() as u64 > self.segment_bytes;
        if outgrown {
            if let Err(e) = self.rotate() {
                return self.refuse(group, "starting a new segment", &e, false);
            }
        }
        let tail = &mut self.tail;
        // In a reused file, older bytes follow: end the records (the next group overwrites it).
        let end = tail.len + group_len;
        if end < tail.capacity {
            self.group.extend_from_slice(&format::END_MARK);
            tail.capacity = tail.capacity.max(end + format::END_MARK.len() as u64);
        }
        let written = write_all_at(&mut *tail.segment, tail.len, &self.group);
        if let Err(e) = written {
            return self.refuse(group, "write", &e, true);
        }
        let shared = &*self.shared;
        let sync = shared.durability == Durability::Fsync || group.iter().any(|job| job.wants_sync());
        if sync {
            if let Err(e) = tail.segment.sync() {
                self.queue.poison("fdatasync", &e);
                // Best effort: the bytes past `len` were never committed; recovery cuts them too.
                let _ = tail.segment.truncate(tail.len);
                return Outcome::Failed;
            }
        }
        if self.group.capacity() > RETAINED_BYTES {
            self.group = Vec::new();
        }
        tail.len += group_len;
        tail.next_seq += count;
        shared.tail_mark.set(tail.id, tail.len);
        shared.bytes.fetch_add(group_len, Ordering::Relaxed);
        shared.stats.groups.fetch_add(1, Ordering::Relaxed);
        shared.stats.records.fetch_add(count, Ordering::Relaxed);
        if sync {
            shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if shared.no_space.swap(false, Ordering::Relaxed) {
            log::info!("the journal has room again: events are stored and acknowledged");
        }
        shared.committed.store(tail.next_seq, Ordering::Release);
        let _ = shared.doorbell.0.try_send(());
        Outcome::Written
    }

    /// Fails when the newest segment's file was deleted, or (looked at once a second) the
    /// journal's directory removed or replaced: whatever is written then is lost with it, so no
    /// batch may be acknowledged.
    fn still_there(&mut self) -> std::io::Result<()> {
        let gone = |what: &str| {
            std::io::Error::other(format!(
                "{what} (the data directory deleted or replaced while the receiver runs?); nothing \
                 written now would survive"
            ))
        };
        if !self.tail.segment.linked()? {
            return Err(gone("the newest journal segment was deleted"));
        }
        if self.checked_at.elapsed() >= DIRECTORY_CHECK_INTERVAL {
            self.checked_at = Instant::now();
            if !self.shared.storage.intact()? {
                return Err(gone("the journal directory is gone or another one"));
            }
        }
        Ok(())
    }

    /// After a failed write (`cut`: bytes may have reached the file past the tail) or a failed
    /// start of a segment: for lack of space (or, starting a segment, of descriptors), cuts the
    /// tail back, gives the records back to their jobs and answers [`Outcome::NoSpace`] (or
    /// [`Outcome::NoDescriptors`]); for anything else, or if the cut fails, poisons.
    fn refuse(&mut self, group: &[Arc<Job>], what: &str, error: &std::io::Error, cut: bool) -> Outcome {
        let cut_back = if cut { self.tail.segment.truncate(self.tail.len) } else { Ok(()) };
        let descriptors = !cut && is_no_descriptors(error);
        if !(is_no_space(error) || descriptors) || cut_back.is_err() {
            self.queue.poison(what, error);
            return Outcome::Failed;
        }
        if cut {
            // The cut shortened a reused file: its old bytes past the tail are gone.
            self.tail.capacity = self.tail.len;
        }
        let mut records = &self.group[..];
        for job in group {
            let (mine, rest) = records.split_at(job.bytes());
            job.give_back(mine.to_vec());
            records = rest;
        }
        let shared = &*self.shared;
        if descriptors {
            shared.no_descriptor_groups.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "{what} failed: {error}; the batches are refused with 503 and the next one tries again \
                 (raise the open-file limit, LimitNOFILE=, or lower --max-connections)"
            );
            return Outcome::NoDescriptors;
        }
        shared.no_space_groups.fetch_add(1, Ordering::Relaxed);
        if !shared.no_space.swap(true, Ordering::Relaxed) {
            log::error!(
                "the disk is full: {what} failed: {error}. Events are refused with 503 (Retry-After) \
                 until there is room again; the receiver recovers by itself once space is freed"
            );
        }
        Outcome::NoSpace
    }

    /// Seals the newest segment and starts the next one, named after its first record.
    fn rotate(&mut self) -> std::io::Result<()> {
        // With fsync durability every group was synced already. With none, the old segment is
        // left to the kernel's write-back like the rest: syncing it here would stall every
        // writer for the whole segment's flush (measured 60-175 ms for 64 MiB), which is exactly
        // the latency that mode exists to avoid. A crash of the machine can then tear an older
        // segment too; recovery cuts it like a torn tail and reports it.
        // Nor is the directory synced for the new name then: that `fsync` waits for the device
        // to flush everything in flight, and measured tens of milliseconds under load, long
        // enough to fill the queue and answer 503s.
        let shared = &*self.shared;
        let id = self.tail.next_seq;
        let (segment, capacity) =
            start_segment(&*shared.storage, id, shared.durability == Durability::Fsync)?;
        let mut segments = lock(&shared.segments);
        if let Some(last) = segments.last_mut() {
            last.len = self.tail.len;
            last.end_seq = self.tail.next_seq;
        }
        segments.push(SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id });
        drop(segments);
        shared.bytes.fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
        self.tail = Tail { id, segment, len: SEGMENT_HEADER_LEN as u64, capacity, next_seq: id };
        Ok(())
    }
}

impl Shared {
    /// The durability mode.
    pub(super) fn durability(&self) -> Durability {
        self.durability
    }

    /// Sequence number after the last committed record.
    pub(super) fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// True while the disk has no room for the journal's writes.
    pub(super) fn no_space(&self) -> bool {
        self.no_space.load(Ordering::Relaxed)
    }

    /// Groups refused (or retried) for lack of space.
    pub(super) fn no_space_groups(&self) -> u64 {
        self.no_space_groups.load(Ordering::Relaxed)
    }

    /// Groups refused (or retried) for want of descriptors.
    pub(super) fn no_descriptor_groups(&self) -> u64 {
        self.no_descriptor_groups.load(Ordering::Relaxed)
    }

    /// Bytes in all segments.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Bytes of delivered segments kept for replay.
    pub(super) fn retained_bytes(&self) -> u64 {
        self.retained.load(Ordering::Relaxed)
    }

    /// Counters.
    pub(super) fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// The receiving end of the doorbell rung after each commit.
    pub(super) fn doorbell(&self) -> Receiver<()> {
        self.doorbell.1.clone()
    }

    /// A reader from `from_seq` on, reading up to where the writer has written.
    pub(super) fn reader(&self, from_seq: u64) -> Reader {
        Reader::live(Arc::clone(&self.storage), from_seq, Arc::clone(&self.tail_mark))
    }

    /// Every segment, oldest first, the newest one as far as it is written now.
    pub(super) fn segments(&self) -> Vec<SegmentInfo> {
        let mut segments = lock(&self.segments).clone();
        let sealed: u64 = segments.iter().rev().skip(1).map(|s| s.len).sum();
        if let Some(last) = segments.last_mut() {
            last.end_seq = self.committed_seq().max(last.end_seq);
            last.len = self.bytes().saturating_sub(sealed);
        }
        segments
    }

    /// Removes, oldest first, segments all of whose records are below `floor` (never the newest
    /// one) while the oldest was last written at least `retention` ago or the journal takes over
    /// `max_bytes`, and counts what stays below `floor` as retained; returns how many were
    /// removed. A segment whose age the storage cannot tell is expired only with a zero `retention`.
    pub(super) fn remove_delivered(
        &self,
        floor: u64,
        retention: Duration,
        max_bytes: u64,
    ) -> std::io::Result<usize> {
        let mut segments = lock(&self.segments);
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let mut result = Ok(());
        while segments.len() > 1 && segments[1].id <= floor {
            let old = segments[0];
            let expired = match self.storage.modified(old.id) {
                Ok(Some(at)) => now.duration_since(at).unwrap_or_default() >= retention,
                Ok(None) => retention.is_zero(),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if !expired && self.bytes.load(Ordering::Relaxed) <= max_bytes {
                break;
            }
            if let Err(e) = self.storage.remove(old.id) {
                result = Err(e);
                break;
            }
            self.bytes.fetch_sub(old.len, Ordering::Relaxed);
            segments.remove(0);
            removed += 1;
        }
        // What stays below the floor is delivered: kept only for replay.
        let retained: u64 =
            segments.windows(2).take_while(|pair| pair[1].id <= floor).map(|pair| pair[0].len).sum();
        self.retained.store(retained, Ordering::Relaxed);
        result.map(|()| removed)
    }
}
