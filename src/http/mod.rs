//! Our HTTP/1.1 server layer: one `may` coroutine per connection, heads parsed with `httparse`,
//! every byte of framing checked here, every limit named and answered.
//!
//! ```text
//! listener.rs  bind (exclusive), accept, cap connections, stop ─► one coroutine per connection
//! conn.rs      the connection loop: read ─► head.rs ─► Service::admit ─► body (length or
//!              chunked.rs) ─► Service::call ─► response.rs ─► write; pipelining, keep-alive,
//!              timeouts, half-close, graceful close
//! ```
//! The service (the webhook receiver in `serve/`) sees only complete, well-framed requests: a
//! [`Head`] to admit or refuse before any body byte is read, then the whole body. Everything a
//! client can get wrong about HTTP itself (a broken head, too many or too large headers, an
//! unsupported coding, a malformed chunk, a body over the limit, too slow a client) is answered
//! here with the status [`head::HeadError::status`] or [`conn::Refusal::reply`] gives it.
//!
//! Invariants the layer keeps for every connection:
//! * memory is bounded before authentication: an unfinished head never holds more than
//!   `max_head_bytes` (plus one read) in the buffer, and no length read off the wire sizes an
//!   allocation before it is checked against its limit;
//! * answers go out in request order, pipelined ones batched into one write;
//! * once a request's framing cannot be trusted (any framing error, a refused body not read,
//!   a timeout), nothing after it on the connection is parsed: the connection is answered, then
//!   closed (write side first, then the unread input drained for a moment, so the answer is not
//!   lost to a reset).
//!
//! `socket.rs` holds the layer's only `unsafe` (spawning coroutines, adopting the bound socket,
//! `shutdown(2)` on a registered connection).

// Public for the fuzz targets, the load bench and the binary's defaults, not for embedders.
#[doc(hidden)]
pub mod chunked;
mod conn;
#[doc(hidden)]
pub mod head;
mod listener;
#[doc(hidden)]
pub mod response;
mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use conn::Refusal;
pub use head::{Fields, Framing, Head, HeadError, Limits};
pub use listener::{Server, Stats};
pub use response::Reply;

/// Default body limit (`--max-body`): 16 MiB. Egnyte documents no limit; real batches are
/// kilobytes.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// The protocol layer's settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Head and body limits.
    pub limits: Limits,
    /// Time to complete a request (head and body), and to stay idle between two.
    pub read_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Request bodies being read, all connections together, at most this many bytes; a body
    /// that does not fit is answered 503 with `Retry-After`.
    pub body_budget: usize,
}

/// An answer, and whether the connection ends after it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The response.
    pub reply: Reply<'a>,
    /// Close the connection after this answer (the layer also closes on its own grounds).
    pub close: bool,
}

/// A service's decision on a head, before any body byte is read.
#[derive(Debug, Clone, Copy)]
pub enum Admit<'a> {
    /// Read the whole body (sending `100 Continue` first if the client waits for it), then
    /// [`Service::call`].
    Read,
    /// Answer now without reading the body; the layer closes the connection unless the request
    /// had no body or all of it was already buffered.
    Refuse(Outcome<'a>),
}

/// What a connection serves: one value per connection, made by the server's factory.
pub trait Service {
    /// Decides from the head alone.
    fn admit(&mut self, head: &Head<'_>) -> Admit<'_>;
    /// Handles a request admitted by [`Service::admit`] whose body (possibly empty) arrived whole.
    fn call(&mut self, head: &Head<'_>, body: &[u8]) -> Outcome<'_>;
    /// Told of every request the layer answered itself (a [`Refusal`]), for counting and logs,
    /// by the default [`Service::refused_with`].
    fn refused(&mut self, refusal: Refusal);
    /// Told the address of the peer, once, before its first request (by default ignored).
    fn connected(&mut self, peer: SocketAddr) {
        let _ = peer;
    }
    /// Told of every request the layer answered itself, with the header lines it had read
    /// ([`Fields::NONE`] when the head was refused before they were parsed). By default
    /// [`Service::refused`]; the layer calls only this one.
    fn refused_with(&mut self, refusal: Refusal, fields: Fields<'_>) {
        let _ = fields;
        self.refused(refusal);
    }
}

/// Body bytes being read across connections, against [`Config::body_budget`].
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// Takes `bytes` more; false (and nothing taken) when that would exceed the limit.
    fn take(&self, bytes: usize) -> bool {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = current.checked_add(bytes).filter(|&n| n <= self.limit) else { return false };
            match self.used.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Counters the layer keeps (see [`Stats`]).
#[derive(Debug, Default)]
struct Counters {
    refused: AtomicU64,
    timed_out: AtomicU64,
    accept_errors: AtomicU64,
}
