//! The journal's writer thread: takes every queued batch at each turn, writes them as one group
//! (one write, and one `fdatasync` with fsync durability), publishes the committed position, and
//! settles each batch. It owns the newest segment ([`Tail`]); nothing else writes to it.
//!
//! Invariants: every batch taken from the queue is settled (written or failed) before the next
//! turn; the thread sleeps only with the queue empty, and an append unparks it after queueing
//! (a thread's park token makes an unpark before the park count), so no batch waits for a turn
//! that never comes. If the thread unwinds, [`Guard`] poisons the journal and fails everything
//! it held or that is queued.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::append::{lock, Inner, Job, Tail, FAILED, NO_DESCRIPTORS, NO_SPACE, NO_SPACE_RETRY};
use super::Durability;

/// Longest sleep with nothing queued (an append wakes the writer at once; this only bounds the
/// time to notice the journal closing should an unpark ever be missed).
const IDLE_PARK: Duration = Duration::from_secs(1);

/// With [`Durability::None`], the shortest time between two groups under load. Nobody waits for
/// those writes, so a group per wake-up would only buy many small `write` calls and a wake-up
/// of this thread per request or two (measured: 13 k groups/s of 4.5 requests at 60 k
/// requests/s). Sleeping this long after a group lets the next one gather a millisecond of
/// traffic; it adds at most this much to the loss window of that mode, and the queue's limits
/// ([`QUEUE_CAPACITY`](super::append::QUEUE_CAPACITY) batches) hold far more than a millisecond.
/// The sleep is a plain sleep, not a park: a request's unpark then costs no system call. With
/// fsync durability the `fdatasync` itself is the pause in which the next group gathers.
pub(super) const NONE_GROUP_INTERVAL: Duration = Duration::from_millis(1);

/// Starts the writer thread on `tail`.
pub(super) fn spawn(inner: Arc<Inner>, tail: Tail) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("journal-writer".into()).spawn(move || run(&inner, tail))
}

fn run(inner: &Inner, mut tail: Tail) {
    let mut guard = Guard { inner, group: Vec::new() };
    loop {
        let closing = {
            let mut pending = lock(&inner.pending);
            std::mem::swap(&mut guard.group, &mut pending.jobs);
            pending.closing
        };
        if guard.group.is_empty() {
            if closing {
                return;
            }
            std::thread::park_timeout(IDLE_PARK);
            continue;
        }
        let started = Instant::now();
        let mut outcome = inner.write(&mut tail, &guard.group);
        // With no durability these batches were acknowledged: keep trying until there is room
        // (see "Poison, and a full disk" in `append.rs`), or until the journal closes.
        while matches!(outcome, NO_SPACE | NO_DESCRIPTORS) && inner.durability == Durability::None {
            if lock(&inner.pending).closing {
                let records: usize = guard.group.iter().map(|job| job.len).sum();
                log::error!(
                    "closing with no room on the disk (or no free descriptor): {records} bytes of \
                     acknowledged batches (--durability none) could not be written and are lost"
                );
                outcome = FAILED;
                break;
            }
            std::thread::sleep(NO_SPACE_RETRY);
            outcome = inner.write(&mut tail, &guard.group);
        }
        let synced = guard.group.iter().any(|job| job.sync);
        // The group's bytes count against the queue's bound until they are written.
        let written: usize = guard.group.iter().map(|job| job.len).sum();
        lock(&inner.pending).bytes -= written;
        inner.settle(&mut guard.group, outcome);
        if inner.durability == Durability::None && !synced && !closing {
            std::thread::sleep(NONE_GROUP_INTERVAL.saturating_sub(started.elapsed()));
        }
    }
}

/// Settles everything if the writer unwinds.
struct Guard<'i> {
    inner: &'i Inner,
    group: Vec<Arc<Job>>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        self.inner.poison("the journal writer", &std::io::Error::other("it panicked"));
        let queued = std::mem::take(&mut lock(&self.inner.pending).jobs);
        for job in self.group.drain(..).chain(queued) {
            job.finish(FAILED);
        }
        // A batch that comes later sees the poison before it joins the queue (see `append.rs`).
    }
}
