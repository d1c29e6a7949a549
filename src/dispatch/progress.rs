//! Which journaled records each sink has delivered: the in-flight window and the per-sink
//! delivered positions that checkpoints store.
//!
//! Records enter in sequence order (as the reader reads them) with the set of sinks that still
//! have to deliver them; workers finish them in any order. A sink's *position* is the sequence
//! number of its oldest record not yet delivered (or, when it has none in flight, the next
//! record to be read): every record below it is delivered. The window never holds more than
//! [`MAX_IN_FLIGHT`] records or (beyond its first record) [`MAX_IN_FLIGHT_BYTES`] payload bytes,
//! so neither memory nor the redelivery after a crash grows without bound.

use std::collections::VecDeque;

/// Records handed to workers and not yet finished by every sink; the reader pauses at this.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Payload bytes in flight; the reader pauses at this (one record always fits, whatever its size).
pub const MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;
/// Most sinks (a bit each in a `u64`); more are refused at start.
pub const MAX_SINKS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    accepted_ms: u64,
    bytes: u64,
    /// Bit `s` set: sink `s` has not delivered this record yet.
    pending: u64,
}

/// The window of records in flight.
#[derive(Debug)]
pub struct Progress {
    slots: VecDeque<Slot>,
    bytes: u64,
    /// Sequence number of the next record to enter.
    next_seq: u64,
}

impl Progress {
    /// An empty window whose first record will be `next_seq`.
    pub fn new(next_seq: u64) -> Progress {
        Progress { slots: VecDeque::new(), bytes: 0, next_seq }
    }

    /// True while another record may enter.
    pub fn has_room(&self) -> bool {
        self.slots.is_empty() || (self.slots.len() < MAX_IN_FLIGHT && self.bytes < MAX_IN_FLIGHT_BYTES)
    }

    /// Records in flight.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// A record enters, to be delivered by the sinks in `pending` (possibly none).
    pub fn enter(&mut self, seq: u64, accepted_ms: u64, bytes: u64, pending: u64) {
        debug_assert!(seq >= self.next_seq, "records enter in order");
        self.next_seq = seq + 1;
        if pending != 0 {
            self.slots.push_back(Slot { seq, accepted_ms, bytes, pending });
            self.bytes += bytes;
        }
        self.trim();
    }

    /// The reader skipped to `seq` (records below it are gone from the journal).
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Sink `sink` finished record `seq` (delivered or dead-lettered).
    pub fn finish(&mut self, sink: usize, seq: u64) {
        if let Ok(at) = self.slots.binary_search_by_key(&seq, |slot| slot.seq) {
            self.slots[at].pending &= !(1 << sink);
        }
        self.trim();
    }

    fn trim(&mut self) {
        while let Some(front) = self.slots.front() {
            if front.pending != 0 {
                break;
            }
            self.bytes -= front.bytes;
            self.slots.pop_front();
        }
    }

    /// Sink `sink`'s position: every record below it is delivered.
    pub fn position(&self, sink: usize) -> u64 {
        self.oldest(sink).map_or(self.next_seq, |slot| slot.seq)
    }

    /// When the oldest record sink `sink` has not delivered was accepted (ms since the epoch).
    pub fn oldest_accepted_ms(&self, sink: usize) -> Option<u64> {
        self.oldest(sink).map(|slot| slot.accepted_ms)
    }

    fn oldest(&self, sink: usize) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.pending & (1 << sink) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_oldest_undelivered_record_of_each_sink() {
        let mut progress = Progress::new(10);
        assert_eq!((progress.position(0), progress.position(1)), (10, 10));
        progress.enter(10, 1000, 5, 0b11);
        progress.enter(11, 1001, 5, 0b01); // sink 1 does not take this kind
        progress.enter(12, 1002, 5, 0b11);
        assert_eq!((progress.position(0), progress.position(1)), (10, 10));
        progress.finish(0, 11);
        progress.finish(0, 12);
        assert_eq!(progress.position(0), 10, "out of order: 10 still open");
        progress.finish(0, 10);
        assert_eq!(progress.position(0), 13);
        assert_eq!(progress.position(1), 10);
        assert_eq!(progress.oldest_accepted_ms(1), Some(1000));
        progress.finish(1, 10);
        assert_eq!(progress.position(1), 12);
        assert_eq!(progress.oldest_accepted_ms(1), Some(1002));
        progress.finish(1, 12);
        assert!(progress.is_empty());
        assert_eq!((progress.position(0), progress.position(1)), (13, 13));
        // A record no sink takes moves positions on at once.
        progress.enter(13, 0, 1, 0);
        assert_eq!(progress.position(0), 14);
        progress.skip_to(20);
        assert_eq!(progress.position(1), 20);
        progress.finish(0, 99); // unknown: ignored
    }

    #[test]
    fn the_window_is_bounded_by_count_and_bytes() {
        let mut progress = Progress::new(1);
        for seq in 1..=MAX_IN_FLIGHT as u64 {
            assert!(progress.has_room());
            progress.enter(seq, 0, 1, 1);
        }
        assert!(!progress.has_room(), "limit reached at {MAX_IN_FLIGHT}");
        progress.finish(0, 1);
        assert!(progress.has_room());
        let mut big = Progress::new(1);
        big.enter(1, 0, MAX_IN_FLIGHT_BYTES * 2, 1);
        assert!(!big.has_room(), "one huge record fills it");
        let mut edge = Progress::new(1);
        edge.enter(1, 0, MAX_IN_FLIGHT_BYTES - 1, 1);
        assert!(edge.has_room());
        edge.enter(2, 0, 1, 1);
        assert!(!edge.has_room());
    }
}
