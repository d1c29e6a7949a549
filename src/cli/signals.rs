//! Process signals for the binary: SIGTERM and SIGINT stop the receiver gracefully, SIGHUP
//! reopens its files (logrotate).
//!
//! The signals are blocked in the main thread before any other thread exists (every thread
//! inherits the mask), and one thread takes them with `sigwait(3)`: no handler runs
//! asynchronously, so nothing here has to be async-signal-safe. [`Signals::block`] must
//! therefore run first thing, before `serve::start` spawns may's workers and the delivery
//! threads; a signal sent before it has its default effect.

#![allow(unsafe_code)]

use std::io;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// SIGTERM or SIGINT (named): stop gracefully.
    Stop(&'static str),
    /// SIGHUP: reopen sink files.
    Reopen,
}

/// The blocked signal set, to wait on.
pub(super) struct Signals {
    set: libc::sigset_t,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals(SIGTERM, SIGINT, SIGHUP)")
    }
}

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts later.
    pub(super) fn block() -> io::Result<Signals> {
        // SAFETY: `set` is a local sigset_t initialised by sigemptyset before any other use;
        // pthread_sigmask only reads it (the old mask is not requested).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::sigaddset(&mut set, signal);
            }
            let error = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if error != 0 {
                return Err(io::Error::from_raw_os_error(error));
            }
            Ok(Signals { set })
        }
    }

    /// Waits for the next of the blocked signals.
    pub(super) fn wait(&self) -> Signal {
        loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: `self.set` was initialised in `block`; sigwait writes one int to `signal`.
            let error = unsafe { libc::sigwait(&self.set, &mut signal) };
            if error != 0 {
                continue; // EINTR: wait again (the set itself is always valid).
            }
            return match signal {
                libc::SIGHUP => Signal::Reopen,
                libc::SIGINT => Signal::Stop("SIGINT"),
                _ => Signal::Stop("SIGTERM"),
            };
        }
    }
}
