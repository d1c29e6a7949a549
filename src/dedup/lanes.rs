//! Lanes: a small number given to each thread that commits to a ring, so that each thread can
//! keep FIFO records of its own (see "Lanes" in `ring.rs`).
//!
//! At most [`MAX_LANES`] threads hold a lane at a time; a thread takes the lowest free one the
//! first time it asks and gives it back when it exits, and the next thread to ask takes it over
//! (with whatever chunk of FIFO records the last holder left in each ring: it simply goes on
//! filling it). Threads beyond the limit get `None` and commit without a lane. The lane numbers
//! are process-wide; each ring keeps its own per-lane state, so a thread that commits to several
//! rings keeps its chunk in each.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Threads holding a lane at once (the bits of [`TAKEN`]).
pub(crate) const MAX_LANES: usize = 8;

/// Bit `i` is set while some thread holds lane `i`.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A thread's lane, given back when the thread exits.
struct Held(Option<usize>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(lane) = self.0 {
            // Release: the lane's state in every ring, written by this thread, happens before the
            // next holder's first use of it (it takes the bit with Acquire).
            TAKEN.fetch_and(!(1 << lane), Release);
        }
    }
}

thread_local! {
    static HELD: Held = Held(take());
}

fn take() -> Option<usize> {
    let all = (1u32 << MAX_LANES) - 1;
    let mut taken = TAKEN.load(Relaxed);
    loop {
        let free = !taken & all;
        if free == 0 {
            return None;
        }
        let lane = free.trailing_zeros();
        match TAKEN.compare_exchange_weak(taken, taken | 1 << lane, Acquire, Relaxed) {
            Ok(_) => return Some(lane as usize),
            Err(now) => taken = now,
        }
    }
}

/// The calling thread's lane: `None` when [`MAX_LANES`] other threads hold one, or while the
/// thread is exiting.
pub(crate) fn current() -> Option<usize> {
    HELD.try_with(|held| held.0).ok().flatten()
}

/// Held by the tests that take many lanes at once, so that they do not starve each other (the
/// lanes are process-wide; other tests hold a few at most).
#[cfg(test)]
pub(crate) static MANY_LANES: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn exited_threads_give_their_lanes_back() {
        let _many = MANY_LANES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // More threads, one after another, than there are lanes: each finds one free.
        for _ in 0..4 * MAX_LANES {
            assert!(std::thread::spawn(current).join().unwrap().is_some());
        }
    }

    #[test]
    fn live_threads_never_share_a_lane_and_the_extra_ones_get_none() {
        let _many = MANY_LANES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let threads = MAX_LANES + 4;
        let barrier = Arc::new(Barrier::new(threads));
        let lanes: Vec<Option<usize>> = (0..threads)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let lane = current();
                    assert_eq!(current(), lane, "a thread keeps its lane");
                    // Everyone holds a lane (or none) at once before anyone exits.
                    barrier.wait();
                    lane
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect();
        let mut held: Vec<usize> = lanes.iter().flatten().copied().collect();
        let count = held.len();
        held.sort_unstable();
        held.dedup();
        assert_eq!(held.len(), count, "a lane held twice: {lanes:?}");
        assert!(count <= MAX_LANES && lanes.contains(&None), "{lanes:?}");
    }
}
