//! Reading records in order: [`SegmentCursor`] walks one segment (used by recovery and by the
//! reader), [`Reader`] walks the whole journal from a sequence number, stopping at the last
//! committed record.
//!
//! Invariants: a cursor never hands out a record that failed its checksum or broke the sequence,
//! and never sizes a buffer from a length field before checking that the file holds that many
//! bytes (a garbage length cannot make it allocate gigabytes).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::format::{self, BadHeader, Invalid, RecordRef, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::storage::{read_full_at, Segment, Storage};

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 256 << 10;

/// A position in one segment, with read-ahead.
#[derive(Debug)]
pub struct SegmentCursor {
    segment: Box<dyn Segment>,
    id: u64,
    /// File offset of the next record.
    offset: u64,
    /// Sequence number the next record must carry.
    next_seq: u64,
    /// Bytes read ahead; `buf[0]` is at file offset `offset` minus `start`. Shared with the
    /// [`Payload`]s the [`Reader`] hands out, so a record costs no copy and no allocation; a
    /// refill reuses the buffer when none of them is alive any more, else starts a new one.
    buf: Arc<Vec<u8>>,
    start: usize,
    /// Read ahead no further than this file offset, when known: the end of what was written.
    /// A reused file holds older bytes past it, which read-ahead would only fetch to discard.
    read_limit: Option<u64>,
    /// Gap records passed: (first lost record, records lost).
    gaps: Vec<(u64, u64)>,
}

/// Where the newest segment's written bytes end, published when the journal opens and by its
/// writer after each group, so that a [`Reader`] does not read ahead past them. Only a hint: a
/// stale value limits read-ahead wrongly for a moment, never what can be read.
#[derive(Debug, Default)]
pub(super) struct TailMark {
    id: AtomicU64,
    end: AtomicU64,
}

impl TailMark {
    /// The newest segment is `id` and its written bytes end at `end`.
    pub(super) fn set(&self, id: u64, end: u64) {
        self.id.store(id, Ordering::Relaxed);
        self.end.store(end, Ordering::Release);
    }

    /// The end of segment `id`'s written bytes, if it is the newest one.
    fn end_of(&self, id: u64) -> Option<u64> {
        let end = self.end.load(Ordering::Acquire);
        (self.id.load(Ordering::Relaxed) == id).then_some(end)
    }
}

impl SegmentCursor {
    /// A cursor at the first record of segment `id` (its header already checked by the caller).
    pub fn new(segment: Box<dyn Segment>, id: u64) -> SegmentCursor {
        SegmentCursor {
            segment,
            id,
            offset: SEGMENT_HEADER_LEN as u64,
            next_seq: id,
            buf: Arc::new(Vec::new()),
            start: 0,
            read_limit: None,
            gaps: Vec::new(),
        }
    }

    /// Opens segment `id` at its first record, after checking its header; `Ok(Err(bad))` when
    /// the file does not start with a whole header naming `id`.
    pub fn open(storage: &dyn Storage, id: u64) -> io::Result<Result<SegmentCursor, BadHeader>> {
        let segment = storage.open(id)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let read = read_full_at(&*segment, 0, &mut header)?;
        Ok(match format::check_segment_header(&header[..read]) {
            Ok(first) if first == id => Ok(SegmentCursor::new(segment, id)),
            Ok(first) => Err(BadHeader::FirstSeq(first)),
            Err(bad) => Err(bad),
        })
    }

    /// The segment's id (its first sequence number).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// File offset just past the last record returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Sequence number of the next record.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The segment, to cut it back after a bad record.
    pub fn segment_mut(&mut self) -> &mut dyn Segment {
        &mut *self.segment
    }

    /// Makes at least `need` bytes available from `start`; false if the file is shorter.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.buf.len() - self.start >= need {
            return Ok(true);
        }
        let size = self.segment.size()?;
        if self.offset + need as u64 > size {
            return Ok(false);
        }
        // Read ahead up to a chunk, but never past the end of the file: the buffer is grown
        // (and zeroed) only by what is really there to read.
        let end = size.min(self.read_limit.unwrap_or(u64::MAX)).max(self.offset);
        let available = (end - self.offset) as usize;
        let want = need.max(READ_CHUNK.min(available));
        let buf = match Arc::get_mut(&mut self.buf) {
            Some(buf) => {
                buf.drain(..self.start);
                buf
            }
            None => {
                // Payloads handed out still point into the old buffer: leave it to them.
                let mut fresh = Vec::with_capacity(want);
                fresh.extend_from_slice(&self.buf[self.start..]);
                self.buf = Arc::new(fresh);
                Arc::get_mut(&mut self.buf).expect("not shared yet")
            }
        };
        self.start = 0;
        let have = buf.len();
        buf.resize(want, 0);
        let read = read_full_at(&*self.segment, self.offset + have as u64, &mut buf[have..])?;
        buf.truncate(have + read);
        Ok(buf.len() >= need)
    }

    /// Forgets bytes read ahead, so the next record is read from the file again (a reader that
    /// raced a write may have read ahead a record still being written).
    pub fn forget_read_ahead(&mut self) {
        match Arc::get_mut(&mut self.buf) {
            Some(buf) => buf.clear(),
            None => self.buf = Arc::new(Vec::new()),
        }
        self.start = 0;
    }

    /// The payload of the record [`next_record`](Self::next_record) just returned (`len` bytes),
    /// shared with the read-ahead buffer.
    fn last_payload(&self, len: usize) -> Payload {
        Payload { block: Arc::clone(&self.buf), start: self.start - len, len }
    }

    /// The next step through the segment: a record, the clean end (the end of the file, or an
    /// end mark), or a bad or cut record (the cursor then stays before it). Gap records (damaged
    /// bytes recovery stepped over, see `format::GAP_KIND`) are passed over, their lost records
    /// counted. `Err` only when the segment cannot be read.
    pub fn next_record(&mut self) -> io::Result<Step<'_>> {
        loop {
            if !self.fill(RECORD_HEADER_LEN)? {
                let left = self.segment.size()?.saturating_sub(self.offset);
                return Ok(if left == 0 { Step::End } else { Step::Invalid(Invalid::Truncated) });
            }
            let header: &[u8; RECORD_HEADER_LEN] =
                self.buf[self.start..self.start + RECORD_HEADER_LEN].try_into().expect("header length");
            if *header == format::END_MARK {
                return Ok(Step::End);
            }
            let len = format::payload_len(header);
            let gap = header[8] == format::GAP_KIND;
            if len > format::MAX_PAYLOAD {
                return Ok(Step::Invalid(Invalid::Length));
            }
            if !self.fill(RECORD_HEADER_LEN + len)? {
                return Ok(Step::Invalid(Invalid::Truncated));
            }
            if !gap {
                break;
            }
            let Some((lost, n)) = format::decode_gap(&self.buf[self.start..], self.next_seq) else {
                return Ok(Step::Invalid(Invalid::Header));
            };
            self.start += n;
            self.offset += n as u64;
            self.gaps.push((self.next_seq, lost));
            self.next_seq += lost;
        }
        match format::decode(&self.buf[self.start..], self.next_seq) {
            Ok(record) => {
                let n = record.disk_len();
                self.start += n;
                self.offset += n as u64;
                self.next_seq += 1;
                Ok(Step::Record(record))
            }
            Err(invalid) => Ok(Step::Invalid(invalid)),
        }
    }

    /// The gaps passed so far: (first lost record, records lost).
    pub fn gaps(&self) -> &[(u64, u64)] {
        &self.gaps
    }
}

/// What [`SegmentCursor::next_record`] found next, and so what its caller does next.
#[derive(Debug)]
pub enum Step<'a> {
    /// A whole, valid record: take it and go on.
    Record(RecordRef<'a>),
    /// The segment ends cleanly here: go to the next segment, or stop.
    End,
    /// The bytes here are not a valid record (cut, or damaged): the caller decides (recovery
    /// repairs, readers stop or move on).
    Invalid(Invalid),
}

/// Reads committed records in order from a sequence number on, across segments; the dispatcher
/// and the journal tools use it while the journal is being written.
#[derive(Debug)]
pub struct Reader {
    storage: Arc<dyn Storage>,
    cursor: Option<SegmentCursor>,
    next_seq: u64,
    /// The live journal's tail, when reading one.
    tail: Option<Arc<TailMark>>,
}

/// One record read from the journal; cloning it is cheap (the payload is shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its header fields.
    pub meta: format::Meta,
    /// Its payload.
    pub payload: Payload,
    /// Bytes it takes on disk.
    pub disk_len: u64,
}

/// A record's payload: a range of a shared, immutable block of journal bytes (the reader's
/// read-ahead), so reading a record allocates nothing and cloning it copies nothing. It keeps
/// its block alive; the dispatcher's window bounds how many blocks that can be.
#[derive(Clone)]
pub struct Payload {
    block: Arc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.block[self.start..self.start + self.len]
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        let len = bytes.len();
        Payload { block: Arc::new(bytes), start: 0, len }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({:?})", String::from_utf8_lossy(self))
    }
}

impl Reader {
    /// A reader whose first record will be `from_seq` (or the oldest one kept, if older ones
    /// were removed).
    pub fn new(storage: Arc<dyn Storage>, from_seq: u64) -> Reader {
        Reader { storage, cursor: None, next_seq: from_seq, tail: None }
    }

    /// A reader of a live journal whose writer publishes `tail`.
    pub(super) fn live(storage: Arc<dyn Storage>, from_seq: u64, tail: Arc<TailMark>) -> Reader {
        Reader { tail: Some(tail), ..Reader::new(storage, from_seq) }
    }

    /// Sequence number of the next record to read.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next record below `limit` (the journal's committed sequence number), or `None` when
    /// every record below it has been read.
    pub fn next(&mut self, limit: u64) -> io::Result<Option<Record>> {
        let mut reread = false;
        while self.next_seq < limit {
            if self.cursor.is_none() {
                self.cursor = Some(self.open_for(self.next_seq)?);
            }
            let cursor = self.cursor.as_mut().expect("opened above");
            cursor.read_limit = self.tail.as_ref().and_then(|tail| tail.end_of(cursor.id));
            match cursor.next_record()? {
                Step::Record(record) if record.meta.seq < self.next_seq => continue,
                Step::Record(record) => {
                    let (meta, len, disk_len) = (record.meta, record.payload.len(), record.disk_len());
                    self.next_seq = meta.seq + 1;
                    let payload = cursor.last_payload(len);
                    return Ok(Some(Record { meta, payload, disk_len: disk_len as u64 }));
                }
                Step::End | Step::Invalid(_) if !reread => {
                    reread = true;
                    cursor.forget_read_ahead();
                }
                // The end of this segment: the next record is in the segment named after it, or
                // the segment ended with a gap record standing for every record up to the limit.
                Step::End => {
                    if cursor.next_seq() >= limit {
                        self.next_seq = self.next_seq.max(cursor.next_seq());
                        return Ok(None);
                    }
                    let following = self.storage.segments()?.into_iter().find(|&id| id > cursor.id());
                    match following {
                        Some(id) if id >= cursor.next_seq() => {
                            self.next_seq = self.next_seq.max(id);
                            self.cursor = None;
                        }
                        _ => return Err(stalled(&*self.storage, cursor)),
                    }
                }
                Step::Invalid(invalid) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} at byte {}: {invalid} (a committed record cannot be read)",
                            self.storage.describe(cursor.id()),
                            cursor.offset()
                        ),
                    ))
                }
            }
        }
        Ok(None)
    }

    /// A cursor on the segment holding `seq` (or the oldest kept one, when `seq` is older).
    fn open_for(&self, seq: u64) -> io::Result<SegmentCursor> {
        let ids = self.storage.segments()?;
        let id = ids
            .iter()
            .rev()
            .find(|&&id| id <= seq)
            .or(ids.first())
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the journal has no segments"))?;
        SegmentCursor::open(&*self.storage, id)?.map_err(|bad| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad header {bad:?}", self.storage.describe(id)),
            )
        })
    }
}

fn stalled(storage: &dyn Storage, cursor: &SegmentCursor) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "{} ends at record {} and no later segment exists, yet later records were committed",
            storage.describe(cursor.id()),
            cursor.next_seq()
        ),
    )
}
