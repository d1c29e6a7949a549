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
use std::time::Duration;

use super::append::{lock, Inner, Job, Tail, FAILED, WRITTEN};

/// Longest sleep with nothing queued (an append wakes the writer at once; this only bounds the
/// time to notice the journal closing should an unpark ever be missed).
const IDLE_PARK: Duration = Duration::from_secs(1);

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
            pending.bytes = 0;
            pending.closing
        };
        if guard.group.is_empty() {
            if closing {
                return;
            }
            std::thread::park_timeout(IDLE_PARK);
            continue;
        }
        let outcome = if inner.write(&mut tail, &guard.group) { WRITTEN } else { FAILED };
        for job in guard.group.drain(..) {
            job.finish(outcome);
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
        // Batches queued from now on see the poison within `WAIT_CHECK` (see `append.rs`).
    }
}
