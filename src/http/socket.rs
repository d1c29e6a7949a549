//! The HTTP layer's `unsafe` calls, each small and each with the reason it is sound: spawning a
//! coroutine, adopting the listening socket into may, and `shutdown(2)` on a registered
//! connection's descriptor.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use may::coroutine::JoinHandle;

/// Spawns a coroutine queued on may worker `worker % workers`.
pub(super) fn spawn<F>(worker: usize, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: may's spawn is unsafe because a coroutine must not block its worker thread in a
    // std primitive for long, nor hold references into thread-local storage across a switch.
    // The closures spawned here (the accept loop, a connection loop) block only in may's own
    // socket calls and `may::coroutine::sleep`, take std mutexes only for an insert or a
    // removal, and keep no thread-local references.
    unsafe { may::coroutine::Builder::new().id(worker).spawn(f) }
}

/// Hands a bound, listening std socket to may.
pub(super) fn adopt_listener(listener: std::net::TcpListener) -> may::net::TcpListener {
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` was just released by an owned, open `TcpListener` (`into_raw_fd` gives up
    // its ownership), so may's listener becomes its only owner and closes it exactly once.
    unsafe { may::net::TcpListener::from_raw_fd(fd) }
}

/// Stops reading on a connection's socket: its blocked read returns end-of-stream. Errors (an
/// fd already shut) are ignored on purpose.
///
/// The caller must hold the connection registry's lock, under which the descriptor is removed
/// before its socket closes (see `listener.rs`), so `fd` is still that connection's socket.
pub(super) fn shutdown_read(fd: RawFd) {
    // SAFETY: plain FFI call on an integer; no memory is passed.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}
