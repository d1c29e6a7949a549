//! Waking a settled group's waiters on the worker thread each of them parked on.
//!
//! A request's coroutine parks on a may [`Blocker`] while its batch is being synced. Unparked
//! from the journal writer (not one of may's workers), a coroutine goes onto some worker's
//! queue, round robin, with a system call (an eventfd write) each; unparked from inside a
//! coroutine, it goes onto the unparking worker's own queue, without one. So the writer files
//! each waiter under its *home*, the worker thread it parked on (each worker gets a small index
//! the first time one of its coroutines waits here), and spawns one short *waker* coroutine on
//! each may worker; the waker unparks the waiters filed under its own thread. A group costs one
//! spawn (one eventfd write) per worker, however many batches it holds, and every waiter resumes
//! on the worker whose caches hold its stack, its connection and its request, and whose epoll
//! set holds its socket; each worker answers its own share of the group.
//!
//! No waiter is left parked: a waker that runs on another worker than the one it was spawned
//! for (may's work stealing) wakes that worker's waiters instead, so the last waker of all to
//! finish wakes whatever is still filed; a spawn that fails wakes everything at once; and
//! waiters that are not coroutines (a plain thread, past [`MAX_HOMES`] workers) are unparked by
//! the writer directly.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use may::sync::Blocker;

use super::lock::lock;

/// Worker threads that get a home; waiters on others are unparked directly.
pub(super) const MAX_HOMES: usize = 64;

thread_local! {
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

/// The calling coroutine's worker thread as an index below [`MAX_HOMES`]; `None` outside a
/// coroutine.
pub(super) fn current_home() -> Option<usize> {
    if !may::coroutine::is_coroutine() {
        return None;
    }
    let home = HOME.with(|home| {
        if home.get() == usize::MAX {
            home.set(NEXT_HOME.fetch_add(1, Ordering::Relaxed));
        }
        home.get()
    });
    (home < MAX_HOMES).then_some(home)
}

/// Waiters filed by home, waiting for their worker's waker.
#[derive(Debug)]
pub(super) struct Homes {
    filed: Box<[Mutex<Vec<Arc<Blocker>>>]>,
    /// Wakers spawned and not finished.
    running: AtomicUsize,
}

impl Default for Homes {
    fn default() -> Homes {
        Homes {
            filed: (0..MAX_HOMES).map(|_| Mutex::new(Vec::new())).collect(),
            running: AtomicUsize::new(0),
        }
    }
}

impl Homes {
    /// Wakes a settled group's waiters (see the module docs).
    pub(super) fn wake(self: &Arc<Self>, waiters: impl IntoIterator<Item = (Option<usize>, Arc<Blocker>)>) {
        let mut filed = false;
        for (home, blocker) in waiters {
            match home {
                Some(home) => {
                    lock(&self.filed[home]).push(blocker);
                    filed = true;
                }
                None => blocker.unpark(),
            }
        }
        if !filed {
            return;
        }
        for id in 0..may::config().get_workers().max(1) {
            self.running.fetch_add(1, Ordering::SeqCst);
            let homes = Arc::clone(self);
            // SAFETY: may's `spawn` is unsafe because a coroutine must not block its worker
            // thread in a std primitive for long, nor keep references into thread-local storage
            // across a switch; the waker takes `filed` locks held only for pushes and drains,
            // unparks, and returns without ever switching out.
            let spawned = unsafe { may::coroutine::Builder::new().id(id).spawn(move || homes.run_waker()) };
            if spawned.is_err() {
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.wake_all();
            }
        }
    }

    fn run_waker(&self) {
        if let Some(home) = current_home() {
            self.wake_home(home);
        }
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wake_all();
        }
    }

    fn wake_home(&self, home: usize) {
        let waiters = std::mem::take(&mut *lock(&self.filed[home]));
        for blocker in waiters {
            blocker.unpark();
        }
    }

    fn wake_all(&self) {
        for home in 0..MAX_HOMES {
            self.wake_home(home);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(10);

    /// A thread parked on a blocker, and the channel that says when it resumed.
    fn parked_thread() -> (Arc<Blocker>, mpsc::Receiver<()>) {
        let (blocker_tx, blocker_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let blocker = Blocker::current();
            blocker_tx.send(Arc::clone(&blocker)).unwrap();
            blocker.park(None).unwrap();
            done_tx.send(()).unwrap();
        });
        (blocker_rx.recv_timeout(WAIT).unwrap(), done_rx)
    }

    #[test]
    fn a_group_wakes_every_coroutine_each_filed_under_its_worker() {
        const N: usize = 200;
        let homes = Arc::new(Homes::default());
        let (parked_tx, parked_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..N {
            let (parked_tx, done_tx) = (parked_tx.clone(), done_tx.clone());
            // SAFETY: see `Homes::wake`; the coroutine parks on a may blocker and sends on
            // unbounded channels, which never block.
            let spawned = unsafe {
                may::coroutine::spawn(move || {
                    let blocker = Blocker::current();
                    let home = current_home();
                    assert_eq!(current_home(), home, "a worker keeps its home");
                    parked_tx.send((std::thread::current().id(), home, Arc::clone(&blocker))).unwrap();
                    blocker.park(None).unwrap();
                    done_tx.send(()).unwrap();
                })
            };
            drop(spawned);
        }
        let parked: Vec<_> = (0..N).map(|_| parked_rx.recv_timeout(WAIT).unwrap()).collect();
        for (thread, home, _) in &parked {
            assert!(home.is_some(), "a coroutine has a home");
            let same_home = parked.iter().filter(|(_, other, _)| other == home);
            assert!(same_home.clone().all(|(other, _, _)| other == thread), "one home, one worker thread");
        }
        homes.wake(parked.into_iter().map(|(_, home, blocker)| (home, blocker)));
        for _ in 0..N {
            done_rx.recv_timeout(WAIT).expect("a waiter was left parked");
        }
        assert!(homes.filed.iter().all(|filed| lock(filed).is_empty()));
    }

    #[test]
    fn the_last_waker_wakes_what_no_waker_of_its_home_took() {
        let homes = Homes::default();
        let (first, first_done) = parked_thread();
        let (second, second_done) = parked_thread();
        // Filed under homes whose wakers ran elsewhere (stolen by another worker).
        lock(&homes.filed[3]).push(first);
        lock(&homes.filed[MAX_HOMES - 1]).push(second);
        homes.running.store(2, Ordering::SeqCst);
        homes.run_waker(); // not on a may worker: no home of its own, and not the last
        assert_eq!(lock(&homes.filed[3]).len(), 1, "only the last waker wakes other homes");
        assert!(first_done.try_recv().is_err());
        homes.run_waker(); // the last
        first_done.recv_timeout(WAIT).expect("woken by the last waker");
        second_done.recv_timeout(WAIT).expect("woken by the last waker");
        assert_eq!(homes.running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn waiters_that_are_threads_are_woken_at_once_without_a_waker() {
        let homes = Arc::new(Homes::default());
        let (blocker, done) = parked_thread();
        assert_eq!(current_home(), None, "a test thread is not a coroutine");
        homes.wake([(None, blocker)]);
        done.recv_timeout(WAIT).expect("woken by `wake` itself");
        assert_eq!(homes.running.load(Ordering::SeqCst), 0, "no waker spawned");
    }
}
