//! The durable journal: every accepted event (and every quarantined element) is a record in an
//! append-only segment file before the request is answered 200.
//!
//! ```text
//! request coroutines ─► Journal::append ─► writer thread (group commit: one write + one fdatasync)
//!                    ─► committed position ─► Reader (the dispatcher, the journal tools)
//! ```
//! * `format.rs` owns the bytes; `storage.rs` the files (and `memory.rs` a faulty disk for
//!   tests); `recover.rs` the repair on open; `config.rs` the settings ([`JournalConfig`],
//!   [`Durability`]); `facade.rs` the [`Journal`] handle, which recovers on open and hands
//!   every other call to the next two; `append.rs` the queue of pending appends, waiting,
//!   poison and the outcome ([`Append`]), with `wake.rs` waking a settled group's waiters;
//!   `writer.rs` the writer thread (the newest segment, group commit, rotation) and what it
//!   publishes; `cursor.rs` reading back; `inspect.rs` reading without changing anything (the
//!   operator tools); `lock.rs` the one way every lock is taken.
//! * Imports run one way: `facade.rs` uses `append.rs` and `writer.rs`, `writer.rs` uses
//!   `append.rs`, `append.rs` uses `wake.rs`. Only the tests import from this file, which
//!   declares the modules, re-exports their public items and names the two directories.
//!
//! # On-disk format (version 1)
//! The journal is the directory `DATA_DIR/journal/`, holding segment files named after the
//! sequence number of their first record, in 20 decimal digits: `00000000000000000001.seg`.
//! Sequence numbers start at 1, grow by one per record and are never reused; a segment holds a
//! contiguous run of them. All integers are little-endian.
//!
//! A segment starts with a 16-byte header:
//! ```text
//! offset size  field
//!      0    4  magic "EGRJ" (45 47 52 4A)
//!      4    2  format version, 1
//!      6    2  reserved, zero
//!      8    8  sequence number of the segment's first record (equal to the file name)
//! ```
//! followed by records, back to back, each a 48-byte header and a payload:
//! ```text
//! offset size  field
//!      0    4  payload length L (at most 2^31 - 1)
//!      4    4  CRC-32 (IEEE, as zlib) of bytes 8 .. 48+L: the rest of the header and the payload
//!      8    1  kind: 1 = event, 2 = quarantined element
//!      9    7  reserved, zero
//!     16    8  sequence number
//!     24    8  accepted at: milliseconds since the Unix epoch
//!     32    8  dedup key of (domain, eventId) (0 for kind 2)
//!     40    8  order key: keyed hash of (domain, primary path) (0 for kind 2, and 0 when
//!              no configured sink delivered in parallel); records with equal order keys
//!              reach each sink in sequence order
//!     48    L  payload: kind 1, the event's JSON exactly as received, on one line (line breaks
//!              between tokens turned into spaces); kind 2, the quarantine line
//!              {"index":N,"reason":"…","element":…}
//! ```
//! A record header of 48 zero bytes is the **end mark**: the records end there (a zero kind is
//! no record). A reused segment file (see "Lifetime of a segment") still holds an older
//! segment's bytes after its records, so the writer puts an end mark after every group it
//! writes into such a file, and the next group overwrites it; a new file simply ends. (A
//! reader that predates the mark cuts the file at it, which keeps every record.)
//!
//! What the reader does with each unexpected byte: a segment shorter than its header is
//! rewritten empty (its creation was cut); a bad magic, an unknown version or a header that
//! disagrees with the file name stops the open (not our file); a record whose length runs past
//! the end of the file, whose checksum fails, whose kind or reserved bytes are unknown, or whose
//! sequence number is not the next one ends the valid part of its segment: recovery cuts the
//! segment there and reports it (see `recover.rs` for the policy).
//!
//! # Durability
//! [`Durability::Fsync`] (the default): a batch is answered 200 after its records were written
//! and `fdatasync` returned, so neither a crash of the process nor of the machine loses it. New
//! segments are created with an `fsync` of the directory, so the file itself cannot vanish.
//! [`Durability::None`]: a batch is answered once it is queued for the writer, which writes a
//! group at most every millisecond under load; a crash of the process loses the queue (at most
//! [`QUEUE_CAPACITY`] batches, in practice the last milliseconds), a crash of the machine also
//! what the kernel had not yet written back (up to about 30 s with Linux's default
//! `dirty_expire_centisecs`), new segment files included: only a graceful stop syncs.
//!
//! # Lifetime of a segment
//! The newest segment takes appends until a group would take it over `--journal-segment-bytes`;
//! the next one is then created, named after its first record. A segment is removed once every
//! sink has delivered (and checkpointed) all its records and the dedup key file holds their keys
//! (`dispatch`); the newest one is never removed, so the next sequence number survives restarts.
//! A removed segment's file is kept as a spare (`<id>.spare`, at most
//! [`MAX_SPARES`]) and renamed into the next segment: overwriting blocks
//! a file already has lets `fdatasync` skip the file's metadata (its size, its block map), which
//! measured 120 µs against 200 µs per sync here, and the sync is what a request waits for.
//!
//! For the next maintainer: a format change is a new [`format::VERSION`] (see `format.rs`); the
//! dedup key file and the checkpoints name positions by sequence number, so those must stay
//! stable across versions.

mod append;
mod config;
mod cursor;
mod facade;
pub mod format;
mod inspect;
mod lock;
// Public for the fuzz targets and benches (a faulty in-memory disk), not for embedders.
#[doc(hidden)]
pub mod memory;
mod recover;
mod storage;
mod wake;
mod writer;

pub use append::{Append, QUEUE_BYTES, QUEUE_CAPACITY, QUEUE_WAIT};
pub use config::{Durability, JournalConfig, DEFAULT_SEGMENT_BYTES};
pub use cursor::{Payload, Reader, Record, SegmentCursor, Step};
pub use facade::Journal;
pub use format::{Invalid, Kind, Meta};
pub use inspect::{check, summarize, Scan, SegmentCheck, SegmentSummary};
pub use recover::{Corruption, Recovered, Repair, SegmentInfo};
pub use storage::{DirStorage, Segment, Storage, MAX_SPARES, SEGMENT_SUFFIX, SPARE_SUFFIX};
pub use writer::JournalStats;

/// Directory in the data directory where recovery copies damaged journal bytes.
pub const CORRUPT_DIR: &str = "corrupt";

/// Directory of the journal inside the data directory.
pub const JOURNAL_DIR: &str = "journal";

#[cfg(test)]
mod tests;
