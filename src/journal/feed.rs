//! The feed: each group the writer has written (and synced) is handed, as the very buffer it
//! wrote, to the dispatcher's reader, which then takes its records from memory instead of
//! reading the file back (a copy out of the page cache, a checksum per record, two system calls
//! a turn).
//!
//! The file stays the truth. The feed only ever holds groups that are already in the file, in
//! order; the writer offers each group with a non-blocking send and keeps it when the feed is
//! full ([`FEED_GROUPS`] groups or [`FEED_BYTES`] bytes waiting), and the reader falls back to
//! the file for any record the feed does not have (a group dropped, a reader behind after a
//! restart), resuming the file at the position just after the last record the feed gave it.
//! Records from the feed are decoded with every check but the checksum
//! ([`format::decode_sealed`]): the bytes never left this process's memory since `seal`
//! computed it.
//!
//! One reader per journal takes the feed (the dispatcher's); others read the file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::cursor::{Payload, Record};
use super::format;

/// Most groups waiting in the feed; a group offered beyond it stays with the writer.
pub const FEED_GROUPS: usize = 32;
/// Most bytes of groups waiting in the feed (what the feed adds to the receiver's memory); a
/// group offered beyond it stays with the writer.
pub const FEED_BYTES: u64 = 1 << 20;

/// A written group: sealed records, back to back, as they are in the file.
#[derive(Debug)]
pub(super) struct Group {
    /// The segment it was written to.
    pub(super) segment: u64,
    /// The file offset of its first record.
    pub(super) offset: u64,
    /// Its first record's sequence number.
    pub(super) first_seq: u64,
    /// Its records.
    pub(super) count: u64,
    pub(super) bytes: Arc<Vec<u8>>,
}

/// The writer's end.
#[derive(Debug)]
pub(super) struct FeedSender {
    tx: Sender<Group>,
    queued: Arc<AtomicU64>,
}

/// The reader's end, with the group it is taking records from.
#[derive(Debug)]
pub(super) struct Feed {
    rx: Receiver<Group>,
    queued: Arc<AtomicU64>,
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    group: Group,
    /// Offset in the group's bytes of record `seq`.
    at: usize,
    seq: u64,
}

/// A connected pair.
pub(super) fn feed() -> (FeedSender, Feed) {
    let (tx, rx) = crossbeam_channel::bounded(FEED_GROUPS);
    let queued = Arc::new(AtomicU64::new(0));
    (FeedSender { tx, queued: Arc::clone(&queued) }, Feed { rx, queued, current: None })
}

impl FeedSender {
    /// Offers a written group; gives its bytes back when the feed is full or its reader gone.
    pub(super) fn offer(&self, group: Group) -> Result<(), Arc<Vec<u8>>> {
        let len = group.bytes.len() as u64;
        if self.queued.load(Ordering::Relaxed) + len > FEED_BYTES {
            return Err(group.bytes);
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.tx.try_send(group).map_err(|e| {
            let group = match e {
                TrySendError::Full(group) | TrySendError::Disconnected(group) => group,
            };
            self.queued.fetch_sub(len, Ordering::Relaxed);
            group.bytes
        })
    }
}

impl Feed {
    /// Record `seq` with the file position just after it (segment, offset), if the feed has
    /// it; `None`: read it from the file.
    pub(super) fn take(&mut self, seq: u64) -> Option<(Record, u64, u64)> {
        loop {
            if let Some(current) = &mut self.current {
                if current.seq > seq {
                    // The feed starts after `seq`: the file has the records before it.
                    return None;
                }
                match current.next() {
                    Some(record) if record.meta.seq < seq => continue,
                    Some(record) => {
                        let end = current.group.offset + current.at as u64;
                        return Some((record, current.group.segment, end));
                    }
                    None => self.current = None,
                }
            }
            let group = self.rx.try_recv().ok()?;
            self.queued.fetch_sub(group.bytes.len() as u64, Ordering::Relaxed);
            if group.first_seq + group.count > seq {
                self.current = Some(Current { at: 0, seq: group.first_seq, group });
            }
        }
    }
}

impl Current {
    /// The group's next record; `None` at its end (or, never expected, at a record that does
    /// not decode: the file then has the rest).
    fn next(&mut self) -> Option<Record> {
        let bytes = &self.group.bytes;
        let record = format::decode_sealed(bytes.get(self.at..)?, self.seq).ok()?;
        let (meta, len, disk_len) = (record.meta, record.payload.len(), record.disk_len());
        let payload = Payload::shared(Arc::clone(bytes), self.at + format::RECORD_HEADER_LEN, len);
        self.at += disk_len;
        self.seq += 1;
        Some(Record { meta, payload, disk_len: disk_len as u64 })
    }
}
