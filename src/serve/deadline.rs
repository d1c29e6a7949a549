//! Read timeouts, which may_minihttp does not have: a registry of connection deadlines and a
//! plain thread that cuts the connections whose deadline passed.
//!
//! A connection's deadline is set when it opens and again after each answer, so a client gets
//! `--read-timeout` to send a complete request (head and body), and an idle keep-alive
//! connection is closed after the same time. Cutting is `shutdown(SHUT_RDWR)`: the coroutine
//! blocked on that socket wakes with end-of-stream or an error and unwinds normally, running
//! every destructor.
//!
//! Invariant (fd reuse): an entry is removed, under the lock, by the service's `Drop`, which
//! runs before may_minihttp closes the fd; the reaper shuts sockets down only while holding the
//! same lock. So the reaper can only ever cut the connection that registered the entry.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::socket;

/// Shortest pause between two sweeps: a sweep costs one pass over the open connections.
const MIN_SWEEP: Duration = Duration::from_millis(10);
/// Longest pause between two sweeps: a stalled connection outlives its deadline by at most this.
const MAX_SWEEP: Duration = Duration::from_millis(500);

/// Connection deadlines by socket fd.
#[derive(Debug)]
pub struct Deadlines {
    timeout: Duration,
    entries: Mutex<HashMap<RawFd, Instant>>,
    /// Connections cut for running out of time, for the metrics.
    expired: AtomicU64,
}

impl Deadlines {
    /// A registry giving each connection `timeout` per request.
    pub fn new(timeout: Duration) -> Deadlines {
        Deadlines { timeout, entries: Mutex::new(HashMap::new()), expired: AtomicU64::new(0) }
    }

    /// (Re)starts `fd`'s clock: it must complete its next request within the timeout.
    pub fn arm(&self, fd: RawFd) {
        let deadline = Instant::now() + self.timeout;
        self.lock().insert(fd, deadline);
    }

    /// Forgets `fd`; called before its socket is closed.
    pub fn clear(&self, fd: RawFd) {
        self.lock().remove(&fd);
    }

    /// Connections cut so far.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Cuts every connection whose deadline is before `now`; returns how many.
    fn sweep(&self, now: Instant) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|&fd, deadline| {
            let alive = *deadline > now;
            if !alive {
                socket::shutdown_both(fd);
            }
            alive
        });
        let cut = before - entries.len();
        self.expired.fetch_add(cut as u64, Ordering::Relaxed);
        cut
    }

    /// Starts the reaper thread; it sweeps until `stop` is set.
    pub fn spawn_reaper(self: &Arc<Self>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let deadlines = Arc::clone(self);
        let pause = (self.timeout / 10).clamp(MIN_SWEEP, MAX_SWEEP);
        std::thread::Builder::new().name("deadline-reaper".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(pause);
                let cut = deadlines.sweep(Instant::now());
                if cut > 0 {
                    log::debug!("closed {cut} connection(s) that did not complete a request in time");
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RawFd, Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep using it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn sweep_cuts_expired_connections_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _a = TcpStream::connect(addr).unwrap();
        let _b = TcpStream::connect(addr).unwrap();
        let (mut late, _) = listener.accept().unwrap();
        let (fresh, _) = listener.accept().unwrap();

        let deadlines = Deadlines::new(Duration::from_secs(60));
        deadlines.arm(late.as_raw_fd());
        deadlines.arm(fresh.as_raw_fd());
        assert_eq!(deadlines.sweep(Instant::now()), 0);
        // Pretend a minute passed for `late` only.
        deadlines.lock().insert(late.as_raw_fd(), Instant::now() - Duration::from_millis(1));
        assert_eq!(deadlines.sweep(Instant::now()), 1);
        assert_eq!(deadlines.expired(), 1);
        let mut buf = [0u8; 1];
        assert_eq!(late.read(&mut buf).unwrap(), 0, "the cut socket reads end-of-stream at once");
        assert!(deadlines.lock().contains_key(&fresh.as_raw_fd()));
        deadlines.clear(fresh.as_raw_fd());
        assert!(deadlines.lock().is_empty());
    }
}
