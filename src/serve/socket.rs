//! The socket calls may_minihttp does not expose: half-closing a connection, cutting it, writing
//! a few bytes ahead of the response queue, and stopping the listener.
//!
//! This is the one module with `unsafe` code: FFI `shutdown(2)` and `send(2)` on a
//! connection's file descriptor, which may_minihttp hands to the service factory as its `id` and
//! keeps open until the service has been dropped. None of these calls touches memory other than
//! the byte slice passed in. Using an fd after its connection closed could hit another socket
//! that reused the number: the deadline registry (`deadline.rs`) and the service's `Drop` are
//! ordered so that this never happens.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use may::coroutine::JoinHandle;

/// Stops accepting: cancels may_minihttp's listener coroutine, which unwinds out of its blocked
/// `accept` and drops (closes) the listening socket. Connections already accepted keep running.
pub fn stop_listener(listener: &JoinHandle<()>) {
    // SAFETY: may's `cancel` is unsafe because the coroutine unwinds at its next blocking call.
    // The listener coroutine (may_minihttp's `HttpServiceFactory::start`) blocks only in
    // `accept`, where it holds the listener and the factory and no lock or half-updated shared
    // state, so unwinding it there leaves nothing inconsistent.
    unsafe { listener.coroutine().cancel() };
}

/// Stops reading: may_minihttp's next read sees end-of-stream, so it writes the responses it
/// has queued and closes the connection. Errors (an fd already shut) are ignored on purpose.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: plain FFI call on an integer; no memory is passed.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// Cuts the connection both ways: any blocked read or write on it returns at once.
pub fn shutdown_both(fd: RawFd) {
    // SAFETY: plain FFI call on an integer; no memory is passed.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Writes `bytes` straight to the socket, ahead of anything may_minihttp has queued, without
/// blocking and without SIGPIPE. Returns true when every byte was taken by the kernel (small
/// answers on a fresh socket always are).
pub fn send_now(fd: RawFd, bytes: &[u8]) -> bool {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: `rest` is a live slice; send reads at most `rest.len()` bytes from it.
        let n = unsafe {
            libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        };
        if n <= 0 {
            return false;
        }
        sent += n as usize;
    }
    true
}
