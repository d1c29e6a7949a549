//! Opening a journal after a stop or a crash: check every segment, tell a torn tail from damage,
//! keep every valid record, and say what was lost.
//!
//! Records are checked in order (checksum, length, kind, sequence). At the first bad one:
//! * **Damage in the middle**: a later valid record continuing the sequence follows it in the
//!   same segment (`format::resync`). The bytes in between are copied to `DATA_DIR/corrupt/`
//!   (named after the segment and the offset), then replaced by a gap record (`format::GAP_KIND`)
//!   that every reader steps over, and the scan goes on: one bad byte costs the records it hit,
//!   never the ones after it. The lost positions are reported as a [`Corruption`].
//! * **A torn tail**: nothing valid follows it in the newest segment, the one being written. It
//!   is cut: with fsync durability it was never acknowledged (a batch is answered 200 only after
//!   its records were written whole and synced). Reported as a [`Repair`].
//! * **Damage at the end of a sealed segment**: nothing valid follows it, in a segment that was
//!   no longer written. Its records were acknowledged: the bytes are copied to `corrupt/`, the
//!   segment cut there, and the records up to the next segment's first reported as a
//!   [`Corruption`].
//!
//! A segment that is not a journal segment at all (bad magic, unknown version, a name that
//! disagrees with its header) stops the open with an error: that is a directory mix-up for the
//! operator to sort out, not something to repair by deleting data.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::cursor::{SegmentCursor, Step};
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

/// Acknowledged records lost to damage on disk, found during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The segment (as named by the storage).
    pub segment: String,
    /// Where the damaged bytes start.
    pub offset: u64,
    /// How many bytes were damaged (replaced by a gap record, or cut at a sealed segment's end).
    pub bytes: u64,
    /// The first record lost.
    pub first_lost: u64,
    /// Records lost (0 when the damaged bytes held none).
    pub lost: u64,
    /// What was wrong with the first damaged record.
    pub reason: String,
    /// Where the damaged bytes were copied, or why they could not be.
    pub saved: Result<PathBuf, String>,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lost {
            0 => write!(f, "no record lost")?,
            1 => write!(f, "record {} lost", self.first_lost)?,
            n => write!(f, "records {}-{} ({n}) lost", self.first_lost, self.first_lost + n - 1)?,
        }
        write!(
            f,
            " to {} damaged bytes at byte {} of {} ({})",
            self.bytes, self.offset, self.segment, self.reason
        )?;
        match &self.saved {
            Ok(path) => write!(f, "; the bytes are saved in {}", path.display()),
            Err(e) => write!(f, "; the bytes could not be saved: {e}"),
        }
    }
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every segment, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Torn tails cut, oldest segment first.
    pub repairs: Vec<Repair>,
    /// Damage found, oldest first.
    pub corruptions: Vec<Corruption>,
    /// Records in all segments.
    pub records: u64,
}

impl Recovered {
    /// Acknowledged records lost to damage.
    pub fn corrupt_records(&self) -> u64 {
        self.corruptions.iter().map(|c| c.lost).sum()
    }

    /// Sequence number the next record gets (`None` when there is no segment).
    pub fn next_seq(&self) -> Option<u64> {
        self.segments.last().map(|s| s.end_seq)
    }
}

/// Checks and repairs every segment; damaged bytes are copied into `corrupt_dir` (created when
/// needed) first.
pub(super) fn recover(storage: &dyn Storage, corrupt_dir: Option<&Path>) -> io::Result<Recovered> {
    let ids = storage.segments()?;
    let mut recovered = Recovered::default();
    for (n, &id) in ids.iter().enumerate() {
        if let Some(previous) = recovered.segments.last() {
            if id < previous.end_seq {
                return Err(refuse(storage, id, "overlaps the records of the segment before it"));
            }
        }
        let next = ids.get(n + 1).copied();
        let info = recover_segment(storage, id, next, corrupt_dir, &mut recovered)?;
        recovered.segments.push(info);
    }
    Ok(recovered)
}

/// Copies damaged bytes to `DIR/<segment file>-at-<offset>` (private, synced).
fn save(corrupt_dir: Option<&Path>, id: u64, offset: u64, bytes: &[u8]) -> Result<PathBuf, String> {
    let dir = corrupt_dir.ok_or("no directory for damaged bytes")?;
    let path = dir.join(format!("{id:020}{}-at-{offset}", super::storage::SEGMENT_SUFFIX));
    let write = || -> io::Result<()> {
        crate::private_files::create_dir_all(dir)?;
        let mut file = crate::private_files::options().write(true).create(true).truncate(true).open(&path)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map(|()| path.clone()).map_err(|e| format!("{}: {e}", path.display()))
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
    next: Option<u64>,
    corrupt_dir: Option<&Path>,
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
    loop {
        let invalid = match cursor.next_record()? {
            Step::Record(_) => {
                recovered.records += 1;
                continue;
            }
            Step::End => break,
            Step::Invalid(invalid) => invalid,
        };
        let (offset, expected) = (cursor.offset(), cursor.next_seq());
        let segment = cursor.segment_mut();
        let size = segment.size()?;
        let mut rest = vec![0u8; (size - offset) as usize];
        let read = read_full_at(&*segment, offset, &mut rest)?;
        rest.truncate(read);
        if let Some((at, seq)) = format::resync(&rest, expected) {
            let saved = save(corrupt_dir, id, offset, &rest[..at]);
            write_all_at(segment, offset, &format::gap_record(expected, seq - expected, at))?;
            segment.sync()?;
            recovered.corruptions.push(Corruption {
                segment: storage.describe(id),
                offset,
                bytes: at as u64,
                first_lost: expected,
                lost: seq - expected,
                reason: invalid.to_string(),
                saved,
            });
            cursor.forget_read_ahead();
            continue;
        }
        match next {
            // The segment being written: a torn tail.
            None => recovered.repairs.push(Repair {
                segment: storage.describe(id),
                offset,
                cut_bytes: size - offset,
                reason: invalid.to_string(),
                lost_committed: false,
            }),
            // A sealed segment: its records up to the next segment's first were acknowledged.
            Some(next) => recovered.corruptions.push(Corruption {
                segment: storage.describe(id),
                offset,
                bytes: size - offset,
                first_lost: expected,
                lost: next.saturating_sub(expected),
                reason: invalid.to_string(),
                saved: save(corrupt_dir, id, offset, &rest),
            }),
        }
        segment.truncate(offset)?;
        segment.sync()?;
        break;
    }
    Ok(SegmentInfo { id, len: cursor.offset(), end_seq: cursor.next_seq() })
}
