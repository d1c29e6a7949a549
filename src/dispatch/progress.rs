//! One sink's window of records in flight, and the delivered position that checkpoints store.
//!
//! Records enter in sequence order (as a reader hands them to the sink's workers); workers finish
//! them in any order. The sink's *position* is the sequence number of its oldest record not yet
//! delivered (or, when it has none in flight, the next record it needs): every record below it
//! is delivered. The window never holds more than [`MAX_IN_FLIGHT`] records or (beyond its first
//! record) [`MAX_IN_FLIGHT_BYTES`] payload bytes, so neither memory nor the redelivery after a
//! crash grows without bound; each sink has a window of its own, so one that does not finish
//! leaves the others' room alone.

use std::collections::VecDeque;

/// Records one sink has been handed and not yet finished; its reading pauses at this.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Payload bytes one sink has in flight; its reading pauses at this (one record always fits,
/// whatever its size).
pub const MAX_IN_FLIGHT_BYTES: u64 = 64 << 20;
/// Most sinks; more are refused at start (each may hold a window, worker threads, and a journal
/// reader with an open segment).
pub const MAX_SINKS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    accepted_ms: u64,
    bytes: u64,
    done: bool,
}

/// One sink's records in flight.
#[derive(Debug)]
pub(super) struct Window {
    slots: VecDeque<Slot>,
    bytes: u64,
    /// Sequence number of the next record the sink needs.
    next_seq: u64,
}

impl Window {
    /// An empty window whose first record will be `next_seq`.
    pub(super) fn new(next_seq: u64) -> Window {
        Window { slots: VecDeque::new(), bytes: 0, next_seq }
    }

    /// True while another record may enter.
    pub(super) fn has_room(&self) -> bool {
        self.slots.is_empty() || (self.slots.len() < MAX_IN_FLIGHT && self.bytes < MAX_IN_FLIGHT_BYTES)
    }

    /// True when nothing is in flight.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// A record enters, handed to the sink's workers.
    pub(super) fn enter(&mut self, seq: u64, accepted_ms: u64, bytes: u64) {
        debug_assert!(seq >= self.next_seq, "records enter in order");
        self.next_seq = seq + 1;
        self.slots.push_back(Slot { seq, accepted_ms, bytes, done: false });
        self.bytes += bytes;
    }

    /// Every record below `seq` that has not entered is not for this sink.
    pub(super) fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// The sink finished record `seq` (delivered or dead-lettered).
    pub(super) fn finish(&mut self, seq: u64) {
        if let Ok(at) = self.slots.binary_search_by_key(&seq, |slot| slot.seq) {
            self.slots[at].done = true;
        }
        while let Some(front) = self.slots.front() {
            if !front.done {
                break;
            }
            self.bytes -= front.bytes;
            self.slots.pop_front();
        }
    }

    /// Every record below this is delivered.
    pub(super) fn position(&self) -> u64 {
        self.slots.front().map_or(self.next_seq, |slot| slot.seq)
    }

    /// When the oldest record not yet delivered was accepted (ms since the epoch), if it is in
    /// the window.
    pub(super) fn oldest_accepted_ms(&self) -> Option<u64> {
        self.slots.front().map(|slot| slot.accepted_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_follows_the_oldest_undelivered_record() {
        let mut window = Window::new(10);
        assert_eq!(window.position(), 10);
        window.enter(10, 1000, 5);
        window.skip_to(12); // 11 is not for this sink
        window.enter(12, 1002, 5);
        window.enter(13, 1003, 5);
        window.finish(12);
        window.finish(13);
        assert_eq!(window.position(), 10, "out of order: 10 still open");
        assert_eq!(window.oldest_accepted_ms(), Some(1000));
        window.finish(10);
        assert!(window.is_empty());
        assert_eq!(window.position(), 14);
        assert_eq!(window.oldest_accepted_ms(), None);
        window.skip_to(20);
        assert_eq!(window.position(), 20);
        window.skip_to(15);
        assert_eq!(window.position(), 20, "never backwards");
        window.finish(99); // unknown: ignored
    }

    #[test]
    fn the_window_is_bounded_by_count_and_bytes() {
        let mut window = Window::new(1);
        for seq in 1..=MAX_IN_FLIGHT as u64 {
            assert!(window.has_room());
            window.enter(seq, 0, 1);
        }
        assert!(!window.has_room(), "limit reached at {MAX_IN_FLIGHT}");
        window.finish(1);
        assert!(window.has_room());
        let mut big = Window::new(1);
        big.enter(1, 0, MAX_IN_FLIGHT_BYTES * 2);
        assert!(!big.has_room(), "one huge record fills it");
        let mut edge = Window::new(1);
        edge.enter(1, 0, MAX_IN_FLIGHT_BYTES - 1);
        assert!(edge.has_room());
        edge.enter(2, 0, 1);
        assert!(!edge.has_room());
    }
}
