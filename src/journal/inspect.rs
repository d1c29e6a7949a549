//! Reading a journal without changing it, for `journal stats`, `journal dump` and `replay`, which
//! may run while the receiver writes to it.
//!
//! Nothing here repairs, truncates or creates anything. A record that does not decode (a write in
//! progress, or a crash the receiver has not recovered yet) ends the scan of its segment; a
//! segment removed while being scanned (delivered, past its retention) is skipped.

use std::io;
use std::sync::Arc;

use super::cursor::{Record, SegmentCursor, Step};
use super::format::{self, BadHeader, Invalid, Kind};
use super::storage::Storage;

/// What one segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Its id: the sequence number of its first record.
    pub id: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Event records.
    pub events: u64,
    /// Quarantined-element records.
    pub quarantined: u64,
    /// Sequence number after its last valid record.
    pub end_seq: u64,
    /// Acceptance times of its first and last records (ms since the epoch).
    pub accepted_ms: Option<(u64, u64)>,
    /// Bytes after the last valid record, and why they are not one (a write in progress, or
    /// a tail recovery will cut).
    pub tail: Option<(u64, Invalid)>,
}

/// Opens segment `id` for reading; `None` if it disappeared; an error if it is not a segment.
fn open(storage: &dyn Storage, id: u64) -> io::Result<Option<SegmentCursor>> {
    match SegmentCursor::open(storage, id) {
        Ok(Ok(cursor)) => Ok(Some(cursor)),
        // A segment being created right now, or removed meanwhile: no record to read.
        Ok(Err(BadHeader::Short)) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Ok(Err(bad)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a journal segment ({bad:?})", storage.describe(id)),
        )),
        Err(e) => Err(e),
    }
}

/// Summarizes every segment.
pub fn summarize(storage: &dyn Storage) -> io::Result<Vec<SegmentSummary>> {
    let mut summaries = Vec::new();
    for id in storage.segments()? {
        let Some(mut cursor) = open(storage, id)? else { continue };
        let mut summary = SegmentSummary {
            id,
            bytes: 0,
            events: 0,
            quarantined: 0,
            end_seq: id,
            accepted_ms: None,
            tail: None,
        };
        let bad = loop {
            match cursor.next_record()? {
                Step::Record(record) => {
                    match record.meta.kind {
                        Kind::Event => summary.events += 1,
                        Kind::Quarantined => summary.quarantined += 1,
                    }
                    let at = record.meta.accepted_ms;
                    summary.accepted_ms =
                        Some(summary.accepted_ms.map_or((at, at), |(first, _)| (first, at)));
                }
                Step::End => break None,
                Step::Invalid(invalid) => break Some(invalid),
            }
        };
        summary.end_seq = cursor.next_seq();
        summary.bytes = cursor.segment_mut().size()?;
        summary.tail = bad.map(|invalid| (summary.bytes - cursor.offset(), invalid));
        summaries.push(summary);
    }
    Ok(summaries)
}

/// What a read-only check of one segment found (`journal verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Its id.
    pub id: u64,
    /// Valid records.
    pub records: u64,
    /// Gap records an earlier start wrote over damage: (first lost record, records lost).
    pub earlier_gaps: Vec<(u64, u64)>,
    /// Damage the next start will step over: (byte offset, bytes, first lost record, records
    /// lost).
    pub damage: Vec<(u64, u64, u64, u64)>,
    /// Bytes after the last valid record with nothing valid after them: (offset, bytes, why).
    pub bad_tail: Option<(u64, u64, Invalid)>,
    /// Sequence number after its valid part.
    pub end_seq: u64,
}

/// Checks every segment the way recovery would, without changing anything: every record, gap
/// record, damaged span (and where the next valid record resumes) and bad tail.
pub fn check(storage: &dyn Storage) -> io::Result<Vec<SegmentCheck>> {
    let mut checks = Vec::new();
    for id in storage.segments()? {
        let Some(mut cursor) = open(storage, id)? else { continue };
        let segment = cursor.segment_mut();
        let mut bytes = vec![0u8; segment.size()? as usize];
        let read = super::storage::read_full_at(&*segment, 0, &mut bytes)?;
        bytes.truncate(read);
        checks.push(check_segment(&bytes, id));
    }
    Ok(checks)
}

/// [`check`] for one segment's bytes (its header already checked).
fn check_segment(bytes: &[u8], id: u64) -> SegmentCheck {
    let mut check = SegmentCheck { id, ..SegmentCheck::default() };
    let mut at = format::SEGMENT_HEADER_LEN;
    let mut seq = id;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.get(..format::RECORD_HEADER_LEN) == Some(&format::END_MARK[..]) {
            break;
        }
        if let Some((lost, n)) = format::decode_gap(rest, seq) {
            check.earlier_gaps.push((seq, lost));
            seq += lost;
            at += n;
            continue;
        }
        let invalid = match format::decode(rest, seq) {
            Ok(record) => {
                check.records += 1;
                seq += 1;
                at += record.disk_len();
                continue;
            }
            Err(invalid) => invalid,
        };
        match format::resync(rest, seq) {
            Some((skip, next)) => {
                check.damage.push((at as u64, skip as u64, seq, next - seq));
                seq = next;
                at += skip;
            }
            None => {
                check.bad_tail = Some((at as u64, rest.len() as u64, invalid));
                break;
            }
        }
    }
    check.end_seq = seq;
    check
}

/// Every valid record from a sequence number on, across segments, as found now.
#[derive(Debug)]
pub struct Scan {
    storage: Arc<dyn Storage>,
    ids: Vec<u64>,
    next: usize,
    cursor: Option<SegmentCursor>,
    from_seq: u64,
}

impl Scan {
    /// A scan of the records numbered `from_seq` or later.
    pub fn new(storage: Arc<dyn Storage>, from_seq: u64) -> io::Result<Scan> {
        let ids = storage.segments()?;
        // Start at the segment holding `from_seq` (the last one named at or below it).
        let next = ids.iter().rposition(|&id| id <= from_seq).unwrap_or(0);
        Ok(Scan { storage, ids, next, cursor: None, from_seq })
    }

    /// The next record, or `None` at the end of what is there.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            if self.cursor.is_none() {
                let Some(&id) = self.ids.get(self.next) else { return Ok(None) };
                self.next += 1;
                self.cursor = open(&*self.storage, id)?;
                continue;
            }
            let cursor = self.cursor.as_mut().expect("opened above");
            match cursor.next_record() {
                Ok(Step::Record(record)) if record.meta.seq < self.from_seq => {}
                Ok(Step::Record(record)) => {
                    return Ok(Some(Record {
                        meta: record.meta,
                        payload: record.payload.to_vec().into(),
                        disk_len: record.disk_len() as u64,
                    }))
                }
                Ok(Step::End | Step::Invalid(_)) => self.cursor = None,
                // Removed while being read: go on with the next one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.cursor = None,
                Err(e) => return Err(e),
            }
        }
    }
}
