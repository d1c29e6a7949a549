//! Arbitrary bytes as journal segment files into `Journal::open` (recovery), then reading,
//! reopening and appending.
//!
//! The property: arbitrary bytes as segment files never panic, and recovery keeps every valid
//! record, also those that follow damage. Checked against [`expect`], a deliberately slow decoder
//! written here from the byte format and the recovery rules in the module docs of
//! `src/journal/mod.rs` and `src/journal/recover.rs` (its own constants, its own walk; only the
//! CRC-32 comes from `crc32fast`, as in the journal): at a bad record it looks for the first offset
//! at least a record header (48 bytes) further where a whole record with a valid checksum, kind and reserved bytes starts whose
//! sequence number continues the sequence (at least the expected one, at most one more per 48
//! bytes left); damage before such a record is replaced by a gap record and reported as lost
//! records, damage with nothing valid after it is a torn tail (cut, in the newest segment) or lost
//! records up to the next segment (cut, in an older one). On every input:
//!
//! 1. `open` fails exactly when some segment's header is not ours (bad magic, unknown version or
//!    non-zero reserved bytes, first sequence number unlike the file name), and then with
//!    `InvalidData` naming that segment, which it left untouched; any other failure is a bug.
//! 2. On success, what recovery reports agrees with the decoder: records in all, each segment's
//!    length and end, one repair per torn tail of the newest segment (and per cut-short header),
//!    and one corruption per damaged span (segment, offset, bytes, first record lost, records
//!    lost).
//! 3. A `Reader` from sequence 1 yields exactly the decoder's records, in order, with their
//!    sequence numbers, and each record, rendered again with `push_record` and `seal` from the meta
//!    and payload read, is byte for byte the input at that record's offset.
//! 4. Each segment file after `open` is its input with every damaged span in the middle replaced by
//!    the gap record the format describes, cut where its valid part ends (unless an end mark, a
//!    record header of zeros, follows it: then the file stays whole); a file shorter than a header
//!    is exactly a fresh header.
//! 5. A second `open` repairs nothing, finds no damage, and reads the same records.
//! 6. One more record appended after that is `Committed`, and a third `open` (no repair) reads the
//!    prefix and then that record, numbered right after it.
//!
//! Input layout: byte 0 holds flags, the rest is segment bytes.
//! * [`TWO_SEGMENTS`]: bytes 1-2 are a little-endian length: that many of the following bytes are
//!   segment 1, the rest is a second segment, named [`GAP_MASK`]-selected 0..=3 sequence numbers
//!   after segment 1's last valid record (its header must carry that name to be accepted;
//!   `seeds/journal_open/` has inputs that do). Without the flag all of it is segment 1.
//! * [`SMALL_SEGMENTS`]: `--journal-segment-bytes` is [`SMALL_SEGMENT_BYTES`], so the append in
//!   step 6 starts a new segment whenever the newest one holds a record.
//! * [`FIX_CHECKSUMS`]: before anything else, every record's checksum field is set to the CRC of
//!   its bytes (records found by their length fields, from the segment header on, up to the first
//!   one that runs past the end). A mutation inside a record almost always breaks its CRC, so
//!   without this the checks behind the CRC (kind, reserved bytes, sequence number) are out of the
//!   fuzzer's reach: with the oracle wrongly accepting kind 3, 90 s of fuzzing did not notice.
//!
//! Per input: three opens, one append, copies of the input's records; nothing sized by a length
//! field. For the next maintainer: a format change (`format::VERSION`) changes [`expect`] and the
//! constants below with it; the seeds in `fuzz/seeds/journal_open/` then need making again
//! (`fuzz/run.sh` says how).

#![no_main]

use std::io;
use std::ops::Range;
use std::sync::Arc;

use egnyte_receiver::journal::format::{push_record, seal, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use egnyte_receiver::journal::memory::MemStorage;
use egnyte_receiver::journal::{
    Append, Durability, Journal, JournalConfig, Kind, Meta, Record, Recovered, Storage, DEFAULT_SEGMENT_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Flag: the input holds two segments (see the module docs).
const TWO_SEGMENTS: u8 = 1;
/// Flags: bits 1-2, how many sequence numbers the second segment's name skips after the first
/// segment's end (a journal whose oldest records were removed has such gaps).
const GAP_SHIFT: u32 = 1;
const GAP_MASK: u8 = 0b11;
/// Flag: segments are "full" as soon as they hold a record, so the append rotates.
const SMALL_SEGMENTS: u8 = 1 << 3;
/// Flag: checksums are made valid before the segments are written (see the module docs).
const FIX_CHECKSUMS: u8 = 1 << 4;
/// The segment size under [`SMALL_SEGMENTS`].
const SMALL_SEGMENT_BYTES: u64 = 1;
/// A fresh journal's first segment, and the sequence number of its first record.
const FIRST_ID: u64 = 1;

// The format, restated from `src/journal/mod.rs` rather than borrowed from `format.rs`, so that
// the decoder below is a second reading of the documentation, not a copy of the code.
const MAGIC: [u8; 4] = *b"EGRJ";
const VERSION: u16 = 1;
const SEGMENT_HEADER: usize = 16;
const RECORD_HEADER: usize = 48;
const MAX_PAYLOAD: u32 = (1 << 31) - 1;
const KIND_EVENT: u8 = 1;
const KIND_QUARANTINED: u8 = 2;
const KIND_GAP: u8 = 3;
const _: () = assert!(SEGMENT_HEADER == SEGMENT_HEADER_LEN && RECORD_HEADER == RECORD_HEADER_LEN);

/// The record step 6 appends.
const APPENDED_PAYLOAD: &[u8] = br#"{"eventId":"appended-by-the-fuzz-target","domain":"acme"}"#;
const APPENDED_META: Meta =
    Meta { kind: Kind::Event, seq: 0, accepted_ms: 1_733_739_495_586, key: 0x5eed, order: 0x0de5 };

/// What a segment file's bytes hold, by the format's rules.
#[derive(Debug)]
enum Expect {
    /// Shorter than a header: recovery rewrites it as an empty segment (its creation was cut).
    Short,
    /// Not a journal segment of this version and this name: `open` must refuse it.
    Foreign,
    /// A good header; the valid records (sequence number, byte range), in order; the damaged
    /// spans recovery steps over; where the valid part ends; `marked`: an end mark (a record
    /// header of zeros) follows it, so the bytes after it are not damage and stay (a reused
    /// segment file); `end_seq`: the sequence number after the valid part.
    Valid { records: Vec<(u64, Range<usize>)>, spans: Vec<Span>, end: usize, marked: bool, end_seq: u64 },
}

/// Damaged bytes followed by a valid record: recovery writes a gap record over them.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: usize,
    len: usize,
    first_lost: u64,
    lost: u64,
}

/// One segment file of the input.
#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: Vec<u8>,
    expect: Expect,
}

impl Segment {
    fn new(id: u64, input: &[u8], flags: u8) -> Segment {
        let mut bytes = input.to_vec();
        if flags & FIX_CHECKSUMS != 0 {
            fix_checksums(&mut bytes);
        }
        let expect = expect(&bytes, id);
        Segment { id, bytes, expect }
    }

    /// Sequence number after its valid part.
    fn end_seq(&self) -> u64 {
        match &self.expect {
            Expect::Valid { end_seq, .. } => *end_seq,
            Expect::Short | Expect::Foreign => self.id,
        }
    }

    /// Its bytes once recovery is done with it.
    fn recovered_bytes(&self) -> Vec<u8> {
        match &self.expect {
            Expect::Valid { spans, end, marked, .. } => {
                let mut bytes = self.bytes.clone();
                for span in spans {
                    bytes[span.offset..span.offset + span.len].copy_from_slice(&gap_record(
                        span.first_lost,
                        span.lost,
                        span.len,
                    ));
                }
                if !marked {
                    bytes.truncate(*end);
                }
                bytes
            }
            Expect::Short | Expect::Foreign => header(self.id).to_vec(),
        }
    }

    /// The damaged spans recovery steps over.
    fn spans(&self) -> &[Span] {
        match &self.expect {
            Expect::Valid { spans, .. } => spans,
            Expect::Short | Expect::Foreign => &[],
        }
    }

    /// Where its valid part ends once recovery is done with it.
    fn valid_len(&self) -> usize {
        match &self.expect {
            Expect::Valid { end, .. } => *end,
            Expect::Short | Expect::Foreign => SEGMENT_HEADER,
        }
    }

    /// (sequence number, bytes on disk) of each valid record.
    fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let records = match &self.expect {
            Expect::Valid { records, .. } => records.as_slice(),
            Expect::Short | Expect::Foreign => &[],
        };
        records.iter().map(|(seq, range)| (*seq, &self.bytes[range.clone()]))
    }

    /// The cut recovery must report: (offset, bytes cut), if any.
    fn cut(&self) -> Option<(u64, u64)> {
        let len = self.bytes.len() as u64;
        match &self.expect {
            Expect::Short => (len > 0).then_some((0, len)),
            Expect::Valid { marked: true, .. } => None,
            Expect::Valid { end, .. } => (*end as u64 != len).then_some((*end as u64, len - *end as u64)),
            Expect::Foreign => None,
        }
    }
}

/// The slow decoder: what `bytes`, as the file of segment `id`, holds.
fn expect(bytes: &[u8], id: u64) -> Expect {
    if bytes.len() < SEGMENT_HEADER {
        return Expect::Short;
    }
    if bytes[..4] != MAGIC || le16(bytes, 4) != VERSION || bytes[6..8] != [0, 0] || le64(bytes, 8) != id {
        return Expect::Foreign;
    }
    let mut records = Vec::new();
    let mut spans = Vec::new();
    let mut at = SEGMENT_HEADER;
    let mut seq = id;
    loop {
        if bytes.get(at..at + RECORD_HEADER).is_some_and(|h| h.iter().all(|&b| b == 0)) {
            return Expect::Valid { records, spans, end: at, marked: true, end_seq: seq };
        }
        if at == bytes.len() {
            break;
        }
        match whole_record(&bytes[at..]) {
            Some((len, kind, number)) if number == seq && kind != KIND_GAP => {
                records.push((seq, at..at + len));
                seq += 1;
                at += len;
            }
            // A gap record already there (an earlier recovery's): its records are lost.
            Some((len, KIND_GAP, number))
                if number == seq && seq.checked_add(le64(bytes, at + 32)).is_some() =>
            {
                seq += le64(bytes, at + 32);
                at += len;
            }
            _ => {
                // Damage: the first later offset where a record continuing the sequence starts.
                let rest = &bytes[at..];
                let most = seq + (rest.len() / RECORD_HEADER) as u64;
                let next = (RECORD_HEADER..rest.len()).find_map(|skip| {
                    let (_, _, number) = whole_record(&rest[skip..])?;
                    (seq..=most).contains(&number).then_some((skip, number))
                });
                let Some((skip, number)) = next else { break };
                spans.push(Span { offset: at, len: skip, first_lost: seq, lost: number - seq });
                at += skip;
                seq = number;
            }
        }
    }
    Expect::Valid { records, spans, end: at, marked: false, end_seq: seq }
}

/// (bytes taken, kind, sequence number) of the record at the start of `rest`, if it is whole and
/// its checksum, kind (event, quarantined or gap) and reserved bytes are right.
fn whole_record(rest: &[u8]) -> Option<(usize, u8, u64)> {
    if rest.len() < RECORD_HEADER {
        return None;
    }
    let payload = le32(rest, 0);
    if payload > MAX_PAYLOAD || RECORD_HEADER + payload as usize > rest.len() {
        return None;
    }
    let record = &rest[..RECORD_HEADER + payload as usize];
    let checksum_ok = crc32fast::hash(&record[8..]) == le32(record, 4);
    let kind_ok = [KIND_EVENT, KIND_QUARANTINED, KIND_GAP].contains(&record[8]);
    let reserved_ok = record[9..16].iter().all(|&b| b == 0);
    (checksum_ok && kind_ok && reserved_ok).then_some((record.len(), record[8], le64(record, 16)))
}

/// The gap record the format describes over `len` damaged bytes standing for `lost` records
/// from `first` on: header (payload length, checksum, kind 3, sequence number, records lost in
/// the dedup-key field), zeros after.
fn gap_record(first: u64, lost: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    out[..4].copy_from_slice(&((len - RECORD_HEADER) as u32).to_le_bytes());
    out[8] = KIND_GAP;
    out[16..24].copy_from_slice(&first.to_le_bytes());
    out[32..40].copy_from_slice(&lost.to_le_bytes());
    let crc = crc32fast::hash(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Sets each record's checksum field to the CRC-32 of its bytes (see [`FIX_CHECKSUMS`]).
fn fix_checksums(bytes: &mut [u8]) {
    let mut at = SEGMENT_HEADER;
    while at + RECORD_HEADER <= bytes.len() {
        let end = at + RECORD_HEADER + le32(bytes, at) as usize;
        if end > bytes.len() {
            return;
        }
        let crc = crc32fast::hash(&bytes[at + 8..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

/// A segment header as the format describes it.
fn header(id: u64) -> [u8; SEGMENT_HEADER] {
    let mut out = [0; SEGMENT_HEADER];
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_le_bytes());
    out[8..].copy_from_slice(&id.to_le_bytes());
    out
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let segments = split(flags, rest);
    let memory = MemStorage::new();
    for segment in &segments {
        memory.set_bytes(segment.id, segment.bytes.clone());
    }
    let storage: Arc<dyn Storage> = Arc::new(memory.clone());
    let segment_bytes = if flags & SMALL_SEGMENTS != 0 { SMALL_SEGMENT_BYTES } else { DEFAULT_SEGMENT_BYTES };
    let config = JournalConfig {
        durability: Durability::Fsync,
        segment_bytes,
        first_seq: FIRST_ID,
        corrupt_dir: None,
    };

    // 1. Refused exactly when a header is not ours.
    let foreign = segments.iter().find(|s| matches!(s.expect, Expect::Foreign));
    let (journal, recovered) = match (Journal::open(Arc::clone(&storage), &config), foreign) {
        (Ok(opened), None) => opened,
        (Err(e), Some(foreign)) => return check_refusal(&e, &memory, foreign),
        (Err(e), None) => panic!("open failed though every header is ours: {e}\nsegments: {segments:?}"),
        (Ok(_), Some(foreign)) => panic!("open accepted segment {} with a foreign header", foreign.id),
    };
    // 2. and 4. What recovery reports and leaves on disk.
    check_recovered(&recovered, &segments, &memory);
    let mut expected: Vec<(u64, &[u8])> = segments.iter().flat_map(Segment::records).collect();
    let end_seq = segments.last().expect("at least segment 1").end_seq();
    assert_eq!(journal.committed_seq(), end_seq, "committed position after open");
    // 3. The records read back are the valid prefix.
    check_records(&read_all(&journal), &expected);
    drop(journal);

    // 5. A second open finds nothing to repair.
    let (journal, recovered) = Journal::open(Arc::clone(&storage), &config).expect("second open");
    assert_eq!(recovered.repairs, [], "second open repaired again");
    assert_eq!(recovered.corruptions, [], "second open found damage again");
    check_records(&read_all(&journal), &expected);

    // 6. One more record after the prefix.
    let mut record = Vec::new();
    push_record(&mut record, &APPENDED_META, &[APPENDED_PAYLOAD]);
    assert_eq!(journal.append(record.clone()), Append::Committed, "append after recovery");
    seal(&mut record, end_seq);
    expected.push((end_seq, &record));
    drop(journal);
    let (journal, recovered) = Journal::open(Arc::clone(&storage), &config).expect("open after the append");
    assert_eq!(recovered.repairs, [], "open after the append repaired");
    assert_eq!(recovered.corruptions, [], "open after the append found damage");
    check_records(&read_all(&journal), &expected);
    let newest = segments.last().expect("at least segment 1");
    let rotated = segment_bytes == SMALL_SEGMENT_BYTES && newest.end_seq() > newest.id;
    let mut ids: Vec<u64> = segments.iter().map(|s| s.id).collect();
    ids.extend(rotated.then_some(end_seq));
    assert_eq!(storage.segments().expect("segment list"), ids, "segments after the append");
});

/// The input's segments: see the layout in the module docs.
fn split(flags: u8, rest: &[u8]) -> Vec<Segment> {
    if flags & TWO_SEGMENTS == 0 || rest.len() < 2 {
        return vec![Segment::new(FIRST_ID, rest, flags)];
    }
    let (len, rest) = rest.split_at(2);
    let len = usize::from(le16(len, 0)).min(rest.len());
    let (first, second) = rest.split_at(len);
    let first = Segment::new(FIRST_ID, first, flags);
    let gap = u64::from(flags >> GAP_SHIFT & GAP_MASK);
    // Never segment 1's own name, even when it holds no record.
    let id = (first.end_seq() + gap).max(FIRST_ID + 1);
    vec![first, Segment::new(id, second, flags)]
}

/// A refused open: `InvalidData`, naming the foreign segment, which is left as it was.
fn check_refusal(error: &io::Error, memory: &MemStorage, foreign: &Segment) {
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "refusal of segment {}: {error}", foreign.id);
    let name = memory.describe(foreign.id);
    assert!(error.to_string().contains(&name), "refusal does not name {name}: {error}");
    assert_eq!(
        memory.bytes(foreign.id).as_deref(),
        Some(&foreign.bytes[..]),
        "the refused segment was changed"
    );
}

/// Recovery's report and the files it left, against the decoder.
fn check_recovered(recovered: &Recovered, segments: &[Segment], memory: &MemStorage) {
    let records: u64 = segments.iter().map(|s| s.records().count() as u64).sum();
    assert_eq!(recovered.records, records, "records recovered");
    assert_eq!(recovered.segments.len(), segments.len(), "segments recovered");
    for (info, segment) in recovered.segments.iter().zip(segments) {
        let bytes = segment.recovered_bytes();
        assert_eq!(
            (info.id, info.len, info.end_seq),
            (segment.id, segment.valid_len() as u64, segment.end_seq()),
            "segment info (id, len, end_seq)"
        );
        assert!(
            memory.bytes(segment.id) == Some(bytes),
            "segment {} after recovery is not its valid part with gap records over the damage",
            segment.id
        );
    }
    let cuts: Vec<_> = recovered
        .repairs
        .iter()
        .map(|r| (r.segment.clone(), r.offset, r.cut_bytes, r.lost_committed))
        .collect();
    let damage: Vec<_> = recovered
        .corruptions
        .iter()
        .map(|c| (c.segment.clone(), c.offset, c.bytes, c.first_lost, c.lost))
        .collect();
    let mut expected_cuts = Vec::new();
    let mut expected_damage = Vec::new();
    for (n, s) in segments.iter().enumerate() {
        let name = memory.describe(s.id);
        for span in s.spans() {
            expected_damage.push((
                name.clone(),
                span.offset as u64,
                span.len as u64,
                span.first_lost,
                span.lost,
            ));
        }
        let Some((offset, bytes)) = s.cut() else { continue };
        match segments.get(n + 1) {
            // A bad tail of an older segment: its records up to the next segment's were lost.
            Some(next) if !matches!(s.expect, Expect::Short) => {
                let lost = next.id.saturating_sub(s.end_seq());
                expected_damage.push((name, offset, bytes, s.end_seq(), lost));
            }
            // A torn tail of the newest segment, or a header cut short (it never held a record).
            _ => expected_cuts.push((name, offset, bytes, false)),
        }
    }
    assert_eq!(cuts, expected_cuts, "repairs (segment, offset, bytes cut, lost committed)");
    assert_eq!(damage, expected_damage, "damage (segment, offset, bytes, first lost, lost)");
}

/// Every committed record, from sequence number 1 on.
fn read_all(journal: &Journal) -> Vec<Record> {
    let mut reader = journal.reader(FIRST_ID);
    let mut out = Vec::new();
    while let Some(record) = reader.next(journal.committed_seq()).unwrap_or_else(|e| panic!("reader: {e}")) {
        out.push(record);
    }
    out
}

/// The records read are `expected` (sequence number, bytes on disk), rendered again from what
/// was read.
fn check_records(read: &[Record], expected: &[(u64, &[u8])]) {
    assert_eq!(read.len(), expected.len(), "records read");
    let mut rendered = Vec::new();
    for (record, &(seq, bytes)) in read.iter().zip(expected) {
        assert_eq!(record.meta.seq, seq, "sequence number");
        assert_eq!(record.disk_len, bytes.len() as u64, "record {seq}: length on disk");
        rendered.clear();
        push_record(&mut rendered, &Meta { seq: 0, ..record.meta }, &[&record.payload]);
        seal(&mut rendered, seq);
        assert!(rendered == bytes, "record {seq}: rendered again, it differs from the input's bytes");
        assert_eq!(*record.payload, bytes[RECORD_HEADER..], "record {seq}: payload");
    }
}
