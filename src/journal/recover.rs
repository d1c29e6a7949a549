//! Opening a journal after a stop or a crash: check every segment, cut a torn or corrupt tail
//! back to the last valid record, and say what was cut.
//!
//! Recovery policy ("truncate at the first bad record"): records are checked in order (checksum,
//! length, kind, sequence); the first bad one and everything after it in its segment is cut, and
//! the cut is reported (segment, offset, bytes, reason). With fsync durability only the newest
//! segment can have a torn tail, and what it cuts was never acknowledged: a batch is answered 200
//! only after its records were written whole and synced. A bad record in an older segment means
//! the disk altered synced data; it is cut the same way and logged as an error, since committed
//! events were lost with it. A segment that is not a journal segment at all (bad magic, unknown
//! version, a name that disagrees with its header) stops the open with an error: that is a
//! directory mix-up for the operator to sort out, not something to repair by deleting data.

use std::fmt;
use std::io;

use super::cursor::SegmentCursor;
use super::format::{self, BadHeader, SEGMENT_HEADER_LEN};
use super::storage::{read_full_at, write_all_at, Storage};

/// One segment as found on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its id: the sequence number of its first record.
    pub id: u64,
    /// Its length in bytes after recovery.
    pub len: u64,
    /// Sequence number after its last record.
    pub end_seq: u64,
}

/// A cut made during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The segment (as named by the storage).
    pub segment: String,
    /// Where the first bad byte was.
    pub offset: u64,
    /// Bytes cut.
    pub cut_bytes: u64,
    /// Why.
    pub reason: String,
    /// False for the newest segment (a torn tail, never acknowledged); true when an older
    /// segment lost records (the disk changed synced data).
    pub lost_committed: bool,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: cut {} bytes at byte {} ({})", self.segment, self.cut_bytes, self.offset, self.reason)
    }
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every segment, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Cuts made, oldest segment first.
    pub repairs: Vec<Repair>,
    /// Records in all segments.
    pub records: u64,
}

impl Recovered {
    /// Sequence number the next record gets (`None` when there is no segment).
    pub fn next_seq(&self) -> Option<u64> {
        self.segments.last().map(|s| s.end_seq)
    }
}

/// Checks and repairs every segment.
pub fn recover(storage: &dyn Storage) -> io::Result<Recovered> {
    let ids = storage.segments()?;
    let mut recovered = Recovered::default();
    for (n, &id) in ids.iter().enumerate() {
        let newest = n + 1 == ids.len();
        if let Some(previous) = recovered.segments.last() {
            if id < previous.end_seq {
                return Err(refuse(storage, id, "overlaps the records of the segment before it"));
            }
        }
        let info = recover_segment(storage, id, newest, &mut recovered)?;
        recovered.segments.push(info);
    }
    Ok(recovered)
}

fn refuse(storage: &dyn Storage, id: u64, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} {why}; move the journal directory aside to start afresh", storage.describe(id)),
    )
}

fn recover_segment(
    storage: &dyn Storage,
    id: u64,
    newest: bool,
    recovered: &mut Recovered,
) -> io::Result<SegmentInfo> {
    let mut segment = storage.open(id)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    let read = read_full_at(&*segment, 0, &mut header)?;
    match format::check_segment_header(&header[..read]) {
        Ok(first) if first == id => {}
        Ok(first) => return Err(refuse(storage, id, &format!("{:?}", BadHeader::FirstSeq(first)))),
        // A segment whose creation was cut before its header was written: no record in it.
        Err(BadHeader::Short) => {
            segment.truncate(0)?;
            write_all_at(&mut *segment, 0, &format::segment_header(id))?;
            segment.sync()?;
            if read > 0 {
                recovered.repairs.push(Repair {
                    segment: storage.describe(id),
                    offset: 0,
                    cut_bytes: read as u64,
                    reason: "segment header cut short".into(),
                    lost_committed: false,
                });
            }
            return Ok(SegmentInfo { id, len: SEGMENT_HEADER_LEN as u64, end_seq: id });
        }
        Err(bad) => return Err(refuse(storage, id, &format!("is not a journal segment ({bad:?})"))),
    }
    let mut cursor = SegmentCursor::new(segment, id);
    let bad = loop {
        match cursor.next_record()? {
            Ok(Some(_)) => recovered.records += 1,
            Ok(None) => break None,
            Err(invalid) => break Some(invalid),
        }
    };
    let offset = cursor.offset();
    if let Some(invalid) = bad {
        let segment = cursor.segment_mut();
        let len = segment.size()?;
        segment.truncate(offset)?;
        segment.sync()?;
        recovered.repairs.push(Repair {
            segment: storage.describe(id),
            offset,
            cut_bytes: len - offset,
            reason: invalid.to_string(),
            lost_committed: !newest,
        });
    }
    Ok(SegmentInfo { id, len: offset, end_seq: cursor.next_seq() })
}
