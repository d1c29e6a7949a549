//! The bytes of a segment: its header, and each record's header, checksum and payload.
//!
//! This file is the only one that knows byte offsets; everything else goes through
//! [`push_record`] (render, with no sequence number yet), [`seal`] (number and checksum a run of
//! rendered records) and [`decode`] (read one back, checking everything). The layout is written
//! out in the module docs of `journal/mod.rs`; `tests` asserts the exact bytes.
//!
//! For the next maintainer: any change here is a format change. Bump [`VERSION`], keep reading
//! the old version (or refuse it with a clear message), and update the byte-exact test.

/// First four bytes of every segment.
pub const MAGIC: [u8; 4] = *b"EGRJ";
/// Format version written in every segment header; a segment of another version is refused.
pub const VERSION: u16 = 1;
/// Segment header: magic, version, reserved, first sequence number.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Record header: length, checksum, kind, reserved, sequence, accepted-at, dedup key, order key.
pub const RECORD_HEADER_LEN: usize = 48;
/// The end mark: a record header of zeros ends a segment's records (see `journal/mod.rs`).
pub const END_MARK: [u8; RECORD_HEADER_LEN] = [0; RECORD_HEADER_LEN];

/// Kind byte of a **gap** record: written by recovery over bytes that were damaged in the middle
/// of a segment, so that every reader steps over them to the valid records after them. Its
/// sequence number is the first record lost, its dedup-key field the number of records lost
/// (possibly 0), its payload zeros as long as the damaged bytes it replaces need. It is never
/// handed out as a record (see [`decode_gap`]).
pub const GAP_KIND: u8 = 3;

/// Largest payload a record may carry (the parser's largest body, 2 GiB, minus one). A longer
/// length field on disk is corruption.
pub const MAX_PAYLOAD: usize = (u32::MAX >> 1) as usize;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A valid, fresh event: the payload is its JSON as received, on one line.
    Event,
    /// An invalid element: the payload is its quarantine line
    /// (`{"index":N,"reason":"…","element":…}`).
    Quarantined,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Event => 1,
            Kind::Quarantined => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Event),
            2 => Some(Kind::Quarantined),
            _ => None,
        }
    }
}

/// A record's header fields (everything but length and checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What the payload is.
    pub kind: Kind,
    /// Position in the journal: one more than the previous record's, never reused.
    pub seq: u64,
    /// When the receiver accepted the batch, in milliseconds since the Unix epoch.
    pub accepted_ms: u64,
    /// The event's dedup key (`dedup::key`); 0 for a quarantined element.
    pub key: u64,
    /// Records with equal order keys (same domain and path) are delivered in journal order.
    pub order: u64,
}

/// One record read back: its header and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Header fields.
    pub meta: Meta,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Bytes the record takes on disk.
    pub fn disk_len(&self) -> usize {
        RECORD_HEADER_LEN + self.payload.len()
    }
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The bytes end inside the header or the payload (a torn write).
    Truncated,
    /// The length field exceeds [`MAX_PAYLOAD`].
    Length,
    /// The checksum does not match.
    Checksum,
    /// The kind byte is unknown or a reserved byte is not zero.
    Header,
    /// The sequence number is not the one expected.
    Sequence,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invalid::Truncated => "record cut short",
            Invalid::Length => "record length out of range",
            Invalid::Checksum => "checksum mismatch",
            Invalid::Header => "unknown record kind or non-zero reserved bytes",
            Invalid::Sequence => "sequence number out of order",
        })
    }
}

/// The 16 bytes that open a segment whose first record is `first_seq`.
pub fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_le_bytes());
    header[8..].copy_from_slice(&first_seq.to_le_bytes());
    header
}

/// Why a segment header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHeader {
    /// Shorter than a header: a segment whose creation was cut.
    Short,
    /// Not a journal segment at all.
    Magic,
    /// A version this build cannot read.
    Version(u16),
    /// The first sequence number disagrees with the file name.
    FirstSeq(u64),
}

/// Checks a segment header; `Ok` with its first sequence number.
pub fn check_segment_header(bytes: &[u8]) -> Result<u64, BadHeader> {
    let header = bytes.get(..SEGMENT_HEADER_LEN).ok_or(BadHeader::Short)?;
    if header[..4] != MAGIC {
        return Err(BadHeader::Magic);
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION || header[6..8] != [0, 0] {
        return Err(BadHeader::Version(version));
    }
    Ok(u64_at(header, 8))
}

/// Appends a record with sequence number and checksum left zero ([`seal`] fills them). The
/// payload is the concatenation of `parts`, so a caller can frame bytes without copying twice.
pub fn push_record(out: &mut Vec<u8>, meta: &Meta, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert!(len <= MAX_PAYLOAD, "a payload is never larger than a body");
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(meta.kind.byte());
    out.extend_from_slice(&[0; 7]);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&meta.accepted_ms.to_le_bytes());
    out.extend_from_slice(&meta.key.to_le_bytes());
    out.extend_from_slice(&meta.order.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Numbers the records rendered in `bytes` from `first_seq` on and computes their checksums;
/// returns how many there were. `bytes` must hold only whole records from [`push_record`].
pub fn seal(bytes: &mut [u8], first_seq: u64) -> u64 {
    let mut at = 0;
    let mut seq = first_seq;
    while at < bytes.len() {
        let end = at + RECORD_HEADER_LEN + u32_at(bytes, at) as usize;
        let record = &mut bytes[at..end];
        record[16..24].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32fast::hash(&record[8..]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        at = end;
        seq += 1;
    }
    seq - first_seq
}

/// Reads the record at the start of `bytes`, which must be number `expected_seq`.
pub fn decode(bytes: &[u8], expected_seq: u64) -> Result<RecordRef<'_>, Invalid> {
    let header = bytes.get(..RECORD_HEADER_LEN).ok_or(Invalid::Truncated)?;
    let len = u32_at(header, 0) as usize;
    if len > MAX_PAYLOAD {
        return Err(Invalid::Length);
    }
    // The length is checked against the bytes at hand before anything is sized by it.
    let record = bytes.get(..RECORD_HEADER_LEN + len).ok_or(Invalid::Truncated)?;
    if crc32fast::hash(&record[8..]) != u32_at(header, 4) {
        return Err(Invalid::Checksum);
    }
    let kind = Kind::from_byte(header[8]).ok_or(Invalid::Header)?;
    if header[9..16] != [0; 7] {
        return Err(Invalid::Header);
    }
    let seq = u64_at(header, 16);
    if seq != expected_seq {
        return Err(Invalid::Sequence);
    }
    let meta = Meta {
        kind,
        seq,
        accepted_ms: u64_at(header, 24),
        key: u64_at(header, 32),
        order: u64_at(header, 40),
    };
    Ok(RecordRef { meta, payload: &record[RECORD_HEADER_LEN..] })
}

/// A gap record over `span` bytes (at least [`RECORD_HEADER_LEN`]) standing for the `lost`
/// records from `first_seq` on.
pub fn gap_record(first_seq: u64, lost: u64, span: usize) -> Vec<u8> {
    debug_assert!(span >= RECORD_HEADER_LEN);
    let mut bytes = vec![0u8; span];
    bytes[..4].copy_from_slice(&((span - RECORD_HEADER_LEN) as u32).to_le_bytes());
    bytes[8] = GAP_KIND;
    bytes[16..24].copy_from_slice(&first_seq.to_le_bytes());
    bytes[32..40].copy_from_slice(&lost.to_le_bytes());
    let crc = crc32fast::hash(&bytes[8..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Reads a gap record at the start of `bytes` standing in for record `expected_seq`: `Some((lost
/// records, bytes on disk))`, `None` when it is not a whole, valid gap record with that number
/// (or one after which no sequence number would be left).
pub fn decode_gap(bytes: &[u8], expected_seq: u64) -> Option<(u64, usize)> {
    let header = bytes.get(..RECORD_HEADER_LEN)?;
    let len = u32_at(header, 0) as usize;
    if header[8] != GAP_KIND || header[9..16] != [0; 7] || len > MAX_PAYLOAD {
        return None;
    }
    let record = bytes.get(..RECORD_HEADER_LEN + len)?;
    if crc32fast::hash(&record[8..]) != u32_at(header, 4) || u64_at(header, 16) != expected_seq {
        return None;
    }
    // The numbering must go on after it.
    let lost = u64_at(header, 32);
    expected_seq.checked_add(lost)?;
    Some((lost, record.len()))
}

/// Looks in `bytes` (a damaged record and what follows it in its segment) for the first offset
/// past the damaged record's header where a whole, valid record (or gap record) starts whose sequence number is at least
/// `expected_seq` and could follow it in that many bytes: `Some((offset, its sequence number))`.
/// Stale bytes of an older segment in a reused file carry smaller numbers and are passed over.
pub fn resync(bytes: &[u8], expected_seq: u64) -> Option<(usize, u64)> {
    let most_seq = expected_seq.saturating_add((bytes.len() / RECORD_HEADER_LEN) as u64);
    // The damaged record's header took 48 bytes: the next record starts no sooner.
    (RECORD_HEADER_LEN..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1)).find_map(|at| {
        let header = &bytes[at..at + RECORD_HEADER_LEN];
        let kind = header[8];
        if !(1..=GAP_KIND).contains(&kind) || header[9..16] != [0; 7] {
            return None;
        }
        let seq = u64_at(header, 16);
        if seq < expected_seq || seq > most_seq {
            return None;
        }
        let len = u32_at(header, 0) as usize;
        let record = bytes.get(at..(at + RECORD_HEADER_LEN).checked_add(len)?)?;
        (crc32fast::hash(&record[8..]) == u32_at(header, 4)).then_some((at, seq))
    })
}

/// The payload length a record header announces (the header must be whole).
pub fn payload_len(header: &[u8; RECORD_HEADER_LEN]) -> usize {
    u32_at(header, 0) as usize
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind) -> Meta {
        Meta { kind, seq: 0, accepted_ms: 0x0102_0304_0506_0708, key: 0x1112_1314_1516_1718, order: 0x21 }
    }

    /// The format of the module docs, byte for byte.
    #[test]
    fn bytes_are_exactly_the_documented_format() {
        assert_eq!(
            segment_header(7),
            [b'E', b'G', b'R', b'J', 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0],
            "magic, version 1 LE, 2 reserved, first seq LE"
        );
        let mut bytes = Vec::new();
        push_record(&mut bytes, &meta(Kind::Event), &[b"{\"a\"", b":1}"]);
        assert_eq!(seal(&mut bytes, 0x0A0B), 1);
        let mut expected = vec![7, 0, 0, 0]; // payload length
        let crc_at = expected.len();
        expected.extend([0, 0, 0, 0]); // checksum, filled below
        expected.extend([1, 0, 0, 0, 0, 0, 0, 0]); // kind 1 (event), 7 reserved
        expected.extend([0x0B, 0x0A, 0, 0, 0, 0, 0, 0]); // seq
        expected.extend([8, 7, 6, 5, 4, 3, 2, 1]); // accepted at
        expected.extend([0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]); // dedup key
        expected.extend([0x21, 0, 0, 0, 0, 0, 0, 0]); // order key
        expected.extend(b"{\"a\":1}");
        let crc = crc32fast::hash(&expected[8..]);
        expected[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(bytes, expected);
        // CRC-32 (IEEE) is the one in zlib and Ethernet: check the standard value too.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn sealed_records_decode_in_sequence() {
        let mut bytes = Vec::new();
        push_record(&mut bytes, &meta(Kind::Event), &[b"one"]);
        push_record(&mut bytes, &meta(Kind::Quarantined), &[b""]);
        push_record(&mut bytes, &meta(Kind::Event), &[b"three", b"!"]);
        assert_eq!(seal(&mut bytes, 41), 3);
        let mut at = 0;
        let mut seen = Vec::new();
        for seq in 41..44 {
            let record = decode(&bytes[at..], seq).unwrap();
            at += record.disk_len();
            seen.push((record.meta.seq, record.meta.kind, record.payload.to_vec()));
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            seen,
            [
                (41, Kind::Event, b"one".to_vec()),
                (42, Kind::Quarantined, Vec::new()),
                (43, Kind::Event, b"three!".to_vec())
            ]
        );
    }

    #[test]
    fn every_damage_is_named() {
        let mut bytes = Vec::new();
        push_record(&mut bytes, &meta(Kind::Event), &[b"payload"]);
        seal(&mut bytes, 1);
        assert!(decode(&bytes, 1).is_ok());
        assert_eq!(decode(&bytes, 2), Err(Invalid::Sequence));
        for cut in [0, 1, RECORD_HEADER_LEN - 1, RECORD_HEADER_LEN, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut], 1), Err(Invalid::Truncated), "cut at {cut}");
        }
        for at in 4..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert_eq!(decode(&flipped, 1), Err(Invalid::Checksum), "flip at {at}");
        }
        let mut long = bytes.clone();
        long[..4].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert_eq!(decode(&long, 1), Err(Invalid::Length));
        // A valid checksum over a bad kind byte or reserved byte is still refused.
        for (at, value) in [(8, 3u8), (8, 0), (12, 1)] {
            let mut odd = bytes.clone();
            odd[at] = value;
            let crc = crc32fast::hash(&odd[8..]);
            odd[4..8].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&odd, 1), Err(Invalid::Header), "byte {at} = {value}");
        }
    }

    #[test]
    fn segment_headers_are_checked() {
        assert_eq!(check_segment_header(&segment_header(5)), Ok(5));
        assert_eq!(check_segment_header(&segment_header(5)[..15]), Err(BadHeader::Short));
        let mut other = segment_header(5);
        other[0] = b'X';
        assert_eq!(check_segment_header(&other), Err(BadHeader::Magic));
        let mut newer = segment_header(5);
        newer[4] = 2;
        assert_eq!(check_segment_header(&newer), Err(BadHeader::Version(2)));
    }
}
