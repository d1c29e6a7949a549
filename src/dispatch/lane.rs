//! One sink's lane: its window of records in flight, its workers, and, while it is further
//! behind than its window allows, a journal reader of its own.
//!
//! The dispatcher reads the journal once for every sink that keeps up. A sink whose window is
//! full when the shared reader moves on (it fails, blocks or is slow while another sink still
//! has room) is *detached*: it gets a reader of its own at the first record it missed and reads
//! on from there as its window drains, up to where the shared reader stands, then rejoins it.
//! So a sink that does not finish never holds up the others, and the price (reading its
//! records twice) is paid only while it is behind.

use std::time::{Duration, Instant};

use super::progress::Window;
use crate::journal::Reader;

/// A sink with records waiting whose position has not moved for this long is *stuck*: shown
/// in `/healthz`, in `egnyte_receiver_sink_stuck` and in the log. Longer than a retry's longest
/// wait (30 s) and than a default exec run (30 s), so a sink that is merely slow or retrying
/// once does not count.
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// One sink's share of the dispatcher.
#[derive(Debug)]
pub(super) struct Lane {
    /// Records handed to its workers and not yet finished.
    pub window: Window,
    /// Its workers (indices into the dispatcher's senders), which serve no other sink.
    pub workers: Vec<usize>,
    /// Its own reader while it is detached from the shared one.
    pub behind: Option<Reader>,
    last_position: u64,
    moved_at: Instant,
    stuck: bool,
}

/// A change of a lane's stuck state, to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stuck {
    /// The position has not moved for [`STUCK_AFTER`] while records wait.
    Began,
    /// It moved again (or nothing waits any more).
    Ended,
}

impl Lane {
    /// A lane whose first record will be `start`, served by `workers`.
    pub(super) fn new(start: u64, workers: Vec<usize>) -> Lane {
        Lane {
            window: Window::new(start),
            workers,
            behind: None,
            last_position: start,
            moved_at: Instant::now(),
            stuck: false,
        }
    }

    /// True while it takes records from the shared reader.
    pub(super) fn attached(&self) -> bool {
        self.behind.is_none()
    }

    /// Which worker takes records of `order` key: the same key always maps to the same worker
    /// (that is the ordering guarantee).
    pub(super) fn worker(&self, order: u64) -> usize {
        self.workers[pick_worker(order, self.workers.len())]
    }

    /// Notes the position at `now` (`waiting`: records are committed past it); returns how long
    /// it has stood still while records waited, and whether that just changed the stuck state.
    pub(super) fn observe(
        &mut self,
        position: u64,
        waiting: bool,
        now: Instant,
    ) -> (Duration, Option<Stuck>) {
        if position != self.last_position || !waiting {
            self.last_position = position;
            self.moved_at = now;
        }
        let still = now.saturating_duration_since(self.moved_at);
        let stuck = still >= STUCK_AFTER;
        let change = match (self.stuck, stuck) {
            (false, true) => Some(Stuck::Began),
            (true, false) => Some(Stuck::Ended),
            _ => None,
        };
        self.stuck = stuck;
        (still, change)
    }
}

/// Which of `workers` takes records of `order` key. A `serial` sink (one stream: see
/// `Sink::serial`) has one worker.
fn pick_worker(order: u64, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let mixed = order.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    ((mixed >> 32) % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_stuck_only_while_records_wait_and_its_position_stands_still() {
        let t0 = Instant::now();
        let mut lane = Lane::new(5, vec![0]);
        assert_eq!(lane.observe(5, false, t0 + STUCK_AFTER * 2), (Duration::ZERO, None), "nothing waits");
        let t1 = t0 + STUCK_AFTER * 2;
        assert_eq!(lane.observe(5, true, t1 + Duration::from_secs(1)).1, None);
        assert_eq!(lane.observe(5, true, t1 + STUCK_AFTER).1, Some(Stuck::Began));
        assert_eq!(lane.observe(5, true, t1 + STUCK_AFTER * 2), (STUCK_AFTER * 2, None));
        assert_eq!(lane.observe(6, true, t1 + STUCK_AFTER * 3), (Duration::ZERO, Some(Stuck::Ended)));
    }

    #[test]
    fn one_order_key_always_goes_to_one_worker() {
        let lane = Lane::new(1, vec![3, 4, 5]);
        for order in [0u64, 1, 77, u64::MAX] {
            let first = lane.worker(order);
            assert!((3..=5).contains(&first));
            assert!((0..10).all(|_| lane.worker(order) == first));
        }
        let spread: std::collections::HashSet<usize> = (0..64).map(|order| lane.worker(order)).collect();
        assert_eq!(spread.len(), 3, "keys spread over every worker");
    }
}
